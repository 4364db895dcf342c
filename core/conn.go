package core

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"
)

// Errors returned by Conn methods. Their text is what the C ABI hands out.
var (
	ErrClosed      = errors.New("connection is closed")
	ErrBadArg      = errors.New("invalid argument")
	ErrNoStream    = errors.New("no such stream")
	ErrNotUp       = errors.New("connection is not up")
	ErrUnsupported = errors.New("not supported by this protocol")
	ErrBadState    = errors.New("badstate")
	// ErrWouldBlock: a send that may not wait (WSSendNoWait) found the
	// output past its bound; nothing was sent.
	ErrWouldBlock = errors.New("would block")
)

// connection states, as in gun.erl
type connState uint8

const (
	stateConnecting   connState = iota // domain_lookup, connecting, tls_handshake
	stateUp                            // connected
	stateNotConnected                  // waiting to retry
	stateClosing                       // graceful shutdown or protocol closing
	stateDone                          // EXIT sent
)

var stateNames = [...]string{"connecting", "connected", "not_connected", "closing", "closed"}

var lastRef atomic.Uint64

// newRef makes a stream reference: never 0, never reused in the process.
func newRef() uint64 { return lastRef.Add(1) }

// Request is one request; Gun's request/headers/get/post/... all make one.
type Request struct {
	Method  string
	Path    string // origin-form: path and query
	Headers []Header
	Body    []byte
	// Stream: the body follows with Data calls, ending with fin (Gun's
	// gun:headers). Body must then be empty.
	Stream  bool
	ReplyTo *Queue        // nil: the connection's owner
	Timeout time.Duration // 0: none. Past it the stream gets ERROR "timeout" and is cancelled.
	Flow    int           // Gun's flow for this stream; 0: the protocol option's
	// ContentHandlers is Gun's req_opts content_handlers (sse.go); unset:
	// the protocol option's.
	ContentHandlers ContentHandlers

	ref     uint64
	timer   *time.Timer
	ws      *wsUp        // a WebSocket upgrade (WSUpgrade, conn_ws.go); nil for requests
	connect *Destination // a CONNECT (Connect, tunnel.go); nil for requests

	// Tunnel is Gun's req_opts tunnel: the ref of a CONNECT whose tunnel
	// carries the request (an HTTP/2 proxy's; on HTTP/1.1 and SOCKS the
	// connection itself became the tunnel, and 0 goes there too).
	Tunnel uint64
}

// Ref is the stream reference given to the request.
func (r *Request) Ref() uint64 { return r.ref }

// Conn is one Gun connection.
type Conn struct {
	opts     *Options // baseOpts, or a tunnel's (its transport, protocols and their options)
	baseOpts *Options // as opened
	host     string   // as given, IPv6 without brackets
	port     int
	adopted  net.Conn // OpenConn's socket, until dial takes it
	unixPath string
	tlsConf  *tls.Config // built once so the session cache survives reconnects
	tag      any
	cookies  *cookieJar // "cookie_store": nil when off
	done     chan struct{}

	mu          sync.Mutex
	rcond       sync.Cond  // the reader: budget released, flow updated, closing
	drained     sync.Cond  // API callers: output buffer drained below its bound
	wincond     *sync.Cond // API callers blocked on a protocol's send window (HTTP/2): windows grew, or the connection died. It is &drained: one cond for both (every wait rechecks its condition), 48 bytes less per connection (issue 16, W5)
	owner       *Queue
	proto       protocol
	protoNm     string // the last protocol that was up, for info
	nc          net.Conn
	wbuf        []byte
	wspare      []byte
	wrun        chan struct{} // the writer goroutine runs (started by output, gone when it is out); closed as it ends
	park        *idleResume   // the reader is parked in the idle poller (idlepoll.go); parkWoken: it must not park
	wclosed     bool
	wshut       uint8     // raw's half-close: 1 asked (after the pending output), 2 done
	state       connState // this and the one-byte fields below fill wshut's padding (issue 16, W5: the Conn fits the 768-byte size class; TestConnSizeClass)
	settled     bool      // exited and every event released
	batching    bool
	shutReq     bool // Shutdown was called
	useful      bool // the connection being served completed a response (see run)
	stallArmed  bool
	werr        error
	pending     []*Request // made while not connected, sent on UP
	held        map[uint64]*heldBody
	heldBytes   int // the bodies of pending requests (conn_held.go)
	replyTo     map[uint64]*Queue
	timers      map[uint64]*time.Timer
	budget      int    // bytes of events the host has not taken yet
	onSettled   func() // see OnSettled
	batch       []*Event
	closeReq    string // set by Close/Free: the exit reason
	cancelDial  context.CancelFunc
	kick        chan struct{} // wakes the manager while it waits to retry (made by sleep)
	closeTimer  *time.Timer
	local, peer string
	tlsInfo     *TLSInfo
	failErr     error         // failLocked: why the connection being served must go
	stall       *stallWatch   // watchStall's, made by the first partial element
	lastFailure string        // the last connect failure or DOWN reason, for AwaitUp's errors
	switchTo    *tunnelSwitch // the protocol handed the socket to a tunnel (serve, tunnel.go)
	via         []Intermediary
	origin      *tunnelOrigin // where the tunnels lead; nil: host:port
	hopRefs     []uint64      // the CONNECTs whose tunnels the socket became (Request.Tunnel may name them)
	rawRef      uint64        // raw through an HTTP/1.1 CONNECT: its byte stream is the CONNECT's ref (Gun's), not 0

	// tunnel_h2.go: a connection running in an HTTP/2 tunnel has a parent
	// (the connection carrying the stream) and the stream's ref; the root
	// keeps every tunnel under it by that ref, until it settles.
	parent  *Conn
	tunRef  uint64
	tunTC   *tunnelConn
	tunnels map[uint64]*Conn
	// nTunnels is len(tunnels), read without the lock: calls by ref (Data,
	// Await...) look for a tunnel only when there is one.
	nTunnels   atomic.Int32
	exitReason string // the EXIT's reason, once sent (AwaitUp's errors, Info)

	// trace.go: the trace events on (1<<traceID), fixed at Open (0: each
	// hook costs one test), and the streams whose response_start was emitted.
	trace     uint64
	trStarted map[uint64]bool

	// Output counters, monotonic (raw's send timeout, raw.go): bytes queued
	// by write, bytes the writer is done with (written, or dropped by a send
	// timeout), and bytes written.
	wq, wdone, wsent uint64
}

// readBudget bounds the bytes a connection may have in queues that the host
// has not taken: past it the connection stops reading its socket.
const readBudget = 16 << 20

// writeBound: API calls that write wait while this much output is pending.
const writeBound = 4 << 20

// Open starts a connection to host:port owned by q. It returns at once;
// the connection comes up (EvUp) or fails (EvExit) in the background. tag
// is the caller's, returned by Tag (the C ABI keeps its handle there); nil
// is fine. opts nil means every default.
func Open(host string, port int, opts *Options, q *Queue, tag any) (*Conn, error) {
	h := strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if h == "" || !utf8.ValidString(h) || strings.ContainsAny(h, " \t\r\n\x00/") {
		return nil, fmt.Errorf("%w: invalid host %q", ErrBadArg, host)
	}
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("%w: port %d out of range 1..65535", ErrBadArg, port)
	}
	return start(&Conn{host: h, port: port, tag: tag}, opts, q)
}

// OpenUnix starts a connection over the Unix socket at path.
func OpenUnix(path string, opts *Options, q *Queue, tag any) (*Conn, error) {
	if path == "" || !utf8.ValidString(path) || strings.ContainsRune(path, 0) {
		return nil, fmt.Errorf("%w: invalid unix socket path %q", ErrBadArg, path)
	}
	return start(&Conn{host: "localhost", unixPath: path, tag: tag}, opts, q)
}

func start(c *Conn, opts *Options, q *Queue) (*Conn, error) {
	if q == nil {
		return nil, fmt.Errorf("%w: no owner queue", ErrBadArg)
	}
	if opts == nil {
		var err error
		if opts, err = ParseOptions(nil, c.port); err != nil {
			return nil, err
		}
	}
	if err := opts.checkImplemented(); err != nil {
		return nil, err
	}
	c.opts, c.baseOpts = opts, opts
	if opts.CookieStore {
		c.cookies = newCookieJar()
	}
	if opts.Transport == "tls" {
		conf, err := opts.TLSConfig(c.host)
		if err != nil {
			return nil, err
		}
		scopeSessions(conf, c.host, c.port)
		c.tlsConf = conf
	}
	c.rcond.L, c.drained.L, c.wincond = &c.mu, &c.mu, &c.drained
	c.done = make(chan struct{})
	c.owner = q
	if !q.adopt(c) {
		return nil, ErrQueueClosed
	}
	if c.trace = opts.TraceMask; c.trace&(1<<trInit) != 0 {
		c.traceInit()
	}
	go c.run()
	return c, nil
}

// Tag is what the opener passed to Open.
func (c *Conn) Tag() any { return c.tag }

// Done is closed once the connection has sent its EXIT event.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Owner is the queue that receives the connection's events.
func (c *Conn) Owner() *Queue {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.owner
}

// authority is host[:port] for the Host header and :authority, without
// the scheme's default port, IPv6 bracketed.
func (c *Conn) authority() string {
	h, port := c.curHost(), c.curPort()
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	if (c.unixPath != "" && c.origin == nil) || (port == 80 && c.opts.Transport == "tcp") || (port == 443 && c.opts.Transport == "tls") {
		return h
	}
	return h + ":" + strconv.Itoa(port)
}

// ---- the state machine ----

func (c *Conn) run() { c.runFrom(nil) }

// idleResume is where a parked connection's reader stopped (readLoop
// returned parked): the socket and its protocol, and run's own state.
type idleResume struct {
	nc               net.Conn
	name             string
	since            time.Time
	retries, delayed int
	big              bool            // readLoop's: the reads have filled small buffers
	raw              syscall.RawConn // nc's, waited on
	tok              uint64          // its registration in the idle poller (idlepoll.go)
}

func (c *Conn) runFrom(rs *idleResume) {
	retries := c.opts.Retry
	delayed := 0 // retries that waited, for the retry policy
	if rs != nil {
		retries, delayed = rs.retries, rs.delayed
	}
	for {
		var nc net.Conn
		var name string
		var err error
		if rs == nil {
			nc, name, err = c.connect()
		}
		if err == nil {
			since := time.Now()
			var reason, exitReason string
			var parked *idleResume
			if rs != nil {
				since = rs.since
				reason, exitReason, parked = c.serveLoop(rs.nc, rs.name, nil, rs)
				rs = nil
			} else {
				reason, exitReason, parked = c.serve(nc, name)
			}
			if parked != nil {
				// The goroutine ends and the socket waits in the idle
				// poller (idlepoll.go), which starts a reader when it is
				// readable; or, when it may not park, the reader goes on.
				parked.since, parked.retries, parked.delayed = since, retries, delayed
				if c.tryPark(parked) {
					return
				}
				rs = parked
				continue
			}
			if exitReason != "" {
				c.exit(exitReason)
				return
			}
			// Gun resets the retries on every connect. Only a connection that
			// was really up does here: one that dies before it completed a
			// response and within usefulUptime counts as a failed attempt, or a
			// server failing every connection at once would be reconnected to
			// in a loop without delay.
			if c.takeUseful() || time.Since(since) >= usefulUptime {
				retries, delayed = c.opts.Retry, 0
			}
			err = errors.New(reason)
		}
		if r := c.closeRequested(); r != "" {
			c.exit(r)
			return
		}
		reason := reasonOf(err)
		c.mu.Lock()
		c.lastFailure = reason
		c.mu.Unlock()
		if retries == 0 || (isVerifyFailure(err) && !c.opts.RetryOnTLSVerifyFailure) {
			c.exit(reason)
			return
		}
		var wait time.Duration
		if retries != c.opts.Retry { // Gun retries at once after a disconnect or a first failure
			delayed++
			wait = c.opts.RetryTimeout
			if c.opts.RetryFun != nil {
				wait = c.opts.RetryFun.Delay(delayed)
			}
		}
		retries--
		if !c.sleep(wait) {
			c.exit(c.closeRequested())
			return
		}
	}
}

// usefulUptime: a connection up at least this long was really up (Gun's
// immediate retry applies after it drops), even if no response completed:
// an idle connection a server closes after its idle timeout must not use
// up the retries. A server failing connections sooner than that gets the
// retry delays and runs the retries out.
const usefulUptime = time.Second

// takeUseful says whether the connection just served completed a response
// (or an upgrade, or received a WebSocket frame), and clears the mark.
func (c *Conn) takeUseful() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	u := c.useful
	c.useful = false
	return u
}

// markUseful notes, from an event emitted, that the server did useful work.
// Called with c.mu held.
func (c *Conn) markUseful(ev *Event) {
	switch ev.Kind {
	case EvUpgrade, EvWS, EvTunnelUp:
		c.useful = true
	case EvResponse, EvData, EvTrailers, EvSSE:
		c.useful = c.useful || streamEnds(ev)
	}
}

// sleep waits d, false when Close or Shutdown interrupted it.
func (c *Conn) sleep(d time.Duration) bool {
	c.mu.Lock()
	if c.closeReq != "" || c.shutReq {
		c.mu.Unlock()
		return false
	}
	c.state = stateNotConnected
	if c.kick == nil && d > 0 {
		c.kick = make(chan struct{}, 1) // made by the first wait: most connections never retry (issue 16, W5)
	}
	kick := c.kick
	c.mu.Unlock()
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-kick:
		}
	}
	return c.closeRequested() == ""
}

func (c *Conn) closeRequested() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeReq != "" {
		return c.closeReq
	}
	if c.shutReq {
		return "shutdown"
	}
	return ""
}

// connect dials and handshakes; name is the protocol to speak.
func (c *Conn) connect() (net.Conn, string, error) {
	ctx, cancel := context.WithCancel(context.Background())
	c.mu.Lock()
	if c.closeReq != "" || c.shutReq {
		c.mu.Unlock()
		cancel()
		if c.adopted != nil { // never served: still ours to close
			c.adopted.Close()
			c.adopted = nil
		}
		return nil, "", errors.New("shutdown")
	}
	c.state = stateConnecting
	c.cancelDial = cancel
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.cancelDial = nil
		c.mu.Unlock()
		cancel()
	}()
	return dial(ctx, c)
}

// serve runs one connected socket until it ends. It returns the DOWN reason,
// or an exit reason when the connection must not reconnect. A tunnel that
// comes up on the socket (tunnel.go) replaces its transport and protocol
// without a DOWN: the loop runs again on the tunnel.
func (c *Conn) serve(nc net.Conn, name string) (downReason, exitReason string, parked *idleResume) {
	c.mu.Lock()
	if c.closeReq != "" || c.shutReq {
		c.mu.Unlock()
		nc.Close()
		return "", c.closeRequested(), nil
	}
	c.opts, c.via, c.origin, c.hopRefs, c.rawRef = c.baseOpts, nil, nil, nil, 0
	c.local, c.peer = nc.LocalAddr().String(), nc.RemoteAddr().String()
	if c.unixPath != "" {
		c.local, c.peer = "", c.unixPath
	}
	up := &Event{Kind: EvUp}
	if name == "socks" {
		var err error
		if nc, name, err = c.socksUp(nc); err != nil {
			c.mu.Lock()
			c.wclosed = true
			d, e := c.down(nc, reasonOf(err), "socks")
			return d, e, nil
		}
		c.mu.Lock()
		up = &Event{Kind: EvTunnelUp}
	}
	return c.serveLoop(nc, name, up, nil)
}

// serveLoop runs the socket (attached, then reported with up), or goes on
// with the reader of a parked connection (rs: already attached). parked is
// non-nil when the reader parked (readLoop).
func (c *Conn) serveLoop(nc net.Conn, name string, up *Event, rs *idleResume) (downReason, exitReason string, parked *idleResume) {
	var reason string
	for {
		if rs == nil {
			held := c.wrun == nil
			if held {
				c.wrun = writerHeld // attachLocked's output waits for flushFirst (idlepoll.go)
			}
			c.attachLocked(nc, name, up)
			if held {
				c.wrun = nil
				c.flushFirst(nc)
			}
			c.mu.Unlock()
		}
		var park *idleResume
		reason, park = c.readLoop(nc, rs)
		rs = nil
		if park != nil {
			park.nc, park.name = nc, name
			return "", "", park
		}

		c.mu.Lock()
		c.wclosed = true // no writer starts from now on (wakeWriter)
		c.wincond.Broadcast()
		sw := c.switchTo
		c.switchTo = nil
		if sw == nil || c.closeReq != "" || c.shutReq || c.werr != nil {
			break
		}
		// The proxy's protocol is done with the socket: once its last
		// output is out, the socket is the tunnel's.
		w := c.wrun
		c.mu.Unlock()
		if w != nil {
			<-w
		}
		tnc, tname, err := c.enterTunnel(nc, sw)
		c.mu.Lock()
		if err != nil {
			reason = reasonOf(err)
			break
		}
		c.via = append(c.via, sw.hop)
		c.hopRefs = append(c.hopRefs, sw.ref)
		c.origin = &tunnelOrigin{host: sw.host, port: sw.port}
		c.opts = sw.o
		c.traceTunnel("connect", sw, tname)
		if tname == "socks" { // a SOCKS5 proxy at the end of the tunnel (Gun: TUNNEL_UP socks, then the origin's)
			c.emit(&Event{Kind: EvTunnelUp, Ref: sw.ref, Protocol: "socks"})
			c.flushEvents()
			c.mu.Unlock()
			t2, name2, sw2, hops, err := c.socksHandshake(tnc, sw.o.Socks, sw.host, sw.port, sw.o.Transport)
			c.mu.Lock()
			if err != nil {
				reason = reasonOf(err)
				break
			}
			c.via = append(c.via, hops...)
			c.origin = &tunnelOrigin{host: sw2.host, port: sw2.port}
			c.opts = sw2.o
			c.traceTunnel("socks5", sw2, name2)
			tnc, tname = t2, name2
		}
		if tname == "raw" {
			c.rawRef = sw.ref
		}
		nc, name, up = tnc, tname, &Event{Kind: EvTunnelUp, Ref: sw.ref}
	}
	d, e := c.down(nc, reason, "")
	return d, e, nil
}

// attachLocked makes nc, speaking name, the connection's transport and
// reports it up (up: UP, or TUNNEL_UP through a tunnel); requests that
// waited go out. Called with c.mu held.
func (c *Conn) attachLocked(nc net.Conn, name string, up *Event) {
	c.nc = nc
	c.tlsInfo = nil
	if tc, ok := nc.(*tls.Conn); ok {
		st := tc.ConnectionState()
		c.tlsInfo = &TLSInfo{Version: tls.VersionName(st.Version), Cipher: tls.CipherSuiteName(st.CipherSuite),
			ALPN: st.NegotiatedProtocol, Resumed: st.DidResume}
	}
	c.wbuf, c.wclosed, c.werr = c.wbuf[:0], false, nil
	c.wshut = 0
	c.park = nil   // a new socket: its reader may park
	c.wdone = c.wq // what the last socket left unwritten is dropped (counters stay monotonic)
	c.failErr = nil
	c.clearStall()
	if p := c.proto; p != nil {
		if d, ok := p.(interface{ detach() }); ok {
			d.detach()
		}
	}
	c.proto = protocols[name](c)
	c.protoNm = c.proto.name()
	c.state = stateUp
	up.Protocol = c.protoNm
	if c.parent != nil && up.Kind == EvUp {
		c.tunnelUp(c.protoNm) // tunnel_h2.go: the parent's TUNNEL_UP
	} else {
		c.emit(up)
	}
	pending := c.pending
	c.pending = nil
	for _, r := range pending {
		c.sendLocked(r)
	}
	if refs := c.heldRefs(pending); refs != nil {
		go c.sendHeld(refs)
	}
}

// socksUp reports UP "socks" and runs the SOCKS5 handshake (tunnel.go);
// requests wait meanwhile. It returns the origin's transport and protocol.
// Called with c.mu held; returns with it released.
func (c *Conn) socksUp(nc net.Conn) (net.Conn, string, error) {
	c.nc = nc
	c.protoNm = "socks"
	if c.parent != nil { // socks through an HTTP/2 tunnel: the tunnel is up to the SOCKS proxy
		c.tunnelUp("socks")
	} else {
		c.emit(&Event{Kind: EvUp, Protocol: "socks"})
	}
	c.flushEvents()
	c.mu.Unlock()
	t, name, sw, hops, err := c.socksHandshake(nc, c.opts.Socks, c.host, c.port, c.opts.Transport)
	if err != nil {
		return nc, "", err
	}
	c.mu.Lock()
	c.via = hops
	c.origin = &tunnelOrigin{host: sw.host, port: sw.port}
	c.opts = sw.o
	c.traceTunnel("socks5", sw, name)
	c.mu.Unlock()
	return t, name, nil
}

// down ends the connection being served (c.mu held, wclosed set): the
// writer gets a moment to flush, the socket closes, the streams in flight
// are reported lost. proto names the DOWN when no protocol ran (socks).
func (c *Conn) down(nc net.Conn, reason, proto string) (downReason, exitReason string) {
	wdone := c.wrun // wclosed is set: no other writer starts
	c.mu.Unlock()
	if wdone != nil {
		// Let the writer flush what the protocol wrote last (an HTTP/2
		// GOAWAY saying why, say) before the socket closes; bounded, as the
		// peer may not be reading.
		select {
		case <-wdone:
		case <-time.After(flushOnClose):
		}
	}
	nc.Close()
	if wdone != nil {
		<-wdone
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	c.endTunnelsLocked()
	p := c.proto
	c.proto, c.nc = nil, nil
	if d, ok := p.(interface{ detach() }); ok {
		d.detach() // a protocol with goroutines of its own (ws) lets go
	}
	c.drained.Broadcast()
	if c.closeTimer != nil {
		c.closeTimer.Stop()
		c.closeTimer = nil
	}
	if c.closeReq != "" {
		return "", c.closeReq
	}
	if c.shutReq {
		return "", "shutdown"
	}
	c.batching = true
	if c.trace&(1<<trDisconnect) != 0 {
		c.traceLocked(trDisconnect, 0, 0, nil, []Header{td("reason", reason)})
	}
	var killed []uint64
	if p != nil {
		killed = p.down()
		proto = p.name()
	}
	streamReason := reason // "closed", or "closed: why" (said once, not twice)
	if reason != "closed" && !strings.HasPrefix(reason, "closed: ") {
		streamReason = "closed: " + reason
	}
	for _, ref := range killed {
		if e, ok := p.(interface{ ended(uint64) bool }); ok && e.ended(ref) {
			continue // listed in DOWN (a closed WebSocket, Gun #265) but already over
		}
		c.emit(&Event{Kind: EvError, Ref: ref, Reason: streamReason})
	}
	if c.parent == nil { // a tunnel's end is its parent's stream's (tunnelExit)
		c.emit(&Event{Kind: EvDown, Protocol: proto, Reason: reason, Killed: killed})
	}
	c.flushEvents()
	c.state = stateNotConnected
	return reason, ""
}

// flushOnClose bounds how long a closing socket waits for its last output.
const flushOnClose = time.Second

// errCloseNormal is what a protocol returns to close the connection as
// planned (a response with connection: close): DOWN's reason is "normal".
var errCloseNormal = errors.New("normal")

// readLoop reads and handles the socket until it ends, and returns the
// DOWN reason; or, when the protocol is idle and the socket has nothing to
// read, it parks the reader: it returns park (its buffer size and socket), the
// goroutine ends, and the idle poller waits for the socket (issue 16, W5;
// idlepoll.go). rs resumes a parked reader.
func (c *Conn) readLoop(nc net.Conn, rs *idleResume) (reason string, park *idleResume) {
	var raw syscall.RawConn
	if rs != nil {
		raw = rs.raw
	} else {
		raw = idleWaitable(nc)
	}
	var buf []byte
	have, big := 0, raw == nil
	if rs != nil {
		big = rs.big
	}
	for {
		var sockErr error
		if buf == nil {
			if raw != nil {
				if rs != nil {
					// Resumed: the socket was reported readable, or a
					// waker (a close, a deadline) started the reader.
					sockErr = waitReadable(raw)
					rs = nil
				} else if c.parkable(raw) {
					return "", &idleResume{big: big, raw: raw}
				} else {
					sockErr = waitReadable(raw)
				}
			}
			buf = getReadBuf(big)
		}
		var n int
		var rerr error
		if sockErr != nil {
			rerr = sockErr // the peek took the socket's pending error: it is this read's
		} else {
			n, rerr = nc.Read(buf[have:])
		}
		if have += n; have == len(buf) {
			big = true // reads fill the small buffer: big ones from now on
		}
		c.mu.Lock()
		var perr error
		progressed, waited := false, false
		for {
			if c.failErr != nil { // failLocked: the connection must go, now
				perr = c.failErr
				break
			}
			if have > 0 {
				c.batching = true
				var used int
				used, perr = c.proto.handle(buf[:have])
				c.flushEvents()
				have = copy(buf, buf[used:have])
				progressed = progressed || used > 0
			}
			if perr == nil && rerr != nil && c.werr != nil {
				// The writer failed and closed the socket: its error is why
				// the read failed (not the end of a close-delimited body).
				perr = c.werr
			}
			// After Close (or Shutdown's closing_timeout) the read fails
			// because we closed the socket (abortLocked sets wclosed): that
			// is no end of a close-delimited body.
			if perr == nil && rerr != nil {
				if !c.wclosed {
					c.batching = true
					perr = c.proto.eof()
					c.flushEvents()
				}
				if perr == nil {
					perr = rerr
				}
			}
			if perr == nil && c.state == stateClosing && c.proto.idle() {
				perr = errShutdownDone
			}
			blocked := false
			for perr == nil && c.closeReq == "" && !c.wclosed && (c.budget > readBudget || c.proto.paused()) {
				blocked, waited = true, true
				c.clearStall() // not reading: the server is not the one stalling
				c.rcond.Wait()
			}
			// Bytes left over because the flow ran out are handled as soon
			// as it is back, before reading more.
			if !blocked || have == 0 || perr != nil {
				break
			}
		}
		if perr == nil && c.closeReq != "" {
			perr = errors.New(c.closeReq)
		}
		if perr == nil && c.werr != nil {
			perr = c.werr
		}
		if perr == nil {
			c.watchStall(nc, have > 0, progressed || waited)
		}
		c.mu.Unlock()
		if perr != nil {
			return reasonOf(perr), nil
		}
		if have == len(buf) {
			// One element (a header block, say) larger than the buffer:
			// grow it; the protocol enforces its own limits.
			nb := make([]byte, max(2*len(buf), readBufBig))
			copy(nb, buf[:have])
			buf = nb
		}
		if have == 0 && raw != nil {
			// Every byte handled (protocols copy what they keep): the
			// buffer goes back until the socket is readable again.
			putReadBuf(buf)
			buf = nil
		}
	}
}

var errShutdownDone = errors.New("shutdown")

// parkable: the reader may park (readLoop) — the protocol has nothing in
// flight and the socket nothing to read. A busy connection's reader waits
// on itself: parking costs a goroutine and its stack growing again.
func (c *Conn) parkable(raw syscall.RawConn) bool {
	c.mu.Lock()
	idle := c.proto != nil && c.proto.idle() && c.failErr == nil && c.closeReq == "" && !c.wclosed
	if p, ok := c.proto.(interface{ parkOK() bool }); ok && idle {
		idle = p.parkOK()
	}
	c.mu.Unlock()
	return idle && !readableNow(raw)
}

// inputStaller is a protocol whose input elements (an HTTP/1.1 head, an
// HTTP/2 frame or header block) must arrive whole within a bound once
// their first byte has: a server sending one byte a second must not hold
// a request for ever. inputTimeout gives the bound (0: none), the option
// that sets it, and whether an element spanning several reads (an HTTP/2
// header block) is open.
type inputStaller interface {
	inputTimeout() (d time.Duration, option string, open bool)
}

// watchStall keeps the stall deadline of the element being received: set
// when one begins (partial: its first bytes wait in the read buffer, or a
// header block is open), kept while it does not complete, cleared when
// nothing is pending. fresh: an element completed this round, or reading
// paused for the host, so the clock starts again. Called with c.mu held.
func (c *Conn) watchStall(nc net.Conn, partial, fresh bool) {
	st, ok := c.proto.(inputStaller)
	if !ok {
		c.clearStall()
		return
	}
	d, option, open := st.inputTimeout()
	if d <= 0 || (!partial && !open) {
		c.clearStall()
		return
	}
	if c.stall == nil {
		c.stall = &stallWatch{}
	}
	if sw := c.stall; sw.at.IsZero() || (fresh && !open) {
		sw.at = time.Now().Add(d)
		sw.opt, sw.d = option, d
	}
	if !c.stallArmed {
		c.stallArmed = true
		c.armStall(nc, d)
	}
}

// stallWatch: the deadline of the element being received (watchStall).
// Behind a pointer, as most connections never see a partial element.
type stallWatch struct {
	at  time.Time // when the element must be whole
	opt string    // the option that bounds it
	d   time.Duration
}

// clearStall: no element is pending. Called with c.mu held.
func (c *Conn) clearStall() {
	if c.stall != nil {
		c.stall.at = time.Time{}
	}
}

// armStall checks the stall deadline after d: past it, the connection
// fails; a deadline that moved is checked again then.
func (c *Conn) armStall(nc net.Conn, d time.Duration) {
	time.AfterFunc(d, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		sw := c.stall
		if c.nc != nc || sw == nil || sw.at.IsZero() {
			c.stallArmed = false
			return
		}
		if left := time.Until(sw.at); left > 0 {
			c.armStall(nc, left)
			return
		}
		c.stallArmed = false
		c.failLocked(fmt.Errorf("timeout: the server sent the start of a response element (head, frame) but not the rest within %v (%s)", sw.d, sw.opt))
	})
}

// failLocked ends the current connection with err as DOWN's reason (then
// the retry rules apply), from outside the reader: a timer, an API call.
// Callers blocked on it (Data) are released. Called with c.mu held.
func (c *Conn) failLocked(err error) {
	if c.nc == nil {
		return
	}
	if c.failErr == nil {
		c.failErr = err
	}
	c.wclosed = true
	c.nc.SetReadDeadline(time.Now())
	c.wakeParkedLocked()
	c.rcond.Broadcast()
	c.drained.Broadcast()
	c.wincond.Broadcast()
}

// wakeWriter starts the writer goroutine when output (or raw's write
// shutdown) is queued and none runs. The writer exists only while there is
// output (issue 16, W5: an idle connection keeps no goroutine and no stack
// for it); none starts once the socket is closing (wclosed: serve and down
// then wait for the one running, c.wrun), nor after a write failed.
// Called with c.mu held.
func (c *Conn) wakeWriter() {
	if c.wrun == nil && !c.wclosed && c.werr == nil && c.nc != nil {
		c.wrun = make(chan struct{})
		go c.writeLoop(c.nc, c.wrun)
	}
}

// wbufKeep: an idle connection keeps an output buffer up to this size
// (the next burst's); bigger ones, and the spare, go.
const wbufKeep = 4 << 10

func (c *Conn) writeLoop(nc net.Conn, done chan struct{}) {
	c.mu.Lock()
	defer func() {
		c.wrun = nil
		c.mu.Unlock()
		close(done)
	}()
	for {
		if len(c.wbuf) == 0 && c.wshut == 1 && !c.wclosed {
			// Everything written before the fin is out: shut the write side.
			c.wshut = 2
			c.mu.Unlock()
			err := closeWrite(nc)
			c.mu.Lock()
			if err != nil {
				if c.werr == nil {
					c.werr = err
				}
				c.rcond.Broadcast()
				c.wakeParkedLocked()
				nc.Close()
				return
			}
			continue
		}
		if len(c.wbuf) == 0 {
			// Everything is out: the writer goes until the next output.
			c.wspare = nil
			if cap(c.wbuf) > wbufKeep {
				c.wbuf = nil
			}
			return
		}
		out := c.wbuf
		c.wbuf = c.wspare[:0]
		c.mu.Unlock()
		if t := c.opts.TCP.SendTimeout; t > 0 {
			nc.SetWriteDeadline(time.Now().Add(t))
		}
		n, err := nc.Write(out)
		c.mu.Lock()
		c.wsent += uint64(n)
		c.wdone += uint64(len(out))
		// out becomes the spare, unless too big to keep; then the spare is
		// dropped too, since it is the array c.wbuf now uses: handing it out
		// again would let the next write land in bytes being written.
		if cap(out) <= writeBound {
			c.wspare = out[:0]
		} else {
			c.wspare = nil
		}
		c.drained.Broadcast()
		if err != nil && !c.opts.TCP.SendTimeoutClose && errors.Is(err, os.ErrDeadlineExceeded) && !c.wclosed {
			// gen_tcp's send_timeout_close false (raw over TCP only, see
			// checkImplemented): the rest of out is dropped, the raw Data
			// call that queued it learns how much went out, and the
			// connection stays up.
			continue
		}
		if err != nil {
			if c.werr == nil {
				c.werr = err
				if t := c.opts.TCP.SendTimeout; t > 0 && errors.Is(err, os.ErrDeadlineExceeded) {
					// Name the bound: the server stopped reading.
					c.werr = errSendTimeout{t}
				}
			}
			c.wbuf = c.wbuf[:0]
			c.rcond.Broadcast()
			c.wakeParkedLocked()
			nc.Close() // the reader returns and the connection goes down
			return
		}
	}
}

// shutWrite asks the writer to shut down the socket's write side once the
// output queued so far is out (raw's fin). Called with c.mu held.
func (c *Conn) shutWrite() {
	if c.wshut == 0 {
		c.wshut = 1
		c.wakeWriter()
	}
}

// closeWrite is gen_tcp's shutdown(S, write): a TCP or Unix socket sends
// FIN; TLS sends close_notify (as ssl:shutdown(S, write)).
func closeWrite(nc net.Conn) error {
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return fmt.Errorf("%w: this transport cannot shut down its write side", ErrUnsupported)
}

// errSendTimeout: a write did not complete within tcp_opts.send_timeout,
// and the connection closes (send_timeout_close true).
type errSendTimeout struct{ d time.Duration }

func (e errSendTimeout) Error() string {
	return fmt.Sprintf("timeout: a send did not complete within %v (tcp_opts.send_timeout); the server is not reading", e.d)
}

// write queues bytes for the socket. Called with c.mu held, by protocols.
func (c *Conn) write(b []byte) {
	c.wbuf = append(c.wbuf, b...)
	c.wq += uint64(len(b))
	c.wakeWriter()
}

// waitDrained blocks the caller (lock held) while too much output is
// pending, so a producer can't outrun the socket. False if the socket died.
func (c *Conn) waitDrained() bool {
	nc := c.nc
	for len(c.wbuf) > writeBound && c.nc == nc && c.werr == nil && !c.wclosed {
		c.drained.Wait()
	}
	return c.nc == nc && c.werr == nil && !c.wclosed
}

// exit sends the last event. Requests queued while not connected get an
// ERROR first: they were never sent and will never be answered.
func (c *Conn) exit(reason string) {
	c.mu.Lock()
	c.batching = true
	for _, r := range c.pending {
		c.emit(&Event{Kind: EvError, Ref: r.ref, Reason: "closed: " + reason})
		c.dropHeldLocked(r.ref)
	}
	c.pending = nil
	for _, t := range c.timers {
		t.Stop()
	}
	c.timers = nil
	if c.trace&(1<<trTerminate) != 0 {
		st := "not_connected"
		if c.state == stateUp || c.state == stateClosing { // closed while up
			st = "connected"
		}
		c.traceLocked(trTerminate, 0, 0, nil, []Header{td("state", st), td("reason", reason)})
	}
	c.state = stateDone
	c.exitReason = reason
	if c.parent == nil {
		c.emit(&Event{Kind: EvExit, Reason: reason})
	}
	c.flushEvents()
	owner := c.owner
	settled := c.settleLocked()
	c.mu.Unlock()
	if c.parent != nil {
		c.tunnelExit(reason)
	}
	owner.disown(c)
	close(c.done)
	if settled != nil {
		settled()
	}
}

// ---- events ----

// emit sends an event to its stream's reply_to queue or the owner. Called
// with c.mu held.
func (c *Conn) emit(ev *Event) {
	if c.trace&trmResponse != 0 && ev.Kind != EvTrace {
		c.traceAround(ev) // the trace events it implies, before and after it
		return
	}
	c.emitEvent(ev)
}

func (c *Conn) emitEvent(ev *Event) {
	ev.Conn = c
	if ev.Ref == 0 {
		switch {
		case c.rawRef != 0 && (ev.Kind == EvData || ev.Kind == EvNotify || ev.Kind == EvError):
			ev.Ref = c.rawRef // raw through an HTTP/1.1 CONNECT (in a tunnel too): that CONNECT's
		case c.parent != nil:
			ev.Ref = c.tunRef // a tunnel's connection-wide events (raw's stream) are its CONNECT's
		}
	}
	if !c.useful {
		c.markUseful(ev)
	}
	if c.cookies != nil {
		c.storeCookies(ev)
	}
	if c.batching {
		c.batch = append(c.batch, ev)
		return
	}
	c.deliver(ev)
}

// route picks the queue of an event: its stream's reply_to, or the owner.
// A stream's last event also disarms its timeout.
func (c *Conn) route(ev *Event) *Queue {
	if ev.Ref == 0 || ev.Kind == EvTrace { // trace: the owner's, as Gun's handler runs in the connection
		if q := c.rawReplyTo(ev); q != nil {
			return q // an HTTP/1.1 upgrade to raw with reply_to (http1_upgrade.go)
		}
		return c.owner
	}
	ends := streamEnds(ev)
	if ends && c.timers != nil {
		if t, ok := c.timers[ev.Ref]; ok {
			t.Stop()
			delete(c.timers, ev.Ref)
		}
	}
	if c.replyTo != nil {
		// The entry stays until the stream's last event is taken (see
		// forgetStream): until then Await must look in that queue.
		if q, ok := c.replyTo[ev.Ref]; ok {
			return q
		}
	}
	return c.owner
}

// forgetStream drops a stream's reply_to once its last event has been taken
// or discarded. Called with c.mu held.
func (c *Conn) forgetStream(ev *Event) {
	if ev.Ref != 0 && c.replyTo != nil && streamEnds(ev) {
		delete(c.replyTo, ev.Ref)
	}
}

func (c *Conn) deliver(ev *Event) {
	ev.credit = ev.size()
	c.pushRun(c.route(ev), []*Event{ev}, ev.credit)
}

func (c *Conn) pushRun(q *Queue, evs []*Event, credit int) {
	if !c.settled && q.push(evs...) {
		c.budget += credit
		return
	}
	for _, e := range evs {
		e.credit = 0
		c.forgetStream(e)
	}
}

// flushEvents delivers the batch, one queue lock per run of events going to
// the same queue.
func (c *Conn) flushEvents() {
	c.batching = false
	b := c.batch
	var q *Queue
	start, total := 0, 0
	for i, ev := range b {
		eq := c.route(ev)
		if eq != q && i > start {
			c.pushRun(q, b[start:i], total)
			start, total = i, 0
		}
		q = eq
		ev.credit = ev.size()
		total += ev.credit
	}
	if len(b) > start {
		c.pushRun(q, b[start:], total)
	}
	clear(b)
	c.batch = b[:0]
}

func streamEnds(ev *Event) bool {
	switch ev.Kind {
	case EvResponse, EvData, EvSSE:
		return ev.Fin
	case EvTrailers, EvError:
		return true
	case EvWS:
		return ev.WSOp == WSClose // a WebSocket's last event
	}
	return false
}

// consume is called when the host takes events: their bytes leave the read
// budget, and data tells the protocol (HTTP/2 window updates).
func (c *Conn) consume(evs []*Event) {
	c.mu.Lock()
	credit := 0
	for _, ev := range evs {
		credit += ev.credit
		ev.credit = 0
		c.forgetStream(ev)
		if (ev.Kind == EvData || ev.Kind == EvSSE) && c.proto != nil && len(ev.Data) > 0 {
			c.consumedEvent(ev.Ref, ev.hold, len(ev.Data))
		}
	}
	c.uncharge(credit)
}

// uncharge takes credit off the read budget and unlocks c.mu; the
// connection may settle.
func (c *Conn) uncharge(credit int) {
	before := c.budget
	c.budget -= credit
	if before > readBudget && c.budget <= readBudget {
		c.rcond.Signal()
	}
	f := c.settleLocked()
	c.mu.Unlock()
	if f != nil {
		f()
	}
}

// settleLocked: once the connection has exited and every event it emitted
// has been released, it has settled, and the OnSettled function runs (the
// caller runs the returned function after unlocking).
func (c *Conn) settleLocked() func() {
	if c.settled || c.state != stateDone || c.budget != 0 {
		return nil
	}
	c.settled = true
	f := c.onSettled
	c.onSettled = nil
	return f
}

// OnSettled runs f once the connection has exited and the host has
// released every event it emitted (at once if that is already so). The C
// ABI frees a connection's handle then, so every event's conn stays valid.
func (c *Conn) OnSettled(f func()) {
	c.mu.Lock()
	if c.settled {
		c.mu.Unlock()
		f()
		return
	}
	c.onSettled = f
	f = c.settleLocked()
	c.mu.Unlock()
	if f != nil {
		f()
	}
}

// Credit is what a taken event holds of its connection's read budget.
func (ev *Event) Credit() int { return ev.credit }

// Taken is what the C ABI keeps of an event it copied out, to release it
// when the host frees the copy.
type Taken struct {
	Kind    EventKind
	Fin     bool
	Ref     uint64
	DataLen int
	Credit  int
	Tunnel  uint64 // Event.Tunnel: the tunnel that emitted it, 0 for the connection itself
	Hold    uint32 // Event.Hold
}

// Hold is what a copy of the event released later (Taken) gives back to
// find its stream's count of held bytes without a lookup by ref.
func (ev *Event) Hold() uint32 { return ev.hold }

// Tunnel is the ref of the HTTP/2 tunnel whose connection emitted the
// event (tunnel_h2.go), 0 when it is the connection the host opened: a
// copy of the event released later (Taken) says so, for ReleaseTaken.
func (ev *Event) Tunnel() uint64 {
	if ev.Conn == nil {
		return 0
	}
	return ev.Conn.tunRef
}

// ReleaseTaken releases events of this connection that were copied out and
// dropped (the C ABI's gm_event_free / gm_events_free): one lock for all.
// Events of its tunnels (Taken.Tunnel) go to them.
func (c *Conn) ReleaseTaken(ts ...Taken) {
	for i := range ts {
		if ts[i].Tunnel != c.tunRef {
			c.releaseTunnels(ts)
			return
		}
	}
	c.mu.Lock()
	credit := 0
	for _, t := range ts {
		if c.replyTo != nil && t.Ref != 0 {
			c.forgetStream(&Event{Kind: t.Kind, Ref: t.Ref, Fin: t.Fin})
		}
		if (t.Kind == EvData || t.Kind == EvSSE) && c.proto != nil && t.DataLen > 0 {
			c.consumedEvent(t.Ref, t.Hold, t.DataLen)
		}
		credit += t.Credit
	}
	c.uncharge(credit)
}

// Pin charges credit to the connection for a record made outside the
// queues (the C ABI's info records), so it settles only after their
// release; 0 when it has settled already.
func (c *Conn) Pin(credit int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.settled {
		return 0
	}
	c.budget += credit
	return credit
}

// ---- the API ----

// Request validates r and sends it, or queues it while not connected. It
// returns the stream reference. Invalid input is refused before anything
// is written.
func (c *Conn) Request(r *Request) (uint64, error) {
	if err := validateRequest(r); err != nil {
		return 0, err
	}
	if r.Tunnel != 0 {
		t, err := c.tunnel(r.Tunnel)
		if err != nil {
			return 0, err
		}
		tr := *r
		tr.Tunnel = 0
		return t.Request(&tr)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := checkProtoRequest(c, r); err != nil {
		return 0, err
	}
	if len(c.opts.Protocols) == 1 && c.opts.Protocols[0] == "raw" {
		return 0, fmt.Errorf("%w: a raw connection carries one byte stream, not requests: send bytes with Data on ref 0", ErrUnsupported)
	}
	switch {
	case c.state == stateDone || c.closeReq != "":
		return 0, ErrClosed
	case c.shutReq || c.state == stateClosing:
		ref := newRef()
		if r.ReplyTo != nil && r.ReplyTo != c.owner { // the error goes where the stream's events would
			if c.replyTo == nil {
				c.replyTo = map[uint64]*Queue{}
			}
			c.replyTo[ref] = r.ReplyTo
		}
		c.emit(&Event{Kind: EvError, Ref: ref, Reason: "closing"})
		return ref, nil
	}
	r.ref = newRef()
	if r.ReplyTo != nil && r.ReplyTo != c.owner {
		if c.replyTo == nil {
			c.replyTo = map[uint64]*Queue{}
		}
		c.replyTo[r.ref] = r.ReplyTo
	}
	if r.Timeout > 0 {
		c.armTimeout(r)
	}
	c.addCookies(r)
	if c.state != stateUp {
		if len(c.pending) >= c.opts.MaxPendingRequests {
			c.emit(&Event{Kind: EvError, Ref: r.ref, Reason: fmt.Sprintf(
				"too_many_pending: %d requests already wait for the connection (max_pending_requests)", len(c.pending))})
			return r.ref, nil
		}
		c.pending = append(c.pending, r)
		return r.ref, nil
	}
	c.sendLocked(r)
	return r.ref, nil
}

func (c *Conn) sendLocked(r *Request) {
	if r.ws != nil {
		c.sendWSLocked(r)
		return
	}
	if c.trace&trmRequest != 0 {
		c.traceRequest(r)
	}
	if err := c.proto.request(r); err != nil {
		c.emit(&Event{Kind: EvError, Ref: r.ref, Reason: reasonOf(err)})
	}
}

func (c *Conn) armTimeout(r *Request) {
	if c.timers == nil {
		c.timers = map[uint64]*time.Timer{}
	}
	ref := r.ref
	c.timers[ref] = time.AfterFunc(r.Timeout, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if _, ok := c.timers[ref]; !ok {
			return
		}
		delete(c.timers, ref)
		for i, p := range c.pending {
			if p.ref == ref {
				c.pending = append(c.pending[:i], c.pending[i+1:]...)
				break
			}
		}
		c.dropHeldLocked(ref)
		if c.proto != nil {
			c.proto.cancel(ref)
		}
		c.emit(&Event{Kind: EvError, Ref: ref, Reason: "timeout"})
	})
}

// Data sends a piece of a streamed request body (or, on raw connections,
// bytes). fin ends the body. It blocks while too much output is pending.
// Before UP the piece is held and goes out on UP (conn_held.go).
func (c *Conn) Data(ref uint64, p []byte, fin bool) error {
	if t := c.forRef(ref); t != c {
		return t.Data(ref, p, fin)
	}
	if t := c.rawTunnel(ref); t != nil { // raw in an HTTP/2 tunnel: its byte stream is the tunnel's ref
		return t.Data(0, p, fin)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ref != 0 && ref == c.rawRef {
		ref = 0
	}
	for {
		if c.state == stateDone || c.closeReq != "" {
			return ErrClosed
		}
		if r := c.pendingReq(ref); r != nil {
			if ok, err := c.holdLocked(r, p, fin); ok || err != nil {
				return err
			}
		} else if c.held[ref] == nil {
			break
		}
		c.drained.Wait() // past the bound, or this stream's held pieces go first
	}
	return c.sendDataLocked(ref, p, fin)
}

// sendDataLocked hands a piece to the protocol and waits for the output
// to drain below its bound.
func (c *Conn) sendDataLocked(ref uint64, p []byte, fin bool) error {
	if c.proto == nil {
		return ErrNotUp
	}
	if err := c.proto.data(ref, p, fin); err != nil {
		return err
	}
	if fin && c.trace&(1<<trRequestEnd) != 0 {
		c.traceLocked(trRequestEnd, ref, 0, nil, nil)
	}
	if !c.waitDrained() {
		if c.failErr != nil {
			return fmt.Errorf("%w: the connection went down while sending: %v", ErrClosed, c.failErr)
		}
		return fmt.Errorf("%w: the connection went down while sending", ErrClosed)
	}
	return nil
}

// Cancel silences a stream: no more events for it (Gun's cancel). HTTP/2
// resets it.
func (c *Conn) Cancel(ref uint64) error {
	if t := c.forRef(ref); t != c {
		return t.Cancel(ref)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stateDone || c.closeReq != "" {
		return ErrClosed
	}
	if c.trace&(1<<trCancel) != 0 {
		c.traceLocked(trCancel, ref, 0, nil, []Header{td("endpoint", "local"), td("reason", "cancel")})
	}
	delete(c.replyTo, ref) // a silenced stream has no last event to drop it
	c.dropHeldLocked(ref)
	for i, r := range c.pending {
		if r.ref == ref {
			c.pending = append(c.pending[:i], c.pending[i+1:]...)
			if r.ws != nil {
				r.ws.fail()
			}
			return nil
		}
	}
	if t, ok := c.timers[ref]; ok {
		t.Stop()
		delete(c.timers, ref)
	}
	if c.cookies != nil {
		delete(c.cookies.paths, ref)
	}
	if c.proto == nil {
		return ErrNoStream
	}
	return c.proto.cancel(ref)
}

// UpdateFlow adds n to a stream's flow (Gun's update_flow).
func (c *Conn) UpdateFlow(ref uint64, n int) error {
	if n <= 0 {
		return fmt.Errorf("%w: flow increment must be positive", ErrBadArg)
	}
	if t := c.forRef(ref); t != c {
		return t.UpdateFlow(ref, n)
	}
	if t := c.rawTunnel(ref); t != nil {
		return t.UpdateFlow(0, n)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ref != 0 && ref == c.rawRef {
		ref = 0
	}
	if c.state == stateDone || c.closeReq != "" {
		return ErrClosed
	}
	if c.proto == nil {
		return ErrNoStream
	}
	if p := c.wsStreamOf(ref); p != nil {
		return p.updateFlow(ref, n) // a WebSocket's flow counts messages (also over HTTP/2)
	}
	err := c.proto.updateFlow(ref, n)
	c.rcond.Signal()
	return err
}

// Close ends the connection at once (Gun's gun:close): no DOWN, then EXIT
// with reason "shutdown". Idempotent.
func (c *Conn) Close() { c.closeWith("shutdown") }

func (c *Conn) closeWith(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeReq != "" || c.state == stateDone {
		return
	}
	c.closeReq = reason
	c.abortLocked()
}

func (c *Conn) abortLocked() {
	if c.cancelDial != nil {
		c.cancelDial()
	}
	if c.nc != nil {
		c.wakeParkedLocked() // out of the idle poller before the close
		c.nc.Close()
	}
	c.wclosed = true
	c.rcond.Broadcast()
	c.drained.Broadcast()
	c.wincond.Broadcast()
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Shutdown closes gracefully (Gun's gun:shutdown): in-flight streams
// finish within closing_timeout, new requests fail with "closing", then
// EXIT "shutdown". Never reconnects.
func (c *Conn) Shutdown() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeReq != "" || c.state == stateDone {
		return ErrClosed
	}
	if c.shutReq {
		return nil
	}
	c.shutReq = true
	if c.state != stateUp {
		c.abortLocked()
		return nil
	}
	c.state = stateClosing
	timeout := c.proto.shutdown()
	if c.proto.idle() {
		c.abortLocked()
		return nil
	}
	if timeout > 0 {
		c.closeTimer = time.AfterFunc(timeout, func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.abortLocked()
		})
	}
	c.rcond.Signal()
	return nil
}

// SetOwner gives the connection to another queue (Gun's set_owner). Events
// already queued stay where they are.
func (c *Conn) SetOwner(q *Queue) error {
	if q == nil {
		return fmt.Errorf("%w: no queue", ErrBadArg)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stateDone || c.closeReq != "" {
		return ErrClosed
	}
	if c.shutReq {
		return fmt.Errorf("%w: the owner of the connection cannot be changed when the connection is shutting down", ErrBadState)
	}
	if q == c.owner {
		return nil
	}
	if !q.adopt(c) {
		return ErrQueueClosed
	}
	c.owner.disown(c)
	c.owner = q
	for _, t := range c.tunnels { // the tunnels' events follow (tunnel_h2.go)
		t.setOwner(q)
	}
	return nil
}

// Info describes the connection (Gun's gun:info).
type Info struct {
	State     string // connecting, connected, not_connected, closing, closed
	Protocol  string // the protocol in use or last used; "" before the first UP
	Transport string // tcp, tls
	Host      string
	Port      int
	Origin    string // scheme://authority
	Local     string // local address, "" when not connected
	Peer      string // peer address or unix socket path
	Reason    string // once closed: the EXIT's reason (the event may still be queued)

	TLS         *TLSInfo // the TLS session of the connection being served; nil without
	CookieStore bool     // the cookie_store option (Cookies, SetCookies)

	// Gun's origin_scheme, origin_host, origin_port: where requests go, at
	// the end of the tunnels (Intermediaries, Gun's intermediaries) when the
	// connection goes through proxies; else the host it was opened to.
	OriginScheme   string
	OriginHost     string
	OriginPort     int
	Intermediaries []Intermediary
}

// TLSInfo is what Info tells of a TLS connection.
type TLSInfo struct {
	Version string // "TLS 1.3"
	Cipher  string // "TLS_AES_128_GCM_SHA256"
	ALPN    string // "h2", "http/1.1", "" when none was agreed
	Resumed bool   // the session was resumed (see SetTLSSessionCache)
}

func (c *Conn) Info() Info {
	c.mu.Lock()
	defer c.mu.Unlock()
	scheme := "http"
	if c.opts.Transport == "tls" {
		scheme = "https"
	}
	in := Info{State: stateNames[c.state], Protocol: c.protoNm, Transport: c.opts.Transport,
		Host: c.host, Port: c.port, Origin: scheme + "://" + c.authority(), Reason: c.exitReason,
		CookieStore: c.cookies != nil, OriginScheme: scheme, OriginHost: c.curHost(), OriginPort: c.curPort(),
		Intermediaries: append([]Intermediary(nil), c.via...)}
	if c.nc != nil {
		in.Local, in.Peer = c.local, c.peer
		in.TLS = c.tlsInfo
	}
	return in
}

// StreamInfo describes one stream (Gun's gun:stream_info).
type StreamInfo struct {
	Ref      uint64
	State    string // "running" or "stopping" (cancelled, waiting for the end)
	Method   string
	Path     string
	Protocol string
	Flow     int // remaining flow, -1 when flow control is off

	// Tunnel describes the tunnel a CONNECT stream carries, once up (Gun's
	// stream_info tunnel map); nil for other streams.
	Tunnel *TunnelInfo
}

// TunnelInfo is what StreamInfo tells of a tunnel: the transport and
// protocol spoken in it, and the origin it leads to.
type TunnelInfo struct {
	Transport    string
	Protocol     string
	OriginScheme string
	OriginHost   string
	OriginPort   int
}

func (c *Conn) StreamInfo(ref uint64) (StreamInfo, error) {
	if t := c.forRef(ref); t != c {
		return t.StreamInfo(ref)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stateDone || c.closeReq != "" {
		return StreamInfo{}, ErrClosed
	}
	for _, r := range c.pending {
		if r.ref == ref {
			return StreamInfo{Ref: ref, State: "queued", Method: r.Method, Path: r.Path, Flow: -1}, nil
		}
	}
	if c.proto == nil {
		return StreamInfo{}, ErrNoStream
	}
	si, ok := c.proto.streamInfo(ref)
	if !ok {
		return StreamInfo{}, ErrNoStream
	}
	si.Ref, si.Protocol = ref, c.proto.name()
	if h, ok := c.proto.(*h2conn); ok {
		if s := h.refs[ref]; s != nil && s.tun != nil && s.tun.child != nil {
			k := s.tun.child
			c.mu.Unlock() // the child's lock is never taken under its parent's
			in := k.Info()
			c.mu.Lock()
			if in.State == "connected" {
				si.Tunnel = &TunnelInfo{Transport: in.Transport, Protocol: in.Protocol, OriginScheme: in.OriginScheme,
					OriginHost: in.OriginHost, OriginPort: in.OriginPort}
			}
		}
	}
	return si, nil
}

// AwaitUp takes this connection's next UP from its owner's queue (Gun's
// await_up), leaving other events in place. When the connection has exited
// it fails with ErrClosed and the EXIT stays queued for the owner.
func (c *Conn) AwaitUp(timeout time.Duration) (string, error) {
	ev, err := c.Owner().takeMatch(func(e *Event) matchResult {
		switch {
		case e.Conn != c:
			return skip
		case e.Kind == EvUp:
			return take
		case e.Kind == EvExit:
			return stop
		}
		return skip
	}, timeout, c.done)
	if errors.Is(err, ErrClosed) {
		// Say why: a certificate that failed verification, retries exhausted...
		c.mu.Lock()
		why := c.exitReason
		c.mu.Unlock()
		if why != "" {
			err = fmt.Errorf("%w: it exited: %s", ErrClosed, why)
		}
	}
	if err != nil {
		return "", err
	}
	if c.Owner().isDeferred() {
		releaseEvents([]*Event{ev})
	}
	return ev.Protocol, nil
}

// LastFailure is why the last connection attempt failed or the last
// connection went down ("" when none has), for messages such as
// gm_await_up's timeout.
func (c *Conn) LastFailure() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastFailure
}

// ErrTimeout: an await call ran out of time.
var ErrTimeout = errors.New("timeout")

// Await takes the next event of stream ref from the queue it goes to (its
// reply_to or the owner), or this connection's ERROR without a stream
// (Gun's await). When the connection has exited it fails with ErrClosed,
// leaving the EXIT queued.
func (c *Conn) Await(ref uint64, timeout time.Duration) (*Event, error) {
	ev, _, err := c.await(ref, timeout)
	return ev, err
}

// queueOf is the queue stream ref's events go to: its reply_to, or the
// owner (for raw's ref 0, an upgrade's reply_to).
func (c *Conn) queueOf(ref uint64) *Queue {
	c.mu.Lock()
	defer c.mu.Unlock()
	q := c.owner
	if rq, ok := c.replyTo[ref]; ok {
		q = rq
	}
	if ref == 0 {
		if rq := c.rawReplyTo(&Event{Kind: EvData}); rq != nil {
			q = rq
		}
	}
	return q
}

// await is Await, also returning the queue the event came from.
func (c *Conn) await(ref uint64, timeout time.Duration) (*Event, *Queue, error) {
	q := c.forRef(ref).queueOf(ref) // a tunnel's stream: its reply_to is the tunnel's
	ev, err := q.takeMatch(func(e *Event) matchResult {
		switch {
		case !e.Conn.under(c) || e.Kind == EvTrace: // c's events, and its tunnels' (refs are unique)
			return skip
		case e.Kind == EvExit: // first: ref 0 (raw's stream) must not take it
			return stop
		case e.Ref == ref || (e.Ref == 0 && e.Kind == EvError):
			return take
		}
		return skip
	}, timeout, c.done)
	return ev, q, err
}

// StreamError is how an await call reports a stream that ended with an
// ERROR event.
type StreamError struct{ Reason string }

func (e *StreamError) Error() string { return "stream error: " + e.Reason }

// Body is what AwaitBody collects.
type Body struct {
	Status   int // 0 when the RESPONSE had been taken before
	Headers  []Header
	Data     []byte
	Trailers []Header
}

// awaitBodyMax bounds what AwaitBody collects (GM_AWAIT_BODY_MAX in the
// header); a variable so that a test can lower it.
var awaitBodyMax = 1 << 30

// AwaitBody takes the stream's events until its end and returns the body
// (Gun's await_body, which also accepts the RESPONSE if it is still
// queued).
//
// Unlike Gun, whose timeout applies to each wait, the timeout bounds the
// whole call: a blocking C call must return within what its caller gave it,
// and with a timeout per wait a body that never ends (or trickles) would
// hold the caller, and grow its memory, for ever. Past the deadline only the
// events already queued are taken; a body larger than awaitBodyMax cancels
// the stream and fails. (The Python and Erlang bindings loop over Await
// themselves, with Gun's timeout per wait.)
func (c *Conn) AwaitBody(ref uint64, timeout time.Duration) (*Body, error) {
	b := &Body{}
	deadline := time.Now().Add(timeout)
	late := -1 // past the deadline: how many queued events may still be taken
	for {
		wait := timeout
		if timeout >= 0 {
			wait = time.Until(deadline)
			if wait <= 0 {
				wait = 0
				if late < 0 {
					late = c.forRef(ref).queueOf(ref).Len()
				}
				if late == 0 {
					return nil, ErrTimeout
				}
				late--
			}
		}
		ev, q, err := c.await(ref, wait)
		if err != nil {
			return nil, err
		}
		if q.isDeferred() { // the events end here, in the Body
			releaseEvents([]*Event{ev})
		}
		if ev.Kind == EvData && len(b.Data)+len(ev.Data) > awaitBodyMax {
			c.Cancel(ref)
			return nil, &StreamError{Reason: fmt.Sprintf("limit_reached: the body passed %d bytes, the most an await_body collects (GM_AWAIT_BODY_MAX); the stream was cancelled: read a body this large by its DATA events", awaitBodyMax)}
		}
		switch ev.Kind {
		case EvResponse:
			b.Status, b.Headers = ev.Status, ev.Headers
			if ev.Fin {
				return b, nil
			}
		case EvData:
			if b.Data == nil && ev.Fin {
				b.Data = ev.Data
			} else {
				b.Data = append(b.Data, ev.Data...)
			}
			if ev.Fin {
				return b, nil
			}
		case EvTrailers:
			b.Trailers = ev.Headers
			return b, nil
		case EvSSE:
			// Gun's await_body would wait for gun_data that never comes.
			return nil, &StreamError{Reason: "badarg: the body is delivered as SSE events (content_handlers gun_sse_h), not DATA: await the events"}
		case EvError:
			return nil, &StreamError{Reason: ev.Reason}
		}
	}
}
