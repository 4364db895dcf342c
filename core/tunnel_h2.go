package core

// CONNECT over HTTP/2 (RFC 9113 8.5): the tunnel is one stream among the
// connection's others. After the 2xx the stream is an h2Pipe (pipe_h2.go),
// the stream transport an RFC 8441 WebSocket runs on too, and its
// tunnelConn is the pipe's net.Conn face: reads are the stream's DATA and
// writes go out as the stream's DATA (as the proxy's windows allow), so a
// whole connection runs on it: a child
// Conn, adopted on the tunnelConn as gm_open_fd adopts a socket, with TLS
// to the origin when asked and any protocol (HTTP/1.1, HTTP/2, WebSocket,
// raw, a further CONNECT). This is the seam's other half: a protocol runs
// on the socket or on a stream, never knowing which.
//
// The child is the parent's as far as the host can tell: its events name
// the parent's handle (Tag), it is reached through the parent with the
// tunnel's ref (Request.Tunnel, WSOpts.Tunnel, or any ref of its streams),
// its TUNNEL_UP and the tunnel's end (ERROR on the CONNECT's ref) are the
// parent's stream events, and it neither reports UP, DOWN nor EXIT nor
// reconnects. Flow control holds end to end: the stream's window is given
// back as the child reads, and the child reads as its host takes events.
// The root connection settles only after every tunnel under it has.

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
)

// h2Tunnel is a CONNECT stream.
type h2Tunnel struct {
	d     *Destination
	tc    *tunnelConn // from the 2xx on
	child *Conn
}

// connectOpen sends a CONNECT's HEADERS (:method and :authority only, RFC
// 9113 8.5), leaving the stream open both ways.
func (h *h2conn) connectOpen(r *Request) error {
	if h.nextID > h2MaxStreamID {
		return errors.New("closed: the connection has used all its stream identifiers")
	}
	id := h.nextID
	h.nextID += 2
	h.blockStart()
	h.field(":method", "CONNECT")
	h.field(":authority", r.Path)
	for _, x := range r.Headers {
		if n := strings.ToLower(x.Name); n != "host" {
			h.field(n, x.Value)
		}
	}
	h.writeHeaderBlock(id, h.hbuf.Bytes(), false)
	s := &h2Stream{
		id: id, ref: r.ref, method: "CONNECT", path: r.Path, authority: r.Path,
		flow: -1, initFlow: -1, streaming: true, tun: &h2Tunnel{d: r.connect},
		sendWin: h.peerInitWin, recvWin: int64(h.o.InitialStreamWindowSize), clen: -1,
		handlers: r.ContentHandlers,
	}
	h.track(id, s)
	h.activeLocal++
	return nil
}

// connectResponse: the proxy's final answer to a CONNECT. A 2xx (without
// END_STREAM) makes the stream a tunnel; else it is an ordinary response.
func (h *h2conn) connectResponse(s *h2Stream, status int, endStream bool) bool {
	if status/100 != 2 || endStream {
		s.tun = nil
		return false
	}
	s.gotFinal, s.status = true, status
	h.c.emit(&Event{Kind: EvResponse, Ref: s.ref, Fin: true, Status: status, Headers: h.fields()})
	if err := h.tunnelStart(s); err != nil {
		s.errored = true
		h.streamError(s, http2.ErrCodeCancel, reasonOf(err))
	}
	return true
}

// tunnelGone: the tunnel's stream ended (reset either way, closed both
// ways, or the connection went down): its child's transport fails.
// reported: the stream's end was told the host already (ERROR, DOWN) or
// the host cancelled it; else the child tells it.
func (h *h2conn) tunnelGone(s *h2Stream, why string) {
	if tc := s.tun.tc; tc != nil {
		tc.fail(why, s.errored)
	}
}

// tunnelStart makes the child connection that runs on the stream. c.mu
// held.
func (h *h2conn) tunnelStart(s *h2Stream) error {
	c, d := h.c, s.tun.d
	o, conf, err := c.tunnelOptions(d.Host, d.Port, d.Transport, d.Protocols, d.TLSOpts, d.TLSHandshakeTimeout, d.HTTP, d.HTTP2, d.Raw, d.Socks)
	if err != nil {
		return err
	}
	o.Retry = 0 // a tunnel is not reconnected: the CONNECT would be needed again
	tc := &tunnelConn{c: c, h: h, ref: s.ref, local: c.nc.LocalAddr(), remote: tunnelAddr(d.authority())}
	tc.cond.L = &tc.mu
	s.tun.tc = tc
	tc.w = h.pipe(s, tc, true, 0) // the window is given back as the child reads
	child := &Conn{host: d.Host, port: d.Port, tag: c.tag, adopted: tc, tlsConf: conf, parent: c, tunRef: s.ref,
		opts: o, baseOpts: o, trace: c.trace, owner: c.owner}
	if c.cookies != nil {
		// A jar of its own: the parent's is kept under the parent's lock.
		// Cookies set by the origin stay in the tunnel, as its requests do.
		child.cookies = newCookieJar()
	}
	child.rcond.L, child.drained.L, child.wincond = &child.mu, &child.mu, &child.drained
	child.done = make(chan struct{})
	child.kick = make(chan struct{}, 1)
	child.tunTC = tc
	s.tun.child = child
	root := c.root()
	if root != c {
		root.mu.Lock()
	}
	if root.tunnels == nil {
		root.tunnels = map[uint64]*Conn{}
	}
	root.tunnels[s.ref] = child
	root.nTunnels.Add(1)
	root.budget++ // the root settles after the child: released in OnSettled below
	if root != c {
		root.mu.Unlock()
	}
	child.onSettled = func() {
		root.mu.Lock()
		delete(root.tunnels, child.tunRef)
		root.nTunnels.Add(-1)
		root.uncharge(1)
	}
	go child.run()
	return nil
}

// setOwner: the tunnel's events go to q, as its root's.
func (c *Conn) setOwner(q *Queue) {
	c.mu.Lock()
	c.owner = q
	c.mu.Unlock()
}

// rawTunnel is the tunnel of ref when it speaks raw: gm_data and
// gm_update_flow on the tunnel's ref are its byte stream's (Gun's).
func (c *Conn) rawTunnel(ref uint64) *Conn {
	root := c.root()
	if ref == 0 || root.nTunnels.Load() == 0 {
		return nil
	}
	root.mu.Lock()
	t := root.tunnels[ref]
	root.mu.Unlock()
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, raw := t.proto.(*rawProto); !raw {
		return nil
	}
	return t
}

// releaseTunnels is ReleaseTaken for events of several connections: each
// run goes to the tunnel that emitted it (the root keeps them until they
// settle, which needs these very releases).
func (c *Conn) releaseTunnels(ts []Taken) {
	root := c.root()
	for len(ts) > 0 {
		n := 1
		for n < len(ts) && ts[n].Tunnel == ts[0].Tunnel {
			n++
		}
		t := root
		if id := ts[0].Tunnel; id != 0 {
			root.mu.Lock()
			t = root.tunnels[id]
			root.mu.Unlock()
		}
		if t != nil {
			t.ReleaseTaken(ts[:n]...)
		}
		ts = ts[n:]
	}
}

// root is the connection the host opened, above any tunnels.
func (c *Conn) root() *Conn {
	for c.parent != nil {
		c = c.parent
	}
	return c
}

// children are the tunnels running on c's streams (c.mu held).
func (c *Conn) childrenLocked() []*Conn {
	h, ok := c.proto.(*h2conn)
	if !ok {
		return nil
	}
	var out []*Conn
	for _, s := range h.streams {
		if s.tun != nil && s.tun.child != nil {
			out = append(out, s.tun.child)
		}
	}
	return out
}

// tunnel is the connection that runs in the tunnel ref: a child on an
// HTTP/2 stream, or c itself when ref is the HTTP/1.1 or SOCKS tunnel the
// connection became.
func (c *Conn) tunnel(ref uint64) (*Conn, error) {
	root := c.root()
	root.mu.Lock()
	t := root.tunnels[ref]
	var ts []*Conn
	if t == nil {
		for _, x := range root.tunnels {
			ts = append(ts, x)
		}
	}
	root.mu.Unlock()
	if t != nil {
		// Registered until it settles (its events released): a tunnel whose
		// stream ended, or whose connection is ending, is no tunnel any more.
		if t.tunTC.ended() {
			return nil, fmt.Errorf("%w: tunnel %d has ended", ErrNoStream, ref)
		}
		t.mu.Lock()
		gone := t.state == stateDone || t.closeReq != ""
		t.mu.Unlock()
		if gone {
			return nil, fmt.Errorf("%w: tunnel %d has ended", ErrNoStream, ref)
		}
		return t, nil
	}
	// An HTTP/1.1 CONNECT made inside an HTTP/2 tunnel: that tunnel's
	// connection became it, so its ref names that connection (Gun's
	// tunnel => [H2Ref, H1Ref]). A child's lock is never taken under the
	// root's.
	for _, x := range ts {
		if x != c && x.hasHop(ref) {
			return x, nil
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, hop := range c.hopRefs {
		if hop == ref {
			return c, nil
		}
	}
	return nil, fmt.Errorf("%w: %d is not a tunnel of this connection (a CONNECT stream answered 2xx)", ErrNoStream, ref)
}

// hasHop: ref is a CONNECT whose tunnel c's transport became.
func (c *Conn) hasHop(ref uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, hop := range c.hopRefs {
		if hop == ref {
			return true
		}
	}
	return false
}

// forRef is the connection that carries stream ref: c, or a tunnel under
// it whose streams include ref. A tunnel's own CONNECT stream is its
// parent's.
func (c *Conn) forRef(ref uint64) *Conn {
	root := c.root()
	if root.nTunnels.Load() == 0 { // the usual case: no lock taken on the API's hot paths
		return c
	}
	root.mu.Lock()
	n := len(root.tunnels)
	var ts []*Conn
	if n > 0 {
		ts = make([]*Conn, 0, n)
		for _, t := range root.tunnels {
			ts = append(ts, t)
		}
	}
	root.mu.Unlock()
	for _, t := range ts {
		if t.knows(ref) {
			return t
		}
	}
	return c
}

// knows: ref is a stream of c (in flight, waiting, or with a reply_to).
func (c *Conn) knows(ref uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ref != 0 && ref == c.rawRef { // raw through an HTTP/1.1 CONNECT made in the tunnel
		return true
	}
	if c.proto != nil {
		if _, ok := c.proto.streamInfo(ref); ok {
			return true
		}
	}
	for _, r := range c.pending {
		if r.ref == ref {
			return true
		}
	}
	_, ok := c.replyTo[ref]
	return ok
}

// under: c is t or runs in a tunnel under t.
func (c *Conn) under(t *Conn) bool {
	for ; c != nil; c = c.parent {
		if c == t {
			return true
		}
	}
	return false
}

// endTunnelsLocked ends the tunnels on c's streams as c goes down, and
// waits for them to be over, so that their streams' ERRORs come before
// c's DOWN or EXIT (a connection's last event). c.mu held; released while
// waiting.
func (c *Conn) endTunnelsLocked() {
	kids := c.childrenLocked()
	if len(kids) == 0 {
		return
	}
	for _, k := range kids {
		k.tunTC.fail("closed: the connection to the proxy went down", true)
	}
	c.mu.Unlock()
	deadline := time.NewTimer(flushOnClose + time.Second)
	defer deadline.Stop()
wait:
	for _, k := range kids {
		select {
		case <-k.done:
		case <-deadline.C: // not expected: a tunnel's goroutines end with its transport
			break wait
		}
	}
	c.mu.Lock()
}

// tunnelUp reports the child up as its parent's TUNNEL_UP. c.mu held (the
// child's; the parent's is taken after it, never the other way).
func (c *Conn) tunnelUp(protocol string) {
	p := c.parent
	p.mu.Lock()
	p.emit(&Event{Kind: EvTunnelUp, Ref: c.tunRef, Protocol: protocol})
	if !p.batching {
		p.flushEvents()
	}
	p.mu.Unlock()
}

// tunnelExit: the child ended (its transport failed or closed, or TLS to
// the origin failed). Unless the parent told the host already, the tunnel's
// stream gets an ERROR with the reason. No lock held.
func (c *Conn) tunnelExit(reason string) {
	tc := c.tunTC
	if tc == nil || tc.reported() {
		return
	}
	p := c.parent
	p.mu.Lock()
	if reason == "closed" || reason == "normal" {
		reason = "closed: the tunnel ended"
	}
	p.emit(&Event{Kind: EvError, Ref: c.tunRef, Reason: reason})
	if !p.batching {
		p.flushEvents()
	}
	p.mu.Unlock()
}

// tunnelConn is the transport of a child: one HTTP/2 stream of its parent.
type tunnelConn struct {
	c      *Conn   // the parent
	h      *h2conn // the parent's HTTP/2 engine, while it is the parent's
	w      *h2Pipe // the stream it is the face of (under c.mu)
	ref    uint64
	local  net.Addr
	remote net.Addr

	mu        sync.Mutex
	cond      sync.Cond
	in        []byte
	eof       bool   // END_STREAM received
	err       string // the stream ended: why
	told      bool   // its end was reported by the parent
	closed    bool
	rdeadline time.Time
	rtimer    *time.Timer
}

type tunnelAddr string

func (a tunnelAddr) Network() string { return "tunnel" }
func (a tunnelAddr) String() string  { return string(a) }

// handle (pipeUser): the stream's bytes wait for the child's reads, which
// give their window back (keep). c.mu held.
func (t *tunnelConn) handle(p []byte) (int, error) {
	t.mu.Lock()
	t.in = append(t.in, p...)
	t.cond.Broadcast()
	t.mu.Unlock()
	return len(p), nil
}

// peerFin (pipeUser): the proxy ended the stream: the child sees the peer close.
func (t *tunnelConn) peerFin() {
	t.mu.Lock()
	t.eof = true
	t.cond.Broadcast()
	t.mu.Unlock()
}

// gone (pipeUser): the stream is forgotten: the child's transport fails.
func (t *tunnelConn) gone(why string) { t.fail(why, t.w.s.errored) }

func (t *tunnelConn) fail(why string, told bool) {
	t.mu.Lock()
	if t.err == "" {
		t.err, t.told = why, told
	}
	t.cond.Broadcast()
	t.mu.Unlock()
}

// ended: the stream under it ended (reset, ended both ways, or its
// connection went), or the child closed it. A nil tunnelConn has not.
func (t *tunnelConn) ended() bool {
	if t == nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err != "" || t.closed
}

func (t *tunnelConn) reported() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.told
}

var errTunnelClosed = errors.New("closed")

func (t *tunnelConn) Read(b []byte) (int, error) {
	t.mu.Lock()
	for len(t.in) == 0 && !t.eof && t.err == "" && !t.closed {
		if !t.rdeadline.IsZero() && !time.Now().Before(t.rdeadline) {
			t.mu.Unlock()
			return 0, os.ErrDeadlineExceeded
		}
		t.cond.Wait()
	}
	switch {
	case t.closed:
		t.mu.Unlock()
		return 0, net.ErrClosed
	case len(t.in) == 0 && t.err != "":
		err := t.err
		t.mu.Unlock()
		return 0, errors.New(err)
	case len(t.in) == 0:
		t.mu.Unlock()
		return 0, errTunnelEOF
	}
	n := copy(b, t.in)
	t.in = t.in[n:]
	if len(t.in) == 0 {
		t.in = nil
	}
	t.mu.Unlock()
	// The bytes are the child's now: the proxy may send more.
	c := t.c
	c.mu.Lock()
	t.w.release(n)
	c.mu.Unlock()
	return n, nil
}

// errTunnelEOF: the proxy ended the stream; the child sees the peer close.
var errTunnelEOF = fmt.Errorf("the proxy ended the tunnel: %w", io.EOF)

// Write: b goes out as the proxy's windows allow; the writer waits while
// much is pending (the pipe's back-pressure).
func (t *tunnelConn) Write(b []byte) (int, error) {
	c := t.c
	c.mu.Lock()
	n, err := t.w.write(b)
	c.mu.Unlock()
	if errors.Is(err, net.ErrClosed) {
		// The stream ended: say why as Read does (whichever of the child's
		// reader and writer sees it first gives the child's reason).
		t.mu.Lock()
		if t.err != "" && !t.closed {
			err = errors.New(t.err)
		}
		t.mu.Unlock()
	}
	return n, err
}

// CloseWrite ends the stream our way (END_STREAM after what is pending):
// raw's half-close.
func (t *tunnelConn) CloseWrite() error {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if !t.w.on() || t.w.s.localFin || !t.w.open {
		return net.ErrClosed
	}
	t.w.closeWrite(0)
	return nil
}

// Close: the child is done with the tunnel; the stream ends (END_STREAM if
// the proxy ended its side, else RST_STREAM CANCEL), unless the parent
// ended it already.
func (t *tunnelConn) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	if t.rtimer != nil {
		t.rtimer.Stop()
	}
	t.cond.Broadcast()
	ended := t.err != "" // the parent ended the stream (or is going down, and lists it in DOWN)
	t.mu.Unlock()
	if ended {
		return nil
	}
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if w := t.w; w.on() {
		if s := w.s; s.remoteFin && !s.localFin {
			w.closeWrite(0)
		} else {
			s.errored = true // the child tells the host why it ended
			w.abort()
		}
	}
	return nil
}

func (t *tunnelConn) LocalAddr() net.Addr  { return t.local }
func (t *tunnelConn) RemoteAddr() net.Addr { return t.remote }

func (t *tunnelConn) SetDeadline(d time.Time) error {
	t.SetReadDeadline(d)
	return nil
}

// SetReadDeadline wakes a blocked Read at d (the engine's stall timers and
// failLocked use it).
func (t *tunnelConn) SetReadDeadline(d time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rdeadline = d
	if t.rtimer != nil {
		t.rtimer.Stop()
		t.rtimer = nil
	}
	if !d.IsZero() {
		t.rtimer = time.AfterFunc(time.Until(d), func() {
			t.mu.Lock()
			t.cond.Broadcast()
			t.mu.Unlock()
		})
	}
	return nil
}

// SetWriteDeadline: writes wait for the proxy's windows, bounded by
// http2_opts.send_window_timeout of the parent.
func (t *tunnelConn) SetWriteDeadline(time.Time) error { return nil }
