package core

// HTTP/1.1 against the test server: pipelining, bodies of every framing,
// streamed request bodies, 1xx, trailers, HTTP/1.0, cancel, flow, limits,
// flat memory with a fast and with a stalled consumer, and validation.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPipelining100: 100 GETs written at once on one connection are
// answered in order.
func TestPipelining100(t *testing.T) {
	q := newQueue(t)
	s := startServer(t) // its own, to count its connections
	c := openTo(t, q, s.HTTPPort(), `{}`)
	awaitUp(t, c)
	refs := make([]uint64, 100)
	for i := range refs {
		refs[i] = get(t, c, fmt.Sprintf("/headers?i=%d", i))
	}
	var addr string
	for i, ref := range refs {
		// Each stream's events come whole and in request order.
		h := headersReply(t, ok200(t, q, ref))
		if h.Query != fmt.Sprintf("i=%d", i) {
			t.Fatalf("response %d answers %q", i, h.Query)
		}
		if addr == "" {
			addr = h.RemoteAddr
		} else if h.RemoteAddr != addr {
			t.Fatalf("response %d from %s, earlier ones from %s", i, h.RemoteAddr, addr)
		}
	}
	if n := s.Accepted(); n != 1 {
		t.Fatalf("%d connections for 100 pipelined requests, want 1", n)
	}
}

func heapInUse() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// heapBound: the connection's read budget is 16 MiB of unconsumed events;
// with the GC's headroom (GOGC=100) the heap stays well under this.
const heapBound = 64 << 20

// TestBigBodyFlatMemory: a 100 MiB body streamed through events while the
// heap stays small.
func TestBigBodyFlatMemory(t *testing.T) {
	const size = 100 << 20
	q := newQueue(t)
	c := up(t, q, `{}`)
	runtime.GC()
	ref := get(t, c, "/bytes/"+strconv.Itoa(size))
	out := make([]*Event, 64)
	var got int64
	var maxHeap uint64
	sampled := 0
	fin := false
	deadline := time.Now().Add(60 * time.Second)
	for !fin {
		n, err := q.Poll(out, time.Until(deadline))
		if err != nil || (n == 0 && time.Now().After(deadline)) {
			t.Fatalf("stalled after %d bytes: %v", got, err)
		}
		for _, ev := range out[:n] {
			switch {
			case ev.Ref != ref:
				t.Fatalf("unexpected %s", evString(ev))
			case ev.Kind == EvResponse:
				if ev.Status != 200 || ev.Fin {
					t.Fatalf("response %s", evString(ev))
				}
			case ev.Kind == EvData:
				if got < 1<<20 || ev.Fin { // spot-check the content
					checkPattern(t, got, ev.Data)
				}
				got += int64(len(ev.Data))
				fin = ev.Fin
			default:
				t.Fatalf("unexpected %s", evString(ev))
			}
		}
		if sampled++; sampled%32 == 0 {
			maxHeap = max(maxHeap, heapInUse())
		}
	}
	maxHeap = max(maxHeap, heapInUse())
	if got != size {
		t.Fatalf("got %d bytes, want %d", got, size)
	}
	t.Logf("100 MiB: heap in use peaked at %.1f MiB", float64(maxHeap)/(1<<20))
	if maxHeap > heapBound {
		t.Fatalf("heap in use reached %d MiB streaming 100 MiB", maxHeap>>20)
	}
}

// pendingBytes is what q holds of body data.
func pendingBytes(q *Queue) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, ev := range q.events[q.head:] {
		n += len(ev.Data)
	}
	return n
}

// TestSlowConsumerBounded: a host that stops polling stops the socket
// reads once the read budget is used up; memory stays bounded, and the
// stream resumes intact when the host polls again.
func TestSlowConsumerBounded(t *testing.T) {
	const size = 96 << 20
	q := newQueue(t)
	c := up(t, q, `{}`)
	runtime.GC()
	ref := get(t, c, "/bytes/"+strconv.Itoa(size))
	// Wait (without polling) until the budget is used up: the events'
	// bytes plus a per-event overhead pass readBudget.
	budget := func() int {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.budget
	}
	for deadline := time.Now().Add(30 * time.Second); budget() <= readBudget; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d bytes queued after 30s (budget %d)", pendingBytes(q), budget())
		}
	}
	// Then prove that it stays there: the reader is parked.
	time.Sleep(500 * time.Millisecond)
	p1 := pendingBytes(q)
	time.Sleep(500 * time.Millisecond)
	p2 := pendingBytes(q)
	heap := heapInUse()
	t.Logf("stalled: %.1f MiB queued, heap in use %.1f MiB", float64(p2)/(1<<20), float64(heap)/(1<<20))
	if p2 != p1 {
		t.Fatalf("the queue kept growing while the host did not poll: %d → %d bytes", p1, p2)
	}
	if p2 > readBudget+256<<10 || p2 < readBudget/2 {
		t.Fatalf("%d bytes queued, more than the read budget (%d) allows", p2, readBudget)
	}
	if heap > heapBound {
		t.Fatalf("heap in use %d MiB with a stalled consumer", heap>>20)
	}
	// Resume: everything arrives, in order.
	var got int64
	out := make([]*Event, 128)
	for fin := false; !fin; {
		n, err := q.Poll(out, waitFor)
		if err != nil || n == 0 {
			t.Fatalf("stalled after %d bytes: %v", got, err)
		}
		for _, ev := range out[:n] {
			if ev.Ref != ref {
				t.Fatalf("unexpected %s", evString(ev))
			}
			if ev.Kind == EvData {
				if got < 64<<10 || ev.Fin {
					checkPattern(t, got, ev.Data)
				}
				got += int64(len(ev.Data))
				fin = ev.Fin
			}
		}
	}
	if got != size {
		t.Fatalf("got %d bytes, want %d", got, size)
	}
	if b := budget(); b != 0 {
		t.Fatalf("read budget %d after every event was taken, want 0", b)
	}
}

func TestBodies(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{}`)

	// Content-Length.
	r := readStream(t, q, get(t, c, "/bytes/100000"))
	if v, _ := header(r.resp.Headers, "content-length"); v != "100000" || len(r.data) != 100000 {
		t.Fatalf("content-length %q, %d bytes", v, len(r.data))
	}
	checkPattern(t, 0, r.data)

	// Chunked.
	r = readStream(t, q, get(t, c, "/chunked/5000?chunk=1000"))
	if v, _ := header(r.resp.Headers, "transfer-encoding"); v != "chunked" || len(r.data) != 5000 {
		t.Fatalf("transfer-encoding %q, %d bytes", v, len(r.data))
	}
	checkPattern(t, 0, r.data)

	// Empty bodies: HEAD, 204, 304 end with the RESPONSE (fin), and the
	// connection stays in step: the next response is intact.
	for _, tc := range []struct {
		method, path string
		status       int
	}{{"HEAD", "/bytes/100", 200}, {"GET", "/status/204", 204}, {"GET", "/status/304", 304}, {"HEAD", "/chunked/100", 200}} {
		ref := do(t, c, &Request{Method: tc.method, Path: tc.path})
		ev := expect(t, q, EvResponse, ref)
		if ev.Status != tc.status || !ev.Fin {
			t.Fatalf("%s %s: %s, want %d fin", tc.method, tc.path, evString(ev), tc.status)
		}
	}
	if b := ok200(t, q, get(t, c, "/bytes/7")); string(b) != "abcdefg" {
		t.Fatalf("body after the empty ones %q", b)
	}
	// Empty 200 with content-length 0: RESPONSE fin.
	if ev := expect(t, q, EvResponse, get(t, c, "/bytes/0")); !ev.Fin {
		t.Fatalf("/bytes/0: %s, want fin", evString(ev))
	}
	// Response header names arrive lower-cased.
	r = readStream(t, q, get(t, c, "/bytes/1"))
	for _, h := range r.resp.Headers {
		if h.Name != strings.ToLower(h.Name) {
			t.Fatalf("header name %q not lower-cased", h.Name)
		}
	}
}

func TestInformAndTrailers(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{}`)
	r := readStream(t, q, get(t, c, "/inform/3"))
	if len(r.informs) != 3 {
		t.Fatalf("%d INFORM events, want 3", len(r.informs))
	}
	for _, ev := range r.informs {
		if ev.Status != 103 {
			t.Fatalf("INFORM status %d", ev.Status)
		}
		if v, _ := header(ev.Headers, "link"); !strings.Contains(v, "style.css") {
			t.Fatalf("INFORM headers %v", ev.Headers)
		}
	}
	if r.resp.Status != 200 || string(r.data) != "ok" {
		t.Fatalf("final response %d %q", r.resp.Status, r.data)
	}
	// Up to max_informational_responses (32) 1xx per request pass
	// (tests/hostile shows what happens past it).
	if r := readStream(t, q, get(t, c, "/inform/32?code=102")); len(r.informs) != 32 || r.resp.Status != 200 {
		t.Fatalf("%d informs", len(r.informs))
	}

	ref := get(t, c, "/trailers")
	r = readStream(t, q, ref)
	if string(r.data) != "hello trailers" || r.trailers == nil {
		t.Fatalf("body %q trailers %v", r.data, r.trailers)
	}
	if v, _ := header(r.trailers, "x-checksum"); v != "abc123" {
		t.Fatalf("trailers %v", r.trailers)
	}
	if v, _ := header(r.trailers, "x-trailer-two"); v != "2" {
		t.Fatalf("trailers %v", r.trailers)
	}
	// AwaitBody gathers the same.
	b, err := c.AwaitBody(get(t, c, "/trailers"), waitFor)
	if err != nil || b.Status != 200 || string(b.Data) != "hello trailers" || len(b.Trailers) != 2 {
		t.Fatalf("AwaitBody %+v, %v", b, err)
	}
}

// TestStreamedRequestBody: headers first, then Data pieces; chunked without
// a content-length, identity with one. /echo sends back what arrived.
func TestStreamedRequestBody(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{}`)

	ref := do(t, c, &Request{Method: "POST", Path: "/echo", Stream: true})
	for _, p := range []string{"hello", "", " ", "world"} {
		// The empty nofin piece is ignored: as a chunk it would end the body.
		if err := c.Data(ref, []byte(p), false); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Data(ref, []byte("!"), true); err != nil {
		t.Fatal(err)
	}
	r := readStream(t, q, ref)
	if string(r.data) != "hello world!" {
		t.Fatalf("echo %q", r.data)
	}
	if v, _ := header(r.resp.Headers, "x-transfer-encoding"); v != "chunked" {
		t.Fatalf("the server saw transfer-encoding %q, want chunked", v)
	}

	ref = do(t, c, &Request{Method: "PUT", Path: "/echo", Stream: true, Headers: []Header{{"content-length", "10"}}})
	c.Data(ref, []byte("01234"), false)
	c.Data(ref, nil, false)
	c.Data(ref, []byte("56789"), true)
	r = readStream(t, q, ref)
	if string(r.data) != "0123456789" {
		t.Fatalf("echo %q", r.data)
	}
	if v, _ := header(r.resp.Headers, "x-content-length"); v != "10" {
		t.Fatalf("the server saw content-length %q, want 10", v)
	}
	if v, _ := header(r.resp.Headers, "x-transfer-encoding"); v != "" {
		t.Fatalf("the server saw transfer-encoding %q, want identity", v)
	}

	// A fin with nothing else ends a chunked body too; a big body in pieces.
	ref = do(t, c, &Request{Method: "POST", Path: "/echo", Stream: true})
	big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	for off := 0; off < len(big); off += 100000 {
		if err := c.Data(ref, big[off:min(off+100000, len(big))], false); err != nil {
			t.Fatal(err)
		}
	}
	c.Data(ref, nil, true)
	if r := readStream(t, q, ref); !bytes.Equal(r.data, big) {
		t.Fatalf("echo of 1 MiB: %d bytes, equal %v", len(r.data), bytes.Equal(r.data, big))
	}

	// A request body given whole, small and big.
	ref = do(t, c, &Request{Method: "POST", Path: "/echo", Body: big})
	if r := readStream(t, q, ref); !bytes.Equal(r.data, big) {
		t.Fatalf("echo of a whole 1 MiB body: %d bytes", len(r.data))
	}
	ref = do(t, c, &Request{Method: "POST", Path: "/echo", Body: []byte("whole")})
	r = readStream(t, q, ref)
	if string(r.data) != "whole" {
		t.Fatalf("echo %q", r.data)
	}
	if v, _ := header(r.resp.Headers, "x-content-length"); v != "5" {
		t.Fatalf("content-length seen %q", v)
	}

	// Data errors: no such stream; too much for the content-length.
	if err := c.Data(987654321, []byte("x"), true); !errors.Is(err, ErrNoStream) {
		t.Fatalf("Data on an unknown stream: %v", err)
	}
	ref = do(t, c, &Request{Method: "PUT", Path: "/echo", Stream: true, Headers: []Header{{"content-length", "2"}}})
	if err := c.Data(ref, []byte("xyz"), true); !errors.Is(err, ErrBadArg) {
		t.Fatalf("Data past the content-length: %v", err)
	}
	c.Data(ref, []byte("xy"), true)
	if r := readStream(t, q, ref); string(r.data) != "xy" {
		t.Fatalf("echo %q", r.data)
	}
	// A fin that would leave the body short of its content-length is
	// refused before anything is written: the caller can still complete it.
	ref = do(t, c, &Request{Method: "PUT", Path: "/echo", Stream: true, Headers: []Header{{"content-length", "10"}}})
	if err := c.Data(ref, []byte("abc"), true); !errors.Is(err, ErrBadArg) {
		t.Fatalf("Data ending short of the content-length: %v", err)
	}
	if err := c.Data(ref, nil, true); !errors.Is(err, ErrBadArg) {
		t.Fatalf("bare fin short of the content-length: %v", err)
	}
	if err := c.Data(ref, []byte("abc"), false); err != nil {
		t.Fatal(err)
	}
	if err := c.Data(ref, []byte("defghij"), true); err != nil {
		t.Fatal(err)
	}
	if r := readStream(t, q, ref); string(r.data) != "abcdefghij" {
		t.Fatalf("echo %q", r.data)
	}
	// A request made while a body streams waits for its fin, then goes.
	ref = do(t, c, &Request{Method: "POST", Path: "/echo", Stream: true})
	after := get(t, c, "/bytes/2")
	if err := c.Data(after, []byte("x"), true); !errors.Is(err, ErrBadState) {
		t.Fatalf("Data on a request waiting behind a streamed body: %v", err)
	}
	c.Data(ref, []byte("first"), true)
	if r := readStream(t, q, ref); string(r.data) != "first" {
		t.Fatalf("echo %q", r.data)
	}
	if b := ok200(t, q, after); string(b) != "ab" {
		t.Fatalf("body %q", b)
	}
}

func TestHTTP10(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{"http_opts":{"version":"HTTP/1.0"}}`)
	h := headersReply(t, ok200(t, q, get(t, c, "/headers")))
	if h.Proto != "HTTP/1.0" {
		t.Fatalf("server saw %s", h.Proto)
	}
	// HTTP/1.0 without keep-alive: the server closes after the response.
	if ev := expect(t, q, EvDown, 0); len(ev.Killed) != 0 {
		t.Fatalf("DOWN %s", evString(ev))
	}
	expect(t, q, EvUp, 0)
	// An HTTP/1.0 request body must have a length.
	ref := do(t, c, &Request{Method: "POST", Path: "/echo", Stream: true})
	if ev := expect(t, q, EvError, ref); !strings.Contains(ev.Reason, "content-length") {
		t.Fatalf("reason %q", ev.Reason)
	}

	// Requests made together are not pipelined into a connection that will
	// close: each waits for its own connection, and all are answered.
	var refs []uint64
	for i := 0; i < 3; i++ {
		refs = append(refs, get(t, c, "/bytes/10"))
	}
	for _, ref := range refs {
		// AwaitBody: the DOWN and UP between them stay queued.
		if b, err := c.AwaitBody(ref, 5*time.Second); err != nil || b.Status != 200 || len(b.Data) != 10 {
			t.Fatalf("stream %d: %v %+v", ref, err, b)
		}
	}

	// An HTTP/1.0 response to an HTTP/1.1 client.
	q2 := newQueue(t)
	c2 := up(t, q2, `{}`)
	if b := ok200(t, q2, get(t, c2, "/http10")); string(b) != "ok" {
		t.Fatalf("body %q", b)
	}
	if ev := expect(t, q2, EvDown, 0); len(ev.Killed) != 0 {
		t.Fatalf("DOWN %s", evString(ev))
	}
}

// TestCloseDelimitedBody: /nolength has neither content-length nor
// chunking: the body ends when the server closes; the stream completes
// (fin), it is not killed.
func TestCloseDelimitedBody(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{}`)
	ref := get(t, c, "/nolength?size=200000")
	r := readStream(t, q, ref)
	if r.err != nil || len(r.data) != 200000 {
		t.Fatalf("err %v, %d bytes", r.err, len(r.data))
	}
	checkPattern(t, 0, r.data)
	down := expect(t, q, EvDown, 0)
	if len(down.Killed) != 0 || (down.Reason != "closed" && down.Reason != "normal") {
		t.Fatalf("DOWN %s, want closed/normal with nothing killed", evString(down))
	}
	expect(t, q, EvUp, 0)
	ok200(t, q, get(t, c, "/bytes/1"))
}

// TestCloseDuringCloseDelimitedBody: Close while a close-delimited body is
// being read must not pass the cut body off as complete.
func TestCloseDuringCloseDelimitedBody(t *testing.T) {
	rs := startRaw(t, func(nc net.Conn) {
		if _, err := readRequest(nc); err != nil {
			return
		}
		io.WriteString(nc, "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\npartial body")
		io.Copy(io.Discard, nc) // hold the connection open
	})
	q := newQueue(t)
	c := openTo(t, q, rs.port(), `{}`)
	awaitUp(t, c)
	ref := get(t, c, "/")
	expect(t, q, EvResponse, ref)
	if ev := expect(t, q, EvData, ref); ev.Fin || string(ev.Data) != "partial body" {
		t.Fatalf("got %s %q", evString(ev), ev.Data)
	}
	c.Close()
	evs := waitExit(t, q, c)
	if len(evs) != 1 || evs[0].Reason != "shutdown" {
		t.Fatalf("after Close: %s (%d events), want only EXIT shutdown", evString(evs[0]), len(evs))
	}
	// Nor when Shutdown's closing_timeout cuts it.
	c = openTo(t, q, rs.port(), `{"http_opts":{"closing_timeout":100}}`)
	awaitUp(t, c)
	ref = get(t, c, "/")
	expect(t, q, EvResponse, ref)
	expect(t, q, EvData, ref)
	c.Shutdown()
	evs = waitExit(t, q, c)
	if len(evs) != 1 || evs[0].Reason != "shutdown" {
		t.Fatalf("after the closing timeout: %s (%d events), want only EXIT shutdown", evString(evs[0]), len(evs))
	}
}

// TestCancel: a cancelled stream is silent; its response is still read, so
// the connection keeps working, on the same socket.
func TestCancel(t *testing.T) {
	q := newQueue(t)
	s := startServer(t) // its own, to count its connections
	c := openTo(t, q, s.HTTPPort(), `{}`)
	awaitUp(t, c)
	ref := get(t, c, "/slow?chunks=6&delay=50")
	expect(t, q, EvResponse, ref)
	if err := c.Cancel(ref); err != nil {
		t.Fatal(err)
	}
	after := get(t, c, "/bytes/3")
	// Events of the cancelled stream already queued may remain; nothing
	// after them but the next stream's.
	var b []byte
	for {
		ev := next(t, q)
		if ev.Ref == ref {
			if ev.Kind != EvData || ev.Fin {
				t.Fatalf("cancelled stream: %s", evString(ev))
			}
			continue
		}
		if ev.Ref != after {
			t.Fatalf("unexpected %s", evString(ev))
		}
		if ev.Kind == EvData {
			b = append(b, ev.Data...)
			if ev.Fin {
				break
			}
		}
	}
	if string(b) != "abc" {
		t.Fatalf("body after cancel %q", b)
	}
	if n := s.Accepted(); n != 1 {
		t.Fatalf("%d connections: cancel must not close the HTTP/1.1 connection", n)
	}
	// Unknown or finished streams: ignored, as in Gun.
	if err := c.Cancel(ref); err != nil {
		t.Fatalf("cancel of a finished stream: %v", err)
	}
	noEvent(t, q, 100*time.Millisecond)
}

// TestFlow: a stream with flow 1 gets exactly one DATA, then the socket
// pauses until UpdateFlow.
func TestFlow(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{}`)
	ref := do(t, c, &Request{Method: "GET", Path: "/slow?chunks=5&delay=50", Flow: 1})
	expect(t, q, EvResponse, ref)
	first := expect(t, q, EvData, ref)
	if first.Fin || len(first.Data) == 0 {
		t.Fatalf("first DATA %s", evString(first))
	}
	// The server sends the rest within ~200ms; none of it becomes an event.
	noEvent(t, q, 500*time.Millisecond)
	if si, err := c.StreamInfo(ref); err != nil || si.Flow != 0 {
		t.Fatalf("stream info %+v, %v", si, err)
	}
	if err := c.UpdateFlow(ref, 1); err != nil {
		t.Fatal(err)
	}
	second := expect(t, q, EvData, ref)
	noEvent(t, q, 200*time.Millisecond)
	if err := c.UpdateFlow(ref, 0); !errors.Is(err, ErrBadArg) {
		t.Fatalf("UpdateFlow(0): %v", err)
	}
	c.UpdateFlow(ref, 100)
	data := append(append([]byte{}, first.Data...), second.Data...)
	if second.Fin {
		t.Fatal("the body ended after 2 of 5 chunks")
	}
	for {
		ev := expect(t, q, EvData, ref)
		data = append(data, ev.Data...)
		if ev.Fin {
			break
		}
	}
	if len(data) != 50 {
		t.Fatalf("%d bytes, want 50", len(data))
	}
	checkPattern(t, 0, data)
	// The connection-wide default flow (http_opts.flow).
	q2 := newQueue(t)
	c2 := up(t, q2, `{"http_opts":{"flow":1}}`)
	ref = get(t, c2, "/slow?chunks=3&delay=30")
	expect(t, q2, EvResponse, ref)
	expect(t, q2, EvData, ref)
	noEvent(t, q2, 300*time.Millisecond)
	c2.UpdateFlow(ref, 10)
	for ev := expect(t, q2, EvData, ref); !ev.Fin; ev = expect(t, q2, EvData, ref) {
	}
}

// TestHeaderBlockLimit: a response header block past max_header_block_size
// is a connection error naming the limit.
func TestHeaderBlockLimit(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{}`)
	ref := get(t, c, "/big-headers?n=200000")
	ev := expect(t, q, EvError, ref)
	if !strings.Contains(ev.Reason, "max_header_block_size") {
		t.Fatalf("stream error %q does not name max_header_block_size", ev.Reason)
	}
	down := expect(t, q, EvDown, 0)
	if !strings.Contains(down.Reason, "max_header_block_size") || len(down.Killed) != 1 || down.Killed[0] != ref {
		t.Fatalf("DOWN %s", evString(down))
	}
	expect(t, q, EvUp, 0)
	// Within the limit (and within a raised one) it works.
	if b := ok200(t, q, get(t, c, "/big-headers?n=50000")); string(b) != "ok" {
		t.Fatalf("body %q", b)
	}
	q2 := newQueue(t)
	c2 := up(t, q2, `{"http_opts":{"max_header_block_size":300000}}`)
	r := readStream(t, q2, get(t, c2, "/big-headers?n=200000"))
	if v, _ := header(r.resp.Headers, "x-big"); len(v) != 200000 {
		t.Fatalf("x-big of %d bytes", len(v))
	}
}

// TestValidation: bad input is refused before anything is written: the
// server's first bytes are the valid request made afterwards.
func TestValidation(t *testing.T) {
	got := make(chan []byte, 1)
	rs := startRaw(t, func(nc net.Conn) {
		b, _ := readRequest(nc)
		got <- b
		io.WriteString(nc, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
		io.Copy(io.Discard, nc)
	})
	q := newQueue(t)
	c := openTo(t, q, rs.port(), `{}`)
	awaitUp(t, c)
	bad := map[string]*Request{
		"empty method":           {Method: "", Path: "/"},
		"method with space":      {Method: "GE T", Path: "/"},
		"method with CRLF":       {Method: "GET\r\n", Path: "/"},
		"method non-ASCII":       {Method: "GÉT", Path: "/"},
		"empty path":             {Method: "GET", Path: ""},
		"path with CR":           {Method: "GET", Path: "/a\rb"},
		"path with LF":           {Method: "GET", Path: "/a\nb"},
		"path with NUL":          {Method: "GET", Path: "/a\x00b"},
		"path with space":        {Method: "GET", Path: "/a b"},
		"path with tab":          {Method: "GET", Path: "/a\tb"},
		"path not UTF-8":         {Method: "GET", Path: "/\xff"},
		"header name empty":      {Method: "GET", Path: "/", Headers: []Header{{"", "v"}}},
		"header name with space": {Method: "GET", Path: "/", Headers: []Header{{"x y", "v"}}},
		"header name with colon": {Method: "GET", Path: "/", Headers: []Header{{"x:y", "v"}}},
		"header name with CRLF":  {Method: "GET", Path: "/", Headers: []Header{{"x\r\ny", "v"}}},
		"header value with CR":   {Method: "GET", Path: "/", Headers: []Header{{"x", "a\rb"}}},
		"header value with LF":   {Method: "GET", Path: "/", Headers: []Header{{"x", "a\nb"}}},
		"header value with NUL":  {Method: "GET", Path: "/", Headers: []Header{{"x", "a\x00b"}}},
		"header value injection": {Method: "GET", Path: "/", Headers: []Header{{"x", "a\r\nevil: 1"}}},
		"stream with a body":     {Method: "POST", Path: "/", Stream: true, Body: []byte("x")},
		"negative timeout":       {Method: "GET", Path: "/", Timeout: -1},
		"negative flow":          {Method: "GET", Path: "/", Flow: -1},
	}
	for name, r := range bad {
		ref, err := c.Request(r)
		if !errors.Is(err, ErrBadArg) || ref != 0 {
			t.Errorf("%s: ref %d, err %v; want ErrBadArg", name, ref, err)
			continue
		}
		if len(err.Error()) < len("invalid argument: x") {
			t.Errorf("%s: error %q says nothing", name, err)
		}
	}
	if _, err := c.Request(nil); !errors.Is(err, ErrBadArg) {
		t.Errorf("nil request: %v", err)
	}
	if q.Len() != 0 {
		t.Fatalf("refused requests queued %d events", q.Len())
	}
	ok := get(t, c, "/ok")
	var b []byte
	select {
	case b = <-got:
	case <-time.After(waitFor):
		t.Fatal("the valid request never reached the server")
	}
	if !bytes.HasPrefix(b, []byte("GET /ok HTTP/1.1\r\n")) {
		t.Fatalf("the server's first bytes are %q: something was written before the valid request", b)
	}
	if ok200(t, q, ok); len(rs.acceptTimes()) != 1 {
		t.Fatalf("%d connections", len(rs.acceptTimes()))
	}
	// The validators on their own.
	if err := ValidateHeader(Header{"ok-name", "fine value\twith tab"}); err != nil {
		t.Fatalf("valid header refused: %v", err)
	}
	if err := ValidatePath("/p?q=1&r=%20#frag"); err != nil {
		t.Fatalf("valid path refused: %v", err)
	}
}

// TestRequestHeaders: what goes on the wire: host, user headers in order,
// content-length for bodies and for empty POSTs.
func TestRequestHeaders(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{}`)
	h := headersReply(t, ok200(t, q, get(t, c, "/headers", Header{"x-one", "1"}, Header{"X-Two", "2"})))
	if h.Headers["x-one"][0] != "1" || h.Headers["x-two"][0] != "2" {
		t.Fatalf("headers %v", h.Headers)
	}
	h = headersReply(t, ok200(t, q, get(t, c, "/headers", Header{"host", "example.org"})))
	if h.Host != "example.org" {
		t.Fatalf("host %q: the caller's host header must win", h.Host)
	}
	h = headersReply(t, ok200(t, q, do(t, c, &Request{Method: "POST", Path: "/headers"})))
	if h.ContentLength != 0 || h.Method != "POST" {
		t.Fatalf("empty POST: %+v", h)
	}
	h = headersReply(t, ok200(t, q, do(t, c, &Request{Method: "DELETE", Path: "/headers", Body: []byte("abc")})))
	if h.ContentLength != 3 || h.BodyLen != 3 {
		t.Fatalf("DELETE with a body: %+v", h)
	}
}

// TestAwaitBodyBounded: the timeout bounds the whole AwaitBody (a body that
// never ends does not hold the caller), and a body past awaitBodyMax cancels
// the stream and fails with limit_reached (the hang the C API fuzzer found:
// gm_await_body on /infinite with a 20 ms timeout per wait never returned).
func TestAwaitBodyBounded(t *testing.T) {
	for _, proto := range []string{"http", "http2"} {
		t.Run(proto, func(t *testing.T) {
			open := func() (*Queue, *Conn) {
				q := newQueue(t)
				c := openTo(t, q, srv.HTTPPort(), `{"protocols":["`+proto+`"]}`)
				if p, err := c.AwaitUp(waitFor); err != nil || p != proto {
					t.Fatalf("UP %q %v", p, err)
				}
				return q, c
			}
			_, c := open()
			start := time.Now()
			_, err := c.AwaitBody(get(t, c, "/infinite"), 50*time.Millisecond)
			if !errors.Is(err, ErrTimeout) {
				t.Fatalf("AwaitBody on an endless body: %v, want a timeout", err)
			}
			if d := time.Since(start); d > 2*time.Second { // generous: a loaded machine
				t.Fatalf("AwaitBody with a 50 ms timeout took %v", d)
			}

			defer func(m int) { awaitBodyMax = m }(awaitBodyMax)
			awaitBodyMax = 64 << 10
			q, c := open()
			_, err = c.AwaitBody(get(t, c, "/infinite"), 10*time.Second)
			var se *StreamError
			if !errors.As(err, &se) || !strings.Contains(se.Reason, "limit_reached") {
				t.Fatalf("AwaitBody past the bound: %v, want limit_reached", err)
			}
			if proto == "http2" { // reset: the connection serves the next request at once
				if b, err := c.AwaitBody(get(t, c, "/bytes/10"), waitFor); err != nil || len(b.Data) != 10 {
					t.Fatalf("after the cancel: %+v %v", b, err)
				}
			} else { // HTTP/1.1 discards the rest for discard_timeout, then closes
				q, c = open()
			}
			// A whole body already queued is taken even with timeout 0.
			ref := get(t, c, "/bytes/100")
			waitQueuedFin(t, q, ref)
			if b, err := c.AwaitBody(ref, 0); err != nil || len(b.Data) != 100 {
				t.Fatalf("AwaitBody(0) of a queued body: %+v %v", b, err)
			}
		})
	}
}

// waitQueuedFin waits until the queue holds ref's last DATA, without taking
// anything.
func waitQueuedFin(t *testing.T, q *Queue, ref uint64) {
	t.Helper()
	for end := time.Now().Add(waitFor); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		q.mu.Lock()
		for _, ev := range q.events[q.head:] {
			if ev.Ref == ref && ev.Kind == EvData && ev.Fin {
				q.mu.Unlock()
				return
			}
		}
		q.mu.Unlock()
	}
	t.Fatalf("stream %d's body never ended", ref)
}
