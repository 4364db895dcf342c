package core

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/gobwas/ws"
	"gunmetal/tests/h2server"
)

// wsH2Frames reads the client's DATA on stream id until want frames (of
// the WebSocket inside) are whole; it returns them unmasked.
func wsH2Frames(t *testing.T, sc *h2server.Conn, id uint32, want int) ([]ws.Header, [][]byte, bool) {
	t.Helper()
	var buf []byte
	var hs []ws.Header
	var ps [][]byte
	fin := false
	for len(hs) < want {
		f := sc.ExpectType(http2.FrameData, int(id)).(*http2.DataFrame)
		buf = append(buf, f.Data()...)
		fin = fin || f.StreamEnded()
		for {
			r := bytes.NewReader(buf)
			h, err := ws.ReadHeader(r)
			if err != nil || int64(r.Len()) < h.Length {
				break
			}
			p := make([]byte, h.Length)
			r.Read(p)
			ws.Cipher(p, h.Mask, 0)
			hs, ps = append(hs, h), append(ps, p)
			buf = buf[len(buf)-r.Len():]
		}
		if fin && len(hs) < want {
			t.Fatalf("END_STREAM after %d frames, want %d", len(hs), want)
		}
	}
	return hs, ps, fin
}

// wsH2Open opens an RFC 8441 WebSocket on the scripted server.
func wsH2Open(t *testing.T, opts string) (*Queue, *Conn, *h2server.Conn, uint64, uint32) {
	t.Helper()
	q, c, _, sc := h2script(t, "")
	sc.Handshake(http2.Setting{ID: http2.SettingEnableConnectProtocol, Val: 1})
	ref, err := c.WSUpgrade("/chat", nil, wsOpts(t, opts))
	if err != nil {
		t.Fatal(err)
	}
	req := sc.ReadRequest()
	if p, _ := req.Header(":protocol"); req.Method != "CONNECT" || p != "websocket" {
		t.Fatalf("request %+v", req)
	}
	sc.Respond(req.StreamID, 200, false)
	expect(t, q, EvUpgrade, ref)
	return q, c, sc, ref, req.StreamID
}

// TestWSH2Script: over RFC 8441 the same state machine: the server's ping
// is answered within the stream, Gun's flow holds frames back, our close
// waits closing_timeout and then resets the stream (ERROR
// closing_timeout), the connection stays up.
func TestWSH2Script(t *testing.T) {
	q, c, sc, ref, id := wsH2Open(t, `{"closing_timeout":500,"silence_pings":false,"flow":2}`)
	var in []byte
	in = append(in, wsServerFrame(0x89, []byte("p"))...)
	in = append(in, wsServerFrame(0x81, []byte("one"))...)
	in = append(in, wsServerFrame(0x81, []byte("two"))...)
	sc.Data(id, false, in)
	if ev := expectWS(t, q, ref, WSPing); string(ev.Data) != "p" {
		t.Fatalf("ping %q", ev.Data)
	}
	expectWS(t, q, ref, WSText)
	noEvent(t, q, 200*time.Millisecond) // flow 2: "two" waits
	hs, ps, _ := wsH2Frames(t, sc, id, 1)
	if hs[0].OpCode != ws.OpPong || string(ps[0]) != "p" {
		t.Fatalf("client sent %v %q, want the pong", hs[0].OpCode, ps[0])
	}
	c.UpdateFlow(ref, 1)
	if ev := expectWS(t, q, ref, WSText); string(ev.Data) != "two" {
		t.Fatalf("got %q", ev.Data)
	}
	wsSend(t, c, ref, WSFrame{Op: WSPing, Data: []byte("mine")}, WSFrame{Op: WSClose, Code: 1000})
	hs, ps, _ = wsH2Frames(t, sc, id, 2)
	if hs[0].OpCode != ws.OpPing || string(ps[0]) != "mine" || hs[1].OpCode != ws.OpClose || binary.BigEndian.Uint16(ps[1]) != 1000 {
		t.Fatalf("client sent %v %q, %v %q", hs[0].OpCode, ps[0], hs[1].OpCode, ps[1])
	}
	// No answer: after closing_timeout the stream is reset.
	sc.Expect("RST_STREAM CANCEL", isRST(id, http2.ErrCodeCancel))
	if ev := expect(t, q, EvError, ref); !hasReason(ev, "closing_timeout") {
		t.Fatalf("got %s", evString(ev))
	}
	noEvent(t, q, 100*time.Millisecond) // the connection stays up
}

// TestWSH2ScriptProtocolError: a bad frame on an RFC 8441 stream: close
// 1002 and END_STREAM on that stream, ERROR ws_error; the connection
// stays.
func TestWSH2ScriptProtocolError(t *testing.T) {
	q, _, sc, ref, id := wsH2Open(t, `{}`)
	sc.Data(id, false, []byte{0x83, 0}) // reserved opcode 3
	if ev := expect(t, q, EvError, ref); !hasReason(ev, "ws_error") {
		t.Fatalf("got %s", evString(ev))
	}
	hs, ps, fin := wsH2Frames(t, sc, id, 1)
	if !fin { // END_STREAM may come in a DATA frame of its own
		fin = sc.ExpectType(http2.FrameData, int(id)).(*http2.DataFrame).StreamEnded()
	}
	if hs[0].OpCode != ws.OpClose || binary.BigEndian.Uint16(ps[0]) != 1002 || !fin {
		t.Fatalf("client sent %v %q (END_STREAM %v), want close 1002 and END_STREAM", hs[0].OpCode, ps[0], fin)
	}
	noEvent(t, q, 100*time.Millisecond)
}

// TestWSH2WaitsForStreamSlot: with wait_for_stream_slot, a WebSocket
// upgrade past the server's max_concurrent_streams waits for a slot like a
// request (it failed at once with too_many_streams before); without it,
// Gun's error.
func TestWSH2WaitsForStreamSlot(t *testing.T) {
	for _, wait := range []bool{false, true} {
		q, c, _, sc := h2script(t, fmt.Sprintf(`,"http2_opts":{"wait_for_stream_slot":%v}`, wait))
		sc.Handshake(http2.Setting{ID: http2.SettingEnableConnectProtocol, Val: 1},
			http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 1})
		sc.Expect("SETTINGS ack", func(f http2.Frame) bool { s, ok := f.(*http2.SettingsFrame); return ok && s.IsAck() })
		a := get(t, c, "/a")
		ra := sc.ReadRequest()
		ref, err := c.WSUpgrade("/chat", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !wait {
			if ev := expect(t, q, EvError, ref); !strings.HasPrefix(ev.Reason, "too_many_streams") {
				t.Fatalf("got %s", evString(ev))
			}
			continue
		}
		sc.NoFrame(150*time.Millisecond, "HEADERS", func(f http2.Frame) bool { return f.Header().Type == http2.FrameHeaders })
		sc.Respond(ra.StreamID, 200, true)
		expect(t, q, EvResponse, a)
		req := sc.ReadRequest()
		if p, _ := req.Header(":protocol"); req.Method != "CONNECT" || p != "websocket" {
			t.Fatalf("request %+v", req)
		}
		sc.Respond(req.StreamID, 200, false)
		expect(t, q, EvUpgrade, ref)
	}
}
