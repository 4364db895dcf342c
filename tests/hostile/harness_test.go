package hostile

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"gunmetal/core"
	"gunmetal/tests/testserver"
)

// wait bounds every wait for the client (generous: -race on a loaded
// machine).
const wait = 15 * time.Second

// Generous bounds for one case; a flood that is not bounded blows through
// them (1xx floods used 120 MB and 8 s of CPU before they were bounded).
const (
	maxHeapGrowth = 64 << 20
	maxSysGrowth  = 256 << 20
	maxCPU        = 20 * time.Second
)

// The retry options of every hostile connection: small, so that a server
// failing every connection runs the retries out quickly. Every hostile
// server misbehaves on every connection it accepts; a connection that dies
// before it completed a response counts as a failed attempt (core/conn.go
// run), so the server accepts at most retry+1 connections (one more when
// the first completed a response: Gun's immediate retry after a real
// drop). maxConns allows one more than that.
const (
	retry     = 2
	retryOpts = `"retry":2,"retry_timeout":200`
	maxConns  = retry + 2
)

var healthySrv *testserver.Server

func TestMain(m *testing.M) {
	s, err := testserver.Start(testserver.Config{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "hostile: test server:", err)
		os.Exit(1)
	}
	healthySrv = s
	code := m.Run()
	s.Close()
	os.Exit(code)
}

// ---- the host ----

// host is one case's host side: a queue holding a healthy connection (to
// the test server) and the hostile one.
type host struct {
	t       *testing.T
	q       *core.Queue
	healthy *core.Conn
	hostile *core.Conn
	meter   *meter
	drain   *drainer
}

// newHost opens the healthy connection, starts measuring, opens the hostile
// connection to port with opts and makes reqs on it (before it is up: they
// wait for it), then drains the queue in the background, making reqs
// again on every later UP.
func newHost(t *testing.T, port int, opts string, reqs ...*core.Request) (*host, []uint64) {
	t.Helper()
	return newHostAsking(t, port, opts, true, reqs...)
}

// newHostAsking is newHost; again false: reqs are made only once.
func newHostAsking(t *testing.T, port int, opts string, again bool, reqs ...*core.Request) (*host, []uint64) {
	t.Helper()
	q, err := core.NewQueue()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q.Free)
	h := &host{t: t, q: q}
	h.healthy = openConn(t, q, healthySrv.HTTPPort(), `{"retry":0}`)
	if p, err := h.healthy.AwaitUp(wait); err != nil || p != "http" {
		t.Fatalf("healthy connection: UP %q %v", p, err)
	}
	h.meter = startMeter()
	h.hostile = openConn(t, q, port, opts)
	var refs []uint64
	for _, r := range reqs {
		ref, err := h.hostile.Request(r)
		if err != nil {
			t.Fatalf("request on the hostile connection: %v", err)
		}
		refs = append(refs, ref)
	}
	// A host that makes its requests again on every later UP, so that the
	// server misbehaves on every connection as it did on the first (whose
	// requests were made before it was up).
	var ask func()
	if again {
		ask = func() {
			for _, r := range reqs {
				h.hostile.Request(&core.Request{Method: r.Method, Path: r.Path, Headers: r.Headers, Body: r.Body})
			}
		}
	}
	h.drain = startDrain(q, h.hostile, ask)
	t.Cleanup(h.drain.close) // before q.Free (cleanups run last first)
	return h, refs
}

func openConn(t *testing.T, q *core.Queue, port int, js string) *core.Conn {
	t.Helper()
	o, err := core.ParseOptions([]byte(js), port)
	if err != nil {
		t.Fatal(err)
	}
	c, err := core.Open("127.0.0.1", port, o, q, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		select {
		case <-c.Done():
		case <-time.After(wait):
			t.Errorf("a connection did not exit after Close")
		}
	})
	return c
}

func get(path string) *core.Request { return &core.Request{Method: "GET", Path: path} }

// await waits until an event of the hostile connection satisfies match.
func (h *host) await(what string, match func(*core.Event) bool) *core.Event {
	h.t.Helper()
	ev, ok := h.drain.wait(match, wait)
	if !ok {
		h.t.Fatalf("no %s within %v; the hostile connection's events: %s", what, wait, h.drain.summary())
	}
	return ev
}

// awaitReason waits for an event of kind whose reason holds every want.
func (h *host) awaitReason(kind core.EventKind, want ...string) *core.Event {
	h.t.Helper()
	return h.await(fmt.Sprintf("%s naming %q", kind, want), func(ev *core.Event) bool {
		if ev.Kind != kind {
			return false
		}
		for _, w := range want {
			if !strings.Contains(ev.Reason, w) {
				return false
			}
		}
		return true
	})
}

// awaitBody waits for the end of stream ref's response and returns its
// status and body (an ERROR fails the test).
func (h *host) awaitBody(ref uint64) (int, []byte) {
	h.t.Helper()
	var status int
	var body []byte
	h.await(fmt.Sprintf("the end of stream %d", ref), func(ev *core.Event) bool {
		if ev.Ref != ref {
			return false
		}
		switch ev.Kind {
		case core.EvResponse:
			status = ev.Status
			return ev.Fin
		case core.EvData:
			body = append(body, ev.Data...)
			return ev.Fin
		case core.EvTrailers:
			return true
		case core.EvError:
			h.t.Fatalf("stream %d: ERROR %q", ref, ev.Reason)
		}
		return false
	})
	return status, body
}

// awaitExit waits for the hostile connection's EXIT, whose reason holds
// every want: a server that fails every connection runs the retries out.
// It fails at once when the server accepted more than maxConns
// connections (a reconnect storm, which would never exit).
func (h *host) awaitExit(accepted func() int, want ...string) *core.Event {
	h.t.Helper()
	storm := false
	ev := h.await(fmt.Sprintf("EXIT naming %q (retries run out) with at most %d connections", want, maxConns), func(ev *core.Event) bool {
		if accepted() > maxConns {
			storm = true
			return true
		}
		if ev.Kind != core.EvExit {
			return false
		}
		for _, w := range want {
			if !strings.Contains(ev.Reason, w) {
				h.t.Errorf("EXIT %q, want it to name %q", ev.Reason, want)
				break
			}
		}
		return true
	})
	if storm {
		h.t.Fatalf("the hostile server accepted %d connections before the EXIT (bound %d, retry %d): a reconnect storm; events: %s",
			accepted(), maxConns, retry, h.drain.summary())
	}
	return ev
}

// finish ends the case: it stops draining and measuring, checks the
// bounds (events handed to the host per connection, heap, CPU, accepted
// connections) and makes a request on the healthy connection. maxEvents
// bounds the events one connection may hand the host.
func (h *host) finish(maxEvents int, accepted func() int) {
	t := h.t
	t.Helper()
	h.drain.close()
	peakHeap, peakSys, cpu := h.meter.stop()
	conns := accepted()
	t.Logf("events %v; connections %d; heap +%d KiB, sys +%d KiB, cpu %v", h.drain.counts(), conns, peakHeap>>10, peakSys>>10, cpu)
	if n := h.drain.total(); n > maxEvents*max(conns, 1) {
		t.Errorf("the host was handed %d events over %d connections (bound %d each): %s", n, conns, maxEvents, h.drain.summary())
	}
	if other := h.drain.foreign(); other != "" {
		t.Errorf("events of other connections while the case ran: %s", other)
	}
	if peakHeap > maxHeapGrowth || peakSys > maxSysGrowth || cpu > maxCPU {
		t.Errorf("unbounded work: heap +%d MiB (bound %d), sys +%d MiB (bound %d), cpu %v (bound %v)",
			peakHeap>>20, maxHeapGrowth>>20, peakSys>>20, maxSysGrowth>>20, cpu, maxCPU)
	}
	ref, err := h.healthy.Request(get("/bytes/1000"))
	if err != nil {
		t.Fatalf("healthy connection: request: %v", err)
	}
	b, err := h.healthy.AwaitBody(ref, wait)
	if err != nil || b.Status != 200 || len(b.Data) != 1000 {
		t.Errorf("healthy connection after the case: %v, status %d, %d bytes", err, statusOf(b), lenOf(b))
	}
	h.hostile.Close()
	select {
	case <-h.hostile.Done():
	case <-time.After(wait):
		t.Fatalf("the hostile connection did not exit after Close")
	}
	if n := accepted(); n > maxConns {
		t.Errorf("the hostile server accepted %d connections (bound %d with retry %d): a reconnect storm", n, maxConns, retry)
	}
}

func statusOf(b *core.Body) int {
	if b == nil {
		return 0
	}
	return b.Status
}

func lenOf(b *core.Body) int {
	if b == nil {
		return 0
	}
	return len(b.Data)
}

// serverTB is the testing.TB of a hostile server's per-connection
// goroutine: a failure there (the client went away, as it should after an
// error; the test ended) ends that goroutine and nothing else. The case's
// checks are made by the test goroutine, from the client's side.
type serverTB struct{ testing.TB }

func (serverTB) Helper()               {}
func (serverTB) Fatalf(string, ...any) { runtime.Goexit() }
func (serverTB) Fatal(...any)          { runtime.Goexit() }
func (serverTB) FailNow()              { runtime.Goexit() }

// ---- draining the queue ----

// drainer takes every event off the queue, as a host that keeps up would,
// and keeps a record of the hostile connection's.
type drainer struct {
	q     *core.Queue
	c     *core.Conn
	again func()
	stop  atomic.Bool
	done  chan struct{}

	mu      sync.Mutex
	cond    *sync.Cond
	byKind  map[core.EventKind]int
	n       int
	first   []string // the first events, for failure messages
	last    []string // the last ones (a ring)
	others  []string
	matches []*core.Event // every event, until a waiter looks (bounded below)
	match   func(*core.Event) bool
	hit     *core.Event
}

const keepEvents = 4096 // events kept for wait; a flood past it is reported by finish

// startDrain drains q; again is called (from the drainer, outside its
// lock) on every UP of c but the first.
func startDrain(q *core.Queue, c *core.Conn, again func()) *drainer {
	d := &drainer{q: q, c: c, again: again, done: make(chan struct{}), byKind: map[core.EventKind]int{}}
	d.cond = sync.NewCond(&d.mu)
	go d.run()
	return d
}

func (d *drainer) run() {
	defer close(d.done)
	var buf [256]*core.Event
	for !d.stop.Load() {
		n, err := d.q.Poll(buf[:], 20*time.Millisecond)
		if err != nil {
			return // the queue was freed
		}
		ups := 0
		d.mu.Lock()
		for _, ev := range buf[:n] {
			if ev.Conn != d.c {
				if len(d.others) < 10 {
					d.others = append(d.others, evString(ev))
				}
				continue
			}
			d.n++
			d.byKind[ev.Kind]++
			if ev.Kind == core.EvUp && d.byKind[ev.Kind] > 1 {
				ups++
			}
			s := evString(ev)
			if len(d.first) < 20 {
				d.first = append(d.first, s)
			} else {
				d.last = append(d.last, s)
				if len(d.last) > 10 {
					d.last = d.last[1:]
				}
			}
			switch {
			case d.match != nil && d.hit == nil:
				if d.match(ev) {
					d.hit = ev
				} // else consumed by the search
			case len(d.matches) < keepEvents:
				d.matches = append(d.matches, ev) // for the next wait
			}
		}
		d.cond.Broadcast()
		d.mu.Unlock()
		for ; ups > 0 && d.again != nil; ups-- {
			d.again()
		}
	}
}

// wait returns the first event (already drained or to come) that
// satisfies match; events before it are consumed by the search.
func (d *drainer) wait(match func(*core.Event) bool, timeout time.Duration) (*core.Event, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, ev := range d.matches {
		if match(ev) {
			d.matches = d.matches[i+1:]
			return ev, true
		}
	}
	d.matches = nil
	d.match, d.hit = match, nil
	timer := time.AfterFunc(timeout, func() {
		d.mu.Lock()
		d.cond.Broadcast()
		d.mu.Unlock()
	})
	defer timer.Stop()
	deadline := time.Now().Add(timeout)
	for d.hit == nil && time.Now().Before(deadline) {
		d.cond.Wait()
	}
	ev := d.hit
	d.match, d.hit = nil, nil
	return ev, ev != nil
}

func (d *drainer) close() {
	// No q.Wake: a wake-up not consumed by this Poll would end the
	// healthy connection's next wait at once. Poll returns within 20 ms.
	d.stop.Store(true)
	<-d.done
}

func (d *drainer) total() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n
}

func (d *drainer) counts() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := map[string]int{}
	for k, n := range d.byKind {
		m[k.String()] = n
	}
	return m
}

func (d *drainer) summary() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := strings.Join(d.first, "; ")
	if len(d.last) > 0 {
		s += fmt.Sprintf("; ... (%d in all) ...; ", d.n) + strings.Join(d.last, "; ")
	}
	return s
}

func (d *drainer) foreign() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.others, "; ")
}

func evString(ev *core.Event) string {
	s := ev.Kind.String()
	if ev.Ref != 0 {
		s += fmt.Sprintf(" #%d", ev.Ref)
	}
	if ev.Status != 0 {
		s += fmt.Sprintf(" %d", ev.Status)
	}
	if ev.Reason != "" {
		s += fmt.Sprintf(" %q", ev.Reason)
	}
	if len(ev.Data) > 0 {
		s += fmt.Sprintf(" %d bytes", len(ev.Data))
	}
	if ev.Fin {
		s += " fin"
	}
	return s
}

// ---- measuring ----

// meter samples the heap while a case runs and takes the process's CPU
// time around it.
type meter struct {
	baseHeap, baseSys uint64
	peakHeap, peakSys uint64
	cpu0              time.Duration
	quit, done        chan struct{}
}

func startMeter() *meter {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := &meter{baseHeap: ms.HeapInuse, baseSys: ms.Sys, peakHeap: ms.HeapInuse, peakSys: ms.Sys,
		cpu0: cpuTime(), quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			m.sample()
			select {
			case <-m.quit:
				return
			case <-tick.C:
			}
		}
	}()
	return m
}

func (m *meter) sample() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.peakHeap = max(m.peakHeap, ms.HeapInuse)
	m.peakSys = max(m.peakSys, ms.Sys)
}

// stop returns the peak heap and Sys growth and the CPU time used.
func (m *meter) stop() (heap, sys uint64, cpu time.Duration) {
	close(m.quit)
	<-m.done
	m.sample()
	return m.peakHeap - m.baseHeap, m.peakSys - m.baseSys, cpuTime() - m.cpu0
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ---- a raw TCP (or TLS) server ----

// rawServer hands every connection it accepts to serve, on a goroutine of
// its own: a hostile server misbehaves on every connection, reconnects
// included.
type rawServer struct {
	ln       net.Listener
	accepted atomic.Int32
	mu       sync.Mutex
	conns    []net.Conn
}

// startRaw listens on 127.0.0.1. With cfg, every connection is a TLS
// server connection (its handshake runs on the first read or write, or in
// serve).
func startRaw(t *testing.T, cfg *tls.Config, serve func(net.Conn)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
	}
	s := &rawServer{ln: ln}
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, nc)
			s.mu.Unlock()
			s.accepted.Add(1)
			go serve(nc)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
	})
	return s
}

func (s *rawServer) port() int  { return s.ln.Addr().(*net.TCPAddr).Port }
func (s *rawServer) count() int { return int(s.accepted.Load()) }

// holdOpen reads and drops what the client sends until it closes the
// connection (or wait passes), then closes it.
func holdOpen(nc net.Conn) {
	nc.SetReadDeadline(time.Now().Add(wait))
	io.Copy(io.Discard, nc)
	nc.Close()
}

// readHead reads a request head (GETs only: no body).
func readHead(br *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return "", err
		}
		b.WriteString(line)
		if line == "\r\n" {
			return b.String(), nil
		}
	}
}

// flood writes chunk again and again until the client closes the
// connection (a write fails), limit bytes were written, or wait passed.
// It returns the bytes written.
func flood(nc net.Conn, chunk []byte, limit int) int {
	// Batch small chunks so that the flood costs the server little.
	batch := bytes.Repeat(chunk, max(1, (32<<10)/len(chunk)))
	deadline := time.Now().Add(wait)
	nc.SetWriteDeadline(deadline)
	total := 0
	for total < limit && time.Now().Before(deadline) {
		n, err := nc.Write(batch)
		total += n
		if err != nil {
			break
		}
	}
	return total
}

// discard reads and drops what the client sends, so that its answers
// (acks, WINDOW_UPDATEs, RST_STREAMs) never back up.
func discard(nc net.Conn) {
	go io.Copy(io.Discard, nc)
}

func repeat(s string, n int) []byte { return bytes.Repeat([]byte(s), n) }
