package core

// WebSocket over HTTP/2 (RFC 8441 extended CONNECT): the HTTP/2 engine's
// side of ws.go. An upgrade is a stream opened with :method CONNECT and
// :protocol websocket, once the server's SETTINGS said
// SETTINGS_ENABLE_CONNECT_PROTOCOL = 1; a 2xx makes it a WebSocket whose
// frames travel in the stream's DATA frames. Other streams go on beside it,
// and the WebSocket's end (the close handshake, then END_STREAM both ways)
// ends the stream, not the connection. Any other status is an ordinary
// RESPONSE (+ DATA), as over HTTP/1.1.
//
// RFC 8441 has no Sec-WebSocket-Key/Accept (the stream is the proof); the
// extensions and subprotocol are checked as over HTTP/1.1. The same state
// machine (ws.go) parses the stream's DATA and writes its frames into the
// stream's body, which goes out as the server's windows allow (sendBody),
// without blocking the reader; WSSend waits while much is pending.
//
// Flow control follows the host here too: DATA bytes are given back to the
// windows as the WebSocket parses them; what Gun's flow holds back stays
// unparsed (and the window shut) until gm_update_flow.

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/net/http2"
)

// wsH2 is the HTTP/2 stream that carries a WebSocket.
type wsH2 struct {
	h     *h2conn
	s     *h2Stream
	spare []byte // the body's buffer, reused once it drained
}

// wsUpgrade (wsUpgrader): the stream waits for the server's first SETTINGS
// (extended CONNECT may only be used once it allowed it), then opens.
func (h *h2conn) wsUpgrade(r *Request) error {
	if h.goawayRecv || h.goawaySent || h.fatal != nil {
		return errH2Closing
	}
	if !h.gotPreface {
		h.wsWait = append(h.wsWait, r)
		return nil
	}
	if !h.peerConnect {
		return errors.New("badstate: the server does not allow Websocket over HTTP/2 (no SETTINGS_ENABLE_CONNECT_PROTOCOL, RFC 8441)")
	}
	return h.wsOpen(r)
}

// wsFlush opens the upgrades that waited for the server's SETTINGS.
func (h *h2conn) wsFlush() {
	if !h.gotPreface || len(h.wsWait) == 0 {
		return
	}
	q := h.wsWait
	h.wsWait = nil
	for _, r := range q {
		if err := h.wsUpgrade(r); err != nil {
			h.c.emit(&Event{Kind: EvError, Ref: r.ref, Reason: reasonOf(err)})
			r.ws.fail()
		}
	}
}

// wsOpen sends the extended CONNECT.
func (h *h2conn) wsOpen(r *Request) error {
	if h.nextID > h2MaxStreamID {
		return errors.New("closed: the connection has used all its stream identifiers")
	}
	if !h.slotFree() {
		if !h.o.WaitForStreamSlot {
			return fmt.Errorf("too_many_streams: Maximum concurrency limit has been reached. (the server's max_concurrent_streams is %d)", h.peerMaxStreams)
		}
		if len(h.waiting) >= h.o.MaxWaitingStreams {
			return fmt.Errorf("too_many_streams: %d requests already wait for a stream slot (http2_opts.max_waiting_streams)", len(h.waiting))
		}
		h.waiting = append(h.waiting, r) // dequeue opens it with wsOpen
		return nil
	}
	authority, ok := hasHeader(r.Headers, "host")
	if !ok {
		authority = h.c.authority()
	}
	// HTTP/1.1's upgrade headers have no place here (RFC 8441 4).
	hs := make([]Header, 0, len(r.Headers))
	for _, x := range r.Headers {
		switch strings.ToLower(x.Name) {
		case "host", "connection", "upgrade", "sec-websocket-key":
			continue
		}
		hs = append(hs, Header{strings.ToLower(x.Name), x.Value})
	}
	if err := h2CheckHeaders(hs); err != nil {
		return err
	}
	id := h.nextID
	h.nextID += 2
	h.hbuf.Reset()
	h.field(":method", "CONNECT")
	h.field(":protocol", "websocket")
	h.field(":scheme", h.scheme)
	h.field(":authority", authority)
	h.field(":path", r.Path)
	for _, x := range hs {
		h.field(x.Name, x.Value)
	}
	h.writeHeaderBlock(id, h.hbuf.Bytes(), false)
	s := &h2Stream{
		id: id, ref: r.ref, method: "CONNECT", path: r.Path, authority: authority,
		flow: -1, initFlow: -1, streaming: true, ws: r.ws,
		sendWin: h.peerInitWin, recvWin: int64(h.o.InitialStreamWindowSize), clen: -1,
	}
	h.track(id, s)
	h.activeLocal++
	return nil
}

// wsResponse: the final response to an extended CONNECT. done: the
// WebSocket took it (or refused it); otherwise it is an ordinary response.
func (h *h2conn) wsResponse(s *h2Stream, status int, endStream bool) (done bool, err error) {
	up := s.ws
	if up.proto != nil {
		return false, nil
	}
	if status < 200 || status > 299 || endStream {
		s.ws = nil // rejected: an ordinary response, as in Gun
		up.fail()
		return false, nil
	}
	hs := h.dFields
	neg, err := up.checkNegotiated(hs)
	if err != nil {
		s.ws = nil
		up.fail()
		h.c.emit(&Event{Kind: EvError, Ref: s.ref, Reason: "ws_handshake_failed: " + err.Error()})
		h.reset(s, http2.ErrCodeCancel)
		return true, nil
	}
	s.gotFinal, s.status = true, status
	p := newWSProto(h.c, up, hs, neg)
	p.h2 = &wsH2{h: h, s: s}
	s.wsOpen = true
	up.proto = p
	up.answered = true
	h.c.emit(&Event{Kind: EvUpgrade, Ref: s.ref, Protocol: "websocket", Headers: hs})
	p.start()
	return true, nil
}

// wsData: DATA of a WebSocket stream is parsed at once (one copy, into the
// event); what Gun's flow holds back waits in p.in. The bytes parsed go back
// to the windows. free: padding, given back now.
func (h *h2conn) wsData(s *h2Stream, data []byte, fin bool, free int64) {
	p := s.ws.proto
	if len(data) > 0 {
		if p.over || p.detached {
			free += int64(len(data)) // nobody reads it any more
		} else {
			s.held += len(data)
			h.connHeld += len(data)
			if len(p.in) == 0 {
				n, err := p.parse(data)
				p.in = append(p.in, data[n:]...)
				h.wsParsed(p, n, err)
			} else {
				p.in = append(p.in, data...)
				p.h2.resume(p)
			}
		}
	}
	if fin {
		s.remoteFin = true
		if !p.over && !p.detached {
			// The server ended the stream without a close frame.
			p.emit(&Event{Kind: EvError, Reason: "closed: the server ended the WebSocket stream without a close frame"})
			p.over = true
		}
		if h.refs[s.ref] == s && !s.localFin {
			p.h2.finish(false)
		}
		h.maybeClose(s)
	} else if free > 0 {
		h.streamEnsure(s)
	}
	if free > 0 {
		h.connEnsure()
	}
}

// wsParsed: n bytes of the stream were parsed; err ends the WebSocket (its
// close frame is written): the stream ends too.
func (h *h2conn) wsParsed(p *wsProto, n int, err error) {
	if n > 0 {
		h.consumed(p.ref, n)
	}
	if err != nil {
		p.in = nil
		p.h2.finish(false)
	}
}

// resume parses what Gun's flow held back (flow grew, or more came).
func (w *wsH2) resume(p *wsProto) {
	if len(p.in) == 0 || w.h.refs[w.s.ref] != w.s {
		return
	}
	n, err := p.parse(p.in)
	p.in = p.in[:copy(p.in, p.in[n:])]
	w.h.wsParsed(p, n, err)
}

// wsGone: a WebSocket stream is forgotten (h2conn.remove). After END_STREAM
// both ways it is over; a reset stream (RST_STREAM either way, a cancel)
// takes the WebSocket with it.
func (h *h2conn) wsGone(s *h2Stream) {
	p := s.ws.proto
	if p == nil {
		s.ws.fail()
		return
	}
	p.over = true // its last event was emitted, or the engine emitted an ERROR
	p.detach()
}

// detach (Conn.serve's hook, any way the connection ends): every WebSocket
// lets go; upgrades that waited for SETTINGS go back to the connection's
// queue, for the next connection.
func (h *h2conn) detach() {
	for _, s := range h.streams {
		if s.ws == nil {
			continue
		}
		if p := s.ws.proto; p != nil {
			p.detach()
		} else {
			s.ws.fail()
		}
	}
	h.c.pending = append(h.wsWait, h.c.pending...)
	h.wsWait = nil
}

// wsStream is WebSocket stream ref, nil if ref is not one.
func (h *h2conn) wsStream(ref uint64) *wsProto {
	if s := h.refs[ref]; s != nil && s.ws != nil {
		return s.ws.proto
	}
	return nil
}

// wsPending: ref is an upgrade not answered yet.
func (h *h2conn) wsPending(ref uint64) bool {
	if s := h.refs[ref]; s != nil && s.ws != nil && s.ws.proto == nil {
		return true
	}
	for _, r := range h.wsWait {
		if r.ref == ref {
			return true
		}
	}
	return false
}

// buf is where the next frames are appended: the stream's unsent body.
func (w *wsH2) buf() []byte {
	if len(w.s.body) == 0 {
		return w.spare[:0]
	}
	return w.s.body
}

// write makes b (buf with frames appended) the stream's body and sends
// what the windows allow; the rest goes as they open. c.mu held.
func (w *wsH2) write(b []byte) {
	h, s := w.h, w.s
	if h.refs[s.ref] != s || s.localFin || !s.wsOpen {
		return
	}
	if len(w.s.body) == 0 && cap(b) <= writeBound {
		w.spare = b[:0]
	}
	s.body = b
	h.sendBody(s)
}

// waitSent blocks WSSend (the lock released) while much of the stream's
// output waits for the server's windows. False if the stream is gone.
func (w *wsH2) waitSent() bool {
	h, s := w.h, w.s
	for len(s.body) > writeBound && h.refs[s.ref] == s && h.live() {
		h.c.wincond.Wait()
	}
	if h.refs[s.ref] != s && len(s.body) > 0 {
		return false
	}
	if c := h.c; len(c.wbuf) > writeBound && !c.waitDrained() {
		return false
	}
	return true
}

// finish ends the stream: END_STREAM after what is pending (the server's
// END_STREAM is then awaited at most closing_timeout), or RST_STREAM CANCEL
// when abort.
func (w *wsH2) finish(abort bool) {
	h, s := w.h, w.s
	if h.refs[s.ref] != s {
		return
	}
	if abort {
		h.reset(s, http2.ErrCodeCancel)
		return
	}
	if s.wsOpen {
		s.wsOpen = false
		if len(s.body) > 0 {
			h.sendBody(s) // END_STREAM goes with the last piece
		} else if !s.localFin {
			h.writeData(s.id, true, nil)
			s.localFin = true
			h.maybeClose(s)
		}
	}
	if h.refs[s.ref] == s && s.ws.proto != nil {
		if ct := s.ws.proto.opts.ClosingTimeout; ct > 0 {
			time.AfterFunc(ct, func() {
				h.c.mu.Lock()
				defer h.c.mu.Unlock()
				if h.refs[s.ref] == s && h.c.proto == h && !h.dead {
					h.reset(s, http2.ErrCodeCancel)
				}
			})
		}
	}
}
