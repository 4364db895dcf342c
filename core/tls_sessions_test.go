package core

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func tlsOpen(t *testing.T, q *Queue, host, extra string) *Conn {
	t.Helper()
	port := srv.TLSPort()
	js := fmt.Sprintf(`{"transport":"tls","protocols":["http"],"tls_opts":{"cacertfile":%q%s}}`, srv.CAFile(), extra)
	c, err := Open(host, port, parseOpts(t, js, port), q, nil)
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, c)
	awaitUp(t, c)
	// A response read: the TLS 1.3 ticket, sent after the handshake, is in.
	ok200(t, q, get(t, c, "/bytes/1"))
	return c
}

func resumed(t *testing.T, c *Conn) bool {
	t.Helper()
	in := c.Info()
	if in.TLS == nil || in.TLS.Version == "" || in.TLS.Cipher == "" || in.TLS.ALPN != "http/1.1" {
		t.Fatalf("TLS info %+v", in.TLS)
	}
	return in.TLS.Resumed
}

// One session cache per process: a second Open to the same server resumes
// the first one's session; a connection whose tls_opts size a cache of its
// own does not see the process's.
func TestTLSSessionCacheProcessWide(t *testing.T) {
	q := newQueue(t)
	host := "localhost"
	c1 := tlsOpen(t, q, host, "")
	c2 := tlsOpen(t, q, host, "")
	if !resumed(t, c2) {
		t.Fatal("the second connection to the same server did not resume")
	}
	c3 := tlsOpen(t, q, host, `,"session_cache_client_max":5`)
	if resumed(t, c3) {
		t.Fatal("a connection with a cache of its own resumed from the process's")
	}
	c4 := tlsOpen(t, q, host, `,"reuse_sessions":false`)
	if resumed(t, c4) {
		t.Fatal("reuse_sessions false resumed")
	}
	_ = c1
}

// SetTLSSessionCache bounds the process cache: with one entry, a session
// for another server evicts the first one's.
func TestTLSSessionCacheBound(t *testing.T) {
	t.Cleanup(func() { SetTLSSessionCache(defaultSessionMax, defaultSessionLifetime) })
	if err := SetTLSSessionCache(0, 0); !errors.Is(err, ErrBadArg) {
		t.Fatalf("max 0: %v", err)
	}
	if err := SetTLSSessionCache(1, -time.Second); !errors.Is(err, ErrBadArg) {
		t.Fatalf("negative lifetime: %v", err)
	}
	if err := SetTLSSessionCache(1, 0); err != nil {
		t.Fatal(err)
	}
	if n := TLSSessionCacheLen(); n > 1 {
		t.Fatalf("%d entries after bounding to 1", n)
	}
	q := newQueue(t)
	tlsOpen(t, q, "localhost", "")
	if !resumed(t, tlsOpen(t, q, "localhost", "")) {
		t.Fatal("no resumption with one entry")
	}
	tlsOpen(t, q, "127.0.0.1", "") // another host: evicts localhost's
	if TLSSessionCacheLen() != 1 {
		t.Fatalf("%d entries, bound 1", TLSSessionCacheLen())
	}
	if resumed(t, tlsOpen(t, q, "localhost", "")) {
		t.Fatal("resumed a session the bound evicted")
	}
}
