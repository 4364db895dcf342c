package core

// The connection's life: UP, DOWN with the streams it killed, reconnects per
// retry / retry_timeout / retry_fun, EXIT exactly once and last; close,
// shutdown, requests queued while not connected.

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"gunmetal/tests/testserver"
)

// TestServerKilledMidResponse: the server drops the connection while three
// pipelined requests are in flight: each gets ERROR(closed), then one DOWN
// lists exactly them, then the connection comes back and works. In-flight
// requests are not retried.
func TestServerKilledMidResponse(t *testing.T) {
	s := startServer(t)
	q := newQueue(t)
	// A long retry_timeout: the reconnect below is quick only because the
	// first retry after a drop is immediate.
	c := openTo(t, q, s.HTTPPort(), `{"retry":3,"retry_timeout":30000}`)
	awaitUp(t, c)
	r1 := get(t, c, "/infinite")
	r2 := get(t, c, "/delay/10")
	r3 := get(t, c, "/headers")
	// /infinite is streaming: r2 and r3 are written and wait behind it.
	for ev := expect(t, q, EvResponse, r1); ev.Kind != EvData; ev = next(t, q) {
	}
	before := s.Accepted()
	s.CloseClientConns()

	var errs []uint64
	var down *Event
	for down == nil {
		ev := nextOf(t, q, c)
		switch {
		case ev.Kind == EvData && ev.Ref == r1 && len(errs) == 0:
			if ev.Fin {
				t.Fatal("the cut /infinite body ended with fin")
			}
		case ev.Kind == EvError:
			if !hasReason(ev, "closed") {
				t.Fatalf("stream error reason %q, want closed...", ev.Reason)
			}
			errs = append(errs, ev.Ref)
		case ev.Kind == EvDown:
			down = ev
		default:
			t.Fatalf("unexpected %s", evString(ev))
		}
	}
	want := []uint64{r1, r2, r3}
	if !slices.Equal(errs, want) {
		t.Fatalf("ERROR for %v, want %v", errs, want)
	}
	if !slices.Equal(down.Killed, want) {
		t.Fatalf("DOWN killed %v, want %v", down.Killed, want)
	}
	if down.Protocol != "http" || down.Reason == "" || down.Reason == "normal" {
		t.Fatalf("DOWN protocol %q reason %q", down.Protocol, down.Reason)
	}
	// Reconnect at once (the first retry is immediate), and the new socket works.
	downAt := time.Now()
	if ev := nextOf(t, q, c); ev.Kind != EvUp || ev.Protocol != "http" {
		t.Fatalf("after DOWN: %s, want UP", evString(ev))
	}
	if d := time.Since(downAt); d > 5*time.Second {
		t.Fatalf("UP %v after DOWN: the first retry should not wait retry_timeout", d)
	}
	h := headersReply(t, ok200(t, q, get(t, c, "/headers")))
	if h.Path != "/headers" {
		t.Fatalf("reply %+v", h)
	}
	if n := s.Accepted() - before; n != 1 {
		t.Fatalf("%d connections accepted after the kill, want 1", n)
	}
	// Nothing more about the killed streams: they are not retried.
	noEvent(t, q, 200*time.Millisecond)
}

// TestServerDropsMidBody: /drop sends the head and 100 of 1000000 bytes
// then closes.
func TestServerDropsMidBody(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{"retry":1,"retry_timeout":100}`)
	ref := get(t, c, "/drop?after=100")
	r := readStream(t, q, ref)
	if r.resp == nil || r.resp.Status != 200 || len(r.data) != 100 {
		t.Fatalf("got %d bytes before the drop, want 100 (resp %v)", len(r.data), r.resp)
	}
	checkPattern(t, 0, r.data)
	if r.err == nil || !hasReason(r.err, "closed") {
		t.Fatalf("stream ended with %v, want ERROR closed", r.err)
	}
	down := expect(t, q, EvDown, 0)
	if !slices.Equal(down.Killed, []uint64{ref}) {
		t.Fatalf("DOWN killed %v, want [%d]", down.Killed, ref)
	}
	expect(t, q, EvUp, 0)
	if b := ok200(t, q, get(t, c, "/bytes/5")); string(b) != "abcde" {
		t.Fatalf("body after reconnect %q", b)
	}
}

// TestConnectionCloseResponse: a response with connection: close completes;
// its stream is not killed, DOWN says normal, the connection comes back.
func TestConnectionCloseResponse(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{"retry":1}`)
	ref := get(t, c, "/close")
	r := readStream(t, q, ref)
	if r.err != nil || string(r.data) != "bye" {
		t.Fatalf("/close: err %v body %q", r.err, r.data)
	}
	if v, _ := header(r.resp.Headers, "connection"); v != "close" {
		t.Fatalf("connection header %q", v)
	}
	down := expect(t, q, EvDown, 0)
	if down.Reason != "normal" || len(down.Killed) != 0 {
		t.Fatalf("DOWN %s, want reason normal, nothing killed", evString(down))
	}
	expect(t, q, EvUp, 0)
	ok200(t, q, get(t, c, "/bytes/1"))
}

// TestClientConnectionClose: a request sent with connection: close ends the
// connection after its response; a request made meanwhile waits and goes
// out on the next connection.
func TestClientConnectionClose(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{}`)
	r1 := get(t, c, "/headers", Header{"connection", "close"})
	r2 := get(t, c, "/headers")
	h1 := headersReply(t, ok200(t, q, r1))
	down := expect(t, q, EvDown, 0)
	if down.Reason != "normal" || len(down.Killed) != 0 {
		t.Fatalf("DOWN %s, want normal with nothing killed", evString(down))
	}
	expect(t, q, EvUp, 0)
	h2 := headersReply(t, ok200(t, q, r2))
	if h1.RemoteAddr == h2.RemoteAddr {
		t.Fatalf("both requests on %s: the second should wait for a new connection", h1.RemoteAddr)
	}
}

// TestRetryZeroAfterDown: with retry 0 a drop ends the connection: DOWN,
// then EXIT with the same reason.
func TestRetryZeroAfterDown(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{"retry":0}`)
	ok200(t, q, get(t, c, "/close"))
	if ev := expect(t, q, EvDown, 0); ev.Reason != "normal" {
		t.Fatalf("DOWN %s", evString(ev))
	}
	if evs := waitExit(t, q, c); len(evs) != 1 || evs[0].Reason != "normal" {
		t.Fatalf("after DOWN: %v, want EXIT normal", evs)
	}
}

// TestRetriesExhausted: nothing listens; with retry 2 the connection makes
// three attempts and exits with the last failure, econnrefused.
func TestRetriesExhausted(t *testing.T) {
	q := newQueue(t)
	port := testserver.FreePort()
	start := time.Now()
	c := openTo(t, q, port, `{"retry":2,"retry_timeout":200}`)
	evs := waitExit(t, q, c)
	d := time.Since(start)
	if len(evs) != 1 || evs[0].Reason != "econnrefused" {
		t.Fatalf("events %v, want only EXIT econnrefused", evs)
	}
	// Attempts at 0, 0 (the first retry is immediate), 200 ms.
	if d < 160*time.Millisecond || d > 5*time.Second {
		t.Fatalf("exhausted after %v, want about 200ms", d)
	}
	select {
	case <-c.Done():
	case <-time.After(waitFor):
		t.Fatal("Done not closed after EXIT")
	}
	if _, err := c.Request(&Request{Method: "GET", Path: "/"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("request after EXIT: %v", err)
	}
	if got := c.Info().State; got != "closed" {
		t.Fatalf("state after EXIT %q", got)
	}
	// Retry 3: the two later retries wait retry_timeout each.
	start = time.Now()
	c = openTo(t, q, port, `{"retry":3,"retry_timeout":200}`)
	evs = waitExit(t, q, c)
	if d := time.Since(start); d < 2*200*time.Millisecond*8/10 || d > 10*time.Second {
		t.Fatalf("retry 3 exhausted after %v, want about 400ms", d)
	}
	if evs[len(evs)-1].Reason != "econnrefused" {
		t.Fatalf("exit reason %q", evs[len(evs)-1].Reason)
	}
}

// attempts opens a TLS connection to a server that hangs up at once, so
// every attempt fails (in the handshake) and is seen by the server. It
// returns the accept times.
func attempts(t *testing.T, js string, n int) []time.Time {
	t.Helper()
	rs := startRaw(t, func(nc net.Conn) { nc.Close() })
	q := newQueue(t)
	start := time.Now()
	c := openTo(t, q, rs.port(), js)
	evs := waitExit(t, q, c)
	if len(evs) != 1 {
		t.Fatalf("events %v, want only EXIT", evs)
	}
	if !hasReason(evs[0], "closed") && evs[0].Reason != "econnreset" {
		t.Fatalf("exit reason %q, want closed or econnreset (the server hung up in the handshake)", evs[0].Reason)
	}
	// The last attempt's accept may be recorded just after the client saw it fail.
	var at []time.Time
	for deadline := time.Now().Add(waitFor); ; time.Sleep(time.Millisecond) {
		if at = rs.acceptTimes(); len(at) >= n || time.Now().After(deadline) {
			break
		}
	}
	time.Sleep(100 * time.Millisecond) // prove no attempt after EXIT
	if at = rs.acceptTimes(); len(at) != n {
		t.Fatalf("%d attempts, want %d", len(at), n)
	}
	return append([]time.Time{start}, at...)
}

// TestRetryTiming: the first retry is immediate, later ones wait
// retry_timeout; retry N means N+1 attempts, retry 0 exactly one.
func TestRetryTiming(t *testing.T) {
	tlsJS := `"transport":"tls","protocols":["http"],"tls_opts":{"verify":"verify_none"}`
	at := attempts(t, `{"retry":0,"retry_timeout":100,`+tlsJS+`}`, 1)
	if d := at[1].Sub(at[0]); d > 5*time.Second {
		t.Fatalf("first attempt after %v", d)
	}

	at = attempts(t, `{"retry":2,"retry_timeout":1000,`+tlsJS+`}`, 3)
	if gap := at[2].Sub(at[1]); gap > 700*time.Millisecond {
		t.Fatalf("first retry after %v, want immediate", gap)
	}
	if gap := at[3].Sub(at[2]); gap < 800*time.Millisecond || gap > 8*time.Second {
		t.Fatalf("second retry after %v, want retry_timeout (1000ms)", gap)
	}
}

// TestRetryFunExponential: a declared exponential policy spaces the
// delayed retries 150, 450 ms (the first retry stays immediate).
func TestRetryFunExponential(t *testing.T) {
	js := `{"retry":3,"retry_timeout":5000,"retry_fun":{"backoff":"exponential","initial":150,"factor":3,"max":10000},` +
		`"transport":"tls","protocols":["http"],"tls_opts":{"verify":"verify_none"}}`
	at := attempts(t, js, 4)
	gaps := []time.Duration{at[2].Sub(at[1]), at[3].Sub(at[2]), at[4].Sub(at[3])}
	if gaps[0] > 120*time.Millisecond*5 {
		t.Fatalf("first retry after %v, want immediate", gaps[0])
	}
	if gaps[1] < 120*time.Millisecond || gaps[1] > 4*time.Second {
		t.Fatalf("second retry after %v, want 150ms", gaps[1])
	}
	if gaps[2] < 360*time.Millisecond || gaps[2] > 4*time.Second {
		t.Fatalf("third retry after %v, want 450ms", gaps[2])
	}
}

// TestReconnectAfterRestart: the server stops; the connection goes DOWN,
// keeps retrying and comes back UP when the server is back.
func TestReconnectAfterRestart(t *testing.T) {
	s := startServer(t)
	q := newQueue(t)
	c := openTo(t, q, s.HTTPPort(), `{"retry":10,"retry_timeout":200}`)
	awaitUp(t, c)
	ok200(t, q, get(t, c, "/bytes/1"))
	s.Stop()
	down := expect(t, q, EvDown, 0)
	if len(down.Killed) != 0 {
		t.Fatalf("DOWN killed %v with nothing in flight", down.Killed)
	}
	noEvent(t, q, 300*time.Millisecond) // retrying, quietly
	if st := c.Info().State; st != "not_connected" && st != "connecting" {
		t.Fatalf("state while the server is down: %q", st)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if ev := nextOf(t, q, c); ev.Kind != EvUp {
		t.Fatalf("after restart: %s, want UP", evString(ev))
	}
	if b := ok200(t, q, get(t, c, "/bytes/4")); string(b) != "abcd" {
		t.Fatalf("body %q", b)
	}
}

// TestRequestsQueuedWhileDown: requests made before the connection is up
// wait (bounded by max_pending_requests) and go out, in order, on UP.
func TestRequestsQueuedWhileDown(t *testing.T) {
	s := startServer(t)
	s.Stop()
	q := newQueue(t)
	c := openTo(t, q, s.HTTPPort(), `{"retry":50,"retry_timeout":100,"max_pending_requests":3}`)
	var refs []uint64
	for i := range 3 {
		refs = append(refs, get(t, c, fmt.Sprintf("/headers?i=%d", i)))
	}
	si, err := c.StreamInfo(refs[1])
	if err != nil || si.State != "queued" || si.Path != "/headers?i=1" || si.Method != "GET" {
		t.Fatalf("stream info of a queued request: %+v, %v", si, err)
	}
	if err := c.Data(refs[0], []byte("x"), true); !errors.Is(err, ErrNoStream) {
		t.Fatalf("Data on a queued request without a streamed body: %v", err)
	}
	// Past the bound: an ERROR at once, naming it.
	over := get(t, c, "/headers?i=3")
	ev := expect(t, q, EvError, over)
	if !strings.Contains(ev.Reason, "max_pending_requests") || !strings.Contains(ev.Reason, "3") {
		t.Fatalf("reason %q should name max_pending_requests and its value", ev.Reason)
	}
	noEvent(t, q, 200*time.Millisecond)
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	expect(t, q, EvUp, 0)
	var addr string
	for i, ref := range refs {
		h := headersReply(t, ok200(t, q, ref))
		if h.Query != fmt.Sprintf("i=%d", i) {
			t.Fatalf("response %d is for %q", i, h.Query)
		}
		if addr == "" {
			addr = h.RemoteAddr
		} else if h.RemoteAddr != addr {
			t.Fatal("queued requests went out on different connections")
		}
	}
	if s.Accepted() != 1 {
		t.Fatalf("%d connections accepted, want 1", s.Accepted())
	}
}

// TestPendingFailOnExit: requests still waiting when retries run out get
// an ERROR, before the EXIT.
func TestPendingFailOnExit(t *testing.T) {
	q := newQueue(t)
	// retry 2: attempts at 0, 0 and 1000ms; the request is made in that window.
	c := openTo(t, q, testserver.FreePort(), `{"retry":2,"retry_timeout":1000}`)
	ref := get(t, c, "/")
	// AwaitBody gets the stream's ERROR; a further Await sees the EXIT and
	// leaves it queued.
	_, err := c.AwaitBody(ref, waitFor)
	var se *StreamError
	if !errors.As(err, &se) || !strings.HasPrefix(se.Reason, "closed") {
		t.Fatalf("AwaitBody of a request that never went out: %v", err)
	}
	if _, err := c.Await(ref, waitFor); !errors.Is(err, ErrClosed) {
		t.Fatalf("Await after EXIT: %v", err)
	}
	evs := waitExit(t, q, c)
	if len(evs) != 1 || evs[0].Reason != "econnrefused" {
		t.Fatalf("events %v, want EXIT econnrefused", evs)
	}
}

// TestShutdownGraceful: the in-flight response finishes, new requests fail
// with closing, then EXIT shutdown, no DOWN, never a reconnect.
func TestShutdownGraceful(t *testing.T) {
	q := newQueue(t)
	s := startServer(t) // its own, to count its connections
	c := openTo(t, q, s.HTTPPort(), `{"retry":5,"retry_timeout":100}`)
	awaitUp(t, c)
	ref := get(t, c, "/delay/300")
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if st := c.Info().State; st != "closing" {
		t.Fatalf("state after Shutdown %q", st)
	}
	late := get(t, c, "/bytes/1")
	if err := c.SetOwner(newQueue(t)); !errors.Is(err, ErrBadState) {
		t.Fatalf("set_owner while shutting down: %v", err)
	}
	evs := waitExit(t, q, c)
	var body []byte
	sawResp, sawClosing := false, false
	for _, ev := range evs[:len(evs)-1] {
		switch {
		case ev.Kind == EvError && ev.Ref == late && ev.Reason == "closing":
			sawClosing = true
		case ev.Kind == EvResponse && ev.Ref == ref && ev.Status == 200:
			sawResp = true
		case ev.Kind == EvData && ev.Ref == ref:
			body = append(body, ev.Data...)
			if !ev.Fin {
				continue
			}
		default:
			t.Fatalf("unexpected %s during shutdown", evString(ev))
		}
	}
	if !sawResp || string(body) != "ok" || !sawClosing {
		t.Fatalf("response %v body %q closing error %v", sawResp, body, sawClosing)
	}
	if ex := evs[len(evs)-1]; ex.Reason != "shutdown" {
		t.Fatalf("EXIT reason %q", ex.Reason)
	}
	noEvent(t, q, 200*time.Millisecond)
	if n := s.Accepted(); n != 1 {
		t.Fatalf("%d connections, want 1: shutdown must not reconnect", n)
	}
	if _, err := c.Request(&Request{Method: "GET", Path: "/"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("request after EXIT: %v", err)
	}
	if err := c.Shutdown(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Shutdown after EXIT: %v", err)
	}
}

// TestShutdownFailsUnsent: requests not yet written when Shutdown comes
// (here: waiting behind a streamed body) fail with closing; the streamed
// request may still finish its body and get its response.
func TestShutdownFailsUnsent(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{}`)
	body := do(t, c, &Request{Method: "POST", Path: "/echo", Stream: true})
	if err := c.Data(body, []byte("part"), false); err != nil {
		t.Fatal(err)
	}
	waiting := get(t, c, "/bytes/1")
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := c.Data(body, []byte("!"), true); err != nil {
		t.Fatalf("Data while shutting down: %v", err)
	}
	evs := waitExit(t, q, c)
	var echoed []byte
	closing := false
	for _, ev := range evs[:len(evs)-1] {
		switch {
		case ev.Ref == waiting && ev.Kind == EvError && ev.Reason == "closing":
			closing = true
		case ev.Ref == body && ev.Kind == EvResponse:
		case ev.Ref == body && ev.Kind == EvData:
			echoed = append(echoed, ev.Data...)
		default:
			t.Fatalf("unexpected %s", evString(ev))
		}
	}
	if !closing || string(echoed) != "part!" {
		t.Fatalf("closing error %v, echo %q", closing, echoed)
	}
	if ex := evs[len(evs)-1]; ex.Reason != "shutdown" {
		t.Fatalf("EXIT %s", evString(ex))
	}
}

// TestShutdownClosingTimeout: a response that does not finish within
// closing_timeout is cut; EXIT shutdown.
func TestShutdownClosingTimeout(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{"http_opts":{"closing_timeout":200}}`)
	get(t, c, "/infinite")
	expect(t, q, EvResponse, 0)
	start := time.Now()
	c.Shutdown()
	evs := waitExit(t, q, c)
	if d := time.Since(start); d < 150*time.Millisecond || d > 8*time.Second {
		t.Fatalf("exit %v after Shutdown, want about closing_timeout (200ms)", d)
	}
	for _, ev := range evs[:len(evs)-1] {
		if ev.Kind != EvData {
			t.Fatalf("unexpected %s", evString(ev))
		}
	}
	if ex := evs[len(evs)-1]; ex.Reason != "shutdown" {
		t.Fatalf("EXIT %s", evString(ex))
	}
}

// TestShutdownIdleAndDown: Shutdown of an idle connection, and of one that
// is waiting to retry, exits at once with shutdown.
func TestShutdownIdleAndDown(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{}`)
	c.Shutdown()
	if evs := waitExit(t, q, c); len(evs) != 1 || evs[0].Reason != "shutdown" {
		t.Fatalf("events %v", evs)
	}
	c = openTo(t, q, testserver.FreePort(), `{"retry":5,"retry_timeout":60000}`)
	ref := get(t, c, "/")
	time.Sleep(50 * time.Millisecond) // let it fail twice and wait a minute
	start := time.Now()
	c.Shutdown()
	evs := waitExit(t, q, c)
	if time.Since(start) > 5*time.Second {
		t.Fatal("Shutdown did not cut the retry wait short")
	}
	if len(evs) != 2 || evs[0].Ref != ref || evs[1].Reason != "shutdown" {
		t.Fatalf("events %v, want ERROR for the queued request then EXIT shutdown", evs)
	}
}

// TestCloseAbrupt: Close while a response streams: no DOWN, no ERROR,
// exactly one EXIT "shutdown", and it is the last event.
func TestCloseAbrupt(t *testing.T) {
	q := newQueue(t)
	s := startServer(t) // its own, to count its connections
	c := openTo(t, q, s.HTTPPort(), `{"retry":5}`)
	awaitUp(t, c)
	ref := get(t, c, "/infinite")
	for ev := next(t, q); ev.Kind != EvData; ev = next(t, q) {
	}
	c.Close()
	c.Close() // idempotent
	evs := waitExit(t, q, c)
	for _, ev := range evs[:len(evs)-1] {
		if ev.Kind != EvData || ev.Ref != ref || ev.Fin {
			t.Fatalf("after Close: %s", evString(ev))
		}
	}
	if ex := evs[len(evs)-1]; ex.Reason != "shutdown" {
		t.Fatalf("EXIT reason %q", ex.Reason)
	}
	noEvent(t, q, 300*time.Millisecond)
	if n := s.Accepted(); n != 1 {
		t.Fatalf("%d connections, want 1: Close must not reconnect", n)
	}
	for name, err := range map[string]error{
		"Data":       c.Data(ref, nil, true),
		"Cancel":     c.Cancel(ref),
		"UpdateFlow": c.UpdateFlow(ref, 1),
		"SetOwner":   c.SetOwner(q),
		"Shutdown":   c.Shutdown(),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
	if _, err := c.StreamInfo(ref); !errors.Is(err, ErrClosed) {
		t.Errorf("StreamInfo after Close: %v", err)
	}
	if _, err := c.AwaitUp(100 * time.Millisecond); err == nil {
		t.Error("AwaitUp after EXIT succeeded")
	}
}

// TestCloseWhileConnecting: Close cuts a long retry wait short.
func TestCloseWhileConnecting(t *testing.T) {
	q := newQueue(t)
	c := openTo(t, q, testserver.FreePort(), `{"retry":5,"retry_timeout":60000}`)
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	c.Close()
	evs := waitExit(t, q, c)
	if len(evs) != 1 || evs[0].Reason != "shutdown" {
		t.Fatalf("events %v", evs)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("exit %v after Close", d)
	}
	// AwaitUp on a connection that exited: ErrClosed, the EXIT stays queued.
	c2 := openTo(t, q, testserver.FreePort(), `{"retry":0}`)
	if _, err := c2.AwaitUp(waitFor); !errors.Is(err, ErrClosed) {
		t.Fatalf("AwaitUp of a failed connection: %v", err)
	}
	if ev := expect(t, q, EvExit, 0); ev.Conn != c2 || ev.Reason != "econnrefused" {
		t.Fatalf("EXIT %s", evString(ev))
	}
}

// TestRequestTimeout: a per-request timeout gives ERROR timeout and
// silences the stream; the connection keeps working.
func TestRequestTimeout(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{}`)
	start := time.Now()
	slow := do(t, c, &Request{Method: "GET", Path: "/delay/1000", Timeout: 200 * time.Millisecond})
	after := get(t, c, "/bytes/2") // pipelined behind the slow one
	ev := expect(t, q, EvError, slow)
	if ev.Reason != "timeout" {
		t.Fatalf("reason %q", ev.Reason)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 5*time.Second {
		t.Fatalf("timeout after %v, want about 200ms", d)
	}
	// The slow response is read and dropped: the next event is the
	// pipelined request's, nothing about the timed-out stream.
	if b := ok200(t, q, after); string(b) != "ab" {
		t.Fatalf("body %q", b)
	}
	// A request waiting for the connection times out too.
	q2 := newQueue(t)
	c2 := openTo(t, q2, testserver.FreePort(), `{"retry":3,"retry_timeout":30000}`)
	queued := do(t, c2, &Request{Method: "GET", Path: "/", Timeout: 100 * time.Millisecond})
	if ev := expect(t, q2, EvError, queued); ev.Reason != "timeout" {
		t.Fatalf("queued request: reason %q", ev.Reason)
	}
	if _, err := c2.StreamInfo(queued); !errors.Is(err, ErrNoStream) {
		t.Fatalf("a timed-out queued request is still there: %v", err)
	}
	// A request that completes in time disarms its timer.
	fast := do(t, c, &Request{Method: "GET", Path: "/bytes/1", Timeout: 300 * time.Millisecond})
	ok200(t, q, fast)
	noEvent(t, q, 500*time.Millisecond)
}

// TestReplyTo: a request's events go to its reply_to queue; Await finds
// them there even after the stream has ended.
func TestReplyTo(t *testing.T) {
	q := newQueue(t)
	q2 := newQueue(t)
	c := up(t, q, `{}`)
	ref := do(t, c, &Request{Method: "GET", Path: "/bytes/10", ReplyTo: q2})
	if b := ok200(t, q2, ref); string(b) != "abcdefghij" {
		t.Fatalf("body %q", b)
	}
	if q.Len() != 0 {
		t.Fatal("events of a reply_to stream reached the owner")
	}
	// Await/AwaitBody look in the reply_to queue, also when every event of
	// the stream is already there.
	ref = do(t, c, &Request{Method: "GET", Path: "/bytes/3", ReplyTo: q2})
	for deadline := time.Now().Add(waitFor); q2.Len() < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the stream's events never reached the reply_to queue")
		}
	}
	b, err := c.AwaitBody(ref, waitFor)
	if err != nil || b.Status != 200 || string(b.Data) != "abc" {
		t.Fatalf("AwaitBody = %+v, %v", b, err)
	}
	// Errors of a reply_to stream go there too.
	ref = do(t, c, &Request{Method: "GET", Path: "/delay/400", ReplyTo: q2, Timeout: 100 * time.Millisecond})
	if ev := expect(t, q2, EvError, ref); ev.Reason != "timeout" {
		t.Fatalf("reason %q", ev.Reason)
	}
	c.Shutdown()
	ref = do(t, c, &Request{Method: "GET", Path: "/", ReplyTo: q2})
	if ev := expect(t, q2, EvError, ref); ev.Reason != "closing" {
		t.Fatalf("reason %q", ev.Reason)
	}
	if evs := waitExit(t, q, c); len(evs) != 1 {
		t.Fatalf("owner got %v, want only the EXIT", evs)
	}
}

// TestSetOwner: events go to the new queue; freeing the old one leaves the
// connection alone.
func TestSetOwner(t *testing.T) {
	q1, q2 := newQueue(t), newQueue(t)
	c := up(t, q1, `{}`)
	if err := c.SetOwner(q2); err != nil {
		t.Fatal(err)
	}
	if c.Owner() != q2 {
		t.Fatal("Owner not updated")
	}
	ref := get(t, c, "/bytes/2")
	if b := ok200(t, q2, ref); string(b) != "ab" {
		t.Fatalf("body %q", b)
	}
	if q1.Len() != 0 {
		t.Fatal("the old owner got events")
	}
	q1.Free()
	select {
	case <-c.Done():
		t.Fatal("freeing the former owner closed the connection")
	case <-time.After(100 * time.Millisecond):
	}
	ok200(t, q2, get(t, c, "/bytes/1"))
	if err := c.SetOwner(q1); !errors.Is(err, ErrQueueClosed) {
		t.Fatalf("SetOwner to a freed queue: %v", err)
	}
	if err := c.SetOwner(nil); !errors.Is(err, ErrBadArg) {
		t.Fatalf("SetOwner(nil): %v", err)
	}
	// The new owner's Free closes it.
	q2.Free()
	select {
	case <-c.Done():
	case <-time.After(waitFor):
		t.Fatal("freeing the new owner did not close the connection")
	}
}

func TestInfo(t *testing.T) {
	q := newQueue(t)
	port := srv.HTTPPort()
	c := up(t, q, `{}`)
	in := c.Info()
	want := fmt.Sprintf("127.0.0.1:%d", port)
	if in.State != "connected" || in.Protocol != "http" || in.Transport != "tcp" || in.Host != "127.0.0.1" ||
		in.Port != port || in.Origin != "http://"+want || in.Peer != want || !strings.HasPrefix(in.Local, "127.0.0.1:") {
		t.Fatalf("info %+v", in)
	}
	// The local address is the one the server sees.
	h := headersReply(t, ok200(t, q, get(t, c, "/headers")))
	if h.RemoteAddr != in.Local {
		t.Fatalf("server sees %s, Info says local %s", h.RemoteAddr, in.Local)
	}
	if h.Host != want {
		t.Fatalf("host header %q, want %q", h.Host, want)
	}

	ref := do(t, c, &Request{Method: "GET", Path: "/delay/300?x=1", Flow: 3})
	si, err := c.StreamInfo(ref)
	if err != nil || si.Ref != ref || si.State != "running" || si.Method != "GET" || si.Path != "/delay/300?x=1" ||
		si.Protocol != "http" || si.Flow != 3 {
		t.Fatalf("stream info %+v, %v", si, err)
	}
	ref2 := get(t, c, "/bytes/1")
	if si, err := c.StreamInfo(ref2); err != nil || si.Flow != -1 {
		t.Fatalf("stream info without flow %+v, %v", si, err)
	}
	c.Cancel(ref)
	if si, err := c.StreamInfo(ref); err != nil || si.State != "stopping" {
		t.Fatalf("stream info after cancel %+v, %v", si, err)
	}
	ok200(t, q, ref2)
	if _, err := c.StreamInfo(ref2); !errors.Is(err, ErrNoStream) {
		t.Fatalf("stream info of a finished stream: %v", err)
	}
	if _, err := c.StreamInfo(12345678901); !errors.Is(err, ErrNoStream) {
		t.Fatalf("stream info of an unknown ref: %v", err)
	}

	// Before the first UP: connecting, no addresses; a bracketed IPv6 origin.
	c6, err := Open("[::1]", testserver.FreePort(), parseOpts(t, `{"retry":0}`, 1), q, "tag")
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, c6)
	if c6.Tag() != "tag" {
		t.Fatal("Tag lost")
	}
	in6 := c6.Info()
	if in6.Host != "::1" || !strings.HasPrefix(in6.Origin, "http://[::1]:") || in6.Local != "" || in6.Protocol != "" {
		t.Fatalf("info before UP %+v", in6)
	}
	for ev := next(t, q); ev.Conn != c6 || ev.Kind != EvExit; ev = next(t, q) {
	}
}

func TestOpenBadArgs(t *testing.T) {
	q := newQueue(t)
	for _, tc := range []struct {
		host string
		port int
	}{{"", 80}, {"a b", 80}, {"x\r\ny", 80}, {"h\x00", 80}, {"127.0.0.1", 0}, {"127.0.0.1", 65536}, {"127.0.0.1", -1}, {"\xff", 80}} {
		if _, err := Open(tc.host, tc.port, nil, q, nil); !errors.Is(err, ErrBadArg) {
			t.Errorf("Open(%q, %d): %v, want ErrBadArg", tc.host, tc.port, err)
		}
	}
	if _, err := Open("127.0.0.1", 80, nil, nil, nil); !errors.Is(err, ErrBadArg) {
		t.Errorf("Open without a queue: %v", err)
	}
	if _, err := OpenUnix("", nil, q, nil); !errors.Is(err, ErrBadArg) {
		t.Errorf("OpenUnix(\"\"): %v", err)
	}
	if q.Len() != 0 {
		t.Fatal("a refused Open queued events")
	}
}

func TestOpenUnix(t *testing.T) {
	q := newQueue(t)
	c, err := OpenUnix(srv.UnixPath(), parseOpts(t, `{}`, 0), q, nil)
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, c)
	awaitUp(t, c)
	in := c.Info()
	if in.Peer != srv.UnixPath() || in.State != "connected" || in.Origin != "http://localhost" {
		t.Fatalf("info %+v", in)
	}
	h := headersReply(t, ok200(t, q, get(t, c, "/headers")))
	if h.Host != "localhost" || h.Path != "/headers" {
		t.Fatalf("reply %+v", h)
	}
	// A socket path nobody listens on: enoent, then EXIT.
	c2, err := OpenUnix(srv.UnixPath()+".none", parseOpts(t, `{"retry":0}`, 0), q, nil)
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, c2)
	if evs := waitExit(t, q, c2); evs[len(evs)-1].Reason != "enoent" {
		t.Fatalf("exit reason %q", evs[len(evs)-1].Reason)
	}
}

func TestTLS(t *testing.T) {
	q := newQueue(t)
	srv := startServer(t) // its own, to count its connections
	port := srv.TLSPort()
	js := fmt.Sprintf(`{"transport":"tls","protocols":["http"],"tls_opts":{"cacertfile":%q}}`, srv.CAFile())
	c, err := Open("localhost", port, parseOpts(t, js, port), q, nil)
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, c)
	awaitUp(t, c)
	in := c.Info()
	if in.Transport != "tls" || in.Origin != fmt.Sprintf("https://localhost:%d", port) {
		t.Fatalf("info %+v", in)
	}
	h := headersReply(t, ok200(t, q, get(t, c, "/headers")))
	if h.Proto != "HTTP/1.1" || h.Host != fmt.Sprintf("localhost:%d", port) {
		t.Fatalf("reply %+v", h)
	}
	if b := ok200(t, q, get(t, c, "/bytes/300000")); len(b) != 300000 {
		t.Fatalf("%d bytes over TLS", len(b))
	}

	// Without the CA the certificate does not verify: EXIT naming it.
	accepted := srv.Accepted()
	js = `{"transport":"tls","protocols":["http"],"retry":0}`
	c2, err := Open("localhost", port, parseOpts(t, js, port), q, nil)
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, c2)
	evs := waitExit(t, q, c2)
	if len(evs) != 1 || !strings.Contains(evs[0].Reason, "certificate") {
		t.Fatalf("events %v, want one EXIT about the certificate", evs)
	}
	if n := srv.Accepted() - accepted; n != 1 {
		t.Fatalf("%d attempts with retry 0, want 1", n)
	}
}

func TestOptionErrorsNameTheKey(t *testing.T) {
	for js, want := range map[string][]string{
		`{"retry":"x"}`:                 {"retry"},
		`{"bogus":1}`:                   {"bogus"},
		`{"http_opts":{"bogus":true}}`:  {"http_opts", "bogus"},
		`{"http2_opts":{"flow":-1}}`:    {"http2_opts", "flow"},
		`{"retry_timeout":-5}`:          {"retry_timeout"},
		`{"tcp_opts":{"nodelay":"no"}}`: {"tcp_opts", "nodelay"},
	} {
		_, err := ParseOptions([]byte(js), 80)
		var oe *OptionError
		if !errors.As(err, &oe) {
			t.Errorf("%s: %v, want an *OptionError", js, err)
			continue
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not name %q", js, err, w)
			}
		}
	}
}
