package core

// Progress bounds (issue 9, item 5): a server that stalls mid-element or
// keeps a window closed, and a host that gives up on a stream, must not
// keep a request, a thread in Data or the connection for ever.

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// stalledReader is a server that accepts and never reads: a request body
// fills the socket buffers, then Data blocks.
func stalledReader(t *testing.T) *rawServer {
	stop := make(chan struct{})
	rs := startRaw(t, func(nc net.Conn) {
		<-stop
		nc.Close()
	})
	t.Cleanup(func() { close(stop) }) // runs before the server's own cleanup
	return rs
}

// blockedData starts a streamed POST on c and a goroutine sending its body
// in 1 MB pieces until Data fails; it returns once Data has stopped
// returning (blocked on the socket), with the channel of Data's error.
func blockedData(t *testing.T, c *Conn, timeout time.Duration) (uint64, <-chan error) {
	t.Helper()
	ref := do(t, c, &Request{Method: "POST", Path: "/upload", Stream: true, Timeout: timeout})
	var sent atomic.Int64
	done := make(chan error, 1)
	go func() {
		chunk := bytes.Repeat([]byte("x"), 1<<20)
		for {
			if err := c.Data(ref, chunk, false); err != nil {
				done <- err
				return
			}
			sent.Add(1)
		}
	}()
	if timeout > 0 {
		return ref, done
	}
	// Blocked: nothing more sent for 300 ms (an absence).
	for last, deadline := int64(-1), time.Now().Add(waitFor); ; {
		time.Sleep(300 * time.Millisecond)
		n := sent.Load()
		if n == last && n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Data never blocked (%d MB sent)", n)
		}
		last = n
	}
	select {
	case err := <-done:
		t.Fatalf("Data returned %v before anything was done", err)
	default:
	}
	return ref, done
}

func dataReturns(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Data returned nil")
		}
		return err
	case <-time.After(waitFor):
		t.Fatal("Data still blocked")
	}
	return nil
}

// h1Opts: nothing but our own bound releases Data (no send timeout), and a
// reconnect within the test can only be Gun's immediate one.
const h1Opts = `{"retry":1,"retry_timeout":60000,"tcp_opts":{"send_timeout":"infinity"}}`

// TestH1CancelReleasesData: cancelling an HTTP/1.1 stream whose body is
// being sent releases a Data blocked on the socket, and the connection
// (which can't finish that body) is closed and reconnects at once.
func TestH1CancelReleasesData(t *testing.T) {
	rs := stalledReader(t)
	q := newQueue(t)
	c := openTo(t, q, rs.port(), h1Opts)
	awaitUp(t, c)
	ref, done := blockedData(t, c, 0)
	if err := c.Cancel(ref); err != nil {
		t.Fatal(err)
	}
	if err := dataReturns(t, done); !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "cancelled") {
		t.Fatalf("Data: %v", err)
	}
	if ev := nextOf(t, q, c); ev.Kind != EvDown || !hasReason(ev, "cancelled: ") || len(ev.Killed) != 0 {
		t.Fatalf("%s, want DOWN cancelled with nothing killed", evString(ev))
	}
	if ev := nextOf(t, q, c); ev.Kind != EvUp {
		t.Fatalf("%s, want UP", evString(ev))
	}
}

// TestH1TimeoutReleasesData: the request's timeout does the same.
func TestH1TimeoutReleasesData(t *testing.T) {
	rs := stalledReader(t)
	q := newQueue(t)
	c := openTo(t, q, rs.port(), h1Opts)
	awaitUp(t, c)
	ref, done := blockedData(t, c, 500*time.Millisecond)
	if ev := nextOf(t, q, c); ev.Kind != EvError || ev.Ref != ref || ev.Reason != "timeout" {
		t.Fatalf("%s, want ERROR timeout", evString(ev))
	}
	if err := dataReturns(t, done); !errors.Is(err, ErrClosed) {
		t.Fatalf("Data: %v", err)
	}
	if ev := nextOf(t, q, c); ev.Kind != EvDown || !hasReason(ev, "cancelled: ") {
		t.Fatalf("%s, want DOWN cancelled", evString(ev))
	}
	if ev := nextOf(t, q, c); ev.Kind != EvUp {
		t.Fatalf("%s, want UP", evString(ev))
	}
}

// TestH1CloseReleasesData: Close releases it too.
func TestH1CloseReleasesData(t *testing.T) {
	rs := stalledReader(t)
	q := newQueue(t)
	c := openTo(t, q, rs.port(), h1Opts)
	awaitUp(t, c)
	_, done := blockedData(t, c, 0)
	c.Close()
	if err := dataReturns(t, done); !errors.Is(err, ErrClosed) {
		t.Fatalf("Data: %v", err)
	}
	if evs := waitExit(t, q, c); evs[len(evs)-1].Reason != "shutdown" {
		t.Fatalf("events %v", evs)
	}
}

// endlessBody answers each request with a chunked body that never ends.
func endlessBody(t *testing.T) *rawServer {
	return startRaw(t, func(nc net.Conn) {
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(3 * waitFor))
		if _, err := readRequest(nc); err != nil {
			return
		}
		if _, err := nc.Write([]byte("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")); err != nil {
			return
		}
		chunk := append(append([]byte("400\r\n"), bytes.Repeat([]byte("y"), 0x400)...), "\r\n"...)
		for {
			if _, err := nc.Write(chunk); err != nil {
				return
			}
			time.Sleep(time.Millisecond)
		}
	})
}

// TestH1DiscardTimeout: after a cancel (or a request timeout) mid-body,
// an endless body is read and dropped for discard_timeout at most; then
// the connection closes and reconnects at once.
func TestH1DiscardTimeout(t *testing.T) {
	for _, viaTimeout := range []bool{false, true} {
		rs := endlessBody(t)
		q := newQueue(t)
		c := openTo(t, q, rs.port(), `{"retry":1,"retry_timeout":60000,"http_opts":{"discard_timeout":300}}`)
		awaitUp(t, c)
		r := &Request{Method: "GET", Path: "/endless"}
		if viaTimeout {
			r.Timeout = 300 * time.Millisecond
		}
		ref := do(t, c, r)
		if ev := nextOf(t, q, c); ev.Kind != EvResponse || ev.Ref != ref {
			t.Fatalf("%s, want RESPONSE", evString(ev))
		}
		if !viaTimeout {
			nextOf(t, q, c) // some DATA
			if err := c.Cancel(ref); err != nil {
				t.Fatal(err)
			}
		}
		var down *Event
		for down == nil {
			ev := nextOf(t, q, c)
			switch {
			case ev.Kind == EvDown:
				down = ev
			case ev.Ref == ref && ev.Kind == EvData && !ev.Fin:
			case ev.Ref == ref && ev.Kind == EvError && viaTimeout && ev.Reason == "timeout":
			default:
				t.Fatalf("unexpected %s", evString(ev))
			}
		}
		if !hasReason(down, "discard_timeout: ") || !strings.Contains(down.Reason, "http_opts.discard_timeout") || len(down.Killed) != 0 {
			t.Fatalf("%s, want DOWN discard_timeout", evString(down))
		}
		if ev := nextOf(t, q, c); ev.Kind != EvUp {
			t.Fatalf("%s, want UP", evString(ev))
		}
	}
}

// TestH1DiscardWaitsItsTurn: discard_timeout counts from the time the
// cancelled stream's response is the one being read: a long response
// pipelined before it is not cut.
func TestH1DiscardWaitsItsTurn(t *testing.T) {
	rs := startRaw(t, func(nc net.Conn) {
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(3 * waitFor))
		var got []byte
		buf := make([]byte, 4096)
		for bytes.Count(got, []byte("\r\n\r\n")) < 2 {
			n, err := nc.Read(buf)
			if err != nil {
				return
			}
			got = append(got, buf[:n]...)
		}
		nc.Write([]byte("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"))
		for i := 0; i < 10; i++ { // about 1 s: longer than discard_timeout
			time.Sleep(100 * time.Millisecond)
			nc.Write([]byte("1\r\na\r\n"))
		}
		nc.Write([]byte("0\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"))
		holdOpen(nc)
	})
	q := newQueue(t)
	c := openTo(t, q, rs.port(), `{"retry":0,"http_opts":{"discard_timeout":300}}`)
	awaitUp(t, c)
	a := get(t, c, "/long")
	b := get(t, c, "/cancelled")
	if err := c.Cancel(b); err != nil {
		t.Fatal(err)
	}
	if body := ok200(t, q, a); string(body) != "aaaaaaaaaa" {
		t.Fatalf("body %q", body)
	}
	noEvent(t, q, 500*time.Millisecond) // B's answer is dropped, the connection stays
	if st := c.Info().State; st != "connected" {
		t.Fatalf("state %q", st)
	}
}

// TestH1HeadTimeout: a response head sent a byte at a time must be whole
// within head_timeout of its first byte.
func TestH1HeadTimeout(t *testing.T) {
	rs := startRaw(t, func(nc net.Conn) {
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(3 * waitFor))
		if _, err := readRequest(nc); err != nil {
			return
		}
		if _, err := nc.Write([]byte("HTTP/1.1 200 OK\r\nx-slow: ")); err != nil {
			return
		}
		for {
			if _, err := nc.Write([]byte("a")); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	q := newQueue(t)
	c := openTo(t, q, rs.port(), `{"retry":0,"http_opts":{"head_timeout":500}}`)
	awaitUp(t, c)
	ref := get(t, c, "/slow")
	evs := waitExit(t, q, c)
	if len(evs) != 3 || evs[0].Kind != EvError || evs[0].Ref != ref || evs[1].Kind != EvDown {
		t.Fatalf("events %v, want ERROR, DOWN, EXIT", evs)
	}
	for _, ev := range evs {
		if !strings.Contains(ev.Reason, "timeout: ") || !strings.Contains(ev.Reason, "http_opts.head_timeout") {
			t.Fatalf("%s does not name head_timeout", evString(ev))
		}
	}
}

// TestH2FrameTimeout: a frame, or a header block, begun and not finished
// within frame_timeout ends the connection.
func TestH2FrameTimeout(t *testing.T) {
	for _, shape := range []string{"partial_frame", "open_header_block"} {
		t.Run(shape, func(t *testing.T) {
			q, c, _, sc := h2script(t, `,"http2_opts":{"frame_timeout":400}`)
			sc.Handshake()
			ref := get(t, c, "/")
			r := sc.ReadRequest()
			if shape == "partial_frame" {
				sc.Respond(r.StreamID, 200, false)
				// A DATA frame of 100 bytes, 10 of them sent.
				hdr := []byte{0, 0, 100, byte(http2.FrameData), 0, 0, 0, 0, byte(r.StreamID)}
				sc.Raw(append(hdr, bytes.Repeat([]byte("z"), 10)...))
			} else {
				// HEADERS without END_HEADERS, and no CONTINUATION.
				sc.RawFrame(http2.FrameHeaders, http2.FlagHeadersEndStream, r.StreamID, sc.Block(":status", "200"))
			}
			evs := expectExit(t, q, c, "timeout: ")
			if !strings.Contains(evs[len(evs)-1].Reason, "http2_opts.frame_timeout") {
				t.Fatalf("EXIT %q does not name frame_timeout", evs[len(evs)-1].Reason)
			}
			var killed bool
			for _, ev := range evs {
				killed = killed || (ev.Kind == EvError && ev.Ref == ref)
			}
			if !killed {
				t.Fatalf("events %v: the stream was not ended", evs)
			}
		})
	}
}

// TestH2SendWindowTimeout: a body that gets no window for
// send_window_timeout is given up: RST_STREAM CANCEL, ERROR, and a Data
// blocked on the window returns.
func TestH2SendWindowTimeout(t *testing.T) {
	q, c, _, sc := h2script(t, `,"http2_opts":{"send_window_timeout":400}`)
	sc.Handshake(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	sc.Expect("SETTINGS ack", func(f http2.Frame) bool { s, ok := f.(*http2.SettingsFrame); return ok && s.IsAck() })

	ref := do(t, c, &Request{Method: "POST", Path: "/", Stream: true})
	r := sc.ReadRequest()
	done := make(chan error, 1)
	go func() { done <- c.Data(ref, []byte("0123456789"), true) }()
	sc.Expect("RST_STREAM CANCEL", isRST(r.StreamID, http2.ErrCodeCancel))
	if err := dataReturns(t, done); !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "http2_opts.send_window_timeout") || strings.Count(err.Error(), "timeout:") > 1 {
		t.Fatalf("Data: %v", err)
	}
	if ev := expect(t, q, EvError, ref); !strings.Contains(ev.Reason, "http2_opts.send_window_timeout") {
		t.Fatalf("%s", evString(ev))
	}

	// A body given whole waits in the stream: the same bound.
	ref2 := do(t, c, &Request{Method: "POST", Path: "/", Body: []byte("abc")})
	r2 := sc.ReadRequest()
	sc.Expect("RST_STREAM CANCEL", isRST(r2.StreamID, http2.ErrCodeCancel))
	if ev := expect(t, q, EvError, ref2); !strings.Contains(ev.Reason, "http2_opts.send_window_timeout") {
		t.Fatalf("%s", evString(ev))
	}

	// Window that comes in time: no timeout.
	ref3 := do(t, c, &Request{Method: "POST", Path: "/", Body: []byte("abc")})
	r3 := sc.ReadRequest()
	sc.WindowUpdate(r3.StreamID, 3)
	f := sc.ExpectType(http2.FrameData, int(r3.StreamID)).(*http2.DataFrame)
	if string(f.Data()) != "abc" || !f.StreamEnded() {
		t.Fatalf("DATA %q", f.Data())
	}
	sc.Respond(r3.StreamID, 204, true)
	if ev := expect(t, q, EvResponse, ref3); ev.Status != 204 {
		t.Fatalf("%s", evString(ev))
	}
}

// TestProgressOptionsRefuseBadValues: each bound names itself when refused.
func TestProgressOptionsRefuseBadValues(t *testing.T) {
	for _, js := range []string{
		`{"http_opts":{"head_timeout":0}}`, `{"http_opts":{"discard_timeout":-1}}`,
		`{"http2_opts":{"frame_timeout":"soon"}}`, `{"http2_opts":{"send_window_timeout":1.5}}`,
	} {
		_, err := ParseOptions([]byte(js), 80)
		var oe *OptionError
		if !errors.As(err, &oe) || !strings.Contains(js, `"`+oe.Key+`"`) || !strings.Contains(err.Error(), oe.Key) {
			t.Fatalf("%s: %v", js, err)
		}
	}
}
