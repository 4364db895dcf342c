package core

// Trace events (trace.go): the order of Gun's gun_event callbacks for an
// HTTP/1.1 request, an HTTP/2 one, a TLS connect and a WebSocket upgrade
// with frames, against the project's test server; the list form of the
// option; and that nothing is emitted when the option is off.

import (
	"fmt"

	"golang.org/x/net/http2"
	"slices"
	"strings"
	"testing"
)

// names is the sequence of events taken from q until stop says so: trace
// events by their name, the others by their kind (gun_up, gun_response...).
func traceSeq(t *testing.T, q *Queue, c *Conn, stop func(*Event) bool) ([]string, []*Event) {
	t.Helper()
	var names []string
	var evs []*Event
	for {
		ev := nextOf(t, q, c)
		evs = append(evs, ev)
		if ev.Kind == EvTrace {
			names = append(names, ev.Reason)
		} else {
			names = append(names, ev.Kind.String())
		}
		if stop(ev) {
			return names, evs
		}
	}
}

func stopAt(kind EventKind, fin bool) func(*Event) bool {
	return func(ev *Event) bool { return ev.Kind == kind && (!fin || ev.Fin) }
}

func stopAtTrace(name string) func(*Event) bool {
	return func(ev *Event) bool { return ev.Kind == EvTrace && ev.Reason == name }
}

func wantSeq(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("events:\n got  %s\n want %s", strings.Join(got, " "), strings.Join(want, " "))
	}
}

func detail(ev *Event, key string) (string, bool) {
	for _, h := range ev.Headers {
		if h.Name == ":"+key {
			return h.Value, true
		}
	}
	return "", false
}

func findTrace(t *testing.T, evs []*Event, name string) *Event {
	t.Helper()
	for _, ev := range evs {
		if ev.Kind == EvTrace && ev.Reason == name {
			return ev
		}
	}
	t.Fatalf("no %s trace event", name)
	return nil
}

// checkClock: trace timestamps never go back and fall within the test.
func checkClock(t *testing.T, evs []*Event, from, to int64) {
	t.Helper()
	last := from
	for _, ev := range evs {
		if ev.Kind != EvTrace {
			continue
		}
		if ev.TS < last || ev.TS > to {
			t.Fatalf("%s at %d: outside [%d, %d]", ev.Reason, ev.TS, last, to)
		}
		last = ev.TS
	}
}

func TestTraceHTTP1Order(t *testing.T) {
	q := newQueue(t)
	t0 := MonotonicNS()
	c, err := Open("localhost", srv.HTTPPort(), parseOpts(t, `{"trace":true}`, srv.HTTPPort()), q, nil)
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, c)
	got, evs := traceSeq(t, q, c, stopAt(EvUp, false))
	wantSeq(t, got, "init", "domain_lookup_start", "domain_lookup_end", "connect_start", "connect_end", "gun_up")
	if v, _ := detail(findTrace(t, evs, "connect_end"), "protocol"); v != "http" {
		t.Fatalf("connect_end protocol %q", v)
	}
	if v, _ := detail(findTrace(t, evs, "init"), "origin_host"); v != "localhost" {
		t.Fatalf("init origin_host %q", v)
	}
	ref := do(t, c, &Request{Method: "POST", Path: "/echo", Headers: []Header{{"x-a", "1"}}, Body: []byte("hello")})
	got, evs2 := traceSeq(t, q, c, stopAt(EvData, true))
	wantSeq(t, got, "request_start", "request_headers", "request_end",
		"response_start", "response_headers", "gun_response", "response_end", "gun_data")
	for _, ev := range evs2 {
		if ev.Ref != ref {
			t.Fatalf("%s: ref %d, want %d", evString(ev), ev.Ref, ref)
		}
	}
	rs := findTrace(t, evs2, "request_start")
	if m, _ := detail(rs, "method"); m != "POST" {
		t.Fatalf("request_start method %q", m)
	}
	if p, _ := detail(rs, "path"); p != "/echo" {
		t.Fatalf("request_start path %q", p)
	}
	if fn, _ := detail(rs, "function"); fn != "request" {
		t.Fatalf("request_start function %q", fn)
	}
	if !slices.Contains(rs.Headers, Header{"x-a", "1"}) {
		t.Fatalf("request_start headers %v", rs.Headers)
	}
	if rh := findTrace(t, evs2, "response_headers"); rh.Status != 200 || len(rh.Headers) == 0 {
		t.Fatalf("response_headers %d %v", rh.Status, rh.Headers)
	}
	// A streamed body: request_end comes with the fin.
	ref2 := do(t, c, &Request{Method: "POST", Path: "/echo", Stream: true})
	got, _ = traceSeq(t, q, c, stopAtTrace("request_headers"))
	wantSeq(t, got, "request_start", "request_headers")
	if err := c.Data(ref2, []byte("ab"), true); err != nil {
		t.Fatal(err)
	}
	got, _ = traceSeq(t, q, c, stopAt(EvData, true))
	// The echo may come in several pieces: response_end comes just before the last.
	if got[len(got)-1] != "gun_data" {
		t.Fatalf("streamed: %s", strings.Join(got, " "))
	}
	wantSeq(t, slices.DeleteFunc(got, func(s string) bool { return s == "gun_data" }),
		"request_end", "response_start", "response_headers", "gun_response", "response_end")
	// Trailers and informational responses.
	get(t, c, "/inform/2")
	got, _ = traceSeq(t, q, c, stopAt(EvData, true))
	wantSeq(t, got, "request_start", "request_headers", "request_end", "response_start",
		"response_inform", "gun_inform", "response_inform", "gun_inform",
		"response_headers", "gun_response", "response_end", "gun_data")
	get(t, c, "/trailers", Header{"te", "trailers"})
	got, _ = traceSeq(t, q, c, stopAt(EvTrailers, false))
	if n := len(got); n < 4 || !slices.Equal(got[n-3:], []string{"response_trailers", "response_end", "gun_trailers"}) {
		t.Fatalf("trailers: %s", strings.Join(got, " "))
	}
	// Cancel, then close: cancel; terminate then the EXIT.
	ref3 := get(t, c, "/slow?chunks=50&delay=100&size=5")
	got, _ = traceSeq(t, q, c, stopAtTrace("request_end"))
	if err := c.Cancel(ref3); err != nil {
		t.Fatal(err)
	}
	got, evs3 := traceSeq(t, q, c, stopAtTrace("cancel"))
	if ev := evs3[len(evs3)-1]; ev.Ref != ref3 {
		t.Fatalf("cancel ref %d, want %d", ev.Ref, ref3)
	}
	c.Close()
	got, evs4 := traceSeq(t, q, c, stopAt(EvExit, false))
	if n := len(got); n < 2 || !slices.Equal(got[n-2:], []string{"terminate", "exit"}) {
		t.Fatalf("close: %s", strings.Join(got, " "))
	}
	tm := findTrace(t, evs4, "terminate")
	if st, _ := detail(tm, "state"); st != "connected" {
		t.Fatalf("terminate state %q", st)
	}
	all := append(append(append(evs, evs2...), evs3...), evs4...)
	checkClock(t, all, t0, MonotonicNS())
}

func TestTraceHTTP2Order(t *testing.T) {
	q := newQueue(t)
	c := openTo(t, q, srv.HTTPPort(), `{"protocols":["http2"],"trace":true}`)
	got, _ := traceSeq(t, q, c, stopAt(EvUp, false))
	wantSeq(t, got, "init", "domain_lookup_start", "domain_lookup_end", "connect_start", "connect_end", "gun_up")
	ref := get(t, c, "/bytes/10")
	got, evs := traceSeq(t, q, c, stopAt(EvData, true))
	wantSeq(t, got, "request_start", "request_headers", "request_end",
		"response_start", "response_headers", "gun_response", "response_end", "gun_data")
	if rs := findTrace(t, evs, "request_start"); rs.Ref != ref {
		t.Fatalf("ref %d", rs.Ref)
	}
	// Server push: push_promise_start, push_promise_end, then the PUSH.
	get(t, c, "/push")
	got, evs = traceSeq(t, q, c, stopAt(EvPush, false))
	n := len(got)
	if n < 3 || !slices.Equal(got[n-3:], []string{"push_promise_start", "push_promise_end", "gun_push"}) {
		t.Fatalf("push: %s", strings.Join(got, " "))
	}
	pe, push := evs[n-2], evs[n-1]
	if v, _ := detail(pe, "promised_stream_ref"); v != fmt.Sprint(push.NewRef) || pe.Ref != push.Ref {
		t.Fatalf("push_promise_end %v ref %d; push %d new %d", pe.Headers, pe.Ref, push.Ref, push.NewRef)
	}
}

func TestTraceTLSConnect(t *testing.T) {
	q := newQueue(t)
	port := srv.TLSPort()
	// A session cache of its own (session_cache_client_max): the process-wide
	// one may hold a session from another test, and this handshake must be a
	// full one.
	js := fmt.Sprintf(`{"transport":"tls","tls_opts":{"cacertfile":%q,"session_cache_client_max":4},"trace":true}`, srv.CAFile())
	c, err := Open("localhost", port, parseOpts(t, js, port), q, nil)
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, c)
	got, evs := traceSeq(t, q, c, stopAt(EvUp, false))
	wantSeq(t, got, "init", "domain_lookup_start", "domain_lookup_end", "connect_start", "connect_end",
		"tls_handshake_start", "tls_handshake_end", "gun_up")
	if _, ok := detail(findTrace(t, evs, "connect_end"), "protocol"); ok {
		t.Fatal("connect_end names a protocol before the TLS handshake (Gun gives it in tls_handshake_end)")
	}
	te := findTrace(t, evs, "tls_handshake_end")
	want := map[string]string{"tls_version": "tlsv1.3", "alpn": "h2", "resumed": "false", "protocol": "http2"}
	for k, v := range want {
		if got, _ := detail(te, k); got != v {
			t.Errorf("tls_handshake_end %s = %q, want %q (%v)", k, got, v, te.Headers)
		}
	}
	if cs, _ := detail(te, "cipher"); !strings.HasPrefix(cs, "TLS_") {
		t.Errorf("tls_handshake_end cipher %q", cs)
	}
}

func TestTraceTLSFailure(t *testing.T) {
	q := newQueue(t)
	port := srv.TLSPort() // no CA: the verification fails
	c, err := Open("localhost", port, parseOpts(t, `{"transport":"tls","retry":0,"trace":["tls_handshake_end","terminate"]}`, port), q, nil)
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, c)
	got, evs := traceSeq(t, q, c, stopAt(EvExit, false))
	wantSeq(t, got, "tls_handshake_end", "terminate", "exit")
	if e, ok := detail(evs[0], "error"); !ok || e == "" {
		t.Fatalf("tls_handshake_end without error: %v", evs[0].Headers)
	}
	if st, _ := detail(evs[1], "state"); st != "not_connected" {
		t.Fatalf("terminate state %q", st)
	}
}

func TestTraceWS(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{"trace":["ws_upgrade","request_start","request_headers","request_end","response_start","response_inform","response_headers","response_end","protocol_changed","ws_recv_frame_start","ws_recv_frame_header","ws_recv_frame_end","ws_send_frame_start","ws_send_frame_end","disconnect"]}`)
	ref, err := c.WSUpgrade("/ws", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, evs := traceSeq(t, q, c, stopAtTrace("protocol_changed"))
	wantSeq(t, got, "ws_upgrade", "request_start", "request_headers", "request_end",
		"response_start", "response_inform", "gun_upgrade", "protocol_changed")
	if fn, _ := detail(evs[1], "function"); fn != "ws_upgrade" {
		t.Fatalf("request_start function %q", fn)
	}
	if evs[5].Status != 101 {
		t.Fatalf("response_inform status %d", evs[5].Status)
	}
	wsSend(t, c, ref, WSFrame{Op: WSText, Data: []byte("Hello!")})
	got, evs = traceSeq(t, q, c, stopAt(EvWS, false))
	wantSeq(t, got, "ws_send_frame_start", "ws_send_frame_end",
		"ws_recv_frame_start", "ws_recv_frame_header", "ws_recv_frame_end", "gun_ws")
	if tp, _ := detail(evs[0], "type"); tp != "text" || string(evs[0].Data) != "Hello!" {
		t.Fatalf("ws_send_frame_start %v %q", evs[0].Headers, evs[0].Data)
	}
	if fs, _ := detail(evs[2], "frag_state"); fs != "undefined" {
		t.Fatalf("ws_recv_frame_start frag_state %q", fs)
	}
	h := evs[3]
	for k, v := range map[string]string{"type": "text", "rsv": "000", "len": "6", "mask_key": "undefined"} {
		if got, _ := detail(h, k); got != v {
			t.Errorf("ws_recv_frame_header %s = %q, want %q", k, got, v)
		}
	}
	if cc, _ := detail(evs[4], "close_code"); cc != "undefined" || string(evs[4].Data) != "Hello!" {
		t.Fatalf("ws_recv_frame_end %v %q", evs[4].Headers, evs[4].Data)
	}
	// Our close and the server's: the close code in ws_recv_frame_end.
	wsSend(t, c, ref, WSFrame{Op: WSClose, Code: 1000})
	got, evs = traceSeq(t, q, c, func(ev *Event) bool { return ev.Kind == EvWS && ev.WSOp == WSClose })
	wantSeq(t, got, "ws_send_frame_start", "ws_send_frame_end",
		"ws_recv_frame_start", "ws_recv_frame_header", "ws_recv_frame_end", "gun_ws")
	if cc, _ := detail(evs[4], "close_code"); cc != "1000" {
		t.Fatalf("close frame's ws_recv_frame_end close_code %q", cc)
	}
}

// Over HTTP/2 (RFC 8441, on the scripted server: the test server has no
// extended CONNECT): the method is CONNECT and the 200 a response_headers
// and response_end, as in Gun.
func TestTraceWSOverHTTP2(t *testing.T) {
	q, c, _, sc := h2script(t, `,"trace":["ws_upgrade","request_start","response_start","response_headers","response_end","protocol_changed"]`)
	sc.Handshake(http2.Setting{ID: http2.SettingEnableConnectProtocol, Val: 1})
	if _, err := c.WSUpgrade("/chat", nil, nil); err != nil {
		t.Fatal(err)
	}
	req := sc.ReadRequest()
	sc.Respond(req.StreamID, 200, false)
	got, evs := traceSeq(t, q, c, stopAtTrace("protocol_changed"))
	got = slices.DeleteFunc(got, func(s string) bool { return s == "gun_notify" })
	wantSeq(t, got, "ws_upgrade", "request_start", "response_start", "response_headers", "response_end", "gun_upgrade", "protocol_changed")
	if m, _ := detail(findTrace(t, evs, "request_start"), "method"); m != "CONNECT" {
		t.Fatalf("request_start method %q, want CONNECT (RFC 8441)", m)
	}
}

func TestTraceDisconnect(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{"trace":["disconnect","request_end"],"retry":0}`)
	ref := get(t, c, "/drop-conn")
	got, evs := traceSeq(t, q, c, stopAt(EvDown, false))
	// The response may have begun (its head, some data) before the drop.
	got = slices.DeleteFunc(got, func(s string) bool { return s == "gun_response" || s == "gun_data" })
	wantSeq(t, got, "request_end", "disconnect", "gun_error", "gun_down")
	if evs[0].Ref != ref {
		t.Fatal("request_end ref")
	}
	if r, _ := detail(findTrace(t, evs, "disconnect"), "reason"); r == "" {
		t.Fatal("disconnect without reason")
	}
}

// The list form enables only its names; false or no option: no TRACE at all.
func TestTraceFilterAndOff(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{"trace":["response_end","request_start"]}`)
	get(t, c, "/bytes/5")
	got, _ := traceSeq(t, q, c, stopAt(EvData, true))
	wantSeq(t, got, "request_start", "gun_response", "response_end", "gun_data")

	for _, js := range []string{`{}`, `{"trace":false}`, `{"trace":[]}`} {
		q := newQueue(t)
		c := up(t, q, js)
		ref := get(t, c, "/bytes/5")
		got, _ := traceSeq(t, q, c, stopAt(EvData, true))
		wantSeq(t, got, "gun_response", "gun_data")
		if _, err := c.WSUpgrade("/ws", nil, nil); err != nil {
			t.Fatal(err)
		}
		got, _ = traceSeq(t, q, c, stopAt(EvUpgrade, false))
		wantSeq(t, got, "gun_upgrade")
		c.Close()
		got, _ = traceSeq(t, q, c, stopAt(EvExit, false))
		wantSeq(t, got, "exit")
		_ = ref
	}
}

// Await and AwaitBody skip trace events of their stream and leave them
// queued for the owner.
func TestTraceAwaitSkips(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{"trace":["response_headers","response_end"]}`)
	ref := get(t, c, "/bytes/7")
	b, err := c.AwaitBody(ref, waitFor)
	if err != nil || len(b.Data) != 7 {
		t.Fatalf("await body: %v %d", err, len(b.Data))
	}
	got, _ := traceSeq(t, q, c, stopAtTrace("response_end"))
	wantSeq(t, got, "response_headers", "response_end")
}

func TestTraceOptionErrors(t *testing.T) {
	for _, c := range []struct{ js, want string }{
		{`{"trace":["response_end","nope"]}`, `unknown trace event "nope"`},
		{`{"trace":[1]}`, "list of trace event names"},
		{`{"trace":"yes"}`, "boolean"},
	} {
		_, err := ParseOptions([]byte(c.js), 80)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "trace") {
			t.Errorf("%s: %v, want an error naming trace with %q", c.js, err, c.want)
		}
	}
	if o := parseOpts(t, `{"trace":true}`, 80); !o.Trace || o.TraceMask != TraceAll {
		t.Fatalf("trace true: %v %x", o.Trace, o.TraceMask)
	}
	if len(TraceNames()) != int(trCount) {
		t.Fatal("names and ids disagree")
	}
}

// TestTraceTLSResumed: the process-wide session cache shows in the trace: a
// second connection to the same server resumes (tls_handshake_end resumed
// true), once the first has completed a request (TLS 1.3 tickets come after
// the handshake).
func TestTraceTLSResumed(t *testing.T) {
	port := srv.TLSPort()
	js := fmt.Sprintf(`{"transport":"tls","tls_opts":{"cacertfile":%q},"trace":["tls_handshake_end"]}`, srv.CAFile())
	resumed := func() string {
		q := newQueue(t)
		c, err := Open("localhost", port, parseOpts(t, js, port), q, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, evs := traceSeq(t, q, c, stopAt(EvUp, false))
		r, _ := detail(findTrace(t, evs, "tls_handshake_end"), "resumed")
		ok200(t, q, get(t, c, "/bytes/10"))
		return r
	}
	resumed() // full or resumed: other tests may have been here first
	if r := resumed(); r != "true" {
		t.Fatalf("second connection to the same server: tls_handshake_end resumed = %q, want \"true\"", r)
	}
}
