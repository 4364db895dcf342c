package core

import (
	"crypto/tls"
	"fmt"
	"math"
	"net"
	"strconv"
	"time"
)

// One TLS client session cache per process, as Erlang's ssl keeps one per
// VM: every connection whose tls_opts name neither session_lifetime nor
// session_cache_client_max resumes from it, so a second Open to the same
// server resumes the first one's session. Entries are keyed by the client
// certificate file, the host and port connected to, and Go's own key (the
// server name), so that two servers behind one name, or two client
// identities, never share a session. SetTLSSessionCache sizes it.

const (
	defaultSessionMax      = 1000                // Erlang ssl's session_cache_client_max
	defaultSessionLifetime = 86400 * time.Second // Erlang ssl's session_lifetime (24 h)
)

var processSessions = NewTLSSessionCache(defaultSessionMax, defaultSessionLifetime).(*optSessionCache)

// SetTLSSessionCache bounds the process-wide cache: at most max entries
// (1..2^31-1, least recently used evicted first), each forgotten lifetime
// after it was stored (0: kept until evicted). Entries already cached stay
// (those past the new bounds go at once). Safe from any goroutine, at any
// time; connections see the new bounds at their next handshake.
func SetTLSSessionCache(max int, lifetime time.Duration) error {
	if max < 1 || max > math.MaxInt32 {
		return fmt.Errorf("%w: session_cache_client_max %d out of range 1..2147483647", ErrBadArg, max)
	}
	if lifetime < 0 {
		return fmt.Errorf("%w: session_lifetime %v is negative (0: no lifetime)", ErrBadArg, lifetime)
	}
	c := processSessions
	c.mu.Lock()
	defer c.mu.Unlock()
	c.capacity, c.lifetime = max, lifetime
	for c.ll.Len() > c.capacity {
		el := c.ll.Back()
		c.ll.Remove(el)
		delete(c.m, el.Value.(*optSessionEntry).key)
	}
	return nil
}

// TLSSessionCacheLen is the number of sessions in the process-wide cache.
func TLSSessionCacheLen() int {
	c := processSessions
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}

// sessionView is the process cache seen by one kind of connection: its keys
// carry prefix. A comparable value, so configs built from the same options
// compare equal.
type sessionView struct{ prefix string }

func (v sessionView) Get(key string) (*tls.ClientSessionState, bool) {
	return processSessions.Get(v.prefix + key)
}

func (v sessionView) Put(key string, cs *tls.ClientSessionState) {
	processSessions.Put(v.prefix+key, cs)
}

// scopeSessions puts host and port into the key of a config's process-cache
// view (a connection's own cache is left alone).
func scopeSessions(conf *tls.Config, host string, port int) {
	if v, ok := conf.ClientSessionCache.(sessionView); ok {
		v.prefix += net.JoinHostPort(host, strconv.Itoa(port)) + "\x00"
		conf.ClientSessionCache = v
	}
}
