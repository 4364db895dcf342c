package core

import (
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fdReadable polls the queue's eventfd without waiting.
func fdReadable(t *testing.T, q *Queue) bool {
	t.Helper()
	fds := []unix.PollFd{{Fd: int32(q.FD()), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	if err != nil {
		t.Fatalf("poll(2): %v", err)
	}
	return n == 1 && fds[0].Revents&unix.POLLIN != 0
}

func refs(evs []*Event) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.Ref
	}
	return out
}

func TestQueueOrderAndBatch(t *testing.T) {
	q := newQueue(t)
	for i := 1; i <= 10; i++ {
		if !q.push(&Event{Kind: EvData, Ref: uint64(i)}) {
			t.Fatal("push refused")
		}
	}
	if q.Len() != 10 {
		t.Fatalf("Len %d, want 10", q.Len())
	}
	out := make([]*Event, 4)
	var got []uint64
	for _, want := range []int{4, 4, 2} {
		n, err := q.Poll(out, 0)
		if err != nil || n != want {
			t.Fatalf("Poll = %d, %v; want %d", n, err, want)
		}
		got = append(got, refs(out[:n])...)
	}
	for i, r := range got {
		if r != uint64(i+1) {
			t.Fatalf("order %v", got)
		}
	}
	// Empty: 0 at once with timeout 0, 0 after the timeout otherwise.
	if n, err := q.Poll(out, 0); n != 0 || err != nil {
		t.Fatalf("empty Poll = %d, %v", n, err)
	}
	start := time.Now()
	if n, err := q.Poll(out, 50*time.Millisecond); n != 0 || err != nil {
		t.Fatalf("empty Poll with timeout = %d, %v", n, err)
	}
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Fatalf("Poll returned after %v, before its 50ms timeout", d)
	}
	// Poll with an empty slice takes nothing.
	q.push(&Event{Kind: EvData, Ref: 99})
	if n, _ := q.Poll(nil, 0); n != 0 || q.Len() != 1 {
		t.Fatalf("Poll(nil) took %d, Len %d", n, q.Len())
	}
}

func TestQueueBlockingPollGetsPush(t *testing.T) {
	q := newQueue(t)
	got := make(chan uint64, 1)
	go func() {
		var out [8]*Event
		n, err := q.Poll(out[:], waitFor)
		if err != nil || n == 0 {
			got <- 0
			return
		}
		got <- out[0].Ref
	}()
	waitWaiters(t, q)
	q.push(&Event{Kind: EvData, Ref: 7})
	select {
	case r := <-got:
		if r != 7 {
			t.Fatalf("blocked Poll got ref %d, want 7", r)
		}
	case <-time.After(waitFor):
		t.Fatal("blocked Poll did not return after a push")
	}
}

// waitWaiters waits until a goroutine is blocked in q's Poll.
func waitWaiters(t *testing.T, q *Queue) {
	t.Helper()
	for deadline := time.Now().Add(waitFor); ; time.Sleep(time.Millisecond) {
		q.mu.Lock()
		w := q.waiters
		q.mu.Unlock()
		if w > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("Poll never blocked")
		}
	}
}

func TestQueueSelectiveReceive(t *testing.T) {
	q := newQueue(t)
	a, b := &Conn{}, &Conn{}
	// Events of two fake connections; Conn-less consume is a no-op for
	// events whose connection has no protocol.
	evs := []*Event{
		{Kind: EvUp, Conn: a}, {Kind: EvData, Ref: 1, Conn: a}, {Kind: EvUp, Conn: b},
		{Kind: EvData, Ref: 2, Conn: b}, {Kind: EvData, Ref: 1, Conn: a, Fin: true}, {Kind: EvData, Ref: 2, Conn: b, Fin: true},
	}
	for _, ev := range evs {
		q.push(ev)
	}
	// Take b's UP: everything else stays, in order.
	ev, err := q.TakeMatch(func(e *Event) bool { return e.Conn == b && e.Kind == EvUp }, 0)
	if err != nil || ev != evs[2] {
		t.Fatalf("TakeMatch = %v, %v", ev, err)
	}
	// The first event of stream 2, then the first of stream 1 with fin.
	if ev, _ := q.TakeMatch(func(e *Event) bool { return e.Ref == 2 }, 0); ev != evs[3] {
		t.Fatal("TakeMatch(ref 2) did not take the first event of stream 2")
	}
	if ev, _ := q.TakeMatch(func(e *Event) bool { return e.Ref == 1 && e.Fin }, 0); ev != evs[4] {
		t.Fatal("TakeMatch(ref 1 fin) took the wrong event")
	}
	// Nothing matches: ErrTimeout, after the timeout, queue untouched.
	start := time.Now()
	if _, err := q.TakeMatch(func(e *Event) bool { return e.Ref == 3 }, 30*time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("TakeMatch(no match) err %v, want ErrTimeout", err)
	}
	if time.Since(start) < 25*time.Millisecond {
		t.Fatal("TakeMatch gave up before its timeout")
	}
	out := make([]*Event, 10)
	n, _ := q.Poll(out, 0)
	if n != 3 || out[0] != evs[0] || out[1] != evs[1] || out[2] != evs[5] {
		t.Fatalf("left in the queue: %d events %v, want [a UP, a #1, b #2 fin]", n, refs(out[:n]))
	}
	// A blocked TakeMatch is woken by a matching push, not by others.
	got := make(chan *Event, 1)
	go func() {
		ev, _ := q.TakeMatch(func(e *Event) bool { return e.Ref == 5 }, waitFor)
		got <- ev
	}()
	waitWaiters(t, q)
	other := &Event{Kind: EvData, Ref: 4}
	want := &Event{Kind: EvData, Ref: 5}
	q.push(other)
	q.push(want)
	select {
	case ev := <-got:
		if ev != want {
			t.Fatalf("blocked TakeMatch got %v", ev)
		}
	case <-time.After(waitFor):
		t.Fatal("blocked TakeMatch never returned")
	}
	if n, _ := q.Poll(out, 0); n != 1 || out[0] != other {
		t.Fatal("the non-matching event did not stay")
	}
}

func TestQueueEventFD(t *testing.T) {
	q := newQueue(t)
	if fdReadable(t, q) {
		t.Fatal("eventfd readable on an empty queue")
	}
	q.push(&Event{Kind: EvData, Ref: 1})
	if !fdReadable(t, q) {
		t.Fatal("eventfd not readable with 1 event")
	}
	q.push(&Event{Kind: EvData, Ref: 2}, &Event{Kind: EvData, Ref: 3})
	// Level-triggered, one write per empty → non-empty change: the counter is 1.
	var b [8]byte
	q.mu.Lock()
	if !q.fdSet {
		t.Error("fdSet false with events queued")
	}
	q.mu.Unlock()
	out := make([]*Event, 2)
	if n, _ := q.Poll(out, 0); n != 2 {
		t.Fatalf("Poll took %d", n)
	}
	if !fdReadable(t, q) {
		t.Fatal("eventfd not readable with 1 event left")
	}
	// Selective receive of the last event clears it too.
	if _, err := q.TakeMatch(func(e *Event) bool { return e.Ref == 3 }, 0); err != nil {
		t.Fatal(err)
	}
	if fdReadable(t, q) {
		t.Fatal("eventfd still readable after the queue was drained")
	}
	if n, _ := unix.Read(q.FD(), b[:]); n > 0 {
		t.Fatal("eventfd counter non-zero after draining")
	}
	// Again, through a batch Poll that drains everything.
	q.push(&Event{Kind: EvData, Ref: 4})
	if !fdReadable(t, q) {
		t.Fatal("eventfd not readable after refilling")
	}
	if n, _ := q.Poll(make([]*Event, 8), 0); n != 1 {
		t.Fatalf("Poll took %d", n)
	}
	if fdReadable(t, q) {
		t.Fatal("eventfd readable after draining")
	}
	// Wake: readable once, until a take sees it.
	q.Wake()
	if !fdReadable(t, q) {
		t.Fatal("eventfd not readable after Wake")
	}
	if n, err := q.Poll(out, 0); n != 0 || err != nil {
		t.Fatalf("Poll after Wake = %d, %v", n, err)
	}
	if fdReadable(t, q) {
		t.Fatal("eventfd readable after the wake was seen")
	}
}

func TestQueueWakeUnblocksPoll(t *testing.T) {
	q := newQueue(t)
	done := make(chan int, 1)
	go func() {
		var out [4]*Event
		n, _ := q.Poll(out[:], -1) // forever
		done <- n
	}()
	waitWaiters(t, q)
	q.Wake()
	select {
	case n := <-done:
		if n != 0 {
			t.Fatalf("woken Poll returned %d events", n)
		}
	case <-time.After(waitFor):
		t.Fatal("Wake did not unblock Poll")
	}
	// A TakeMatch too, with ErrTimeout.
	errc := make(chan error, 1)
	go func() {
		_, err := q.TakeMatch(func(*Event) bool { return true }, -1)
		errc <- err
	}()
	waitWaiters(t, q)
	q.Wake()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("woken TakeMatch err %v", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Wake did not unblock TakeMatch")
	}
	// Free unblocks a Poll with ErrQueueClosed.
	errc2 := make(chan error, 1)
	go func() {
		var out [1]*Event
		_, err := q.Poll(out[:], -1)
		errc2 <- err
	}()
	waitWaiters(t, q)
	q.Free()
	select {
	case err := <-errc2:
		if !errors.Is(err, ErrQueueClosed) {
			t.Fatalf("Poll on a freed queue: %v", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Free did not unblock Poll")
	}
	q.Wake() // harmless after Free
	q.Free() // idempotent
	if q.push(&Event{Kind: EvData}) {
		t.Fatal("push accepted by a freed queue")
	}
}

func TestQueueFreeClosesConnections(t *testing.T) {
	q, err := NewQueue()
	if err != nil {
		t.Fatal(err)
	}
	other := newQueue(t)
	c1 := up(t, q, `{}`)
	c2 := up(t, q, `{}`)
	c3 := up(t, other, `{}`)
	ref := get(t, c1, "/infinite") // busy streaming when the queue goes
	for ev := next(t, q); ev.Kind != EvData; ev = next(t, q) {
	}
	q.Free()
	for _, c := range []*Conn{c1, c2} {
		select {
		case <-c.Done():
		case <-time.After(waitFor):
			t.Fatal("a connection of the freed queue did not exit")
		}
	}
	if _, err := c1.Request(&Request{Method: "GET", Path: "/"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("request on a connection of a freed queue: %v", err)
	}
	if _, err := q.Poll(make([]*Event, 1), 0); !errors.Is(err, ErrQueueClosed) {
		t.Fatalf("Poll on a freed queue: %v", err)
	}
	_ = ref
	// The other queue's connection is untouched.
	if b := ok200(t, other, get(t, c3, "/bytes/3")); string(b) != "abc" {
		t.Fatalf("body %q", b)
	}
	// Opening on a freed queue fails.
	if _, err := Open("127.0.0.1", srv.HTTPPort(), nil, q, nil); !errors.Is(err, ErrQueueClosed) {
		t.Fatalf("Open on a freed queue: %v", err)
	}
}
