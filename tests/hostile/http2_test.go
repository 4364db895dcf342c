package hostile

import (
	"bytes"
	"encoding/binary"
	"math"
	"strconv"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"gunmetal/core"
	"gunmetal/tests/h2server"
)

// frames builds what a hostile HTTP/2 server writes in one go.
type frames struct {
	sc *h2server.Conn
	b  []byte
}

func (f *frames) raw(t http2.FrameType, flags http2.Flags, id uint32, payload []byte) *frames {
	f.b = append(f.b, h2server.Frame(t, flags, id, payload)...)
	return f
}

// headers adds a HEADERS frame (END_HEADERS) with fields encoded by the
// server's HPACK encoder.
func (f *frames) headers(id uint32, endStream bool, kv ...string) *frames {
	flags := http2.FlagHeadersEndHeaders
	if endStream {
		flags |= http2.FlagHeadersEndStream
	}
	return f.raw(http2.FrameHeaders, flags, id, f.sc.Block(kv...))
}

func (f *frames) data(id uint32, endStream bool, p []byte) *frames {
	var flags http2.Flags
	if endStream {
		flags = http2.FlagDataEndStream
	}
	return f.raw(http2.FrameData, flags, id, p)
}

// ok adds a complete response "ok" on stream id.
func (f *frames) ok(id uint32) *frames {
	return f.headers(id, false, ":status", "200", "content-length", "2").data(id, true, []byte("ok"))
}

func (f *frames) times(n int, add func(i int)) *frames {
	for i := range n {
		add(i)
	}
	return f
}

// send writes everything, ignoring a failed write: the client may close
// the connection in the middle of a flood, which is what it should do.
func (f *frames) send() {
	f.sc.NC.SetWriteDeadline(time.Now().Add(wait))
	f.sc.NC.Write(f.b)
	f.b = f.b[:0]
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func setting(id http2.SettingID, v uint32) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(id)), u32(v)...)
}

// check is what a case must end with.
type check struct {
	kind core.EventKind // EvError (the stream's) or EvDown; 0: every response completes with "ok"
	want []string       // in the reason
}

type h2case struct {
	name string
	opts string // extra http2_opts
	reqs int    // requests made (default 1)
	// pre, when set, is sent right after the handshake, before the
	// requests are read, on every connection.
	pre func(f *frames)
	// once: the host makes its requests only once, not again on every UP
	// (for a case whose first connection completes its responses: Gun
	// reconnects at once after that, and a host that asked again on every
	// UP would drive a loop of useful connections, one per request).
	once      bool
	script    func(f *frames, ids []uint32)
	check     check
	maxEvents int // events the host may be handed per connection; default 64
	// exit: the EXIT that must end the case (retries run out) names
	// these; for a case whose check is a DOWN (and not once), its reason.
	exit  []string
	after func(t *testing.T, h *host)
}

// HTTP/2 servers that misbehave at the frame level on every connection,
// once the client's request(s) arrived (the host asks again on every UP).
// A connection error runs the retries out (EXIT naming it); after a stream
// error or an absorbed flood the connection stays up.
func TestHTTP2(t *testing.T) {
	cases := []h2case{
		// ---- floods bounded by options ----
		{
			name: "endless 1xx responses",
			script: func(f *frames, ids []uint32) {
				f.times(20000, func(int) { f.headers(ids[0], false, ":status", "103", "link", "</a.css>") }).send()
			},
			check: check{core.EvError, []string{"stream_error: ENHANCE_YOUR_CALM", "More than 32 informational (1xx) responses (max_informational_responses)"}},
		},
		{
			name: "5000 pushes never completed",
			script: func(f *frames, ids []uint32) {
				f.times(5000, func(i int) {
					p := uint32(2 + 2*i)
					block := f.sc.Block(":method", "GET", ":scheme", "http", ":authority", f.sc.NC.LocalAddr().String(), ":path", "/p"+strconv.Itoa(i))
					f.raw(http2.FramePushPromise, http2.FlagPushPromiseEndHeaders, ids[0], append(u32(p), block...))
				}).ok(ids[0]).send()
			},
			maxEvents: 200,
			after: func(t *testing.T, h *host) {
				if n := h.drain.counts()["gun_push"]; n != 100 {
					t.Errorf("%d PUSH events, want 100 (max_concurrent_streams)", n)
				}
			},
		},
		{
			name: "SETTINGS with 2000 entries",
			script: func(f *frames, ids []uint32) {
				f.raw(http2.FrameSettings, 0, 0, bytes.Repeat(setting(http2.SettingMaxConcurrentStreams, 100), 2000)).send()
			},
			check: check{core.EvDown, []string{"connection_error: ENHANCE_YOUR_CALM", "SETTINGS frame with 2000 settings, more than max_settings_entries (64)"}},
		},
		{
			name: "max_settings_entries is an option",
			opts: `"max_settings_entries":3`,
			script: func(f *frames, ids []uint32) {
				f.raw(http2.FrameSettings, 0, 0, bytes.Repeat(setting(http2.SettingEnablePush, 1), 4)).send()
			},
			check: check{core.EvDown, []string{"SETTINGS frame with 4 settings, more than max_settings_entries (3)"}},
		},
		{
			name: "101 header fields",
			script: func(f *frames, ids []uint32) {
				kv := []string{":status", "200"}
				for i := range 101 {
					kv = append(kv, "x-h"+strconv.Itoa(i), "v")
				}
				f.headers(ids[0], true, kv...).send()
			},
			check: check{core.EvError, []string{"stream_error: PROTOCOL_ERROR", "More than 100 header fields (max_headers)"}},
		},

		// ---- the stream state machine ----
		{
			// The first response completes, so the connection was useful:
			// Gun reconnects at once after it. A host asking again on every
			// UP would get one connection per request; this host asks once.
			name: "HEADERS after END_STREAM",
			once: true,
			script: func(f *frames, ids []uint32) {
				f.ok(ids[0]).headers(ids[0], true, ":status", "200").send()
			},
			check: check{core.EvDown, []string{"connection_error: STREAM_CLOSED", "HEADERS frame received for stream 1, closed after its END_STREAM. (RFC9113 5.1)"}},
		},

		// ---- header blocks ----
		{
			name: "CONTINUATION flood",
			script: func(f *frames, ids []uint32) {
				f.raw(http2.FrameHeaders, 0, ids[0], f.sc.Block(":status", "200"))
				f.times(10000, func(int) { f.raw(http2.FrameContinuation, 0, ids[0], []byte{0x88}) }).send()
			},
			check: check{core.EvDown, []string{"connection_error: ENHANCE_YOUR_CALM", "Header block in more than 64 CONTINUATION frames"}},
		},
		{
			name: "oversized header block",
			script: func(f *frames, ids []uint32) {
				f.raw(http2.FrameHeaders, 0, ids[0], f.sc.Block(":status", "200"))
				f.times(3, func(int) { f.raw(http2.FrameContinuation, 0, ids[0], bytes.Repeat([]byte{0x88}, 16000)) }).send()
			},
			check: check{core.EvDown, []string{"connection_error: ENHANCE_YOUR_CALM", "Header block of more than 32768 bytes (max_fragmented_header_block_size)"}},
		},
		{
			name: "HPACK bomb: one table entry referenced 1000 times",
			script: func(f *frames, ids []uint32) {
				// The literal enters the dynamic table (index 62); each
				// 0xbe byte then decodes to 4 kB.
				block := f.sc.Block(":status", "200", "x-bomb", string(bytes.Repeat([]byte("b"), 4000)))
				block = append(block, bytes.Repeat([]byte{0xbe}, 1000)...)
				f.raw(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream, ids[0], block).send()
			},
			check: check{core.EvError, []string{"stream_error: PROTOCOL_ERROR", "The header list is larger than 262144 bytes."}},
		},
		{
			name: "HPACK table size update past the limit",
			script: func(f *frames, ids []uint32) {
				// A dynamic table size update to 1 MiB (RFC 7541 6.3).
				block := []byte{0x3f, 0xe1, 0xff, 0x3f}
				block = append(block, f.sc.Block(":status", "200")...)
				f.raw(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream, ids[0], block).send()
			},
			check: check{core.EvDown, []string{"connection_error: COMPRESSION_ERROR", "dynamic table size update too large"}},
		},
		{
			name: "frame larger than max_frame_size_received",
			script: func(f *frames, ids []uint32) {
				f.headers(ids[0], false, ":status", "200").data(ids[0], true, make([]byte, 20000)).send()
			},
			check: check{core.EvDown, []string{"connection_error: FRAME_SIZE_ERROR", "Frame of 20000 bytes is larger than max_frame_size_received (16384)"}},
		},

		// ---- flow control ----
		{
			name: "connection window past 2^31-1",
			script: func(f *frames, ids []uint32) {
				f.raw(http2.FrameWindowUpdate, 0, 0, u32(math.MaxInt32)).send()
			},
			check: check{core.EvDown, []string{"connection_error: FLOW_CONTROL_ERROR", "WINDOW_UPDATE made the connection window overflow"}},
		},
		{
			name: "stream window past 2^31-1",
			script: func(f *frames, ids []uint32) {
				f.raw(http2.FrameWindowUpdate, 0, ids[0], u32(math.MaxInt32)).send()
			},
			check: check{core.EvError, []string{"stream_error: FLOW_CONTROL_ERROR", "WINDOW_UPDATE made the stream window overflow"}},
		},

		// ---- floods absorbed: the response still completes ----
		{
			name: "RST_STREAM flood on a closed stream",
			reqs: 2,
			script: func(f *frames, ids []uint32) {
				f.ok(ids[0])
				f.times(20000, func(int) { f.raw(http2.FrameRSTStream, 0, ids[0], u32(uint32(http2.ErrCodeCancel))) }).ok(ids[1]).send()
			},
		},
		{
			name: "PING flood",
			script: func(f *frames, ids []uint32) {
				f.times(20000, func(i int) { f.raw(http2.FramePing, 0, 0, binary.BigEndian.AppendUint64(nil, uint64(i))) }).ok(ids[0]).send()
			},
		},
		{
			name: "SETTINGS flood",
			script: func(f *frames, ids []uint32) {
				f.times(20000, func(int) { f.raw(http2.FrameSettings, 0, 0, setting(http2.SettingInitialWindowSize, 65535)) }).ok(ids[0]).send()
			},
		},
		{
			// On every connection, right after the handshake: 20000 GOAWAYs
			// letting stream 1 finish. The first connection's request
			// (sent with the preface) completes; later connections have no
			// request, die at once and run the retries out.
			name: "GOAWAY storm",
			once: true,
			pre: func(f *frames) {
				f.times(20000, func(int) { f.raw(http2.FrameGoAway, 0, 0, append(u32(1), u32(0)...)) }).send()
			},
			script: func(f *frames, ids []uint32) { f.ok(ids[0]).send() },
			after: func(t *testing.T, h *host) {
				h.awaitReason(core.EvDown, "normal") // the server said it is going
			},
			exit: []string{"normal"},
		},
		{
			name: "empty DATA flood",
			script: func(f *frames, ids []uint32) {
				f.headers(ids[0], false, ":status", "200")
				f.times(20000, func(int) { f.data(ids[0], false, nil) }).data(ids[0], true, []byte("ok")).send()
			},
		},
	}
	// Malformed control frames: the error names the frame and the rule.
	for _, m := range []struct {
		name  string
		t     http2.FrameType
		flags http2.Flags
		id    uint32 // 1: the request's stream
		p     []byte
		kind  core.EventKind
		want  string
	}{
		{"PING of 7 bytes", http2.FramePing, 0, 0, make([]byte, 7), core.EvDown, "FRAME_SIZE_ERROR: PING frame of 7 bytes; a PING payload is exactly 8 bytes. (RFC9113 6.7)"},
		{"PING on a stream", http2.FramePing, 0, 1, make([]byte, 8), core.EvDown, "PROTOCOL_ERROR: PING frame on stream 1; PING applies to the connection, stream 0. (RFC9113 6.7)"},
		{"SETTINGS of 7 bytes", http2.FrameSettings, 0, 0, make([]byte, 7), core.EvDown, "FRAME_SIZE_ERROR: SETTINGS frame of 7 bytes; its length must be a multiple of 6. (RFC9113 6.5)"},
		{"SETTINGS ack with a payload", http2.FrameSettings, http2.FlagSettingsAck, 0, make([]byte, 6), core.EvDown, "FRAME_SIZE_ERROR: SETTINGS frame with the ACK flag and a 6-byte payload"},
		{"SETTINGS on a stream", http2.FrameSettings, 0, 1, nil, core.EvDown, "PROTOCOL_ERROR: SETTINGS frame on stream 1"},
		{"SETTINGS_INITIAL_WINDOW_SIZE 2^31", http2.FrameSettings, 0, 0, setting(http2.SettingInitialWindowSize, 1<<31), core.EvDown, "FLOW_CONTROL_ERROR: SETTINGS_INITIAL_WINDOW_SIZE of 2147483648 is above the maximum window 2^31-1. (RFC9113 6.5.2)"},
		{"WINDOW_UPDATE of 0 on the connection", http2.FrameWindowUpdate, 0, 0, u32(0), core.EvDown, "PROTOCOL_ERROR: WINDOW_UPDATE frame with an increment of 0 on stream 0. (RFC9113 6.9)"},
		{"WINDOW_UPDATE of 0 on a stream", http2.FrameWindowUpdate, 0, 1, u32(0), core.EvError, "stream_error: PROTOCOL_ERROR: WINDOW_UPDATE frame with an increment of 0 on stream 1. (RFC9113 6.9)"},
		{"WINDOW_UPDATE of 3 bytes", http2.FrameWindowUpdate, 0, 0, make([]byte, 3), core.EvDown, "FRAME_SIZE_ERROR: WINDOW_UPDATE frame of 3 bytes"},
		{"RST_STREAM on stream 0", http2.FrameRSTStream, 0, 0, u32(0), core.EvDown, "PROTOCOL_ERROR: RST_STREAM frame on stream 0; it must name a stream. (RFC9113 6.4)"},
		{"RST_STREAM of 3 bytes", http2.FrameRSTStream, 0, 1, make([]byte, 3), core.EvDown, "FRAME_SIZE_ERROR: RST_STREAM frame of 3 bytes"},
		{"GOAWAY of 4 bytes", http2.FrameGoAway, 0, 0, make([]byte, 4), core.EvDown, "FRAME_SIZE_ERROR: GOAWAY frame of 4 bytes; it needs at least 8"},
		{"GOAWAY on a stream", http2.FrameGoAway, 0, 1, make([]byte, 8), core.EvDown, "PROTOCOL_ERROR: GOAWAY frame on stream 1"},
		{"PRIORITY of 4 bytes", http2.FramePriority, 0, 1, make([]byte, 4), core.EvDown, "FRAME_SIZE_ERROR: PRIORITY frame of 4 bytes; its payload is exactly 5 bytes. (RFC9113 6.3)"},
	} {
		cases = append(cases, h2case{
			name:   "malformed " + m.name,
			script: func(f *frames, ids []uint32) { f.raw(m.t, m.flags, m.id, m.p).send() },
			check:  check{m.kind, []string{m.want}},
		})
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := h2server.Start(t)
			n := max(tc.reqs, 1)
			// Every connection: handshake, read the requests, misbehave.
			srv.Serve(serverTB{t}, func(sc *h2server.Conn) {
				sc.Handshake()
				if tc.pre != nil {
					tc.pre(&frames{sc: sc})
				}
				ids := make([]uint32, n)
				for i := range ids {
					ids[i] = sc.ReadRequest().StreamID
				}
				discard(sc.NC)
				tc.script(&frames{sc: sc}, ids)
			})
			reqs := make([]*core.Request, n)
			for i := range reqs {
				reqs[i] = get("/hostile/" + strconv.Itoa(i))
			}
			opts := `{"protocols":["http2"],"http2_opts":{` + tc.opts + `},` + retryOpts + `}`
			h, refs := newHostAsking(t, srv.Port(), opts, !tc.once, reqs...)
			switch tc.check.kind {
			case 0:
				for _, ref := range refs {
					if status, body := h.awaitBody(ref); status != 200 || string(body) != "ok" {
						t.Errorf("stream %d: status %d, body %q; want 200 \"ok\"", ref, status, body)
					}
				}
			case core.EvError: // a stream error: the connection stays up
				ev := h.awaitReason(tc.check.kind, tc.check.want...)
				if ev.Ref != refs[0] {
					t.Errorf("ERROR for stream %d, want the request %d", ev.Ref, refs[0])
				}
			case core.EvDown: // a connection error on every connection
				h.awaitReason(tc.check.kind, tc.check.want...)
				if tc.exit == nil && !tc.once { // with once, later connections idle
					tc.exit = tc.check.want
				}
			}
			if tc.after != nil {
				tc.after(t, h)
			}
			if tc.exit != nil {
				h.awaitExit(srv.Accepted, tc.exit...)
			}
			maxEvents := tc.maxEvents
			if maxEvents == 0 {
				maxEvents = 64
			}
			h.finish(maxEvents, srv.Accepted)
		})
	}
}
