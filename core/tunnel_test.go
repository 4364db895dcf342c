package core

// Tunnels (tunnel.go) through real proxies started on 127.0.0.1:
// tinyproxy (HTTP/1.1 CONNECT, Basic auth), microsocks (SOCKS5), and our
// scripted CONNECT proxy for refusals; origins: the test server over http,
// https, h2c and h2, WebSocket, and a raw echo.

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"gunmetal/tests/proxies"
	"gunmetal/tests/testserver"
)

func tinyproxy(t *testing.T, user, pass string) *proxies.Proc {
	t.Helper()
	p, err := proxies.Tinyproxy(user, pass)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

func microsocks(t *testing.T, user, pass string) *proxies.Proc {
	t.Helper()
	p, err := proxies.Microsocks(user, pass)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

// upTo opens a connection to 127.0.0.1:port (HTTP/1.1) and waits for UP.
func upTo(t *testing.T, port int, js string) (*Queue, *Conn) {
	t.Helper()
	q := newQueue(t)
	c := openTo(t, q, port, js)
	awaitUp(t, c)
	return q, c
}

func dest(t *testing.T, js string) *Destination {
	t.Helper()
	d, err := ParseDestination([]byte(js))
	if err != nil {
		t.Fatalf("destination %s: %v", js, err)
	}
	return d
}

// connectTo sends a CONNECT to d and expects the 2xx RESPONSE, then
// TUNNEL_UP with protocol.
func connectTo(t *testing.T, q *Queue, c *Conn, d *Destination, protocol string) uint64 {
	t.Helper()
	ref, err := c.Connect(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev := expect(t, q, EvResponse, ref)
	if ev.Status != 200 || !ev.Fin {
		t.Fatalf("CONNECT answered %s, want 200 fin", evString(ev))
	}
	ev = expect(t, q, EvTunnelUp, ref)
	if ev.Protocol != protocol {
		t.Fatalf("TUNNEL_UP %s, want protocol %s", evString(ev), protocol)
	}
	return ref
}

// originHeaders GETs /headers and returns what the origin received.
func originHeaders(t *testing.T, c *Conn) testserver.HeadersReply {
	t.Helper()
	b, err := c.AwaitBody(get(t, c, "/headers"), waitFor)
	if err != nil {
		t.Fatal(err)
	}
	var rep testserver.HeadersReply
	if b.Status != 200 || json.Unmarshal(b.Data, &rep) != nil {
		t.Fatalf("GET /headers: %d %q", b.Status, b.Data)
	}
	return rep
}

func tlsDest(host string, port int, protocols string) string {
	return fmt.Sprintf(`{"host":%q,"port":%d,"transport":"tls","protocols":%s,"tls_opts":{"cacertfile":%q}}`,
		host, port, protocols, srv.CAFile())
}

// TestConnectTinyproxy: Gun's rfc7231_SUITE connect_http/https/h2c/h2
// through tinyproxy: RESPONSE 200 fin, TUNNEL_UP with the origin's
// protocol, then requests without a tunnel go to the origin, whose Host is
// the origin's authority; info names the proxy as an intermediary.
func TestConnectTinyproxy(t *testing.T) {
	p := tinyproxy(t, "", "")
	cases := []struct {
		name, dest, protocol, proto, transport string
		port                                   int
	}{
		{"http", fmt.Sprintf(`{"host":"127.0.0.1","port":%d}`, srv.HTTPPort()), "http", "HTTP/1.1", "tcp", srv.HTTPPort()},
		{"h2c", fmt.Sprintf(`{"host":"127.0.0.1","port":%d,"protocols":["http2"]}`, srv.HTTPPort()), "http2", "HTTP/2.0", "tcp", srv.HTTPPort()},
		{"https", tlsDest("localhost", srv.TLSPort(), `["http"]`), "http", "HTTP/1.1", "tls", srv.TLSPort()},
		{"h2", tlsDest("localhost", srv.TLSPort(), `["http2","http"]`), "http2", "HTTP/2.0", "tls", srv.TLSPort()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q, c := upTo(t, p.Port, `{"retry":0}`)
			d := dest(t, tc.dest)
			connectTo(t, q, c, d, tc.protocol)
			rep := originHeaders(t, c)
			if rep.Proto != tc.proto || rep.Host != d.authority() {
				t.Fatalf("origin saw %s Host %q, want %s %q", rep.Proto, rep.Host, tc.proto, d.authority())
			}
			in := c.Info()
			want := []Intermediary{{Type: "connect", Host: "127.0.0.1", Port: p.Port, Transport: "tcp", Protocol: "http"}}
			if in.Protocol != tc.protocol || in.Transport != tc.transport || in.OriginHost != d.Host || in.OriginPort != tc.port ||
				fmt.Sprint(in.Intermediaries) != fmt.Sprint(want) {
				t.Fatalf("info %+v", in)
			}
			if tc.transport == "tls" && (in.TLS == nil || in.OriginScheme != "https") {
				t.Fatalf("info over TLS: %+v", in)
			}
		})
	}
}

// TestConnectProxyAuth: username/password become Basic
// proxy-authorization; without them tinyproxy's 407 is an ordinary
// RESPONSE (+ DATA) and no tunnel is listed.
func TestConnectProxyAuth(t *testing.T) {
	p := tinyproxy(t, "alice", "s3cret")
	q, c := upTo(t, p.Port, `{"retry":0}`)
	ref, err := c.Connect(dest(t, fmt.Sprintf(`{"host":"127.0.0.1","port":%d}`, srv.HTTPPort())), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.AwaitBody(ref, waitFor)
	if err != nil || b.Status != 407 {
		t.Fatalf("CONNECT without credentials: %v %+v", err, b)
	}
	if in := c.Info(); len(in.Intermediaries) != 0 || in.OriginPort != p.Port {
		t.Fatalf("info after a refused CONNECT: %+v", in)
	}
	// tinyproxy closes after its 407 (as many proxies do): a new connection.
	q, c = upTo(t, p.Port, `{"retry":0}`)
	connectTo(t, q, c, dest(t, fmt.Sprintf(`{"host":"127.0.0.1","port":%d,"username":"alice","password":"s3cret"}`, srv.HTTPPort())), "http")
	if rep := originHeaders(t, c); rep.Headers["proxy-authorization"] != nil {
		t.Fatalf("the origin saw proxy-authorization: %v", rep.Headers)
	}
}

// TestConnectRefusedStatuses: Gun's do_connect_failure: a 3xx, 4xx or 5xx
// is an ordinary RESPONSE; the next request goes to the proxy (our
// scripted proxy answers it 501).
func TestConnectRefusedStatuses(t *testing.T) {
	for _, status := range []int{302, 403, 500} {
		s, err := proxies.StartScripted(status)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		q, c := upTo(t, s.Port, `{"retry":0}`)
		ref, err := c.Connect(dest(t, `{"host":"localhost","port":33333,"username":"essen","password":"myrealpasswordis"}`), nil)
		if err != nil {
			t.Fatal(err)
		}
		ev := expect(t, q, EvResponse, ref)
		if ev.Status != status || !ev.Fin {
			t.Fatalf("got %s, want RESPONSE %d fin", evString(ev), status)
		}
		b, err := c.AwaitBody(get(t, c, "/proxied"), waitFor)
		if err != nil || b.Status != 501 {
			t.Fatalf("request after a refused CONNECT: %v %+v", err, b)
		}
		reqs := s.Requests()
		r := reqs[0]
		if r.Method != "CONNECT" || r.Host != "localhost:33333" || r.RequestURI != "localhost:33333" ||
			r.Header.Get("Proxy-Authorization") != "Basic "+base64.StdEncoding.EncodeToString([]byte("essen:myrealpasswordis")) || r.Header.Get("Content-Length") != "" || len(r.TransferEncoding) != 0 {
			t.Fatalf("CONNECT as received: %s %s host %s %v", r.Method, r.RequestURI, r.Host, r.Header)
		}
	}
}

// TestConnectThroughTwoProxies: Gun's connect_through_multiple_proxies:
// a CONNECT through the tunnel of another.
func TestConnectThroughTwoProxies(t *testing.T) {
	p1, p2 := tinyproxy(t, "", ""), tinyproxy(t, "", "")
	q, c := upTo(t, p1.Port, `{"retry":0}`)
	connectTo(t, q, c, dest(t, fmt.Sprintf(`{"host":"127.0.0.1","port":%d}`, p2.Port)), "http")
	connectTo(t, q, c, dest(t, tlsDest("localhost", srv.TLSPort(), `["http"]`)), "http")
	if rep := originHeaders(t, c); rep.Host != "localhost:"+strconv.Itoa(srv.TLSPort()) {
		t.Fatalf("origin Host %q", rep.Host)
	}
	in := c.Info()
	if len(in.Intermediaries) != 2 || in.Intermediaries[0].Port != p1.Port || in.Intermediaries[1].Port != p2.Port ||
		in.Intermediaries[1].Transport != "tcp" || in.Transport != "tls" {
		t.Fatalf("info: %+v", in)
	}
}

// TestConnectRequestsWait: a request made while the CONNECT waits for its
// answer goes to the origin once the tunnel is up (Gun's HTTP/1.1 switch).
func TestConnectRequestsWait(t *testing.T) {
	p := tinyproxy(t, "", "")
	q, c := upTo(t, p.Port, `{"retry":0}`)
	ref, err := c.Connect(dest(t, fmt.Sprintf(`{"host":"127.0.0.1","port":%d}`, srv.HTTPPort())), nil)
	if err != nil {
		t.Fatal(err)
	}
	g := get(t, c, "/bytes/5")
	expect(t, q, EvResponse, ref)
	expect(t, q, EvTunnelUp, ref)
	if ev := expect(t, q, EvResponse, g); ev.Status != 200 {
		t.Fatalf("request through the tunnel: %s", evString(ev))
	}
}

// TestConnectTunnelLost: the proxy goes away: DOWN, and the reconnect is
// to the proxy, without the tunnel (UP http, no intermediaries).
func TestConnectTunnelLost(t *testing.T) {
	s, err := proxies.StartScripted(200)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	q, c := upTo(t, s.Port, `{"retry":1,"retry_timeout":50}`)
	connectTo(t, q, c, dest(t, fmt.Sprintf(`{"host":"127.0.0.1","port":%d}`, srv.HTTPPort())), "http")
	slow := get(t, c, "/delay/5000")
	s.CloseConns()
	ev := expect(t, q, EvError, slow)
	ev = expect(t, q, EvDown, 0)
	if ev.Protocol != "http" || len(ev.Killed) != 1 || ev.Killed[0] != slow {
		t.Fatalf("got %s", evString(ev))
	}
	if ev := expect(t, q, EvUp, 0); ev.Protocol != "http" {
		t.Fatalf("reconnect: %s", evString(ev))
	}
	if in := c.Info(); len(in.Intermediaries) != 0 || in.OriginPort != s.Port {
		t.Fatalf("info after the reconnect: %+v", in)
	}
}

// TestConnectRaw: a raw byte stream through a CONNECT tunnel, on the
// CONNECT's ref as in Gun (raw_SUITE do_connect_raw).
func TestConnectRaw(t *testing.T) {
	e := echoServer(t)
	p := tinyproxy(t, "", "")
	q, c := upTo(t, p.Port, `{"retry":0}`)
	ref := connectTo(t, q, c, dest(t, fmt.Sprintf(`{"host":"127.0.0.1","port":%d,"protocols":["raw"]}`, e.port())), "raw")
	// Gun's do_connect_raw: the byte stream is the CONNECT's ref.
	if err := c.Data(ref, []byte("hello tunnel"), false); err != nil {
		t.Fatal(err)
	}
	var got []byte
	for len(got) < 12 {
		got = append(got, expect(t, q, EvData, ref).Data...)
	}
	if string(got) != "hello tunnel" {
		t.Fatalf("echo %q", got)
	}
}

// TestConnectWebSocket: a WebSocket upgrade through the tunnel.
func TestConnectWebSocket(t *testing.T) {
	p := tinyproxy(t, "", "")
	q, c := upTo(t, p.Port, `{"retry":0}`)
	connectTo(t, q, c, dest(t, fmt.Sprintf(`{"host":"127.0.0.1","port":%d}`, srv.HTTPPort())), "http")
	wsEcho(t, q, c, nil, "through")
}

// wsEcho upgrades to the test server's /ws echo (with opts) and checks that
// msg comes back.
func wsEcho(t *testing.T, q *Queue, c *Conn, opts *WSOpts, msg string) {
	t.Helper()
	ref, err := c.WSUpgrade("/ws", nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, q, EvUpgrade, ref)
	if err := c.WSSend(ref, []WSFrame{{Op: WSText, Data: []byte(msg)}}); err != nil {
		t.Fatal(err)
	}
	if ev := expect(t, q, EvWS, ref); string(ev.Data) != msg {
		t.Fatalf("echo %s", evString(ev))
	}
}

// TestSocks: Gun's socks_SUITE through microsocks: UP "socks", then
// TUNNEL_UP (ref 0, Gun's undefined) with the origin's protocol; with and
// without username/password, to http and https origins.
func TestSocks(t *testing.T) {
	anon, auth := microsocks(t, "", ""), microsocks(t, "bob", "hunter22")
	cases := []struct {
		name, socks, protocol string
		port                  int
	}{
		{"none/http", fmt.Sprintf(`{"host":"127.0.0.1","port":%d}`, srv.HTTPPort()), "http", anon.Port},
		{"none/h2c", fmt.Sprintf(`{"host":"127.0.0.1","port":%d,"protocols":["http2"]}`, srv.HTTPPort()), "http2", anon.Port},
		{"userpass/https", fmt.Sprintf(`{"host":"localhost","port":%d,"auth":[["username_password","bob","hunter22"]],"transport":"tls","tls_opts":{"cacertfile":%q}}`, srv.TLSPort(), srv.CAFile()), "http2", auth.Port},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := newQueue(t)
			c := openTo(t, q, tc.port, `{"retry":0,"protocols":["socks"],"socks_opts":`+tc.socks+`}`)
			if ev := expect(t, q, EvUp, 0); ev.Protocol != "socks" {
				t.Fatalf("got %s, want UP socks", evString(ev))
			}
			if ev := expect(t, q, EvTunnelUp, 0); ev.Protocol != tc.protocol || ev.Ref != 0 {
				t.Fatalf("got %s, want TUNNEL_UP %s", evString(ev), tc.protocol)
			}
			rep := originHeaders(t, c)
			if !strings.HasPrefix(rep.Host, "127.0.0.1:") && !strings.HasPrefix(rep.Host, "localhost:") {
				t.Fatalf("origin Host %q", rep.Host)
			}
			in := c.Info()
			if len(in.Intermediaries) != 1 || in.Intermediaries[0] != (Intermediary{Type: "socks5", Host: "127.0.0.1", Port: tc.port, Transport: "tcp", Protocol: "socks"}) {
				t.Fatalf("info %+v", in)
			}
		})
	}
}

// TestSocksAuthRefused: wrong credentials: DOWN "socks" with the proxy's
// refusal, then EXIT (retry 0); nothing reached the origin.
func TestSocksAuthRefused(t *testing.T) {
	p := microsocks(t, "bob", "hunter22")
	q := newQueue(t)
	c := openTo(t, q, p.Port, fmt.Sprintf(`{"retry":0,"protocols":["socks"],"socks_opts":{"host":"127.0.0.1","port":%d,"auth":[["username_password","bob","wrong"]]}}`, srv.HTTPPort()))
	// The refusal may end the connection (retry 0) before the request is
	// made: then the request is refused at once; else it waits and ends
	// with an ERROR.
	r, rerr := c.Request(&Request{Method: "GET", Path: "/"})
	if rerr != nil && !errors.Is(rerr, ErrClosed) {
		t.Fatal(rerr)
	}
	expect(t, q, EvUp, 0)
	ev := expect(t, q, EvDown, 0)
	if ev.Protocol != "socks" || !strings.HasPrefix(ev.Reason, "socks: ") {
		t.Fatalf("got %s, want DOWN socks with the refusal", evString(ev))
	}
	if rerr == nil {
		if ev := expect(t, q, EvError, r); !strings.HasPrefix(ev.Reason, "closed") {
			t.Fatalf("the waiting request: %s", evString(ev))
		}
	}
	expect(t, q, EvExit, 0)
}

// TestTunnelTrace: Gun's origin_changed, transport_changed and
// protocol_changed when a CONNECT tunnel to a TLS origin comes up (they were
// refused as options before tunnels existed), and origin_changed socks5.
func TestTunnelTrace(t *testing.T) {
	p := tinyproxy(t, "", "")
	q, c := upTo(t, p.Port, `{"retry":0,"trace":["origin_changed","transport_changed","protocol_changed"]}`)
	ref, err := c.Connect(dest(t, tlsDest("localhost", srv.TLSPort(), `["http2"]`)), nil)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, q, EvResponse, ref)
	want := []string{
		"origin_changed :type=connect :origin_scheme=https :origin_host=localhost :origin_port=" + strconv.Itoa(srv.TLSPort()),
		"transport_changed :transport=tls",
		"protocol_changed :protocol=http2",
	}
	for _, w := range want {
		ev := expect(t, q, EvTrace, ref)
		got := ev.Reason
		for _, h := range ev.Headers {
			got += " " + h.Name + "=" + h.Value
		}
		if got != w {
			t.Fatalf("trace %q, want %q", got, w)
		}
	}
	expect(t, q, EvTunnelUp, ref)

	s := microsocks(t, "", "")
	q = newQueue(t)
	openTo(t, q, s.Port, fmt.Sprintf(`{"retry":0,"trace":["origin_changed"],"protocols":["socks"],"socks_opts":{"host":"127.0.0.1","port":%d}}`, srv.HTTPPort()))
	expect(t, q, EvUp, 0)
	if ev := expect(t, q, EvTrace, 0); ev.Reason != "origin_changed" || ev.Headers[0] != td("type", "socks5") {
		t.Fatalf("got %s", evString(ev))
	}
	expect(t, q, EvTunnelUp, 0)
}

func nghttpx(t *testing.T, tls bool) *proxies.Proc {
	t.Helper()
	cert, key := "", ""
	if tls {
		cert, key = srv.CertFile(), srv.KeyFile()
	}
	p, err := proxies.Nghttpx(cert, key, tinyproxy(t, "", "").Port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

// h2Connect opens a CONNECT stream on c (HTTP/2) and expects RESPONSE 200
// then TUNNEL_UP.
func h2Connect(t *testing.T, q *Queue, c *Conn, d *Destination, tunnel uint64, protocol string) uint64 {
	t.Helper()
	ref, err := c.Connect(d, &Request{Tunnel: tunnel})
	if err != nil {
		t.Fatal(err)
	}
	ev := expect(t, q, EvResponse, ref)
	if ev.Status/100 != 2 {
		t.Fatalf("CONNECT answered %s", evString(ev))
	}
	if ev := expect(t, q, EvTunnelUp, ref); ev.Protocol != protocol {
		t.Fatalf("got %s, want TUNNEL_UP %s", evString(ev), protocol)
	}
	return ref
}

func tunnelGet(t *testing.T, c *Conn, tunnel uint64, path string) *Body {
	t.Helper()
	ref, err := c.Request(&Request{Method: "GET", Path: path, Tunnel: tunnel})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.AwaitBody(ref, waitFor)
	if err != nil {
		t.Fatalf("GET %s through tunnel %d: %v", path, tunnel, err)
	}
	return b
}

// TestConnectHTTP2Proxy: CONNECT over HTTP/2 through nghttpx (its HTTP/2
// forward-proxy mode): each tunnel is a stream; requests name it with
// Tunnel; origins over http, h2c, https and h2 (TLS inside an HTTP/2
// stream); two tunnels and a request to the proxy itself share the
// connection.
func TestConnectHTTP2Proxy(t *testing.T) {
	p := nghttpx(t, false)
	q := newQueue(t)
	c := openTo(t, q, p.Port, `{"retry":0,"protocols":["http2"]}`)
	if pr, err := c.AwaitUp(waitFor); err != nil || pr != "http2" {
		t.Fatalf("up: %q %v", pr, err)
	}
	cases := []struct {
		name, dest, protocol, proto string
	}{
		{"http", fmt.Sprintf(`{"host":"127.0.0.1","port":%d}`, srv.HTTPPort()), "http", "HTTP/1.1"},
		{"h2c", fmt.Sprintf(`{"host":"127.0.0.1","port":%d,"protocols":["http2"]}`, srv.HTTPPort()), "http2", "HTTP/2.0"},
		{"https", tlsDest("localhost", srv.TLSPort(), `["http"]`), "http", "HTTP/1.1"},
		{"h2", tlsDest("localhost", srv.TLSPort(), `["http2","http"]`), "http2", "HTTP/2.0"},
	}
	var tunnels []uint64
	for _, tc := range cases {
		d := dest(t, tc.dest)
		ref := h2Connect(t, q, c, d, 0, tc.protocol)
		tunnels = append(tunnels, ref)
		b := tunnelGet(t, c, ref, "/headers")
		var rep testserver.HeadersReply
		if b.Status != 200 || json.Unmarshal(b.Data, &rep) != nil || rep.Proto != tc.proto || rep.Host != d.authority() {
			t.Fatalf("%s: %d %s", tc.name, b.Status, b.Data)
		}
	}
	// The first tunnel still works beside the others.
	if b := tunnelGet(t, c, tunnels[0], "/bytes/1000"); len(b.Data) != 1000 {
		t.Fatalf("got %d bytes", len(b.Data))
	}
	if in := c.Info(); in.Protocol != "http2" || len(in.Intermediaries) != 0 {
		t.Fatalf("info of the proxy connection: %+v", in)
	}
}

// h2ProxyConn opens an h2c connection to a fresh nghttpx.
func h2ProxyConn(t *testing.T, js string) (*Queue, *Conn) {
	t.Helper()
	p := nghttpx(t, false)
	q := newQueue(t)
	c := openTo(t, q, p.Port, `{"retry":0,"protocols":["http2"]`+js+`}`)
	if pr, err := c.AwaitUp(waitFor); err != nil || pr != "http2" {
		t.Fatalf("up: %q %v", pr, err)
	}
	return q, c
}

// TestConnectHTTP2Flow: a body larger than the stream's window (8 MB)
// through an HTTP/2 tunnel: the window is given back as the tunnel's
// connection reads.
func TestConnectHTTP2Flow(t *testing.T) {
	q, c := h2ProxyConn(t, `,"http2_opts":{"initial_stream_window_size":65535,"initial_connection_window_size":65535}`)
	ref := h2Connect(t, q, c, dest(t, fmt.Sprintf(`{"host":"127.0.0.1","port":%d}`, srv.HTTPPort())), 0, "http")
	if b := tunnelGet(t, c, ref, "/bytes/3000000"); b.Status != 200 || len(b.Data) != 3000000 {
		t.Fatalf("got %d, %d bytes", b.Status, len(b.Data))
	}
}

// TestConnectHTTP2RawAndWS: raw bytes (on the tunnel's ref, as Gun's) and
// a WebSocket (ws_opts tunnel) through HTTP/2 tunnels.
func TestConnectHTTP2RawAndWS(t *testing.T) {
	e := echoServer(t)
	q, c := h2ProxyConn(t, "")
	raw := h2Connect(t, q, c, dest(t, fmt.Sprintf(`{"host":"127.0.0.1","port":%d,"protocols":["raw"]}`, e.port())), 0, "raw")
	if err := c.Data(raw, []byte("through h2"), false); err != nil {
		t.Fatal(err)
	}
	var got []byte
	for len(got) < 10 {
		ev := expect(t, q, EvData, raw)
		got = append(got, ev.Data...)
	}
	if string(got) != "through h2" {
		t.Fatalf("echo %q", got)
	}
	web := h2Connect(t, q, c, dest(t, fmt.Sprintf(`{"host":"127.0.0.1","port":%d}`, srv.HTTPPort())), 0, "http")
	wsEcho(t, q, c, &WSOpts{Tunnel: web}, "hi")
}

// TestConnectHTTP2Ends: cancelling a tunnel ends its streams (ERROR) and
// leaves the rest of the connection alone; losing the proxy kills the
// tunnels' streams first, then DOWN lists the tunnels, then EXIT.
func TestConnectHTTP2Ends(t *testing.T) {
	q, c := h2ProxyConn(t, "")
	d := dest(t, fmt.Sprintf(`{"host":"127.0.0.1","port":%d}`, srv.HTTPPort()))
	a := h2Connect(t, q, c, d, 0, "http")
	b := h2Connect(t, q, c, d, 0, "http")
	slow, err := c.Request(&Request{Method: "GET", Path: "/delay/10000", Tunnel: a})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Cancel(a); err != nil {
		t.Fatal(err)
	}
	// At once, while the tunnel's connection is still ending (and stays
	// registered until its events are released): no tunnel any more.
	if _, err := c.Request(&Request{Method: "GET", Path: "/", Tunnel: a}); !errors.Is(err, ErrNoStream) {
		t.Fatalf("a request through a cancelled tunnel: %v, want ErrNoStream", err)
	}
	if ev := expect(t, q, EvError, slow); !strings.HasPrefix(ev.Reason, "closed") {
		t.Fatalf("got %s", evString(ev))
	}
	if b := tunnelGet(t, c, b, "/bytes/10"); len(b.Data) != 10 {
		t.Fatal("the other tunnel")
	}
	if _, err := c.Request(&Request{Method: "GET", Path: "/", Tunnel: a}); !errors.Is(err, ErrNoStream) {
		t.Fatalf("a request through a cancelled tunnel: %v, want ErrNoStream", err)
	}
	slow2, err := c.Request(&Request{Method: "GET", Path: "/delay/10000", Tunnel: b})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let it reach the origin
	c.Close()
	if ev := expect(t, q, EvError, slow2); !strings.HasPrefix(ev.Reason, "closed") {
		t.Fatalf("got %s", evString(ev))
	}
	if ev := expect(t, q, EvExit, 0); ev.Reason != "shutdown" {
		t.Fatalf("got %s", evString(ev))
	}
	noEvent(t, q, 200*time.Millisecond)
}

// TestConnectHTTP2Nested: an HTTP/1.1 CONNECT inside an HTTP/2 tunnel (to
// a second proxy), then a request to the origin through both.
func TestConnectHTTP2Nested(t *testing.T) {
	p2 := tinyproxy(t, "", "")
	q, c := h2ProxyConn(t, "")
	a := h2Connect(t, q, c, dest(t, fmt.Sprintf(`{"host":"127.0.0.1","port":%d}`, p2.Port)), 0, "http")
	h2Connect(t, q, c, dest(t, tlsDest("localhost", srv.TLSPort(), `["http2"]`)), a, "http2")
	if b := tunnelGet(t, c, a, "/headers"); b.Status != 200 || !strings.Contains(string(b.Data), `"HTTP/2.0"`) {
		t.Fatalf("%d %s", b.Status, b.Data)
	}
}

// TestConnectHTTP2NestedInnerRef: the inner (HTTP/1.1) CONNECT's ref names
// the tunnel as well as the outer one's (Gun's tunnel => [Outer, Inner]):
// requests and a further CONNECT through it reach the origin.
func TestConnectHTTP2NestedInnerRef(t *testing.T) {
	p2 := tinyproxy(t, "", "")
	q, c := h2ProxyConn(t, "")
	a := h2Connect(t, q, c, dest(t, fmt.Sprintf(`{"host":"127.0.0.1","port":%d}`, p2.Port)), 0, "http")
	b := h2Connect(t, q, c, dest(t, fmt.Sprintf(`{"host":"127.0.0.1","port":%d}`, srv.HTTPPort())), a, "http")
	if b := tunnelGet(t, c, b, "/headers"); b.Status != 200 || !strings.Contains(string(b.Data), fmt.Sprintf(`"host":"127.0.0.1:%d"`, srv.HTTPPort())) {
		t.Fatalf("%d %s", b.Status, b.Data)
	}
	if _, err := c.Request(&Request{Method: "GET", Path: "/", Tunnel: b + 1000}); !errors.Is(err, ErrNoStream) {
		t.Fatalf("an unknown tunnel ref: %v", err)
	}
}

// TestConnectHTTP2NestedRaw: raw through an HTTP/1.1 CONNECT made inside
// an HTTP/2 tunnel: its bytes go and come on the inner CONNECT's ref (Gun's
// h2c_http_raw).
func TestConnectHTTP2NestedRaw(t *testing.T) {
	e := echoServer(t)
	p2 := tinyproxy(t, "", "")
	q, c := h2ProxyConn(t, "")
	a := h2Connect(t, q, c, dest(t, fmt.Sprintf(`{"host":"127.0.0.1","port":%d}`, p2.Port)), 0, "http")
	b := h2Connect(t, q, c, dest(t, fmt.Sprintf(`{"host":"127.0.0.1","port":%d,"protocols":["raw"]}`, e.port())), a, "raw")
	if err := c.Data(b, []byte("nested raw"), false); err != nil {
		t.Fatal(err)
	}
	var got []byte
	for len(got) < 10 {
		ev := expect(t, q, EvData, b)
		got = append(got, ev.Data...)
	}
	if string(got) != "nested raw" {
		t.Fatalf("echo %q", got)
	}
}

// TestConnectHTTP2StreamInfo: the CONNECT stream's info describes its
// tunnel (Gun's stream_info tunnel map); a stream inside it is found
// through the connection.
func TestConnectHTTP2StreamInfo(t *testing.T) {
	q, c := h2ProxyConn(t, "")
	ref := h2Connect(t, q, c, dest(t, tlsDest("localhost", srv.TLSPort(), `["http2"]`)), 0, "http2")
	si, err := c.StreamInfo(ref)
	want := TunnelInfo{Transport: "tls", Protocol: "http2", OriginScheme: "https", OriginHost: "localhost", OriginPort: srv.TLSPort()}
	if err != nil || si.Method != "CONNECT" || si.Tunnel == nil || *si.Tunnel != want {
		t.Fatalf("%+v %+v %v", si, si.Tunnel, err)
	}
	inner, err := c.Request(&Request{Method: "GET", Path: "/delay/5000", Tunnel: ref})
	if err != nil {
		t.Fatal(err)
	}
	if si, err := c.StreamInfo(inner); err != nil || si.Path != "/delay/5000" || si.Protocol != "http2" {
		t.Fatalf("%+v %v", si, err)
	}
	if err := c.Cancel(inner); err != nil {
		t.Fatal(err)
	}
}

// TestConnectHTTP2Scripted: what nghttpx cannot be told to do, from our
// scripted HTTP/2 server: the CONNECT's form (RFC 9113 8.5: :method and
// :authority, no :scheme or :path), a refusal (an ordinary response, the
// connection stays), and a RST_STREAM of a tunnel (its stream ERROR, the
// tunnel's request ERROR, the connection and another stream unharmed).
func TestConnectHTTP2Scripted(t *testing.T) {
	q, c, _, sc := h2script(t, "")
	sc.Handshake()
	d := dest(t, `{"host":"origin.test","port":8443,"username":"u","password":"p"}`)
	refused, err := c.Connect(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := sc.ReadRequest()
	if _, hasPath := r.Header(":path"); r.Method != "CONNECT" || r.Authority != "origin.test:8443" || hasPath || r.Scheme != "" {
		t.Fatalf("CONNECT as sent: %+v", r)
	}
	if v, _ := r.Header("proxy-authorization"); v != "Basic "+base64.StdEncoding.EncodeToString([]byte("u:p")) {
		t.Fatalf("proxy-authorization %q", v)
	}
	sc.Respond(r.StreamID, 407, false)
	sc.Data(r.StreamID, true, []byte("no"))
	if ev := expect(t, q, EvResponse, refused); ev.Status != 407 || ev.Fin {
		t.Fatalf("got %s", evString(ev))
	}
	if ev := expect(t, q, EvData, refused); string(ev.Data) != "no" || !ev.Fin {
		t.Fatalf("got %s", evString(ev))
	}

	ref, err := c.Connect(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	r = sc.ReadRequest()
	sc.Respond(r.StreamID, 200, false)
	expect(t, q, EvResponse, ref)
	expect(t, q, EvTunnelUp, ref)
	inner, err := c.Request(&Request{Method: "GET", Path: "/in", Tunnel: ref})
	if err != nil {
		t.Fatal(err)
	}
	// The origin's request arrives as the tunnel's DATA.
	f := sc.ExpectType(http2.FrameData, int(r.StreamID)).(*http2.DataFrame)
	if !strings.HasPrefix(string(f.Data()), "GET /in HTTP/1.1\r\nhost: origin.test:8443\r\n") {
		t.Fatalf("tunnel DATA %q", f.Data())
	}
	other := get(t, c, "/other")
	ro := sc.ReadRequest()
	sc.RST(r.StreamID, http2.ErrCodeConnect)
	if ev := expect(t, q, EvError, ref); ev.Reason != "stream_error: CONNECT_ERROR" {
		t.Fatalf("got %s", evString(ev))
	}
	if ev := expect(t, q, EvError, inner); !strings.HasPrefix(ev.Reason, "closed") {
		t.Fatalf("got %s", evString(ev))
	}
	sc.Respond(ro.StreamID, 200, true)
	expect(t, q, EvResponse, other)
	noEvent(t, q, 100*time.Millisecond)
}

func tlsFront(t *testing.T, backend int) *proxies.Proc {
	t.Helper()
	p, err := proxies.TLSFront(srv.CertFile(), srv.KeyFile(), backend)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

// TestTunnelsOverTLSProxies: Gun's connect_https_over_https_proxy and
// socks over TLS: the proxy reached over TLS (socat in front of tinyproxy
// and microsocks; nghttpx's own TLS for HTTP/2), a TLS origin inside: TLS
// inside TLS.
func TestTunnelsOverTLSProxies(t *testing.T) {
	tlsOpts := fmt.Sprintf(`"transport":"tls","tls_opts":{"cacertfile":%q,"server_name_indication":"localhost"}`, srv.CAFile())
	t.Run("connect", func(t *testing.T) {
		p := tlsFront(t, tinyproxy(t, "", "").Port)
		q, c := upTo(t, p.Port, `{"retry":0,"protocols":["http"],`+tlsOpts+`}`)
		connectTo(t, q, c, dest(t, tlsDest("localhost", srv.TLSPort(), `["http2"]`)), "http2")
		if rep := originHeaders(t, c); rep.Proto != "HTTP/2.0" {
			t.Fatalf("origin saw %s", rep.Proto)
		}
		in := c.Info()
		if len(in.Intermediaries) != 1 || in.Intermediaries[0].Transport != "tls" || in.Transport != "tls" {
			t.Fatalf("info %+v", in)
		}
	})
	t.Run("socks", func(t *testing.T) {
		p := tlsFront(t, microsocks(t, "", "").Port)
		q := newQueue(t)
		openTo(t, q, p.Port, fmt.Sprintf(`{"retry":0,"protocols":["socks"],%s,"socks_opts":{"host":"127.0.0.1","port":%d}}`, tlsOpts, srv.HTTPPort()))
		expect(t, q, EvUp, 0)
		if ev := expect(t, q, EvTunnelUp, 0); ev.Protocol != "http" {
			t.Fatalf("got %s", evString(ev))
		}
	})
	t.Run("http2", func(t *testing.T) {
		p := nghttpx(t, true)
		q := newQueue(t)
		c := openTo(t, q, p.Port, `{"retry":0,"protocols":["http2"],`+tlsOpts+`}`)
		if pr, err := c.AwaitUp(waitFor); err != nil || pr != "http2" {
			t.Fatalf("up: %q %v", pr, err)
		}
		ref := h2Connect(t, q, c, dest(t, tlsDest("localhost", srv.TLSPort(), `["http2"]`)), 0, "http2")
		if b := tunnelGet(t, c, ref, "/bytes/100"); len(b.Data) != 100 {
			t.Fatalf("got %d bytes", len(b.Data))
		}
	})
}

// TestConnectHTTP2ProxyLost: the HTTP/2 proxy goes away: the streams in
// the tunnels get their ERRORs first, then the tunnels are in DOWN's
// killed list (with their ERRORs), then EXIT.
func TestConnectHTTP2ProxyLost(t *testing.T) {
	p := nghttpx(t, false)
	q := newQueue(t)
	c := openTo(t, q, p.Port, `{"retry":0,"protocols":["http2"]}`)
	if _, err := c.AwaitUp(waitFor); err != nil {
		t.Fatal(err)
	}
	ref := h2Connect(t, q, c, dest(t, fmt.Sprintf(`{"host":"127.0.0.1","port":%d}`, srv.HTTPPort())), 0, "http")
	inner, err := c.Request(&Request{Method: "GET", Path: "/delay/10000", Tunnel: ref})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let it reach the origin
	p.Stop()
	if ev := expect(t, q, EvError, inner); !strings.HasPrefix(ev.Reason, "closed") {
		t.Fatalf("got %s", evString(ev))
	}
	if ev := expect(t, q, EvError, ref); !strings.HasPrefix(ev.Reason, "closed") {
		t.Fatalf("got %s", evString(ev))
	}
	ev := expect(t, q, EvDown, 0)
	if fmt.Sprint(ev.Killed) != fmt.Sprint([]uint64{ref}) {
		t.Fatalf("got %s", evString(ev))
	}
	expect(t, q, EvExit, 0)
}

// TestSocksSilentProxy: a SOCKS5 proxy that accepts and never answers
// holds the connection at most connect_timeout (socksTimeout, 30 s, when
// that is infinity): DOWN socks "timeout", and the retries' delays apply.
func TestSocksSilentProxy(t *testing.T) {
	s := startRaw(t, func(nc net.Conn) { io.Copy(io.Discard, nc) })
	q := newQueue(t)
	openTo(t, q, s.port(), `{"retry":0,"connect_timeout":300,"protocols":["socks"],"socks_opts":{"host":"127.0.0.1","port":1}}`)
	expect(t, q, EvUp, 0)
	if ev := expect(t, q, EvDown, 0); ev.Protocol != "socks" || !strings.HasPrefix(ev.Reason, "timeout") {
		t.Fatalf("got %s", evString(ev))
	}
	expect(t, q, EvExit, 0)
}

// TestSocksThroughConnect: Gun's socks5_through_connect_proxy: a CONNECT
// to a SOCKS5 proxy (destination protocols [["socks", {...}]]) gives
// TUNNEL_UP socks, then TUNNEL_UP with the origin's protocol, on the
// CONNECT's ref; through an HTTP/1.1 proxy the connection is the origin's,
// through an HTTP/2 proxy the tunnel is.
func TestSocksThroughConnect(t *testing.T) {
	s := microsocks(t, "", "")
	socks := fmt.Sprintf(`{"host":"127.0.0.1","port":%d,"protocols":[["socks",{"host":"localhost","port":%d,"transport":"tls","tls_opts":{"cacertfile":%q}}]]}`,
		s.Port, srv.TLSPort(), srv.CAFile())
	t.Run("http", func(t *testing.T) {
		p := tinyproxy(t, "", "")
		q, c := upTo(t, p.Port, `{"retry":0}`)
		ref, err := c.Connect(dest(t, socks), nil)
		if err != nil {
			t.Fatal(err)
		}
		expect(t, q, EvResponse, ref)
		if ev := expect(t, q, EvTunnelUp, ref); ev.Protocol != "socks" {
			t.Fatalf("got %s", evString(ev))
		}
		if ev := expect(t, q, EvTunnelUp, ref); ev.Protocol != "http2" {
			t.Fatalf("got %s", evString(ev))
		}
		if rep := originHeaders(t, c); rep.Proto != "HTTP/2.0" {
			t.Fatalf("origin saw %s", rep.Proto)
		}
		in := c.Info()
		if len(in.Intermediaries) != 2 || in.Intermediaries[0].Type != "connect" || in.Intermediaries[1] !=
			(Intermediary{Type: "socks5", Host: "127.0.0.1", Port: s.Port, Transport: "tcp", Protocol: "socks"}) {
			t.Fatalf("info %+v", in)
		}
	})
	t.Run("http2", func(t *testing.T) {
		q, c := h2ProxyConn(t, "")
		ref, err := c.Connect(dest(t, socks), nil)
		if err != nil {
			t.Fatal(err)
		}
		expect(t, q, EvResponse, ref)
		if ev := expect(t, q, EvTunnelUp, ref); ev.Protocol != "socks" {
			t.Fatalf("got %s", evString(ev))
		}
		if ev := expect(t, q, EvTunnelUp, ref); ev.Protocol != "http2" {
			t.Fatalf("got %s", evString(ev))
		}
		if b := tunnelGet(t, c, ref, "/bytes/5"); len(b.Data) != 5 {
			t.Fatalf("got %d bytes", len(b.Data))
		}
	})
}

// TestConnectHTTP2Cookies: Gun's set_cookie_connect: with cookie_store, a
// cookie the origin sets through a tunnel goes with the tunnel's next
// request (the tunnel keeps a jar of its own), and none reaches the proxy.
func TestConnectHTTP2Cookies(t *testing.T) {
	q, c := h2ProxyConn(t, `,"cookie_store":true`)
	ref := h2Connect(t, q, c, dest(t, fmt.Sprintf(`{"host":"127.0.0.1","port":%d}`, srv.HTTPPort())), 0, "http")
	tunnelGet(t, c, ref, "/set-cookie?name=a&value=b&path=/")
	var rep testserver.HeadersReply
	if b := tunnelGet(t, c, ref, "/headers"); json.Unmarshal(b.Data, &rep) != nil || fmt.Sprint(rep.Headers["cookie"]) != "[a=b]" {
		t.Fatalf("second request's headers: %s", b.Data)
	}
}

// TestWSOptsTunnelKey: "tunnel" in ws_opts is one upgrade's (gm_ws_upgrade's
// JSON); an unknown tunnel ref is refused with ErrNoStream, nothing sent.
func TestWSOptsTunnelKey(t *testing.T) {
	o, err := ParseWSOpts([]byte(`{"tunnel": 77}`))
	if err != nil || o.Tunnel != 77 {
		t.Fatalf("%+v %v", o, err)
	}
	q, c := h2ProxyConn(t, "")
	if _, err := c.WSUpgrade("/ws", nil, o); !errors.Is(err, ErrNoStream) {
		t.Fatalf("upgrade through no tunnel: %v", err)
	}
	if _, err := c.Request(&Request{Method: "GET", Path: "/", Tunnel: 77}); !errors.Is(err, ErrNoStream) {
		t.Fatalf("request through no tunnel: %v", err)
	}
	noEvent(t, q, 100*time.Millisecond)
}
