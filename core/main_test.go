package core

// Shared fixtures of core's tests: one test server (gunmetal/tests/testserver)
// on 127.0.0.1 and a Unix socket for the whole run, a raw TCP server for the
// cases the HTTP server cannot show (what bytes reached the wire, when each
// connection attempt happened), event helpers, and the goroutine leak check
// in TestMain.
//
// Rules kept throughout: wait on events with generous timeouts (a loaded
// 2-core machine under -race is slow), never sleep to wait for something
// that produces an event, sleep only to prove an absence.

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gunmetal/tests/testserver"
)

// waitFor bounds every wait for something that must happen.
const waitFor = 10 * time.Second

// srv is the test server shared by the tests that don't stop or kill it.
var srv *testserver.Server

func TestMain(m *testing.M) {
	baseline := runtime.NumGoroutine()
	dir, err := os.MkdirTemp("", "gmcore") // short: unix socket paths max out at 108 bytes
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv, err = testserver.Start(testserver.Config{Unix: filepath.Join(dir, "s.sock")})
	if err != nil {
		fmt.Fprintln(os.Stderr, "test server:", err)
		os.Exit(1)
	}
	code := m.Run()
	srv.Close()
	os.RemoveAll(dir)

	// Leak check: every connection, its goroutines and the servers' are gone.
	// Not when fuzzing: the fuzzing engine keeps goroutines of its own.
	if f := flag.Lookup("test.fuzz"); code == 0 && (f == nil || f.Value.String() == "") {
		n := runtime.NumGoroutine()
		for deadline := time.Now().Add(waitFor); n > baseline && time.Now().Before(deadline); n = runtime.NumGoroutine() {
			time.Sleep(20 * time.Millisecond)
		}
		if n > baseline {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			fmt.Fprintf(os.Stderr, "goroutine leak: %d goroutines after the tests, %d before\n%s\n", n, baseline, buf)
			code = 1
		} else if testing.Verbose() {
			fmt.Fprintf(os.Stderr, "leak check: %d goroutines after the tests, %d before\n", n, baseline)
		}
	}
	os.Exit(code)
}

// ---- fixtures ----

func newQueue(t testing.TB) *Queue {
	t.Helper()
	q, err := NewQueue()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q.Free)
	return q
}

func parseOpts(t testing.TB, js string, port int) *Options {
	t.Helper()
	o, err := ParseOptions([]byte(js), port)
	if err != nil {
		t.Fatalf("options %s: %v", js, err)
	}
	return o
}

// closeOnCleanup closes c when the test ends and checks that it exits.
func closeOnCleanup(t testing.TB, c *Conn) {
	t.Cleanup(func() {
		c.Close()
		select {
		case <-c.Done():
		case <-time.After(waitFor):
			t.Errorf("connection did not exit within %v of Close", waitFor)
		}
	})
}

// openTo opens a connection to 127.0.0.1:port with the options js.
func openTo(t testing.TB, q *Queue, port int, js string) *Conn {
	t.Helper()
	c, err := Open("127.0.0.1", port, parseOpts(t, js, port), q, nil)
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, c)
	return c
}

// up opens a connection to the shared server and waits for its UP.
func up(t testing.TB, q *Queue, js string) *Conn {
	t.Helper()
	c := openTo(t, q, srv.HTTPPort(), js)
	awaitUp(t, c)
	return c
}

func awaitUp(t testing.TB, c *Conn) {
	t.Helper()
	p, err := c.AwaitUp(waitFor)
	if err != nil {
		t.Fatalf("await up: %v", err)
	}
	if p != "http" {
		t.Fatalf("UP protocol %q, want http", p)
	}
}

func startServer(t testing.TB) *testserver.Server {
	t.Helper()
	s, err := testserver.Start(testserver.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func get(t testing.TB, c *Conn, path string, hs ...Header) uint64 {
	t.Helper()
	return do(t, c, &Request{Method: "GET", Path: path, Headers: hs})
}

func do(t testing.TB, c *Conn, r *Request) uint64 {
	t.Helper()
	ref, err := c.Request(r)
	if err != nil {
		t.Fatalf("request %s %s: %v", r.Method, r.Path, err)
	}
	if ref == 0 {
		t.Fatalf("request %s %s: ref 0", r.Method, r.Path)
	}
	return ref
}

// next takes the queue's next event, failing the test when none comes.
func next(t testing.TB, q *Queue) *Event {
	t.Helper()
	var out [1]*Event
	deadline := time.Now().Add(waitFor)
	for {
		n, err := q.Poll(out[:], time.Until(deadline))
		if err != nil {
			t.Fatalf("poll: %v", err)
		}
		if n == 1 {
			return out[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no event within %v", waitFor)
		}
	}
}

// nextOf takes the next event of conn c, failing on an event of another.
func nextOf(t testing.TB, q *Queue, c *Conn) *Event {
	t.Helper()
	ev := next(t, q)
	if ev.Conn != c {
		t.Fatalf("event %s of another connection", evString(ev))
	}
	return ev
}

// expect takes the next event and checks its kind (and ref, when non-zero).
func expect(t testing.TB, q *Queue, kind EventKind, ref uint64) *Event {
	t.Helper()
	ev := next(t, q)
	if ev.Kind != kind || (ref != 0 && ev.Ref != ref) {
		t.Fatalf("got %s, want %s #%d", evString(ev), kind, ref)
	}
	return ev
}

// noEvent proves an absence: nothing arrives on q within d.
func noEvent(t testing.TB, q *Queue, d time.Duration) {
	t.Helper()
	var out [1]*Event
	if n, _ := q.Poll(out[:], d); n > 0 {
		t.Fatalf("unexpected event %s", evString(out[0]))
	}
}

// waitExit takes events of c until its EXIT and returns them, EXIT last.
func waitExit(t testing.TB, q *Queue, c *Conn) []*Event {
	t.Helper()
	var evs []*Event
	for {
		ev := nextOf(t, q, c)
		evs = append(evs, ev)
		if ev.Kind == EvExit {
			return evs
		}
	}
}

// response is one stream's events gathered.
type response struct {
	informs  []*Event
	resp     *Event
	data     []byte
	ndata    int // DATA events
	trailers []Header
	err      *Event
	fin      bool
}

// readStream takes the events of stream ref from q until the stream ends,
// failing on an event of another stream.
func readStream(t testing.TB, q *Queue, ref uint64) *response {
	t.Helper()
	r := &response{}
	for !r.fin {
		ev := next(t, q)
		if ev.Ref != ref {
			t.Fatalf("stream #%d: unexpected %s", ref, evString(ev))
		}
		switch ev.Kind {
		case EvInform:
			if r.resp != nil {
				t.Fatalf("stream #%d: INFORM after RESPONSE", ref)
			}
			r.informs = append(r.informs, ev)
		case EvResponse:
			if r.resp != nil {
				t.Fatalf("stream #%d: two RESPONSEs", ref)
			}
			r.resp = ev
			r.fin = ev.Fin
		case EvData:
			if r.resp == nil {
				t.Fatalf("stream #%d: DATA before RESPONSE", ref)
			}
			r.data = append(r.data, ev.Data...)
			r.ndata++
			r.fin = ev.Fin
		case EvTrailers:
			r.trailers = ev.Headers
			r.fin = true
		case EvError:
			r.err = ev
			r.fin = true
		default:
			t.Fatalf("stream #%d: unexpected %s", ref, evString(ev))
		}
	}
	return r
}

// ok200 reads a stream that must end in a 200 without error; it returns the body.
func ok200(t testing.TB, q *Queue, ref uint64) []byte {
	t.Helper()
	r := readStream(t, q, ref)
	if r.err != nil {
		t.Fatalf("stream #%d: %s", ref, evString(r.err))
	}
	if r.resp.Status != 200 {
		t.Fatalf("stream #%d: status %d, body %q", ref, r.resp.Status, r.data)
	}
	return r.data
}

// headersReply decodes a /headers body.
func headersReply(t testing.TB, body []byte) testserver.HeadersReply {
	t.Helper()
	var h testserver.HeadersReply
	if err := json.Unmarshal(body, &h); err != nil {
		t.Fatalf("/headers body %q: %v", body, err)
	}
	return h
}

func header(hs []Header, name string) (string, bool) {
	for _, h := range hs {
		if h.Name == name {
			return h.Value, true
		}
	}
	return "", false
}

// pattern is the test server's body: 'a' + i%26 from offset off.
func checkPattern(t testing.TB, off int64, b []byte) {
	t.Helper()
	for i, x := range b {
		if want := byte('a' + (off+int64(i))%26); x != want {
			t.Fatalf("body byte %d is %q, want %q", off+int64(i), x, want)
		}
	}
}

func evString(ev *Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s", ev.Kind)
	if ev.Ref != 0 {
		fmt.Fprintf(&b, " #%d", ev.Ref)
	}
	if ev.Kind == EvResponse || ev.Kind == EvData {
		if ev.Fin {
			b.WriteString(" fin")
		} else {
			b.WriteString(" nofin")
		}
	}
	if ev.Status != 0 {
		fmt.Fprintf(&b, " %d", ev.Status)
	}
	if ev.Protocol != "" {
		fmt.Fprintf(&b, " %s", ev.Protocol)
	}
	if ev.Reason != "" {
		fmt.Fprintf(&b, " %q", ev.Reason)
	}
	if len(ev.Data) > 0 {
		fmt.Fprintf(&b, " %d bytes", len(ev.Data))
	}
	if ev.Kind == EvDown {
		fmt.Fprintf(&b, " killed %v", ev.Killed)
	}
	return b.String()
}

func hasReason(ev *Event, prefix string) bool { return strings.HasPrefix(ev.Reason, prefix) }

// ---- a raw TCP server ----

// rawServer accepts on 127.0.0.1 and hands each connection to handle. It
// records when each connection was accepted.
type rawServer struct {
	ln     net.Listener
	handle func(net.Conn)
	wg     sync.WaitGroup

	mu      sync.Mutex
	accepts []time.Time
	conns   []net.Conn
}

func startRaw(t testing.TB, handle func(net.Conn)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln, handle: handle}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.accepts = append(s.accepts, time.Now())
			s.conns = append(s.conns, nc)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.handle(nc)
			}()
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *rawServer) port() int { return s.ln.Addr().(*net.TCPAddr).Port }

func (s *rawServer) acceptTimes() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.accepts)
}

func (s *rawServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// readRequest reads one request head (through the empty line) from nc.
func readRequest(nc net.Conn) ([]byte, error) {
	var got []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(got, []byte("\r\n\r\n")) {
		n, err := nc.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			return got, err
		}
	}
	return got, nil
}
