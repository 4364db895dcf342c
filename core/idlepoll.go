package core

import (
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Idle connections wait on one shared epoll set instead of a goroutine each
// (issue 16, W5: a parked goroutine kept 2–4 KiB of stack and its g per idle
// connection). A connection whose reader parks (readLoop) registers its
// socket here, EPOLLONESHOT, and no goroutine runs for it; when the socket
// becomes readable (bytes, EOF, an error) the poller starts a goroutine that
// serves it on where the reader stopped (runFrom).
//
// The rules that keep it right:
//   - One reader at a time: c.park holds the parked state, under c.mu, and
//     whoever takes it (resumeParked on readiness, wakeParkedLocked on a
//     close, a deadline, a protocol's wake-up) is the only one to go on.
//   - The socket leaves the set before it is closed: whoever takes c.park
//     deletes it, with c.mu held (every path that closes a connection's
//     socket from outside the reader holds c.mu) and inside RawConn.Control
//     (the descriptor cannot close meanwhile).
//   - Readiness from before the registration is not missed: the set is
//     level-triggered, so a socket readable when it is added is reported.
//   - Wake-ups from before the registration are not missed: every waker
//     marks c.park (parkWoken), and a connection so marked does not park.
//   - Events carry a token, never a pointer or the descriptor: an event of
//     a registration already taken back (a descriptor number reused since)
//     finds no token and is dropped.
//
// The goroutine waiting on the set exists only while connections are
// parked: it waits in Go's own poller (the epoll descriptor is itself
// pollable), and ends when the last parked connection leaves.
type idlePoller struct {
	once  sync.Once
	epfd  int
	f     *os.File // epfd, for Go's poller
	rc    syscall.RawConn
	ok    bool
	mu    sync.Mutex
	conns map[uint64]*Conn // parked, by token
	next  uint64
	run   bool // the waiting goroutine runs
}

var idlePoll idlePoller

// parkWoken in c.park: the reader of the current socket must not park (a
// waker came while it ran: the socket is closing, or a deadline is set).
var parkWoken = &idleResume{}

func (p *idlePoller) init() bool {
	p.once.Do(func() {
		fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			return
		}
		if err := unix.SetNonblock(fd, true); err != nil {
			unix.Close(fd)
			return
		}
		p.epfd = fd
		p.f = os.NewFile(uintptr(fd), "gunmetal-idle")
		if p.rc, err = p.f.SyscallConn(); err != nil {
			return
		}
		p.conns = map[uint64]*Conn{}
		p.ok = true
	})
	return p.ok
}

// tryPark registers rs's socket and parks the reader: true when the caller
// (the reader's goroutine) may end. False when the connection must go on
// reading at once (a waker came, the socket is closed, no poller).
func (c *Conn) tryPark(rs *idleResume) bool {
	p := &idlePoll
	if !p.init() {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.park != nil || c.nc != rs.nc || c.closeReq != "" || c.wclosed || c.failErr != nil || c.werr != nil {
		return false
	}
	p.mu.Lock()
	p.next++
	tok := p.next
	p.conns[tok] = c // before the socket is in the set: its event finds it
	p.mu.Unlock()
	var err error
	cerr := rs.raw.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT,
			Fd: int32(uint32(tok)), Pad: int32(uint32(tok >> 32))}
		err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if cerr != nil || err != nil {
		p.forget(tok)
		return false
	}
	rs.tok = tok
	c.park = rs
	p.mu.Lock()
	if !p.run {
		p.run = true
		go p.loop()
	}
	p.mu.Unlock()
	return true
}

// unregister takes rs's socket out of the set. Called with c.mu held by the
// one that took c.park.
func (p *idlePoller) unregister(rs *idleResume) {
	rs.raw.Control(func(fd uintptr) {
		unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
	})
	p.forget(rs.tok)
}

// forget drops tok; the waiting goroutine is told to end when none is left.
func (p *idlePoller) forget(tok uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.conns[tok]; !ok {
		return
	}
	delete(p.conns, tok)
	if len(p.conns) == 0 && p.run {
		p.f.SetReadDeadline(time.Now())
	}
}

// wakeParkedLocked: the reader must see the socket's state now (it is being
// closed, a read deadline was set, the protocol wants to end). A parked one
// is started again; a running one is kept from parking. Called with c.mu
// held, before the socket is closed.
func (c *Conn) wakeParkedLocked() {
	if c.nc == nil {
		return
	}
	rs := c.park
	c.park = parkWoken
	if rs == nil || rs == parkWoken {
		return
	}
	idlePoll.unregister(rs)
	go c.runFrom(rs)
}

// resumeParked serves a parked connection whose socket the poller reported
// (tok: that registration), unless a waker took it first.
func (c *Conn) resumeParked(tok uint64) {
	c.mu.Lock()
	rs := c.park
	if rs == nil || rs == parkWoken || rs.tok != tok {
		c.mu.Unlock()
		return
	}
	c.park = nil
	idlePoll.unregister(rs)
	c.mu.Unlock()
	c.runFrom(rs)
}

// loop waits on the set and starts the readers of the sockets reported.
// It ends once no connection is parked (forget's deadline wakes it); a park
// after that starts another.
func (p *idlePoller) loop() {
	evs := make([]unix.EpollEvent, 64)
	for {
		p.rc.Read(func(fd uintptr) bool {
			for {
				n, err := unix.EpollWait(int(fd), evs, 0)
				if err == unix.EINTR {
					continue
				}
				for _, ev := range evs[:max(n, 0)] {
					tok := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
					p.mu.Lock()
					c := p.conns[tok]
					delete(p.conns, tok)
					p.mu.Unlock()
					if c != nil {
						go c.resumeParked(tok)
					}
				}
				if n < len(evs) {
					break
				}
			}
			p.mu.Lock()
			defer p.mu.Unlock()
			return len(p.conns) == 0
		})
		p.mu.Lock()
		if len(p.conns) == 0 {
			p.run = false
			p.mu.Unlock()
			return
		}
		p.f.SetReadDeadline(time.Time{}) // under p.mu: forget's deadline comes after, or finds conns
		p.mu.Unlock()
	}
}

// writerHeld in c.wrun while attachLocked queues a socket's first output:
// no writer goroutine starts for it (wakeWriter), flushFirst writes it.
// Never seen outside serveLoop's hold of c.mu.
var writerHeld = make(chan struct{})

// flushFirst writes the output a socket starts with (the preface and
// settings, the requests that waited for the connection) from the reader's
// goroutine, in one write that does not wait: on a fresh plain socket all
// of it goes at once and no writer goroutine starts (issue 16, W5: each
// goroutine alive at the same time as others leaves its g, ~0.5 KiB, in
// the runtime for good, and the writers of thousands of connections set up
// at once were a third of them). What does not go at once, or an error, is
// the writer's, as for any output. Called with c.mu held.
func (c *Conn) flushFirst(nc net.Conn) {
	if len(c.wbuf) == 0 {
		return
	}
	raw := idleWaitable(nc)
	if raw == nil || c.wclosed || c.werr != nil || c.wshut != 0 {
		c.wakeWriter()
		return
	}
	n := 0
	raw.Write(func(fd uintptr) bool {
		if w, err := unix.Write(int(fd), c.wbuf); err == nil {
			n = w
		}
		return true // never waits: the rest is the writer's
	})
	if n > 0 {
		c.wsent += uint64(n)
		c.wdone += uint64(n)
		c.wbuf = c.wbuf[n:] // no copy: a large first output (bodies that waited) may be megabytes
		c.drained.Broadcast()
	}
	if len(c.wbuf) > 0 {
		c.wakeWriter()
		return
	}
	c.wbuf = nil // an idle connection keeps no output buffer
}
