package core

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"syscall"
)

// CheckAdoptOptions refuses, in the options JSON for an adopted socket, what
// cannot apply to it: a non-zero retry (an adopted socket cannot be
// reconnected) and the options of a dial that never happens.
func CheckAdoptOptions(js []byte) error {
	if len(js) == 0 {
		return nil
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(js, &top) != nil {
		return nil // ParseOptions reports the syntax error
	}
	if r, ok := top["retry"]; ok && string(r) != "null" && string(r) != "0" {
		return &OptionError{Key: "retry", Value: optDecodeValue(r), Msg: "must be 0 for an adopted socket: it cannot be reconnected"}
	}
	for _, k := range []string{"connect_timeout", "domain_lookup_timeout", "socks_opts"} {
		if r, ok := top[k]; ok && string(r) != "null" {
			return &OptionError{Key: k, Value: optDecodeValue(r), Msg: "does not apply to an adopted socket: gunmetal does not connect it"}
		}
	}
	// Socket options are set by whoever makes the socket: here the host.
	// tcp_opts.send_timeout (a write deadline) and send_timeout_close are
	// gunmetal's own, so they stay.
	if r, ok := top["tcp_opts"]; ok && string(r) != "null" {
		var tcp map[string]json.RawMessage
		if json.Unmarshal(r, &tcp) == nil {
			for k, v := range tcp {
				if k != "send_timeout" && k != "send_timeout_close" && string(v) != "null" {
					return &OptionError{Proto: "tcp_opts", Key: k, Value: optDecodeValue(v),
						Msg: "does not apply to an adopted socket: set socket options on it before handing it over"}
				}
			}
		}
	}
	return nil
}

// AdoptFD checks that fd is a connected stream socket and returns a net.Conn
// on a duplicate of it; fd itself is left alone (the caller closes it once
// the connection is started, so that on error it stays the host's).
func AdoptFD(fd int) (net.Conn, error) {
	if fd < 0 {
		return nil, fmt.Errorf("%w: fd %d is not a file descriptor", ErrBadArg, fd)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("%w: fd %d: %v", ErrBadArg, fd, err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFSOCK {
		return nil, fmt.Errorf("%w: fd %d is not a socket", ErrBadArg, fd)
	}
	if t, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TYPE); err != nil || t != syscall.SOCK_STREAM {
		return nil, fmt.Errorf("%w: fd %d is not a stream socket", ErrBadArg, fd)
	}
	sa, err := syscall.Getpeername(fd)
	if err != nil {
		return nil, fmt.Errorf("%w: fd %d is not a connected socket (getpeername: %v)", ErrBadArg, fd, err)
	}
	switch sa.(type) {
	case *syscall.SockaddrInet4, *syscall.SockaddrInet6, *syscall.SockaddrUnix:
	default:
		return nil, fmt.Errorf("%w: fd %d is not a TCP or Unix socket", ErrBadArg, fd)
	}
	syscall.ForkLock.RLock()
	d, err := syscall.Dup(fd)
	if err == nil {
		syscall.CloseOnExec(d)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("%w: fd %d: dup: %v", ErrBadArg, fd, err)
	}
	f := os.NewFile(uintptr(d), "adopted")
	nc, err := net.FileConn(f) // dups again: f is ours to close
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("%w: fd %d: %v", ErrBadArg, fd, err)
	}
	return nc, nil
}

// OpenConn starts a connection over nc, a socket the host connected: TLS
// on it if opts ask, then the protocol. It cannot be reconnected: retry is
// forced to 0 (CheckAdoptOptions refuses another value) and a drop ends in
// EXIT. On error nc is not closed. With TLS, the server name is
// tls_opts.server_name_indication; without one verify_none is required.
func OpenConn(nc net.Conn, opts *Options, q *Queue, tag any) (*Conn, error) {
	if nc == nil {
		return nil, fmt.Errorf("%w: no socket", ErrBadArg)
	}
	c := &Conn{tag: tag, adopted: nc}
	switch a := nc.RemoteAddr().(type) {
	case *net.TCPAddr:
		c.host, c.port = a.IP.String(), a.Port
	default:
		c.host, c.unixPath = "localhost", "adopted"
		if a != nil && a.String() != "" {
			c.unixPath = a.String()
		}
	}
	if opts == nil {
		var err error
		if opts, err = ParseOptions(nil, 0); err != nil {
			return nil, err
		}
	}
	o := *opts
	o.Retry = 0
	if o.Transport == "tls" && o.TLS.ServerNameIndication == "" && o.TLS.Verify {
		return nil, &OptionError{Key: "tls_opts", Msg: "an adopted socket has no host name to verify: give tls_opts.server_name_indication, or tls_opts.verify \"verify_none\""}
	}
	c2, err := start(c, &o, q)
	if err != nil {
		c.adopted = nil
	}
	return c2, err
}
