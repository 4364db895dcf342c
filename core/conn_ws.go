package core

// The WebSocket API of Conn (Gun's gun:ws_upgrade and gun:ws_send) and the
// upgrade request's way through the engines. The WebSocket protocol itself
// (frames, the connection after the 101) is in ws.go; RFC 8441 in ws_h2.go.
//
// An upgrade is an ordinary Request of the connection that carries a wsUp:
// HTTP/1.1 writes it on the same socket in pipeline order; a 101 is checked
// as Gun's ws_handshake does (Sec-WebSocket-Accept, the extensions and
// subprotocol we offered) and replaces the connection's protocol with a ws
// one; any other status is an ordinary RESPONSE (+ DATA) of the stream, as
// in Gun. HTTP/2 opens an extended CONNECT stream instead.

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
)

// WSFrame is one frame for WSSend (Gun's ws_frame()).
type WSFrame struct {
	Op   uint8  // WSText, WSBinary, WSPing, WSPong or WSClose
	Data []byte // the payload; for WSClose the reason
	Code int    // WSClose: the close code, 0 for a close frame without one
}

// wsUpgrader is what a protocol that can carry a WebSocket upgrade
// implements. Called with c.mu held. An error is the stream's ERROR reason.
//
// HTTP/1.1 (http1.go) and HTTP/2 (RFC 8441, ws_h2.go) implement it; a
// protocol that does not (raw, socks) makes WSUpgrade fail with
// ErrUnsupported, or an upgrade queued while connecting get ERROR
// "unsupported: ...".
type wsUpgrader interface {
	wsUpgrade(r *Request) error
}

// errWSDone: the upgrade stream already got its last event (ERROR).
var errWSDone = errors.New("websocket upgrade did not happen")

// wsUp is one upgrade request: made by WSUpgrade, carried by Request.ws,
// answered by the 101 (accept) or anything else (fail).
type wsUp struct {
	c       *Conn
	ref     uint64
	path    string
	headers []Header // the caller's, in order
	opts    *WSOpts

	key      string   // Sec-WebSocket-Key
	offered  []string // subprotocols offered
	compress bool     // permessage-deflate offered
	answered bool     // under c.mu: the 101 came, or the upgrade will not happen
	proto    *wsProto // the protocol the 101 made, under c.mu
}

// wsNegotiated is what the 101 (or RFC 8441's 2xx) agreed to.
type wsNegotiated struct {
	deflate bool
	params  wsflate.Parameters
}

// fail: the upgrade will not happen (the stream got or gets an ERROR or a
// response, or the connection went down with it). c.mu held.
func (up *wsUp) fail() { up.answered = true }

// WSUpgrade upgrades the connection to WebSocket (Gun's gun:ws_upgrade):
// it returns the stream reference at once; the outcome is an UPGRADE event
// (then WS events) or, when the server says no, an ordinary RESPONSE (and
// DATA) of that stream. opts nil means the connection's ws_opts; given
// options replace them (as in Gun). opts.ReplyTo (Gun's ws_opts reply_to)
// sends the stream's events to another queue. Over HTTP/1.0 the stream gets
// ERROR "badstate"; on a connection already upgraded the connection gets
// an ERROR without stream (Ref 0). Over HTTP/2 it is RFC 8441's extended
// CONNECT (ws_h2.go).
func (c *Conn) WSUpgrade(path string, headers []Header, opts *WSOpts) (uint64, error) {
	if err := validateRequest(&Request{Method: "GET", Path: path, Headers: headers}); err != nil {
		return 0, err
	}
	if opts != nil && opts.Tunnel != 0 {
		t, err := c.tunnel(opts.Tunnel)
		if err != nil {
			return 0, err
		}
		o := *opts
		o.Tunnel = 0
		return t.WSUpgrade(path, headers, &o)
	}
	c.mu.Lock()
	if c.state == stateDone || c.closeReq != "" {
		c.mu.Unlock()
		return 0, ErrClosed
	}
	if opts == nil {
		o := c.opts.WS
		opts = &o
	} else {
		o := *opts
		opts = &o
	}
	c.mu.Unlock()
	if opts.KeepAlive < 0 || opts.ClosingTimeout < 0 || opts.Flow < 0 || opts.MaxMessageSize < 0 {
		return 0, fmt.Errorf("%w: negative ws_opts value", ErrBadArg)
	}
	var kb [16]byte
	rand.Read(kb[:])
	up := &wsUp{
		c:       c,
		ref:     newRef(),
		path:    path,
		headers: append([]Header(nil), headers...),
		opts:    opts,
		key:     base64.StdEncoding.EncodeToString(kb[:]),
	}
	r := &Request{Method: "GET", Path: path, Headers: up.requestHeaders(), ws: up, ref: up.ref, ReplyTo: opts.ReplyTo}
	if err := c.submitWS(r); err != nil && !errors.Is(err, errWSDone) {
		return 0, err
	}
	return up.ref, nil
}

// requestHeaders are the upgrade request's: ours (Gun's order), then the
// caller's, minus those ours replace.
func (up *wsUp) requestHeaders() []Header {
	hs := []Header{
		{"connection", "upgrade"},
		{"upgrade", "websocket"},
		{"sec-websocket-version", "13"},
		{"sec-websocket-key", up.key},
	}
	if len(up.opts.Protocols) > 0 {
		hs = append(hs, Header{"sec-websocket-protocol", strings.Join(up.opts.Protocols, ", ")})
		up.offered = up.opts.Protocols
	}
	if up.opts.Compress {
		// Gun's offer; "compat" offers the extension without parameters.
		v := "permessage-deflate; client_max_window_bits; server_max_window_bits=15"
		if up.opts.CompressCompat {
			v = "permessage-deflate"
		}
		hs = append(hs, Header{"sec-websocket-extensions", v})
		up.compress = true
	}
	for _, h := range up.headers {
		switch strings.ToLower(h.Name) {
		case "connection", "upgrade", "sec-websocket-version", "sec-websocket-key":
			continue // ours
		case "sec-websocket-protocol":
			if len(up.offered) > 0 {
				continue
			}
		case "sec-websocket-extensions":
			if up.compress {
				continue
			}
		}
		hs = append(hs, h)
	}
	return hs
}

// submitWS is Request for an upgrade whose ref is already made: it goes to
// the protocol now, or waits for UP. errWSDone: the stream got its ERROR.
func (c *Conn) submitWS(r *Request) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.state == stateDone || c.closeReq != "":
		return ErrClosed
	}
	if r.ReplyTo != nil && r.ReplyTo != c.owner {
		if c.replyTo == nil {
			c.replyTo = map[uint64]*Queue{}
		}
		c.replyTo[r.ref] = r.ReplyTo
	}
	if c.shutReq || c.state == stateClosing {
		c.emit(&Event{Kind: EvError, Ref: r.ref, Reason: "closing"})
		return errWSDone
	}
	if c.state != stateUp {
		if len(c.pending) >= c.opts.MaxPendingRequests {
			c.emit(&Event{Kind: EvError, Ref: r.ref, Reason: fmt.Sprintf(
				"too_many_pending: %d requests already wait for the connection (max_pending_requests)", len(c.pending))})
			return errWSDone
		}
		c.pending = append(c.pending, r)
		return nil
	}
	if _, ok := c.proto.(wsUpgrader); !ok {
		delete(c.replyTo, r.ref)
		return fmt.Errorf("%w: the %s protocol cannot carry a WebSocket",
			ErrUnsupported, c.proto.name())
	}
	c.sendWSLocked(r)
	return nil
}

// sendWSLocked hands an upgrade request to the protocol; Conn.sendLocked
// calls it for requests that carry one (also those queued while down).
func (c *Conn) sendWSLocked(r *Request) {
	if c.trace&trmRequest != 0 {
		c.traceRequest(r)
	}
	wu, ok := c.proto.(wsUpgrader)
	var err error
	if !ok {
		err = fmt.Errorf("unsupported: the %s protocol cannot carry a WebSocket", c.proto.name())
	} else {
		err = wu.wsUpgrade(r)
	}
	if err != nil {
		c.emit(&Event{Kind: EvError, Ref: r.ref, Reason: reasonOf(err)})
		r.ws.fail()
	}
}

// wsAcceptKey is Sec-WebSocket-Accept for key (RFC 6455 4.2.2).
func wsAcceptKey(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

func headerValues(hs []Header, name string) []string {
	var vs []string
	for _, h := range hs {
		if strings.EqualFold(h.Name, name) {
			vs = append(vs, h.Value)
		}
	}
	return vs
}

// check validates a 101 the way Gun's ws_handshake does (accept key,
// extensions we offered, a subprotocol we offered or none).
func (up *wsUp) check(hs []Header) (wsNegotiated, error) {
	if !headerHasToken(hs, "connection", "upgrade") {
		return wsNegotiated{}, errors.New("the 101 has no connection: upgrade")
	}
	if !headerHasToken(hs, "upgrade", "websocket") {
		return wsNegotiated{}, errors.New("the 101 has no upgrade: websocket")
	}
	acc := headerValues(hs, "sec-websocket-accept")
	if len(acc) != 1 || acc[0] != wsAcceptKey(up.key) {
		return wsNegotiated{}, fmt.Errorf("invalid sec-websocket-accept %q", strings.Join(acc, ", "))
	}
	return up.checkNegotiated(hs)
}

// checkNegotiated: the extensions and the subprotocol of the answer (a
// 101, or RFC 8441's 2xx) are ones we offered (Gun's validate_extensions
// and select_protocol), and what permessage-deflate agreed to.
func (up *wsUp) checkNegotiated(hs []Header) (wsNegotiated, error) {
	var neg wsNegotiated
	for _, v := range headerValues(hs, "sec-websocket-extensions") {
		opts, ok := httphead.ParseOptions([]byte(v), nil)
		if !ok {
			return neg, fmt.Errorf("sec-websocket-extensions %q does not parse", v)
		}
		for _, o := range opts {
			if string(o.Name) != wsflate.ExtensionName || !up.compress {
				return neg, fmt.Errorf("extension %q was not offered", o.Name)
			}
			if neg.deflate {
				return neg, fmt.Errorf("permessage-deflate answered twice")
			}
			if err := neg.params.Parse(o); err != nil {
				return neg, fmt.Errorf("permessage-deflate: %v", err)
			}
			// RFC 7692 7.1.2.2: client_max_window_bits only if offered, and
			// then with a value.
			if cb := neg.params.ClientMaxWindowBits; cb.Defined() && (cb == 1 || up.opts.CompressCompat) {
				return neg, fmt.Errorf("permessage-deflate answer %q: client_max_window_bits was not offered with a value to choose", v)
			}
			neg.deflate = true
		}
	}
	if ps := headerValues(hs, "sec-websocket-protocol"); len(ps) > 0 {
		if len(ps) > 1 {
			return neg, fmt.Errorf("several sec-websocket-protocol headers %q", ps)
		}
		found := false
		for _, o := range up.offered {
			if o == ps[0] {
				found = true
			}
		}
		if !found {
			return neg, fmt.Errorf("subprotocol %q was not offered", ps[0])
		}
	}
	return neg, nil
}

// accept is the 101 for this upgrade: check it, then make the connection's
// new protocol. Called by the HTTP engine with c.mu held; on error the
// engine closes the connection (Gun closes it too).
func (up *wsUp) accept(hs []Header) (*wsProto, error) {
	neg, err := up.check(hs)
	if err != nil {
		up.fail()
		return nil, fmt.Errorf("ws_handshake_failed: %v", err)
	}
	p := newWSProto(up.c, up, hs, neg)
	up.proto = p
	up.answered = true
	return p, nil
}

// WSSend sends frames on WebSocket stream ref (Gun's gun:ws_send): every
// frame is checked first (a bad one fails the call and nothing is sent),
// then all are written, whole and in order, in one go. Text and binary
// messages are compressed when permessage-deflate was negotiated. A ping or
// pong carries the caller's payload (at most 125 bytes). A close frame
// (code 0: none) must come last: it starts the close handshake
// (closing_timeout). The call blocks while much output is pending, as Data
// does.
func (c *Conn) WSSend(ref uint64, frames []WSFrame) error { return c.wsSend(ref, frames, true) }

// WSSendNoWait is WSSend for a caller that must not block (an Erlang NIF on
// a normal scheduler): when the output is already past its bound (the
// socket's, or an HTTP/2 stream's windows) it sends nothing and returns
// ErrWouldBlock, and otherwise it queues the frames and returns without
// waiting for them to go out. Memory stays bounded as with WSSend: each call
// adds at most its own frames past the bound, and only when it was below.
func (c *Conn) WSSendNoWait(ref uint64, frames []WSFrame) error { return c.wsSend(ref, frames, false) }

func (c *Conn) wsSend(ref uint64, frames []WSFrame, wait bool) error {
	if t := c.forRef(ref); t != c {
		return t.wsSend(ref, frames, wait)
	}
	for i, f := range frames {
		switch f.Op {
		case WSText:
			if !utf8.Valid(f.Data) {
				return fmt.Errorf("%w: frame %d: text is not valid UTF-8", ErrBadArg, i)
			}
		case WSBinary:
		case WSPing, WSPong:
			if len(f.Data) > ws.MaxControlFramePayloadSize {
				return fmt.Errorf("%w: frame %d: a ping or pong carries at most 125 bytes (RFC 6455 5.5), not %d", ErrBadArg, i, len(f.Data))
			}
		case WSClose:
			if i != len(frames)-1 {
				return fmt.Errorf("%w: frame %d: a close frame must be the last", ErrBadArg, i)
			}
			if f.Code == 0 && len(f.Data) > 0 {
				return fmt.Errorf("%w: frame %d: a close frame without code cannot carry a reason", ErrBadArg, i)
			}
			if f.Code != 0 && !wsSendableCode(f.Code) {
				return fmt.Errorf("%w: frame %d: close code %d cannot be sent (1000-1003, 1007-1014 or 3000-4999)", ErrBadArg, i, f.Code)
			}
			if len(f.Data) > 123 || !utf8.Valid(f.Data) {
				return fmt.Errorf("%w: frame %d: a close reason must be valid UTF-8 of at most 123 bytes", ErrBadArg, i)
			}
		default:
			return fmt.Errorf("%w: frame %d: unknown opcode %d", ErrBadArg, i, f.Op)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stateDone || c.closeReq != "" {
		return ErrClosed
	}
	p := c.wsStreamOf(ref)
	if p == nil {
		return c.wsNotUpgraded(ref)
	}
	if p.sentClose || p.over || p.detached || !p.live() {
		return fmt.Errorf("%w: WebSocket stream %d is closing", ErrBadState, ref)
	}
	if !wait && p.t.full() {
		return fmt.Errorf("%w: WebSocket stream %d: its output is past its bound; nothing was sent", ErrWouldBlock, ref)
	}
	for _, f := range frames {
		switch f.Op {
		case WSText:
			p.writeFrame(ws.OpText, f.Data, true)
		case WSBinary:
			p.writeFrame(ws.OpBinary, f.Data, true)
		case WSPing:
			p.writeFrame(ws.OpPing, f.Data, false)
		case WSPong:
			p.writeFrame(ws.OpPong, f.Data, false)
		case WSClose:
			p.sendClose(f.Code, string(f.Data))
		}
	}
	if wait && !p.t.waitSent() {
		if _, ok := p.t.(*h2Pipe); ok {
			return fmt.Errorf("%w: WebSocket stream %d ended while its frames waited for the server's window", ErrClosed, ref)
		}
		return fmt.Errorf("%w: the connection went down while sending", ErrClosed)
	}
	return nil
}

// wsStreamOf is WebSocket stream ref of this connection, nil if there is
// none: the connection's protocol (HTTP/1.1 upgraded), or one of its
// HTTP/2 streams (RFC 8441). c.mu held.
func (c *Conn) wsStreamOf(ref uint64) *wsProto {
	switch pr := c.proto.(type) {
	case *wsProto:
		if pr.ref == ref {
			return pr
		}
	case interface{ wsStream(uint64) *wsProto }:
		return pr.wsStream(ref)
	}
	return nil
}

// wsNotUpgraded says why ref is not a WebSocket stream of this connection.
func (c *Conn) wsNotUpgraded(ref uint64) error {
	for _, r := range c.pending {
		if r.ref == ref && r.ws != nil {
			return fmt.Errorf("%w: stream %d waits for the connection; send frames after its UPGRADE", ErrNotUp, ref)
		}
	}
	if h, ok := c.proto.(interface{ wsPending(uint64) bool }); ok && h.wsPending(ref) {
		return fmt.Errorf("%w: the upgrade of stream %d has not completed; send frames after its UPGRADE", ErrBadState, ref)
	}
	if c.proto == nil {
		return ErrNotUp
	}
	return fmt.Errorf("%w: %d is not a WebSocket stream of this connection", ErrNoStream, ref)
}

func wsSendableCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014, code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// WSOpts is a copy of the connection's ws_opts: what WSUpgrade uses when
// given nil.
func (c *Conn) WSOpts() WSOpts {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.opts.WS
}
