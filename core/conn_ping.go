package core

import "fmt"

// pinger is a protocol that can send a user ping (HTTP/2).
type pinger interface {
	ping(ref uint64) error
}

// PingVia pings the server at the end of the HTTP/2 tunnel named by
// tunnel (Gun's gun:ping/2 with #{tunnel => StreamRef}); 0 is Ping.
func (c *Conn) PingVia(tunnel uint64) (uint64, error) {
	if tunnel == 0 {
		return c.Ping()
	}
	t, err := c.tunnel(tunnel)
	if err != nil {
		return 0, err
	}
	return t.Ping()
}

// Ping sends a ping to the server (Gun's gun:ping) and returns its
// reference; the server's ack arrives as an EvNotify event with Reason
// "ping_ack" and that Ref. ErrUnsupported on protocols without pings
// (HTTP/1.1); ErrNotUp while not connected.
func (c *Conn) Ping() (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stateDone || c.closeReq != "" {
		return 0, ErrClosed
	}
	if c.proto == nil {
		return 0, ErrNotUp
	}
	p, ok := c.proto.(pinger)
	if !ok {
		return 0, fmt.Errorf("%w: %s has no ping", ErrUnsupported, c.proto.name())
	}
	ref := newRef()
	if err := p.ping(ref); err != nil {
		return 0, err
	}
	return ref, nil
}
