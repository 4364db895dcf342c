package core

// A scripted frame-level WebSocket server (like tests/h2server for HTTP/2):
// it answers the upgrade with a 101 of our choosing, then writes exactly the
// frames (or bytes) a case says and reads what the client writes back. The
// table mirrors the Autobahn test suite's client cases that apply (framing,
// pings/pongs, reserved bits, opcodes, fragmentation, UTF-8, close handling,
// limits), plus gunmetal's own: data after our close, closing_timeout,
// oversized and negative lengths, deflate parameters and a deflate bomb.

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// wsPeer is the server side of one scripted WebSocket.
type wsPeer struct {
	t   testing.TB
	nc  net.Conn
	br  *bufio.Reader
	req *http.Request

	// permessage-deflate as answered (ext).
	deflate      bool
	srvTakeover  bool // the server keeps its compression context
	cliTakeover  bool // the client keeps its context
	zw           *flate.Writer
	zbuf         bytes.Buffer
	cliDict      []byte
	lastClientZ  []byte // the last compressed payload the client sent
	clientClose  int    // the code of the client's close frame; -1 none yet, 0 none
	clientReason string
}

// startWSScript serves one scripted WebSocket per connection: the upgrade
// is answered with a 101 carrying ext as its extensions (none when ""),
// then script runs.
func startWSScript(t testing.TB, ext string, script func(p *wsPeer)) *rawServer {
	return startRaw(t, func(nc net.Conn) {
		br := bufio.NewReader(nc)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		resp := "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-accept: " +
			wsAcceptKey(req.Header.Get("Sec-WebSocket-Key")) + "\r\n"
		if ext != "" {
			resp += "sec-websocket-extensions: " + ext + "\r\n"
		}
		io.WriteString(nc, resp+"\r\n")
		p := &wsPeer{t: t, nc: nc, br: br, req: req, clientClose: -1}
		if ext != "" {
			p.deflate = true
			p.srvTakeover = !strings.Contains(ext, "server_no_context_takeover")
			p.cliTakeover = !strings.Contains(ext, "client_no_context_takeover")
		}
		nc.SetDeadline(time.Now().Add(30 * time.Second))
		script(p)
	})
}

// raw writes bytes as they are.
func (p *wsPeer) raw(b []byte) { p.nc.Write(b) }

// frame writes one unmasked frame: b0 is FIN|RSV|opcode as on the wire.
func (p *wsPeer) frame(b0 byte, payload []byte) {
	p.raw(wsServerFrame(b0, payload))
}

func wsServerFrame(b0 byte, payload []byte) []byte {
	b := []byte{b0, 0}
	switch l := len(payload); {
	case l < 126:
		b[1] = byte(l)
	case l <= 0xffff:
		b[1] = 126
		b = binary.BigEndian.AppendUint16(b, uint16(l))
	default:
		b[1] = 127
		b = binary.BigEndian.AppendUint64(b, uint64(l))
	}
	return append(b, payload...)
}

// text / binary / ping / pong / close write final frames.
func (p *wsPeer) text(s string)       { p.frame(0x81, []byte(s)) }
func (p *wsPeer) binary(b []byte)     { p.frame(0x82, b) }
func (p *wsPeer) ping(b []byte)       { p.frame(0x89, b) }
func (p *wsPeer) pong(b []byte)       { p.frame(0x8a, b) }
func (p *wsPeer) closeFrame(b []byte) { p.frame(0x88, b) }

func wsCloseBody(code int, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

// read takes the client's next frame (unmasked; it must be masked); ok false
// at the end of the connection.
func (p *wsPeer) read() (ws.Header, []byte, bool) {
	h, err := ws.ReadHeader(p.br)
	if err != nil {
		return h, nil, false
	}
	if !h.Masked {
		p.t.Errorf("the client sent an unmasked frame (opcode %d)", h.OpCode)
	}
	b := make([]byte, h.Length)
	if _, err := io.ReadFull(p.br, b); err != nil {
		return h, nil, false
	}
	ws.Cipher(b, h.Mask, 0)
	if h.OpCode == ws.OpClose {
		p.clientClose = 0
		if len(b) >= 2 {
			p.clientClose = int(binary.BigEndian.Uint16(b))
			p.clientReason = string(b[2:])
		}
	}
	if h.Rsv1() && p.deflate {
		p.lastClientZ = append([]byte{}, b...)
		b = p.inflate(b)
	}
	return h, b, true
}

// echo echoes the client's messages (compressed when deflate), answers its
// pings, until its close frame, which it answers; then it closes.
func (p *wsPeer) echo() {
	for {
		h, b, ok := p.read()
		if !ok {
			return
		}
		switch h.OpCode {
		case ws.OpPing:
			p.pong(b)
		case ws.OpClose:
			p.closeFrame(wsCloseBody(max(p.clientClose, 1000), ""))
			return
		case ws.OpText, ws.OpBinary:
			if p.deflate {
				p.frame(0xc0|byte(h.OpCode), p.compress(b))
			} else {
				p.frame(0x80|byte(h.OpCode), b)
			}
		}
	}
}

// untilClose reads until the client's close frame (or the end).
func (p *wsPeer) untilClose() {
	for p.clientClose < 0 {
		if _, _, ok := p.read(); !ok {
			return
		}
	}
}

// inflate decompresses a client message the way the negotiation says: with
// the previous messages as dictionary only under client context takeover.
func (p *wsPeer) inflate(z []byte) []byte {
	var dict []byte
	if p.cliTakeover {
		dict = p.cliDict
	}
	r := flate.NewReaderDict(io.MultiReader(bytes.NewReader(z), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff})), dict)
	out, err := io.ReadAll(r)
	if err != nil {
		p.t.Errorf("the client's compressed message does not inflate (client takeover %v): %v", p.cliTakeover, err)
	}
	p.cliDict = append(p.cliDict, out...)
	return out
}

// compress deflates a message, keeping the context unless the server
// answered server_no_context_takeover.
func (p *wsPeer) compress(b []byte) []byte {
	p.zbuf.Reset()
	if p.zw == nil || !p.srvTakeover {
		p.zw, _ = flate.NewWriter(&p.zbuf, flate.BestCompression)
	}
	p.zw.Write(b)
	p.zw.Flush()
	out := p.zbuf.Bytes()
	return append([]byte{}, out[:len(out)-4]...)
}

// wsWant is one expected event of the WebSocket stream.
type wsWant struct {
	kind   EventKind // EvWS or EvError
	op     uint8
	data   string
	code   int    // close code
	reason string // EvError: reason prefix
}

func wsMsg(op uint8, data string) wsWant { return wsWant{kind: EvWS, op: op, data: data} }
func wsClosed(code int, r string) wsWant { return wsWant{kind: EvWS, op: WSClose, code: code, data: r} }
func wsErr(prefix string) wsWant         { return wsWant{kind: EvError, reason: prefix} }

// wsRun opens a connection to s, upgrades with opts, checks the stream's
// events (want), then DOWN's reason (prefix), and returns.
func wsRun(t *testing.T, s *rawServer, opts string, want []wsWant, down string) {
	t.Helper()
	q := newQueue(t)
	c := openTo(t, q, s.port(), `{"retry":0}`)
	awaitUp(t, c)
	ref, _ := wsUpgrade(t, q, c, "/", wsOpts(t, opts))
	for i, w := range want {
		ev := expect(t, q, w.kind, ref)
		switch {
		case w.kind == EvError:
			if !hasReason(ev, w.reason) {
				t.Fatalf("event %d: %s, want ERROR %q...", i, evString(ev), w.reason)
			}
		case ev.WSOp != w.op || string(ev.Data) != w.data || (w.op == WSClose && ev.CloseCode != w.code):
			t.Fatalf("event %d: op %d code %d data %.80q; want op %d code %d data %.80q", i, ev.WSOp, ev.CloseCode, ev.Data, w.op, w.code, w.data)
		}
	}
	ev := expect(t, q, EvDown, 0)
	if ev.Protocol != "ws" || !strings.HasPrefix(ev.Reason, down) || len(ev.Killed) != 1 || ev.Killed[0] != ref {
		t.Fatalf("got %s, want gun_down ws %q... killed [%d]", evString(ev), down, ref)
	}
	// retry 0: EXIT says the same.
	if ev := expect(t, q, EvExit, 0); !strings.Contains(ev.Reason, down) {
		t.Fatalf("got %s, want gun_exit with %q", evString(ev), down)
	}
}

// TestWSScriptAutobahn mirrors the Autobahn client cases that apply. Each
// case's server writes its frames, then reads the client's until its close
// frame; the case checks the events, the client's close code and DOWN.
func TestWSScriptAutobahn(t *testing.T) {
	big := func(n int) string { return strings.Repeat("*", n) }
	bin := bytes.Repeat([]byte{0xfe}, 65536)
	utf8Hello := "κόσμε" // Autobahn 6.2.1's text
	cases := []struct {
		name   string
		opts   string // ws_opts
		script func(p *wsPeer)
		want   []wsWant
		close  int    // the client's close code
		down   string // DOWN reason prefix
	}{
		// 1.x framing: text and binary of every length class, then close.
		{name: "1.1.1 text 0", script: func(p *wsPeer) { p.text(""); p.closeFrame(wsCloseBody(1000, "")) },
			want: []wsWant{wsMsg(WSText, ""), wsClosed(1000, "")}, close: 1000, down: "normal"},
		{name: "1.1.2 text 125", script: func(p *wsPeer) { p.text(big(125)); p.closeFrame(wsCloseBody(1000, "")) },
			want: []wsWant{wsMsg(WSText, big(125)), wsClosed(1000, "")}, close: 1000, down: "normal"},
		{name: "1.1.3 text 126", script: func(p *wsPeer) { p.text(big(126)); p.closeFrame(wsCloseBody(1000, "")) },
			want: []wsWant{wsMsg(WSText, big(126)), wsClosed(1000, "")}, close: 1000, down: "normal"},
		{name: "1.1.5 text 65535", script: func(p *wsPeer) { p.text(big(65535)); p.closeFrame(wsCloseBody(1000, "")) },
			want: []wsWant{wsMsg(WSText, big(65535)), wsClosed(1000, "")}, close: 1000, down: "normal"},
		{name: "1.1.6 text 65536", script: func(p *wsPeer) { p.text(big(65536)); p.closeFrame(wsCloseBody(1000, "")) },
			want: []wsWant{wsMsg(WSText, big(65536)), wsClosed(1000, "")}, close: 1000, down: "normal"},
		{name: "1.1.8 text 65536 in 997-byte chops", script: func(p *wsPeer) {
			b := append(wsServerFrame(0x81, []byte(big(65536))), wsServerFrame(0x88, wsCloseBody(1000, ""))...)
			for len(b) > 0 {
				n := min(997, len(b))
				p.raw(b[:n])
				b = b[n:]
			}
		}, want: []wsWant{wsMsg(WSText, big(65536)), wsClosed(1000, "")}, close: 1000, down: "normal"},
		{name: "1.2.6 binary 65536", script: func(p *wsPeer) { p.binary(bin); p.closeFrame(wsCloseBody(1000, "")) },
			want: []wsWant{wsMsg(WSBinary, string(bin)), wsClosed(1000, "")}, close: 1000, down: "normal"},

		// 2.x pings and pongs (the client's pongs are checked below, in
		// TestWSScriptPings).
		{name: "2.1 ping empty, silenced", script: func(p *wsPeer) { p.ping(nil); p.text("after"); p.closeFrame(nil) },
			want: []wsWant{wsMsg(WSText, "after"), wsClosed(0, "")}, close: 1000, down: "normal"},
		{name: "2.2 ping with payload", opts: `{"silence_pings":false}`, script: func(p *wsPeer) { p.ping([]byte("Hello, world!")); p.closeFrame(nil) },
			want: []wsWant{wsMsg(WSPing, "Hello, world!"), wsClosed(0, "")}, close: 1000, down: "normal"},
		{name: "2.4 ping 125", opts: `{"silence_pings":false}`, script: func(p *wsPeer) { p.ping([]byte(big(125))); p.closeFrame(nil) },
			want: []wsWant{wsMsg(WSPing, big(125)), wsClosed(0, "")}, close: 1000, down: "normal"},
		{name: "2.5 ping 126", script: func(p *wsPeer) { p.ping([]byte(big(126))) },
			want: []wsWant{wsErr("ws_error")}, close: 1002, down: "ws_error"},
		{name: "2.7 unsolicited pong", opts: `{"silence_pings":false}`, script: func(p *wsPeer) { p.pong([]byte("u")); p.closeFrame(nil) },
			want: []wsWant{wsMsg(WSPong, "u"), wsClosed(0, "")}, close: 1000, down: "normal"},

		// 3.x reserved bits without an extension.
		{name: "3.1 RSV1 text", script: func(p *wsPeer) { p.frame(0xc1, []byte("x")) }, want: []wsWant{wsErr("ws_error")}, close: 1002, down: "ws_error"},
		{name: "3.2 RSV2 text", script: func(p *wsPeer) { p.frame(0xa1, []byte("x")) }, want: []wsWant{wsErr("ws_error")}, close: 1002, down: "ws_error"},
		{name: "3.3 RSV3 text after a good one", script: func(p *wsPeer) { p.text("ok"); p.frame(0x91, []byte("x")) },
			want: []wsWant{wsMsg(WSText, "ok"), wsErr("ws_error")}, close: 1002, down: "ws_error"},
		{name: "3.6 RSV3|RSV2 ping", script: func(p *wsPeer) { p.frame(0xb9, nil) }, want: []wsWant{wsErr("ws_error")}, close: 1002, down: "ws_error"},

		// 4.x reserved opcodes.
		{name: "4.1.1 opcode 3", script: func(p *wsPeer) { p.frame(0x83, nil) }, want: []wsWant{wsErr("ws_error")}, close: 1002, down: "ws_error"},
		{name: "4.1.5 opcode 7 after a good one", script: func(p *wsPeer) { p.text("ok"); p.frame(0x87, []byte("x")) },
			want: []wsWant{wsMsg(WSText, "ok"), wsErr("ws_error")}, close: 1002, down: "ws_error"},
		{name: "4.2.1 opcode 11", script: func(p *wsPeer) { p.frame(0x8b, nil) }, want: []wsWant{wsErr("ws_error")}, close: 1002, down: "ws_error"},
		{name: "4.2.5 opcode 15", script: func(p *wsPeer) { p.frame(0x8f, []byte("x")) }, want: []wsWant{wsErr("ws_error")}, close: 1002, down: "ws_error"},

		// 5.x fragmentation, control frames inside.
		{name: "5.1 fragmented ping", script: func(p *wsPeer) { p.frame(0x09, []byte("a")); p.frame(0x80, []byte("b")) },
			want: []wsWant{wsErr("ws_error")}, close: 1002, down: "ws_error"},
		{name: "5.3 text in 2 fragments", script: func(p *wsPeer) { p.frame(0x01, []byte("frag")); p.frame(0x80, []byte("ment")); p.closeFrame(nil) },
			want: []wsWant{wsMsg(WSText, "fragment"), wsClosed(0, "")}, close: 1000, down: "normal"},
		{name: "5.6 ping inside a fragmented text", opts: `{"silence_pings":false}`, script: func(p *wsPeer) {
			p.frame(0x01, []byte("frag"))
			p.ping([]byte("in between"))
			p.frame(0x80, []byte("ment"))
			p.closeFrame(nil)
		}, want: []wsWant{wsMsg(WSPing, "in between"), wsMsg(WSText, "fragment"), wsClosed(0, "")}, close: 1000, down: "normal"},
		{name: "5.8 pong and ping inside, 1-byte chops", opts: `{"silence_pings":false}`, script: func(p *wsPeer) {
			var b []byte
			b = append(b, wsServerFrame(0x02, []byte{1, 2})...)
			b = append(b, wsServerFrame(0x8a, []byte("po"))...)
			b = append(b, wsServerFrame(0x00, []byte{3})...)
			b = append(b, wsServerFrame(0x89, []byte("pi"))...)
			b = append(b, wsServerFrame(0x80, []byte{4})...)
			b = append(b, wsServerFrame(0x88, nil)...)
			for i := range b {
				p.raw(b[i : i+1])
			}
		}, want: []wsWant{wsMsg(WSPong, "po"), wsMsg(WSPing, "pi"), wsMsg(WSBinary, "\x01\x02\x03\x04"), wsClosed(0, "")}, close: 1000, down: "normal"},
		{name: "5.9 continuation without a start", script: func(p *wsPeer) { p.frame(0x80, []byte("x")) },
			want: []wsWant{wsErr("ws_error")}, close: 1002, down: "ws_error"},
		{name: "5.18 text while fragmented", script: func(p *wsPeer) { p.frame(0x01, []byte("a")); p.frame(0x81, []byte("b")) },
			want: []wsWant{wsErr("ws_error")}, close: 1002, down: "ws_error"},
		{name: "5.x close inside a fragmented message", script: func(p *wsPeer) { p.frame(0x01, []byte("a")); p.closeFrame(wsCloseBody(1001, "bye")) },
			want: []wsWant{wsClosed(1001, "bye")}, close: 1000, down: "normal"},

		// 6.x UTF-8.
		{name: "6.2.1 valid UTF-8", script: func(p *wsPeer) { p.text(utf8Hello); p.closeFrame(nil) },
			want: []wsWant{wsMsg(WSText, utf8Hello), wsClosed(0, "")}, close: 1000, down: "normal"},
		{name: "6.2.3 valid UTF-8 split inside a code point", script: func(p *wsPeer) {
			b := []byte(utf8Hello)
			p.frame(0x01, b[:3])
			p.frame(0x80, b[3:])
			p.closeFrame(nil)
		}, want: []wsWant{wsMsg(WSText, utf8Hello), wsClosed(0, "")}, close: 1000, down: "normal"},
		{name: "6.3.1 invalid UTF-8", script: func(p *wsPeer) {
			p.frame(0x81, []byte{0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80, 0x65, 0x64, 0x69, 0x74, 0x65, 0x64})
		},
			want: []wsWant{wsErr("badencoding")}, close: 1007, down: "badencoding"},
		{name: "6.4.x invalid UTF-8 in fragments", script: func(p *wsPeer) { p.frame(0x01, []byte("ok")); p.frame(0x80, []byte{0xf4, 0x90, 0x80, 0x80}) },
			want: []wsWant{wsErr("badencoding")}, close: 1007, down: "badencoding"},

		// 7.x close handling.
		{name: "7.1.1 close after a text", script: func(p *wsPeer) { p.text("Hello World!"); p.closeFrame(wsCloseBody(1000, "")) },
			want: []wsWant{wsMsg(WSText, "Hello World!"), wsClosed(1000, "")}, close: 1000, down: "normal"},
		{name: "7.1.6 data after the close is ignored", script: func(p *wsPeer) { p.closeFrame(wsCloseBody(1000, "")); p.text("ignored"); p.ping(nil) },
			want: []wsWant{wsClosed(1000, "")}, close: 1000, down: "normal"},
		{name: "7.3.1 close without payload", script: func(p *wsPeer) { p.closeFrame(nil) },
			want: []wsWant{wsClosed(0, "")}, close: 1000, down: "normal"},
		{name: "7.3.2 close with 1 byte", script: func(p *wsPeer) { p.closeFrame([]byte{3}) },
			want: []wsWant{wsErr("ws_error")}, close: 1002, down: "ws_error"},
		{name: "7.3.6 close with a 123-byte reason", script: func(p *wsPeer) { p.closeFrame(wsCloseBody(1000, big(123))) },
			want: []wsWant{wsClosed(1000, big(123))}, close: 1000, down: "normal"},
		{name: "7.5.1 close reason not UTF-8", script: func(p *wsPeer) {
			p.closeFrame(append(wsCloseBody(1000, ""), 0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80))
		},
			want: []wsWant{wsErr("badencoding")}, close: 1007, down: "badencoding"},

		// 9.x limits, and lengths RFC 6455 5.2 forbids.
		{name: "9.x a 1 GiB frame over max_message_size", opts: `{"max_message_size":1048576}`, script: func(p *wsPeer) {
			// The header only: the client must refuse it before any byte of
			// the payload comes (the payload never does).
			p.raw([]byte{0x82, 127, 0, 0, 0, 0, 0x40, 0, 0, 0})
		}, want: []wsWant{wsErr("max_message_size")}, close: 1009, down: "max_message_size"},
		{name: "9.x fragments adding up over max_message_size", opts: `{"max_message_size":1000}`, script: func(p *wsPeer) {
			p.frame(0x02, make([]byte, 600))
			p.raw([]byte{0x80, 126, 0x01, 0x90}) // 400 more: 1000 is fine
			p.raw(make([]byte, 400))
			p.frame(0x02, make([]byte, 600))
			p.raw([]byte{0x80, 126, 0x01, 0x91}) // 401 more: over
		}, want: []wsWant{wsMsg(WSBinary, string(make([]byte, 1000))), wsErr("max_message_size")}, close: 1009, down: "max_message_size"},
		{name: "negative 64-bit length", script: func(p *wsPeer) { p.raw([]byte{0x82, 127, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0}) },
			want: []wsWant{wsErr("ws_error: frame header: a 64-bit length with its most significant bit set")}, close: 1002, down: "ws_error"},
		{name: "64-bit length under 65536", script: func(p *wsPeer) { p.raw([]byte{0x82, 127, 0, 0, 0, 0, 0, 0, 0, 1, 'x'}) },
			want: []wsWant{wsErr("ws_error")}, close: 1002, down: "ws_error"},
		{name: "16-bit length under 126", script: func(p *wsPeer) { p.raw([]byte{0x82, 126, 0, 1, 'x'}) },
			want: []wsWant{wsErr("ws_error")}, close: 1002, down: "ws_error"},
		{name: "masked server frame", script: func(p *wsPeer) { p.raw([]byte{0x81, 0x81, 1, 2, 3, 4, 'x' ^ 1}) },
			want: []wsWant{wsErr("ws_error")}, close: 1002, down: "ws_error"},
	}
	for _, c := range []struct {
		code int
		ok   bool
	}{{1000, true}, {1001, true}, {1002, true}, {1003, true}, {1007, true}, {1008, true}, {1009, true}, {1010, true},
		{1011, true}, {3000, true}, {3999, true}, {4000, true}, {4999, true},
		{0, false}, {999, false}, {1004, false}, {1005, false}, {1006, false}, {1016, false}, {1100, false}, {2000, false}, {2999, false}, {5000, false}, {65535, false}} {
		code := c.code
		tc := struct {
			name   string
			opts   string
			script func(p *wsPeer)
			want   []wsWant
			close  int
			down   string
		}{name: "7.7-7.9 close code " + itoa(code), script: func(p *wsPeer) { p.closeFrame(wsCloseBody(code, "")) }}
		if c.ok {
			tc.want, tc.close, tc.down = []wsWant{wsClosed(code, "")}, 1000, "normal"
		} else {
			tc.want, tc.close, tc.down = []wsWant{wsErr("ws_error")}, 1002, "ws_error"
		}
		cases = append(cases, tc)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan int, 1)
			s := startWSScript(t, "", func(p *wsPeer) {
				tc.script(p)
				p.untilClose()
				got <- p.clientClose
			})
			wsRun(t, s, tc.opts, tc.want, tc.down)
			select {
			case code := <-got:
				if code != tc.close {
					t.Fatalf("the client closed with %d, want %d", code, tc.close)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the server saw no close frame")
			}
		})
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// TestWSScriptPings: {ping, Payload} and {pong, Payload} from the client go
// out with the caller's payload, in call order with the data frames of the
// same call; the server's pings are answered with their payload.
func TestWSScriptPings(t *testing.T) {
	type frame struct {
		op ws.OpCode
		b  string
	}
	seen := make(chan []frame, 1)
	s := startWSScript(t, "", func(p *wsPeer) {
		p.ping([]byte("from the server"))
		var fs []frame
		for p.clientClose < 0 {
			h, b, ok := p.read()
			if !ok {
				break
			}
			fs = append(fs, frame{h.OpCode, string(b)})
		}
		seen <- fs
		p.closeFrame(wsCloseBody(1000, ""))
	})
	q := newQueue(t)
	c := openTo(t, q, s.port(), `{"retry":0}`)
	awaitUp(t, c)
	ref, _ := wsUpgrade(t, q, c, "/", wsOpts(t, `{"silence_pings":false}`))
	if ev := expectWS(t, q, ref, WSPing); string(ev.Data) != "from the server" {
		t.Fatalf("ping %q", ev.Data)
	}
	wsSend(t, c, ref,
		WSFrame{Op: WSText, Data: []byte("one")},
		WSFrame{Op: WSPing, Data: []byte("mine")},
		WSFrame{Op: WSBinary, Data: []byte("two")},
		WSFrame{Op: WSPong, Data: []byte("unsolicited")},
		WSFrame{Op: WSPing},
		WSFrame{Op: WSClose, Code: 4000, Data: []byte("done")})
	want := []frame{{ws.OpPong, "from the server"}, {ws.OpText, "one"}, {ws.OpPing, "mine"}, {ws.OpBinary, "two"},
		{ws.OpPong, "unsolicited"}, {ws.OpPing, ""}, {ws.OpClose, "\x0f\xa0done"}}
	fs := <-seen
	if len(fs) != len(want) {
		t.Fatalf("the server saw %q, want %q", fs, want)
	}
	for i := range want {
		if fs[i] != want[i] {
			t.Fatalf("frame %d: %q, want %q (all: %q)", i, fs[i], want[i], fs)
		}
	}
	ev := expectWS(t, q, ref, WSClose)
	if ev.CloseCode != 1000 {
		t.Fatalf("close %d", ev.CloseCode)
	}
	ev = expect(t, q, EvDown, 0)
	if ev.Reason != "normal" {
		t.Fatalf("got %s", evString(ev))
	}
}

// TestWSScriptDataAfterOurClose: messages the server sends after our close
// frame and before its own are delivered (Gun's behaviour), then its close.
func TestWSScriptDataAfterOurClose(t *testing.T) {
	s := startWSScript(t, "", func(p *wsPeer) {
		p.untilClose()
		p.text("late 1")
		p.binary([]byte("late 2"))
		p.closeFrame(wsCloseBody(1000, "ok"))
	})
	q := newQueue(t)
	c := openTo(t, q, s.port(), `{"retry":0}`)
	awaitUp(t, c)
	ref, _ := wsUpgrade(t, q, c, "/", nil)
	wsSend(t, c, ref, WSFrame{Op: WSClose, Code: 1000})
	if ev := expectWS(t, q, ref, WSText); string(ev.Data) != "late 1" {
		t.Fatalf("got %q", ev.Data)
	}
	if ev := expectWS(t, q, ref, WSBinary); string(ev.Data) != "late 2" {
		t.Fatalf("got %q", ev.Data)
	}
	if ev := expectWS(t, q, ref, WSClose); ev.CloseCode != 1000 || string(ev.Data) != "ok" {
		t.Fatalf("close %d %q", ev.CloseCode, ev.Data)
	}
	if ev := expect(t, q, EvDown, 0); ev.Reason != "normal" {
		t.Fatalf("got %s", evString(ev))
	}
}

// TestWSScriptClosingTimeout: a server that never answers our close frame.
// The stream gets ERROR closing_timeout and DOWN says so, after
// closing_timeout and not before (1 s; 8 s in parallel, past the 5 s that
// coder/websocket capped it at).
func TestWSScriptClosingTimeout(t *testing.T) {
	for _, ms := range []int{1000, 8000} {
		t.Run(itoa(ms)+"ms", func(t *testing.T) {
			t.Parallel() // the 8 s case runs beside the rest of the suite
			s := startWSScript(t, "", func(p *wsPeer) {
				p.untilClose()
				p.text("still delivered")
				io.Copy(io.Discard, p.br) // never a close frame
			})
			q := newQueue(t)
			c := openTo(t, q, s.port(), `{"retry":0}`)
			awaitUp(t, c)
			ref, _ := wsUpgrade(t, q, c, "/", wsOpts(t, `{"closing_timeout":`+itoa(ms)+`}`))
			start := time.Now()
			wsSend(t, c, ref, WSFrame{Op: WSClose, Code: 1000})
			expectWS(t, q, ref, WSText)
			var ev *Event
			for ev == nil {
				var out [1]*Event
				if n, _ := q.Poll(out[:], 20*time.Second); n == 1 {
					ev = out[0]
				} else {
					t.Fatal("no event within 20 s")
				}
			}
			el := time.Since(start)
			if ev.Kind != EvError || ev.Ref != ref || !hasReason(ev, "closing_timeout") || !strings.Contains(ev.Reason, itoa(ms)+" ms") {
				t.Fatalf("got %s", evString(ev))
			}
			if el < time.Duration(ms)*time.Millisecond {
				t.Fatalf("closing_timeout %d ms fired after %v", ms, el)
			}
			ev = expect(t, q, EvDown, 0)
			if !hasReason(ev, "closing_timeout") || len(ev.Killed) != 1 {
				t.Fatalf("got %s", evString(ev))
			}
		})
	}
}

// TestWSScriptDeflate: permessage-deflate with each parameter the server
// may answer. Three identical messages each way: the server inflates the
// client's with a dictionary only under client context takeover (a client
// that keeps its context against client_no_context_takeover fails here),
// and compresses its echoes with its context unless
// server_no_context_takeover. The offer is Gun's, or "permessage-deflate"
// alone for "compat".
func TestWSScriptDeflate(t *testing.T) {
	msg := strings.Repeat("gunmetal permessage-deflate ", 20)
	for _, tc := range []struct {
		compress string
		ext      string
	}{
		{"true", "permessage-deflate"},
		{"true", "permessage-deflate; server_no_context_takeover"},
		{"true", "permessage-deflate; client_no_context_takeover"},
		{"true", "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
		{"true", "permessage-deflate; server_max_window_bits=15"},
		{"true", "permessage-deflate; server_max_window_bits=9"},
		{"true", "permessage-deflate; client_max_window_bits=15"},
		{"true", "permessage-deflate; client_max_window_bits=10; client_no_context_takeover"},
		{`"compat"`, "permessage-deflate"},
		{`"compat"`, "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
	} {
		t.Run(tc.compress+" "+tc.ext, func(t *testing.T) {
			offer := make(chan string, 1)
			zlens := make(chan int, 3)
			s := startWSScript(t, tc.ext, func(p *wsPeer) {
				offer <- p.req.Header.Get("Sec-WebSocket-Extensions")
				for p.clientClose < 0 {
					h, b, ok := p.read()
					if !ok {
						return
					}
					switch h.OpCode {
					case ws.OpText:
						if !h.Rsv1() {
							t.Errorf("a text message without RSV1")
						}
						zlens <- len(p.lastClientZ)
						p.frame(0xc1, p.compress(b))
					}
				}
				p.closeFrame(wsCloseBody(1000, ""))
			})
			q := newQueue(t)
			c := openTo(t, q, s.port(), `{"retry":0}`)
			awaitUp(t, c)
			ref, _ := wsUpgrade(t, q, c, "/", wsOpts(t, `{"compress":`+tc.compress+`}`))
			want := "permessage-deflate; client_max_window_bits; server_max_window_bits=15"
			if tc.compress != "true" {
				want = "permessage-deflate"
			}
			if got := <-offer; got != want {
				t.Fatalf("offer %q, want %q", got, want)
			}
			for i := 0; i < 3; i++ {
				wsSend(t, c, ref, WSFrame{Op: WSText, Data: []byte(msg)})
				if ev := expectWS(t, q, ref, WSText); string(ev.Data) != msg {
					t.Fatalf("echo %d: %.60q", i, ev.Data)
				}
				zl := <-zlens
				if strings.Contains(tc.ext, "client_max_window_bits=10") && zl < len(msg)/8 {
					// Huffman only: nothing refers back, so no window is needed.
					t.Fatalf("message %d compressed to %d bytes: back-references despite client_max_window_bits=10", i, zl)
				}
			}
			wsSend(t, c, ref, WSFrame{Op: WSClose, Code: 1000})
			expectWS(t, q, ref, WSClose)
			if ev := expect(t, q, EvDown, 0); ev.Reason != "normal" {
				t.Fatalf("got %s", evString(ev))
			}
		})
	}
}

// TestWSScriptDeflateBad: extension answers that fail the handshake, and
// compressed frames that break RFC 7692.
func TestWSScriptDeflateBad(t *testing.T) {
	for _, ext := range []string{
		"permessage-deflate; client_max_window_bits", // a response must give a value
		"permessage-deflate; server_max_window_bits=7",
		"permessage-deflate; unknown_param",
		"permessage-deflate, permessage-deflate",
		"x-webkit-deflate-frame",
	} {
		t.Run(ext, func(t *testing.T) {
			s := startWSScript(t, ext, func(p *wsPeer) { io.Copy(io.Discard, p.br) })
			q := newQueue(t)
			c := openTo(t, q, s.port(), `{"retry":0}`)
			awaitUp(t, c)
			ref, err := c.WSUpgrade("/", nil, wsOpts(t, `{"compress":true}`))
			if err != nil {
				t.Fatal(err)
			}
			if ev := expect(t, q, EvError, ref); !strings.Contains(ev.Reason, "ws_handshake_failed") {
				t.Fatalf("got %s", evString(ev))
			}
			ev := expect(t, q, EvDown, 0)
			if !hasReason(ev, "ws_handshake_failed") {
				t.Fatalf("got %s", evString(ev))
			}
		})
	}
	// compat offers no client_max_window_bits: an answer with it fails.
	t.Run("compat client_max_window_bits=10", func(t *testing.T) {
		s := startWSScript(t, "permessage-deflate; client_max_window_bits=10", func(p *wsPeer) { io.Copy(io.Discard, p.br) })
		q := newQueue(t)
		c := openTo(t, q, s.port(), `{"retry":0}`)
		awaitUp(t, c)
		ref, _ := c.WSUpgrade("/", nil, wsOpts(t, `{"compress":"compat"}`))
		expect(t, q, EvError, ref)
		if ev := expect(t, q, EvDown, 0); !hasReason(ev, "ws_handshake_failed") {
			t.Fatalf("got %s", evString(ev))
		}
	})
	for _, tc := range []struct {
		name   string
		script func(p *wsPeer)
	}{
		{"RSV1 on a continuation", func(p *wsPeer) { p.frame(0x41, p.compress([]byte("a"))); p.frame(0xc0, nil) }},
		{"RSV1 on a ping", func(p *wsPeer) { p.frame(0xc9, nil) }},
		{"garbage that does not inflate", func(p *wsPeer) { p.frame(0xc1, []byte{0xff, 0xff, 0xff, 0xff}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan int, 1)
			s := startWSScript(t, "permessage-deflate", func(p *wsPeer) {
				tc.script(p)
				p.untilClose()
				got <- p.clientClose
			})
			wsRun(t, s, `{"compress":true}`, []wsWant{wsErr("ws_error")}, "ws_error")
			if code := <-got; code != 1002 {
				t.Fatalf("the client closed with %d, want 1002", code)
			}
		})
	}
}

// TestWSScriptDeflateBomb: a message of 64 MiB of zeros compressed to a
// few tens of KiB is refused with 1009 once its output passes
// max_message_size, not inflated; the heap does not grow by the bomb.
func TestWSScriptDeflateBomb(t *testing.T) {
	var zb bytes.Buffer
	zw, _ := flate.NewWriter(&zb, flate.BestCompression)
	zero := make([]byte, 1<<20)
	for i := 0; i < 64; i++ {
		zw.Write(zero)
	}
	zw.Flush()
	bomb := zb.Bytes()[:zb.Len()-4]
	got := make(chan int, 1)
	s := startWSScript(t, "permessage-deflate", func(p *wsPeer) {
		p.frame(0xc2, bomb)
		p.untilClose()
		got <- p.clientClose
	})
	wsRun(t, s, `{"compress":true,"max_message_size":1048576}`, []wsWant{wsErr("max_message_size: a compressed message inflates")}, "max_message_size")
	if code := <-got; code != 1009 {
		t.Fatalf("the client closed with %d, want 1009", code)
	}
	t.Logf("bomb: %d compressed bytes for 64 MiB", len(bomb))
}

// TestWSScriptFlowWithControlFrames: Gun's flow counts delivered frames,
// control ones included when not silenced; frames past it wait.
func TestWSScriptFlowWithControlFrames(t *testing.T) {
	s := startWSScript(t, "", func(p *wsPeer) {
		p.text("1")
		p.ping([]byte("2"))
		p.text("3")
		p.closeFrame(nil)
		p.untilClose()
	})
	q := newQueue(t)
	c := openTo(t, q, s.port(), `{"retry":0}`)
	awaitUp(t, c)
	ref, _ := wsUpgrade(t, q, c, "/", wsOpts(t, `{"flow":1,"silence_pings":false}`))
	expectWS(t, q, ref, WSText)
	noEvent(t, q, 200*time.Millisecond)
	if err := c.UpdateFlow(ref, 1); err != nil {
		t.Fatal(err)
	}
	if ev := expectWS(t, q, ref, WSPing); string(ev.Data) != "2" {
		t.Fatalf("ping %q", ev.Data)
	}
	noEvent(t, q, 200*time.Millisecond)
	c.UpdateFlow(ref, 5)
	expectWS(t, q, ref, WSText)
	expectWS(t, q, ref, WSClose)
	if ev := expect(t, q, EvDown, 0); ev.Reason != "normal" {
		t.Fatalf("got %s", evString(ev))
	}
}

// TestWSReplyTo: ws_opts reply_to (WSOpts.ReplyTo) sends the upgrade
// stream's events to another queue; DOWN and EXIT stay with the owner.
func TestWSReplyTo(t *testing.T) {
	owner, other := newQueue(t), newQueue(t)
	c := up(t, owner, `{"retry":0}`)
	o := wsOpts(t, `{}`)
	o.ReplyTo = other
	ref, _ := wsUpgrade(t, other, c, "/ws", o)
	wsSend(t, c, ref, WSFrame{Op: WSText, Data: []byte("to other")})
	if ev := expectWS(t, other, ref, WSText); string(ev.Data) != "to other" {
		t.Fatalf("got %q", ev.Data)
	}
	wsSend(t, c, ref, WSFrame{Op: WSClose, Code: 1000})
	expectWS(t, other, ref, WSClose)
	if ev := expect(t, owner, EvDown, 0); ev.Reason != "normal" {
		t.Fatalf("got %s", evString(ev))
	}
	noEvent(t, other, 100*time.Millisecond)
}

// TestWSAllocsPerMessage: frames in, events out with one allocation for the
// payload (the event's own Data, filled by one copy from the socket's
// buffer) and one for the event: measured on the parser, 100-byte messages.
func TestWSAllocsPerMessage(t *testing.T) {
	q := newQueue(t)
	c := &Conn{owner: q, opts: DefaultOptions(80)}
	c.rcond.L, c.drained.L, c.wincond = &c.mu, &c.mu, &c.drained
	up := &wsUp{c: c, ref: 1, path: "/", opts: DefaultWSOpts()}
	p := newWSProto(c, up, nil, wsNegotiated{})
	c.proto = p
	const n = 100
	var buf []byte
	payload := bytes.Repeat([]byte("x"), 100)
	for i := 0; i < n; i++ {
		buf = append(buf, wsServerFrame(0x82, payload)...)
	}
	out := make([]*Event, n)
	allocs := testing.AllocsPerRun(50, func() {
		c.mu.Lock()
		used, err := p.parse(buf)
		c.mu.Unlock()
		if used != len(buf) || err != nil {
			t.Fatalf("parsed %d of %d: %v", used, len(buf), err)
		}
		if k, _ := q.Poll(out, 0); k != n {
			t.Fatalf("%d events", k)
		}
		for _, ev := range out {
			if len(ev.Data) != 100 || &ev.Data[0] == &buf[len(buf)-100] {
				t.Fatal("bad event")
			}
		}
	})
	t.Logf("%.2f allocations per 100-byte message", allocs/n)
	if allocs/n > 2.2 {
		t.Fatalf("%.2f allocations per message, want at most 2 (the event and its payload)", allocs/n)
	}
}

// TestWSScriptPingFlood: a server that sends pings without reading our
// pongs is cut off (close 1008, ERROR ws_error: ping flood) once the pongs
// waiting for it pass the bound, instead of growing our output for ever.
func TestWSScriptPingFlood(t *testing.T) {
	sent := make(chan int, 1)
	s := startWSScript(t, "", func(p *wsPeer) {
		ping := wsServerFrame(0x89, bytes.Repeat([]byte("p"), 125))
		batch := bytes.Repeat(ping, 512)
		n := 0
		for ; n < 64<<20; n += len(batch) { // at most 64 MiB of pings
			if _, err := p.nc.Write(batch); err != nil {
				break
			}
		}
		sent <- n
	})
	q := newQueue(t)
	c := openTo(t, q, s.port(), `{"retry":0}`)
	awaitUp(t, c)
	ref, _ := wsUpgrade(t, q, c, "/", nil)
	ev := expect(t, q, EvError, ref)
	if !hasReason(ev, "ws_error: ping flood") {
		t.Fatalf("got %s", evString(ev))
	}
	if ev := expect(t, q, EvDown, 0); !hasReason(ev, "ws_error: ping flood") {
		t.Fatalf("got %s", evString(ev))
	}
	if n := <-sent; n >= 64<<20 {
		t.Fatalf("the server wrote %d bytes of pings without being cut off", n)
	}
}

// TestWSNoGoroutinePerWebSocket: upgrading a connection adds no goroutine
// (frames are parsed in the connection's read loop): ten WebSockets, each
// with a message echoed, leave the goroutine count where ten HTTP
// connections had it (coder/websocket kept one reader per WebSocket).
func TestWSNoGoroutinePerWebSocket(t *testing.T) {
	q := newQueue(t)
	var cs []*Conn
	for i := 0; i < 10; i++ {
		cs = append(cs, up(t, q, `{"retry":0}`))
	}
	time.Sleep(100 * time.Millisecond)
	before := runtime.NumGoroutine()
	for _, c := range cs {
		ref, _ := wsUpgrade(t, q, c, "/ws", wsOpts(t, `{"keepalive":60000}`))
		wsSend(t, c, ref, WSFrame{Op: WSText, Data: []byte("hi")})
		expectWS(t, q, ref, WSText)
	}
	time.Sleep(100 * time.Millisecond)
	after := runtime.NumGoroutine()
	t.Logf("goroutines: %d with 10 HTTP connections, %d once they are WebSockets", before, after)
	if after-before >= len(cs) {
		t.Fatalf("%d more goroutines for %d WebSockets", after-before, len(cs))
	}
}
