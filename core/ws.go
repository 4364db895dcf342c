package core

// ws is Gun's gun_ws: the protocol of a connection after a successful
// WebSocket upgrade, at the frame level, as gun_ws is on cowlib's cow_ws.
// github.com/gobwas/ws provides the frame vocabulary (headers, opcodes,
// close codes, masking, the RFC 6455 header checks) and wsflate the
// permessage-deflate parameters (RFC 7692); the protocol itself (control
// frames, fragmentation, the close handshake, deflate contexts, limits,
// flow) is this state machine. It runs on a transport (wsCarrier): inside
// the connection's read loop on the socket after a 101, or on an HTTP/2
// stream's pipe (RFC 8441, ws_h2.go, pipe_h2.go) inside the HTTP/2 engine's
// DATA handling: no goroutine of its own either way.
//
// Why not coder/websocket (the first version): its message-level API cannot
// send a ping with a chosen payload or an unsolicited pong, drops data
// messages that arrive between our close frame and the peer's, caps the
// wait for the peer's close at 5 s, and only refuses an oversized frame
// after buffering 16 MiB of it.
//
// Semantics (Gun's):
//   - incoming text and binary messages are WS events once whole (fragments
//     joined); pings are answered at once with the same payload; pings and
//     pongs are events unless silence_pings.
//   - data messages are delivered until the peer's close frame, also after
//     ours; the peer's close frame is the stream's last event (code 0 when it
//     has none). A close frame of the peer's is answered with close 1000
//     (Gun's), then the connection ends: DOWN "normal", the stream in its
//     killed list (Gun #265), reconnect per retry as HTTP.
//   - our close frame (ws_send) waits closing_timeout (default 15 s) for the
//     peer's; past it the stream gets ERROR "closing_timeout: ..." and the
//     connection ends with that reason.
//   - a frame that breaks RFC 6455 / 7692 is answered with close 1002
//     (Gun's {error, badframe}); a text message or close reason that is not
//     UTF-8 with 1007; a frame header announcing a message larger than
//     max_message_size with 1009 at once: nothing of it is buffered and
//     nothing more is read; the stream gets ERROR and the connection ends
//     with the same reason (1002/1007/1009 as DOWN's reason says).
//   - decompression is bounded by max_message_size (a deflate bomb gets
//     1009, not inflated past the limit).
//
// Deviations of gunmetal's own:
//   - Gun acts on a frame-level error by sending its close frame and waiting
//     closing_timeout for the peer to close; RFC 6455 7.1.7 ("Fail the
//     WebSocket Connection") closes at once after the close frame, which is
//     what gunmetal does: a peer that breaks the protocol gets no more time.
//   - HTTP/1.1 requests made after an upgrade wait for its outcome (ERROR
//     badstate on a 101, sent otherwise); Gun writes them at once and they
//     are lost when the upgrade succeeds.
//   - Over HTTP/2 (RFC 8441, ws_h2.go) a closed WebSocket ends its stream,
//     not the connection, and is not in a DOWN.

import (
	"bytes"
	"compress/flate"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
)

type wsProto struct {
	c       *Conn
	up      *wsUp
	ref     uint64
	path    string
	opts    *WSOpts
	headers []Header  // the 101's
	t       wsCarrier // what its frames travel on: the socket, or an HTTP/2 stream (RFC 8441)

	// All below under c.mu.
	flow int // Gun's flow: events left; -1 off

	// Input.
	inFrame bool  // in a frame's payload
	left    int64 // payload bytes left in the current frame
	fop     ws.OpCode
	ffin    bool
	flen    int64 // the frame's length, for trace events
	ctl     [ws.MaxControlFramePayloadSize]byte
	ctlN    int
	msgOp   uint8  // the data message in progress: WSText, WSBinary; 0 none
	msg     []byte // its payload so far (compressed if msgZ)
	msgZ    bool

	// permessage-deflate, when negotiated.
	deflate   bool
	zInTake   bool // the server keeps its context (no server_no_context_takeover)
	zOutTake  bool // we keep ours (no client_no_context_takeover)
	zHuffOnly bool // client_max_window_bits < 15: no back-references at all
	zr        io.ReadCloser
	zsrc      wsInflateSrc
	zdict     []byte // the last 32 KiB inflated, for context takeover
	zw        *flate.Writer
	zbuf      bytes.Buffer

	sentClose bool  // our close frame is out
	gotClose  bool  // the peer's close frame arrived
	over      bool  // the stream's last event (close or ERROR) was emitted
	detached  bool  // the connection is gone (serve's detach)
	endErr    error // why the connection ends (DOWN's reason), once decided
	rnd       *rand.ChaCha8
	timers    []*time.Timer
}

func newWSProto(c *Conn, up *wsUp, hs []Header, neg wsNegotiated) *wsProto {
	var seed [32]byte
	crand.Read(seed[:])
	p := &wsProto{c: c, up: up, ref: up.ref, path: up.path, opts: up.opts, headers: hs,
		flow: -1, rnd: rand.NewChaCha8(seed)}
	p.t = wsSocket{p}
	if up.opts.Flow > 0 {
		p.flow = up.opts.Flow
	}
	if neg.deflate {
		p.deflate = true
		p.zInTake = !neg.params.ServerNoContextTakeover
		p.zOutTake = !neg.params.ClientNoContextTakeover
		b := neg.params.ClientMaxWindowBits
		p.zHuffOnly = b.Defined() && b != 1 && b < 15
	}
	return p
}

// start arms keepalive once the WebSocket is the connection's (or its
// stream's) protocol. c.mu held.
func (p *wsProto) start() {
	ka := p.opts.KeepAlive
	if ka <= 0 {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(ka, func() {
		c := p.c
		c.mu.Lock()
		defer c.mu.Unlock()
		if p.detached || p.over || p.sentClose || !p.live() {
			return
		}
		p.writeFrame(ws.OpPing, nil, false) // Gun's keepalive: an empty ping
		t.Reset(ka)
	})
	p.timers = append(p.timers, t)
}

// ---- the protocol interface ----

func (p *wsProto) name() string { return "ws" }

// handle parses frames out of the socket's bytes (HTTP/1.1). An error ends
// the connection with that reason.
func (p *wsProto) handle(buf []byte) (int, error) {
	n, err := p.parse(buf)
	return n, err
}

// live: the connection still carries this WebSocket (as its protocol, or
// through its HTTP/2 engine). c.mu held.
func (p *wsProto) live() bool { return p.t.live() }

// eof: the socket ended. After a finished close handshake, or a decided
// end (closing_timeout, a protocol error), that is the reason; otherwise
// the peer went without a close frame and DOWN says "closed".
func (p *wsProto) eof() error {
	if p.endErr != nil {
		return p.endErr
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
	r.ws.fail()
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
		p.t.resume() // what the transport kept is handed to handle again
	}
	return nil
}

func (p *wsProto) consumed(uint64, int) {}

// paused: Gun's flow ran out (the read loop keeps what it has and waits).
func (p *wsProto) paused() bool { return p.flow == 0 && p.endErr == nil && !p.over }

// detach: the connection is gone (any way: lost, closed, shut down).
func (p *wsProto) detach() {
	p.detached = true
	for _, t := range p.timers {
		t.Stop()
	}
	p.timers = nil
}

// down: the WebSocket stream is killed with its connection (Gun #265).
func (p *wsProto) down() []uint64 { return []uint64{p.ref} }

// ended: the stream already had its last event, or its close handshake was
// under way: DOWN lists it, but no ERROR follows.
func (p *wsProto) ended(ref uint64) bool {
	return ref == p.ref && (p.over || p.sentClose)
}

// shutdown: Gun sends a close frame 1001 and waits closing_timeout.
func (p *wsProto) shutdown() time.Duration {
	p.sendClose(int(ws.StatusGoingAway), "")
	return p.opts.ClosingTimeout
}

// idle: nothing more to wait for.
func (p *wsProto) idle() bool { return p.over || p.detached }

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

// ---- input: frames in, events out ----

// errWSIgnore: after the peer's close frame, bytes are read and dropped
// (Gun ignores them) until the connection ends.
var errWSIgnore = errors.New("ignored")

// parse consumes frames from b and returns how many bytes it used. It stops
// early (at a frame boundary) when Gun's flow ran out. A non-nil error ends
// the WebSocket: errCloseNormal after the close handshake, or the reason
// of a failure (its close frame already written).
func (p *wsProto) parse(b []byte) (int, error) {
	off := 0
	for {
		if p.endErr != nil {
			return len(b), p.endErr
		}
		if p.over || p.detached {
			return len(b), nil
		}
		if !p.inFrame {
			if p.flow == 0 {
				return off, nil
			}
			h, hn, err := wsParseHeader(b[off:])
			if err != nil {
				return len(b), p.fail(ws.StatusProtocolError, "ws_error: frame header: "+err.Error())
			}
			if hn == 0 {
				return off, nil // a partial header: more bytes first
			}
			if p.c.trace&trmWSRecv != 0 {
				p.traceRecvHeader(h)
			}
			if err := p.beginFrame(h); err != nil {
				return len(b), err
			}
			off += hn
		}
		k := int(min(p.left, int64(len(b)-off)))
		if k > 0 {
			if p.fop.IsControl() {
				p.ctlN += copy(p.ctl[p.ctlN:], b[off:off+k])
			} else {
				p.msg = append(p.msg, b[off:off+k]...)
			}
			off += k
			p.left -= int64(k)
		}
		if p.left > 0 {
			return off, nil
		}
		p.inFrame = false
		if err := p.endFrame(); err != nil {
			return len(b), err
		}
	}
}

// wsParseHeader reads a frame header from the start of b: its size, 0 when
// b does not hold all of it yet. A length encoded in more bytes than needed
// or with its most significant bit set is an error (RFC 6455 5.2).
func wsParseHeader(b []byte) (ws.Header, int, error) {
	var h ws.Header
	if len(b) < 2 {
		return h, 0, nil
	}
	h.Fin = b[0]&0x80 != 0
	h.Rsv = (b[0] & 0x70) >> 4
	h.OpCode = ws.OpCode(b[0] & 0x0f)
	h.Masked = b[1]&0x80 != 0
	n := 2
	switch l := b[1] & 0x7f; l {
	case 126:
		if len(b) < 4 {
			return h, 0, nil
		}
		h.Length = int64(binary.BigEndian.Uint16(b[2:4]))
		if h.Length < 126 {
			return h, 0, fmt.Errorf("a 16-bit length of %d (lengths under 126 take 7 bits, RFC 6455 5.2)", h.Length)
		}
		n = 4
	case 127:
		if len(b) < 10 {
			return h, 0, nil
		}
		u := binary.BigEndian.Uint64(b[2:10])
		if u>>63 != 0 {
			return h, 0, fmt.Errorf("a 64-bit length with its most significant bit set (%#x; RFC 6455 5.2)", u)
		}
		h.Length = int64(u)
		if h.Length <= 0xffff {
			return h, 0, fmt.Errorf("a 64-bit length of %d (lengths under 65536 take 16 bits, RFC 6455 5.2)", h.Length)
		}
		n = 10
	default:
		h.Length = int64(l)
	}
	if h.Masked {
		if len(b) < n+4 {
			return h, 0, nil
		}
		copy(h.Mask[:], b[n:n+4])
		n += 4
	}
	return h, n, nil
}

// beginFrame checks a frame header against the connection's state and
// limits before anything of its payload is read.
func (p *wsProto) beginFrame(h ws.Header) error {
	st := ws.StateClientSide
	if p.msgOp != 0 {
		st |= ws.StateFragmented
	}
	if p.deflate {
		// RFC 7692: RSV1 on the first frame of a data message only.
		var ms wsflate.MessageState
		h2, err := ms.UnsetBits(h)
		if err != nil {
			return p.fail(ws.StatusProtocolError, "ws_error: frame header: RSV1 on a control frame or a continuation (RFC 7692 6)")
		}
		if h.OpCode.IsData() && h.OpCode != ws.OpContinuation {
			p.msgZ = ms.IsCompressed()
		}
		h.Rsv = h2.Rsv
	}
	if err := ws.CheckHeader(h, st); err != nil {
		return p.fail(ws.StatusProtocolError, fmt.Sprintf("ws_error: frame header (opcode %d): %v", h.OpCode, err))
	}
	p.fop, p.ffin, p.left, p.inFrame = h.OpCode, h.Fin, h.Length, true
	if h.OpCode.IsControl() {
		p.ctlN = 0
		return nil
	}
	if h.OpCode != ws.OpContinuation {
		p.msgOp = WSText
		if h.OpCode == ws.OpBinary {
			p.msgOp = WSBinary
		}
		p.msg = nil
	}
	// The limit applies to the message, across fragments; a compressed one
	// may take a little more than the limit before it is inflated (deflate
	// adds a few bytes per 64 KiB to what it cannot compress).
	if max := p.opts.MaxMessageSize; max > 0 {
		limit := max
		if p.msgZ {
			limit = max + max/1024 + 64
		}
		if h.Length > limit-int64(len(p.msg)) {
			return p.fail(ws.StatusMessageTooBig, fmt.Sprintf(
				"max_message_size: a frame announces %d bytes, more than the %d allowed (ws_opts max_message_size); closed with 1009",
				int64(len(p.msg))+h.Length, max))
		}
	}
	if p.msg == nil {
		// One allocation of the right size for a message in one frame; a
		// large announcement is not trusted before its bytes arrive.
		p.msg = make([]byte, 0, min(h.Length, 1<<20))
	}
	return nil
}

// endFrame acts on a whole frame.
func (p *wsProto) endFrame() error {
	if p.c.trace&(1<<trWSRecvEnd) != 0 {
		p.traceRecvEnd()
	}
	switch p.fop {
	case ws.OpPing:
		if n := p.pending(); n > wsPongBacklog {
			// Gun would block in its send; we don't block the reader, so a
			// server that pings and never reads its pongs is cut off here.
			return p.fail(ws.StatusPolicyViolation, fmt.Sprintf(
				"ws_error: ping flood: %d bytes of our output wait for the server to read them (it sends pings and does not read the pongs); closed with 1008", n))
		}
		payload := p.ctl[:p.ctlN]
		p.writeFrame(ws.OpPong, payload, false) // before anything else we write
		if !p.opts.SilencePings {
			p.emit(&Event{Kind: EvWS, WSOp: WSPing, Data: append([]byte{}, payload...)})
		}
		return nil
	case ws.OpPong:
		if !p.opts.SilencePings {
			p.emit(&Event{Kind: EvWS, WSOp: WSPong, Data: append([]byte{}, p.ctl[:p.ctlN]...)})
		}
		return nil
	case ws.OpClose:
		return p.peerClose(p.ctl[:p.ctlN])
	}
	if !p.ffin {
		return nil
	}
	data, op := p.msg, p.msgOp
	p.msg, p.msgOp = nil, 0
	if p.msgZ {
		p.msgZ = false
		var err error
		if data, err = p.inflate(data); err != nil {
			return err
		}
	}
	if op == WSText && !utf8.Valid(data) {
		return p.fail(ws.StatusInvalidFramePayloadData, "badencoding: a text message is not valid UTF-8; closed with 1007")
	}
	p.emit(&Event{Kind: EvWS, WSOp: op, Data: data})
	return nil
}

// peerClose: the peer's close frame. It is the stream's last event; ours
// answers it (1000, as Gun) unless it was sent already; then the
// connection (or the HTTP/2 stream) ends.
func (p *wsProto) peerClose(b []byte) error {
	code, reason := 0, ""
	switch {
	case len(b) == 1:
		return p.fail(ws.StatusProtocolError, "ws_error: a close frame with a 1-byte payload (RFC 6455 5.5.1)")
	case len(b) >= 2:
		sc := ws.StatusCode(binary.BigEndian.Uint16(b))
		if !utf8.Valid(b[2:]) {
			return p.fail(ws.StatusInvalidFramePayloadData, "badencoding: a close reason is not valid UTF-8; closed with 1007")
		}
		if err := ws.CheckCloseFrameData(sc, ""); err != nil || !wsSendableCode(int(sc)) {
			return p.fail(ws.StatusProtocolError, fmt.Sprintf("ws_error: a close frame with code %d, which may not be sent (RFC 6455 7.4)", sc))
		}
		code, reason = int(sc), string(b[2:])
	}
	p.gotClose = true
	p.emit(&Event{Kind: EvWS, WSOp: WSClose, CloseCode: code, Data: []byte(reason)})
	p.over = true
	if !p.sentClose {
		p.sentClose = true
		p.writeClose(int(ws.StatusNormalClosure), "")
	}
	p.endErr = errCloseNormal
	return p.endErr
}

// fail ends the WebSocket on a frame-level error: close frame with code,
// ERROR on the stream, and the reason for DOWN.
func (p *wsProto) fail(code ws.StatusCode, reason string) error {
	if !p.sentClose {
		p.sentClose = true
		p.writeClose(int(code), "")
	}
	if !p.over {
		p.emit(&Event{Kind: EvError, Reason: reason})
		p.over = true
	}
	p.msg, p.inFrame = nil, false
	p.endErr = errors.New(reason)
	return p.endErr
}

// inflate decompresses a message (RFC 7692 7.2.2), at most max_message_size
// bytes of output: a message that would inflate past it is refused.
func (p *wsProto) inflate(z []byte) ([]byte, error) {
	p.zsrc.reset(z)
	var dict []byte
	if p.zInTake {
		dict = p.zdict
	}
	if p.zr == nil {
		p.zr = flate.NewReaderDict(&p.zsrc, dict)
	} else {
		p.zr.(flate.Resetter).Reset(&p.zsrc, dict)
	}
	lim := p.opts.MaxMessageSize
	out := make([]byte, 0, max(min(4*len(z)+64, 1<<20), 512))
	for {
		if len(out) == cap(out) {
			out = append(out, 0)[:len(out)]
		}
		end := cap(out)
		if lim > 0 {
			end = int(min(int64(end), lim+1)) // never more than one byte past the limit
		}
		n, err := p.zr.Read(out[len(out):end])
		out = out[:len(out)+n]
		if lim > 0 && int64(len(out)) > lim {
			return nil, p.fail(ws.StatusMessageTooBig, fmt.Sprintf(
				"max_message_size: a compressed message inflates to more than the %d bytes allowed (ws_opts max_message_size); closed with 1009", lim))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, p.fail(ws.StatusProtocolError, "ws_error: a compressed message does not inflate: "+err.Error())
		}
	}
	if p.zInTake {
		// The server's window reaches back 32 KiB at most (RFC 7692 7.1.2.1).
		if len(out) >= wsflate.MaxLZ77WindowSize {
			p.zdict = append(p.zdict[:0], out[len(out)-wsflate.MaxLZ77WindowSize:]...)
		} else {
			if keep := wsflate.MaxLZ77WindowSize - len(out); len(p.zdict) > keep {
				p.zdict = p.zdict[:copy(p.zdict, p.zdict[len(p.zdict)-keep:])]
			}
			p.zdict = append(p.zdict, out...)
		}
	}
	return out, nil
}

// wsInflateSrc is a message's compressed bytes followed by the tail RFC
// 7692 7.2.2 has the receiver append (00 00 ff ff), and an empty final
// stored block so that the inflater ends with io.EOF.
type wsInflateSrc struct {
	b    []byte
	tail int
}

var wsInflateTail = [...]byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

func (s *wsInflateSrc) reset(b []byte) { s.b, s.tail = b, 0 }

func (s *wsInflateSrc) Read(b []byte) (int, error) {
	if len(s.b) > 0 {
		n := copy(b, s.b)
		s.b = s.b[n:]
		return n, nil
	}
	if s.tail == len(wsInflateTail) {
		return 0, io.EOF
	}
	n := copy(b, wsInflateTail[s.tail:])
	s.tail += n
	return n, nil
}

func (s *wsInflateSrc) ReadByte() (byte, error) {
	if len(s.b) > 0 {
		c := s.b[0]
		s.b = s.b[1:]
		return c, nil
	}
	if s.tail == len(wsInflateTail) {
		return 0, io.EOF
	}
	s.tail++
	return wsInflateTail[s.tail-1], nil
}

// ---- output ----

// writeFrame writes one whole frame, masked (RFC 6455 5.3), compressed when
// z and deflate was negotiated. Frames go out whole and in the order of
// the calls. c.mu held.
func (p *wsProto) writeFrame(op ws.OpCode, payload []byte, z bool) {
	if p.c.trace&trmWSSend != 0 {
		hs := []Header{td("type", wsOpName(byte(op))), td("extensions", p.extensions())}
		p.c.traceLocked(trWSSendStart, p.ref, 0, append([]byte{}, payload...), hs)
		defer p.c.traceLocked(trWSSendEnd, p.ref, 0, append([]byte{}, payload...), hs)
	}
	rsv := byte(0)
	if z && p.deflate {
		payload = p.compress(payload)
		rsv = 0x4 // RSV1
	}
	var mask [4]byte
	binary.LittleEndian.PutUint32(mask[:], uint32(p.rnd.Uint64()))
	p.t.put(wsAppendFrame(p.t.buf(), op, rsv, mask, payload))
}

// wsPongBacklog bounds the output a server's pings can pile up (their
// pongs) while it reads nothing.
const wsPongBacklog = 2 * writeBound

// pending is our output not yet written to the socket (HTTP/1.1) or not
// yet sent within the server's windows (HTTP/2). c.mu held.
func (p *wsProto) pending() int { return p.t.pending() }

// wsAppendFrame appends a final frame: header, then the payload masked.
func wsAppendFrame(dst []byte, op ws.OpCode, rsv byte, mask [4]byte, payload []byte) []byte {
	h := ws.Header{Fin: true, Rsv: rsv, OpCode: op, Masked: true, Mask: mask, Length: int64(len(payload))}
	var hb [ws.MaxHeaderSize]byte
	hb[0] = 0x80 | h.Rsv<<4 | byte(h.OpCode)
	n := 2
	switch l := len(payload); {
	case l < 126:
		hb[1] = byte(l)
	case l <= 0xffff:
		hb[1] = 126
		binary.BigEndian.PutUint16(hb[2:], uint16(l))
		n = 4
	default:
		hb[1] = 127
		binary.BigEndian.PutUint64(hb[2:], uint64(l))
		n = 10
	}
	hb[1] |= 0x80
	n += copy(hb[n:], h.Mask[:])
	dst = append(dst, hb[:n]...)
	start := len(dst)
	dst = append(dst, payload...)
	ws.Cipher(dst[start:], mask, 0)
	return dst
}

// compress deflates one message (RFC 7692 7.2.1): a sync flush without its
// 00 00 ff ff tail; the compressor keeps its window between messages
// unless the server asked for client_no_context_takeover. BestSpeed: the
// engine's CPU is the host's. The result is valid until the next call.
func (p *wsProto) compress(b []byte) []byte {
	level := flate.BestSpeed
	if p.zHuffOnly {
		// The server limits our window below 32 KiB; Go's deflate cannot
		// shrink its window, but Huffman-only output refers back to nothing.
		level = flate.HuffmanOnly
	}
	p.zbuf.Reset()
	if p.zw == nil {
		p.zw, _ = flate.NewWriter(&p.zbuf, level)
	} else if !p.zOutTake {
		p.zw.Reset(&p.zbuf)
	}
	p.zw.Write(b)
	p.zw.Flush()
	out := p.zbuf.Bytes()
	if len(out) >= 4 {
		out = out[:len(out)-4]
	}
	return out
}

// writeClose writes a close frame: code 0 for one without payload.
func (p *wsProto) writeClose(code int, reason string) {
	if code == 0 {
		p.writeFrame(ws.OpClose, nil, false)
		return
	}
	var b [125]byte
	binary.BigEndian.PutUint16(b[:], uint16(code))
	n := 2 + copy(b[2:], reason)
	p.writeFrame(ws.OpClose, b[:n], false)
}

// sendClose starts the close handshake from our side: the close frame,
// then closing_timeout for the peer's. c.mu held.
func (p *wsProto) sendClose(code int, reason string) {
	if p.sentClose || p.over || p.detached || !p.live() {
		return
	}
	p.sentClose = true
	p.writeClose(code, reason)
	if ct := p.opts.ClosingTimeout; ct > 0 {
		p.timers = append(p.timers, time.AfterFunc(ct, func() {
			c := p.c
			c.mu.Lock()
			defer c.mu.Unlock()
			if p.detached || p.over || !p.live() {
				return
			}
			p.timedOut(ct)
		}))
	}
}

// timedOut: the peer's close frame did not come within closing_timeout.
// The stream gets ERROR, and the connection (HTTP/1.1) or the stream
// (HTTP/2) ends with that reason. c.mu held.
func (p *wsProto) timedOut(ct time.Duration) {
	reason := fmt.Sprintf("closing_timeout: no close frame from the server within %d ms of ours (ws_opts closing_timeout)", ct.Milliseconds())
	p.emit(&Event{Kind: EvError, Reason: reason})
	p.over = true
	p.endErr = errors.New(reason)
	p.t.abort()
}

// wsCarrier is the transport under a WebSocket, the seam of tunnel.go's
// doc: the connection's socket after a 101 (wsSocket), or an HTTP/2
// stream after RFC 8441's 2xx (an h2Pipe, pipe_h2.go). Bytes come in
// through handle either way (the read loop's, or the pipe's), and what
// handle leaves waits in the transport; an error from handle ends the
// transport our way (the connection; or our side of the stream, the
// peer's END_STREAM then awaited at most closing_timeout). c.mu held.
type wsCarrier interface {
	live() bool     // it still carries the WebSocket
	buf() []byte    // where the next frames are appended
	put(b []byte)   // b (buf with frames appended) goes out, in order
	pending() int   // output not out yet
	waitSent() bool // the writer waits (lock released) while much is pending; false: gone
	full() bool     // waitSent would wait
	resume()        // the WebSocket can take more: what was left is handed again
	abort()         // end now (closing_timeout): the connection, or a reset stream
}

// wsSocket: the WebSocket is the connection's protocol, on its socket.
type wsSocket struct{ p *wsProto }

func (w wsSocket) live() bool { return w.p.c.proto == w.p }

func (w wsSocket) buf() []byte { return w.p.c.wbuf }

// put: the frame is queued; a writer runs while there is output.
func (w wsSocket) put(b []byte) {
	c := w.p.c
	c.wbuf = b
	c.wakeWriter()
}

func (w wsSocket) pending() int   { return len(w.p.c.wbuf) }
func (w wsSocket) waitSent() bool { return w.p.c.waitDrained() }

func (w wsSocket) full() bool { return len(w.p.c.wbuf) > writeBound }

// resume: the read loop handles what it kept, then reads.
func (w wsSocket) resume() { w.p.c.rcond.Signal() }

// abort: the read loop wakes (an expired read deadline, or the signal if it
// waits for flow) and eof gives endErr as DOWN's reason.
func (w wsSocket) abort() {
	c := w.p.c
	if nc := c.nc; nc != nil {
		nc.SetReadDeadline(time.Now())
		c.wakeParkedLocked() // a parked reader runs (idlepoll.go)
		c.rcond.Signal()
	}
}
