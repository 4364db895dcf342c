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
// extensions and subprotocol are checked as over HTTP/1.1. After the 2xx
// the stream is an h2Pipe (pipe_h2.go), the same stream transport a
// CONNECT tunnel's child connection runs on, and the same state machine
// (ws.go) runs on it as on a socket: the pipe hands it the stream's DATA
// (handle), its frames become the stream's body, sent as the server's
// windows allow without blocking the reader (WSSend waits while much is
// pending), and its end is the pipe's: END_STREAM after the close
// handshake (or a failure's close frame), the server's END_STREAM then
// awaited at most closing_timeout, else RST_STREAM CANCEL; RST_STREAM at
// once when closing_timeout passes without the server's close frame.
//
// Flow control follows the host here too: DATA bytes are given back to the
// windows as the WebSocket parses them; what Gun's flow holds back stays
// in the pipe, unparsed (and the window shut), until gm_update_flow.

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/net/http2"
)

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
	h.blockStart()
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
	u := &wsOnStream{p: p}
	u.w = h.pipe(s, u, false, up.opts.ClosingTimeout)
	p.t = u.w
	up.proto = p
	up.answered = true
	h.c.emit(&Event{Kind: EvUpgrade, Ref: s.ref, Protocol: "websocket", Headers: hs})
	p.start()
	return true, nil
}

// wsOnStream is an RFC 8441 WebSocket as the user of its stream's pipe.
type wsOnStream struct {
	p *wsProto
	w *h2Pipe
}

// handle parses the stream's bytes. Once the WebSocket is over, what still
// comes is dropped (its window given back). An error (the close handshake
// done, or a failure's close frame written) ends our side of the stream.
func (u *wsOnStream) handle(b []byte) (int, error) {
	if p := u.p; p.over || p.detached {
		return len(b), nil
	}
	return u.p.parse(b)
}

// peerFin: the server ended the stream; without a close frame that is an
// ERROR. Our side ends too.
func (u *wsOnStream) peerFin() {
	p, s := u.p, u.w.s
	if !p.over && !p.detached {
		p.emit(&Event{Kind: EvError, Reason: "closed: the server ended the WebSocket stream without a close frame"})
		p.over = true
	}
	if !s.localFin {
		u.w.closeWrite(u.w.linger)
	}
}

// gone: the stream is forgotten (h2conn.remove). After END_STREAM both
// ways it is over; a reset stream (RST_STREAM either way, a cancel) takes
// the WebSocket with it.
func (u *wsOnStream) gone(string) {
	u.p.over = true // its last event was emitted, or the engine emitted an ERROR
	u.p.detach()
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
