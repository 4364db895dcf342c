package core

import (
	"bytes"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"gunmetal/tests/h2server"
)

// h2fuzzBlock encodes header fields with a fresh encoder (so the seeds
// decode with the client's fresh decoder).
func h2fuzzBlock(kv ...string) []byte {
	var b bytes.Buffer
	e := hpack.NewEncoder(&b)
	for i := 0; i+1 < len(kv); i += 2 {
		e.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return b.Bytes()
}

// FuzzHTTP2Handle feeds arbitrary bytes, after a valid server preface, to
// the HTTP/2 engine with two streams open (1 and 3): it must never panic,
// whatever it decides about the connection. The host takes the events as
// they come (window updates), and uses the API in between.
func FuzzHTTP2Handle(f *testing.F) {
	fr := h2server.Frame
	resp := h2fuzzBlock(":status", "200", "content-length", "3")
	seeds := [][]byte{
		nil,
		fr(http2.FrameHeaders, http2.FlagHeadersEndHeaders, 1, resp),
		append(fr(http2.FrameHeaders, http2.FlagHeadersEndHeaders, 1, resp), fr(http2.FrameData, http2.FlagDataEndStream, 1, []byte("abc"))...),
		fr(http2.FrameHeaders, 0, 3, resp[:2]),
		append(fr(http2.FrameHeaders, 0, 3, resp[:2]), fr(http2.FrameContinuation, http2.FlagContinuationEndHeaders, 3, resp[2:])...),
		fr(http2.FramePushPromise, http2.FlagPushPromiseEndHeaders, 1, append([]byte{0, 0, 0, 2}, h2fuzzBlock(":method", "GET", ":scheme", "http", ":authority", "example.com", ":path", "/p")...)),
		fr(http2.FrameRSTStream, 0, 3, []byte{0, 0, 0, 7}),
		fr(http2.FrameGoAway, 0, 0, []byte{0, 0, 0, 1, 0, 0, 0, 0}),
		fr(http2.FrameWindowUpdate, 0, 1, []byte{0, 0, 1, 0}),
		fr(http2.FrameWindowUpdate, 0, 0, []byte{0x7f, 0xff, 0xff, 0xff}),
		fr(http2.FrameSettings, 0, 0, []byte{0, 4, 0, 0, 0, 0, 0, 3, 0, 0, 0, 1}),
		fr(http2.FrameSettings, http2.FlagSettingsAck, 0, nil),
		fr(http2.FramePing, 0, 0, []byte{1, 2, 3, 4, 5, 6, 7, 8}),
		fr(http2.FramePing, http2.FlagPingAck, 0, []byte{0, 0, 0, 0, 0, 0, 0x27, 0x10}),
		fr(http2.FrameData, http2.FlagDataPadded, 1, []byte{5, 'a', 0, 0, 0, 0, 0}),
		fr(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream, 1, h2fuzzBlock(":status", "103")),
		[]byte("HTTP/1.1 200 OK\r\n"),
		append(fr(http2.FramePushPromise, 0, 1, []byte{0, 0, 0, 2, 0x82}), fr(http2.FrameContinuation, http2.FlagContinuationEndHeaders, 1, h2fuzzBlock(":scheme", "http", ":authority", "example.com", ":path", "/p"))...),
		fr(http2.FrameHeaders, http2.FlagHeadersPadded|http2.FlagHeadersPriority|http2.FlagHeadersEndHeaders, 1, append([]byte{1, 0, 0, 0, 3, 9}, append(resp, 0)...)),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		q, err := NewQueue()
		if err != nil {
			t.Fatal(err)
		}
		defer q.Free()
		o, err := ParseOptions([]byte(`{"protocols":["http2"],"http2_opts":{"preface_timeout":"infinity","settings_timeout":"infinity",
			"initial_connection_window_size":65535,"initial_stream_window_size":65535,"flow":2}}`), 80)
		if err != nil {
			t.Fatal(err)
		}
		c := &Conn{opts: o, host: "example.com", port: 80, owner: q, state: stateUp}
		c.rcond.L, c.drained.L, c.wincond = &c.mu, &c.mu, &c.drained
		c.mu.Lock()
		h := newHTTP2(c).(*h2conn)
		c.proto = h
		var refs []uint64
		for _, r := range []*Request{
			{Method: "GET", Path: "/a"},
			{Method: "POST", Path: "/b", Body: bytes.Repeat([]byte("x"), 70000)},
		} {
			r.ref = newRef()
			refs = append(refs, r.ref)
			if err := h.request(r); err != nil {
				t.Fatal(err)
			}
		}
		c.mu.Unlock()

		in := append(fr(http2.FrameSettings, 0, 0, nil), data...)
		off := 0
		evs := make([]*Event, 64)
		for step := 0; off < len(in); step++ {
			// Feed in uneven pieces, as a socket would.
			end := min(len(in), off+1+(step*7919)%4096)
			c.mu.Lock()
			c.batching = true
			n, err := h.handle(in[off:end])
			c.flushEvents()
			c.wbuf = c.wbuf[:0]
			c.mu.Unlock()
			if err != nil {
				break
			}
			if n == 0 && end == len(in) {
				break
			}
			off += n
			if k, _ := q.Poll(evs, 0); k > 0 {
				c.consume(evs[:k])
			}
			c.mu.Lock()
			switch step % 4 {
			case 1:
				h.updateFlow(refs[0], 1)
			case 2:
				if step%8 == 2 {
					h.cancel(refs[step%2])
				}
			case 3:
				h.ping(newRef())
			}
			h.streamInfo(refs[0])
			c.mu.Unlock()
		}
		c.mu.Lock()
		h.eof()
		h.down()
		c.mu.Unlock()
		for {
			k, _ := q.Poll(evs, 0)
			if k == 0 {
				break
			}
			c.consume(evs[:k])
		}
	})
}
