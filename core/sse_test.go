package core

// Server-sent events (content_handlers gun_sse_h, sse.go): the parser on
// its own, split at every byte, then over HTTP/1.1 and HTTP/2 against the
// test server and scripted servers.

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"gunmetal/tests/testserver"
)

// sseString renders an SSE event as the tests compare it.
func sseString(ev *Event) string {
	if ev.Fin && len(ev.Headers) == 0 {
		return "fin"
	}
	var b strings.Builder
	for _, h := range ev.Headers {
		fmt.Fprintf(&b, "%s=%q ", h.Name, h.Value)
	}
	if ev.Data != nil {
		fmt.Fprintf(&b, "data=%q", ev.Data)
	}
	return strings.TrimSpace(b.String())
}

// sseRun feeds the stream in the given pieces and returns the events, and
// the error if the limit is hit.
func sseRun(max int, pieces ...string) ([]string, error) {
	p := &sseParser{max: max, bom: true}
	var got []string
	emit := func(ev *Event) { got = append(got, sseString(ev)) }
	for _, s := range pieces {
		if err := p.parse([]byte(s), emit); err != nil {
			return got, err
		}
	}
	return got, nil
}

// The events testserver.SSEStream gives.
var sseStreamWant = []string{
	`retry="1500"`,
	`last_event_id="" event_type="message" data="first\nsecond"`,
	`last_event_id="7" event_type="tick" data="x"`,
	`last_event_id="8"`,
	`last_event_id="8" event_type="message" data="after"`,
}

func TestSSEParseRules(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		// The WHATWG examples (HTML 9.2.6).
		{"data: YHOO\ndata: +2\ndata: 10\n\n", []string{`last_event_id="" event_type="message" data="YHOO\n+2\n10"`}},
		{": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n", []string{
			`last_event_id="1" event_type="message" data="first event"`,
			`last_event_id="" event_type="message" data="second event"`,
			`last_event_id="" event_type="message" data=" third event"`}},
		{"data\n\ndata\ndata\n\ndata:\n", []string{
			`last_event_id="" event_type="message" data=""`,
			`last_event_id="" event_type="message" data="\n"`}},
		{"data:test\n\ndata: test\n\n", []string{
			`last_event_id="" event_type="message" data="test"`,
			`last_event_id="" event_type="message" data="test"`}},
		// The last event ID persists; an id with NUL is ignored; event
		// types do not persist; unknown fields are ignored.
		{"id: 5\ndata: a\n\nid: x\x00y\nevent: e\nfoo: bar\ndata: b\n\ndata: c\n\n", []string{
			`last_event_id="5" event_type="message" data="a"`,
			`last_event_id="5" event_type="e" data="b"`,
			`last_event_id="5" event_type="message" data="c"`}},
		// retry: digits only; an event without data is not dispatched.
		{"retry: 12a\nretry: -1\nretry:\n\nevent: lost\n\nretry: 0042\ndata: d\n\n", []string{
			`last_event_id="" event_type="message" retry="0042" data="d"`}},
		// A BOM only at the start; invalid UTF-8 is replaced.
		{"\xEF\xBB\xBFdata: \xEF\xBB\xBFa\xff\n\n", []string{
			fmt.Sprintf(`last_event_id="" event_type="message" data=%q`, "\uFEFFa\uFFFD")}},
		// A field name is the whole line without a colon; only one space
		// after the colon goes.
		{"data:   x  \ndata\n\n", []string{`last_event_id="" event_type="message" data="  x  \n"`}},
		// Pending data at the end is discarded.
		{"data: never\n", nil},
		{"data: never", nil},
	}
	for _, c := range cases {
		got, err := sseRun(1<<20, c.in)
		if err != nil || fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%q:\n got %q (%v)\nwant %q", c.in, got, err, c.want)
		}
		// The same at every split point, and byte by byte.
		for i := 0; i <= len(c.in); i++ {
			got, _ := sseRun(1<<20, c.in[:i], c.in[i:])
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("%q split at %d: got %q", c.in, i, got)
			}
		}
		got, _ = sseRun(1<<20, strings.Split(c.in, "")...)
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%q byte by byte: got %q", c.in, got)
		}
	}
}

// CR, LF and CRLF end lines however the stream is split, a CR at the end
// of one piece and its LF at the start of the next included.
func TestSSEParseSplitLineEnds(t *testing.T) {
	s := testserver.SSEStream
	for i := 0; i <= len(s); i++ {
		for j := i; j <= len(s); j++ {
			got, err := sseRun(1<<20, s[:i], s[i:j], s[j:])
			if err != nil || fmt.Sprint(got) != fmt.Sprint(sseStreamWant) {
				t.Fatalf("split at %d, %d: %q (%v)", i, j, got, err)
			}
		}
	}
	// CRLF, CR and LF all give the same events.
	base := "id: 1\nevent: e\ndata: a\ndata: b\n\n: c\n\ndata: z\n\n"
	want, _ := sseRun(1<<20, base)
	for _, eol := range []string{"\r\n", "\r"} {
		in := strings.ReplaceAll(base, "\n", eol)
		for i := 0; i <= len(in); i++ {
			if got, _ := sseRun(1<<20, in[:i], in[i:]); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("%q split at %d: %q, want %q", in, i, got, want)
			}
		}
	}
}

func TestSSEParseLimit(t *testing.T) {
	// Exactly at the limit passes; one byte more fails, split or not.
	ok := "data: aaa\n\n" // 10 bytes: the line and its LF
	if got, err := sseRun(10, ok, ok); err != nil || len(got) != 2 {
		t.Fatalf("at the limit: %q %v", got, err)
	}
	over := "data: aaaa\n\n"
	for i := 0; i <= len(over); i++ {
		_, err := sseRun(10, over[:i], over[i:])
		if err == nil || !strings.Contains(err.Error(), "max_event_size") || !strings.HasPrefix(err.Error(), "limit_reached: ") {
			t.Fatalf("split at %d: %v", i, err)
		}
	}
	// A line that never ends is refused before it grows past the limit.
	if _, err := sseRun(10, strings.Repeat("x", 11)); err == nil {
		t.Fatal("an endless line passed the limit")
	}
	// Many data lines add up.
	if _, err := sseRun(10, strings.Repeat("data: ab\n", 4)); err == nil {
		t.Fatal("data lines passed the limit together")
	}
	// Comments between events do not add up.
	if got, err := sseRun(10, strings.Repeat(": ka\n", 100)+"data: a\n\n"); err != nil || len(got) != 1 {
		t.Fatalf("comments: %q %v", got, err)
	}
}

func TestSSEOptions(t *testing.T) {
	good := map[string]ContentHandlers{
		`["gun_sse_h", "gun_data_h"]`: {Set: true, SSE: true, MaxEventSize: 10240},
		`["sse"]`:                     {Set: true, SSE: true, MaxEventSize: 10240, Drop: true},
		`[["gun_sse_h", {"max_event_size": 5}], "data"]`:            {Set: true, SSE: true, MaxEventSize: 5},
		`["gun_data_h", "gun_sse_h"]`:                               {Set: true},
		`["gun_data_h"]`:                                            {Set: true},
		`[["gun_sse_h", {}], ["gun_sse_h", {"max_event_size": 9}]]`: {Set: true, SSE: true, MaxEventSize: 10240, Drop: true},
	}
	for js, want := range good {
		for _, set := range []string{"http_opts", "http2_opts"} {
			o, err := ParseOptions([]byte(`{"`+set+`": {"content_handlers": `+js+`}}`), 80)
			if err != nil {
				t.Fatalf("%s %s: %v", set, js, err)
			}
			got := o.HTTP.ContentHandlers
			if set == "http2_opts" {
				got = o.HTTP2.ContentHandlers
			}
			if got != want {
				t.Errorf("%s %s: %+v, want %+v", set, js, got, want)
			}
		}
		if got, err := ParseContentHandlers([]byte(js)); err != nil || got != want {
			t.Errorf("request %s: %+v %v", js, got, err)
		}
	}
	bad := map[string]string{
		`[]`:          "http_opts.content_handlers",
		`"gun_sse_h"`: "must be a non-empty list",
		`["my_h"]`:    `handler "my_h"`,
		`[["gun_sse_h", {"max_event_size": "infinity"}]]`: "http_opts.content_handlers.gun_sse_h.max_event_size",
		`[["gun_sse_h", {"max_event_size": 0}]]`:          "must be a positive integer",
		`[["gun_sse_h", {"other": 1}]]`:                   "unknown option",
		`[["gun_data_h", {"max_event_size": 1}]]`:         "gun_data_h.max_event_size",
		`[["gun_sse_h"]]`:                                 "must be a non-empty list",
	}
	for js, frag := range bad {
		_, err := ParseOptions([]byte(`{"http_opts": {"content_handlers": `+js+`}}`), 80)
		var oe *OptionError
		if !errors.As(err, &oe) || !strings.Contains(err.Error(), frag) {
			t.Errorf("%s: %v, want an option error with %q", js, err, frag)
		}
	}
}

// sseExpect takes the stream's SSE events through fin and compares them.
func sseExpect(t *testing.T, q *Queue, ref uint64, want []string) {
	t.Helper()
	var got []string
	for {
		ev := next(t, q)
		if ev.Ref != ref || ev.Kind != EvSSE {
			t.Fatalf("got %s after %q, want SSE events", evString(ev), got)
		}
		if ev.Fin {
			if len(ev.Headers) != 0 || len(ev.Data) != 0 {
				t.Fatalf("fin event with content: %s", sseString(ev))
			}
			break
		}
		got = append(got, sseString(ev))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events\n got %q\nwant %q", got, want)
	}
}

func TestSSETestServer(t *testing.T) {
	for _, tc := range []struct{ name, opts, proto string }{
		{"http", `{"http_opts": {"content_handlers": ["gun_sse_h", "gun_data_h"]}}`, "http"},
		{"http2", `{"protocols": ["http2"], "http2_opts": {"content_handlers": ["gun_sse_h", "gun_data_h"]}}`, "http2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := newQueue(t)
			c := openTo(t, q, srv.HTTPPort(), tc.opts)
			if p, err := c.AwaitUp(waitFor); err != nil || p != tc.proto {
				t.Fatalf("up %q %v", p, err)
			}
			ref := get(t, c, "/sse", Header{"accept", "text/event-stream"})
			if ev := expect(t, q, EvResponse, ref); ev.Fin || ev.Status != 200 {
				t.Fatalf("%s", evString(ev))
			}
			sseExpect(t, q, ref, sseStreamWant)
			// Another type of body stays DATA (gun_data_h).
			ref = get(t, c, "/sse?ct=text/plain")
			expect(t, q, EvResponse, ref)
			var body []byte
			for {
				ev := expect(t, q, EvData, ref)
				body = append(body, ev.Data...)
				if ev.Fin {
					break
				}
			}
			if string(body) != testserver.SSEStream {
				t.Fatalf("body %q", body)
			}
			// await_body refuses an SSE stream rather than wait for ever.
			ref = get(t, c, "/sse")
			if _, err := c.AwaitBody(ref, waitFor); err == nil || !strings.Contains(err.Error(), "SSE") {
				t.Fatalf("AwaitBody: %v", err)
			}
		})
	}
}

// Per request (Gun's req_opts content_handlers): a request's list replaces
// the connection's, both ways; a body no handler takes ends with one empty
// DATA fin.
func TestSSERequestHandlers(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{}`)
	sse, _ := ParseContentHandlers([]byte(`["gun_sse_h"]`))
	ref := do(t, c, &Request{Method: "GET", Path: "/sse", ContentHandlers: sse})
	expect(t, q, EvResponse, ref)
	sseExpect(t, q, ref, sseStreamWant)
	ref = do(t, c, &Request{Method: "GET", Path: "/sse?ct=text/plain", ContentHandlers: sse})
	expect(t, q, EvResponse, ref)
	if ev := expect(t, q, EvData, ref); !ev.Fin || len(ev.Data) != 0 {
		t.Fatalf("dropped body: %s", evString(ev))
	}
	// The connection's default is gun_data_h: an event stream is DATA.
	ref = get(t, c, "/sse")
	expect(t, q, EvResponse, ref)
	if ev := expect(t, q, EvData, ref); ev.Fin {
		t.Fatalf("%s", evString(ev))
	}

	q2 := newQueue(t)
	c2 := up(t, q2, `{"http_opts": {"content_handlers": ["gun_sse_h", "gun_data_h"]}}`)
	data, _ := ParseContentHandlers([]byte(`["gun_data_h"]`))
	ref = do(t, c2, &Request{Method: "GET", Path: "/sse", ContentHandlers: data})
	expect(t, q2, EvResponse, ref)
	if ev := expect(t, q2, EvData, ref); ev.Fin {
		t.Fatalf("%s", evString(ev))
	}
}

// sseH1Server answers every request with head then body, one byte per
// write.
func sseH1Server(t *testing.T, head, body string) *rawServer {
	return startRaw(t, func(nc net.Conn) {
		defer nc.Close()
		nc.(*net.TCPConn).SetNoDelay(true)
		for {
			if _, err := readRequest(nc); err != nil {
				return
			}
			nc.Write([]byte(head))
			for i := 0; i < len(body); i++ {
				if _, err := nc.Write([]byte{body[i]}); err != nil {
					return
				}
				time.Sleep(100 * time.Microsecond) // let most bytes travel alone
			}
		}
	})
}

func TestSSEHTTP1ByteByByte(t *testing.T) {
	body := testserver.SSEStream
	chunked := ""
	for i := 0; i < len(body); i += 3 {
		part := body[i:min(i+3, len(body))]
		chunked += fmt.Sprintf("%x\r\n%s\r\n", len(part), part)
	}
	chunked += "0\r\n\r\n"
	for _, tc := range []struct{ name, head, body string }{
		{"length", fmt.Sprintf("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\ncontent-length: %d\r\n\r\n", len(body)), body},
		{"chunked", "HTTP/1.1 200 OK\r\nContent-Type: Text/Event-Stream\r\ntransfer-encoding: chunked\r\n\r\n", chunked},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := sseH1Server(t, tc.head, tc.body)
			q := newQueue(t)
			c := openTo(t, q, s.port(), `{"retry": 0, "http_opts": {"content_handlers": ["gun_sse_h", "gun_data_h"]}}`)
			awaitUp(t, c)
			for range 2 { // the connection goes on after the stream
				ref := get(t, c, "/")
				expect(t, q, EvResponse, ref)
				sseExpect(t, q, ref, sseStreamWant)
			}
		})
	}
	// A body that ends with the connection ends the events too.
	t.Run("close", func(t *testing.T) {
		s := startRaw(t, func(nc net.Conn) {
			defer nc.Close()
			readRequest(nc)
			nc.Write([]byte("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n" + body))
		})
		q := newQueue(t)
		c := openTo(t, q, s.port(), `{"retry": 0, "http_opts": {"content_handlers": ["gun_sse_h"]}}`)
		awaitUp(t, c)
		ref := get(t, c, "/")
		expect(t, q, EvResponse, ref)
		sseExpect(t, q, ref, sseStreamWant)
	})
}

// An event past max_event_size: ERROR naming the option, the rest of the
// body is dropped and the connection serves the next request.
func TestSSEHTTP1Limit(t *testing.T) {
	big := "data: " + strings.Repeat("z", 100) + "\n\n"
	s := startRaw(t, func(nc net.Conn) {
		defer nc.Close()
		for {
			req, err := readRequest(nc)
			if err != nil {
				return
			}
			if strings.HasPrefix(string(req), "GET /big") {
				body := "data: ok\n\n" + big + "data: after\n\n"
				fmt.Fprintf(nc, "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: %d\r\n\r\n%s", len(body), body)
			} else {
				nc.Write([]byte("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi"))
			}
		}
	})
	q := newQueue(t)
	c := openTo(t, q, s.port(), `{"retry": 0, "http_opts": {"content_handlers": [["gun_sse_h", {"max_event_size": 50}], "gun_data_h"]}}`)
	awaitUp(t, c)
	ref := get(t, c, "/big")
	expect(t, q, EvResponse, ref)
	if ev := expect(t, q, EvSSE, ref); string(ev.Data) != "ok" {
		t.Fatalf("%s", sseString(ev))
	}
	ev := expect(t, q, EvError, ref)
	if !strings.HasPrefix(ev.Reason, "limit_reached: ") || !strings.Contains(ev.Reason, "max_event_size (50 bytes") {
		t.Fatalf("reason %q", ev.Reason)
	}
	ref = get(t, c, "/next")
	expect(t, q, EvResponse, ref)
	if ev := expect(t, q, EvData, ref); string(ev.Data) != "hi" {
		t.Fatalf("%s", evString(ev))
	}
}

func TestSSEHTTP2ByteByByte(t *testing.T) {
	q, c, _, sc := h2script(t, `, "http2_opts": {"content_handlers": ["gun_sse_h", "gun_data_h"]}`)
	sc.Handshake()
	for range 2 {
		ref := get(t, c, "/")
		r := sc.ReadRequest()
		sc.Respond(r.StreamID, 200, false, "content-type", "text/event-stream")
		body := testserver.SSEStream
		for i := 0; i < len(body); i++ {
			sc.Data(r.StreamID, false, []byte{body[i]})
		}
		sc.Data(r.StreamID, true, nil)
		expect(t, q, EvResponse, ref)
		sseExpect(t, q, ref, sseStreamWant)
	}
}

// HTTP/2: the limit resets the stream (RST_STREAM CANCEL) after ERROR; the
// connection goes on; a stream's window comes back for bytes that are not
// event data at once, and for event data when the host takes the event.
func TestSSEHTTP2Limit(t *testing.T) {
	q, c, _, sc := h2script(t, `, "http2_opts": {"content_handlers": [["gun_sse_h", {"max_event_size": 50}]]}`)
	sc.Handshake()
	ref := get(t, c, "/")
	r := sc.ReadRequest()
	sc.Respond(r.StreamID, 200, false, "content-type", "text/event-stream")
	sc.Data(r.StreamID, false, []byte("data: ok\n\ndata: "+strings.Repeat("z", 100)))
	expect(t, q, EvResponse, ref)
	if ev := expect(t, q, EvSSE, ref); string(ev.Data) != "ok" {
		t.Fatalf("%s", sseString(ev))
	}
	ev := expect(t, q, EvError, ref)
	if !strings.HasPrefix(ev.Reason, "limit_reached: ") || !strings.Contains(ev.Reason, "max_event_size") {
		t.Fatalf("reason %q", ev.Reason)
	}
	sc.Expect("RST_STREAM CANCEL", isRST(r.StreamID, http2.ErrCodeCancel))

	ref = get(t, c, "/")
	r = sc.ReadRequest()
	sc.Respond(r.StreamID, 200, false, "content-type", "text/plain")
	sc.Data(r.StreamID, true, []byte("plain"))
	expect(t, q, EvResponse, ref)
	if ev := expect(t, q, EvData, ref); !ev.Fin || len(ev.Data) != 0 {
		t.Fatalf("dropped body (no gun_data_h): %s", evString(ev))
	}
}

// HTTP/2 flow control follows the host for events as for DATA: an event's
// data is given back to the server (WINDOW_UPDATE) when the host takes the
// event; the rest of the bytes (field names, line ends) at once. (No
// margins, so that the increments are exactly that.)
func TestSSEHTTP2WindowFollowsHost(t *testing.T) {
	q, c, _, sc := h2script(t, `,"http2_opts":{"initial_connection_window_size":65535,"initial_stream_window_size":65535,`+
		`"stream_window_margin_size":0,"connection_window_margin_size":0,`+
		`"content_handlers":[["gun_sse_h",{"max_event_size":20000}]]}`)
	sc.Handshake()
	ref := get(t, c, "/")
	r := sc.ReadRequest()
	sc.Respond(r.StreamID, 200, false, "content-type", "text/event-stream")
	ev := []byte("data: " + strings.Repeat("a", 15990) + "\n\n")
	for range 4 {
		sc.Data(r.StreamID, false, ev)
	}
	// Before the host takes anything: only the 8 bytes of framing per
	// event come back (64000 bytes sent, 63960 of them event data).
	given := int64(0)
	for {
		f, err := sc.TryReadFrame(300 * time.Millisecond)
		if err != nil {
			break
		}
		if w, ok := f.(*http2.WindowUpdateFrame); ok && w.StreamID == r.StreamID {
			given += int64(w.Increment)
		}
	}
	if given > 4*8 {
		t.Fatalf("stream window given back before the host took the events: %d bytes", given)
	}
	expect(t, q, EvResponse, ref)
	for range 4 {
		if e := expect(t, q, EvSSE, ref); len(e.Data) != 15990 {
			t.Fatalf("event of %d bytes", len(e.Data))
		}
	}
	sc.Expect("stream WINDOW_UPDATE", isWindowUpdate(r.StreamID))
	sc.Data(r.StreamID, true, ev)
	if e := expect(t, q, EvSSE, ref); len(e.Data) != 15990 {
		t.Fatalf("%s", sseString(e))
	}
	if e := expect(t, q, EvSSE, ref); !e.Fin {
		t.Fatalf("%s", sseString(e))
	}
}

// The fin event ends the stream: its timeout is disarmed (no ERROR
// "timeout" after it).
func TestSSEFinEndsStream(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{}`)
	sse, _ := ParseContentHandlers([]byte(`["gun_sse_h"]`))
	ref := do(t, c, &Request{Method: "GET", Path: "/sse", ContentHandlers: sse, Timeout: 300 * time.Millisecond})
	expect(t, q, EvResponse, ref)
	sseExpect(t, q, ref, sseStreamWant)
	noEvent(t, q, 600*time.Millisecond)
}

// Any stream, split anywhere, gives the events it gives whole, never
// panics, and never holds more than max_event_size of a pending event.
func FuzzSSEParse(f *testing.F) {
	f.Add([]byte(testserver.SSEStream), 3, 17, 64)
	f.Add([]byte("data: a\r\n\r\nid: \x00\rretry: 12\n\n: c\r"), 0, 5, 8)
	f.Add([]byte("\xEF\xBB"), 1, 1, 1)
	f.Fuzz(func(t *testing.T, in []byte, i, j, lim int) {
		if lim <= 0 || lim > 1<<16 {
			lim = 1 << 10
		}
		i, j = min(max(i, 0), len(in)), min(max(j, 0), len(in))
		if i > j {
			i, j = j, i
		}
		whole, errW := sseRun(lim, string(in))
		split, errS := sseRun(lim, string(in[:i]), string(in[i:j]), string(in[j:]))
		if (errW == nil) != (errS == nil) || fmt.Sprint(whole) != fmt.Sprint(split) {
			t.Fatalf("%q at %d,%d: whole %q %v, split %q %v", in, i, j, whole, errW, split, errS)
		}
		p := &sseParser{max: lim, bom: true}
		if p.parse(in, func(*Event) {}) == nil && !p.bom && (p.size+len(p.line) > lim || len(p.data) > lim) {
			t.Fatalf("holds %d+%d bytes over max %d", p.size, len(p.line), lim)
		}
	})
}

// trace: gun_sse's fin ends the response (response_end just before it, as
// before a last gun_data).
func TestSSETraceResponseEnd(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{"trace": ["response_end"], "http_opts": {"content_handlers": ["gun_sse_h"]}}`)
	ref := get(t, c, "/sse")
	var got []string
	for len(got) == 0 || got[len(got)-1] != "fin" {
		ev := next(t, q)
		switch ev.Kind {
		case EvTrace:
			got = append(got, ev.Reason)
		case EvSSE:
			if ev.Fin {
				got = append(got, "fin")
			}
		}
		if ev.Ref != ref {
			t.Fatalf("%s", evString(ev))
		}
	}
	if fmt.Sprint(got) != "[response_end fin]" {
		t.Fatalf("%q", got)
	}
}
