package core

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// http1 is Gun's gun_http: requests are written as soon as they are made
// (pipelining) and responses are matched to them in order.
func init() { protocols["http"] = newHTTP1 }

type h1Stream struct {
	ref      uint64
	method   string
	path     string
	flow     int  // Gun's flow: data events left before the socket pauses; -1 off
	silenced bool // cancelled: its response is read and dropped
	gotHead  bool
	ws       *wsUp        // a WebSocket upgrade: a 101 switches the connection to ws
	upgrade  bool         // another request with an upgrade header: a 101 switches the connection to raw (http1_upgrade.go)
	connect  *Destination // a CONNECT: a 2xx makes the connection the tunnel (tunnel.go)
	discardT *time.Timer  // silenced: discard_timeout's timer

	handlers ContentHandlers // the request's content_handlers; unset: http_opts'
	sink     *bodySink       // the handler that took the body; nil: DATA events (sse.go)
}

// h1Out is the request whose body is being streamed.
type h1Out struct {
	ref       uint64
	chunked   bool
	remaining int64 // content-length left; -1 when chunked
}

type http1 struct {
	c          *Conn
	v10        bool
	parser     *h1Parser
	begun      bool        // parser.Begin called for streams[0]
	streams    []*h1Stream // written, awaiting their responses in order
	out        *h1Out      // body being streamed; later requests wait
	waiting    []*Request  // made while a body was being streamed, or an upgrade was in flight
	upgrading  *h1Stream   // a WebSocket upgrade or a CONNECT awaiting its response; later requests wait
	closeAfter bool        // connection: close was sent or received
	scratch    []byte
	keepaliveT *time.Timer // http_opts.keepalive
}

func newHTTP1(c *Conn) protocol {
	o := &c.opts.HTTP
	h := &http1{
		c:   c,
		v10: o.Version == "HTTP/1.0",
		parser: newH1Parser(h1Limits{
			MaxHeaderBlock:   o.MaxHeaderBlockSize,
			MaxTrailerBlock:  o.MaxTrailerBlockSize,
			MaxChunkLine:     4096,
			MaxHeaders:       o.MaxHeaders,
			MaxInformational: o.MaxInformational,
		}),
	}
	if o.KeepAlive > 0 {
		h.armKeepalive()
	}
	return h
}

// armKeepalive is Gun's http_opts keepalive: every KeepAlive an empty line
// goes out, which a server ignores before a request line (RFC 9112 2.2)
// and which keeps middleboxes from dropping an idle connection. Not while
// a request body is being streamed (Gun's out=head: the line would land in
// the body). It stops once this engine is no longer the connection's
// (down, closed, upgraded to WebSocket).
func (h *http1) armKeepalive() {
	h.keepaliveT = time.AfterFunc(h.c.opts.HTTP.KeepAlive, func() {
		c := h.c
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.proto != h || c.wclosed {
			return
		}
		if h.out == nil {
			c.write([]byte("\r\n"))
		}
		h.armKeepalive()
	})
}

func (h *http1) name() string { return "http" }

func hasHeader(hs []Header, name string) (string, bool) {
	for _, x := range hs {
		if strings.EqualFold(x.Name, name) {
			return x.Value, true
		}
	}
	return "", false
}

func headerHasToken(hs []Header, name, token string) bool {
	for _, x := range hs {
		if strings.EqualFold(x.Name, name) {
			for _, t := range strings.Split(x.Value, ",") {
				if strings.EqualFold(strings.TrimSpace(t), token) {
					return true
				}
			}
		}
	}
	return false
}

func (h *http1) request(r *Request) error {
	if h.closeAfter {
		// This connection ends after the responses in flight: the request
		// goes out on the next one.
		h.c.pending = append(h.c.pending, r)
		return nil
	}
	if h.out != nil || h.upgrading != nil {
		h.waiting = append(h.waiting, r)
		return nil
	}
	return h.write(r)
}

// wsUpgrade sends a WebSocket upgrade (Gun's gun_http:ws_upgrade): a GET
// pipelined after the requests in flight, whose responses come first.
// Requests made after it wait for its outcome: Gun writes them at once and
// loses them when the upgrade succeeds (the server would read their bytes
// as WebSocket frames); here they get ERROR badstate on a 101 and are
// written after any other answer.
func (h *http1) wsUpgrade(r *Request) error {
	if h.v10 {
		return fmt.Errorf("badstate: Websocket cannot be used over an HTTP/1.0 connection.")
	}
	return h.request(r)
}

// wsPending: ref is an upgrade not answered yet.
func (h *http1) wsPending(ref uint64) bool {
	if s := h.find(ref); s != nil && s.ws != nil {
		return true
	}
	for _, r := range h.waiting {
		if r.ref == ref && r.ws != nil {
			return true
		}
	}
	return false
}

// flushWaiting writes the requests that waited, until one must wait again.
func (h *http1) flushWaiting() {
	for len(h.waiting) > 0 && h.out == nil && h.upgrading == nil {
		r := h.waiting[0]
		h.waiting = h.waiting[1:]
		if h.closeAfter {
			h.c.pending = append(h.c.pending, r)
			continue
		}
		if err := h.write(r); err != nil {
			h.c.emit(&Event{Kind: EvError, Ref: r.ref, Reason: reasonOf(err)})
			if r.ws != nil {
				r.ws.fail()
			}
		}
	}
}

// switchToWS: the 101 to upgrade s. The connection's protocol becomes ws
// and the bytes after the 101 are its own.
func (h *http1) switchToWS(s *h1Stream, hs []Header, buf []byte, off int) (int, error) {
	p, err := s.ws.accept(hs)
	if err != nil {
		return off, err // Gun closes the connection; DOWN kills the stream
	}
	h.streams[0] = nil
	h.streams = h.streams[1:]
	h.begun, h.upgrading = false, nil
	c := h.c
	c.emit(&Event{Kind: EvUpgrade, Ref: s.ref, Protocol: "websocket", Headers: hs})
	// Nothing was written after the upgrade; what waited for it can't go.
	for _, x := range h.streams {
		c.emit(&Event{Kind: EvError, Ref: x.ref, Reason: "badstate: the connection was upgraded to Websocket."})
	}
	for _, r := range h.waiting {
		c.emit(&Event{Kind: EvError, Ref: r.ref, Reason: "badstate: the connection was upgraded to Websocket."})
		if r.ws != nil {
			r.ws.fail()
		}
	}
	h.streams, h.waiting = nil, nil
	c.proto, c.protoNm = p, p.name()
	p.start()
	n, err := p.handle(buf[off:])
	return off + n, err
}

// switchToTunnel: a 2xx to the CONNECT s. The RESPONSE is reported, the
// requests that waited go to the origin, and the socket, with the bytes
// after the response, becomes the tunnel's (Conn.serve).
func (h *http1) switchToTunnel(s *h1Stream, part h1Part, buf []byte, off int) (int, error) {
	c := h.c
	if s.discardT != nil {
		s.discardT.Stop()
	}
	if s.silenced { // cancelled: Gun would still switch; nobody wants this tunnel
		return off, errCloseNormal
	}
	c.emit(&Event{Kind: EvResponse, Ref: s.ref, Fin: true, Status: part.Status, Headers: part.Headers})
	h.streams, h.begun, h.upgrading = h.streams[1:], false, nil
	for _, r := range h.waiting {
		c.pending = append(c.pending, r)
	}
	h.waiting = nil
	return len(buf), c.connectSwitch(s.ref, s.connect, buf[off:])
}

func (h *http1) write(r *Request) error {
	out := &h1Out{ref: r.ref, remaining: -1}
	if r.Stream {
		if cl, ok := hasHeader(r.Headers, "content-length"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(cl), 10, 64)
			if err != nil || n < 0 {
				return fmt.Errorf("badarg: invalid content-length %q", cl)
			}
			out.remaining = n
		} else if h.v10 {
			return fmt.Errorf("badarg: an HTTP/1.0 request body streamed without content-length cannot be delimited")
		} else {
			out.chunked = true
		}
	}
	b := h.scratch[:0]
	b = append(b, r.Method...)
	b = append(b, ' ')
	b = append(b, r.Path...)
	if h.v10 {
		b = append(b, " HTTP/1.0\r\n"...)
	} else {
		b = append(b, " HTTP/1.1\r\n"...)
	}
	if _, ok := hasHeader(r.Headers, "host"); !ok {
		b = append(b, "host: "...)
		b = append(b, h.c.authority()...)
		b = append(b, "\r\n"...)
	}
	for _, x := range r.Headers {
		b = append(b, x.Name...)
		b = append(b, ": "...)
		b = append(b, x.Value...)
		b = append(b, "\r\n"...)
	}
	if out.chunked {
		if !headerHasToken(r.Headers, "transfer-encoding", "chunked") {
			b = append(b, "transfer-encoding: chunked\r\n"...)
		}
	} else if !r.Stream {
		if _, ok := hasHeader(r.Headers, "content-length"); !ok {
			switch {
			case len(r.Body) > 0:
				b = append(b, "content-length: "...)
				b = strconv.AppendInt(b, int64(len(r.Body)), 10)
				b = append(b, "\r\n"...)
			case r.Method == "POST" || r.Method == "PUT" || r.Method == "PATCH":
				b = append(b, "content-length: 0\r\n"...)
			}
		}
	}
	b = append(b, "\r\n"...)
	if len(r.Body) <= 16<<10 {
		b = append(b, r.Body...)
		h.c.write(b)
	} else {
		h.c.write(b)
		h.c.write(r.Body)
	}
	if cap(b) <= 64<<10 {
		h.scratch = b[:0]
	}
	// HTTP/1.0 without keep-alive closes after each response: later
	// requests wait for the next connection instead of dying pipelined.
	if headerHasToken(r.Headers, "connection", "close") || (h.v10 && !headerHasToken(r.Headers, "connection", "keep-alive")) {
		h.closeAfter = true
	}
	flow := r.Flow
	if flow == 0 {
		flow = h.c.opts.HTTP.Flow
	}
	if r.ws != nil {
		flow = r.ws.opts.Flow // Gun: the upgrade stream's flow is ws_opts' (a rejection's DATA counts)
	}
	if flow == 0 {
		flow = -1
	}
	s := &h1Stream{ref: r.ref, method: r.Method, path: r.Path, flow: flow, ws: r.ws, connect: r.connect, handlers: r.ContentHandlers}
	if r.ws == nil && r.connect == nil {
		_, s.upgrade = hasHeader(r.Headers, "upgrade")
	}
	h.streams = append(h.streams, s)
	if r.ws != nil || r.connect != nil || s.upgrade {
		// Later requests wait for the answer: what follows would be lost if
		// it is accepted (after a CONNECT's 2xx they go to the origin).
		h.upgrading = s
	}
	if r.Stream {
		h.out = out
	}
	return nil
}

func (h *http1) data(ref uint64, p []byte, fin bool) error {
	o := h.out
	if o == nil || o.ref != ref {
		for _, r := range h.waiting {
			if r.ref == ref {
				return fmt.Errorf("%w: the body of an earlier request is still being sent; this one's can follow once it ends", ErrBadState)
			}
		}
		return fmt.Errorf("%w: stream %d is not sending a body", ErrNoStream, ref)
	}
	if o.chunked {
		if len(p) > 0 { // Gun ignores empty nofin chunks: an empty chunk would end the body
			var hdr [20]byte
			b := strconv.AppendInt(hdr[:0], int64(len(p)), 16)
			b = append(b, '\r', '\n')
			h.c.write(b)
			h.c.write(p)
			h.c.write([]byte("\r\n"))
		}
		if fin {
			h.c.write([]byte("0\r\n\r\n"))
		}
	} else {
		if int64(len(p)) > o.remaining {
			return fmt.Errorf("%w: %d bytes exceed the content-length left (%d)", ErrBadArg, len(p), o.remaining)
		}
		if fin && int64(len(p)) != o.remaining {
			// Refused before anything is written: the body stays open and
			// the caller can still send the rest.
			return fmt.Errorf("%w: body would end %d bytes short of its content-length", ErrBadArg, o.remaining-int64(len(p)))
		}
		o.remaining -= int64(len(p))
		if len(p) > 0 {
			h.c.write(p)
		}
	}
	if fin {
		h.out = nil
		h.flushWaiting()
	}
	return nil
}

func (h *http1) handle(buf []byte) (int, error) {
	off := 0
	for off < len(buf) {
		if len(h.streams) == 0 {
			return off, fmt.Errorf("protocol_error: %d unexpected bytes from the server with no request in flight", len(buf)-off)
		}
		s := h.streams[0]
		if !h.begun {
			h.parser.Begin(s.method)
			h.begun = true
		}
		if s.flow == 0 && s.gotHead && !s.silenced {
			return off, nil // Gun's flow ran out: leave the rest in the buffer
		}
		part, n, err := h.parser.Next(buf[off:])
		if err != nil {
			return off, fmt.Errorf("protocol_error: %v", err)
		}
		off += n
		done := false
		switch part.Kind {
		case h1None:
			return off, nil
		case h1Inform:
			if !s.silenced {
				h.c.emit(&Event{Kind: EvInform, Ref: s.ref, Status: part.Status, Headers: part.Headers})
			}
		case h1Upgrade:
			if s.upgrade {
				return h.switchToRaw(s, part.Headers, buf, off)
			}
			if s.ws == nil {
				return off, fmt.Errorf("protocol_error: 101 switching protocols to a request that asked for no upgrade")
			}
			return h.switchToWS(s, part.Headers, buf, off)
		case h1Head:
			s.gotHead = true
			if s.ws != nil {
				s.ws.fail() // rejected: an ordinary response, as in Gun
			}
			if part.Close {
				h.closeAfter = true
			}
			if s.connect != nil && part.Status/100 == 2 {
				return h.switchToTunnel(s, part, buf, off)
			}
			if !s.silenced {
				h.c.emit(&Event{Kind: EvResponse, Ref: s.ref, Fin: part.Fin, Status: part.Status, Headers: part.Headers})
				if hs := s.handlers; !part.Fin && (hs.SSE || !hs.Set && h.c.opts.HTTP.ContentHandlers.SSE) {
					if !hs.Set {
						hs = h.c.opts.HTTP.ContentHandlers
					}
					s.sink = newBodySink(hs, s.ref, part.Headers)
				}
			}
			done = part.Fin
		case h1Data:
			if !s.silenced && s.sink != nil {
				n, _, failed := s.sink.feed(h.c, part.Data, part.Fin)
				if s.flow > 0 {
					s.flow = max(s.flow-n, 0)
				}
				if failed { // ERROR given: the rest of the body is read and dropped
					s.silenced = true
					h.discardHead()
				}
			} else if !s.silenced && (len(part.Data) > 0 || part.Fin) {
				h.c.emit(&Event{Kind: EvData, Ref: s.ref, Fin: part.Fin, Data: append([]byte(nil), part.Data...)})
				if s.flow > 0 {
					s.flow--
				}
			}
			done = part.Fin
		case h1Trailers:
			if !s.silenced {
				h.c.emit(&Event{Kind: EvTrailers, Ref: s.ref, Headers: part.Headers})
			}
			done = true
		}
		if done {
			if s.discardT != nil {
				s.discardT.Stop()
			}
			h.streams[0] = nil
			h.streams = h.streams[1:]
			h.begun = false
			h.discardHead()
			if h.upgrading == s {
				h.upgrading = nil
				h.flushWaiting()
			}
			if h.closeAfter {
				return off, errCloseNormal
			}
		}
	}
	return off, nil
}

func (h *http1) eof() error {
	if len(h.streams) == 0 || !h.begun {
		return nil
	}
	part, ok, idle := h.parser.EOF()
	if !ok {
		if idle || h.parser.state == h1sFailed {
			return nil
		}
		// Gun's reason is closed; the detail says what was cut.
		return fmt.Errorf("closed: the server closed the connection %s", h.parser.cut())
	}
	s := h.streams[0]
	if !s.silenced && s.sink != nil {
		s.sink.feed(h.c, part.Data, true)
	} else if !s.silenced {
		h.c.emit(&Event{Kind: EvData, Ref: s.ref, Fin: true, Data: part.Data})
	}
	h.streams = h.streams[1:]
	h.begun = false
	if h.upgrading == s {
		h.upgrading = nil // the connection ends: down() requeues what waited
	}
	return nil
}

func (h *http1) find(ref uint64) *h1Stream {
	for _, s := range h.streams {
		if s.ref == ref {
			return s
		}
	}
	return nil
}

// cancel silences the stream, as Gun does: HTTP/1.1 cannot abort one
// response without closing the connection, so the response is still read,
// and dropped, for at most discard_timeout. A stream whose request body is
// still being sent closes the connection at once: its body can never be
// completed, and nothing else could use the connection (Gun leaves it
// stuck). Unknown streams are ignored (they may have just ended).
func (h *http1) cancel(ref uint64) error {
	if s := h.find(ref); s != nil {
		s.silenced = true
		if h.out != nil && h.out.ref == ref {
			h.c.useful = true // our close, not the server's failure: Gun's immediate retry applies
			h.c.failLocked(fmt.Errorf("cancelled: stream %d was cancelled (or timed out) while its request body was being sent; HTTP/1.1 cannot abandon a body without closing the connection", ref))
			return nil
		}
		h.discardHead()
		return nil
	}
	for i, r := range h.waiting {
		if r.ref == ref {
			h.waiting = append(h.waiting[:i], h.waiting[i+1:]...)
			if r.ws != nil {
				r.ws.fail()
			}
			return nil
		}
	}
	return nil
}

// discardHead bounds how long the response of a silenced stream is read
// and dropped (http_opts.discard_timeout), from the time its turn comes
// (the responses before it are not its to bound): past it the connection
// closes and reconnects, so an endless body is not read for ever.
func (h *http1) discardHead() {
	d := h.c.opts.HTTP.DiscardTimeout
	if d <= 0 || len(h.streams) == 0 || !h.streams[0].silenced || h.streams[0].discardT != nil {
		return
	}
	s := h.streams[0]
	c := h.c
	s.discardT = time.AfterFunc(d, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.proto != h || h.find(s.ref) != s {
			return
		}
		c.useful = true // the response began or the cancel was ours: not a failed attempt
		c.failLocked(fmt.Errorf("discard_timeout: the response of cancelled stream %d did not end within %v (http_opts.discard_timeout)", s.ref, d))
	})
}

// inputTimeout: a response head, chunk-size line or trailer block must be
// whole within head_timeout of its first byte (conn.go's watchStall).
func (h *http1) inputTimeout() (time.Duration, string, bool) {
	return h.c.opts.HTTP.HeadTimeout, "http_opts.head_timeout", false
}

func (h *http1) updateFlow(ref uint64, n int) error {
	if s := h.find(ref); s != nil && s.flow >= 0 {
		s.flow += n
	}
	return nil
}

func (h *http1) consumed(uint64, int) {}

func (h *http1) paused() bool {
	if len(h.streams) == 0 {
		return false
	}
	s := h.streams[0]
	return s.flow == 0 && s.gotHead && !s.silenced
}

// down: the requests in flight die with the connection; requests not yet
// written (waiting behind a streamed body) go back to the connection's
// queue and are sent after the reconnect.
func (h *http1) down() []uint64 {
	if h.keepaliveT != nil {
		h.keepaliveT.Stop()
	}
	killed := make([]uint64, 0, len(h.streams))
	for _, s := range h.streams {
		if s.discardT != nil {
			s.discardT.Stop()
		}
		if !s.silenced {
			killed = append(killed, s.ref)
		}
		if s.ws != nil {
			s.ws.fail()
		}
	}
	h.c.pending = append(h.waiting, h.c.pending...)
	h.streams, h.waiting, h.out, h.upgrading = nil, nil, nil, nil
	return killed
}

func (h *http1) shutdown() time.Duration {
	for _, r := range h.waiting {
		h.c.emit(&Event{Kind: EvError, Ref: r.ref, Reason: "closing"})
		if r.ws != nil {
			r.ws.fail()
		}
	}
	h.waiting = nil
	return h.c.opts.HTTP.ClosingTimeout
}

func (h *http1) idle() bool { return len(h.streams) == 0 && h.out == nil && len(h.waiting) == 0 }

func (h *http1) streamInfo(ref uint64) (StreamInfo, bool) {
	s := h.find(ref)
	if s == nil {
		for _, r := range h.waiting {
			if r.ref == ref {
				return StreamInfo{State: "queued", Method: r.Method, Path: r.Path, Flow: -1}, true
			}
		}
		return StreamInfo{}, false
	}
	st := "running"
	if s.silenced {
		st = "stopping"
	}
	return StreamInfo{State: st, Method: s.method, Path: s.path, Flow: s.flow}, true
}
