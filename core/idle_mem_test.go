package core

import (
	"bytes"
	"net"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"
)

// Idle connections hold no read buffer (issue 16, W5): 200 idle h2c
// connections, each after one GET, add less than 75 KiB of Go heap each,
// the test server's side of each included (it runs in this process). With
// a 64 KiB read buffer kept per connection it was 94 KiB each; without, 35
// (54 under -race).
func TestIdleConnsHoldNoReadBuffer(t *testing.T) {
	const n = 200
	q, err := NewQueue()
	if err != nil {
		t.Fatal(err)
	}
	defer q.Free()
	o, err := ParseOptions([]byte(`{"protocols":["http2"],"retry":0}`), srv.HTTPPort())
	if err != nil {
		t.Fatal(err)
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC() // a second cycle empties sync.Pool's victim cache
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	before := heap()
	conns := make([]*Conn, n)
	for i := range conns {
		if conns[i], err = Open("127.0.0.1", srv.HTTPPort(), o, q, nil); err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		for _, c := range conns {
			c.Close()
			<-c.Done()
		}
	}()
	for _, c := range conns {
		if _, err := c.AwaitUp(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Request(&Request{Method: "GET", Path: "/bytes/100"}); err != nil {
			t.Fatal(err)
		}
	}
	evs := make([]*Event, 256)
	for ended := 0; ended < n; {
		k, err := q.Poll(evs, 10*time.Second)
		if err != nil || k == 0 {
			t.Fatalf("poll: %d %v (%d of %d streams ended)", k, err, ended, n)
		}
		for _, ev := range evs[:k] {
			switch {
			case ev.Kind == EvData && ev.Fin:
				ended++
			case ev.Kind == EvError || ev.Kind == EvDown || ev.Kind == EvExit:
				t.Fatalf("%s: %s", ev.Kind, ev.Reason)
			}
		}
		clear(evs[:k])
	}
	per := (float64(heap()) - float64(before)) / n / 1024
	t.Logf("%.1f KiB of heap per idle connection", per)
	if per > 75 {
		t.Fatalf("%.1f KiB of heap per idle connection, want < 75 (a read buffer kept while idle?)", per)
	}
}

// writerGoroutines counts the goroutines running a connection's writer.
func writerGoroutines() int {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return bytes.Count(buf, []byte("core.(*Conn).writeLoop("))
}

// An idle connection has no writer goroutine (issue 16, W5): the writer
// starts with output and ends once it is out. 100 h2c connections after a
// GET each settle to fewer than 50 writers in the whole process (each kept
// one for its life before: 100 or more); a second GET on each then starts
// one again and completes, and the writers go again.
func TestIdleConnsHoldNoWriter(t *testing.T) {
	const n = 100
	q := newQueue(t)
	conns := upH2c(t, q, n)
	settle := func(round int) {
		t.Helper()
		w := writerGoroutines()
		for deadline := time.Now().Add(waitFor); w >= n/2 && time.Now().Before(deadline); w = writerGoroutines() {
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("round %d: %d writer goroutines for %d idle connections", round, w, n)
		if w >= n/2 {
			t.Fatalf("round %d: %d writer goroutines for %d idle connections, want < %d", round, w, n, n/2)
		}
	}
	for round := 1; round <= 2; round++ {
		getEach(t, q, conns, round)
		settle(round)
	}
}

// An idle HTTP/2 connection keeps no per-stream storage (issue 16, W5):
// once its streams are over and their events taken, the HPACK encoder (its
// table, its cached block), the Framer (its buffers), the stream maps, the held-bytes map and holds, the header decoding buffer
// and the settings timers are gone, made again by the next stream, whose
// headers the server must decode as the first's.
func TestIdleH2KeepsNoStreamState(t *testing.T) {
	q := newQueue(t)
	c := openTo(t, q, srv.HTTPPort(), `{"protocols":["http2"],"retry":0}`)
	if _, err := c.AwaitUp(waitFor); err != nil {
		t.Fatal(err)
	}
	for round := 1; round <= 3; round++ {
		// The same header each round: indexed by the first encoder, then
		// by each new one while the server's table still holds the old
		// entries (and is told to drop them).
		ref := get(t, c, "/headers", Header{"x-idle", "the same value"}, Header{"x-round", strconv.Itoa(round)})
		got := headersReply(t, ok200(t, q, ref)).Headers
		if v := got["x-idle"]; len(v) != 1 || v[0] != "the same value" {
			t.Fatalf("round %d: the server got x-idle %q", round, v)
		}
		if v := got["x-round"]; len(v) != 1 || v[0] != strconv.Itoa(round) {
			t.Fatalf("round %d: the server got x-round %q", round, v)
		}
		c.mu.Lock()
		h := c.proto.(*h2conn)
		var kept []string
		for name, v := range map[string]bool{"encoder": h.enc != nil, "encoded block cache": h.ec != nil, "framer": h.fr != nil, "streams": h.streams != nil, "refs": h.refs != nil,
			"lingerHeld": h.lingerHeld != nil, "holds": h.holds != nil, "userPings": h.userPings != nil, "dFields": h.dFields != nil,
			"prefaceT": h.prefaceT != nil, "settingsT": h.settingsT != nil} {
			if v {
				kept = append(kept, name)
			}
		}
		c.mu.Unlock()
		if len(kept) > 0 {
			t.Fatalf("round %d: the idle connection keeps %v", round, kept)
		}
	}
}

// The readiness peek of an idle connection's reader makes no garbage
// beyond its callback (issue 16, W5: unix.Recvfrom allocated a sockaddr and
// converted it on every wait, about 600 bytes per connection set up), and
// still reports bytes, then the peer's reset as the read's error.
func TestWaitReadableAllocs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cl, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	sv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sv.Close()
	if _, err := sv.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	rc := idleWaitable(cl)
	if err := waitReadable(rc); err != nil { // the byte is there (the peek leaves it)
		t.Fatal(err)
	}
	if a := testing.AllocsPerRun(100, func() { waitReadable(rc) }); a > 2 {
		t.Fatalf("%.0f allocations per wait, want at most 2", a)
	}
	b := make([]byte, 2)
	if n, err := cl.Read(b); n != 1 || err != nil {
		t.Fatalf("read %d %v after the peeks, want the 1 byte", n, err)
	}
	sv.(*net.TCPConn).SetLinger(0)
	sv.Close() // RST
	if err := waitReadable(rc); err == nil || !strings.Contains(err.Error(), "reset") {
		t.Fatalf("after the peer's reset: %v, want connection reset", err)
	}
}

// goroutinesIn counts the goroutines with fn in their stack.
func goroutinesIn(fn string) int {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return bytes.Count(buf, []byte(fn))
}

// connGoroutines counts the goroutines running a connection's code (a
// method of core.Conn in their stack).
func connGoroutines() int {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("core.(*Conn).")) {
			n++
		}
	}
	return n
}

// parked: c's reader is parked in the idle poller (idlepoll.go).
func parked(c *Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.park != nil && c.park != parkWoken
}

// An idle connection holds no goroutine at all (issue 16, W5): its reader
// parks, the goroutine ends, and the socket waits in the process's one idle
// poller, which starts a reader when it is readable. 100 idle h2c
// connections after a GET each: all parked, and fewer than 50 goroutines
// run connection code in the whole process (before the poller, a fresh
// goroutine waited in parkIdle for each: 100 or more). A second GET on each
// is served (the poller starts the reader that takes the response) and
// they park again; then half are closed and half shut down while parked,
// and every one exits (TestMain's leak check: the poller's goroutine ends
// too once none is parked).
func TestIdleConnsHoldNoGoroutine(t *testing.T) {
	const n = 100
	q := newQueue(t)
	conns := upH2c(t, q, n)
	for round := 1; round <= 2; round++ {
		getEach(t, q, conns, round)
		count := func() (p, g int) {
			for _, c := range conns {
				if parked(c) {
					p++
				}
			}
			return p, connGoroutines()
		}
		p, g := count()
		for deadline := time.Now().Add(waitFor); (p < n || g >= n/2) && time.Now().Before(deadline); p, g = count() {
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("round %d: %d of %d idle connections parked, %d goroutines in connection code", round, p, n, g)
		if p < n || g >= n/2 {
			t.Fatalf("round %d: %d of %d idle connections parked, %d goroutines in connection code; want all parked, fewer than %d goroutines", round, p, n, g, n/2)
		}
	}
	for i, c := range conns {
		if i%2 == 0 {
			c.Close()
		} else if err := c.Shutdown(); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range conns {
		select {
		case <-c.Done():
		case <-time.After(waitFor):
			t.Fatal("a parked connection did not exit after Close or Shutdown")
		}
	}
}

// After a spell of many streams at once, an idle HTTP/2 connection keeps
// its per-stream state and its reader (a connection refilled by the host in
// bursts would otherwise make them all again every burst); after a light
// spell it lets them go again.
func TestBusyH2KeepsStreamState(t *testing.T) {
	q := newQueue(t)
	c := openTo(t, q, srv.HTTPPort(), `{"protocols":["http2"],"retry":0}`)
	if _, err := c.AwaitUp(waitFor); err != nil {
		t.Fatal(err)
	}
	state := func() (enc, maps, busy bool) {
		c.mu.Lock()
		defer c.mu.Unlock()
		h := c.proto.(*h2conn)
		return h.enc != nil, h.streams != nil, h.busy
	}
	// 20 streamed bodies to /echo: all 20 streams open at once until the
	// bodies end.
	const n = 20
	refs := make([]uint64, n)
	for i := range refs {
		refs[i] = do(t, c, &Request{Method: "POST", Path: "/echo", Stream: true})
	}
	for _, ref := range refs {
		if err := c.Data(ref, []byte("x"), true); err != nil {
			t.Fatal(err)
		}
	}
	for ended := 0; ended < n; {
		ev := next(t, q)
		if ev.Kind == EvError {
			t.Fatalf("unexpected %s", evString(ev))
		}
		if ev.Fin {
			ended++
		}
	}
	if enc, maps, busy := state(); !enc || !maps || !busy {
		t.Fatalf("after %d streams at once: encoder kept %v, maps kept %v, busy %v; want all kept", n, enc, maps, busy)
	}
	ok200(t, q, get(t, c, "/bytes/100"))
	if enc, maps, busy := state(); enc || maps || busy {
		t.Fatalf("after a light spell: encoder kept %v, maps kept %v, busy %v; want none", enc, maps, busy)
	}
}

// getEach makes one GET /bytes/100 on each connection and takes the
// answers: 100 bytes each, no error.
func getEach(t *testing.T, q *Queue, conns []*Conn, round int) {
	t.Helper()
	body := map[uint64]int{}
	for _, c := range conns {
		body[get(t, c, "/bytes/100")] = 0
	}
	for ended := 0; ended < len(conns); {
		ev := next(t, q)
		if _, ok := body[ev.Ref]; !ok || ev.Kind == EvError {
			t.Fatalf("round %d: unexpected %s", round, evString(ev))
		}
		body[ev.Ref] += len(ev.Data)
		if ev.Fin {
			if ended++; body[ev.Ref] != 100 {
				t.Fatalf("round %d: stream #%d: %d bytes, want 100", round, ev.Ref, body[ev.Ref])
			}
		}
	}
}

// upH2c opens n h2c connections to the shared server and waits for their UP.
func upH2c(t *testing.T, q *Queue, n int) []*Conn {
	t.Helper()
	conns := make([]*Conn, n)
	for i := range conns {
		conns[i] = openTo(t, q, srv.HTTPPort(), `{"protocols":["http2"],"retry":0}`)
	}
	for _, c := range conns {
		if _, err := c.AwaitUp(waitFor); err != nil {
			t.Fatal(err)
		}
	}
	return conns
}

// waitParked waits until c's reader is parked in the idle poller.
func waitParked(t *testing.T, c *Conn) {
	t.Helper()
	for deadline := time.Now().Add(waitFor); !parked(c); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the idle connection's reader did not park")
		}
	}
}

// A parked connection whose server closes the socket (FIN, then RST) goes
// down at once: the idle poller reports the socket and the reader started
// for it sees the end (issue 16, W5).
func TestParkedConnPeerClose(t *testing.T) {
	for _, reset := range []bool{false, true} {
		q, c, _, sc := h2script(t, "")
		sc.Handshake()
		ref := get(t, c, "/")
		r := sc.ReadRequest()
		sc.Respond(r.StreamID, 204, true)
		if ev := expect(t, q, EvResponse, ref); !ev.Fin {
			t.Fatalf("reset %v: %s, want the whole response", reset, evString(ev))
		}
		waitParked(t, c)
		want := "closed"
		if reset {
			sc.NC.(*net.TCPConn).SetLinger(0)
			sc.Close()
			want = "econnreset"
		} else {
			sc.NC.(*net.TCPConn).CloseWrite() // FIN; closed at the test's end
		}
		evs := waitExit(t, q, c)
		if evs[0].Kind != EvDown || evs[0].Reason != want {
			t.Fatalf("reset %v: first event %s, want DOWN %q", reset, evString(evs[0]), want)
		}
	}
}

// A parked connection's reader is started either by its socket (a
// response came) or by a Close or Shutdown; both at once must leave one
// reader, and every connection exits (under -race: no data race between
// the poller's start and the waker's).
func TestParkedConnRequestAndClose(t *testing.T) {
	const n = 50
	q := newQueue(t)
	conns := upH2c(t, q, n)
	for round := 1; round <= 2; round++ {
		getEach(t, q, conns, round)
		for _, c := range conns {
			waitParked(t, c)
		}
		if round == 1 {
			continue
		}
		var wg sync.WaitGroup
		for i, c := range conns {
			if _, err := c.Request(&Request{Method: "GET", Path: "/bytes/100"}); err != nil {
				t.Fatal(err)
			}
			wg.Go(func() {
				if i%2 == 0 {
					c.Close()
				} else {
					c.Shutdown()
				}
			})
		}
		wg.Wait()
	}
	for _, c := range conns {
		select {
		case <-c.Done():
		case <-time.After(waitFor):
			t.Fatal("a connection closed while parked did not exit")
		}
	}
}

// The per-connection structures stay in their size classes (issue 16, W5:
// a Conn of 769 bytes takes 896, of 897 takes 1024; each step up is ~128
// bytes more per idle connection, about twice that in RSS). A field added
// past the bound belongs behind a pointer, made when used.
func TestConnSizeClass(t *testing.T) {
	if s := unsafe.Sizeof(Conn{}); s > 768 {
		t.Errorf("Conn is %d bytes, want at most 768", s)
	}
	if s := unsafe.Sizeof(h2conn{}); s > 640 {
		t.Errorf("h2conn is %d bytes, want at most 640", s)
	}
}

// goroutinesCreated is the runtime's count of goroutines ever created.
func goroutinesCreated() uint64 {
	s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// A connection's first output (the preface, its settings and the request
// made before it was up) goes out without a writer goroutine (issue 16, W5:
// with thousands of connections set up at once, each goroutine alive at the
// same time as the others leaves its g in the runtime for good). 100 h2c
// connections to a server that accepts and reads nothing, a GET made on
// each before it is up: once every byte is out, fewer than 1.5 goroutines
// were created per connection (the connection's own, and no writer; 2 or
// more before).
func TestSetupStartsNoWriter(t *testing.T) {
	const n = 100
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan []net.Conn)
	go func() {
		var held []net.Conn
		for {
			nc, err := ln.Accept()
			if err != nil {
				accepted <- held
				return
			}
			held = append(held, nc)
		}
	}()
	defer func() {
		ln.Close()
		for _, nc := range <-accepted {
			nc.Close()
		}
	}()
	q := newQueue(t)
	port := ln.Addr().(*net.TCPAddr).Port
	before := goroutinesCreated()
	conns := make([]*Conn, n)
	for i := range conns {
		conns[i] = openTo(t, q, port, `{"protocols":["http2"],"retry":0}`)
		if _, err := conns[i].Request(&Request{Method: "GET", Path: "/"}); err != nil {
			t.Fatal(err)
		}
	}
	out := func(c *Conn) bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.wq > 0 && c.wsent == c.wq && c.wrun == nil
	}
	for _, c := range conns {
		for deadline := time.Now().Add(waitFor); !out(c); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("a connection's first output did not go out")
			}
		}
	}
	created := goroutinesCreated() - before
	t.Logf("%d goroutines created for %d connections set up", created, n)
	if created >= n*3/2 {
		t.Fatalf("%d goroutines created for %d connections set up, want fewer than %d (a writer goroutine each?)", created, n, n*3/2)
	}
	for _, c := range conns {
		c.Close()
	}
}

// A first output larger than the socket takes at once (an 8 MiB body made
// before the connection was up, over HTTP/1.1) goes out in part from the
// reader's goroutine and the rest from a writer, in order: the server
// echoes every byte.
func TestFirstOutputLargerThanSocket(t *testing.T) {
	q := newQueue(t)
	c := openTo(t, q, srv.HTTPPort(), `{"protocols":["http"],"retry":0}`)
	body := make([]byte, 8<<20)
	for i := range body {
		body[i] = byte(i * 7)
	}
	ref := do(t, c, &Request{Method: "POST", Path: "/echo", Body: body})
	if ev := next(t, q); ev.Kind != EvUp {
		t.Fatalf("%s, want UP", evString(ev))
	}
	if got := ok200(t, q, ref); !bytes.Equal(got, body) {
		t.Fatalf("echo of %d bytes: %d back, equal %v", len(body), len(got), bytes.Equal(got, body))
	}
}

// A connection over a Unix socket parks as a TCP one does: between two
// GETs its reader waits in the idle poller, and the second GET is served.
func TestParkedUnixConn(t *testing.T) {
	q := newQueue(t)
	c, err := OpenUnix(srv.UnixPath(), parseOpts(t, `{"protocols":["http2"],"retry":0}`, 0), q, nil)
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, c)
	h2awaitUp(t, c)
	for round := 1; round <= 2; round++ {
		if got := ok200(t, q, get(t, c, "/bytes/100")); len(got) != 100 {
			t.Fatalf("round %d: %d bytes, want 100", round, len(got))
		}
		waitParked(t, c)
	}
}
