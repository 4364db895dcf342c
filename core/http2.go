package core

// HTTP/2: Gun's gun_http2 (and the parts of cowlib's cow_http2_machine a
// client needs), as a state machine of our own on golang.org/x/net/http2's
// Framer and hpack. There is no goroutine per stream: conn's reader hands
// the bytes it read to handle, which turns whole frames into events; frames
// we send go through c.write, which the writer goroutine flushes in batches.
//
// The Framer writes every frame we send (but DATA, whose payload goes to
// the output buffer without an extra copy) and reads the control frames;
// DATA, HEADERS, PUSH_PROMISE and CONTINUATION, the frames of every
// response, are parsed here straight from the read buffer: no copy, no
// allocation per frame, and a PUSH_PROMISE continued in CONTINUATION frames
// (which the Framer's frame-order check does not know about) works.
//
// Flow control follows the host: a DATA event's bytes are given back to
// the server (WINDOW_UPDATE) when the host has taken the event (from C:
// freed it; conn calls consumed), not when the socket is read, with cow_http2_machine's
// window arithmetic (threshold, margin, max). Gun's per-stream flow (in
// messages) sits on top: a stream whose flow is 0 gets no stream
// WINDOW_UPDATE until UpdateFlow adds some.
//
// Request bodies honour the server's windows: a streamed body (Data) blocks
// its caller while the stream or the connection window is closed; a body
// given whole with the request waits in the stream (it is the caller's
// memory already) and goes out as WINDOW_UPDATEs arrive.
//
// Where gunmetal differs from Gun, and why:
//   - Connection-specific request headers (connection, keep-alive,
//     proxy-connection, transfer-encoding, upgrade; te other than
//     "trailers") are refused with ErrBadArg before anything is written,
//     where Gun drops them silently: a request that cannot be sent as
//     written should say so. The check applies whenever the connection
//     speaks, or may speak, HTTP/2.
//   - A GOAWAY's unprocessed streams (above its last-stream-id) get ERROR
//     "unprocessed: ..." (Gun: {goaway, Code, _}) to say plainly that the
//     request is safe to retry; requests made after a GOAWAY fail at once
//     with "closing"; the connection then goes DOWN ("normal" once the
//     remaining streams are done) and reconnects per retry.
//   - RST_STREAM from the server gives ERROR "stream_error: CODE" with the
//     RFC's name of the code (REFUSED_STREAM, CANCEL, ...); a connection
//     error gives a DOWN (and EXIT when no retry is left) whose reason is
//     "connection_error: CODE: why", e.g. "connection_error:
//     PROTOCOL_ERROR: Invalid connection preface received. Appears to be
//     an HTTP/1 response? (RFC7540 3.5)".
//   - max_concurrent_streams: a request past the server's limit fails at
//     once with ERROR "too_many_streams: ..." as in Gun; with the gunmetal
//     option wait_for_stream_slot it waits for a slot instead (at most
//     max_pending_requests of them).
//   - stream_window_data_threshold other than 0 is refused at Open: cowlib
//     holds back DATA while a window is below it, which can stall a server
//     that grants small windows; gunmetal sends whatever the windows allow.
//     max_stream_buffer_size holds for any value (nothing is buffered: Data
//     blocks). enable_connect_protocol true is announced in our SETTINGS, as
//     cowlib does.
//   - A stream error (bad response headers, content-length mismatch, too
//     many headers) resets the stream and gives ERROR "stream_error: CODE:
//     why"; the connection goes on.
//   - DATA for a stream closed recently (cancelled or reset by us) still
//     counts toward the connection window and is acknowledged, as cowlib's
//     lingering streams; DATA for older closed streams is answered with
//     RST_STREAM STREAM_CLOSED rather than a connection error. HEADERS for
//     a closed stream that is not lingering (its END_STREAM came) is a
//     connection error STREAM_CLOSED, as in cowlib (RFC 9113 5.1).
//   - Floods are bounded: max_concurrent_streams defaults to 100 (Gun:
//     infinity), which also caps the pushes held at once (more are refused
//     with REFUSED_STREAM, as Gun refuses them); max_informational_responses
//     (32) caps 1xx responses per stream (past it: stream error
//     ENHANCE_YOUR_CALM); max_settings_entries (64) caps the settings in
//     one SETTINGS frame (past it: connection error ENHANCE_YOUR_CALM).

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

func init() { protocols["http2"] = newHTTP2 }

const (
	h2MaxStreamID     = 1<<31 - 1
	h2MaxWindow       = 1<<31 - 1
	h2DefaultWindow   = 65535
	h2LingerStreams   = 256            // recently reset streams whose late frames are tolerated
	h2MaxUserPings    = 1024           // unacknowledged user pings
	h2MaxContinuation = 64             // CONTINUATION frames per header block (flood protection)
	h2OutputLimit     = 4 * writeBound // answers the server makes us write without reading them
)

var (
	errH2Closing = errors.New("closing")
)

type h2Stream struct {
	id        uint32
	ref       uint64
	method    string
	path      string
	authority string // :authority sent (or promised), for checking pushes
	flow      int    // Gun's flow: DATA events before stream WINDOW_UPDATEs stop; -1 off
	initFlow  int    // what pushed streams start with
	pushed    bool
	gotFinal  bool // the final (non-1xx) response head arrived
	status    int
	localFin  bool // END_STREAM sent
	remoteFin bool // END_STREAM received
	streaming bool // the body comes through data()
	body      []byte
	queued    bool  // in sendq, waiting for window to send body
	sendWin   int64 // what we may still send on this stream
	recvWin   int64 // what the server may still send on it
	held      int   // bytes of DATA events the host has not taken yet
	clen      int64 // the response's content-length, -1 when none
	rcvd      int64
	informs   int         // 1xx responses received
	ws        *wsUp       // a WebSocket upgrade (RFC 8441, ws_h2.go)
	winT      *time.Timer // send_window_timeout: the body waits for window
	endWhy    string      // why we reset it, for a Data caller
	pipe      *h2Pipe     // a byte stream both ways after a CONNECT's 2xx: a tunnel or a WebSocket (pipe_h2.go)
	tun       *h2Tunnel   // a CONNECT (tunnel_h2.go)
	errored   bool        // its end was reported (ERROR) or asked for (cancel): a tunnel's child need not

	handlers ContentHandlers // the request's content_handlers; unset: http2_opts'
	sink     *bodySink       // the handler that took the body; nil: DATA events (sse.go)

	hold uint32 // its index + 1 in h.holds, which its events carry (http2_hold.go); 0: none
}

// h2pseudo holds the pseudo-header fields of a decoded header block.
type h2pseudo struct {
	status, method, scheme, authority, path string
	n                                       int
}

type h2conn struct {
	c      *Conn
	o      *HTTP2Opts
	fr     *http2.Framer
	src    h2source
	enc    *hpack.Encoder
	hbuf   *bytes.Buffer // the encoder's output, made and dropped with it (blockStart)
	ec     *h2EncCache   // made by the first cacheable block, dropped with the encoder (W5: 128 bytes kept the struct a size class up)
	encGen uint64        // changes whenever the encoder's table may have changed
	dec    *hpack.Decoder
	scheme string
	auth   string // c.authority(), made once

	streams     map[uint32]*h2Stream
	refs        map[uint64]*h2Stream
	busyHigh    int  // the most streams open at once since the connection was last idle
	busy        bool // the last busy spell had more than h2LightStreams at once (remove)
	goawaySent  bool // here and dead after goawayRecv: in padding (issue 16, W5: 640-byte size class)
	nextID      uint32
	maxPromised uint32 // highest promised stream id seen
	lastPushID  uint32 // highest promised stream id accepted: our GOAWAY's last-stream-id
	activeLocal int
	activePush  int
	waiting     []*Request  // wait_for_stream_slot
	sendq       []*h2Stream // streams whose request body waits for window
	linger      []uint32    // h2LingerStreams ids, made at the first reset: an idle connection does without (issue 16, W5)
	lingerAt    int
	lingerHeld  map[uint64]int // bytes of DATA events of closed streams the host holds (streams without a hold)
	holds       *h2Holds       // http2_hold.go; nil while no stream has one (a pointer: W5's h2conn size class)

	// the header block being received (HEADERS/PUSH_PROMISE + CONTINUATION)
	hdrOn       bool
	hdrStream   uint32
	hdrPromised uint32 // PUSH_PROMISE: the promised stream
	hdrEnd      bool   // END_STREAM on the HEADERS frame
	hdrFrames   int
	hdrBlock    []byte

	// decoding one header block
	dFields  []Header
	dPseudo  h2pseudo
	dSize    int
	dLimit   int
	dBad     string // why the block is malformed (a stream error)
	dRegular bool

	// the server's settings
	peerMaxStreams uint32 // math.MaxUint32: unlimited (until it says otherwise)
	peerInitWin    int64
	peerMaxFrame   uint32
	peerTable      uint32
	peerPush       bool
	peerMaxList    uint32 // 0: unlimited
	peerConnect    bool
	maxFrameSend   uint32

	connSend int64 // what we may still send on the connection
	connRecv int64 // what the server may still send us
	connHeld int   // bytes of DATA events the host has not taken yet

	gotPreface    bool // the server's SETTINGS arrived
	settingsAcked bool
	goawayRecv    bool
	dead          bool // down() was called
	goawayLast    uint32
	fatal         error // set once the connection is going: what DOWN says
	pingsUnack    int
	userPings     map[uint64]uint64 // payload → the ping's ref
	pingSeq       uint64
	wsWait        []*Request // WebSocket upgrades waiting for the server's SETTINGS (ws_h2.go)

	prefaceT, settingsT, keepaliveT, closingT *time.Timer
}

// h2source is what the Framer reads: exactly one whole frame at a time.
type h2source struct{ b []byte }

func (s *h2source) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, errors.New("h2: frame source exhausted") // never: handle gives whole frames
	}
	n := copy(p, s.b)
	s.b = s.b[n:]
	return n, nil
}

// h2sink is what the Framer writes to: the connection's output buffer.
type h2sink struct{ c *Conn }

func (w h2sink) Write(p []byte) (int, error) {
	w.c.write(p)
	return len(p), nil
}

func newHTTP2(c *Conn) protocol {
	o := &c.opts.HTTP2
	h := &h2conn{
		c:              c,
		o:              o,
		scheme:         "http",
		nextID:         1,
		peerMaxStreams: math.MaxUint32,
		peerInitWin:    h2DefaultWindow,
		peerMaxFrame:   16384,
		peerTable:      4096,
		peerPush:       true,
		connSend:       h2DefaultWindow,
		connRecv:       h2DefaultWindow,
	}
	if c.opts.Transport == "tls" {
		h.scheme = "https"
	}
	h.auth = c.authority()
	h.maxFrameSend = h.peerMaxFrame
	h.hbuf = new(bytes.Buffer)
	h.enc = hpack.NewEncoder(h.hbuf)
	h.enc.SetMaxDynamicTableSizeLimit(o.MaxEncodeTableSize)
	h.dec = hpack.NewDecoder(4096, h.onField)
	h.dec.SetAllowedMaxDynamicTableSize(max(4096, o.MaxDecodeTableSize))
	h.dLimit = int(o.MaxHeaderListSize)
	if h.dLimit == 0 {
		h.dLimit = max(4*o.MaxFragmentedHeaderBlockSize, 256<<10)
	}
	h.dec.SetMaxStringLength(h.dLimit)

	// The preface: magic, SETTINGS, then the connection window.
	c.write([]byte(http2.ClientPreface))
	var set []http2.Setting
	if o.MaxDecodeTableSize != 4096 {
		set = append(set, http2.Setting{ID: http2.SettingHeaderTableSize, Val: o.MaxDecodeTableSize})
	}
	if o.MaxConcurrentStreams > 0 {
		set = append(set, http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: o.MaxConcurrentStreams})
	}
	if o.InitialStreamWindowSize != h2DefaultWindow {
		set = append(set, http2.Setting{ID: http2.SettingInitialWindowSize, Val: o.InitialStreamWindowSize})
	}
	if o.MaxFrameSizeReceived != 16384 {
		set = append(set, http2.Setting{ID: http2.SettingMaxFrameSize, Val: o.MaxFrameSizeReceived})
	}
	if o.MaxHeaderListSize > 0 {
		set = append(set, http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: o.MaxHeaderListSize})
	}
	if o.EnableConnectProtocol { // as cowlib: announced when asked (RFC 8441 3), though servers act on theirs
		set = append(set, http2.Setting{ID: http2.SettingEnableConnectProtocol, Val: 1})
	}
	h.framer().WriteSettings(set...)
	if inc := int64(o.InitialConnectionWindowSize) - h2DefaultWindow; inc > 0 {
		h.framer().WriteWindowUpdate(0, uint32(inc))
		h.connRecv += inc
	}

	if o.PrefaceTimeout > 0 {
		h.prefaceT = h.after(o.PrefaceTimeout, func() {
			if !h.gotPreface {
				h.failAsync(h.connError(http2.ErrCodeProtocol, "The preface was not received in a reasonable amount of time."))
			}
		})
	}
	if o.SettingsTimeout > 0 {
		h.settingsT = h.after(o.SettingsTimeout, func() {
			if !h.settingsAcked {
				h.failAsync(h.connError(http2.ErrCodeSettingsTimeout, "The SETTINGS ack was not received within the configured time. (RFC7540 6.5.3)"))
			}
		})
	}
	if o.KeepAlive > 0 {
		h.armKeepalive()
	}
	return h
}

func (h *h2conn) name() string { return "http2" }

// framer is the connection's Framer, made on demand: an idle connection
// drops it with its last stream (remove), and its buffers with it (the
// largest frame written and read; issue 16, W5). It keeps no state between
// frames that matters: HEADERS and CONTINUATION are parsed here, never by
// it, so frame order is checked here too (handle).
func (h *h2conn) framer() *http2.Framer {
	if h.fr == nil {
		h.fr = http2.NewFramer(h2sink{h.c}, &h.src)
		h.fr.SetReuseFrames()
		h.fr.SetMaxReadFrameSize(h.o.MaxFrameSizeReceived)
	}
	return h.fr
}

// ---- timers ----

// after runs f with the connection's lock held, if this protocol instance
// is still the connection's and alive.
func (h *h2conn) after(d time.Duration, f func()) *time.Timer {
	return time.AfterFunc(d, func() {
		c := h.c
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.proto != h || h.dead || h.fatal != nil {
			return
		}
		f()
	})
}

func (h *h2conn) armKeepalive() {
	h.keepaliveT = h.after(h.o.KeepAlive, func() {
		if tol := h.o.KeepAliveTolerance; tol > 0 && h.pingsUnack >= tol {
			h.failAsync(h.connError(http2.ErrCodeNo, "The number of unacknowledged pings exceed the configured tolerance value."))
			return
		}
		h.framer().WritePing(false, [8]byte{})
		h.pingsUnack++
		h.armKeepalive()
	})
}

func (h *h2conn) stopTimers() {
	for _, t := range []*time.Timer{h.prefaceT, h.settingsT, h.keepaliveT, h.closingT} {
		if t != nil {
			t.Stop()
		}
	}
}

// failAsync ends the connection from outside the reader (a timer): the
// reader wakes up, and eof returns h.fatal as the reason.
func (h *h2conn) failAsync(err error) {
	h.fatal = err
	h.wakeReader()
}

func (h *h2conn) wakeReader() {
	if nc := h.c.nc; nc != nil {
		nc.SetReadDeadline(time.Now())
		h.c.wakeParkedLocked() // a parked reader runs (idlepoll.go)
	}
	h.c.rcond.Broadcast()
}

// connError sends GOAWAY with code, tells the streams' owners (Gun's
// connection-wide gun_error) and returns the error that ends the
// connection.
func (h *h2conn) connError(code http2.ErrCode, why string) error {
	err := fmt.Errorf("connection_error: %s: %s", code, why)
	if h.fatal != nil {
		return h.fatal
	}
	h.framer().WriteGoAway(h.lastPushID, code, nil)
	h.goawaySent = true
	if len(h.refs) > 0 {
		h.c.emit(&Event{Kind: EvError, Reason: err.Error()})
	}
	h.fatal = err
	h.stopTimers()
	return err
}

// ---- requests ----

// h2ConnectionHeaders are the connection-specific header fields HTTP/2
// forbids (RFC 9113 8.2.2).
func h2ConnectionHeader(name string) bool {
	switch strings.ToLower(name) {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		return true
	}
	return false
}

func h2CheckHeaders(hs []Header) error {
	for _, x := range hs {
		if h2ConnectionHeader(x.Name) {
			return fmt.Errorf("%w: header %q is connection-specific and not allowed in HTTP/2", ErrBadArg, x.Name)
		}
		if strings.EqualFold(x.Name, "te") && !strings.EqualFold(strings.TrimSpace(x.Value), "trailers") {
			return fmt.Errorf("%w: header te may only be \"trailers\" in HTTP/2, not %q", ErrBadArg, x.Value)
		}
	}
	return nil
}

// checkProtoRequest refuses, before anything is queued or written, what
// the connection's protocol cannot send. Called by Conn.Request with the
// lock held. HTTP/2's rules apply when it is in use, or when it may be
// (not connected and listed in protocols).
func checkProtoRequest(c *Conn, r *Request) error {
	h2 := false
	if c.proto != nil {
		h2 = c.proto.name() == "http2"
	} else {
		h2 = contains(c.opts.Protocols, "http2")
	}
	if !h2 {
		return nil
	}
	if absoluteForm(r.Path) {
		return fmt.Errorf("%w: an absolute-form path (%q) is for HTTP/1.1 proxies; HTTP/2's :path takes origin-form (RFC 9113 8.3.1)", ErrBadArg, truncateForMsg(r.Path, 64))
	}
	return h2CheckHeaders(r.Headers)
}

func (h *h2conn) slotFree() bool {
	return h.peerMaxStreams == math.MaxUint32 || uint32(h.activeLocal) < h.peerMaxStreams
}

func (h *h2conn) request(r *Request) error {
	if h.goawayRecv || h.goawaySent || h.fatal != nil {
		return errH2Closing
	}
	if err := h2CheckHeaders(r.Headers); err != nil {
		return err
	}
	if !h.slotFree() {
		if !h.o.WaitForStreamSlot {
			return fmt.Errorf("too_many_streams: Maximum concurrency limit has been reached. (the server's max_concurrent_streams is %d)", h.peerMaxStreams)
		}
		if len(h.waiting) >= h.o.MaxWaitingStreams {
			return fmt.Errorf("too_many_streams: %d requests already wait for a stream slot (http2_opts.max_waiting_streams)", len(h.waiting))
		}
		h.waiting = append(h.waiting, r)
		return nil
	}
	if r.connect != nil {
		return h.connectOpen(r)
	}
	return h.open(r)
}

// open sends the request's HEADERS (and its body as the windows allow).
func (h *h2conn) open(r *Request) error {
	if h.nextID > h2MaxStreamID {
		return errors.New("closed: the connection has used all its stream identifiers")
	}
	id := h.nextID
	h.nextID += 2
	authority, block := h.encodeRequest(r)
	endStream := !r.Stream && len(r.Body) == 0
	h.writeHeaderBlock(id, block, endStream)
	flow := r.Flow
	if flow == 0 {
		flow = h.o.Flow
	}
	if flow == 0 {
		flow = -1
	}
	s := &h2Stream{
		id: id, ref: r.ref, method: r.Method, path: r.Path, authority: authority,
		flow: flow, initFlow: flow, localFin: endStream, streaming: r.Stream,
		sendWin: h.peerInitWin, recvWin: int64(h.o.InitialStreamWindowSize), clen: -1,
		handlers: r.ContentHandlers,
	}
	h.track(id, s)
	h.activeLocal++
	if len(r.Body) > 0 {
		s.body = r.Body
		h.sendBody(s)
	}
	return nil
}

// blockStart: the next header block's fields go to an empty hbuf.
func (h *h2conn) blockStart() {
	if h.enc == nil {
		h.newEncoder()
	}
	h.hbuf.Reset()
}

func (h *h2conn) field(name, value string) {
	if h.enc == nil {
		h.newEncoder()
	}
	h.enc.WriteField(hpack.HeaderField{Name: name, Value: value})
}

// An idle connection keeps no HPACK encoder (issue 16, W5: its table of
// the headers we sent is most of an idle connection's HPACK memory):
// dropEncoder lets it go with the last stream, and the next header block
// makes a new one. The new one starts empty while the server's decoder
// still holds what the old one indexed; that is consistent (both add the
// new entries in step, and the server evicts its older ones first), and
// the block starts with a table size update to 0 then back (RFC 7541 4.2)
// so that the server drops them too. The decoder's table is the server's
// to size: it stays.
func (h *h2conn) dropEncoder() {
	if h.enc == nil {
		return
	}
	h.enc, h.hbuf, h.ec = nil, nil, nil
	h.encGen++ // a cached block may name entries of the old table
}

func (h *h2conn) newEncoder() {
	h.hbuf = new(bytes.Buffer)
	e := hpack.NewEncoder(h.hbuf)
	e.SetMaxDynamicTableSizeLimit(h.o.MaxEncodeTableSize)
	e.SetMaxDynamicTableSize(0)
	e.SetMaxDynamicTableSize(min(h.peerTable, h.o.MaxEncodeTableSize))
	h.enc = e
}

// encodeRequest makes the request's header block: pseudo-headers first,
// names lower-cased, host becoming :authority (as Gun does). A block made
// only of references to the HPACK tables changes nothing in them, so the
// same request again can reuse it as long as no other block changed the
// tables meanwhile (the common case of many identical requests).
func (h *h2conn) encodeRequest(r *Request) (string, []byte) {
	authority, ok := hasHeader(r.Headers, "host")
	if !ok {
		authority = h.auth
	}
	if h.ec == nil {
		h.ec = &h2EncCache{}
	}
	ec := h.ec
	if ec.ok && ec.gen == h.encGen && ec.method == r.Method && ec.path == r.Path && ec.authority == authority &&
		ec.stream == r.Stream && ec.bodyLen == len(r.Body) && h2SameHeaders(ec.headers, r.Headers) {
		return authority, ec.block
	}
	h.blockStart()
	h.field(":method", r.Method)
	h.field(":scheme", h.scheme)
	h.field(":authority", authority)
	h.field(":path", r.Path)
	hasCL := false
	for _, x := range r.Headers {
		name := strings.ToLower(x.Name)
		switch name {
		case "host":
			continue
		case "content-length":
			hasCL = true
		}
		h.field(name, x.Value)
	}
	if !r.Stream && !hasCL {
		switch {
		case len(r.Body) > 0:
			h.field("content-length", strconv.Itoa(len(r.Body)))
		case r.Method == "POST" || r.Method == "PUT" || r.Method == "PATCH":
			h.field("content-length", "0")
		}
	}
	block := h.hbuf.Bytes()
	if h2BlockStable(block) {
		*ec = h2EncCache{ok: true, gen: h.encGen, method: r.Method, path: r.Path, authority: authority,
			stream: r.Stream, bodyLen: len(r.Body), headers: append(ec.headers[:0], r.Headers...),
			block: append(ec.block[:0], block...)}
	} else {
		h.encGen++
		ec.ok = false
	}
	return authority, block
}

// h2EncCache is the last request whose header block changed nothing in the
// HPACK tables.
type h2EncCache struct {
	ok                      bool
	gen                     uint64
	method, path, authority string
	stream                  bool
	bodyLen                 int
	headers                 []Header
	block                   []byte
}

func h2SameHeaders(a, b []Header) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// h2BlockStable: the block only refers to the tables (indexed fields,
// literals without indexing) and so leaves them as they were.
func h2BlockStable(b []byte) bool {
	skipInt := func(b []byte, prefix uint) ([]byte, uint64, bool) {
		if len(b) == 0 {
			return nil, 0, false
		}
		mask := byte(1<<prefix - 1)
		v := uint64(b[0] & mask)
		b = b[1:]
		if v < uint64(mask) {
			return b, v, true
		}
		for shift := uint(0); len(b) > 0 && shift < 63; shift += 7 {
			c := b[0]
			b = b[1:]
			v += uint64(c&0x7f) << shift
			if c&0x80 == 0 {
				return b, v, true
			}
		}
		return nil, 0, false
	}
	skipString := func(b []byte) ([]byte, bool) {
		b, n, ok := skipInt(b, 7)
		if !ok || uint64(len(b)) < n {
			return nil, false
		}
		return b[n:], true
	}
	for len(b) > 0 {
		c := b[0]
		var ok bool
		switch {
		case c&0x80 != 0: // indexed field
			b, _, ok = skipInt(b, 7)
		case c&0xc0 == 0x40, c&0xe0 == 0x20: // literal with indexing, table size update
			return false
		default: // literal without indexing or never indexed
			var idx uint64
			if b, idx, ok = skipInt(b, 4); ok && idx == 0 {
				b, ok = skipString(b)
			}
			if ok {
				b, ok = skipString(b)
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// writeHeaderBlock writes HEADERS and, past the server's frame size,
// CONTINUATION frames.
func (h *h2conn) writeHeaderBlock(id uint32, block []byte, endStream bool) {
	max := int(h.maxFrameSend)
	first := block
	if len(first) > max {
		first = block[:max]
	}
	block = block[len(first):]
	h.framer().WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndStream: endStream, EndHeaders: len(block) == 0})
	for len(block) > 0 {
		n := min(len(block), max)
		h.framer().WriteContinuation(id, n == len(block), block[:n])
		block = block[n:]
	}
}

// writeData writes one DATA frame without copying p twice.
func (h *h2conn) writeData(id uint32, fin bool, p []byte) {
	var hdr [9]byte
	n := len(p)
	hdr[0], hdr[1], hdr[2] = byte(n>>16), byte(n>>8), byte(n)
	hdr[3] = byte(http2.FrameData)
	if fin {
		hdr[4] = byte(http2.FlagDataEndStream)
	}
	hdr[5], hdr[6], hdr[7], hdr[8] = byte(id>>24), byte(id>>16), byte(id>>8), byte(id)
	h.c.write(hdr[:])
	if n > 0 {
		h.c.write(p)
	}
}

// avail is how much of stream s's body may go in the next DATA frame.
//
// Nothing goes before the server's first SETTINGS: its initial window may
// be smaller than the default we would otherwise count on, and servers
// differ on data sent beyond it before they saw our ack (nghttpd resets
// the stream with FLOW_CONTROL_ERROR).
func (h *h2conn) avail(s *h2Stream) int {
	if !h.gotPreface {
		return 0
	}
	n := min(s.sendWin, h.connSend, int64(h.maxFrameSend))
	if n < 0 {
		return 0
	}
	return int(n)
}

// sendBody sends what the windows allow of a body given with its request;
// the rest waits in sendq for WINDOW_UPDATEs.
func (h *h2conn) sendBody(s *h2Stream) {
	for len(s.body) > 0 {
		n := min(len(s.body), h.avail(s))
		if n == 0 {
			if !s.queued {
				s.queued = true
				h.sendq = append(h.sendq, s)
			}
			h.windowWait(s)
			return
		}
		h.windowMoved(s)
		last := n == len(s.body) && (s.pipe == nil || !s.pipe.open)
		h.writeData(s.id, last, s.body[:n])
		s.body = s.body[n:]
		s.sendWin -= int64(n)
		h.connSend -= int64(n)
		if last {
			s.body = nil
			s.localFin = true
			h.unqueue(s)
			h.maybeClose(s)
		}
	}
	if s.pipe != nil {
		h.unqueue(s)
		h.c.wincond.Broadcast() // a pipe's writer may wait for the body to drain
	}
}

func (h *h2conn) unqueue(s *h2Stream) {
	if !s.queued {
		return
	}
	s.queued = false
	for i, x := range h.sendq {
		if x == s {
			h.sendq = append(h.sendq[:i], h.sendq[i+1:]...)
			break
		}
	}
}

// flushBodies sends queued request bodies after the windows grew.
func (h *h2conn) flushBodies() {
	if len(h.sendq) == 0 {
		return
	}
	q := append([]*h2Stream(nil), h.sendq...)
	for _, s := range q {
		if h.connSend <= 0 {
			break
		}
		if h.streams[s.id] == s {
			h.sendBody(s)
		}
	}
}

func (h *h2conn) live() bool {
	c := h.c
	return c.proto == h && !h.dead && h.fatal == nil && !c.wclosed && c.werr == nil
}

// data sends a piece of a streamed body, blocking the caller (the lock
// released) while the stream's or the connection's window is closed.
func (h *h2conn) data(ref uint64, p []byte, fin bool) error {
	c := h.c
	s := h.refs[ref]
	for s == nil {
		if !h.isWaiting(ref) {
			return fmt.Errorf("%w: stream %d is not sending a body", ErrNoStream, ref)
		}
		// Queued for a stream slot (wait_for_stream_slot): wait for it.
		c.wincond.Wait()
		if !h.live() {
			return fmt.Errorf("%w: the connection went down while the request waited for a stream slot", ErrClosed)
		}
		s = h.refs[ref]
	}
	if s.pushed || !s.streaming {
		return fmt.Errorf("%w: stream %d is not sending a body", ErrNoStream, ref)
	}
	if s.localFin {
		return fmt.Errorf("%w: the body of stream %d has already ended", ErrBadState, ref)
	}
	if len(p) == 0 && !fin {
		return nil
	}
	for {
		n := min(len(p), h.avail(s))
		if n > 0 || len(p) == 0 {
			h.windowMoved(s)
			last := fin && n == len(p)
			h.writeData(s.id, last, p[:n])
			s.sendWin -= int64(n)
			h.connSend -= int64(n)
			p = p[n:]
			if last {
				s.localFin = true
				h.maybeClose(s)
				return nil
			}
			if len(p) == 0 {
				return nil
			}
			if len(c.wbuf) > writeBound && !c.waitDrained() {
				return fmt.Errorf("%w: the connection went down while sending", ErrClosed)
			}
		} else {
			h.windowWait(s)
			c.wincond.Wait()
		}
		if h.refs[ref] != s && s.endWhy != "" {
			return fmt.Errorf("%w: stream %d: %s", ErrTimeout, ref, strings.TrimPrefix(s.endWhy, "timeout: "))
		}
		if !h.live() {
			return fmt.Errorf("%w: the connection went down while the body waited for the server's flow-control window", ErrClosed)
		}
		if h.refs[ref] != s {
			return fmt.Errorf("%w: stream %d ended while its body was being sent", ErrNoStream, ref)
		}
	}
}

func (h *h2conn) isWaiting(ref uint64) bool {
	for _, r := range h.waiting {
		if r.ref == ref {
			return true
		}
	}
	return false
}

// dequeue opens waiting requests while there are slots.
func (h *h2conn) dequeue() {
	for len(h.waiting) > 0 && h.slotFree() && !h.goawayRecv && !h.goawaySent && h.fatal == nil {
		r := h.waiting[0]
		h.waiting[0] = nil
		h.waiting = h.waiting[1:]
		open := h.open
		if r.ws != nil {
			open = h.wsOpen
		} else if r.connect != nil {
			open = h.connectOpen
		}
		if err := open(r); err != nil {
			h.c.emit(&Event{Kind: EvError, Ref: r.ref, Reason: reasonOf(err)})
			if r.ws != nil {
				r.ws.fail()
			}
		}
	}
}

// ---- streams ending ----

func (h *h2conn) maybeClose(s *h2Stream) {
	if s.localFin && s.remoteFin {
		h.remove(s)
	}
}

// windowWait: s has body to send and no window for it. Past
// send_window_timeout without any, the stream is given up (reset, ERROR),
// which also releases a Data caller.
func (h *h2conn) windowWait(s *h2Stream) {
	d := h.o.SendWindowTimeout
	if d <= 0 || s.winT != nil {
		return
	}
	var t *time.Timer
	t = h.after(d, func() {
		if s.winT != t || h.streams[s.id] != s {
			return
		}
		s.winT = nil
		s.endWhy = fmt.Sprintf("timeout: the server kept the flow-control window closed for %v (http2_opts.send_window_timeout); the stream was reset", d)
		s.errored = true // told: a tunnel's child does not tell it again
		h.c.emit(&Event{Kind: EvError, Ref: s.ref, Reason: s.endWhy})
		h.reset(s, http2.ErrCodeCancel)
	})
	s.winT = t
}

// windowMoved: s could send: its wait for window is over.
func (h *h2conn) windowMoved(s *h2Stream) {
	if s.winT != nil {
		s.winT.Stop()
		s.winT = nil
	}
}

// inputTimeout: a frame, and a header block, must be whole within
// frame_timeout of its first byte (conn.go's watchStall).
func (h *h2conn) inputTimeout() (time.Duration, string, bool) {
	return h.o.FrameTimeout, "http2_opts.frame_timeout", h.hdrOn
}

// remove forgets a stream: its slot frees, blocked senders wake up.
func (h *h2conn) remove(s *h2Stream) {
	if h.streams[s.id] != s {
		return
	}
	h.windowMoved(s)
	delete(h.streams, s.id)
	delete(h.refs, s.ref)
	if len(h.streams) == 0 {
		// Idle: the maps, the decoding buffer, the encoder and the Framer
		// go, made again on demand, and the reader may park (parkOK; issue
		// 16, W5). Not after a busy spell: a connection with 100 streams in
		// flight, all done before the host asks for more, would make them
		// all again every hundred requests; it keeps them, as it did.
		h.busy, h.busyHigh = h.busyHigh > h2LightStreams, 0
		if !h.busy {
			h.streams, h.refs, h.dFields = nil, nil, nil
			h.dropEncoder()
			h.fr = nil
		}
	}
	if s.pipe != nil { // a tunnel's or a WebSocket's: its user lets go (pipe_h2.go)
		// The stream's own events (its ERROR) reach the queue first: the
		// user (a tunnel's child connection) runs on its own goroutine and
		// reports its streams' end as soon as it is told, while this
		// connection's events of the frame being handled wait in its batch.
		if h.c.batching {
			h.c.flushEvents()
			h.c.batching = true
		}
		s.pipe.user.gone("closed: the tunnel's stream ended")
	} else if s.ws != nil { // an upgrade not answered
		s.ws.fail()
	}
	if !h.holdRemoved(s) && s.held > 0 {
		if h.lingerHeld == nil {
			h.lingerHeld = map[uint64]int{}
		}
		h.lingerHeld[s.ref] += s.held
		s.held = 0
	}
	if s.pushed {
		h.activePush--
	} else {
		h.activeLocal--
	}
	h.unqueue(s)
	h.c.wincond.Broadcast()
	h.dequeue()
	h.checkIdle()
}

// reset sends RST_STREAM and forgets the stream; its late frames are
// tolerated.
func (h *h2conn) reset(s *h2Stream, code http2.ErrCode) {
	h.framer().WriteRSTStream(s.id, code)
	h.lingerAdd(s.id)
	h.remove(s)
}

func (h *h2conn) lingerAdd(id uint32) {
	if h.linger == nil {
		h.linger = make([]uint32, h2LingerStreams)
	}
	h.linger[h.lingerAt] = id
	h.lingerAt = (h.lingerAt + 1) % len(h.linger)
}

func (h *h2conn) lingering(id uint32) bool {
	for _, x := range h.linger {
		if x == id {
			return true
		}
	}
	return false
}

// streamError resets a stream for a fault of the server's and tells the
// owner.
func (h *h2conn) streamError(s *h2Stream, code http2.ErrCode, why string) {
	s.errored = true
	h.c.emit(&Event{Kind: EvError, Ref: s.ref, Reason: fmt.Sprintf("stream_error: %s: %s", code, why)})
	h.reset(s, code)
}

// checkIdle: when nothing is left in flight on a connection that is going
// away, the reader is woken so the connection closes (a GOAWAY received:
// "normal"; a shutdown: conn's own check).
func (h *h2conn) checkIdle() {
	if !h.idle() || h.fatal != nil {
		return
	}
	if h.goawayRecv {
		h.fatal = errCloseNormal
		h.wakeReader()
	} else if h.c.state == stateClosing {
		h.wakeReader()
	}
}

func (h *h2conn) cancel(ref uint64) error {
	for i, r := range h.waiting {
		if r.ref == ref {
			h.waiting = append(h.waiting[:i], h.waiting[i+1:]...)
			h.c.wincond.Broadcast()
			h.checkIdle()
			return nil
		}
	}
	s := h.refs[ref]
	if s == nil {
		return nil
	}
	delete(h.c.replyTo, ref)
	s.errored = true
	h.reset(s, http2.ErrCodeCancel)
	return nil
}

func (h *h2conn) updateFlow(ref uint64, n int) error {
	s := h.refs[ref]
	if s == nil || s.flow < 0 {
		return nil
	}
	was := s.flow
	s.flow += n
	if was <= 0 && s.flow > 0 {
		h.streamEnsure(s)
	}
	return nil
}

func (h *h2conn) paused() bool { return false }

// down: every stream dies with the connection; requests still waiting for
// a slot were never sent and go back to the connection's queue.
func (h *h2conn) down() []uint64 {
	h.dead = true
	h.stopTimers()
	ss := make([]*h2Stream, 0, len(h.streams))
	for _, s := range h.streams {
		ss = append(ss, s)
	}
	sortStreams(ss)
	killed := make([]uint64, len(ss))
	for i, s := range ss {
		killed[i] = s.ref
		if s.tun != nil { // in DOWN's killed list: reported
			s.errored = true
			h.tunnelGone(s, "closed: the connection to the proxy went down")
		}
	}
	h.c.pending = append(h.waiting, h.c.pending...)
	h.waiting = nil
	h.streams, h.refs, h.sendq = map[uint32]*h2Stream{}, map[uint64]*h2Stream{}, nil
	h.c.wincond.Broadcast()
	return killed
}

// shutdown: GOAWAY NO_ERROR; streams in flight finish within
// closing_timeout; pushes are refused from now on.
func (h *h2conn) shutdown() time.Duration {
	if !h.goawaySent {
		h.framer().WriteGoAway(h.lastPushID, http2.ErrCodeNo, nil)
		h.goawaySent = true
	}
	for _, r := range h.waiting {
		h.c.emit(&Event{Kind: EvError, Ref: r.ref, Reason: "closing"})
	}
	h.waiting = nil
	h.c.wincond.Broadcast()
	return h.o.ClosingTimeout
}

func (h *h2conn) idle() bool { return len(h.streams) == 0 && len(h.waiting) == 0 }

func (h *h2conn) streamInfo(ref uint64) (StreamInfo, bool) {
	if s := h.refs[ref]; s != nil {
		return StreamInfo{State: "running", Method: s.method, Path: s.path, Flow: s.flow}, true
	}
	for _, r := range h.waiting {
		if r.ref == ref {
			return StreamInfo{State: "queued", Method: r.Method, Path: r.Path, Flow: -1}, true
		}
	}
	return StreamInfo{}, false
}

func (h *h2conn) eof() error {
	h.stopTimers()
	return h.fatal
}

// track files a new stream by id and ref. The maps are made for the first
// stream and dropped with the last (remove): an idle connection keeps no
// map storage (issue 16, W5).
func (h *h2conn) track(id uint32, s *h2Stream) {
	if h.streams == nil {
		h.streams, h.refs = map[uint32]*h2Stream{}, map[uint64]*h2Stream{}
	}
	h.streams[id] = s
	h.refs[s.ref] = s
	h.busyHigh = max(h.busyHigh, len(h.streams))
}

// h2LightStreams: an idle connection whose last busy spell had at most
// this many streams at once lets its per-stream state go (remove).
const h2LightStreams = 8

// parkOK: the reader may park while idle (Conn.parkable), unless the
// connection is between spells of many streams at once.
func (h *h2conn) parkOK() bool { return !h.busy }

// ping sends a user PING (Conn.Ping); its ack is NOTIFY "ping_ack" with
// ref. Payloads 0..9999 are Gun's (0: keepalive); user pings use 10000 up.
func (h *h2conn) ping(ref uint64) error {
	if h.fatal != nil {
		return fmt.Errorf("%w: the connection is closing", ErrClosed)
	}
	if len(h.userPings) >= h2MaxUserPings {
		return fmt.Errorf("%w: %d pings are still waiting for their ack", ErrBadState, len(h.userPings))
	}
	h.pingSeq++
	payload := 9999 + h.pingSeq
	if h.userPings == nil {
		h.userPings = map[uint64]uint64{}
	}
	h.userPings[payload] = ref
	var b [8]byte
	for i := range b {
		b[i] = byte(payload >> (56 - 8*i))
	}
	h.framer().WritePing(false, b)
	return nil
}

// ---- flow control toward the server ----

// consumed: the host took n bytes of DATA of stream ref.
func (h *h2conn) consumed(ref uint64, n int) {
	if s := h.refs[ref]; s != nil && s.held >= n {
		s.held -= n
		h.connHeld -= n
		h.streamEnsure(s)
		h.connEnsure()
		return
	}
	if l, ok := h.lingerHeld[ref]; ok {
		n = min(n, l)
		if l -= n; l <= 0 {
			if delete(h.lingerHeld, ref); len(h.lingerHeld) == 0 && len(h.streams) == 0 && !h.busy {
				h.lingerHeld = nil // idle and none held: its storage goes (W5); a busy connection keeps it
			}
		} else {
			h.lingerHeld[ref] = l
		}
		h.connHeld -= n
		h.connEnsure()
	}
}

// connEnsure is cow_http2_machine:ensure_window for the connection, with
// the bytes the host still holds taken off the window we want.
func (h *h2conn) connEnsure() {
	if h.fatal != nil || h.dead {
		return
	}
	inc := h2Increment(h.connRecv, int64(h.o.InitialConnectionWindowSize)-int64(h.connHeld),
		h.o.ConnectionWindowUpdateThreshold, h.o.ConnectionWindowMarginSize, h.o.MaxConnectionWindowSize)
	if inc > 0 {
		h.framer().WriteWindowUpdate(0, uint32(inc))
		h.connRecv += inc
	}
}

func (h *h2conn) streamEnsure(s *h2Stream) {
	if h.fatal != nil || h.dead || s.remoteFin || s.flow == 0 {
		return
	}
	inc := h2Increment(s.recvWin, int64(h.o.InitialStreamWindowSize)-int64(s.held),
		h.o.StreamWindowUpdateThreshold, h.o.StreamWindowMarginSize, h.o.MaxStreamWindowSize)
	if inc > 0 {
		h.framer().WriteWindowUpdate(s.id, uint32(inc))
		s.recvWin += inc
	}
}

// h2Increment: no update while the window is above the threshold or
// already covers size; else bring it to size + margin, capped at max.
func h2Increment(window, size int64, threshold, margin, maxWin uint32) int64 {
	if size <= 0 || size <= window || window > int64(threshold) {
		return 0
	}
	want := min(size+int64(margin), int64(maxWin), h2MaxWindow)
	return want - window
}
