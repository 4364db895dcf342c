package core

// Tunnels: Gun's gun:connect and its socks protocol. A tunnel is a byte
// stream to an origin through a proxy, on which another protocol runs.
//
// The seam: a protocol runs on a net.Conn, the connection's transport,
// and never knows what is beneath it. That transport is
//   - the socket;
//   - the socket after the proxy's answer, when a tunnel takes the whole
//     connection (this file): after the 2xx to an HTTP/1.1 CONNECT, or the
//     SOCKS5 reply, the socket carries the origin's bytes (Gun's
//     switch_protocol). serve stops the proxy's protocol, wraps the socket
//     (the bytes already read past the proxy's answer first, then TLS to
//     the origin when the destination asks for it, TLS inside TLS when the
//     proxy is reached over TLS too) and starts the origin's protocol on
//     it, reporting TUNNEL_UP instead of UP. Requests made without a
//     tunnel go to the origin from then on, as in Gun; a further CONNECT
//     nests. A reconnect starts again at the proxy, without the tunnel;
//   - one stream of an HTTP/2 connection (tunnel_h2.go): a tunnelConn,
//     whose reads are the stream's DATA and whose writes are sent as the
//     proxy's windows allow, carries a whole child connection.
// Either way TLS is crypto/tls on that net.Conn, and back-pressure is the
// transport's: a socket's buffers, or the stream's flow-control window,
// given back as the connection above reads.
//
// The HTTP/2 stream under a tunnel is an h2Pipe (pipe_h2.go), the same
// stream transport an RFC 8441 WebSocket runs on (ws_h2.go): one way of
// running something on another protocol's stream, not two. tunnelConn is
// its net.Conn face for a child connection; a WebSocket is fed by the pipe
// in place, as the socket's read loop feeds it after a 101, and its end is
// the pipe's (END_STREAM after the close handshake, the server's awaited
// at most closing_timeout; RST_STREAM at closing_timeout).

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/net/proxy"
)

// Destination is gun:connect's destination: where the proxy is asked to
// open a tunnel, and what runs in it.
type Destination struct {
	Host      string   // "host" (required)
	Port      int      // "port" (required)
	Username  string   // "username" / "password": Basic proxy-authorization
	Password  string   //
	Protocols []string // "protocols": default ["http"] on tcp, ["http2","http"] on tls
	Transport string   // "transport": "tcp" (default) | "tls"
	TLSOpts   *TLSOpts // "tls_opts": for transport tls
	// "tls_handshake_timeout"; 0 = infinity
	TLSHandshakeTimeout time.Duration

	HTTP  *HTTPOpts  // given with "http" in protocols
	HTTP2 *HTTP2Opts // given with "http2" in protocols
	Raw   *RawOpts   // given with "raw" in protocols
	Socks *SocksOpts // ["socks", {...}] in protocols: a SOCKS5 proxy at the end of the tunnel
}

// ParseDestination parses gun:connect's destination map from JSON.
func ParseDestination(raw []byte) (*Destination, error) {
	if len(raw) == 0 {
		return nil, &OptionError{Key: "destination", Msg: "required: an object with host and port"}
	}
	if !utf8.Valid(raw) {
		return nil, &OptionError{Key: "destination", Msg: "is not valid UTF-8"}
	}
	obj, err := optParseObject("", "destination", raw)
	if err != nil {
		return nil, err
	}
	d := &Destination{Transport: "tcp"}
	const path = "destination"
	var hostSet, portSet, protocolsSet, userSet, passSet bool
	var protoObj json.RawMessage
	for _, k := range obj.keys {
		f := optField{proto: path, key: k, raw: obj.vals[k]}
		var n int64
		switch k {
		case "host":
			d.Host, err = f.nonEmptyString()
			if err == nil {
				d.Host = strings.TrimSuffix(strings.TrimPrefix(d.Host, "["), "]")
				if len(d.Host) > 255 || strings.ContainsAny(d.Host, " \t\r\n\x00/@") {
					err = f.fail("must be a host name or an IP address")
				}
			}
			hostSet = true
		case "port":
			n, err = f.integer(1, 65535)
			d.Port = int(n)
			portSet = true
		case "username":
			d.Username, err = f.strict()
			if err == nil && strings.ContainsAny(d.Username, ":\r\n\x00") {
				err = f.fail("must not contain ':', CR, LF or NUL (Basic credentials)")
			}
			userSet = true
		case "password":
			d.Password, err = f.strict()
			if err == nil && strings.ContainsAny(d.Password, "\r\n\x00") {
				err = f.fail("must not contain CR, LF or NUL")
			}
			passSet = true
		case "protocols":
			var entries []optProtoEntry
			entries, err = optParseProtocols(path, k, f.raw)
			if err != nil {
				break
			}
			protocolsSet, protoObj = true, f.raw
			for _, e := range entries {
				d.Protocols = append(d.Protocols, e.name)
				switch e.name {
				case "socks":
					if e.opts == nil {
						err = f.fail("socks needs its options: [\"socks\", {\"host\": ..., \"port\": ...}]")
						break
					}
					d.Socks, err = parseSocksOpts(optJoin(path, k), e.name, e.opts)
				case "http":
					if e.opts != nil {
						d.HTTP = DefaultHTTPOpts()
						_, err = d.HTTP.check(optJoin(path, k), e.name, e.opts)
					}
				case "http2":
					if e.opts != nil {
						d.HTTP2 = DefaultHTTP2Opts()
						_, err = d.HTTP2.check(optJoin(path, k), e.name, e.opts)
					}
				case "raw":
					if e.opts != nil {
						d.Raw = DefaultRawOpts()
						_, err = d.Raw.check(optJoin(path, k), e.name, e.opts)
					}
				}
				if err != nil {
					break
				}
			}
		case "transport":
			d.Transport, err = f.enum("tcp", "tls", "ssl")
			if d.Transport == "ssl" {
				d.Transport = "tls"
			}
			if err != nil {
				err = f.fail("must be one of tcp, tls")
			}
		case "tls_opts":
			d.TLSOpts = DefaultTLSOpts()
			_, err = d.TLSOpts.check(path, k, f.raw)
		case "tls_handshake_timeout":
			d.TLSHandshakeTimeout, err = f.timeout()
		default:
			err = f.unknown("destination")
		}
		if err != nil {
			return nil, err
		}
	}
	switch {
	case !hostSet:
		return nil, &OptionError{Proto: path, Key: "host", Msg: "required"}
	case !portSet:
		return nil, &OptionError{Proto: path, Key: "port", Msg: "required"}
	case userSet != passSet:
		return nil, &OptionError{Proto: path, Key: "password", Msg: "username and password go together"}
	}
	if !protocolsSet {
		d.Protocols = optDefaultProtocols(d.Transport)
	} else if d.Transport == "tcp" && len(d.Protocols) != 1 {
		return nil, &OptionError{Proto: path, Key: "protocols", Value: optDecodeValue(protoObj),
			Msg: "must contain exactly one protocol when transport is tcp (ALPN needs tls)"}
	}
	if d.Transport == "tls" && d.TLSOpts == nil {
		d.TLSOpts = DefaultTLSOpts()
	}
	if d.TLSOpts != nil {
		d.TLSOpts.ALPN = optALPN(d.Protocols)
	}
	return d, nil
}

// authority is the CONNECT request target, host:port (RFC 9110 9.3.6).
func (d *Destination) authority() string {
	return net.JoinHostPort(d.Host, strconv.Itoa(d.Port))
}

// Intermediary is one proxy the connection goes through (Gun's
// intermediaries): type "connect" or "socks5", the proxy's host and port,
// the transport to it and the protocol spoken to it.
type Intermediary struct {
	Type      string
	Host      string
	Port      int
	Transport string
	Protocol  string
}

// tunnelSwitch is a tunnel that came up on the connection's socket: serve
// makes the socket the origin's (enterTunnel).
type tunnelSwitch struct {
	ref  uint64       // the CONNECT's stream; 0 for socks
	hop  Intermediary // the proxy just gone through
	host string       // the origin
	port int
	o    *Options // the connection's options for the origin's protocol
	tls  *tls.Config
	rest []byte // bytes the proxy's protocol read past its answer: the origin's
}

// errSwitch: the connection's protocol handed the socket over to a tunnel
// (c.switchTo says which).
var errSwitch = errors.New("switch")

// Connect asks the proxy at the other end of the connection to open a
// tunnel to d (gun:connect): a CONNECT, over HTTP/1.1 (the connection
// becomes the tunnel) or HTTP/2 (a stream becomes one, tunnel_h2.go). r gives the request's
// headers and options (Timeout, Flow, ReplyTo, ContentHandlers; nil: none);
// Connect sets its method and target. The RESPONSE comes on the returned
// stream; a 2xx is followed by TUNNEL_UP with the protocol spoken to the
// origin, and later requests go to the origin. Anything else is an ordinary
// response (+ DATA) and the connection stays the proxy's.
func (c *Conn) Connect(d *Destination, r *Request) (uint64, error) {
	if d == nil {
		return 0, fmt.Errorf("%w: no destination", ErrBadArg)
	}
	if r == nil {
		r = &Request{}
	}
	if r.Stream || len(r.Body) > 0 {
		return 0, fmt.Errorf("%w: a CONNECT request has no body (RFC 9110 9.3.6)", ErrBadArg)
	}
	if err := validateHeaderList(r.Headers); err != nil {
		return 0, err
	}
	for _, h := range r.Headers {
		switch strings.ToLower(h.Name) {
		case "content-length", "transfer-encoding":
			return 0, fmt.Errorf("%w: a CONNECT request has no body: %s is not allowed (RFC 9110 9.3.6)", ErrBadArg, h.Name)
		}
	}
	if r.Tunnel != 0 { // through a tunnel: nested
		t, err := c.tunnel(r.Tunnel)
		if err != nil {
			return 0, err
		}
		tr := *r
		tr.Tunnel = 0
		return t.Connect(d, &tr)
	}
	c.mu.Lock()
	name := c.opts.Protocols[0]
	if c.proto != nil {
		name = c.proto.name()
	}
	c.mu.Unlock()
	if name != "http" && name != "http2" {
		return 0, fmt.Errorf("%w: CONNECT needs an HTTP connection to the proxy; this one speaks %s", ErrUnsupported, name)
	}
	hs := make([]Header, 0, len(r.Headers)+2)
	if _, ok := hasHeader(r.Headers, "host"); !ok {
		hs = append(hs, Header{"host", d.authority()})
	}
	if d.Username != "" || d.Password != "" {
		if _, ok := hasHeader(r.Headers, "proxy-authorization"); !ok {
			hs = append(hs, Header{"proxy-authorization", "Basic " +
				base64.StdEncoding.EncodeToString([]byte(d.Username+":"+d.Password))})
		}
	}
	cr := *r
	cr.Method, cr.Path, cr.Headers, cr.connect = "CONNECT", d.authority(), append(hs, r.Headers...), d
	return c.Request(&cr)
}

// connectSwitch: the proxy answered s's CONNECT with a 2xx. Called by the
// HTTP/1.1 engine with c.mu held; the socket is the tunnel's from rest on.
func (c *Conn) connectSwitch(ref uint64, d *Destination, rest []byte) error {
	o, conf, err := c.tunnelOptions(d.Host, d.Port, d.Transport, d.Protocols, d.TLSOpts, d.TLSHandshakeTimeout, d.HTTP, d.HTTP2, d.Raw, d.Socks)
	if err != nil {
		return err
	}
	c.switchTo = &tunnelSwitch{ref: ref, host: d.Host, port: d.Port, o: o, tls: conf,
		rest: append([]byte(nil), rest...),
		hop:  Intermediary{Type: "connect", Host: c.curHost(), Port: c.curPort(), Transport: c.opts.Transport, Protocol: "http"}}
	return errSwitch
}

// curHost, curPort: the peer the connection speaks to now: the last
// origin reached through a tunnel, else the host it was opened to.
func (c *Conn) curHost() string {
	if c.origin != nil {
		return c.origin.host
	}
	return c.host
}

func (c *Conn) curPort() int {
	if c.origin != nil {
		return c.origin.port
	}
	return c.port
}

type tunnelOrigin struct {
	host string
	port int
}

// tunnelOptions are the connection's options for a protocol run through a
// tunnel to host:port: the destination's transport and protocols (and the
// protocols' options given with them), the rest the connection's.
func (c *Conn) tunnelOptions(host string, port int, transport string, protocols []string, tlsOpts *TLSOpts,
	hsTimeout time.Duration, h1 *HTTPOpts, h2 *HTTP2Opts, raw *RawOpts, socks *SocksOpts) (*Options, *tls.Config, error) {
	o := *c.opts
	o.Transport, o.Protocols, o.Socks = transport, protocols, socks
	o.TLSHandshakeTimeout = hsTimeout
	if h1 != nil {
		o.HTTP = *h1
	}
	if h2 != nil {
		o.HTTP2 = *h2
	}
	if raw != nil {
		o.Raw = *raw
	}
	var conf *tls.Config
	if transport == "tls" {
		var err error
		if conf, err = tlsOpts.ClientConfig(host); err != nil {
			return nil, nil, err
		}
		scopeSessions(conf, host, port)
	}
	return &o, conf, nil
}

// enterTunnel makes nc the tunnel's transport: the bytes read past the
// proxy's answer first, then TLS to the origin if asked. It returns the
// transport and the protocol to speak on it.
func (c *Conn) enterTunnel(nc net.Conn, sw *tunnelSwitch) (net.Conn, string, error) {
	var t net.Conn = nc
	if len(sw.rest) > 0 {
		t = &prefixConn{Conn: nc, rest: sw.rest}
	}
	name := sw.o.Protocols[0]
	if sw.tls == nil {
		return t, name, nil
	}
	tc := tls.Client(t, sw.tls)
	if c.trace&trmConnect != 0 {
		c.trace1(trTLSStart, 0, []Header{td("timeout", msOrInfinity(sw.o.TLSHandshakeTimeout))})
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if d := sw.o.TLSHandshakeTimeout; d > 0 {
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	c.mu.Lock()
	if c.closeReq != "" || c.shutReq {
		c.mu.Unlock()
		return nil, "", errors.New(c.closeRequested())
	}
	c.cancelDial = cancel
	c.mu.Unlock()
	err := tc.HandshakeContext(ctx)
	c.mu.Lock()
	c.cancelDial = nil
	c.mu.Unlock()
	name = alpnProtocol(tc, sw.o.Protocols)
	if c.trace&trmConnect != 0 {
		c.traceTLSEnd(tc, name, err)
	}
	if err != nil {
		return nil, "", err
	}
	return tc, name, nil
}

// traceTunnel: Gun's origin_changed, transport_changed (TLS inside the
// tunnel) and protocol_changed once a tunnel is up. c.mu held.
func (c *Conn) traceTunnel(kind string, sw *tunnelSwitch, name string) {
	if c.trace&(1<<trOriginChanged|1<<trTransportChanged|1<<trProtocolChanged) == 0 {
		return
	}
	scheme := "http"
	if sw.tls != nil {
		scheme = "https"
	}
	c.traceLocked(trOriginChanged, sw.ref, 0, nil, []Header{td("type", kind), td("origin_scheme", scheme),
		td("origin_host", sw.host), td("origin_port", strconv.Itoa(sw.port))})
	if sw.tls != nil {
		c.traceLocked(trTransportChanged, sw.ref, 0, nil, []Header{td("transport", "tls")})
	}
	c.traceLocked(trProtocolChanged, sw.ref, 0, nil, []Header{td("protocol", name)})
}

// alpnProtocol is the protocol to speak after a TLS handshake: the ALPN
// choice, or HTTP/1.1 if we offered it and the server chose none (as Gun).
func alpnProtocol(tc *tls.Conn, offered []string) string {
	switch tc.ConnectionState().NegotiatedProtocol {
	case "h2":
		return "http2"
	case "http/1.1":
		return "http"
	}
	if contains(offered, "http") {
		return "http"
	}
	return offered[0]
}

// prefixConn is a socket whose first bytes were already read.
type prefixConn struct {
	net.Conn
	rest []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.rest) > 0 {
		n := copy(b, p.rest)
		p.rest = p.rest[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// CloseWrite passes raw's half-close through to the socket.
func (p *prefixConn) CloseWrite() error { return closeWrite(p.Conn) }

// socksTimeout bounds a SOCKS5 handshake when connect_timeout is infinity:
// a proxy that accepts and never answers must not hold the connection.
const socksTimeout = 30 * time.Second

// socksHandshake runs the SOCKS5 hops of s on nc (x/net/proxy's client:
// no authentication or username/password, RFC 1928/1929), TLS to each hop
// that asks for it, and returns the origin's transport and protocol. hops
// lists the proxies gone through.
func (c *Conn) socksHandshake(nc net.Conn, s *SocksOpts, host string, port int, transport string) (t net.Conn, name string, sw *tunnelSwitch, hops []Intermediary, err error) {
	t = nc
	proto := "socks"
	for {
		var auth *proxy.Auth
		if optContains(s.Auth, "username_password") {
			auth = &proxy.Auth{User: s.Username, Password: s.Password}
		}
		// x/net's dialer "dials" the proxy through ours, which hands it the
		// connection already made; it then speaks SOCKS5 on it.
		d, derr := proxy.SOCKS5("tcp", net.JoinHostPort(host, strconv.Itoa(port)), auth, heldDialer{t})
		if derr != nil {
			return nil, "", nil, nil, derr
		}
		timeout := c.opts.ConnectTimeout
		if timeout <= 0 {
			timeout = socksTimeout
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		c.mu.Lock()
		if c.closeReq != "" || c.shutReq {
			c.mu.Unlock()
			cancel()
			return nil, "", nil, nil, errors.New(c.closeRequested())
		}
		c.cancelDial = cancel
		c.mu.Unlock()
		// The returned wrapper only adds the bound address: t stays the
		// transport (the reply was read to its last byte, nothing beyond).
		_, derr = d.(proxy.ContextDialer).DialContext(ctx, "tcp", net.JoinHostPort(s.Host, strconv.Itoa(s.Port)))
		c.mu.Lock()
		c.cancelDial = nil
		c.mu.Unlock()
		cancel()
		if derr != nil {
			// x/net puts the context's deadline on the connection: the
			// read that hits it may fail before ctx says so.
			var ne net.Error
			if ctx.Err() == context.DeadlineExceeded || errors.As(derr, &ne) && ne.Timeout() {
				return nil, "", nil, nil, fmt.Errorf("timeout: the SOCKS5 proxy did not complete its handshake within %v", timeout)
			}
			return nil, "", nil, nil, fmt.Errorf("socks: %s", strings.TrimPrefix(derr.Error(), "socks connect tcp "))
		}
		hops = append(hops, Intermediary{Type: "socks5", Host: host, Port: port, Transport: transport, Protocol: proto})
		o, conf, oerr := c.tunnelOptions(s.Host, s.Port, s.Transport, s.Protocols, s.TLSOpts, s.TLSHandshakeTimeout, s.HTTP, s.HTTP2, s.Raw, s.Socks)
		if oerr != nil {
			return nil, "", nil, nil, oerr
		}
		sw = &tunnelSwitch{host: s.Host, port: s.Port, o: o, tls: conf}
		t, name, err = c.enterTunnel(t, sw)
		if err != nil {
			return nil, "", nil, nil, err
		}
		if name != "socks" || s.Socks == nil {
			return t, name, sw, hops, nil
		}
		host, port, transport = s.Host, s.Port, s.Transport
		s = s.Socks
	}
}

// heldDialer gives x/net/proxy the connection already made to the proxy.
type heldDialer struct{ nc net.Conn }

func (h heldDialer) Dial(network, addr string) (net.Conn, error) { return h.nc, nil }

func (h heldDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return h.nc, nil
}
