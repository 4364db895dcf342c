package core

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// A streamed body given before UP is held and goes out on UP, in order,
// after the request (Gun postpones it with the request).
func TestDataHeldBeforeUp(t *testing.T) {
	for _, proto := range []string{"http", "http2"} {
		t.Run(proto, func(t *testing.T) {
			s := startServer(t)
			s.Stop()
			q := newQueue(t)
			c := openTo(t, q, s.HTTPPort(), `{"retry":100,"retry_timeout":50,"protocols":["`+proto+`"]}`)
			ref := do(t, c, &Request{Method: "POST", Path: "/echo", Stream: true})
			var want []byte
			for _, p := range []string{"ab", "", "cd", "efg"} {
				if err := c.Data(ref, []byte(p), false); err != nil {
					t.Fatalf("Data %q before UP: %v", p, err)
				}
				want = append(want, p...)
			}
			// 1 MiB more: past the HTTP/2 server's first window, so it
			// goes out as the window opens, not at once.
			big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
			if err := c.Data(ref, big, true); err != nil {
				t.Fatal(err)
			}
			want = append(want, big...)
			if err := c.Data(ref, []byte("x"), false); !errors.Is(err, ErrBadState) {
				t.Fatalf("Data after fin: %v", err)
			}
			if err := s.Restart(); err != nil {
				t.Fatal(err)
			}
			expect(t, q, EvUp, 0)
			if got := ok200(t, q, ref); !bytes.Equal(got, want) {
				t.Fatalf("echoed %d bytes, want %d", len(got), len(want))
			}
		})
	}
}

// The held bytes are bounded (max_pending_body, 4 MiB by default): past it
// Data waits for UP and its piece then goes out after the held ones.
func TestDataHeldBound(t *testing.T) {
	const pendingBodyBound = 4 << 20
	s := startServer(t)
	s.Stop()
	q := newQueue(t)
	c := openTo(t, q, s.HTTPPort(), `{"retry":100,"retry_timeout":50}`)
	ref := do(t, c, &Request{Method: "POST", Path: "/echo", Stream: true})
	piece := bytes.Repeat([]byte("x"), pendingBodyBound/4)
	for range 4 {
		if err := c.Data(ref, piece, false); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- c.Data(ref, []byte("tail"), true) }()
	select {
	case err := <-done:
		t.Fatalf("Data past the bound returned before UP: %v", err)
	case <-time.After(200 * time.Millisecond): // proving an absence
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitFor):
		t.Fatal("Data past the bound still waits after UP")
	}
	expect(t, q, EvUp, 0)
	got := ok200(t, q, ref)
	if len(got) != pendingBodyBound+4 || string(got[len(got)-4:]) != "tail" {
		t.Fatalf("echoed %d bytes ending %q", len(got), got[max(0, len(got)-4):])
	}
}

// Held bodies are dropped with their stream: cancel, and the connection's
// exit (the request then gets its ERROR); and an HTTP/1.1 body cannot go
// ahead of an earlier request's unfinished one.
func TestDataHeldCancelAndOrder(t *testing.T) {
	s := startServer(t)
	s.Stop()
	q := newQueue(t)
	c := openTo(t, q, s.HTTPPort(), `{"retry":100,"retry_timeout":50}`)
	a := do(t, c, &Request{Method: "POST", Path: "/echo", Stream: true})
	b := do(t, c, &Request{Method: "POST", Path: "/echo", Stream: true})
	if err := c.Data(b, []byte("b"), true); !errors.Is(err, ErrBadState) {
		t.Fatalf("b's body before a's ends: %v", err)
	}
	if err := c.Data(a, []byte("a"), false); err != nil {
		t.Fatal(err)
	}
	if err := c.Cancel(a); err != nil {
		t.Fatal(err)
	}
	if c.heldBytes != 0 || len(c.held) != 0 {
		t.Fatalf("held after cancel: %d bytes", c.heldBytes)
	}
	if err := c.Data(b, []byte("bb"), true); err != nil {
		t.Fatalf("b's body once a is cancelled: %v", err)
	}
	c.Close()
	evs := waitExit(t, q, c)
	if len(evs) != 2 || evs[0].Kind != EvError || evs[0].Ref != b {
		t.Fatalf("events %v", evs)
	}
	c.mu.Lock()
	n := c.heldBytes
	c.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d bytes held after exit", n)
	}
}

// max_pending_body 0 holds nothing: Data before UP is ErrNotUp at once (the
// Erlang binding's choice: it holds bodies itself, so that no NIF call waits
// for a connection), and the request still goes out on UP.
func TestDataHeldOff(t *testing.T) {
	s := startServer(t)
	s.Stop()
	q := newQueue(t)
	c := openTo(t, q, s.HTTPPort(), `{"retry":100,"retry_timeout":50,"max_pending_body":0}`)
	ref := do(t, c, &Request{Method: "POST", Path: "/echo", Stream: true})
	done := make(chan error, 1)
	go func() { done <- c.Data(ref, []byte("x"), false) }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotUp) || !strings.Contains(err.Error(), "max_pending_body") {
			t.Fatalf("Data before UP with max_pending_body 0: %v", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Data before UP with max_pending_body 0 waits")
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	expect(t, q, EvUp, 0)
	if err := c.Data(ref, []byte("after"), true); err != nil {
		t.Fatal(err)
	}
	if got := ok200(t, q, ref); string(got) != "after" {
		t.Fatalf("echoed %q", got)
	}
}
