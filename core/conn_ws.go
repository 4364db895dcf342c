package core

// The WebSocket API of Conn (Gun's gun:ws_upgrade and gun:ws_send) and the
// upgrade request's way through the HTTP/1.1 engine. The WebSocket protocol
// itself (framing, the connection after the 101) is in ws.go.
//
// How coder/websocket is driven over our own connection: WSUpgrade starts
// one goroutine that calls websocket.Dial with an http.Client whose
// Transport is the upgrade itself (wsUp.RoundTrip). coder/websocket builds
// the handshake request (its own Sec-WebSocket-Key, its subprotocol and
// permessage-deflate offer); RoundTrip does not dial anything: it turns that
// request into an ordinary Request of this connection, handed to the
// protocol in use (HTTP/1.1 writes it on the same socket, in pipeline
// order), and WSUpgrade returns once it is in the pipeline. When the 101
// arrives the HTTP/1.1 engine checks it as Gun does (Sec-WebSocket-Accept,
// extensions, subprotocol), replaces the connection's protocol by a "ws"
// protocol and answers RoundTrip with a 101 whose Body is that protocol's
// byte pipe; coder/websocket then checks the same response again and frames
// over the pipe. Any other status is an ordinary RESPONSE (+ DATA) of the
// stream, as in Gun, and Dial just fails quietly.

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
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

// errWSDone: the upgrade stream already got its last event (ERROR); the
// Dial goroutine only has to go away.
var errWSDone = errors.New("websocket upgrade did not happen")

// wsUp is one upgrade request: made by WSUpgrade, carried by Request.ws,
// answered by the 101 (accept) or anything else (fail/reject).
type wsUp struct {
	c       *Conn
	ref     uint64
	path    string
	headers []Header // the caller's, in order
	opts    *WSOpts

	// Set by RoundTrip before the request is handed over; read under c.mu.
	key      string
	offered  []string // subprotocols offered
	compress bool     // permessage-deflate offered

	submitted chan error    // RoundTrip → WSUpgrade: in the pipeline, or refused
	result    chan wsResult // engine → RoundTrip, exactly once (answered)
	answered  bool          // under c.mu
	proto     *wsProto      // the protocol the 101 made, under c.mu
}

type wsResult struct {
	p     *wsProto
	hs    []Header // the response's headers
	coder []Header // what coder/websocket gets instead, when not hs (RFC 8441)
	err   error
}

// answer gives RoundTrip its outcome, once. Called with c.mu held.
func (up *wsUp) answer(r wsResult) {
	if up.answered {
		return
	}
	up.answered = true
	up.result <- r // buffered: never blocks
}

// fail: the upgrade will not happen (the stream got or gets an ERROR, or
// the connection went down with it). Called with c.mu held.
func (up *wsUp) fail(err error) { up.answer(wsResult{err: err}) }

// WSUpgrade upgrades the connection to WebSocket (Gun's gun:ws_upgrade):
// it returns the stream reference at once; the outcome is an UPGRADE event
// (then WS events) or, when the server says no, an ordinary RESPONSE (and
// DATA) of that stream. opts nil means the connection's ws_opts; given
// options replace them (as in Gun). Over HTTP/1.0 the stream gets ERROR
// "badstate"; on a connection already upgraded the connection gets an
// ERROR without stream (Ref 0). Over HTTP/2 it is RFC 8441's extended
// CONNECT (ws_h2.go).
func (c *Conn) WSUpgrade(path string, headers []Header, opts *WSOpts) (uint64, error) {
	if err := validateRequest(&Request{Method: "GET", Path: path, Headers: headers}); err != nil {
		return 0, err
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
	up := &wsUp{
		c:         c,
		ref:       newRef(),
		path:      path,
		headers:   append([]Header(nil), headers...),
		opts:      opts,
		submitted: make(chan error, 1),
		result:    make(chan wsResult, 1),
	}
	go up.run()
	if err := <-up.submitted; err != nil {
		return 0, err
	}
	return up.ref, nil
}

// run is the stream's goroutine: coder/websocket's handshake through our
// engine (RoundTrip), then, on success, the WebSocket's reader.
func (up *wsUp) run() {
	mode := websocket.CompressionDisabled
	if up.opts.Compress {
		mode = websocket.CompressionContextTakeover
	}
	var p *wsProto
	dopts := &websocket.DialOptions{
		HTTPClient:      &http.Client{Transport: up},
		Subprotocols:    up.opts.Protocols,
		CompressionMode: mode,
		OnPingReceived: func(_ context.Context, b []byte) bool {
			p.control(WSPing, b)
			return true // pings are always answered
		},
		OnPongReceived: func(_ context.Context, b []byte) { p.control(WSPong, b) },
	}
	ws, _, err := websocket.Dial(context.Background(), "http://gunmetal.invalid/", dopts)
	c := up.c
	c.mu.Lock()
	p = up.proto
	c.mu.Unlock()
	if p == nil {
		// Refused, rejected (an ordinary response), or lost: someone else
		// already said so. The submit step may not have reported yet.
		select {
		case up.submitted <- err:
		default:
		}
		return
	}
	p.serve(ws, err)
}

// RoundTrip is coder/websocket's HTTP transport: the handshake request goes
// through this connection instead of a new one.
func (up *wsUp) RoundTrip(req *http.Request) (*http.Response, error) {
	c := up.c
	up.key = req.Header.Get("Sec-WebSocket-Key")
	hs := []Header{
		{"connection", "upgrade"},
		{"upgrade", "websocket"},
		{"sec-websocket-version", "13"},
		{"sec-websocket-key", up.key},
	}
	if v := req.Header.Get("Sec-WebSocket-Protocol"); v != "" {
		hs = append(hs, Header{"sec-websocket-protocol", v})
		up.offered = up.opts.Protocols
	}
	if v := req.Header.Get("Sec-WebSocket-Extensions"); v != "" {
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
	r := &Request{Method: "GET", Path: up.path, Headers: hs, ws: up, ref: up.ref}
	err := c.submitWS(r)
	if errors.Is(err, errWSDone) {
		up.submitted <- nil // the ref is valid: its only event is an ERROR
		return nil, err
	}
	up.submitted <- err
	if err != nil {
		return nil, err
	}
	var res wsResult
	select {
	case res = <-up.result:
	case <-c.done:
		return nil, ErrClosed
	}
	if res.err != nil {
		return nil, res.err
	}
	rhs := res.hs
	if res.coder != nil {
		rhs = res.coder
	}
	h := make(http.Header, len(rhs))
	for _, x := range rhs {
		h.Add(x.Name, x.Value)
	}
	return &http.Response{
		Status: "101 Switching Protocols", StatusCode: http.StatusSwitchingProtocols,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: &wsBody{res.p}, Request: req,
	}, nil
}

// submitWS is Request for an upgrade whose ref is already made: it goes to
// the protocol now, or waits for UP. errWSDone: the stream got its ERROR.
func (c *Conn) submitWS(r *Request) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.state == stateDone || c.closeReq != "":
		return ErrClosed
	case c.shutReq || c.state == stateClosing:
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
		return fmt.Errorf("%w: the %s protocol cannot carry a WebSocket",
			ErrUnsupported, c.proto.name())
	}
	c.sendWSLocked(r)
	if r.ws.answered {
		if r.ws.proto == nil {
			return errWSDone
		}
	}
	return nil
}

// sendWSLocked hands an upgrade request to the protocol; Conn.sendLocked
// calls it for requests that carry one (also those queued while down).
func (c *Conn) sendWSLocked(r *Request) {
	wu, ok := c.proto.(wsUpgrader)
	var err error
	if !ok {
		err = fmt.Errorf("unsupported: the %s protocol cannot carry a WebSocket", c.proto.name())
	} else {
		err = wu.wsUpgrade(r)
	}
	if err != nil {
		c.emit(&Event{Kind: EvError, Ref: r.ref, Reason: reasonOf(err)})
		r.ws.fail(errWSDone)
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
// extensions we offered, a subprotocol we offered or none), and at least
// as strictly as coder/websocket will after us, so that the two agree.
func (up *wsUp) check(hs []Header) error {
	if !headerHasToken(hs, "connection", "upgrade") {
		return errors.New("the 101 has no connection: upgrade")
	}
	if !headerHasToken(hs, "upgrade", "websocket") {
		return errors.New("the 101 has no upgrade: websocket")
	}
	acc := headerValues(hs, "sec-websocket-accept")
	if len(acc) != 1 || acc[0] != wsAcceptKey(up.key) {
		return fmt.Errorf("invalid sec-websocket-accept %q", strings.Join(acc, ", "))
	}
	return up.checkNegotiated(hs)
}

// checkNegotiated: the extensions and the subprotocol of the answer (a
// 101, or RFC 8441's 2xx) are ones we offered.
func (up *wsUp) checkNegotiated(hs []Header) error {
	var exts []string
	for _, v := range headerValues(hs, "sec-websocket-extensions") {
		for _, e := range strings.Split(v, ",") {
			if e = strings.TrimSpace(e); e != "" {
				exts = append(exts, e)
			}
		}
	}
	if len(exts) > 1 {
		return fmt.Errorf("extensions %q: more than the one offered", exts)
	}
	if len(exts) == 1 {
		params := strings.Split(exts[0], ";")
		if strings.TrimSpace(params[0]) != "permessage-deflate" || !up.compress {
			return fmt.Errorf("extension %q was not offered", exts[0])
		}
		for _, p := range params[1:] {
			switch p = strings.TrimSpace(p); {
			case p == "client_no_context_takeover", p == "server_no_context_takeover",
				strings.HasPrefix(p, "server_max_window_bits="):
			default:
				return fmt.Errorf("permessage-deflate parameter %q is not supported", p)
			}
		}
	}
	if ps := headerValues(hs, "sec-websocket-protocol"); len(ps) > 0 {
		if len(ps) > 1 {
			return fmt.Errorf("several sec-websocket-protocol headers %q", ps)
		}
		found := false
		for _, o := range up.offered {
			if o == ps[0] {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("subprotocol %q was not offered", ps[0])
		}
	}
	return nil
}

// accept is the 101 for this upgrade: check it, then make the connection's
// new protocol. Called by the HTTP engine with c.mu held; on error the
// engine closes the connection (Gun closes it too).
func (up *wsUp) accept(hs []Header) (*wsProto, error) {
	if err := up.check(hs); err != nil {
		up.fail(err)
		return nil, fmt.Errorf("ws_handshake_failed: %v", err)
	}
	p := newWSProto(up.c, up, hs)
	up.proto = p
	up.answer(wsResult{p: p, hs: hs})
	return p, nil
}

// WSSend sends frames on WebSocket stream ref (Gun's gun:ws_send), in
// order. Text and binary messages are written before it returns (it blocks
// while much output is pending, as Data does). A close frame (code 0: none)
// must come last: it starts the close handshake, after which the stream
// and, on HTTP/1.1, the connection end. A ping is sent with a payload that
// coder/websocket chooses; a ping with a payload of the caller's and a pong
// are not possible through coder/websocket and fail with ErrUnsupported.
// Frames are checked before any is sent.
func (c *Conn) WSSend(ref uint64, frames []WSFrame) error {
	for i, f := range frames {
		switch f.Op {
		case WSText:
			if !utf8.Valid(f.Data) {
				return fmt.Errorf("%w: frame %d: text is not valid UTF-8", ErrBadArg, i)
			}
		case WSBinary:
		case WSPing:
			if len(f.Data) > 0 {
				return fmt.Errorf("%w: frame %d: coder/websocket cannot send a ping with a payload of the caller's (send it without data: the library picks the payload)", ErrUnsupported, i)
			}
		case WSPong:
			return fmt.Errorf("%w: frame %d: coder/websocket cannot send an unsolicited pong (pings are answered automatically)", ErrUnsupported, i)
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
	if c.state == stateDone || c.closeReq != "" {
		c.mu.Unlock()
		return ErrClosed
	}
	p := c.wsStreamOf(ref)
	if p == nil {
		err := c.wsNotUpgraded(ref)
		c.mu.Unlock()
		return err
	}
	if p.sentClose || p.over || p.detached {
		c.mu.Unlock()
		return fmt.Errorf("%w: WebSocket stream %d is closing", ErrBadState, ref)
	}
	c.mu.Unlock()
	ws := p.conn()
	if ws == nil {
		return fmt.Errorf("%w: WebSocket stream %d is gone", ErrClosed, ref)
	}
	for _, f := range frames {
		var err error
		switch f.Op {
		case WSText:
			err = ws.Write(context.Background(), websocket.MessageText, f.Data)
		case WSBinary:
			err = ws.Write(context.Background(), websocket.MessageBinary, f.Data)
		case WSPing:
			p.sendPing(ws, 0)
		case WSClose:
			p.startClose(f.Code, string(f.Data))
		}
		if err != nil {
			return p.sendError(err)
		}
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

// wsPingTimeout bounds a ping's wait for its pong when no keepalive says.
const wsPingTimeout = 30 * time.Second
