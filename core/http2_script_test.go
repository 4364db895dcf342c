package core

// HTTP/2 against the scripted frame-level server (tests/h2server): what
// real servers won't do on demand.

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"gunmetal/tests/h2server"
)

// h2script opens a client (h2c prior knowledge plus js's http2_opts and
// top-level keys) to a new scripted server and returns both ends, the
// handshake not done.
func h2script(t *testing.T, extra string) (*Queue, *Conn, *h2server.Server, *h2server.Conn) {
	t.Helper()
	s := h2server.Start(t)
	q := newQueue(t)
	js := `{"protocols":["http2"],"retry":0` + extra + `}`
	c := openTo(t, q, s.Port(), js)
	h2awaitUp(t, c)
	return q, c, s, s.Accept(t)
}

func isGoAway(code http2.ErrCode) func(http2.Frame) bool {
	return func(f http2.Frame) bool {
		g, ok := f.(*http2.GoAwayFrame)
		return ok && g.ErrCode == code
	}
}

func isRST(id uint32, code http2.ErrCode) func(http2.Frame) bool {
	return func(f http2.Frame) bool {
		r, ok := f.(*http2.RSTStreamFrame)
		return ok && r.StreamID == id && r.ErrCode == code
	}
}

func isWindowUpdate(id uint32) func(http2.Frame) bool {
	return func(f http2.Frame) bool {
		w, ok := f.(*http2.WindowUpdateFrame)
		return ok && w.StreamID == id
	}
}

// expectExit takes the connection's events until EXIT and checks its
// reason starts with prefix.
func expectExit(t *testing.T, q *Queue, c *Conn, prefix string) []*Event {
	t.Helper()
	evs := waitExit(t, q, c)
	if ex := evs[len(evs)-1]; !strings.HasPrefix(ex.Reason, prefix) {
		t.Fatalf("EXIT %q, want %q...", ex.Reason, prefix)
	}
	return evs
}

func TestH2Preface(t *testing.T) {
	_, _, _, sc := h2script(t, "")
	sc.ReadPreface()
	// Gun's windows: 8,000,000 for streams (SETTINGS) and the connection.
	if v, ok := sc.ClientSetting(http2.SettingInitialWindowSize); !ok || v != 8000000 {
		t.Fatalf("client settings %v", sc.ClientSettings)
	}
	f := sc.ReadFrame()
	if w, ok := f.(*http2.WindowUpdateFrame); !ok || w.StreamID != 0 || w.Increment != 8000000-65535 {
		t.Fatalf("second frame %s, want the connection's WINDOW_UPDATE", h2server.Summary(f))
	}
}

func TestH2Options(t *testing.T) {
	_, _, _, sc := h2script(t, `,"http2_opts":{"initial_stream_window_size":65535,"initial_connection_window_size":65535,
		"max_frame_size_received":32768,"max_decode_table_size":8192,"max_concurrent_streams":7,"max_header_list_size":50000}`)
	sc.ReadPreface()
	want := map[http2.SettingID]uint32{http2.SettingMaxFrameSize: 32768, http2.SettingHeaderTableSize: 8192,
		http2.SettingMaxConcurrentStreams: 7, http2.SettingMaxHeaderListSize: 50000}
	for id, v := range want {
		if got, ok := sc.ClientSetting(id); !ok || got != v {
			t.Fatalf("setting %v = %d %v, want %d (all: %v)", id, got, ok, v, sc.ClientSettings)
		}
	}
	if _, ok := sc.ClientSetting(http2.SettingInitialWindowSize); ok {
		t.Fatalf("default window announced: %v", sc.ClientSettings)
	}
	sc.Settings()
	// No connection WINDOW_UPDATE for a default-sized window: the next
	// frame is the SETTINGS ack.
	if f := sc.ReadFrame(); f.Header().Type != http2.FrameSettings {
		t.Fatalf("got %s", h2server.Summary(f))
	}
}

func TestH2HTTP1AnswerToPreface(t *testing.T) {
	q, c, _, sc := h2script(t, "")
	sc.ReadPreface()
	sc.Raw([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"))
	evs := expectExit(t, q, c, "connection_error: PROTOCOL_ERROR: Invalid connection preface received. Appears to be an HTTP/1 response?")
	if evs[0].Kind != EvDown || !strings.Contains(evs[0].Reason, "HTTP/1") {
		t.Fatalf("first event %s", evString(evs[0]))
	}
}

func TestH2BadPreface(t *testing.T) {
	q, c, _, sc := h2script(t, "")
	sc.ReadPreface()
	sc.Ping(false, [8]byte{})
	expectExit(t, q, c, "connection_error: PROTOCOL_ERROR: Invalid connection preface received. (RFC7540 3.5)")
}

func TestH2PrefaceTimeout(t *testing.T) {
	q, c, _, sc := h2script(t, `,"http2_opts":{"preface_timeout":200}`)
	sc.ReadPreface()
	sc.Expect("GOAWAY PROTOCOL_ERROR", isGoAway(http2.ErrCodeProtocol))
	expectExit(t, q, c, "connection_error: PROTOCOL_ERROR: The preface was not received")
}

func TestH2SettingsTimeout(t *testing.T) {
	q, c, _, sc := h2script(t, `,"http2_opts":{"settings_timeout":200}`)
	sc.ReadPreface()
	sc.Settings() // the server's own, but no ack of the client's
	sc.Expect("GOAWAY SETTINGS_TIMEOUT", isGoAway(http2.ErrCodeSettingsTimeout))
	expectExit(t, q, c, "connection_error: SETTINGS_TIMEOUT")
}

func TestH2RequestHeaders(t *testing.T) {
	q, c, s, sc := h2script(t, "")
	sc.Handshake()
	ref := get(t, c, "/p?q=1", Header{"X-Upper", "A"}, Header{"te", "trailers"})
	r := sc.ReadRequest()
	if r.Method != "GET" || r.Scheme != "http" || r.Path != "/p?q=1" || r.Authority != fmt.Sprintf("127.0.0.1:%d", s.Port()) || !r.EndStream {
		t.Fatalf("request %+v", r)
	}
	if v, ok := r.Header("x-upper"); !ok || v != "A" {
		t.Fatalf("headers %v", r.Headers)
	}
	if v, _ := r.Header("te"); v != "trailers" {
		t.Fatalf("headers %v", r.Headers)
	}
	sc.Respond(r.StreamID, 200, true)
	expect(t, q, EvResponse, ref)

	// The host header is the authority, and is not sent as a header.
	do(t, c, &Request{Method: "GET", Path: "/", Headers: []Header{{"Host", "example.org:8080"}}})
	r = sc.ReadRequest()
	if _, ok := r.Header("host"); ok || r.Authority != "example.org:8080" {
		t.Fatalf("request %+v", r)
	}
	// A body given whole gets its content-length.
	do(t, c, &Request{Method: "POST", Path: "/", Body: []byte("hello")})
	r = sc.ReadRequest()
	if v, _ := r.Header("content-length"); v != "5" || r.EndStream {
		t.Fatalf("request %+v", r)
	}
	if b := sc.ReadBody(r.StreamID); string(b) != "hello" {
		t.Fatalf("body %q", b)
	}
	// Refused before anything is written.
	if _, err := c.Request(&Request{Method: "GET", Path: "/", Headers: []Header{{"Transfer-Encoding", "chunked"}}}); !errors.Is(err, ErrBadArg) {
		t.Fatalf("%v", err)
	}
	sc.NoFrame(200*time.Millisecond, "HEADERS", func(f http2.Frame) bool { return f.Header().Type == http2.FrameHeaders })
}

// :authority brackets IPv6 literals and leaves out default ports.
func TestH2AuthorityIPv6(t *testing.T) {
	s := h2server.StartOn(t, "[::1]:0")
	q := newQueue(t)
	c, err := Open("::1", s.Port(), parseOpts(t, h2c, s.Port()), q, nil)
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, c)
	h2awaitUp(t, c)
	sc := s.Accept(t)
	sc.Handshake()
	get(t, c, "/")
	if r := sc.ReadRequest(); r.Authority != fmt.Sprintf("[::1]:%d", s.Port()) {
		t.Fatalf("authority %q", r.Authority)
	}
	for _, tc := range []struct {
		transport string
		port      int
		want      string
	}{{"tcp", 80, "[::1]"}, {"tls", 443, "[::1]"}, {"tcp", 443, "[::1]:443"}, {"tls", 8443, "[::1]:8443"}} {
		o := parseOpts(t, fmt.Sprintf(`{"transport":%q}`, tc.transport), tc.port)
		cc := &Conn{host: "::1", port: tc.port, opts: o}
		if got := cc.authority(); got != tc.want {
			t.Fatalf("%s:%d authority %q, want %q", tc.transport, tc.port, got, tc.want)
		}
	}
}

func TestH2RSTStreamCodes(t *testing.T) {
	q, c, _, sc := h2script(t, "")
	sc.Handshake()
	a := get(t, c, "/a")
	b := get(t, c, "/b")
	ra, rb := sc.ReadRequest(), sc.ReadRequest()
	sc.RST(ra.StreamID, http2.ErrCodeRefusedStream)
	ev := expect(t, q, EvError, a)
	if ev.Reason != "stream_error: REFUSED_STREAM" {
		t.Fatalf("%s", evString(ev))
	}
	sc.Respond(rb.StreamID, 200, false)
	expect(t, q, EvResponse, b)
	sc.RST(rb.StreamID, http2.ErrCodeInternal)
	if ev := expect(t, q, EvError, b); ev.Reason != "stream_error: INTERNAL_ERROR" {
		t.Fatalf("%s", evString(ev))
	}
	// A complete response followed by RST_STREAM NO_ERROR: nothing more.
	d := get(t, c, "/d")
	rd := sc.ReadRequest()
	sc.Respond(rd.StreamID, 200, true)
	sc.RST(rd.StreamID, http2.ErrCodeNo)
	expect(t, q, EvResponse, d)
	noEvent(t, q, 100*time.Millisecond)
}

// Cancel resets the stream; DATA the server had in flight still counts
// toward the connection window and is acknowledged.
func TestH2CancelLingeringData(t *testing.T) {
	q, c, _, sc := h2script(t, `,"http2_opts":{"initial_connection_window_size":65535,"initial_stream_window_size":65535}`)
	sc.Handshake()
	ref := get(t, c, "/")
	r := sc.ReadRequest()
	sc.Respond(r.StreamID, 200, false)
	expect(t, q, EvResponse, ref)
	if err := c.Cancel(ref); err != nil {
		t.Fatal(err)
	}
	sc.Expect("RST_STREAM CANCEL", isRST(r.StreamID, http2.ErrCodeCancel))
	chunk := make([]byte, 16384)
	for range 3 {
		sc.Data(r.StreamID, false, chunk)
	}
	sc.Data(r.StreamID, false, chunk[:16383]) // the whole 65535 window
	f := sc.Expect("connection WINDOW_UPDATE", isWindowUpdate(0)).(*http2.WindowUpdateFrame)
	if f.Increment < 65535 {
		t.Fatalf("increment %d", f.Increment)
	}
	noEvent(t, q, 100*time.Millisecond)
	// The connection is fine.
	ref = get(t, c, "/")
	r = sc.ReadRequest()
	sc.Respond(r.StreamID, 200, true)
	expect(t, q, EvResponse, ref)
}

// GOAWAY: streams above last-stream-id are unprocessed (safe to retry),
// the others finish, new requests fail with "closing", then the
// connection closes (DOWN normal) and reconnects.
func TestH2GoAway(t *testing.T) {
	s := h2server.Start(t)
	q := newQueue(t)
	c := openTo(t, q, s.Port(), `{"protocols":["http2"],"retry":1}`)
	h2awaitUp(t, c)
	sc := s.Accept(t)
	sc.Handshake()
	refs := []uint64{get(t, c, "/1"), get(t, c, "/2"), get(t, c, "/3")}
	var ids []uint32
	for range refs {
		ids = append(ids, sc.ReadRequest().StreamID)
	}
	sc.GoAway(ids[1], http2.ErrCodeNo, "bye")
	ev := expect(t, q, EvError, refs[2])
	if !strings.HasPrefix(ev.Reason, "unprocessed: ") || !strings.Contains(ev.Reason, "safe to retry") {
		t.Fatalf("%s", evString(ev))
	}
	g := sc.Expect("the client's GOAWAY", isGoAway(http2.ErrCodeNo)).(*http2.GoAwayFrame)
	if g.LastStreamID != 0 {
		t.Fatalf("client GOAWAY last %d", g.LastStreamID)
	}
	late := get(t, c, "/late")
	if ev := expect(t, q, EvError, late); ev.Reason != "closing" {
		t.Fatalf("%s", evString(ev))
	}
	sc.Respond(ids[0], 200, true)
	expect(t, q, EvResponse, refs[0])
	sc.Respond(ids[1], 200, false)
	expect(t, q, EvResponse, refs[1])
	sc.Data(ids[1], true, []byte("last"))
	if ev := expect(t, q, EvData, refs[1]); string(ev.Data) != "last" || !ev.Fin {
		t.Fatalf("%s", evString(ev))
	}
	down := expect(t, q, EvDown, 0)
	if down.Reason != "normal" || len(down.Killed) != 0 {
		t.Fatalf("%s", evString(down))
	}
	h2awaitUp(t, c)
	sc2 := s.Accept(t)
	sc2.Handshake()
	ref := get(t, c, "/again")
	sc2.Respond(sc2.ReadRequest().StreamID, 200, true)
	expect(t, q, EvResponse, ref)
}

// A GOAWAY on an idle connection closes it at once.
func TestH2GoAwayIdle(t *testing.T) {
	q, c, _, sc := h2script(t, "")
	sc.Handshake()
	sc.GoAway(0, http2.ErrCodeNo, "")
	evs := expectExit(t, q, c, "normal")
	if evs[0].Kind != EvDown || evs[0].Reason != "normal" {
		t.Fatalf("%s", evString(evs[0]))
	}
}

// GOAWAY with an error code: streams at or below last-stream-id still get
// their answer.
func TestH2GoAwayErrorCode(t *testing.T) {
	q, c, _, sc := h2script(t, "")
	sc.Handshake()
	a, b := get(t, c, "/a"), get(t, c, "/b")
	ra, _ := sc.ReadRequest(), sc.ReadRequest()
	sc.GoAway(ra.StreamID, http2.ErrCodeEnhanceYourCalm, "")
	if ev := expect(t, q, EvError, b); !strings.Contains(ev.Reason, "ENHANCE_YOUR_CALM") {
		t.Fatalf("%s", evString(ev))
	}
	sc.Respond(ra.StreamID, 200, true)
	expect(t, q, EvResponse, a)
	expectExit(t, q, c, "normal")
}

func TestH2ShutdownRefusesPushes(t *testing.T) {
	q, c, _, sc := h2script(t, "")
	sc.Handshake()
	ref := get(t, c, "/")
	r := sc.ReadRequest()
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	g := sc.Expect("GOAWAY NO_ERROR", isGoAway(http2.ErrCodeNo)).(*http2.GoAwayFrame)
	if g.LastStreamID != 0 {
		t.Fatalf("last %d", g.LastStreamID)
	}
	sc.Push(r.StreamID, 2, "GET", "http", r.Authority, "/pushed")
	sc.Expect("RST_STREAM CANCEL of the push", isRST(2, http2.ErrCodeCancel))
	sc.Respond(r.StreamID, 200, true)
	evs := waitExit(t, q, c)
	if len(evs) != 2 || evs[0].Kind != EvResponse || evs[0].Ref != ref || evs[1].Reason != "shutdown" {
		t.Fatalf("events %v", evs)
	}
}

func TestH2ShutdownClosingTimeout(t *testing.T) {
	q, c, _, sc := h2script(t, `,"http2_opts":{"closing_timeout":200}`)
	sc.Handshake()
	get(t, c, "/")
	sc.ReadRequest()
	start := time.Now()
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	evs := waitExit(t, q, c)
	if len(evs) != 1 || evs[0].Reason != "shutdown" || time.Since(start) < 150*time.Millisecond {
		t.Fatalf("events %v after %v", evs, time.Since(start))
	}
}

func TestH2PushScripted(t *testing.T) {
	q, c, _, sc := h2script(t, "")
	sc.Handshake()
	ref := get(t, c, "/")
	r := sc.ReadRequest()
	sc.Push(r.StreamID, 2, "GET", "http", r.Authority, "/style.css", "accept", "text/css")
	sc.Push(r.StreamID, 4, "GET", "http", "evil.example", "/x") // another authority
	sc.Push(r.StreamID, 6, "GET", "https", r.Authority, "/y")   // another scheme
	sc.Push(r.StreamID, 8, "POST", "http", r.Authority, "/z")   // not a safe method
	sc.Respond(r.StreamID, 200, false)
	sc.Respond(2, 200, false, "content-type", "text/css")
	sc.Data(2, true, []byte("body{}"))
	sc.Data(r.StreamID, true, []byte("main"))

	ev := expect(t, q, EvPush, ref)
	if ev.Method != "GET" || ev.URI != "http://"+r.Authority+"/style.css" || ev.NewRef == 0 || ev.NewRef == ref {
		t.Fatalf("%+v", ev)
	}
	if v, _ := header(ev.Headers, "accept"); v != "text/css" {
		t.Fatalf("push headers %v", ev.Headers)
	}
	pushed := ev.NewRef
	expect(t, q, EvResponse, ref)
	expect(t, q, EvResponse, pushed)
	if ev := expect(t, q, EvData, pushed); string(ev.Data) != "body{}" || !ev.Fin {
		t.Fatalf("%s", evString(ev))
	}
	expect(t, q, EvData, ref)
	for _, id := range []uint32{4, 6, 8} {
		sc.Expect(fmt.Sprintf("RST_STREAM PROTOCOL_ERROR of push %d", id), isRST(id, http2.ErrCodeProtocol))
	}
	noEvent(t, q, 100*time.Millisecond)
}

// Cancelling a pushed stream resets it; a PUSH_PROMISE on a cancelled
// parent is refused.
func TestH2PushCancel(t *testing.T) {
	q, c, _, sc := h2script(t, "")
	sc.Handshake()
	ref := get(t, c, "/")
	r := sc.ReadRequest()
	sc.Push(r.StreamID, 2, "GET", "http", r.Authority, "/a")
	ev := expect(t, q, EvPush, ref)
	if si, err := c.StreamInfo(ev.NewRef); err != nil || si.Path != "/a" {
		t.Fatalf("%+v %v", si, err)
	}
	if err := c.Cancel(ev.NewRef); err != nil {
		t.Fatal(err)
	}
	sc.Expect("RST_STREAM CANCEL of the push", isRST(2, http2.ErrCodeCancel))
	if err := c.Cancel(ref); err != nil {
		t.Fatal(err)
	}
	sc.Expect("RST_STREAM CANCEL", isRST(r.StreamID, http2.ErrCodeCancel))
	sc.Push(r.StreamID, 4, "GET", "http", r.Authority, "/b")
	sc.Expect("RST_STREAM CANCEL of the late push", isRST(4, http2.ErrCodeCancel))
	noEvent(t, q, 100*time.Millisecond)
}

// max_concurrent_streams: past the server's limit a request fails at once
// (too_many_streams), or waits for a slot with wait_for_stream_slot.
func TestH2MaxConcurrentStreams(t *testing.T) {
	q, c, _, sc := h2script(t, "")
	sc.Handshake(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 1})
	sc.Expect("SETTINGS ack", func(f http2.Frame) bool { s, ok := f.(*http2.SettingsFrame); return ok && s.IsAck() })
	a := get(t, c, "/a")
	b := get(t, c, "/b")
	if ev := expect(t, q, EvError, b); !strings.HasPrefix(ev.Reason, "too_many_streams") {
		t.Fatalf("%s", evString(ev))
	}
	r := sc.ReadRequest()
	sc.Respond(r.StreamID, 200, true)
	expect(t, q, EvResponse, a)
	// The slot is free again.
	a = get(t, c, "/a")
	sc.Respond(sc.ReadRequest().StreamID, 200, true)
	expect(t, q, EvResponse, a)
}

func TestH2WaitForStreamSlot(t *testing.T) {
	// The bound on waiting requests is max_waiting_streams, not
	// max_pending_requests (requests made while not connected).
	q, c, _, sc := h2script(t, `,"max_pending_requests":1,"http2_opts":{"wait_for_stream_slot":true,"max_waiting_streams":2}`)
	sc.Handshake(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 1})
	sc.Expect("SETTINGS ack", func(f http2.Frame) bool { s, ok := f.(*http2.SettingsFrame); return ok && s.IsAck() })
	a := get(t, c, "/a")
	b := do(t, c, &Request{Method: "POST", Path: "/b", Stream: true})
	d := get(t, c, "/d")
	e := get(t, c, "/e") // past the bound
	if ev := expect(t, q, EvError, e); !strings.HasPrefix(ev.Reason, "too_many_streams") || !strings.Contains(ev.Reason, "max_waiting_streams") {
		t.Fatalf("%s", evString(ev))
	}
	if si, err := c.StreamInfo(b); err != nil || si.State != "queued" {
		t.Fatalf("%+v %v", si, err)
	}
	// data() on a queued stream waits for its slot.
	dataDone := make(chan error, 1)
	go func() { dataDone <- c.Data(b, []byte("body"), true) }()
	ra := sc.ReadRequest()
	sc.NoFrame(150*time.Millisecond, "HEADERS", func(f http2.Frame) bool { return f.Header().Type == http2.FrameHeaders })
	sc.Respond(ra.StreamID, 200, true)
	expect(t, q, EvResponse, a)
	rb := sc.ReadRequest()
	if rb.Path != "/b" {
		t.Fatalf("%+v", rb)
	}
	if body := sc.ReadBody(rb.StreamID); string(body) != "body" {
		t.Fatalf("body %q", body)
	}
	if err := <-dataDone; err != nil {
		t.Fatal(err)
	}
	sc.Respond(rb.StreamID, 200, true)
	expect(t, q, EvResponse, b)
	rd := sc.ReadRequest()
	sc.Respond(rd.StreamID, 200, true)
	expect(t, q, EvResponse, d)
}

// Send windows of 0: Data blocks its caller until WINDOW_UPDATEs open
// both windows; a whole body waits in the stream.
func TestH2SendWindowZero(t *testing.T) {
	q, c, _, sc := h2script(t, "")
	sc.Handshake(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	sc.Expect("SETTINGS ack", func(f http2.Frame) bool { s, ok := f.(*http2.SettingsFrame); return ok && s.IsAck() })
	ref := do(t, c, &Request{Method: "POST", Path: "/", Stream: true})
	r := sc.ReadRequest()
	done := make(chan error, 1)
	go func() { done <- c.Data(ref, []byte("0123456789"), true) }()
	sc.NoFrame(200*time.Millisecond, "DATA", func(f http2.Frame) bool { return f.Header().Type == http2.FrameData })
	select {
	case err := <-done:
		t.Fatalf("Data returned %v with a window of 0", err)
	default:
	}
	sc.WindowUpdate(r.StreamID, 4)
	f := sc.ExpectType(http2.FrameData, int(r.StreamID)).(*http2.DataFrame)
	if string(f.Data()) != "0123" || f.StreamEnded() {
		t.Fatalf("first DATA %q", f.Data())
	}
	sc.WindowUpdate(r.StreamID, 100)
	f = sc.ExpectType(http2.FrameData, int(r.StreamID)).(*http2.DataFrame)
	if string(f.Data()) != "456789" || !f.StreamEnded() {
		t.Fatalf("second DATA %q", f.Data())
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// The connection window closed: a body given whole waits for it.
	ref2 := do(t, c, &Request{Method: "POST", Path: "/", Body: bytes.Repeat([]byte("x"), 70000)})
	r2 := sc.ReadRequest()
	sc.WindowUpdate(r2.StreamID, 100000)
	var got int
	for got < 65535-10 {
		got += len(sc.ExpectType(http2.FrameData, int(r2.StreamID)).(*http2.DataFrame).Data())
	}
	sc.NoFrame(200*time.Millisecond, "DATA", func(f http2.Frame) bool { return f.Header().Type == http2.FrameData })
	sc.WindowUpdate(0, 100000)
	for {
		f := sc.ExpectType(http2.FrameData, int(r2.StreamID)).(*http2.DataFrame)
		got += len(f.Data())
		if f.StreamEnded() {
			break
		}
	}
	if got != 70000 {
		t.Fatalf("%d bytes", got)
	}

	// A reset while Data waits for window: the caller is told.
	ref3 := do(t, c, &Request{Method: "POST", Path: "/", Stream: true})
	r3 := sc.ReadRequest()
	go func() { done <- c.Data(ref3, []byte("x"), false) }()
	sc.NoFrame(100*time.Millisecond, "DATA", func(f http2.Frame) bool { return f.Header().Type == http2.FrameData })
	sc.RST(r3.StreamID, http2.ErrCodeCancel)
	if err := <-done; !errors.Is(err, ErrNoStream) {
		t.Fatalf("Data after RST: %v", err)
	}
	expect(t, q, EvError, ref3)
	_ = ref2

	// The connection dying while Data waits: the caller is told.
	ref4 := do(t, c, &Request{Method: "POST", Path: "/", Stream: true})
	sc.ReadRequest()
	go func() { done <- c.Data(ref4, []byte("x"), false) }()
	sc.NoFrame(100*time.Millisecond, "DATA", func(f http2.Frame) bool { return f.Header().Type == http2.FrameData })
	sc.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Data after the connection died: %v", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Data still blocked after the connection died")
	}
}

// WINDOW_UPDATEs follow the host: nothing while it holds the data, then
// as it takes the events.
func TestH2ReceiveWindowFollowsHost(t *testing.T) {
	q, c, _, sc := h2script(t, `,"http2_opts":{"initial_connection_window_size":65535,"initial_stream_window_size":65535}`)
	sc.Handshake()
	ref := get(t, c, "/")
	r := sc.ReadRequest()
	sc.Respond(r.StreamID, 200, false)
	chunk := make([]byte, 16384)
	for range 3 {
		sc.Data(r.StreamID, false, chunk)
	}
	sc.Data(r.StreamID, false, chunk[:16383])
	sc.NoFrame(300*time.Millisecond, "WINDOW_UPDATE", func(f http2.Frame) bool { return f.Header().Type == http2.FrameWindowUpdate })
	expect(t, q, EvResponse, ref)
	for range 4 {
		expect(t, q, EvData, ref)
	}
	sc.Expect("stream WINDOW_UPDATE", isWindowUpdate(r.StreamID))
	sc.Expect("connection WINDOW_UPDATE", isWindowUpdate(0))
	// More data may now flow.
	sc.Data(r.StreamID, true, chunk)
	if ev := expect(t, q, EvData, ref); !ev.Fin {
		t.Fatalf("%s", evString(ev))
	}
}

// Gun's flow: a stream whose flow is 0 gets no stream WINDOW_UPDATE (the
// connection's still comes) until UpdateFlow.
func TestH2Flow(t *testing.T) {
	q, c, _, sc := h2script(t, `,"http2_opts":{"initial_connection_window_size":65535,"initial_stream_window_size":65535}`)
	sc.Handshake()
	ref := do(t, c, &Request{Method: "GET", Path: "/", Flow: 1})
	r := sc.ReadRequest()
	sc.Respond(r.StreamID, 200, false)
	chunk := make([]byte, 16384)
	for range 3 {
		sc.Data(r.StreamID, false, chunk)
	}
	sc.Data(r.StreamID, false, chunk[:16383])
	expect(t, q, EvResponse, ref)
	for range 4 {
		expect(t, q, EvData, ref)
	}
	sc.Expect("connection WINDOW_UPDATE", isWindowUpdate(0))
	sc.NoFrame(300*time.Millisecond, "stream WINDOW_UPDATE", isWindowUpdate(r.StreamID))
	if si, _ := c.StreamInfo(ref); si.Flow != 0 {
		t.Fatalf("flow %d", si.Flow)
	}
	if err := c.UpdateFlow(ref, 5); err != nil {
		t.Fatal(err)
	}
	sc.Expect("stream WINDOW_UPDATE", isWindowUpdate(r.StreamID))
}

// A server sending more than the window it was given.
func TestH2FlowControlViolation(t *testing.T) {
	q, c, _, sc := h2script(t, `,"http2_opts":{"initial_connection_window_size":65535,"initial_stream_window_size":1000}`)
	sc.Handshake()
	ref := get(t, c, "/")
	r := sc.ReadRequest()
	sc.Respond(r.StreamID, 200, false)
	sc.Data(r.StreamID, false, make([]byte, 1001))
	expect(t, q, EvResponse, ref)
	if ev := expect(t, q, EvError, ref); !strings.HasPrefix(ev.Reason, "stream_error: FLOW_CONTROL_ERROR") {
		t.Fatalf("%s", evString(ev))
	}
	sc.Expect("RST_STREAM FLOW_CONTROL_ERROR", isRST(r.StreamID, http2.ErrCodeFlowControl))
	// Past the connection window (the host holds the data): the
	// connection goes.
	q, c, _, sc = h2script(t, `,"http2_opts":{"initial_connection_window_size":65535}`)
	sc.Handshake()
	get(t, c, "/")
	r = sc.ReadRequest()
	sc.Respond(r.StreamID, 200, false)
	for range 5 {
		sc.Data(r.StreamID, false, make([]byte, 16384))
	}
	sc.Expect("GOAWAY FLOW_CONTROL_ERROR", isGoAway(http2.ErrCodeFlowControl))
	expectExit(t, q, c, "connection_error: FLOW_CONTROL_ERROR")
}

func TestH2Keepalive(t *testing.T) {
	q, c, _, sc := h2script(t, `,"http2_opts":{"keepalive":50,"keepalive_tolerance":3}`)
	sc.Handshake()
	isPing := func(f http2.Frame) bool { p, ok := f.(*http2.PingFrame); return ok && !p.IsAck() }
	for range 3 {
		p := sc.Expect("keepalive PING", isPing).(*http2.PingFrame)
		if p.Data != [8]byte{} {
			t.Fatalf("keepalive payload %x", p.Data)
		}
		sc.Ping(true, p.Data)
	}
	noEvent(t, q, 100*time.Millisecond)
	// Unrequested acks do not count as answers: stop answering, and the
	// connection goes after 3 unanswered pings.
	sc.Ping(true, [8]byte{})
	sc.Ping(true, [8]byte{})
	sc.Expect("GOAWAY NO_ERROR", isGoAway(http2.ErrCodeNo))
	expectExit(t, q, c, "connection_error: NO_ERROR: The number of unacknowledged pings exceed the configured tolerance value.")
}

// The server's PING gets an ack; a user ping's ack comes back as NOTIFY.
func TestH2PingFrames(t *testing.T) {
	q, c, _, sc := h2script(t, "")
	sc.Handshake()
	sc.Ping(false, [8]byte{1, 2, 3, 4, 5, 6, 7, 8})
	p := sc.Expect("PING ack", func(f http2.Frame) bool { p, ok := f.(*http2.PingFrame); return ok && p.IsAck() }).(*http2.PingFrame)
	if p.Data != [8]byte{1, 2, 3, 4, 5, 6, 7, 8} {
		t.Fatalf("ack %x", p.Data)
	}
	ref, err := c.Ping()
	if err != nil {
		t.Fatal(err)
	}
	up := sc.Expect("user PING", func(f http2.Frame) bool { p, ok := f.(*http2.PingFrame); return ok && !p.IsAck() }).(*http2.PingFrame)
	if up.Data == [8]byte{} {
		t.Fatalf("user ping payload 0 is keepalive's")
	}
	sc.Ping(true, [8]byte{9, 9, 9, 9, 9, 9, 9, 9}) // not ours: ignored
	noEvent(t, q, 100*time.Millisecond)
	sc.Ping(true, up.Data)
	if ev := expect(t, q, EvNotify, ref); ev.Reason != "ping_ack" {
		t.Fatalf("%s", evString(ev))
	}
}

func TestH2SettingsChanged(t *testing.T) {
	q, _, _, sc := h2script(t, `,"http2_opts":{"notify_settings_changed":true}`)
	sc.Handshake(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 10})
	ev := expect(t, q, EvNotify, 0)
	if v, _ := header(ev.Headers, "max_concurrent_streams"); ev.Reason != "settings_changed" || v != "10" {
		t.Fatalf("%s %v", evString(ev), ev.Headers)
	}
	sc.Settings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1000}, http2.Setting{ID: http2.SettingMaxFrameSize, Val: 20000})
	ev = expect(t, q, EvNotify, 0)
	got := map[string]string{}
	for _, h := range ev.Headers {
		got[h.Name] = h.Value
	}
	if got["initial_window_size"] != "1000" || got["max_frame_size"] != "20000" || got["max_concurrent_streams"] != "10" || got["max_header_list_size"] != "infinity" {
		t.Fatalf("settings %v", got)
	}
}

func TestH2Trailers(t *testing.T) {
	q, c, _, sc := h2script(t, "")
	sc.Handshake()
	ref := get(t, c, "/")
	r := sc.ReadRequest()
	sc.Respond(r.StreamID, 103, false, "link", "</a>")
	sc.Respond(r.StreamID, 100, false)
	sc.Respond(r.StreamID, 200, false, "content-length", "5")
	sc.Data(r.StreamID, false, []byte("hel"))
	sc.Data(r.StreamID, false, []byte("lo"))
	sc.Headers(r.StreamID, true, "x-sum", "42")
	rs := readStream(t, q, ref)
	if len(rs.informs) != 2 || string(rs.data) != "hello" || len(rs.trailers) != 1 || rs.trailers[0].Value != "42" {
		t.Fatalf("%+v", rs)
	}
}

// Malformed responses are stream errors; the connection goes on.
func TestH2MalformedResponses(t *testing.T) {
	q, c, _, sc := h2script(t, "")
	sc.Handshake()
	cases := []struct {
		name string
		send func(id uint32)
		want string
	}{
		{"no status", func(id uint32) { sc.Headers(id, true, "x", "y") }, "stream_error: PROTOCOL_ERROR"},
		{"upper-case name", func(id uint32) { sc.Headers(id, true, ":status", "200", "X-Up", "y") }, "stream_error: PROTOCOL_ERROR: Header name"},
		{"connection header", func(id uint32) { sc.Headers(id, true, ":status", "200", "connection", "close") }, "stream_error: PROTOCOL_ERROR: Connection-specific"},
		{"101", func(id uint32) { sc.Headers(id, false, ":status", "101") }, "stream_error: PROTOCOL_ERROR: A 101"},
		{"body longer than content-length", func(id uint32) {
			sc.Respond(id, 200, false, "content-length", "2")
			sc.Data(id, true, []byte("abc"))
		}, "stream_error: PROTOCOL_ERROR: The response body"},
		{"body shorter than content-length", func(id uint32) {
			sc.Respond(id, 200, false, "content-length", "5")
			sc.Data(id, true, []byte("abc"))
		}, "stream_error: PROTOCOL_ERROR: The response body"},
		{"trailers without END_STREAM", func(id uint32) {
			sc.Respond(id, 200, false)
			sc.Headers(id, false, "x", "y")
		}, "stream_error: PROTOCOL_ERROR: Trailing"},
		{"DATA before HEADERS", func(id uint32) { sc.Data(id, true, []byte("x")) }, "stream_error: PROTOCOL_ERROR: DATA frame received before"},
	}
	for _, tc := range cases {
		ref := get(t, c, "/")
		r := sc.ReadRequest()
		tc.send(r.StreamID)
		var ev *Event
		for ev == nil || ev.Kind != EvError {
			ev = next(t, q)
			if ev.Ref != ref || (ev.Kind != EvError && ev.Kind != EvResponse) {
				t.Fatalf("%s: %s", tc.name, evString(ev))
			}
		}
		if !strings.HasPrefix(ev.Reason, tc.want) {
			t.Fatalf("%s: %s, want %q", tc.name, evString(ev), tc.want)
		}
		sc.Expect(tc.name+": RST_STREAM", isRST(r.StreamID, http2.ErrCodeProtocol))
	}
}

// Size limits: max_frame_size_received, max_fragmented_header_block_size,
// CONTINUATION floods, header lists.
func TestH2SizeLimits(t *testing.T) {
	t.Run("frame", func(t *testing.T) {
		q, c, _, sc := h2script(t, "")
		sc.Handshake()
		get(t, c, "/")
		r := sc.ReadRequest()
		sc.Respond(r.StreamID, 200, false)
		sc.Data(r.StreamID, false, make([]byte, 16385))
		sc.Expect("GOAWAY FRAME_SIZE_ERROR", isGoAway(http2.ErrCodeFrameSize))
		expectExit(t, q, c, "connection_error: FRAME_SIZE_ERROR")
	})
	t.Run("bigger frames allowed", func(t *testing.T) {
		q, c, _, sc := h2script(t, `,"http2_opts":{"max_frame_size_received":100000}`)
		sc.Handshake()
		ref := get(t, c, "/")
		r := sc.ReadRequest()
		sc.Respond(r.StreamID, 200, false)
		sc.Data(r.StreamID, true, make([]byte, 100000))
		expect(t, q, EvResponse, ref)
		if ev := expect(t, q, EvData, ref); len(ev.Data) != 100000 {
			t.Fatalf("%s", evString(ev))
		}
	})
	t.Run("fragmented header block", func(t *testing.T) {
		q, c, _, sc := h2script(t, "")
		sc.Handshake()
		get(t, c, "/")
		r := sc.ReadRequest()
		block := sc.Block(":status", "200", "x-big", strings.Repeat("v", 40000))
		sc.RawFrame(http2.FrameHeaders, 0, r.StreamID, block[:16000])
		sc.RawFrame(http2.FrameContinuation, 0, r.StreamID, block[16000:32000])
		sc.RawFrame(http2.FrameContinuation, http2.FlagContinuationEndHeaders, r.StreamID, block[32000:])
		sc.Expect("GOAWAY ENHANCE_YOUR_CALM", isGoAway(http2.ErrCodeEnhanceYourCalm))
		expectExit(t, q, c, "connection_error: ENHANCE_YOUR_CALM")
	})
	t.Run("continuation flood", func(t *testing.T) {
		q, c, _, sc := h2script(t, "")
		sc.Handshake()
		get(t, c, "/")
		r := sc.ReadRequest()
		sc.RawFrame(http2.FrameHeaders, 0, r.StreamID, sc.Block(":status", "200"))
		var flood []byte
		for range 1000 {
			flood = append(flood, h2server.Frame(http2.FrameContinuation, 0, r.StreamID, nil)...)
		}
		sc.Raw(flood)
		expectExit(t, q, c, "connection_error: ENHANCE_YOUR_CALM")
	})
	t.Run("header list", func(t *testing.T) {
		q, c, _, sc := h2script(t, `,"http2_opts":{"max_header_list_size":1000}`)
		sc.Handshake()
		ref := get(t, c, "/")
		r := sc.ReadRequest()
		sc.Respond(r.StreamID, 200, true, "x-big", strings.Repeat("v", 900), "x-more", strings.Repeat("w", 200))
		if ev := expect(t, q, EvError, ref); !strings.HasPrefix(ev.Reason, "stream_error: PROTOCOL_ERROR: The header list is larger") {
			t.Fatalf("%s", evString(ev))
		}
		// The HPACK context survived: the next response decodes.
		ref = get(t, c, "/")
		r = sc.ReadRequest()
		sc.Respond(r.StreamID, 200, true, "x-small", "v")
		expect(t, q, EvResponse, ref)
	})
	t.Run("max_headers", func(t *testing.T) {
		q, c, _, sc := h2script(t, `,"http2_opts":{"max_headers":3}`)
		sc.Handshake()
		ref := get(t, c, "/")
		r := sc.ReadRequest()
		sc.Respond(r.StreamID, 200, true, "a", "1", "b", "2", "c", "3", "d", "4")
		if ev := expect(t, q, EvError, ref); !strings.Contains(ev.Reason, "max_headers") {
			t.Fatalf("%s", evString(ev))
		}
	})
	t.Run("bad hpack", func(t *testing.T) {
		q, c, _, sc := h2script(t, "")
		sc.Handshake()
		get(t, c, "/")
		r := sc.ReadRequest()
		sc.RawFrame(http2.FrameHeaders, http2.FlagHeadersEndHeaders, r.StreamID, []byte{0xff, 0xff, 0xff, 0xff})
		sc.Expect("GOAWAY COMPRESSION_ERROR", isGoAway(http2.ErrCodeCompression))
		expectExit(t, q, c, "connection_error: COMPRESSION_ERROR")
	})
}

// Frames for streams the client never opened end the connection.
func TestH2IdleStreamFrames(t *testing.T) {
	q, c, _, sc := h2script(t, "")
	sc.Handshake()
	sc.Respond(1, 200, true)
	sc.Expect("GOAWAY PROTOCOL_ERROR", isGoAway(http2.ErrCodeProtocol))
	expectExit(t, q, c, "connection_error: PROTOCOL_ERROR")
}

// A connection error tells the streams' owner (a connection-wide ERROR),
// then each stream is reported closed.
func TestH2ConnectionErrorWithStreams(t *testing.T) {
	q, c, _, sc := h2script(t, "")
	sc.Handshake()
	ref := get(t, c, "/")
	sc.ReadRequest()
	sc.RawFrame(http2.FrameData, 0, 0, []byte("x")) // DATA on stream 0
	evs := expectExit(t, q, c, "connection_error: PROTOCOL_ERROR")
	var kinds []string
	for _, ev := range evs {
		kinds = append(kinds, evString(ev))
	}
	if len(evs) != 4 || evs[0].Kind != EvError || evs[0].Ref != 0 || evs[1].Kind != EvError || evs[1].Ref != ref ||
		!strings.HasPrefix(evs[1].Reason, "closed: connection_error") || evs[2].Kind != EvDown || evs[2].Killed[0] != ref {
		t.Fatalf("events %v", kinds)
	}
}

// Identical requests reuse their header block while the HPACK tables stay
// as they are; the server decodes every one, also after the server shrinks
// the encoder's table.
func TestH2HeaderBlockReuse(t *testing.T) {
	_, c, _, sc := h2script(t, "")
	sc.Handshake()
	check := func(path string, hs ...Header) {
		t.Helper()
		do(t, c, &Request{Method: "GET", Path: path, Headers: hs})
		r := sc.ReadRequest()
		if r.Path != path || len(r.Headers) != len(hs) {
			t.Fatalf("request %+v, want %s %v", r, path, hs)
		}
		for i, h := range hs {
			if r.Headers[i].Name != strings.ToLower(h.Name) || r.Headers[i].Value != h.Value {
				t.Fatalf("request %+v, want %s %v", r, path, hs)
			}
		}
	}
	a := Header{"X-A", "1"}
	for range 3 {
		check("/same", a)
	}
	check("/other", Header{"x-b", "2"})
	check("/same", a)
	check("/same", a)
	check("/same")
	sc.Settings(http2.Setting{ID: http2.SettingHeaderTableSize, Val: 0})
	sc.Expect("SETTINGS ack", func(f http2.Frame) bool { s, ok := f.(*http2.SettingsFrame); return ok && s.IsAck() })
	sc.Fr.ReadMetaHeaders.SetMaxDynamicTableSize(0)
	for range 3 {
		check("/same", a)
	}
	check("/x", a, Header{"x-c", strings.Repeat("c", 100)})
	check("/same", a)
}

// Header blocks split over CONTINUATION frames, for a response, a push
// promise and trailers; padding and priority fields are skipped.
func TestH2Continuation(t *testing.T) {
	q, c, _, sc := h2script(t, "")
	sc.Handshake()
	ref := get(t, c, "/")
	r := sc.ReadRequest()
	push := sc.Block(":method", "GET", ":scheme", "http", ":authority", r.Authority, ":path", "/p", "x-long", strings.Repeat("p", 300))
	payload := append([]byte{0, 0, 0, 2}, push[:10]...)
	sc.RawFrame(http2.FramePushPromise, 0, r.StreamID, payload)
	sc.RawFrame(http2.FrameContinuation, 0, r.StreamID, push[10:100])
	sc.RawFrame(http2.FrameContinuation, http2.FlagContinuationEndHeaders, r.StreamID, push[100:])
	resp := sc.Block(":status", "200", "x-a", strings.Repeat("a", 200))
	padded := append(append([]byte{3}, 0, 0, 0, 0, 1), resp[:5]...) // pad length 3, priority (5 bytes)
	padded = append(padded, 0, 0, 0)
	sc.RawFrame(http2.FrameHeaders, http2.FlagHeadersPadded|http2.FlagHeadersPriority, r.StreamID, padded)
	sc.RawFrame(http2.FrameContinuation, http2.FlagContinuationEndHeaders, r.StreamID, resp[5:])
	sc.RawFrame(http2.FrameData, http2.FlagDataPadded, r.StreamID, []byte{2, 'h', 'i', 0, 0})
	tr := sc.Block("x-t", "1")
	sc.RawFrame(http2.FrameHeaders, http2.FlagHeadersEndStream, r.StreamID, tr[:1])
	sc.RawFrame(http2.FrameContinuation, http2.FlagContinuationEndHeaders, r.StreamID, tr[1:])

	ev := expect(t, q, EvPush, ref)
	if ev.URI != "http://"+r.Authority+"/p" || len(ev.Headers) != 1 || len(ev.Headers[0].Value) != 300 {
		t.Fatalf("%+v", ev)
	}
	if ev := expect(t, q, EvResponse, ref); len(ev.Headers) != 1 || len(ev.Headers[0].Value) != 200 {
		t.Fatalf("%+v", ev)
	}
	if ev := expect(t, q, EvData, ref); string(ev.Data) != "hi" || ev.Fin {
		t.Fatalf("%s", evString(ev))
	}
	if ev := expect(t, q, EvTrailers, ref); len(ev.Headers) != 1 || ev.Headers[0].Value != "1" {
		t.Fatalf("%+v", ev)
	}
	// Another frame inside a block is a connection error.
	get(t, c, "/")
	r = sc.ReadRequest()
	sc.RawFrame(http2.FrameHeaders, 0, r.StreamID, sc.Block(":status", "200")[:1])
	sc.Ping(false, [8]byte{})
	sc.Expect("GOAWAY PROTOCOL_ERROR", isGoAway(http2.ErrCodeProtocol))
	expectExit(t, q, c, "connection_error: PROTOCOL_ERROR: Got PING")
}

// Request bodies wait for the server's first SETTINGS (its initial window
// may be smaller than the default); HEADERS do not.
func TestH2BodyWaitsForServerSettings(t *testing.T) {
	q, c, _, sc := h2script(t, "")
	ref := do(t, c, &Request{Method: "POST", Path: "/", Body: []byte("abc")})
	sc.ReadPreface()
	r := sc.ReadRequest()
	sc.NoFrame(200*time.Millisecond, "DATA", func(f http2.Frame) bool { return f.Header().Type == http2.FrameData })
	sc.Settings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 2})
	sc.SettingsAck()
	f := sc.ExpectType(http2.FrameData, int(r.StreamID)).(*http2.DataFrame)
	if string(f.Data()) != "ab" || f.StreamEnded() {
		t.Fatalf("DATA %q", f.Data())
	}
	sc.WindowUpdate(r.StreamID, 10)
	f = sc.ExpectType(http2.FrameData, int(r.StreamID)).(*http2.DataFrame)
	if string(f.Data()) != "c" || !f.StreamEnded() {
		t.Fatalf("DATA %q", f.Data())
	}
	sc.Respond(r.StreamID, 204, true)
	expect(t, q, EvResponse, ref)
}
