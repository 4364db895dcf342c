package core

// HTTP/2 against the project's test server (Go's net/http: h2 over TLS by
// ALPN, h2c with prior knowledge on its cleartext port). The cases that
// need a misbehaving server are in http2_script_test.go.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const h2c = `{"protocols":["http2"]}`

// h2open opens a connection to 127.0.0.1:port and waits for UP http2.
func h2open(t testing.TB, q *Queue, port int, js string) *Conn {
	t.Helper()
	c := openTo(t, q, port, js)
	h2awaitUp(t, c)
	return c
}

func h2awaitUp(t testing.TB, c *Conn) {
	t.Helper()
	p, err := c.AwaitUp(waitFor)
	if err != nil {
		t.Fatalf("await up: %v", err)
	}
	if p != "http2" {
		t.Fatalf("UP protocol %q, want http2", p)
	}
}

// h2tls opens an HTTP/2-over-TLS connection to the test server.
func h2tls(t testing.TB, q *Queue, extra string) *Conn {
	t.Helper()
	port := srv.TLSPort()
	js := fmt.Sprintf(`{"transport":"tls","tls_opts":{"cacertfile":%q}%s}`, srv.CAFile(), extra)
	c, err := Open("localhost", port, parseOpts(t, js, port), q, nil)
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, c)
	h2awaitUp(t, c)
	return c
}

func TestH2TLSALPN(t *testing.T) {
	q := newQueue(t)
	c := h2tls(t, q, "")
	if in := c.Info(); in.Protocol != "http2" || in.Transport != "tls" {
		t.Fatalf("info %+v", in)
	}
	h := headersReply(t, ok200(t, q, get(t, c, "/headers", Header{"X-Mixed-Case", "v"})))
	if h.Proto != "HTTP/2.0" || h.Host != fmt.Sprintf("localhost:%d", srv.TLSPort()) {
		t.Fatalf("reply %+v", h)
	}
	if v := h.Headers["x-mixed-case"]; len(v) != 1 || v[0] != "v" {
		t.Fatalf("headers %v", h.Headers)
	}
	b := ok200(t, q, get(t, c, "/bytes/300000"))
	if len(b) != 300000 {
		t.Fatalf("%d bytes", len(b))
	}
	checkPattern(t, 0, b)
}

func TestH2PriorKnowledge(t *testing.T) {
	q := newQueue(t)
	c := h2open(t, q, srv.HTTPPort(), h2c)
	h := headersReply(t, ok200(t, q, get(t, c, "/headers")))
	if h.Proto != "HTTP/2.0" || h.Host != fmt.Sprintf("127.0.0.1:%d", srv.HTTPPort()) {
		t.Fatalf("reply %+v", h)
	}
	// The Host header becomes :authority.
	h = headersReply(t, ok200(t, q, get(t, c, "/headers", Header{"Host", "example.com"})))
	if h.Host != "example.com" {
		t.Fatalf("host %q", h.Host)
	}
	r := readStream(t, q, get(t, c, "/status/204"))
	if r.resp.Status != 204 || !r.resp.Fin {
		t.Fatalf("204: %s", evString(r.resp))
	}
	r = readStream(t, q, do(t, c, &Request{Method: "HEAD", Path: "/bytes/1000"}))
	if r.resp.Status != 200 || !r.resp.Fin || len(r.data) != 0 {
		t.Fatalf("HEAD: %s %d bytes", evString(r.resp), len(r.data))
	}
}

// ALPN choosing http/1.1 on a TLS server without h2: the connection speaks
// HTTP/1.1 (Gun's fallback).
func TestH2ALPNFallback(t *testing.T) {
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	}))
	hs.EnableHTTP2 = false
	hs.StartTLS()
	t.Cleanup(hs.Close)
	p := hs.Listener.Addr().(*net.TCPAddr).Port
	q := newQueue(t)
	c := openTo(t, q, p, `{"transport":"tls","protocols":["http2","http"],"tls_opts":{"verify":"verify_none"}}`)
	proto, err := c.AwaitUp(waitFor)
	if err != nil || proto != "http" {
		t.Fatalf("UP %q %v, want http", proto, err)
	}
	if b := ok200(t, q, get(t, c, "/")); string(b) != "HTTP/1.1" {
		t.Fatalf("body %q", b)
	}
}

func TestH2ManyConcurrentStreams(t *testing.T) {
	q := newQueue(t)
	c := h2open(t, q, srv.HTTPPort(), h2c)
	const n = 200 // past Go's server limit (250 by default, enough) and our batching
	refs := map[uint64]int{}
	for i := range n {
		refs[get(t, c, fmt.Sprintf("/bytes/%d", 100+i))] = 100 + i
	}
	bodies := map[uint64][]byte{}
	done := 0
	for done < n {
		ev := next(t, q)
		size, ok := refs[ev.Ref]
		if !ok {
			t.Fatalf("unexpected %s", evString(ev))
		}
		switch ev.Kind {
		case EvResponse:
			if ev.Status != 200 || ev.Fin {
				t.Fatalf("%s", evString(ev))
			}
		case EvData:
			bodies[ev.Ref] = append(bodies[ev.Ref], ev.Data...)
			if ev.Fin {
				done++
				if len(bodies[ev.Ref]) != size {
					t.Fatalf("stream %d: %d bytes, want %d", ev.Ref, len(bodies[ev.Ref]), size)
				}
			}
		default:
			t.Fatalf("unexpected %s", evString(ev))
		}
	}
}

func TestH2RequestBodies(t *testing.T) {
	q := newQueue(t)
	c := h2open(t, q, srv.HTTPPort(), h2c)
	// A body given whole, bigger than the server's initial windows: the
	// rest goes out as its WINDOW_UPDATEs arrive.
	body := bytes.Repeat([]byte("0123456789abcdef"), 200000) // 3.2 MB
	r := readStream(t, q, do(t, c, &Request{Method: "POST", Path: "/echo", Body: body}))
	if r.err != nil || r.resp.Status != 200 || !bytes.Equal(r.data, body) {
		t.Fatalf("echo: %v %d bytes", r.err, len(r.data))
	}
	if v, _ := header(r.resp.Headers, "x-content-length"); v != "3200000" {
		t.Fatalf("x-content-length %q", v)
	}
	// POST without a body says content-length 0.
	h := headersReply(t, ok200(t, q, do(t, c, &Request{Method: "POST", Path: "/headers"})))
	if h.ContentLength != 0 || h.BodyLen != 0 {
		t.Fatalf("%+v", h)
	}
	// A streamed body: data pieces then fin; the echo comes back as it goes.
	ref := do(t, c, &Request{Method: "PUT", Path: "/echo", Stream: true})
	var sent []byte
	for i := range 50 {
		p := bytes.Repeat([]byte{byte('a' + i%26)}, 100000)
		sent = append(sent, p...)
		if err := c.Data(ref, p, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Data(ref, nil, false); err != nil { // ignored
		t.Fatal(err)
	}
	if err := c.Data(ref, []byte("end"), true); err != nil {
		t.Fatal(err)
	}
	sent = append(sent, "end"...)
	r = readStream(t, q, ref)
	if r.err != nil || !bytes.Equal(r.data, sent) {
		t.Fatalf("streamed echo: %v, %d bytes of %d", r.err, len(r.data), len(sent))
	}
	if err := c.Data(ref, []byte("late"), true); !errors.Is(err, ErrNoStream) && !errors.Is(err, ErrBadState) {
		t.Fatalf("data after the end: %v", err)
	}
	// A streamed body ended by an empty fin.
	ref = do(t, c, &Request{Method: "POST", Path: "/echo", Stream: true})
	if err := c.Data(ref, []byte("x"), false); err != nil {
		t.Fatal(err)
	}
	if err := c.Data(ref, nil, true); err != nil {
		t.Fatal(err)
	}
	if b := ok200(t, q, ref); string(b) != "x" {
		t.Fatalf("body %q", b)
	}
}

func TestH2InformAndTrailers(t *testing.T) {
	q := newQueue(t)
	c := h2open(t, q, srv.HTTPPort(), h2c)
	r := readStream(t, q, get(t, c, "/inform/5"))
	if len(r.informs) != 5 || r.informs[0].Status != 103 || r.resp.Status != 200 {
		t.Fatalf("%d informs, %s", len(r.informs), evString(r.resp))
	}
	if v, _ := header(r.informs[0].Headers, "link"); !strings.Contains(v, "style.css") {
		t.Fatalf("103 headers %v", r.informs[0].Headers)
	}
	r = readStream(t, q, get(t, c, "/trailers", Header{"te", "trailers"}))
	if string(r.data) != "hello trailers" {
		t.Fatalf("body %q", r.data)
	}
	if v, _ := header(r.trailers, "x-checksum"); v != "abc123" {
		t.Fatalf("trailers %v", r.trailers)
	}
}

func TestH2Push(t *testing.T) {
	q := newQueue(t)
	c := h2open(t, q, srv.HTTPPort(), h2c)
	ref := get(t, c, "/push")
	pushes := map[uint64]*Event{}
	var resp *Event
	bodies := map[uint64][]byte{}
	ended := map[uint64]bool{}
	for len(ended) < 3 {
		ev := next(t, q)
		switch {
		case ev.Kind == EvPush:
			if ev.Ref != ref || resp != nil {
				t.Fatalf("PUSH %s for #%d after the parent's RESPONSE %v", evString(ev), ref, resp)
			}
			pushes[ev.NewRef] = ev
		case ev.Kind == EvResponse && ev.Ref == ref:
			resp = ev
		case ev.Kind == EvResponse && pushes[ev.Ref] != nil:
			if ev.Status != 200 {
				t.Fatalf("%s", evString(ev))
			}
		case ev.Kind == EvData && (ev.Ref == ref || pushes[ev.Ref] != nil):
			bodies[ev.Ref] = append(bodies[ev.Ref], ev.Data...)
			if ev.Fin {
				ended[ev.Ref] = true
			}
		default:
			t.Fatalf("unexpected %s", evString(ev))
		}
	}
	if len(pushes) != 2 || string(bodies[ref]) != "main" {
		t.Fatalf("%d pushes, body %q", len(pushes), bodies[ref])
	}
	uris := map[string]string{}
	for nref, p := range pushes {
		if p.Method != "GET" || nref == ref || nref == 0 {
			t.Fatalf("push %+v", p)
		}
		uris[p.URI] = string(bodies[nref])
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", srv.HTTPPort())
	if uris[base+"/bytes/10"] != "abcdefghij" || uris[base+"/pushed"] != "pushed" {
		t.Fatalf("pushed %v", uris)
	}

	// Pushed streams follow their parent's reply_to.
	q2 := newQueue(t)
	ref = do(t, c, &Request{Method: "GET", Path: "/push", ReplyTo: q2})
	for ended := 0; ended < 3; {
		ev := next(t, q2)
		if ev.Kind == EvData && ev.Fin || ev.Kind == EvResponse && ev.Fin {
			ended++
		}
	}
	noEvent(t, q, 100*time.Millisecond)
}

func TestH2Ping(t *testing.T) {
	q := newQueue(t)
	c := h2open(t, q, srv.HTTPPort(), h2c)
	refs := map[uint64]bool{}
	for range 3 {
		ref, err := c.Ping()
		if err != nil || ref == 0 {
			t.Fatalf("ping: %d %v", ref, err)
		}
		refs[ref] = true
	}
	for len(refs) > 0 {
		ev := next(t, q)
		if ev.Kind != EvNotify || ev.Reason != "ping_ack" || !refs[ev.Ref] {
			t.Fatalf("unexpected %s", evString(ev))
		}
		delete(refs, ev.Ref)
	}

	// HTTP/1.1 has no ping.
	c1 := openTo(t, q, srv.HTTPPort(), `{}`)
	awaitUp(t, c1)
	if _, err := c1.Ping(); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("ping over HTTP/1.1: %v", err)
	}
}

func TestH2NotifySettingsChanged(t *testing.T) {
	q := newQueue(t)
	c := openTo(t, q, srv.HTTPPort(), `{"protocols":["http2"],"http2_opts":{"notify_settings_changed":true}}`)
	h2awaitUp(t, c)
	ev := expect(t, q, EvNotify, 0)
	if ev.Reason != "settings_changed" {
		t.Fatalf("%s", evString(ev))
	}
	got := map[string]string{}
	for _, h := range ev.Headers {
		got[h.Name] = h.Value
	}
	// Go's server announces 250 concurrent streams.
	if got["max_concurrent_streams"] != "250" || got["enable_push"] != "true" || got["max_frame_size"] == "" {
		t.Fatalf("settings %v", got)
	}
}

func TestH2StreamInfoAndCancel(t *testing.T) {
	q := newQueue(t)
	c := h2open(t, q, srv.HTTPPort(), `{"protocols":["http2"],"http2_opts":{"flow":3}}`)
	ref := get(t, c, "/infinite")
	expect(t, q, EvResponse, ref)
	si, err := c.StreamInfo(ref)
	if err != nil || si.State != "running" || si.Method != "GET" || si.Path != "/infinite" || si.Protocol != "http2" || si.Flow < 0 || si.Flow > 3 {
		t.Fatalf("stream info %+v %v", si, err)
	}
	if err := c.Cancel(ref); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StreamInfo(ref); !errors.Is(err, ErrNoStream) {
		t.Fatalf("stream info after cancel: %v", err)
	}
	// Whatever was queued before the cancel may still be there; nothing
	// comes after it, and the connection carries on.
	for {
		var out [1]*Event
		n, _ := q.Poll(out[:], 200*time.Millisecond)
		if n == 0 {
			break
		}
		if out[0].Ref != ref || out[0].Kind != EvData {
			t.Fatalf("unexpected %s", evString(out[0]))
		}
	}
	if b := ok200(t, q, get(t, c, "/bytes/10")); string(b) != "abcdefghij" {
		t.Fatalf("body %q", b)
	}
	if err := c.Cancel(ref); err != nil { // unknown streams are ignored
		t.Fatal(err)
	}
}

// The server's RST_STREAM ends the stream with its code.
func TestH2ServerResetsStream(t *testing.T) {
	q := newQueue(t)
	c := h2open(t, q, srv.HTTPPort(), h2c)
	r := readStream(t, q, get(t, c, "/drop?after=1000"))
	if r.err == nil || !strings.HasPrefix(r.err.Reason, "stream_error: ") {
		t.Fatalf("want a stream_error, got %v", r.err)
	}
	if b := ok200(t, q, get(t, c, "/bytes/10")); string(b) != "abcdefghij" {
		t.Fatalf("body %q", b)
	}
}

// The server closing the connection under streams: ERROR closed for each,
// DOWN listing them, reconnect, UP.
func TestH2ServerDropsConnection(t *testing.T) {
	q := newQueue(t)
	s := startServer(t)
	c := h2open(t, q, s.HTTPPort(), `{"protocols":["http2"],"retry":1}`)
	slow := get(t, c, "/slow?chunks=100&delay=100")
	expect(t, q, EvResponse, slow)
	drop := get(t, c, "/drop-conn?after=10")
	var errs []uint64
	var down *Event
	for down == nil {
		ev := next(t, q)
		switch ev.Kind {
		case EvError:
			if !strings.HasPrefix(ev.Reason, "closed") {
				t.Fatalf("%s", evString(ev))
			}
			errs = append(errs, ev.Ref)
		case EvDown:
			down = ev
		case EvResponse, EvData:
		default:
			t.Fatalf("unexpected %s", evString(ev))
		}
	}
	if down.Protocol != "http2" || len(down.Killed) != 2 || len(errs) != 2 {
		t.Fatalf("%s, errors for %v (streams %d %d)", evString(down), errs, slow, drop)
	}
	for _, k := range down.Killed {
		if k != slow && k != drop {
			t.Fatalf("killed %v", down.Killed)
		}
	}
	h2awaitUp(t, c)
	if b := ok200(t, q, get(t, c, "/bytes/10")); string(b) != "abcdefghij" {
		t.Fatalf("body %q", b)
	}
}

func TestH2ShutdownGraceful(t *testing.T) {
	q := newQueue(t)
	c := h2open(t, q, srv.HTTPPort(), h2c)
	ref := get(t, c, "/delay/300")
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	late := get(t, c, "/bytes/10")
	var got []string
	for _, ev := range waitExit(t, q, c) {
		got = append(got, evString(ev))
	}
	want := []string{fmt.Sprintf(`gun_error #%d "closing"`, late), fmt.Sprintf("gun_response #%d nofin 200", ref),
		fmt.Sprintf("gun_data #%d fin 2 bytes", ref), `exit "shutdown"`}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("events\n%v\nwant\n%v", got, want)
	}
}

func TestH2ConnectionSpecificHeadersRefused(t *testing.T) {
	q := newQueue(t)
	c := h2open(t, q, srv.HTTPPort(), h2c)
	for _, h := range []Header{{"Connection", "close"}, {"keep-alive", "5"}, {"proxy-connection", "x"},
		{"transfer-encoding", "chunked"}, {"Upgrade", "websocket"}, {"te", "gzip"}} {
		if _, err := c.Request(&Request{Method: "GET", Path: "/", Headers: []Header{h}}); !errors.Is(err, ErrBadArg) {
			t.Fatalf("%v: %v, want ErrBadArg", h, err)
		}
	}
	// Also before the connection is up, when it may speak HTTP/2.
	c2, err := Open("127.0.0.1", srv.HTTPPort(), parseOpts(t, h2c, srv.HTTPPort()), q, nil)
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, c2)
	if _, err := c2.Request(&Request{Method: "GET", Path: "/", Headers: []Header{{"connection", "x"}}}); !errors.Is(err, ErrBadArg) {
		t.Fatalf("queued: %v, want ErrBadArg", err)
	}
	h2awaitUp(t, c2)
	noEvent(t, q, 100*time.Millisecond)
}

// Many goroutines sending bodies on one connection at once.
func TestH2ConcurrentStreamedBodies(t *testing.T) {
	q := newQueue(t)
	c := h2open(t, q, srv.HTTPPort(), h2c)
	const n = 8
	refs := make([]uint64, n)
	for i := range refs {
		refs[i] = do(t, c, &Request{Method: "POST", Path: "/echo", Stream: true})
	}
	var wg sync.WaitGroup
	errc := make(chan error, n)
	for i, ref := range refs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := bytes.Repeat([]byte{byte('a' + i)}, 64<<10)
			for j := range 16 {
				if err := c.Data(ref, p, j == 15); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	sizes := map[uint64]int{}
	for done := 0; done < n; {
		ev := next(t, q)
		if ev.Kind == EvData {
			sizes[ev.Ref] += len(ev.Data)
			if ev.Fin {
				done++
			}
		} else if ev.Kind != EvResponse {
			t.Fatalf("unexpected %s", evString(ev))
		}
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	for _, ref := range refs {
		if sizes[ref] != 16*64<<10 {
			t.Fatalf("sizes %v", sizes)
		}
	}
}
