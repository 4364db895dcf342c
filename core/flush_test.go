package core

import (
	"errors"
	"testing"
	"time"
)

// Flushing a stream releases what its events held: a body twice the read
// budget, flushed as it comes, lets the pipelined request behind it
// complete (without the release the connection stops reading at 16 MiB).
func TestFlushStreamReleasesReadBudget(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, "")
	a := get(t, c, "/bytes/33554432")
	b := get(t, c, "/bytes/10")
	dropped := 0
	deadline := time.Now().Add(4 * waitFor)
	for {
		n, err := q.Flush(nil, a)
		if err != nil {
			t.Fatal(err)
		}
		dropped += n
		ev, err := c.Await(b, 20*time.Millisecond)
		if err == nil {
			if ev.Kind != EvResponse || ev.Status != 200 {
				t.Fatalf("stream b: %s", evString(ev))
			}
			break
		}
		if !errors.Is(err, ErrTimeout) || time.Now().After(deadline) {
			t.Fatalf("stream b after %d dropped events of a: %v", dropped, err)
		}
	}
	if dropped < 2 {
		t.Fatalf("dropped %d events of stream a", dropped)
	}
	q.Flush(nil, a) // the rest of a, queued ahead of b's response
	if body, err := c.AwaitBody(b, waitFor); err != nil || len(body.Data) != 10 {
		t.Fatalf("stream b's body: %v", err)
	}
	if q.Len() != 0 {
		t.Fatalf("%d events left", q.Len())
	}
}

// On HTTP/2 a flushed stream's DATA opens its window again: a 2 MiB body
// (32 times a 64 KiB window) ends, though nothing is taken.
func TestFlushStreamOpensH2Window(t *testing.T) {
	q := newQueue(t)
	c := h2tls(t, q, `,"http2_opts":{"initial_stream_window_size":65535,"initial_connection_window_size":65535}`)
	a := get(t, c, "/bytes/2097152")
	deadline := time.Now().Add(4 * waitFor)
	for {
		if _, err := q.Flush(nil, a); err != nil {
			t.Fatal(err)
		}
		if _, err := c.StreamInfo(a); errors.Is(err, ErrNoStream) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("stream a never ended: its flushed DATA did not give its window back")
		}
		time.Sleep(5 * time.Millisecond)
	}
	q.Flush(nil, a) // what came after the stream ended
	ok200(t, q, get(t, c, "/bytes/10"))
}

// Flushing a connection drops its events and no other's, keeps its EXIT,
// and the connection settles (every event released).
func TestFlushConn(t *testing.T) {
	q := newQueue(t)
	c1 := openTo(t, q, srv.HTTPPort(), "")
	c2 := openTo(t, q, srv.HTTPPort(), "")
	awaitUp(t, c2)
	r1 := get(t, c1, "/bytes/100")
	// Once r1 has ended, c1's UP, RESPONSE and DATA are in the queue.
	deadline := time.Now().Add(waitFor)
	for {
		if _, err := c1.StreamInfo(r1); errors.Is(err, ErrNoStream) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("stream r1 did not end")
		}
		time.Sleep(5 * time.Millisecond)
	}
	n, err := q.Flush(c1, 0)
	if err != nil || n < 3 { // UP, RESPONSE, DATA
		t.Fatalf("flush c1: %d, %v", n, err)
	}
	if q.Len() != 0 {
		t.Fatalf("%d events left: c2's UP was taken, c1's flushed", q.Len())
	}
	ok200(t, q, get(t, c2, "/bytes/10"))
	settled := make(chan struct{})
	c1.Close()
	<-c1.Done()
	if n, _ := q.Flush(c1, 0); n != 0 {
		t.Fatalf("flushed %d events after close: only the EXIT should be there", n)
	}
	c1.OnSettled(func() { close(settled) })
	select {
	case <-settled:
		t.Fatal("settled before its EXIT was taken")
	default:
	}
	if ev := nextOf(t, q, c1); ev.Kind != EvExit {
		t.Fatalf("got %s, want the EXIT", evString(ev))
	}
	select {
	case <-settled:
	case <-time.After(waitFor):
		t.Fatal("c1 did not settle")
	}
	if _, err := q.Flush(nil, 0); !errors.Is(err, ErrBadArg) {
		t.Fatalf("flush with neither: %v", err)
	}
}
