package core

// ws is Gun's gun_ws: the protocol of a connection after a successful
// WebSocket upgrade. Framing, masking, permessage-deflate and the close
// handshake are coder/websocket's; this file is the seam between it and the
// engine:
//
//   - bytes read from the socket go, through handle, into a bounded pipe
//     (wsPipeMax) that coder/websocket reads as its connection (wsBody.Read).
//     A full pipe pauses the socket (paused), so a host that stops taking
//     events slows the server down instead of growing memory.
//   - coder/websocket writes frames through wsBody.Write, which is c.write
//     under c.mu (and waits, like Data, while too much output is pending).
//   - one goroutine per WebSocket (the one that ran the handshake) reads
//     messages and emits WS events; Gun's flow stops it between messages.
//   - wsBody.Close (coder/websocket is done: close handshake over, or an
//     error) closes the connection once the output is written, as Gun closes
//     it after the close frames: DOWN follows with reason "normal", the
//     stream in its killed list (Gun #265), and the connection reconnects
//     per its retry options as an HTTP connection (no re-upgrade).
//
// Deviations from Gun, forced by coder/websocket:
//   - A ping carries a payload coder/websocket picks (a decimal counter);
//     a ping with a payload of the caller's and an unsolicited pong cannot
//     be sent (ErrUnsupported). Incoming pings are always answered.
//   - The permessage-deflate offer is coder/websocket's ("permessage-deflate",
//     context takeover), not Gun's "client_max_window_bits;
//     server_max_window_bits=15": coder/websocket cannot honour a window
//     limit that a server would send back.
//   - After a close frame is sent, coder/websocket waits at most 5 s for the
//     peer's: closing_timeout only shortens that. And its Close drops the
//     data messages that arrive between our close frame and the peer's
//     (Gun delivers them); the peer's close frame is still reported (see
//     wsSniff).
//   - A ping sent by WSSend may reach the wire after frames that follow it
//     in the same call (coder/websocket's Ping blocks until the pong, so it
//     runs on its own goroutine).
//
// Deviations of gunmetal's own:
//   - HTTP/1.1 requests made after an upgrade wait for its outcome (ERROR
//     badstate on a 101, sent otherwise); Gun writes them at once and they
//     are lost when the upgrade succeeds.
//   - Over HTTP/2 (RFC 8441, ws_h2.go) a closed WebSocket ends its stream,
//     not the connection, and is not in a DOWN.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
)

// wsPipeMax bounds the bytes read from the socket that coder/websocket has
// not read yet.
const wsPipeMax = 128 << 10

type wsProto struct {
	c       *Conn
	up      *wsUp
	ref     uint64
	path    string
	opts    *WSOpts
	headers []Header // the 101's

	// All below under c.mu.
	cond      sync.Cond // L = &c.mu: pipe, flow, closing, detach
	in        []byte    // the pipe: in[off:] not read yet
	off       int
	eofSeen   bool // the socket ended: no more bytes
	closed    bool // coder/websocket closed its side (wsBody.Close)
	detached  bool // the connection is gone (serve's detach)
	flow      int  // Gun's flow: events left; -1 off
	parked    bool // the reader waits for flow
	ws        *websocket.Conn
	ready     chan struct{} // closed once ws is set, or the reader gave up
	done      bool          // the reader goroutine has finished
	over      bool          // the stream's last event (close or ERROR) was emitted
	sentClose bool          // a close frame was sent (ours or coder's)
	gotClose  bool          // the peer's close frame was received
	sniff     wsSniff       // the peer's frames as they enter the pipe, for its close frame
	h2        *wsH2         // RFC 8441: the HTTP/2 stream that carries it; nil over HTTP/1.1

	ctx    context.Context // pings and closes; cancelled on detach
	stop   context.CancelFunc
	timers []*time.Timer
}

func newWSProto(c *Conn, up *wsUp, hs []Header) *wsProto {
	p := &wsProto{c: c, up: up, ref: up.ref, path: up.path, opts: up.opts, headers: hs,
		flow: -1, ready: make(chan struct{})}
	if up.opts.Flow > 0 {
		p.flow = up.opts.Flow
	}
	p.cond.L = &c.mu
	p.ctx, p.stop = context.WithCancel(context.Background())
	return p
}

// ---- the protocol interface ----

func (p *wsProto) name() string { return "ws" }

func (p *wsProto) handle(buf []byte) (int, error) {
	if p.closed || p.done {
		return len(buf), nil // after the close, Gun ignores what comes
	}
	n := min(wsPipeMax-(len(p.in)-p.off), len(buf))
	if n <= 0 {
		return 0, nil
	}
	p.feed(buf[:n])
	return n, nil
}

// feed appends the peer's bytes to the pipe. Over HTTP/1.1 handle keeps it
// within wsPipeMax; over HTTP/2 the stream's flow-control window does.
func (p *wsProto) feed(b []byte) {
	if p.in == nil {
		p.in = make([]byte, 0, max(wsPipeMax, len(b)))
	}
	if p.off > 0 && len(p.in)+len(b) > cap(p.in) {
		p.in = p.in[:copy(p.in, p.in[p.off:])]
		p.off = 0
	}
	p.in = append(p.in, b...)
	p.sniff.feed(b)
	p.cond.Broadcast()
}

// live: the connection still carries this WebSocket (as its protocol, or
// through its HTTP/2 engine). c.mu held.
func (p *wsProto) live() bool {
	if p.h2 != nil {
		return p.c.proto == p.h2.h
	}
	return p.c.proto == p
}

// eof: the socket ended. The reader gets what is left in the pipe, then
// EOF; eof waits for it to finish, so that its last events come before
// DOWN. After a close frame either way the connection ended as planned.
func (p *wsProto) eof() error {
	p.eofSeen = true
	p.cond.Broadcast()
	for !p.done && !p.parked && !p.detached && p.c.closeReq == "" {
		p.c.rcond.Wait()
	}
	if p.gotClose || p.sentClose || p.closed {
		return errCloseNormal
	}
	return nil
}

// request: an upgraded HTTP/1.1 connection only carries WebSocket frames
// (Gun's connected_ws_only): a connection-wide ERROR.
func (p *wsProto) request(r *Request) error {
	p.refuse(r)
	return nil
}

func (p *wsProto) wsUpgrade(r *Request) error {
	p.refuse(r)
	r.ws.fail(errWSDone)
	return nil
}

func (p *wsProto) refuse(r *Request) {
	c := p.c
	if t, ok := c.timers[r.ref]; ok {
		t.Stop()
		delete(c.timers, r.ref)
	}
	delete(c.replyTo, r.ref)
	c.emit(&Event{Kind: EvError, Reason: "badstate: This connection only accepts Websocket frames."})
}

func (p *wsProto) data(uint64, []byte, bool) error {
	return fmt.Errorf("%w: This connection only accepts Websocket frames.", ErrBadState)
}

func (p *wsProto) cancel(ref uint64) error {
	if ref == p.ref {
		return fmt.Errorf("%w: a WebSocket stream ends with a close frame (ws_send), not a cancel", ErrBadState)
	}
	return nil
}

func (p *wsProto) updateFlow(ref uint64, n int) error {
	if ref != p.ref {
		return fmt.Errorf("%w: %d is not the WebSocket stream of this connection", ErrNoStream, ref)
	}
	if p.flow >= 0 {
		p.flow += n
		p.cond.Broadcast()
	}
	return nil
}

func (p *wsProto) consumed(uint64, int) {}

func (p *wsProto) paused() bool { return p.h2 == nil && !p.closed && len(p.in)-p.off >= wsPipeMax }

// detach: the connection is gone (any way: lost, closed, shut down). The
// reader's next read fails and it goes; nothing more is emitted.
func (p *wsProto) detach() {
	if !p.detached && !p.over && p.sniff.seen {
		// The peer's close frame arrived but the reader had not reported it
		// yet (the peer closed the connection right after it): it is still
		// the stream's last event, before DOWN.
		p.gotClose, p.over = true, true
		p.c.emit(&Event{Kind: EvWS, Ref: p.ref, WSOp: WSClose, CloseCode: p.sniff.code, Data: []byte(p.sniff.reason)})
	}
	p.detached = true
	p.cond.Broadcast()
	for _, t := range p.timers {
		t.Stop()
	}
	p.stop()
}

// down: the WebSocket stream is killed with its connection (Gun #265).
func (p *wsProto) down() []uint64 { return []uint64{p.ref} }

// ended: the stream already had its last event, or its close handshake was
// under way: DOWN lists it, but no ERROR follows.
func (p *wsProto) ended(ref uint64) bool {
	return ref == p.ref && (p.over || p.sentClose || p.gotClose)
}

// shutdown: Gun sends a close frame 1001 and waits closing_timeout.
func (p *wsProto) shutdown() time.Duration {
	p.startCloseLocked(int(websocket.StatusGoingAway), "")
	return p.opts.ClosingTimeout
}

// idle: the reader has finished (its last events are out).
func (p *wsProto) idle() bool { return p.done || p.detached }

func (p *wsProto) streamInfo(ref uint64) (StreamInfo, bool) {
	if ref != p.ref {
		return StreamInfo{}, false
	}
	st := "running"
	if p.sentClose || p.gotClose || p.over {
		st = "stopping"
	}
	return StreamInfo{State: st, Method: "GET", Path: p.path, Flow: p.flow}, true
}

// ---- events ----

// emit sends a WS event of the stream unless it has ended. c.mu held.
func (p *wsProto) emit(ev *Event) {
	if p.detached || p.over || !p.live() {
		return
	}
	ev.Ref = p.ref
	p.c.emit(ev)
	if p.flow > 0 {
		p.flow--
	}
}

// control reports a ping or pong (coder/websocket's callbacks, on the
// reader goroutine) unless silence_pings.
func (p *wsProto) control(op uint8, b []byte) {
	if p.opts.SilencePings {
		return
	}
	c := p.c
	c.mu.Lock()
	p.emit(&Event{Kind: EvWS, WSOp: op, Data: append([]byte{}, b...)})
	c.mu.Unlock()
}

// ---- the reader goroutine ----

// serve runs on the goroutine that made the handshake: it reads messages
// until the WebSocket ends, then finishes the stream.
func (p *wsProto) serve(ws *websocket.Conn, dialErr error) {
	c := p.c
	defer func() {
		c.mu.Lock()
		p.done = true
		if p.ws == nil {
			close(p.ready)
		}
		c.rcond.Signal() // eof may wait for this
		c.mu.Unlock()
	}()
	if dialErr != nil {
		// Our check of the 101 passed but coder/websocket's did not: a bug
		// of ours, reported rather than hidden.
		c.mu.Lock()
		p.emit(&Event{Kind: EvError, Reason: "ws_handshake_failed: " + dialErr.Error()})
		p.over = true
		p.closeConn(true)
		c.mu.Unlock()
		return
	}
	limit := p.opts.MaxMessageSize
	if limit == 0 {
		limit = -1
	}
	ws.SetReadLimit(limit)
	c.mu.Lock()
	p.ws = ws
	close(p.ready)
	if ka := p.opts.KeepAlive; ka > 0 && !p.detached {
		var t *time.Timer
		t = time.AfterFunc(ka, func() {
			c.mu.Lock()
			stop := p.detached || p.over || p.sentClose || p.closed
			if !stop {
				t.Reset(ka)
			}
			c.mu.Unlock()
			if !stop {
				p.sendPing(ws, ka)
			}
		})
		p.timers = append(p.timers, t)
	}
	c.mu.Unlock()

	for {
		c.mu.Lock()
		for p.flow == 0 && !p.detached && !p.closed {
			p.parked = true
			c.rcond.Signal()
			p.cond.Wait()
		}
		p.parked = false
		c.mu.Unlock()
		typ, data, err := ws.Read(context.Background())
		if err != nil {
			p.readFailed(ws, err)
			return
		}
		op := WSText
		if typ == websocket.MessageBinary {
			op = WSBinary
		}
		if data == nil {
			data = []byte{}
		}
		if op == WSText && !utf8.Valid(data) {
			// Gun's {error, badencoding}: close 1007 (coder/websocket does
			// not check text).
			p.failClose(ws, websocket.StatusInvalidFramePayloadData,
				"badencoding: a text message is not valid UTF-8; closed with 1007")
			return
		}
		c.mu.Lock()
		p.emit(&Event{Kind: EvWS, WSOp: op, Data: data})
		c.mu.Unlock()
	}
}

// failClose ends the stream with an ERROR and the WebSocket with a close
// frame of code (the handshake runs here, on the reader goroutine).
func (p *wsProto) failClose(ws *websocket.Conn, code websocket.StatusCode, reason string) {
	c := p.c
	c.mu.Lock()
	if p.detached || p.over {
		c.mu.Unlock()
		ws.CloseNow()
		return
	}
	p.sentClose = true
	p.emit(&Event{Kind: EvError, Reason: reason})
	p.over = true
	p.armCloseTimer()
	c.mu.Unlock()
	ws.Close(code, "")
}

// readFailed ends the stream after coder/websocket's reader failed.
func (p *wsProto) readFailed(ws *websocket.Conn, err error) {
	c := p.c
	var ce websocket.CloseError
	c.mu.Lock()
	switch {
	case p.detached || p.over:
	case errors.As(err, &ce):
		// The peer's close frame: coder/websocket answered it (unless we had
		// sent ours) and closes, which closes the connection.
		p.gotClose = true
		code := int(ce.Code)
		if ce.Code == websocket.StatusNoStatusRcvd {
			code = 0
		}
		p.emit(&Event{Kind: EvWS, WSOp: WSClose, CloseCode: code, Data: []byte(ce.Reason)})
		p.over = true
	case errors.Is(err, websocket.ErrMessageTooBig):
		// coder/websocket has sent close 1009; finish the handshake.
		c.mu.Unlock()
		p.failClose(ws, websocket.StatusMessageTooBig, fmt.Sprintf(
			"max_message_size: a message exceeded %d bytes (ws_opts max_message_size); closed with 1009", p.opts.MaxMessageSize))
		return
	case p.sentClose && p.sniff.seen:
		// Our close frame is out and coder/websocket's Close read the
		// peer's (our reader was between two messages): it still is the
		// stream's close event.
		p.gotClose = true
		p.emit(&Event{Kind: EvWS, WSOp: WSClose, CloseCode: p.sniff.code, Data: []byte(p.sniff.reason)})
		p.over = true
	case p.h2 != nil && p.eofSeen && !p.sentClose && !p.closed:
		// RFC 8441: the server ended the stream without a close frame; no
		// DOWN will say so.
		p.emit(&Event{Kind: EvError, Reason: "closed: the server ended the WebSocket stream without a close frame"})
		p.over = true
	case p.eofSeen || p.closed || p.sentClose:
		// The connection ended under the WebSocket (DOWN says how), or our
		// close finished without the peer's close frame.
	default:
		// A protocol error: coder/websocket has sent its close frame.
		p.sentClose = true
		p.emit(&Event{Kind: EvError, Reason: "ws_error: " + err.Error()})
		p.over = true
	}
	c.mu.Unlock()
	ws.CloseNow()
}

// conn waits for coder/websocket's Conn (between the UPGRADE event and the
// end of Dial); nil if the stream is gone.
func (p *wsProto) conn() *websocket.Conn {
	select {
	case <-p.ready:
	case <-p.c.done:
		return nil
	}
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	if p.detached {
		return nil
	}
	return p.ws
}

// sendPing sends a ping and waits for its pong on its own goroutine (bounded
// by d, or wsPingTimeout).
func (p *wsProto) sendPing(ws *websocket.Conn, d time.Duration) {
	if d <= 0 {
		d = wsPingTimeout
	}
	go func() {
		ctx, cancel := context.WithTimeout(p.ctx, d)
		defer cancel()
		ws.Ping(ctx)
	}()
}

// startClose sends a close frame and runs the handshake on its own
// goroutine; closing_timeout bounds the wait for the peer's.
func (p *wsProto) startClose(code int, reason string) {
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	p.startCloseLocked(code, reason)
}

// startCloseLocked: c.mu held. coder/websocket's Close reads until the
// peer's close frame and drops the data messages it meets on the way
// (whenever it gets its read lock between two reads of ours).
func (p *wsProto) startCloseLocked(code int, reason string) {
	if p.sentClose || p.over || p.detached || p.closed {
		return
	}
	p.sentClose = true
	p.armCloseTimer()
	sc := websocket.StatusCode(code)
	if code == 0 {
		sc = websocket.StatusNoStatusRcvd // coder/websocket: a close frame without payload
	}
	go func() {
		ws := p.conn()
		if ws == nil {
			return
		}
		ws.Close(sc, reason)
	}()
}

// armCloseTimer closes the connection if the close handshake has not
// finished within closing_timeout. c.mu held.
func (p *wsProto) armCloseTimer() {
	if ct := p.opts.ClosingTimeout; ct > 0 {
		p.timers = append(p.timers, time.AfterFunc(ct, func() {
			p.c.mu.Lock()
			defer p.c.mu.Unlock()
			if !p.detached && !p.closed {
				p.closed = true
				p.cond.Broadcast()
				p.closeConn(true)
			}
		}))
	}
}

// closeConn ends what carries the WebSocket. Over HTTP/1.1 the connection:
// what was written (the last close frame) is flushed first, by Conn.serve;
// the read loop stops at its next read (an expired read deadline) and eof
// says "normal". Over HTTP/2 the stream: END_STREAM, or RST_STREAM when
// abort (the close handshake did not finish). c.mu held.
func (p *wsProto) closeConn(abort bool) {
	c := p.c
	if p.detached || !p.live() {
		return
	}
	if p.h2 != nil {
		p.h2.finish(abort)
		return
	}
	if c.nc == nil {
		return
	}
	c.nc.SetReadDeadline(time.Now())
	c.rcond.Signal()
}

// sendError maps a failed write of WSSend.
func (p *wsProto) sendError(err error) error {
	return fmt.Errorf("%w: WebSocket stream %d: %v", ErrClosed, p.ref, err)
}

// ---- coder/websocket's connection ----

// wsBody is the io.ReadWriteCloser coder/websocket frames over: the
// response body of its handshake.
type wsBody struct{ p *wsProto }

func (b *wsBody) Read(buf []byte) (int, error) {
	p := b.p
	c := p.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for p.off == len(p.in) && !p.eofSeen && !p.detached && !p.closed {
		p.cond.Wait()
	}
	if p.detached || p.closed {
		return 0, net.ErrClosed
	}
	if p.off == len(p.in) {
		return 0, io.EOF
	}
	wasFull := p.paused()
	n := copy(buf, p.in[p.off:])
	p.off += n
	if p.off == len(p.in) {
		p.in, p.off = p.in[:0], 0
	}
	if p.h2 != nil {
		p.h2.read(n) // the stream's window grows as the pipe drains
	} else if wasFull {
		c.rcond.Signal() // the read loop waits for room
	}
	return n, nil
}

func (b *wsBody) Write(buf []byte) (int, error) {
	p := b.p
	c := p.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if p.detached || p.closed || !p.live() {
		return 0, net.ErrClosed
	}
	if p.h2 != nil {
		if err := p.h2.write(buf); err != nil {
			return 0, err
		}
		return len(buf), nil
	}
	c.write(buf)
	if !c.waitDrained() {
		return 0, net.ErrClosed
	}
	return len(buf), nil
}

// Close: coder/websocket is done with the connection: it ends once what
// was written (the last close frame) is on the wire.
func (b *wsBody) Close() error {
	p := b.p
	c := p.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	p.cond.Broadcast()
	p.closeConn(false)
	return nil
}

// wsSniff follows the peer's frame headers through the pipe to keep its
// close frame's code and reason. It frames nothing: coder/websocket does.
// It exists because coder/websocket's Close reads the peer's close frame
// itself when our reader is not inside Read at that moment, and then keeps
// its payload to itself.
type wsSniff struct {
	hdr  [14]byte
	hn   int   // header bytes seen
	left int64 // payload bytes left in the current frame
	body bool  // in a payload
	cl   bool  // the current frame is a close frame
	pay  []byte

	seen   bool // a whole, valid close frame went by
	code   int  // its code, 0 for none
	reason string
}

func (w *wsSniff) feed(b []byte) {
	for len(b) > 0 && !w.seen {
		if !w.body {
			w.hdr[w.hn] = b[0]
			w.hn++
			b = b[1:]
			if w.hn < 2 {
				continue
			}
			need := 2
			switch w.hdr[1] & 0x7f {
			case 126:
				need += 2
			case 127:
				need += 8
			}
			if w.hdr[1]&0x80 != 0 {
				need += 4
			}
			if w.hn < need {
				continue
			}
			var n int64
			switch l := w.hdr[1] & 0x7f; l {
			case 126:
				n = int64(binary.BigEndian.Uint16(w.hdr[2:4]))
			case 127:
				n = int64(binary.BigEndian.Uint64(w.hdr[2:10]) & (1<<63 - 1))
			default:
				n = int64(l)
			}
			w.cl = w.hdr[0]&0x0f == 0x8
			w.body, w.left, w.pay = true, n, w.pay[:0]
			if w.left == 0 {
				w.endFrame()
			}
			continue
		}
		k := int(min(int64(len(b)), w.left))
		if w.cl && len(w.pay)+k <= 125 {
			w.pay = append(w.pay, b[:k]...)
		}
		b = b[k:]
		w.left -= int64(k)
		if w.left == 0 {
			w.endFrame()
		}
	}
}

func (w *wsSniff) endFrame() {
	w.body = false
	hn := w.hn
	w.hn = 0
	if !w.cl {
		return
	}
	if w.hdr[1]&0x80 != 0 { // servers don't mask; be exact anyway
		mk := w.hdr[hn-4 : hn]
		for i := range w.pay {
			w.pay[i] ^= mk[i%4]
		}
	}
	switch {
	case len(w.pay) == 0:
		w.seen, w.code = true, 0
	case len(w.pay) >= 2 && utf8.Valid(w.pay[2:]):
		code := int(binary.BigEndian.Uint16(w.pay))
		if wsSendableCode(code) {
			w.seen, w.code, w.reason = true, code, string(w.pay[2:])
		}
	}
}
