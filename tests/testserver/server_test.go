package testserver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
)

var shared *Server

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gmts") // short: unix socket paths max out at 108 bytes
	if err != nil {
		panic(err)
	}
	shared, err = Start(Config{Unix: filepath.Join(dir, "s.sock")})
	if err != nil {
		panic(err)
	}
	code := m.Run()
	shared.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

// client is one way of reaching the server.
type client struct {
	name string
	base string // URL prefix
	h2   bool
	*http.Client
}

func newTransport(s *Server, tlsOn, h2 bool, unix string) *http.Transport {
	var p http.Protocols
	switch {
	case !h2:
		p.SetHTTP1(true)
	case tlsOn:
		p.SetHTTP2(true)
	default:
		p.SetUnencryptedHTTP2(true)
	}
	tr := &http.Transport{Protocols: &p, DisableCompression: true}
	if tlsOn {
		tr.TLSClientConfig = s.ClientTLSConfig()
	}
	if unix != "" {
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", unix)
		}
	}
	return tr
}

func clients(t *testing.T, s *Server) []client {
	mk := func(name, base string, tlsOn, h2 bool, unix string) client {
		tr := newTransport(s, tlsOn, h2, unix)
		t.Cleanup(tr.CloseIdleConnections)
		return client{name, base, h2, &http.Client{Transport: tr, Timeout: 10 * time.Second}}
	}
	cs := []client{
		mk("h1", s.HTTPURL(), false, false, ""),
		mk("h2c", s.HTTPURL(), false, true, ""),
		mk("h1-tls", s.TLSURL(), true, false, ""),
		mk("h2-tls", s.TLSURL(), true, true, ""),
	}
	if s.UnixPath() != "" {
		cs = append(cs,
			mk("unix-h1", "http://unix", false, false, s.UnixPath()),
			mk("unix-h2c", "http://unix", false, true, s.UnixPath()))
	}
	return cs
}

// each runs f as a subtest for every client of the shared server.
func each(t *testing.T, f func(t *testing.T, c client)) {
	for _, c := range clients(t, shared) {
		t.Run(c.name, func(t *testing.T) { f(t, c) })
	}
}

func (c client) do(t *testing.T, method, path string, body io.Reader, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp, b
}

func (c client) get(t *testing.T, path string) (*http.Response, []byte) {
	t.Helper()
	return c.do(t, "GET", path, nil)
}

func (c client) remoteAddr(t *testing.T) string {
	t.Helper()
	_, b := c.get(t, "/headers")
	var h HeadersReply
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h.RemoteAddr
}

func wantProto(t *testing.T, c client, resp *http.Response) {
	t.Helper()
	if want := map[bool]int{false: 1, true: 2}[c.h2]; resp.ProtoMajor != want {
		t.Fatalf("proto %s, want HTTP/%d", resp.Proto, want)
	}
}

// patternWriter checks a byte stream against the 'a'+i%26 pattern.
type patternWriter struct{ off int64 }

func (p *patternWriter) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		k := min(len(b), 32<<10)
		s := p.off % 26
		if !bytes.Equal(b[:k], pattern[s:s+int64(k)]) {
			return 0, fmt.Errorf("pattern mismatch near offset %d", p.off)
		}
		b, p.off = b[k:], p.off+int64(k)
	}
	return n, nil
}

func checkPattern(t *testing.T, b []byte) {
	t.Helper()
	if _, err := (&patternWriter{}).Write(b); err != nil {
		t.Fatal(err)
	}
}

func TestBytes(t *testing.T) {
	each(t, func(t *testing.T, c client) {
		resp, b := c.get(t, "/bytes/100000")
		wantProto(t, c, resp)
		if resp.StatusCode != 200 || resp.ContentLength != 100000 || len(b) != 100000 {
			t.Fatalf("status %d, content-length %d, got %d bytes", resp.StatusCode, resp.ContentLength, len(b))
		}
		checkPattern(t, b)
		if _, b := c.get(t, "/bytes/0"); len(b) != 0 {
			t.Fatalf("/bytes/0 gave %d bytes", len(b))
		}
		if resp, _ := c.get(t, "/bytes/x"); resp.StatusCode != 400 {
			t.Fatalf("/bytes/x: %d", resp.StatusCode)
		}
	})
}

func TestBytesHuge(t *testing.T) {
	const n = 100 << 20
	c := clients(t, shared)[0]
	resp, err := c.Get(c.base + "/bytes/" + strconv.Itoa(n))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.Copy(&patternWriter{}, resp.Body)
	if err != nil || got != n {
		t.Fatalf("got %d bytes, err %v", got, err)
	}
}

func TestChunked(t *testing.T) {
	each(t, func(t *testing.T, c client) {
		resp, b := c.get(t, "/chunked/5000?chunk=700")
		if len(b) != 5000 || resp.ContentLength != -1 {
			t.Fatalf("got %d bytes, content-length %d", len(b), resp.ContentLength)
		}
		checkPattern(t, b)
		if !c.h2 && (len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked") {
			t.Fatalf("transfer-encoding %q", resp.TransferEncoding)
		}
		if _, b := c.get(t, "/chunked/2500"); len(b) != 2500 {
			t.Fatalf("default chunk: got %d bytes", len(b))
		}
	})
}

func TestTrailers(t *testing.T) {
	each(t, func(t *testing.T, c client) {
		resp, b := c.get(t, "/trailers")
		if string(b) != "hello trailers" {
			t.Fatalf("body %q", b)
		}
		if resp.Trailer.Get("X-Checksum") != "abc123" || resp.Trailer.Get("X-Trailer-Two") != "2" {
			t.Fatalf("trailers %v", resp.Trailer)
		}
	})
}

func TestInform(t *testing.T) {
	each(t, func(t *testing.T, c client) {
		for path, want := range map[string][]int{
			"/inform/3":          {103, 103, 103},
			"/inform/2?code=102": {102, 102},
			"/early-hints":       {103},
		} {
			var codes []int
			var links []string
			trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
				codes = append(codes, code)
				links = append(links, h.Get("Link"))
				return nil
			}}
			req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", c.base+path, nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != "ok" || fmt.Sprint(codes) != fmt.Sprint(want) {
				t.Fatalf("%s: body %q, 1xx %v, want %v", path, b, codes, want)
			}
			if links[0] != "</style.css>; rel=preload" || resp.Header.Get("Link") != "" {
				t.Fatalf("%s: 1xx link %q, final link %q", path, links[0], resp.Header.Get("Link"))
			}
		}
	})
}

func TestSlow(t *testing.T) {
	each(t, func(t *testing.T, c client) {
		start := time.Now()
		_, b := c.get(t, "/slow?chunks=3&delay=20&size=5")
		if len(b) != 15 || time.Since(start) < 40*time.Millisecond {
			t.Fatalf("got %d bytes after %v", len(b), time.Since(start))
		}
		checkPattern(t, b)
	})
}

func TestInfinite(t *testing.T) {
	each(t, func(t *testing.T, c client) {
		resp, err := c.Get(c.base + "/infinite")
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(&patternWriter{}, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if n != 1<<20 || err != nil {
			t.Fatalf("read %d: %v", n, err)
		}
	})
}

func TestEcho(t *testing.T) {
	each(t, func(t *testing.T, c client) {
		resp, b := c.do(t, "PUT", "/echo", strings.NewReader("hello echo"))
		if string(b) != "hello echo" || resp.Header.Get("X-Method") != "PUT" || resp.Header.Get("X-Content-Length") != "10" {
			t.Fatalf("body %q, headers %v", b, resp.Header)
		}
		// Unknown length: chunked on HTTP/1.1.
		resp, b = c.do(t, "POST", "/echo", io.MultiReader(strings.NewReader("ab"), strings.NewReader("cd")))
		if string(b) != "abcd" || resp.Header.Get("X-Content-Length") != "-1" {
			t.Fatalf("body %q, headers %v", b, resp.Header)
		}
		if te := resp.Header.Get("X-Transfer-Encoding"); te != map[bool]string{false: "chunked"}[c.h2] {
			t.Fatalf("x-transfer-encoding %q", te)
		}
	})
}

// TestEchoDuplex checks that /echo streams: each piece comes back before the
// request body is finished.
func TestEchoDuplex(t *testing.T) {
	each(t, func(t *testing.T, c client) {
		pr, pw := io.Pipe()
		req, _ := http.NewRequest("POST", c.base+"/echo", pr)
		done := make(chan *http.Response, 1)
		go func() {
			resp, err := c.Do(req)
			if err != nil {
				pr.CloseWithError(err)
				close(done)
				return
			}
			done <- resp
		}()
		pw.Write([]byte("ping"))
		resp := <-done
		if resp == nil {
			t.Fatal("request failed")
		}
		defer resp.Body.Close()
		buf := make([]byte, 4)
		for _, msg := range []string{"ping", "pong"} {
			if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != msg {
				t.Fatalf("read %q: %v", buf, err)
			}
			if msg == "ping" {
				pw.Write([]byte("pong"))
			}
		}
		pw.Close()
		if rest, err := io.ReadAll(resp.Body); err != nil || len(rest) != 0 {
			t.Fatalf("rest %q: %v", rest, err)
		}
	})
}

func TestHeaders(t *testing.T) {
	each(t, func(t *testing.T, c client) {
		_, b := c.do(t, "POST", "/headers?a=1&b=2", strings.NewReader("12345"), "X-Foo", "bar", "X-Foo", "baz")
		var h HeadersReply
		if err := json.Unmarshal(b, &h); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		if h.Method != "POST" || h.Path != "/headers" || h.Query != "a=1&b=2" || h.BodyLen != 5 || h.ContentLength != 5 ||
			fmt.Sprint(h.Headers["x-foo"]) != "[bar baz]" || h.Host == "" || h.TransferEncoding == nil {
			t.Fatalf("reply %+v", h)
		}
		if want := map[bool]string{false: "HTTP/1.1", true: "HTTP/2.0"}[c.h2]; h.Proto != want {
			t.Fatalf("proto %q", h.Proto)
		}
		// Keep-alive/multiplexing: later requests reuse the connection.
		if a, b := c.remoteAddr(t), c.remoteAddr(t); a != b {
			t.Fatalf("remote addr changed: %s then %s", a, b)
		}
	})
}

func TestDelay(t *testing.T) {
	each(t, func(t *testing.T, c client) {
		start := time.Now()
		if _, b := c.get(t, "/delay/30"); string(b) != "ok" || time.Since(start) < 30*time.Millisecond {
			t.Fatalf("body %q after %v", b, time.Since(start))
		}
	})
}

func TestClose(t *testing.T) {
	each(t, func(t *testing.T, c client) {
		before := c.remoteAddr(t)
		resp, b := c.get(t, "/close")
		if string(b) != "bye" {
			t.Fatalf("body %q", b)
		}
		if !c.h2 && !resp.Close {
			t.Fatal("no Connection: close")
		}
		// HTTP/1.1 closes; HTTP/2 sends GOAWAY. Either way: a new connection.
		if after := c.remoteAddr(t); after == before && !strings.HasPrefix(c.name, "unix") {
			t.Fatalf("connection %s reused after /close", after)
		}
	})
}

func TestDrop(t *testing.T) {
	for _, path := range []string{"/drop", "/drop-conn"} {
		t.Run(path, func(t *testing.T) {
			each(t, func(t *testing.T, c client) {
				before := c.remoteAddr(t)
				resp, err := c.Get(c.base + path + "?after=1234")
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.ContentLength != 1000000 || len(b) != 1234 || err == nil {
					t.Fatalf("content-length %d, got %d bytes, err %v", resp.ContentLength, len(b), err)
				}
				checkPattern(t, b)
				// Only an HTTP/2 stream reset keeps the connection.
				kept := c.h2 && path == "/drop"
				if after := c.remoteAddr(t); (after == before) != kept && !strings.HasPrefix(c.name, "unix") {
					t.Fatalf("remote addr %s -> %s, want kept=%v", before, after, kept)
				}
			})
		})
	}
}

func TestStatus(t *testing.T) {
	each(t, func(t *testing.T, c client) {
		for _, code := range []int{204, 304, 404, 500} {
			resp, b := c.get(t, "/status/"+strconv.Itoa(code))
			if resp.StatusCode != code || len(b) != 0 {
				t.Fatalf("status %d, body %q", resp.StatusCode, b)
			}
			if code == 304 && resp.Header.Get("ETag") == "" {
				t.Fatal("304 without ETag")
			}
		}
	})
}

func TestNoLengthAndHTTP10(t *testing.T) {
	each(t, func(t *testing.T, c client) {
		resp, b := c.get(t, "/nolength?size=3000")
		if len(b) != 3000 || resp.ContentLength != -1 {
			t.Fatalf("got %d bytes, content-length %d", len(b), resp.ContentLength)
		}
		checkPattern(t, b)
		if !c.h2 && (!resp.Close || len(resp.TransferEncoding) != 0) {
			t.Fatalf("want close-delimited body, close=%v te=%v", resp.Close, resp.TransferEncoding)
		}
		resp, b = c.get(t, "/http10")
		if string(b) != "ok" {
			t.Fatalf("body %q", b)
		}
		if !c.h2 && resp.Proto != "HTTP/1.0" {
			t.Fatalf("proto %s", resp.Proto)
		}
	})
}

func TestPushBigHeadersCount(t *testing.T) {
	each(t, func(t *testing.T, c client) {
		if _, b := c.get(t, "/push"); string(b) != "main" {
			t.Fatalf("/push body %q", b)
		}
		if _, b := c.get(t, "/pushed"); string(b) != "pushed" {
			t.Fatalf("/pushed body %q", b)
		}
		if resp, _ := c.get(t, "/big-headers?n=20000"); len(resp.Header.Get("X-Big")) != 20000 {
			t.Fatalf("x-big is %d bytes", len(resp.Header.Get("X-Big")))
		}
		_, b1 := c.get(t, "/count")
		_, b2 := c.get(t, "/count")
		n1, _ := strconv.Atoi(string(b1))
		n2, _ := strconv.Atoi(string(b2))
		if n1 < 1 || n2 <= n1 {
			t.Fatalf("count %q then %q", b1, b2)
		}
	})
}

func TestWebSocket(t *testing.T) {
	for _, c := range clients(t, shared) {
		if c.h2 {
			continue // no RFC 8441 (see listen)
		}
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			base := "ws" + strings.TrimPrefix(c.base, "http")
			tr := c.Transport.(*http.Transport)
			d := ws.Dialer{TLSConfig: tr.TLSClientConfig, Protocols: []string{"nope", "chat", "echo"}}
			if tr.DialContext != nil {
				d.NetDial = tr.DialContext
			}
			ext := &wsflate.Extension{Parameters: wsflate.Parameters{ClientNoContextTakeover: true, ServerNoContextTakeover: true}}
			d.Extensions = []httphead.Option{ext.Parameters.Option()}
			nc, br, hs, err := d.Dial(ctx, base+"/ws")
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			// What the handshake read past the 101 is in br (nil when nothing).
			var rd io.Reader = nc
			if br != nil {
				rd = br
			}
			if hs.Protocol != "chat" || len(hs.Extensions) != 1 || string(hs.Extensions[0].Name) != "permessage-deflate" {
				t.Fatalf("subprotocol %q, extensions %v", hs.Protocol, hs.Extensions)
			}
			for _, m := range []struct {
				op   ws.OpCode
				data []byte
			}{{ws.OpText, []byte("hello")}, {ws.OpBinary, bytes.Repeat([]byte{0, 1, 2}, 50000)}} {
				f, err := wsflate.CompressFrame(ws.NewFrame(m.op, true, m.data))
				if err != nil {
					t.Fatal(err)
				}
				if err := ws.WriteFrame(nc, ws.MaskFrame(f)); err != nil {
					t.Fatal(err)
				}
				g, err := ws.ReadFrame(rd)
				if err != nil || !g.Header.Rsv1() {
					t.Fatalf("echo: %+v %v", g.Header, err)
				}
				if g, err = wsflate.DecompressFrame(g); err != nil || g.Header.OpCode != m.op || !bytes.Equal(g.Payload, m.data) {
					t.Fatalf("echo: op %v, %d bytes, err %v", g.Header.OpCode, len(g.Payload), err)
				}
			}
			ws.WriteFrame(nc, ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))))
			if g, err := ws.ReadFrame(rd); err != nil || g.Header.OpCode != ws.OpClose {
				t.Fatalf("close answer: %+v %v", g.Header, err)
			}

			// Server-initiated close.
			d2 := ws.Dialer{TLSConfig: tr.TLSClientConfig, NetDial: d.NetDial, Protocols: []string{"echo"}}
			nc2, br2, hs2, err := d2.Dial(ctx, base+"/ws?close=4001")
			if err != nil {
				t.Fatal(err)
			}
			defer nc2.Close()
			if hs2.Protocol != "echo" {
				t.Fatalf("subprotocol %q", hs2.Protocol)
			}
			var rd2 io.Reader = nc2
			if br2 != nil {
				rd2 = br2
			}
			g, err := ws.ReadFrame(rd2)
			code, reason := ws.ParseCloseFrameData(g.Payload)
			if err != nil || g.Header.OpCode != ws.OpClose || code != 4001 || reason != "bye" {
				t.Fatalf("want close 4001 bye, got %+v %d %q %v", g.Header, code, reason, err)
			}

			_, _, _, err = d2.Dial(ctx, base+"/ws-reject")
			var se ws.StatusError
			if !errors.As(err, &se) || int(se) != 403 {
				t.Fatalf("ws-reject: %v", err)
			}
		})
	}
}

func TestUnixAcceptedCounts(t *testing.T) {
	before := shared.Accepted()
	tr := newTransport(shared, false, false, shared.UnixPath())
	defer tr.CloseIdleConnections()
	tr.DisableKeepAlives = true
	c := client{"unix", "http://unix", false, &http.Client{Transport: tr}}
	for range 3 {
		c.get(t, "/count")
	}
	if got := shared.Accepted() - before; got < 3 {
		t.Fatalf("accepted %d new connections, want >= 3", got)
	}
}

func TestStopRestart(t *testing.T) {
	dir := t.TempDir()
	sock, _ := os.MkdirTemp("", "gmts")
	defer os.RemoveAll(sock)
	s, err := Start(Config{CertDir: dir, Unix: filepath.Join(sock, "s.sock")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, f := range []string{"ca.pem", "cert.pem", "key.pem"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	hp, tp := s.HTTPPort(), s.TLSPort()
	check := func(up bool) {
		t.Helper()
		for _, c := range clients(t, s) {
			resp, err := c.Get(c.base + "/count")
			if err == nil {
				resp.Body.Close()
			}
			if (err == nil) != up {
				t.Fatalf("%s: up=%v, err=%v", c.name, up, err)
			}
			c.Transport.(*http.Transport).CloseIdleConnections()
		}
	}
	check(true)
	if err := s.Restart(); err == nil {
		t.Fatal("Restart while running succeeded")
	}
	// A connection held open across Stop must die too.
	resp, err := http.Get(s.HTTPURL() + "/infinite")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	s.Stop()
	if _, err := io.Copy(io.Discard, resp.Body); err == nil {
		t.Fatal("/infinite survived Stop")
	}
	check(false)
	s.Stop() // idempotent
	for range 2 {
		if err := s.Restart(); err != nil {
			t.Fatal(err)
		}
		if s.HTTPPort() != hp || s.TLSPort() != tp {
			t.Fatalf("ports moved: %d/%d -> %d/%d", hp, tp, s.HTTPPort(), s.TLSPort())
		}
		check(true)
		s.Stop()
	}
}

func TestCloseClientConns(t *testing.T) {
	s, err := Start(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, c := range clients(t, s) {
		t.Run(c.name, func(t *testing.T) {
			before := c.remoteAddr(t)
			resp, err := c.Get(c.base + "/infinite")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if _, err := io.ReadFull(resp.Body, make([]byte, 1000)); err != nil {
				t.Fatal(err)
			}
			acc := s.Accepted()
			s.CloseClientConns()
			if _, err := io.Copy(io.Discard, resp.Body); err == nil {
				t.Fatal("/infinite survived CloseClientConns")
			}
			if after := c.remoteAddr(t); after == before {
				t.Fatalf("still on %s", after)
			}
			if s.Accepted() <= acc {
				t.Fatal("no new connection accepted")
			}
		})
	}
}

func TestPorts(t *testing.T) {
	hp, tp := FreePort(), FreePort()
	for tp == hp {
		tp = FreePort()
	}
	s, err := Start(Config{HTTPPort: hp, TLSPort: tp})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.HTTPPort() != hp || s.TLSPort() != tp {
		t.Fatalf("ports %d/%d, want %d/%d", s.HTTPPort(), s.TLSPort(), hp, tp)
	}
	ca := s.CAFile()
	s.Close()
	if _, err := os.Stat(ca); !os.IsNotExist(err) {
		t.Fatalf("temp cert dir left behind: %v", err)
	}
}

// TestPushRaw speaks h2c by hand because Go's client never enables push.
// (golang.org/x/net/http2 would need x/text in go.sum, so frames are raw.)
func TestPushRaw(t *testing.T) {
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(shared.HTTPURL(), "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	frame := func(typ, flags byte, stream uint32, p []byte) []byte {
		n := len(p)
		return append([]byte{byte(n >> 16), byte(n >> 8), byte(n), typ, flags,
			byte(stream >> 24), byte(stream >> 16), byte(stream >> 8), byte(stream)}, p...)
	}
	var hb []byte // HPACK: literal fields without indexing, no Huffman
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "localhost"}, {":path", "/push"}} {
		hb = append(append(append(append(hb, 0, byte(len(f[0]))), f[0]...), byte(len(f[1]))), f[1]...)
	}
	out := []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	out = append(out, frame(4, 0, 0, []byte{0, 2, 0, 0, 0, 1})...) // SETTINGS_ENABLE_PUSH=1
	out = append(out, frame(1, 0x5, 1, hb)...)                     // HEADERS, END_STREAM|END_HEADERS
	if _, err := conn.Write(out); err != nil {
		t.Fatal(err)
	}

	promises := 0
	bodies := map[uint32]string{}
	br := bufio.NewReader(conn)
	for ended := 0; ended < 3; { // main stream + two pushes
		var h [9]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			t.Fatalf("promises %d, bodies %v: %v", promises, bodies, err)
		}
		p := make([]byte, int(h[0])<<16|int(h[1])<<8|int(h[2]))
		if _, err := io.ReadFull(br, p); err != nil {
			t.Fatal(err)
		}
		typ, flags, stream := h[3], h[4], binary.BigEndian.Uint32(h[5:])&0x7fffffff
		switch {
		case typ == 4 && flags&1 == 0: // SETTINGS: ack it
			conn.Write(frame(4, 1, 0, nil))
		case typ == 5:
			promises++
		case typ == 0:
			bodies[stream] += string(p)
		case typ == 3 || typ == 7:
			t.Fatalf("RST_STREAM/GOAWAY: %x", p)
		}
		if (typ == 0 || typ == 1) && flags&1 != 0 {
			ended++
		}
	}
	if promises != 2 || bodies[1] != "main" || bodies[2] != "abcdefghij" || bodies[4] != "pushed" {
		t.Fatalf("promises %d, bodies %v", promises, bodies)
	}
}

func TestEchoExpectContinue(t *testing.T) {
	tr := newTransport(shared, false, false, "")
	tr.ExpectContinueTimeout = 5 * time.Second
	defer tr.CloseIdleConnections()
	c := client{"h1", shared.HTTPURL(), false, &http.Client{Transport: tr}}
	start := time.Now()
	_, b := c.do(t, "POST", "/echo", strings.NewReader("continue"), "Expect", "100-continue")
	if string(b) != "continue" || time.Since(start) > 4*time.Second {
		t.Fatalf("body %q after %v", b, time.Since(start))
	}
}
