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
// coder/websocket still frames everything; RFC 8441 has no
// Sec-WebSocket-Key/Accept (the stream is the proof), so the response that
// coder/websocket checks is the server's 2xx with the three headers of a
// 101 added (Connection, Upgrade, and the Accept of the key it made up).
// The UPGRADE event carries the server's headers only.
//
// Flow control follows the host here too: the stream's DATA goes into the
// WebSocket's pipe, and the window grows back (WINDOW_UPDATE) as
// coder/websocket reads the pipe, so a host that stops taking events stops
// the server (the stream's window bounds the pipe). Frames we send go out
// as DATA within the server's windows, blocking WSSend while they are shut.

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"golang.org/x/net/http2"
)

// wsH2 is the HTTP/2 stream that carries a WebSocket.
type wsH2 struct {
	h *h2conn
	s *h2Stream
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
			r.ws.fail(errWSDone)
		}
	}
}

// wsOpen sends the extended CONNECT.
func (h *h2conn) wsOpen(r *Request) error {
	if h.nextID > h2MaxStreamID {
		return errors.New("closed: the connection has used all its stream identifiers")
	}
	if !h.slotFree() {
		return fmt.Errorf("too_many_streams: Maximum concurrency limit has been reached. (the server's max_concurrent_streams is %d)", h.peerMaxStreams)
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
	h.streams[id] = s
	h.refs[r.ref] = s
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
		up.fail(errWSDone)
		return false, nil
	}
	hs := h.dFields
	if err := up.checkNegotiated(hs); err != nil {
		s.ws = nil
		up.fail(err)
		h.c.emit(&Event{Kind: EvError, Ref: s.ref, Reason: "ws_handshake_failed: " + err.Error()})
		h.reset(s, http2.ErrCodeCancel)
		return true, nil
	}
	s.gotFinal, s.status = true, status
	p := newWSProto(h.c, up, hs)
	p.h2 = &wsH2{h: h, s: s}
	up.proto = p
	coder := append(hs[:len(hs):len(hs)],
		Header{"connection", "Upgrade"}, Header{"upgrade", "websocket"},
		Header{"sec-websocket-accept", wsAcceptKey(up.key)})
	up.answer(wsResult{p: p, hs: hs, coder: coder})
	h.c.emit(&Event{Kind: EvUpgrade, Ref: s.ref, Protocol: "websocket", Headers: hs})
	return true, nil
}

// wsData: DATA of a WebSocket stream goes to its pipe; the window comes
// back as the pipe drains (wsH2.read). free: padding, given back now.
func (h *h2conn) wsData(s *h2Stream, data []byte, fin bool, free int64) {
	p := s.ws.proto
	if len(data) > 0 {
		if p.closed || p.done || p.detached {
			free += int64(len(data)) // nobody reads it any more
		} else {
			p.feed(data)
			s.held += len(data)
			h.connHeld += len(data)
		}
	}
	if fin {
		s.remoteFin = true
		p.eofSeen = true
		p.cond.Broadcast()
		h.maybeClose(s)
	} else if free > 0 {
		h.streamEnsure(s)
	}
	if free > 0 {
		h.connEnsure()
	}
}

// wsGone: a WebSocket stream is forgotten (h2conn.remove). After END_STREAM
// both ways the reader still has the pipe's end to read; a reset stream
// (RST_STREAM either way, a cancel) takes the WebSocket with it.
func (h *h2conn) wsGone(s *h2Stream) {
	p := s.ws.proto
	if p == nil {
		s.ws.fail(ErrClosed)
		return
	}
	if s.remoteFin && s.localFin {
		return
	}
	p.over = true // an ERROR was emitted by the engine, or it was our cancel
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
			s.ws.fail(ErrClosed)
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

// write sends coder/websocket's bytes as DATA, within the windows (it
// waits, the lock released, while they are shut). c.mu held.
func (w *wsH2) write(b []byte) error {
	h, s := w.h, w.s
	if h.refs[s.ref] != s || s.localFin {
		return net.ErrClosed
	}
	if err := h.data(s.ref, b, false); err != nil {
		return err
	}
	if c := h.c; len(c.wbuf) > writeBound && !c.waitDrained() {
		return net.ErrClosed
	}
	return nil
}

// read: n bytes of the pipe were read: the server may send as many more.
func (w *wsH2) read(n int) { w.h.consumed(w.s.ref, n) }

// finish ends the stream: END_STREAM after the close handshake (the
// server's END_STREAM is then awaited at most closing_timeout), or
// RST_STREAM CANCEL when abort.
func (w *wsH2) finish(abort bool) {
	h, s := w.h, w.s
	if h.refs[s.ref] != s {
		return
	}
	if abort {
		h.reset(s, http2.ErrCodeCancel)
		return
	}
	if !s.localFin {
		h.data(s.ref, nil, true)
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
