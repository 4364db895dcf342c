// Package h2interop tests gunmetal's HTTP/2 engine against servers nobody
// in this project wrote: nginx (HTTP/2 over TLS) and nghttpd (TLS and h2c;
// it can push). Both come from Debian (nginx, nghttp2-server); a machine
// without them fails these tests (`make deps` installs them).
package h2interop

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"gunmetal/core"
	"gunmetal/tests/h2interop/nghttpd"
	"gunmetal/tests/nginx"
)

const waitFor = 20 * time.Second

func newQueue(t *testing.T) *core.Queue {
	t.Helper()
	q, err := core.NewQueue()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q.Free)
	return q
}

// open connects to host:port and waits for UP http2.
func open(t *testing.T, q *core.Queue, host string, port int, js string) *core.Conn {
	t.Helper()
	o, err := core.ParseOptions([]byte(js), port)
	if err != nil {
		t.Fatal(err)
	}
	c, err := core.Open(host, port, o, q, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		select {
		case <-c.Done():
		case <-time.After(waitFor):
			t.Errorf("connection did not exit after Close")
		}
	})
	p, err := c.AwaitUp(waitFor)
	if err != nil || p != "http2" {
		t.Fatalf("UP %q %v, want http2", p, err)
	}
	return c
}

func tlsOpts(ca string, extra string) string {
	return fmt.Sprintf(`{"transport":"tls","tls_opts":{"cacertfile":%q}%s}`, ca, extra)
}

func next(t *testing.T, q *core.Queue) *core.Event {
	t.Helper()
	var out [1]*core.Event
	n, err := q.Poll(out[:], waitFor)
	if err != nil || n == 0 {
		t.Fatalf("no event within %v (%v)", waitFor, err)
	}
	return out[0]
}

func evString(ev *core.Event) string {
	s := fmt.Sprintf("%s #%d", ev.Kind, ev.Ref)
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

type result struct {
	status   int
	headers  []core.Header
	body     []byte
	trailers []core.Header
	err      string
}

// String sums a result up without its body (a failure message must not
// print a megabyte).
func (r *result) String() string {
	if r == nil {
		return "<no events>"
	}
	if r.err != "" {
		return fmt.Sprintf("{status %d, %d body bytes, error %q}", r.status, len(r.body), r.err)
	}
	return fmt.Sprintf("{status %d, %d body bytes}", r.status, len(r.body))
}

// collect reads events until every ref in want has ended; other events
// fail the test unless other accepts them.
func collect(t *testing.T, q *core.Queue, refs []uint64, other func(*core.Event) bool) map[uint64]*result {
	t.Helper()
	res := map[uint64]*result{}
	for _, r := range refs {
		res[r] = nil
	}
	done := 0
	for done < len(refs) {
		ev := next(t, q)
		r, ok := res[ev.Ref]
		if !ok {
			if other != nil && other(ev) {
				continue
			}
			t.Fatalf("unexpected %s", evString(ev))
		}
		if r == nil {
			r = &result{}
			res[ev.Ref] = r
		}
		end := false
		switch ev.Kind {
		case core.EvInform:
		case core.EvResponse:
			r.status, r.headers, end = ev.Status, ev.Headers, ev.Fin
		case core.EvData:
			r.body = append(r.body, ev.Data...)
			end = ev.Fin
		case core.EvTrailers:
			r.trailers, end = ev.Headers, true
		case core.EvError:
			r.err, end = ev.Reason, true
		default:
			if other != nil && other(ev) {
				continue
			}
			t.Fatalf("unexpected %s", evString(ev))
		}
		if end {
			done++
		}
	}
	return res
}

func get(t *testing.T, c *core.Conn, path string, hs ...core.Header) uint64 {
	t.Helper()
	ref, err := c.Request(&core.Request{Method: "GET", Path: path, Headers: hs})
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func checkPattern(t *testing.T, b []byte, n int) {
	t.Helper()
	if len(b) != n {
		t.Fatalf("%d bytes, want %d", len(b), n)
	}
	for i, x := range b {
		if x != byte('a'+i%26) {
			t.Fatalf("byte %d is %q", i, x)
		}
	}
}

func header(hs []core.Header, name string) string {
	for _, h := range hs {
		if h.Name == name {
			return h.Value
		}
	}
	return ""
}

// ---- nginx ----

func TestNginxH2(t *testing.T) {
	n := nginx.Start(t)
	q := newQueue(t)
	c := open(t, q, "localhost", n.TLSPort, tlsOpts(n.CAFile, ""))

	ref := get(t, c, "/bytes/100", core.Header{Name: "X-Mixed", Value: "v"})
	r := collect(t, q, []uint64{ref}, nil)[ref]
	if r.status != 200 || r.err != "" {
		t.Fatalf("%+v\n%s", r, n.ErrorLog())
	}
	checkPattern(t, r.body, 100)

	// 100 concurrent streams of 100000 bytes.
	var refs []uint64
	for range 100 {
		refs = append(refs, get(t, c, "/bytes/100000"))
	}
	for _, r := range collect(t, q, refs, nil) {
		if r.status != 200 {
			t.Fatalf("%+v", r)
		}
		checkPattern(t, r.body, 100000)
	}

	// 10 MiB: much more than the windows, so WINDOW_UPDATEs must flow.
	ref = get(t, c, "/bytes/10485760")
	r = collect(t, q, []uint64{ref}, nil)[ref]
	checkPattern(t, r.body, 10485760)

	// Statuses without a body; HEAD.
	a, b := get(t, c, "/status204"), get(t, c, "/nothing-here")
	head, err := c.Request(&core.Request{Method: "HEAD", Path: "/bytes/100"})
	if err != nil {
		t.Fatal(err)
	}
	res := collect(t, q, []uint64{a, b, head}, nil)
	if res[a].status != 204 || res[b].status != 404 || res[head].status != 200 || len(res[head].body) != 0 ||
		header(res[head].headers, "content-length") != "100" {
		t.Fatalf("204 %+v, 404 %+v, HEAD %+v", res[a], res[b], res[head])
	}

	// Ping.
	pref, err := c.Ping()
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, q); ev.Kind != core.EvNotify || ev.Ref != pref || ev.Reason != "ping_ack" {
		t.Fatalf("%s", evString(ev))
	}
}

// Cancel a big response midway; the connection carries on (its window
// took the DATA that was in flight).
func TestNginxH2Cancel(t *testing.T) {
	n := nginx.Start(t)
	q := newQueue(t)
	c := open(t, q, "localhost", n.TLSPort, tlsOpts(n.CAFile, ""))
	for range 5 {
		ref := get(t, c, "/bytes/10485760")
		for got := 0; got < 100000; {
			ev := next(t, q)
			if ev.Ref != ref {
				t.Fatalf("unexpected %s", evString(ev))
			}
			got += len(ev.Data)
		}
		if err := c.Cancel(ref); err != nil {
			t.Fatal(err)
		}
		// Drain what was queued before the cancel.
		var out [64]*core.Event
		for {
			k, _ := q.Poll(out[:], 100*time.Millisecond)
			if k == 0 {
				break
			}
			for _, ev := range out[:k] {
				if ev.Ref != ref || ev.Kind != core.EvData || ev.Fin {
					t.Fatalf("after cancel: %s", evString(ev))
				}
			}
		}
	}
	ref := get(t, c, "/bytes/100000")
	checkPattern(t, collect(t, q, []uint64{ref}, nil)[ref].body, 100000)
}

// A host that does not take its events slows nginx down: the queue holds
// about one connection window, not the whole 10 MiB body.
func TestNginxH2SlowConsumer(t *testing.T) {
	n := nginx.Start(t)
	q := newQueue(t)
	c := open(t, q, "localhost", n.TLSPort, tlsOpts(n.CAFile, `,"http2_opts":{"initial_connection_window_size":1000000,"initial_stream_window_size":1000000}`))
	ref := get(t, c, "/bytes/10485760")
	time.Sleep(500 * time.Millisecond) // let the window fill up
	held := 0
	for {
		time.Sleep(100 * time.Millisecond)
		nheld := q.Len()
		if nheld == held {
			break
		}
		held = nheld
	}
	// ~1 MB window / 16 KiB frames is ~62 DATA events, plus margins.
	if held > 200 {
		t.Fatalf("%d events queued with a 1 MB window", held)
	}
	r := collect(t, q, []uint64{ref}, nil)[ref]
	checkPattern(t, r.body, 10485760)
}

func TestNginxH2Shutdown(t *testing.T) {
	n := nginx.Start(t)
	q := newQueue(t)
	c := open(t, q, "localhost", n.TLSPort, tlsOpts(n.CAFile, ""))
	ref := get(t, c, "/bytes/100000")
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	late := get(t, c, "/bytes/100")
	res := collect(t, q, []uint64{ref, late}, nil)
	if res[late].err != "closing" || res[ref].status != 200 || len(res[ref].body) != 100000 {
		t.Fatalf("late %+v, ref status %d %d bytes", res[late], res[ref].status, len(res[ref].body))
	}
	if ev := next(t, q); ev.Kind != core.EvExit || ev.Reason != "shutdown" {
		t.Fatalf("%s", evString(ev))
	}
}

// nginx closes a connection after keepalive_requests (1000) with a GOAWAY:
// requests it did not take are "unprocessed" and safe to retry, the
// connection goes DOWN normally and comes back.
func TestNginxH2GoAway(t *testing.T) {
	n := nginx.Start(t)
	q := newQueue(t)
	c := open(t, q, "localhost", n.TLSPort, tlsOpts(n.CAFile, ""))
	ok, downs, ups, retried := 0, 0, 0, 0
	todo := 1300
	for todo > 0 {
		var refs []uint64
		for range min(todo, 70) {
			refs = append(refs, get(t, c, "/bytes/10"))
		}
		sawDown := false
		res := collect(t, q, refs, func(ev *core.Event) bool {
			switch ev.Kind {
			case core.EvDown:
				if ev.Reason != "normal" {
					t.Fatalf("%s", evString(ev))
				}
				downs++
				sawDown = true
				return true
			case core.EvUp:
				ups++
				return true
			}
			return false
		})
		failed := false
		for _, r := range res {
			switch {
			case r.err == "":
				ok++
				todo--
			case strings.HasPrefix(r.err, "unprocessed"), r.err == "closing":
				retried++
				failed = true
			default:
				t.Fatalf("%+v", r)
			}
		}
		if failed && !sawDown { // the connection is closing: wait for its DOWN
			if ev := next(t, q); ev.Kind != core.EvDown || ev.Reason != "normal" {
				t.Fatalf("%s", evString(ev))
			}
			downs++
		}
		if downs > ups {
			if _, err := c.AwaitUp(waitFor); err != nil {
				t.Fatal(err)
			}
			ups++
		}
	}
	if ok != 1300 || downs == 0 || retried == 0 {
		t.Fatalf("%d ok, %d DOWN, %d retried", ok, downs, retried)
	}
	t.Logf("%d ok, %d DOWN, %d retried", ok, downs, retried)
}

// ---- nghttpd ----

func startNghttpd(t *testing.T, o nghttpd.Options) *nghttpd.Server {
	t.Helper()
	s, err := nghttpd.Start(t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

func TestNghttpdPush(t *testing.T) {
	s := startNghttpd(t, nghttpd.Options{Args: []string{"--push=/=/pushed,/bytes/1000"}})
	q := newQueue(t)
	c := open(t, q, "localhost", s.Port, tlsOpts(s.CAFile, ""))
	ref := get(t, c, "/")
	pushes := map[uint64]*core.Event{}
	var all []uint64
	sawResponse := false
	res := map[uint64]*result{}
	for ended := 0; ended < 3; {
		ev := next(t, q)
		switch {
		case ev.Kind == core.EvPush:
			if ev.Ref != ref || sawResponse {
				t.Fatalf("PUSH %s after the parent's RESPONSE", evString(ev))
			}
			pushes[ev.NewRef] = ev
			all = append(all, ev.NewRef)
		case ev.Ref == ref || pushes[ev.Ref] != nil:
			r := res[ev.Ref]
			if r == nil {
				r = &result{}
				res[ev.Ref] = r
			}
			switch ev.Kind {
			case core.EvResponse:
				sawResponse = sawResponse || ev.Ref == ref
				r.status = ev.Status
			case core.EvData:
				r.body = append(r.body, ev.Data...)
				if ev.Fin {
					ended++
				}
			default:
				t.Fatalf("%s\n%s", evString(ev), s.Log())
			}
		default:
			t.Fatalf("unexpected %s", evString(ev))
		}
	}
	if len(pushes) != 2 || string(res[ref].body) != "hello from nghttpd\n" {
		t.Fatalf("%d pushes, body %q", len(pushes), res[ref].body)
	}
	base := fmt.Sprintf("https://localhost:%d", s.Port)
	for nref, p := range pushes {
		switch p.URI {
		case base + "/pushed":
			if string(res[nref].body) != "pushed\n" {
				t.Fatalf("pushed body %q", res[nref].body)
			}
		case base + "/bytes/1000":
			checkPattern(t, res[nref].body, 1000)
		default:
			t.Fatalf("push %+v", p)
		}
	}
}

func TestNghttpdH2C(t *testing.T) {
	s := startNghttpd(t, nghttpd.Options{NoTLS: true, Args: []string{"--push=/=/pushed"}})
	q := newQueue(t)
	c := open(t, q, "127.0.0.1", s.Port, `{"protocols":["http2"]}`)
	var refs []uint64
	for range 50 {
		refs = append(refs, get(t, c, "/bytes/1000"))
	}
	for _, r := range collect(t, q, refs, nil) {
		checkPattern(t, r.body, 1000)
	}
	// Push over h2c too; then cancel the pushed stream.
	ref := get(t, c, "/")
	ev := next(t, q)
	if ev.Kind != core.EvPush || ev.URI != fmt.Sprintf("http://127.0.0.1:%d/pushed", s.Port) {
		t.Fatalf("%s %+v", evString(ev), ev)
	}
	c.Cancel(ev.NewRef)
	r := collect(t, q, []uint64{ref}, func(e *core.Event) bool { return e.Ref == ev.NewRef })[ref]
	if string(r.body) != "hello from nghttpd\n" {
		t.Fatalf("%+v", r)
	}
	pref, err := c.Ping()
	if err != nil {
		t.Fatal(err)
	}
	for {
		e := next(t, q)
		if e.Ref == ev.NewRef {
			continue // queued before the cancel
		}
		if e.Kind != core.EvNotify || e.Ref != pref {
			t.Fatalf("%s", evString(e))
		}
		break
	}
}

// Bodies both ways with small windows (nghttpd's 2^14-1 stream window):
// sending waits for its WINDOW_UPDATEs.
func TestNghttpdEchoUpload(t *testing.T) {
	s := startNghttpd(t, nghttpd.Options{Args: []string{"--echo-upload", "-w", "14", "-W", "16"}})
	q := newQueue(t)
	c := open(t, q, "localhost", s.Port, tlsOpts(s.CAFile, `,"http2_opts":{"initial_stream_window_size":65535,"initial_connection_window_size":65535}`))
	body := bytes.Repeat([]byte("0123456789"), 100000)
	ref, err := c.Request(&core.Request{Method: "POST", Path: "/", Body: body})
	if err != nil {
		t.Fatal(err)
	}
	r := collect(t, q, []uint64{ref}, nil)[ref]
	if r.status != 200 || !bytes.Equal(r.body, body) {
		t.Fatalf("status %d, error %q, %d bytes echoed of %d\n%s", r.status, r.err, len(r.body), len(body), s.Log())
	}
	// Streamed: nghttpd answers once the whole body is in (unless
	// --early-response), so Data must get through its windows alone.
	ref, err = c.Request(&core.Request{Method: "PUT", Path: "/", Stream: true})
	if err != nil {
		t.Fatal(err)
	}
	var sent []byte
	for i := range 40 {
		p := bytes.Repeat([]byte{byte('a' + i)}, 25000)
		sent = append(sent, p...)
		if err := c.Data(ref, p, i == 39); err != nil {
			t.Fatal(err)
		}
	}
	r = collect(t, q, []uint64{ref}, nil)[ref]
	if !bytes.Equal(r.body, sent) {
		t.Fatalf("%d bytes echoed of %d", len(r.body), len(sent))
	}
}

func TestNghttpdTrailers(t *testing.T) {
	s := startNghttpd(t, nghttpd.Options{NoTLS: true, Args: []string{"--trailer", "x-trailer: yes"}})
	q := newQueue(t)
	c := open(t, q, "127.0.0.1", s.Port, `{"protocols":["http2"]}`)
	ref := get(t, c, "/bytes/100000", core.Header{Name: "te", Value: "trailers"})
	r := collect(t, q, []uint64{ref}, nil)[ref]
	checkPattern(t, r.body, 100000)
	if header(r.trailers, "x-trailer") != "yes" {
		t.Fatalf("trailers %v", r.trailers)
	}
}

// nghttpd -m 2: the third concurrent request fails at once
// (too_many_streams); with wait_for_stream_slot they all go through.
func TestNghttpdMaxConcurrentStreams(t *testing.T) {
	s := startNghttpd(t, nghttpd.Options{NoTLS: true, Args: []string{"-m", "2"}})
	q := newQueue(t)
	// The first two responses must still be in flight when the third
	// request is made, or its slot is free: a stream window of 1000 bytes,
	// opened again only as the host takes DATA events (none is taken before
	// collect), holds both bodies of 100000 bytes. Without it nghttpd could
	// finish the first response before the third get, which then got 200.
	c := open(t, q, "127.0.0.1", s.Port, `{"protocols":["http2"],"http2_opts":{"notify_settings_changed":true,"initial_stream_window_size":1000}}`)
	if ev := next(t, q); ev.Kind != core.EvNotify || header(ev.Headers, "max_concurrent_streams") != "2" {
		t.Fatalf("%s %v", evString(ev), ev.Headers)
	}
	refs := []uint64{get(t, c, "/bytes/100000"), get(t, c, "/bytes/100000"), get(t, c, "/bytes/100")}
	res := collect(t, q, refs, nil)
	if !strings.HasPrefix(res[refs[2]].err, "too_many_streams") || res[refs[0]].status != 200 || res[refs[1]].status != 200 {
		t.Fatalf("want 200, 200, too_many_streams; got %s, %s, %s", res[refs[0]], res[refs[1]], res[refs[2]])
	}
	for _, r := range refs[:2] {
		checkPattern(t, res[r].body, 100000)
	}

	c2 := open(t, q, "127.0.0.1", s.Port, `{"protocols":["http2"],"http2_opts":{"wait_for_stream_slot":true,"notify_settings_changed":true}}`)
	next(t, q) // settings
	refs = nil
	for range 20 {
		refs = append(refs, get(t, c2, "/bytes/100000"))
	}
	for _, r := range collect(t, q, refs, nil) {
		if r.err != "" {
			t.Fatalf("%+v", r)
		}
		checkPattern(t, r.body, 100000)
	}
}
