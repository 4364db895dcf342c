package core

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/net/http2"

	"gunmetal/tests/h2server"
)

// The stream ends of an RFC 8441 WebSocket (the h2Pipe's, pipe_h2.go), on
// the scripted server: they are the WebSocket's, not a tunnel's.

// TestWSH2CloseHandshakeEndsStream: our close frame, the server's answer:
// the close is the stream's last event, END_STREAM follows ours, and the
// server's END_STREAM is awaited closing_timeout, then RST_STREAM CANCEL
// without any further event; the connection carries on.
func TestWSH2CloseHandshakeEndsStream(t *testing.T) {
	q, c, sc, ref, id := wsH2Open(t, `{"closing_timeout":300}`)
	wsSend(t, c, ref, WSFrame{Op: WSClose, Code: 1000, Data: []byte("bye")})
	hs, ps, fin := wsH2Frames(t, sc, id, 1)
	if hs[0].OpCode != ws.OpClose || binary.BigEndian.Uint16(ps[0]) != 1000 || fin {
		t.Fatalf("client sent %v %q (END_STREAM %v), want close 1000 alone", hs[0].OpCode, ps[0], fin)
	}
	sc.Data(id, false, wsServerFrame(0x88, []byte{0x03, 0xe8}))
	if ev := expectWS(t, q, ref, WSClose); ev.CloseCode != 1000 {
		t.Fatalf("close %d", ev.CloseCode)
	}
	if f := sc.ExpectType(http2.FrameData, int(id)).(*http2.DataFrame); !f.StreamEnded() || len(f.Data()) != 0 {
		t.Fatalf("after the handshake: DATA %q END_STREAM %v, want an empty END_STREAM", f.Data(), f.StreamEnded())
	}
	sc.Expect("RST_STREAM CANCEL", isRST(id, http2.ErrCodeCancel)) // no END_STREAM from the server
	noEvent(t, q, 100*time.Millisecond)
	g := get(t, c, "/after")
	req := sc.ReadRequest()
	sc.Respond(req.StreamID, 204, true)
	expect(t, q, EvResponse, g)
}

// TestWSH2ServerCloseFirst: the server's close frame is answered with close
// 1000 and END_STREAM; its END_STREAM then ends the stream: no RST_STREAM.
func TestWSH2ServerCloseFirst(t *testing.T) {
	q, _, sc, ref, id := wsH2Open(t, `{"closing_timeout":300}`)
	sc.Data(id, false, wsServerFrame(0x88, []byte{0x03, 0xe9}))
	if ev := expectWS(t, q, ref, WSClose); ev.CloseCode != 1001 {
		t.Fatalf("close %d", ev.CloseCode)
	}
	hs, ps, fin := wsH2Frames(t, sc, id, 1)
	if !fin {
		fin = sc.ExpectType(http2.FrameData, int(id)).(*http2.DataFrame).StreamEnded()
	}
	if hs[0].OpCode != ws.OpClose || binary.BigEndian.Uint16(ps[0]) != 1000 || !fin {
		t.Fatalf("client sent %v %q (END_STREAM %v), want close 1000 and END_STREAM", hs[0].OpCode, ps[0], fin)
	}
	sc.Data(id, true, nil)
	sc.NoFrame(500*time.Millisecond, "RST_STREAM", func(f http2.Frame) bool { _, ok := f.(*http2.RSTStreamFrame); return ok })
	noEvent(t, q, 100*time.Millisecond)
}

// TestWSH2ServerEndsWithoutClose: END_STREAM without a close frame is an
// ERROR on the WebSocket; our side ends too (END_STREAM, no reset).
func TestWSH2ServerEndsWithoutClose(t *testing.T) {
	q, _, sc, ref, id := wsH2Open(t, `{}`)
	sc.Data(id, false, wsServerFrame(0x81, []byte("last")))
	expectWS(t, q, ref, WSText)
	sc.Data(id, true, nil)
	if ev := expect(t, q, EvError, ref); !strings.Contains(ev.Reason, "without a close frame") {
		t.Fatalf("got %s", evString(ev))
	}
	if f := sc.ExpectType(http2.FrameData, int(id)).(*http2.DataFrame); !f.StreamEnded() {
		t.Fatalf("DATA %q without END_STREAM", f.Data())
	}
	noEvent(t, q, 100*time.Millisecond)
}

// wsH2NoWindow is a WebSocket over HTTP/2 (RFC 8441) on a scripted server
// that gives no window.
func wsH2NoWindow(t *testing.T) (*Queue, *Conn, *h2server.Conn, uint64, *h2server.Request) {
	q, c, _, sc := h2script(t, "")
	sc.Handshake(http2.Setting{ID: http2.SettingEnableConnectProtocol, Val: 1},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	ref, err := c.WSUpgrade("/chat", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	req := sc.ReadRequest()
	sc.Respond(req.StreamID, 200, false)
	expect(t, q, EvUpgrade, ref)
	return q, c, sc, ref, req
}

// TestWSH2SendBackpressure: the server gives no window: WSSend keeps at
// most writeBound pending and then blocks; a reset stream releases it with
// ErrClosed, the WebSocket gets the stream's ERROR, and the connection
// carries on.
func TestWSH2SendBackpressure(t *testing.T) {
	q, c, sc, ref, req := wsH2NoWindow(t)
	done := make(chan error, 1)
	go func() {
		big := bytes.Repeat([]byte{'x'}, writeBound+1<<20)
		done <- c.WSSend(ref, []WSFrame{{Op: WSBinary, Data: big}})
	}()
	select {
	case err := <-done:
		t.Fatalf("WSSend returned %v with %d bytes and no window", err, writeBound+1<<20)
	case <-time.After(300 * time.Millisecond):
	}
	sc.RST(req.StreamID, http2.ErrCodeCancel)
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("WSSend: %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WSSend still blocked after the stream was reset")
	}
	if ev := expect(t, q, EvError, ref); !strings.HasPrefix(ev.Reason, "stream_error") {
		t.Fatalf("got %s", evString(ev))
	}
	g := get(t, c, "/after")
	r2 := sc.ReadRequest()
	sc.Respond(r2.StreamID, 204, true)
	expect(t, q, EvResponse, g)
}

// TestConnectHTTP2SendWindowTimeout: a proxy that keeps a tunnel's window
// shut past send_window_timeout: the tunnel's stream is reset with one
// ERROR saying so, the request inside gets its ERROR, and nothing more (the
// child repeated the stream's ERROR, with its own reason, before).
func TestConnectHTTP2SendWindowTimeout(t *testing.T) {
	q, c, _, sc := h2script(t, `,"http2_opts":{"send_window_timeout":300}`)
	sc.Handshake(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	ref, err := c.Connect(dest(t, `{"host":"origin.test","port":8443}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := sc.ReadRequest()
	sc.Respond(r.StreamID, 200, false)
	expect(t, q, EvResponse, ref)
	expect(t, q, EvTunnelUp, ref)
	inner, err := c.Request(&Request{Method: "GET", Path: "/in", Tunnel: ref})
	if err != nil {
		t.Fatal(err)
	}
	sc.Expect("RST_STREAM CANCEL", isRST(r.StreamID, http2.ErrCodeCancel))
	if ev := expect(t, q, EvError, ref); !strings.Contains(ev.Reason, "http2_opts.send_window_timeout") {
		t.Fatalf("got %s", evString(ev))
	}
	// Its reason says "timeout:" once (it read "timeout: stream N: timeout: ...").
	if ev := expect(t, q, EvError, inner); !strings.HasPrefix(ev.Reason, "closed") || strings.Count(ev.Reason, "timeout:") > 1 {
		t.Fatalf("got %s", evString(ev))
	}
	noEvent(t, q, 300*time.Millisecond)
}

// TestWSH2SendNoWait: with no window from the server, WSSendNoWait queues
// one call's frames past the bound without waiting, then refuses the next
// call with ErrWouldBlock and sends nothing of it.
func TestWSH2SendNoWait(t *testing.T) {
	_, c, _, ref, _ := wsH2NoWindow(t)
	big := bytes.Repeat([]byte{'x'}, writeBound+1<<20)
	if err := c.WSSendNoWait(ref, []WSFrame{{Op: WSBinary, Data: big}}); err != nil {
		t.Fatalf("first WSSendNoWait (output below the bound): %v", err)
	}
	err := c.WSSendNoWait(ref, []WSFrame{{Op: WSText, Data: []byte("refused")}})
	if !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("second WSSendNoWait: %v, want ErrWouldBlock", err)
	}
	c.mu.Lock()
	pending := len(c.wsStreamOf(ref).t.(*h2Pipe).s.body)
	c.mu.Unlock()
	if want := len(big) + 4 + 10; pending > want+1024 || pending < len(big) {
		t.Fatalf("%d bytes pending, want the first call's frame only (~%d)", pending, want)
	}
	// A bad frame is still refused as such, not as would-block.
	if err := c.WSSendNoWait(ref, []WSFrame{{Op: 3}}); !errors.Is(err, ErrBadArg) {
		t.Fatalf("bad op: %v, want ErrBadArg", err)
	}
}
