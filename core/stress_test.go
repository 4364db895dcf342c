package core

// Crash-class stress of the engine (issue 9, item 1), in the shapes of
// tests/stress/stress.c but through the Go API, for the race detector:
// many connections on one queue, endless bodies whose request timeouts fire
// mid-stream, cancel and close mid-stream, events released on another
// goroutine than the poller (the C ABI's deferred release), and the
// connection settling (its C handle's release) only after every event is
// released.
//
// GM_STRESS_SECONDS sets each shape's traffic time (default 1.5 s: the
// `make test` slice); `make stress` runs them for a minute each.

import (
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func stressDuration() time.Duration {
	if s := os.Getenv("GM_STRESS_SECONDS"); s != "" {
		if f, err := strconv.ParseFloat(s, 64); err == nil && f > 0 {
			return time.Duration(f * float64(time.Second))
		}
	}
	return 1500 * time.Millisecond
}

type stressReq struct {
	ref       uint64
	endless   bool
	timeout   bool
	want, got int64
	responded bool
	ended     bool
	cancelled bool
}

type stressConn struct {
	c       *Conn
	up      bool
	exited  bool
	closing bool
	stuck   bool // an endless body: what is pipelined behind it never comes
	settled atomic.Bool
	reqs    map[uint64]*stressReq
}

// stressHost is a C-ABI-like host: one poller, one releaser.
type stressHost struct {
	t        *testing.T
	q        *Queue
	rnd      *rand.Rand
	conns    []*stressConn
	byConn   map[*Conn]*stressConn
	release  chan []*Event
	wg       sync.WaitGroup
	events   int
	bytes    int64
	timeout  int
	discards int
}

func newStressHost(t *testing.T, seed int64) *stressHost {
	h := &stressHost{t: t, q: newQueue(t), rnd: rand.New(rand.NewSource(seed)),
		byConn: map[*Conn]*stressConn{}, release: make(chan []*Event, 64)}
	h.q.SetDeferredRelease(true)
	h.wg.Add(1)
	go func() { // events released by another goroutine than the poller
		defer h.wg.Done()
		for evs := range h.release {
			ReleaseEvents(evs)
		}
	}()
	return h
}

func (h *stressHost) open() *stressConn {
	c, err := Open("127.0.0.1", srv.HTTPPort(), nil, h.q, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	k := &stressConn{c: c, reqs: map[uint64]*stressReq{}}
	c.OnSettled(func() { k.settled.Store(true) })
	h.conns = append(h.conns, k)
	h.byConn[c] = k
	return k
}

func (h *stressHost) request(k *stressConn, path string, want int64, timeout time.Duration) {
	ref, err := k.c.Request(&Request{Method: "GET", Path: path, Timeout: timeout})
	if err != nil {
		h.t.Fatalf("request %s: %v", path, err)
	}
	k.reqs[ref] = &stressReq{ref: ref, endless: want < 0, timeout: timeout > 0, want: want}
}

func (h *stressHost) account(ev *Event) {
	t := h.t
	h.events++
	k := h.byConn[ev.Conn]
	if k == nil {
		t.Fatalf("%s for an unknown connection", evString(ev))
	}
	if k.exited {
		t.Fatalf("%s after EXIT", evString(ev))
	}
	switch ev.Kind {
	case EvUp:
		k.up = true
		return
	case EvExit:
		k.exited = true
		for _, r := range k.reqs {
			if !r.ended && !r.cancelled && !k.closing {
				t.Fatalf("EXIT %s while stream %d had not ended", ev.Reason, r.ref)
			}
		}
		return
	case EvDown:
		// The test server drops no connection; gunmetal does once the
		// endless response of a cancelled or timed-out HTTP/1.1 stream was
		// read and dropped for http_opts.discard_timeout (the bound at work).
		// The streams pipelined behind it got their ERROR first.
		if !strings.HasPrefix(ev.Reason, "discard_timeout") {
			t.Fatalf("DOWN %s: the test server drops no connection", ev.Reason)
		}
		for _, r := range k.reqs {
			if !r.ended && !r.cancelled {
				t.Fatalf("DOWN %s while stream %d had not ended", ev.Reason, r.ref)
			}
		}
		h.discards++
		return
	}
	if !k.up {
		t.Fatalf("%s before UP", evString(ev))
	}
	r := k.reqs[ev.Ref]
	if r == nil {
		t.Fatalf("%s for an unknown stream", evString(ev))
	}
	if r.ended {
		t.Fatalf("%s after the stream's end", evString(ev))
	}
	switch ev.Kind {
	case EvResponse:
		if r.responded || ev.Status != 200 {
			t.Fatalf("%s: second response or bad status", evString(ev))
		}
		r.responded = true
		r.ended = ev.Fin
	case EvData:
		if !r.responded {
			t.Fatalf("DATA before RESPONSE")
		}
		checkPattern(t, r.got, ev.Data)
		r.got += int64(len(ev.Data))
		h.bytes += int64(len(ev.Data))
		if ev.Fin {
			r.ended = true
			if r.endless || r.got != r.want {
				t.Fatalf("body of %d bytes, want %d", r.got, r.want)
			}
		}
	case EvError:
		r.ended = true
		if strings.Contains(ev.Reason, "discard_timeout") {
			break // behind a discarded response: see EvDown
		}
		if !r.timeout || !strings.HasPrefix(ev.Reason, "timeout") {
			t.Fatalf("stream %d: ERROR %s", r.ref, ev.Reason)
		}
		h.timeout++
	default:
		t.Fatalf("unexpected %s", evString(ev))
	}
}

// pump polls once and hands the batch to the releaser (or returns it held).
func (h *stressHost) pump(timeout time.Duration, hold bool) []*Event {
	evs := make([]*Event, 256)
	n, err := h.q.Poll(evs, timeout)
	if err != nil {
		h.t.Fatal(err)
	}
	evs = evs[:n]
	for _, ev := range evs {
		h.account(ev)
	}
	if hold {
		return evs
	}
	if n > 0 {
		h.release <- evs
	}
	return nil
}

func (k *stressConn) busy() int {
	n := 0
	for _, r := range k.reqs {
		if !r.ended && !r.cancelled {
			n++
		}
	}
	return n
}

// finish lets every stream end, closes every connection, drains to the
// EXITs, and checks that each connection settled (every event released).
func (h *stressHost) finish() {
	t := h.t
	deadline := time.Now().Add(30 * time.Second)
	for {
		pending := 0
		for _, k := range h.conns {
			if !k.exited && !k.closing {
				pending += k.busy()
				if !k.up {
					pending++
				}
			}
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lost events: %d streams or connections never ended", pending)
		}
		h.pump(100*time.Millisecond, false)
	}
	for _, k := range h.conns {
		if !k.exited {
			k.closing = true
			k.c.Close()
		}
	}
	for {
		open := 0
		for _, k := range h.conns {
			if !k.exited {
				open++
			}
		}
		if open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lost events: %d connections never sent EXIT", open)
		}
		h.pump(100*time.Millisecond, false)
	}
	close(h.release)
	h.wg.Wait()
	if n := h.q.Len(); n != 0 {
		t.Fatalf("%d events after every EXIT", n)
	}
	for _, k := range h.conns {
		if !k.settled.Load() {
			t.Fatalf("a connection did not settle: an event was never released (budget %d)", k.c.budget)
		}
	}
	t.Logf("%d connections, %d events, %d MB, %d timeouts, %d discards", len(h.conns), h.events, h.bytes>>20, h.timeout, h.discards)
}

// TestStressReproShape: issue 9's shape, one poller and one releaser.
func TestStressReproShape(t *testing.T) {
	h := newStressHost(t, time.Now().UnixNano())
	a, b := h.open(), h.open()
	h.request(a, "/infinite", -1, 5*time.Second)
	h.request(b, "/bytes/100", 100, 0)
	end := time.Now().Add(stressDuration())
	for time.Now().Before(end) {
		h.pump(20*time.Millisecond, false)
		if b.up && b.busy() == 0 {
			n := 1 + h.rnd.Intn(40000)
			h.request(b, "/bytes/"+strconv.Itoa(n), int64(n), 0)
		}
	}
	for _, r := range a.reqs {
		if !r.ended {
			a.c.Cancel(r.ref)
			r.cancelled = true
		}
	}
	h.finish()
}

// TestStressManyConns: 16 connections on one queue, timeouts firing
// mid-stream, cancel and close mid-stream, events held across a close.
func TestStressManyConns(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	h := newStressHost(t, seed)
	for i := 0; i < 16; i++ {
		h.open()
	}
	end := time.Now().Add(stressDuration())
	for time.Now().Before(end) {
		if held := h.pump(20*time.Millisecond, h.rnd.Intn(15) == 0); held != nil {
			// Close a connection while holding its events; release later.
			for _, ev := range held {
				if k := h.byConn[ev.Conn]; k != nil && !k.exited && !k.closing {
					k.closing = true
					k.c.Close()
					break
				}
			}
			h.release <- held
		}
		open := 0
		for _, k := range h.conns {
			if !k.up || k.closing || k.exited {
				if !k.closing && !k.exited {
					open++
				}
				continue
			}
			open++
			busy := k.busy()
			switch {
			case k.stuck && busy == 0 && h.rnd.Intn(10) == 0:
				k.closing = true
				k.c.Close()
				continue
			case busy < 2 && !k.stuck:
				switch h.rnd.Intn(3) {
				case 0:
					h.request(k, "/infinite", -1, time.Duration(20+h.rnd.Intn(200))*time.Millisecond)
					k.stuck = true
				case 1:
					n := 1 + h.rnd.Intn(200000)
					h.request(k, fmt.Sprintf("/chunked/%d?chunk=%d", n, 1+h.rnd.Intn(20000)), int64(n), time.Duration(h.rnd.Intn(2))*5*time.Second)
				default:
					n := 1 + h.rnd.Intn(40000)
					h.request(k, fmt.Sprintf("/bytes/%d", n), int64(n), time.Duration(h.rnd.Intn(2))*5*time.Second)
				}
			}
			if h.rnd.Intn(200) == 0 {
				for _, r := range k.reqs {
					if !r.ended && !r.cancelled {
						k.c.Cancel(r.ref)
						r.cancelled = true
						break
					}
				}
			}
			if h.rnd.Intn(400) == 0 {
				k.closing = true
				k.c.Close()
			}
		}
		for ; open < 16; open++ {
			h.open()
		}
	}
	h.finish()
}
