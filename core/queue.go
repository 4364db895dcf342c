package core

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ErrQueueClosed is returned by operations on a freed queue.
var ErrQueueClosed = errors.New("queue is closed")

// Queue is an owner's mailbox: the events of every connection it owns (and
// of the streams that named it as reply_to), in the order they happened.
//
// The eventfd returned by FD is readable exactly while the queue holds
// events (level-triggered): one write when it goes from empty to non-empty,
// one read when it is emptied. Wake also makes it readable, once, so a host
// blocked in poll(2) returns; a take that finds nothing clears that.
type Queue struct {
	mu       sync.Mutex
	events   []*Event // events[head:] are pending
	head     int
	efd      int
	fdSet    bool // the eventfd counter is non-zero
	woken    bool // Wake was called and no take has seen it yet
	waiters  int
	changed  chan struct{} // closed (and replaced) on push or wake while waiters > 0
	closed   bool
	deferred bool // see SetDeferredRelease
	conns    map[*Conn]struct{}
}

// NewQueue makes a queue with its eventfd.
func NewQueue() (*Queue, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, err
	}
	return &Queue{efd: fd, changed: make(chan struct{}), conns: map[*Conn]struct{}{}}, nil
}

// FD is the queue's eventfd, for poll/epoll/asyncio/enif_select. It stays
// open until Free.
func (q *Queue) FD() int { return q.efd }

// Len is the number of events waiting.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.events) - q.head
}

func (q *Queue) setFD() {
	if !q.fdSet {
		q.fdSet = true
		var one = [8]byte{1}
		unix.Write(q.efd, one[:])
	}
}

func (q *Queue) clearFD() {
	if q.fdSet {
		q.fdSet = false
		var b [8]byte
		unix.Read(q.efd, b[:])
	}
}

func (q *Queue) signal() {
	if q.waiters > 0 {
		close(q.changed)
		q.changed = make(chan struct{})
	}
}

// push appends events; false when the queue is closed (the events are then
// released, as if consumed). Called with the connection's lock held.
func (q *Queue) push(evs ...*Event) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	q.events = append(q.events, evs...)
	q.setFD()
	q.signal()
	q.mu.Unlock()
	return true
}

// Wake makes a blocked Take/Poll return (with what it has, perhaps
// nothing) and the eventfd readable. Any goroutine or thread may call it.
func (q *Queue) Wake() {
	q.mu.Lock()
	if !q.closed {
		q.woken = true
		q.setFD()
		q.signal()
	}
	q.mu.Unlock()
}

// takeLocked moves up to len(out) events matching match (nil: any) into
// out, keeping the others in order, and returns how many.
func (q *Queue) takeLocked(out []*Event, match func(*Event) bool) int {
	n := 0
	pending := q.events[q.head:]
	if match == nil {
		n = copy(out, pending)
		clear(pending[:n])
		q.head += n
	} else {
		w := 0
		for _, ev := range pending {
			if n < len(out) && match(ev) {
				out[n] = ev
				n++
				continue
			}
			pending[w] = ev
			w++
		}
		clear(pending[w:])
		q.events = q.events[:q.head+w]
	}
	if q.head == len(q.events) {
		q.events = q.events[:0]
		q.head = 0
		q.clearFD()
	} else if q.head > 1024 && q.head*2 > len(q.events) {
		m := copy(q.events, q.events[q.head:])
		clear(q.events[m:])
		q.events = q.events[:m]
		q.head = 0
	}
	return n
}

// Poll takes up to len(out) events, waiting up to timeout for the first
// one (0: don't wait; negative: wait forever). It returns early, possibly
// with 0 events, after Wake. Taking an event gives its bytes back to its
// connection's read budget.
func (q *Queue) Poll(out []*Event, timeout time.Duration) (int, error) {
	n, err := q.take(out, nil, timeout, nil, nil)
	q.released(out[:n])
	return n, err
}

// TryPoll takes up to len(out) events without waiting. woken says that a
// Wake was pending (and is now consumed): a waiter must return rather than
// wait again. A host that waits itself (on FD, outside Go) uses it so that a
// thread blocked in the wait holds no Go scheduler state (see gm_queue_poll).
func (q *Queue) TryPoll(out []*Event) (n int, woken bool, err error) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return 0, false, ErrQueueClosed
	}
	n = q.takeLocked(out, nil)
	woken = q.woken
	q.woken = false
	if n == 0 && q.head == len(q.events) {
		q.clearFD()
	}
	q.mu.Unlock()
	q.released(out[:n])
	return n, woken, nil
}

// SetDeferredRelease makes taken events stay charged to their connection
// until ReleaseEvents is called for them, instead of when they are taken.
// The C ABI uses it so that flow control follows gm_event_free and a
// connection's handle outlives every event that names it.
func (q *Queue) SetDeferredRelease(on bool) {
	q.mu.Lock()
	q.deferred = on
	q.mu.Unlock()
}

func (q *Queue) released(evs []*Event) {
	q.mu.Lock()
	deferred := q.deferred
	q.mu.Unlock()
	if !deferred {
		releaseEvents(evs)
	}
}

// ReleaseEvents gives taken events back to their connections (read budget,
// HTTP/2 windows): only for queues in deferred-release mode.
func ReleaseEvents(evs []*Event) { releaseEvents(evs) }

type matchResult uint8

const (
	skip matchResult = iota // leave it, look further
	take                    // take this one
	stop                    // leave it and stop waiting (the awaited thing can't come)
)

// TakeMatch is selective receive: the first event for which match returns
// true, leaving every other event in place and in order. It waits up to
// timeout (negative: forever); ErrTimeout when time runs out or on Wake.
func (q *Queue) TakeMatch(match func(*Event) bool, timeout time.Duration) (*Event, error) {
	return q.takeMatch(func(e *Event) matchResult {
		if match(e) {
			return take
		}
		return skip
	}, timeout, nil)
}

// takeMatch: selective receive where match may also stop the wait, which
// then fails with ErrClosed, as does done closing with nothing matched.
// The event is released unless the queue defers releases.
func (q *Queue) takeMatch(match func(*Event) matchResult, timeout time.Duration, done <-chan struct{}) (*Event, error) {
	var out [1]*Event
	stopped := false
	n, err := q.take(out[:], func(e *Event) bool {
		if stopped {
			return false
		}
		switch match(e) {
		case take:
			return true
		case stop:
			stopped = true
		}
		return false
	}, timeout, &stopped, done)
	switch {
	case err != nil:
		return nil, err
	case n == 1:
		q.released(out[:1])
		return out[0], nil
	case stopped:
		return nil, ErrClosed
	}
	return nil, ErrTimeout
}

// take moves up to len(out) matching events out of the queue, waiting up to
// timeout for the first. It releases nothing: callers do.
func (q *Queue) take(out []*Event, match func(*Event) bool, timeout time.Duration, stopped *bool, done <-chan struct{}) (int, error) {
	if len(out) == 0 {
		return 0, nil
	}
	var timer *time.Timer
	q.mu.Lock()
	for {
		if q.closed {
			q.mu.Unlock()
			return 0, ErrQueueClosed
		}
		n := q.takeLocked(out, match)
		if n > 0 || q.woken || timeout == 0 || (stopped != nil && *stopped) {
			q.woken = false
			if n == 0 && q.head == len(q.events) {
				q.clearFD()
			}
			q.mu.Unlock()
			return n, nil
		}
		if timer == nil && timeout > 0 {
			timer = time.NewTimer(timeout)
			defer timer.Stop()
		}
		ch := q.changed
		q.waiters++
		q.mu.Unlock()
		var expired bool
		var tc <-chan time.Time
		if timer != nil {
			tc = timer.C
		}
		select {
		case <-ch:
		case <-tc:
			expired = true
		case <-done:
			expired = true
			if stopped != nil {
				*stopped = true // nothing more can come: one last look
			}
		}
		q.mu.Lock()
		q.waiters--
		if expired {
			timeout = 0 // one last look, then return
		}
	}
}

// releaseEvents hands the taken events back to their connections' flow
// accounting, one lock per run of events of the same connection.
func releaseEvents(evs []*Event) {
	for i := 0; i < len(evs); {
		c := evs[i].Conn
		j := i + 1
		for j < len(evs) && evs[j].Conn == c {
			j++
		}
		if c != nil {
			c.consume(evs[i:j])
		}
		i = j
	}
}

func (q *Queue) adopt(c *Conn) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	q.conns[c] = struct{}{}
	return true
}

func (q *Queue) disown(c *Conn) {
	q.mu.Lock()
	delete(q.conns, c)
	q.mu.Unlock()
}

// Free closes every connection the queue owns (their exit reason is
// owner_down), drops the pending events and closes the eventfd. Later
// pushes are discarded. Idempotent.
func (q *Queue) Free() {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.closed = true
	conns := make([]*Conn, 0, len(q.conns))
	for c := range q.conns {
		conns = append(conns, c)
	}
	q.conns = nil
	pending := q.events[q.head:]
	q.events, q.head = nil, 0
	close(q.changed)
	q.mu.Unlock()
	releaseEvents(pending)
	for _, c := range conns {
		c.closeWith("owner_down")
	}
	unix.Close(q.efd)
}

func (q *Queue) isDeferred() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.deferred
}

// Flush drops the events waiting in q of connection c (ref 0), of stream
// ref (c nil: any connection's; refs are unique in a process) or of both
// (Gun's flush/1, which takes a connection pid or a stream ref). The
// connection's EXIT stays: it is its last event, exactly once, and the
// bindings release their handles on it (Gun's flush/1 also drops a
// monitor's 'DOWN'; the Erlang binding's flush does so on its side).
// Dropped events are released at once, as if taken and freed: their read
// budget and HTTP/2 window go back to the connection, so it reads on and
// may settle. It returns how many events it dropped.
func (q *Queue) Flush(c *Conn, ref uint64) (int, error) {
	if c == nil && ref == 0 {
		return 0, fmt.Errorf("%w: flush needs a connection or a stream ref", ErrBadArg)
	}
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return 0, ErrQueueClosed
	}
	var dropped []*Event
	pending := q.events[q.head:]
	w := 0
	for _, ev := range pending {
		if (c == nil || ev.Conn.under(c)) && (ref == 0 || ev.Ref == ref) && ev.Kind != EvExit { // c's tunnels too
			dropped = append(dropped, ev)
			continue
		}
		pending[w] = ev
		w++
	}
	clear(pending[w:])
	q.events = q.events[:q.head+w]
	if q.head == len(q.events) {
		q.events = q.events[:0]
		q.head = 0
		if !q.woken { // a Wake keeps the fd readable until a take sees it
			q.clearFD()
		}
	}
	q.mu.Unlock()
	releaseEvents(dropped)
	return len(dropped), nil
}
