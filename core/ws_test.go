package core

// WebSocket tests against the project's test server (/ws echo with
// subprotocols echo and chat and permessage-deflate, /ws?close=CODE,
// /ws-reject) and, for what that server cannot show (a 101 with a wrong
// accept key or an unoffered subprotocol), small raw servers. Waits are
// for events with generous timeouts; sleeps only prove an absence.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func wsOpts(t testing.TB, js string) *WSOpts {
	t.Helper()
	o, err := ParseWSOpts([]byte(js))
	if err != nil {
		t.Fatalf("ws_opts %s: %v", js, err)
	}
	return o
}

// wsUpgrade upgrades c on path and waits for the UPGRADE.
func wsUpgrade(t testing.TB, q *Queue, c *Conn, path string, opts *WSOpts, hs ...Header) (uint64, *Event) {
	t.Helper()
	ref, err := c.WSUpgrade(path, hs, opts)
	if err != nil {
		t.Fatalf("ws upgrade %s: %v", path, err)
	}
	ev := expect(t, q, EvUpgrade, ref)
	if ev.Protocol != "websocket" {
		t.Fatalf("UPGRADE protocol %q, want websocket", ev.Protocol)
	}
	return ref, ev
}

func wsSend(t testing.TB, c *Conn, ref uint64, frames ...WSFrame) {
	t.Helper()
	if err := c.WSSend(ref, frames); err != nil {
		t.Fatalf("ws send: %v", err)
	}
}

// expectWS takes the next event, which must be a WS frame op of ref.
func expectWS(t testing.TB, q *Queue, ref uint64, op uint8) *Event {
	t.Helper()
	ev := expect(t, q, EvWS, ref)
	if ev.WSOp != op {
		t.Fatalf("got WS op %d (%q), want %d", ev.WSOp, ev.Data, op)
	}
	return ev
}

// expectDownUp takes DOWN (protocol ws, reason, killed [ref]), then the
// reconnect's UP (http).
func expectDownUp(t testing.TB, q *Queue, ref uint64, reason string) {
	t.Helper()
	ev := expect(t, q, EvDown, 0)
	if ev.Protocol != "ws" || ev.Reason != reason || len(ev.Killed) != 1 || ev.Killed[0] != ref {
		t.Fatalf("got %s, want gun_down ws %q killed [%d]", evString(ev), reason, ref)
	}
	ev = expect(t, q, EvUp, 0)
	if ev.Protocol != "http" {
		t.Fatalf("after DOWN: %s, want gun_up http", evString(ev))
	}
}

func TestWSRoundTrip(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{"retry":1}`)
	ref, upEv := wsUpgrade(t, q, c, "/ws", nil)
	if v, _ := header(upEv.Headers, "sec-websocket-accept"); v == "" {
		t.Fatalf("UPGRADE headers %v: no sec-websocket-accept", upEv.Headers)
	}
	if in := c.Info(); in.Protocol != "ws" {
		t.Fatalf("info protocol %q after the upgrade, want ws", in.Protocol)
	}
	if si, err := c.StreamInfo(ref); err != nil || si.Protocol != "ws" || si.State != "running" || si.Path != "/ws" {
		t.Fatalf("stream info %+v %v", si, err)
	}
	big := bytes.Repeat([]byte{0, 1, 2, 255}, 100000) // 400 kB: several reads, past the pipe's bound
	wsSend(t, c, ref,
		WSFrame{Op: WSText, Data: []byte("hello")},
		WSFrame{Op: WSBinary, Data: []byte{0, 1, 2}},
		WSFrame{Op: WSText, Data: []byte{}},
		WSFrame{Op: WSBinary, Data: big},
		WSFrame{Op: WSText, Data: []byte("héllo wörld")})
	for _, want := range []struct {
		op   uint8
		data []byte
	}{{WSText, []byte("hello")}, {WSBinary, []byte{0, 1, 2}}, {WSText, []byte{}}, {WSBinary, big}, {WSText, []byte("héllo wörld")}} {
		ev := expectWS(t, q, ref, want.op)
		if !bytes.Equal(ev.Data, want.data) {
			t.Fatalf("echo: %d bytes, want %d", len(ev.Data), len(want.data))
		}
	}
	// Close codes round-trip: the server echoes the close frame it gets.
	wsSend(t, c, ref, WSFrame{Op: WSClose, Code: 4321, Data: []byte("so long")})
	ev := expectWS(t, q, ref, WSClose)
	if ev.CloseCode != 4321 || string(ev.Data) != "so long" {
		t.Fatalf("close echo: code %d reason %q", ev.CloseCode, ev.Data)
	}
	// The close ends the stream and the HTTP/1.1 connection, which comes
	// back as HTTP: no re-upgrade.
	expectDownUp(t, q, ref, "normal")
	if err := c.WSSend(ref, []WSFrame{{Op: WSText, Data: []byte("x")}}); !errors.Is(err, ErrNoStream) {
		t.Fatalf("ws send after the reconnect: %v, want ErrNoStream", err)
	}
	if b := ok200(t, q, get(t, c, "/bytes/5")); string(b) != "abcde" {
		t.Fatalf("GET after the reconnect: %q", b)
	}
}

func TestWSCloseCodes(t *testing.T) {
	q := newQueue(t)
	for _, tc := range []struct {
		code   int
		reason string
	}{{1000, ""}, {1001, "going"}, {1011, "oops"}, {3000, "app"}, {4999, "last"}, {0, ""}} {
		c := up(t, q, `{"retry":0}`)
		ref, _ := wsUpgrade(t, q, c, "/ws", nil)
		wsSend(t, c, ref, WSFrame{Op: WSText, Data: []byte("x")})
		expectWS(t, q, ref, WSText)
		wsSend(t, c, ref, WSFrame{Op: WSClose, Code: tc.code, Data: []byte(tc.reason)})
		ev := expectWS(t, q, ref, WSClose)
		if ev.CloseCode != tc.code || string(ev.Data) != tc.reason {
			t.Fatalf("sent close %d %q, got back %d %q", tc.code, tc.reason, ev.CloseCode, ev.Data)
		}
		ev = expect(t, q, EvDown, 0)
		if ev.Reason != "normal" || len(ev.Killed) != 1 || ev.Killed[0] != ref {
			t.Fatalf("got %s", evString(ev))
		}
		expect(t, q, EvExit, 0)
	}
}

func TestWSServerClose(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{"retry":1}`)
	ref, _ := wsUpgrade(t, q, c, "/ws?close=4001", nil)
	ev := expectWS(t, q, ref, WSClose)
	if ev.CloseCode != 4001 || string(ev.Data) != "bye" {
		t.Fatalf("server close: code %d reason %q", ev.CloseCode, ev.Data)
	}
	expectDownUp(t, q, ref, "normal")
	// No re-upgrade: the connection is HTTP again.
	if b := ok200(t, q, get(t, c, "/bytes/3")); string(b) != "abc" {
		t.Fatalf("GET after the reconnect: %q", b)
	}
}

func TestWSEcho10000InOrder(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{"retry":0}`)
	ref, _ := wsUpgrade(t, q, c, "/ws", nil)
	const n = 10000
	done := make(chan error, 1)
	go func() {
		frames := make([]WSFrame, 0, 100)
		for i := 0; i < n; i += 100 {
			frames = frames[:0]
			for j := i; j < i+100; j++ {
				frames = append(frames, WSFrame{Op: WSText, Data: []byte(fmt.Sprintf("message %d", j))})
			}
			if err := c.WSSend(ref, frames); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	var evs [256]*Event
	for i := 0; i < n; {
		k, err := q.Poll(evs[:], waitFor)
		if err != nil || k == 0 {
			t.Fatalf("after %d echoes: %d events, %v", i, k, err)
		}
		for _, ev := range evs[:k] {
			if ev.Kind != EvWS || ev.Ref != ref || ev.WSOp != WSText {
				t.Fatalf("echo %d: got %s", i, evString(ev))
			}
			if want := fmt.Sprintf("message %d", i); string(ev.Data) != want {
				t.Fatalf("echo %d: %q, want %q", i, ev.Data, want)
			}
			i++
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// countingProxy forwards 127.0.0.1:port and counts the bytes each way.
type countingProxy struct {
	ln       net.Listener
	up, down atomic.Int64 // client→server, server→client
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
}

func startCountingProxy(t testing.TB, port int) *countingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{ln: ln}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			cc, err := ln.Accept()
			if err != nil {
				return
			}
			sc, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				cc.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, cc, sc)
			p.mu.Unlock()
			pipe := func(dst, src net.Conn, n *atomic.Int64) {
				defer p.wg.Done()
				buf := make([]byte, 32<<10)
				for {
					k, err := src.Read(buf)
					n.Add(int64(k))
					if k > 0 {
						if _, werr := dst.Write(buf[:k]); werr != nil {
							break
						}
					}
					if err != nil {
						break
					}
				}
				dst.Close()
				src.Close()
			}
			p.wg.Add(2)
			go pipe(sc, cc, &p.up)
			go pipe(cc, sc, &p.down)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *countingProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// TestWSCompression: with compress the same messages take far fewer bytes
// on the wire, both ways (counted at a proxy between us and the server).
func TestWSCompression(t *testing.T) {
	msg := []byte(strings.Repeat(`{"name":"gunmetal","kind":"websocket","compressible":true}`, 80)) // ~4.6 kB
	run := func(compress bool) (up, down int64, ext string) {
		q := newQueue(t)
		px := startCountingProxy(t, srv.HTTPPort())
		c := openTo(t, q, px.port(), `{"retry":0}`)
		awaitUp(t, c)
		ref, ev := wsUpgrade(t, q, c, "/ws", wsOpts(t, fmt.Sprintf(`{"compress":%v}`, compress)))
		ext, _ = header(ev.Headers, "sec-websocket-extensions")
		up0, down0 := px.up.Load(), px.down.Load()
		const n = 50
		for i := 0; i < n; i++ {
			wsSend(t, c, ref, WSFrame{Op: WSText, Data: msg})
		}
		for i := 0; i < n; i++ {
			if ev := expectWS(t, q, ref, WSText); !bytes.Equal(ev.Data, msg) {
				t.Fatalf("echo %d differs", i)
			}
		}
		return px.up.Load() - up0, px.down.Load() - down0, ext
	}
	plainUp, plainDown, plainExt := run(false)
	zUp, zDown, zExt := run(true)
	t.Logf("uncompressed: %d bytes up, %d down; permessage-deflate (%q): %d up, %d down", plainUp, plainDown, zExt, zUp, zDown)
	if plainExt != "" || !strings.HasPrefix(zExt, "permessage-deflate") {
		t.Fatalf("extensions: %q without compress, %q with", plainExt, zExt)
	}
	if zUp*4 > plainUp || zDown*4 > plainDown {
		t.Fatalf("compression saves too little: up %d vs %d, down %d vs %d", zUp, plainUp, zDown, plainDown)
	}
}

func TestWSSubprotocols(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{"retry":0}`)
	// The server picks the first of ours it knows: chat.
	ref, ev := wsUpgrade(t, q, c, "/ws", wsOpts(t, `{"protocols":["mqtt","chat","echo"]}`))
	if v, _ := header(ev.Headers, "sec-websocket-protocol"); v != "chat" {
		t.Fatalf("negotiated %q, want chat (headers %v)", v, ev.Headers)
	}
	wsSend(t, c, ref, WSFrame{Op: WSText, Data: []byte("hi")})
	expectWS(t, q, ref, WSText)

	// None of ours known: the server answers without one; Gun accepts that.
	c2 := up(t, q, `{"retry":0}`)
	ref2, ev := wsUpgrade(t, q, c2, "/ws", wsOpts(t, `{"protocols":[["mqtt","gun_ws_h"]]}`))
	if v, ok := header(ev.Headers, "sec-websocket-protocol"); ok {
		t.Fatalf("negotiated %q, want none", v)
	}
	wsSend(t, c2, ref2, WSFrame{Op: WSText, Data: []byte("hi")})
	expectWS(t, q, ref2, WSText)

	// The connection's ws_opts apply when WSUpgrade gets none.
	c3 := up(t, q, `{"retry":0,"ws_opts":{"protocols":["echo"]}}`)
	_, ev = wsUpgrade(t, q, c3, "/ws", nil)
	if v, _ := header(ev.Headers, "sec-websocket-protocol"); v != "echo" {
		t.Fatalf("with the connection's ws_opts: negotiated %q, want echo", v)
	}
}

// badHandshakeServer answers any request with a 101 made by mk from the
// request's Sec-WebSocket-Key, then waits.
func badHandshakeServer(t testing.TB, mk func(key string) string) *rawServer {
	return startRaw(t, func(nc net.Conn) {
		req, err := http.ReadRequest(bufio.NewReader(nc))
		if err != nil {
			return
		}
		io.WriteString(nc, mk(req.Header.Get("Sec-WebSocket-Key")))
		io.Copy(io.Discard, nc)
	})
}

func TestWSHandshakeFailures(t *testing.T) {
	for _, tc := range []struct {
		name, opts, want string
		mk               func(key string) string
	}{
		{"unoffered subprotocol", `{"protocols":["echo"]}`, "subprotocol \"other\" was not offered", func(key string) string {
			return "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-accept: " +
				wsAcceptKey(key) + "\r\nsec-websocket-protocol: other\r\n\r\n"
		}},
		{"subprotocol when none offered", `{}`, "subprotocol \"echo\" was not offered", func(key string) string {
			return "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-accept: " +
				wsAcceptKey(key) + "\r\nsec-websocket-protocol: echo\r\n\r\n"
		}},
		{"bad accept", `{}`, "invalid sec-websocket-accept", func(key string) string {
			return "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-accept: xyz=\r\n\r\n"
		}},
		{"unoffered extension", `{}`, "was not offered", func(key string) string {
			return "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-accept: " +
				wsAcceptKey(key) + "\r\nsec-websocket-extensions: permessage-deflate\r\n\r\n"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := badHandshakeServer(t, tc.mk)
			q := newQueue(t)
			c := openTo(t, q, s.port(), `{"retry":0}`)
			awaitUp(t, c)
			ref, err := c.WSUpgrade("/ws", nil, wsOpts(t, tc.opts))
			if err != nil {
				t.Fatal(err)
			}
			ev := expect(t, q, EvError, ref)
			if !strings.Contains(ev.Reason, "ws_handshake_failed") || !strings.Contains(ev.Reason, tc.want) {
				t.Fatalf("ERROR %q, want ws_handshake_failed ... %s", ev.Reason, tc.want)
			}
			ev = expect(t, q, EvDown, 0)
			if ev.Protocol != "http" || len(ev.Killed) != 1 || ev.Killed[0] != ref {
				t.Fatalf("got %s", evString(ev))
			}
			expect(t, q, EvExit, 0)
		})
	}
}

func TestWSRejected(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{"retry":0}`)
	ref, err := c.WSUpgrade("/ws-reject", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A request made after the upgrade waits for its outcome, then goes.
	after := get(t, c, "/bytes/4")
	r := readStream(t, q, ref)
	if r.err != nil || r.resp.Status != 403 || string(r.data) != "no\n" {
		t.Fatalf("rejected upgrade: %+v %q", r.resp, r.data)
	}
	if b := ok200(t, q, after); string(b) != "abcd" {
		t.Fatalf("request after a rejected upgrade: %q", b)
	}
	if err := c.WSSend(ref, []WSFrame{{Op: WSText, Data: []byte("x")}}); !errors.Is(err, ErrNoStream) {
		t.Fatalf("ws send on a rejected upgrade: %v", err)
	}
	if in := c.Info(); in.Protocol != "http" {
		t.Fatalf("protocol %q after a rejection", in.Protocol)
	}
}

// TestWSPipelined: responses of requests made before the upgrade come
// first, in order; those made after it get ERROR badstate on the 101.
func TestWSPipelined(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{"retry":0}`)
	before := get(t, c, "/delay/200")
	ref, err := c.WSUpgrade("/ws", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WSSend(ref, []WSFrame{{Op: WSText, Data: []byte("early")}}); !errors.Is(err, ErrBadState) {
		t.Fatalf("ws send before the UPGRADE: %v, want ErrBadState", err)
	}
	after := get(t, c, "/bytes/1")
	ok200(t, q, before)
	expect(t, q, EvUpgrade, ref)
	ev := expect(t, q, EvError, after)
	if !hasReason(ev, "badstate") {
		t.Fatalf("request after the upgrade: %s", evString(ev))
	}
	wsSend(t, c, ref, WSFrame{Op: WSText, Data: []byte("late")})
	if ev := expectWS(t, q, ref, WSText); string(ev.Data) != "late" {
		t.Fatalf("echo %q", ev.Data)
	}
}

func TestWSKilledInDown(t *testing.T) {
	s := startServer(t)
	q := newQueue(t)
	c := openTo(t, q, s.HTTPPort(), `{"retry":1}`)
	awaitUp(t, c)
	ref, _ := wsUpgrade(t, q, c, "/ws", nil)
	wsSend(t, c, ref, WSFrame{Op: WSText, Data: []byte("x")})
	expectWS(t, q, ref, WSText)
	s.CloseClientConns()
	ev := expect(t, q, EvError, ref)
	if !hasReason(ev, "closed") {
		t.Fatalf("got %s", evString(ev))
	}
	ev = expect(t, q, EvDown, 0)
	if ev.Protocol != "ws" || len(ev.Killed) != 1 || ev.Killed[0] != ref {
		t.Fatalf("got %s, want gun_down ws killed [%d]", evString(ev), ref)
	}
	if ev := expect(t, q, EvUp, 0); ev.Protocol != "http" {
		t.Fatalf("reconnect: %s", evString(ev))
	}
	noEvent(t, q, 200*time.Millisecond) // no re-upgrade, nothing more for the stream
}

func TestWSRequestAfterUpgrade(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{"retry":0}`)
	ref, _ := wsUpgrade(t, q, c, "/ws", nil)
	r := do(t, c, &Request{Method: "GET", Path: "/bytes/1"})
	ev := expect(t, q, EvError, 0)
	if ev.Ref != 0 || !strings.Contains(ev.Reason, "only accepts Websocket frames") {
		t.Fatalf("request on an upgraded connection: %s", evString(ev))
	}
	if _, err := c.Await(r, 200*time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("the refused request's own ref got an event: %v", err)
	}
	// A second upgrade is refused the same way.
	if _, err := c.WSUpgrade("/ws", nil, nil); err != nil {
		t.Fatal(err)
	}
	if ev := expect(t, q, EvError, 0); ev.Ref != 0 || !hasReason(ev, "badstate") {
		t.Fatalf("upgrade on an upgraded connection: %s", evString(ev))
	}
	if err := c.Data(ref, []byte("x"), true); !errors.Is(err, ErrBadState) {
		t.Fatalf("data on a ws connection: %v", err)
	}
	// The WebSocket still works.
	wsSend(t, c, ref, WSFrame{Op: WSBinary, Data: []byte{7}})
	expectWS(t, q, ref, WSBinary)
}

func TestWSHTTP10(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{"retry":0,"http_opts":{"version":"HTTP/1.0"}}`)
	ref, err := c.WSUpgrade("/ws", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev := expect(t, q, EvError, ref)
	if ev.Reason != "badstate: Websocket cannot be used over an HTTP/1.0 connection." {
		t.Fatalf("got %s", evString(ev))
	}
}

// TestWSQueuedUntilUp: an upgrade made while connecting goes out on UP.
func TestWSQueuedUntilUp(t *testing.T) {
	q := newQueue(t)
	c := openTo(t, q, srv.HTTPPort(), `{"retry":0}`)
	ref, err := c.WSUpgrade("/ws", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WSSend(ref, []WSFrame{{Op: WSText, Data: []byte("x")}}); err == nil {
		t.Fatal("ws send before the upgrade went through")
	}
	expect(t, q, EvUp, 0)
	expect(t, q, EvUpgrade, ref)
	wsSend(t, c, ref, WSFrame{Op: WSText, Data: []byte("queued")})
	expectWS(t, q, ref, WSText)
}

func TestWSMaxMessageSize(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{"retry":1}`)
	ref, _ := wsUpgrade(t, q, c, "/ws", wsOpts(t, `{"max_message_size":1000}`))
	wsSend(t, c, ref, WSFrame{Op: WSBinary, Data: make([]byte, 1000)}, WSFrame{Op: WSBinary, Data: make([]byte, 1001)})
	if ev := expectWS(t, q, ref, WSBinary); len(ev.Data) != 1000 {
		t.Fatalf("echo of 1000 bytes: %d", len(ev.Data))
	}
	ev := expect(t, q, EvError, ref)
	if !hasReason(ev, "max_message_size") || !strings.Contains(ev.Reason, "1009") {
		t.Fatalf("got %s", evString(ev))
	}
	// The close frame 1009 ends the connection; DOWN says why; no second
	// ERROR.
	expectDownUp(t, q, ref, ev.Reason)
}

func TestWSFlow(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{"retry":0}`)
	ref, _ := wsUpgrade(t, q, c, "/ws", wsOpts(t, `{"flow":2}`))
	for i := 0; i < 5; i++ {
		wsSend(t, c, ref, WSFrame{Op: WSText, Data: []byte(fmt.Sprint(i))})
	}
	for i := 0; i < 2; i++ {
		if ev := expectWS(t, q, ref, WSText); string(ev.Data) != fmt.Sprint(i) {
			t.Fatalf("message %d: %q", i, ev.Data)
		}
	}
	noEvent(t, q, 300*time.Millisecond)
	if si, _ := c.StreamInfo(ref); si.Flow != 0 {
		t.Fatalf("flow %d, want 0", si.Flow)
	}
	if err := c.UpdateFlow(ref, 3); err != nil {
		t.Fatal(err)
	}
	for i := 2; i < 5; i++ {
		if ev := expectWS(t, q, ref, WSText); string(ev.Data) != fmt.Sprint(i) {
			t.Fatalf("message %d: %q", i, ev.Data)
		}
	}
}

func TestWSPings(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{"retry":0}`)
	// silence_pings false: pongs (and pings) are events.
	ref, _ := wsUpgrade(t, q, c, "/ws", wsOpts(t, `{"silence_pings":false}`))
	wsSend(t, c, ref, WSFrame{Op: WSPing, Data: []byte("mine")})
	if ev := expectWS(t, q, ref, WSPong); string(ev.Data) != "mine" {
		t.Fatalf("pong %q, want the ping's payload", ev.Data)
	}
	// keepalive pings every 50 ms.
	c2 := up(t, q, `{"retry":0}`)
	ref2, _ := wsUpgrade(t, q, c2, "/ws", wsOpts(t, `{"silence_pings":false,"keepalive":50}`))
	expectWS(t, q, ref2, WSPong)
	expectWS(t, q, ref2, WSPong)
	// silence_pings (the default): nothing. On a queue of its own: c2's
	// keepalive pongs go on arriving on q meanwhile.
	q3 := newQueue(t)
	c3 := up(t, q3, `{"retry":0}`)
	ref3, _ := wsUpgrade(t, q3, c3, "/ws", wsOpts(t, `{"keepalive":50}`))
	wsSend(t, c3, ref3, WSFrame{Op: WSPing})
	c2.Close()
	for _, ev := range waitExit(t, q, c2) {
		if ev.Kind == EvWS && ev.WSOp != WSPong {
			t.Fatalf("keepalive: %s op %d", evString(ev), ev.WSOp)
		}
	}
	noEvent(t, q3, 300*time.Millisecond)
	noEvent(t, q, 50*time.Millisecond)
}

func TestWSSendErrors(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{"retry":0}`)
	ref, _ := wsUpgrade(t, q, c, "/ws", nil)
	for _, tc := range []struct {
		frames []WSFrame
		want   error
	}{
		{[]WSFrame{{Op: WSPing, Data: bytes.Repeat([]byte("x"), 126)}}, ErrBadArg},
		{[]WSFrame{{Op: WSPong, Data: bytes.Repeat([]byte("x"), 126)}}, ErrBadArg},
		{[]WSFrame{{Op: WSClose, Code: 1005}}, ErrBadArg},
		{[]WSFrame{{Op: WSClose, Code: 999}}, ErrBadArg},
		{[]WSFrame{{Op: WSClose, Code: 5000}}, ErrBadArg},
		{[]WSFrame{{Op: WSClose, Code: 1000, Data: bytes.Repeat([]byte("x"), 124)}}, ErrBadArg},
		{[]WSFrame{{Op: WSClose}, {Op: WSText}}, ErrBadArg},
		{[]WSFrame{{Op: WSText, Data: []byte{0xff}}}, ErrBadArg},
		{[]WSFrame{{Op: 3}}, ErrBadArg},
		// Nothing of a refused call is sent, even its valid first frames.
		{[]WSFrame{{Op: WSText, Data: []byte("not sent")}, {Op: 3}}, ErrBadArg},
	} {
		if err := c.WSSend(ref, tc.frames); !errors.Is(err, tc.want) {
			t.Fatalf("%+v: %v, want %v", tc.frames, err, tc.want)
		}
	}
	if err := c.WSSend(ref+1000, []WSFrame{{Op: WSText}}); !errors.Is(err, ErrNoStream) {
		t.Fatalf("unknown ref: %v", err)
	}
	wsSend(t, c, ref, WSFrame{Op: WSText, Data: []byte("sent")})
	if ev := expectWS(t, q, ref, WSText); string(ev.Data) != "sent" {
		t.Fatalf("first echo %q: a refused frame went out", ev.Data)
	}
	wsSend(t, c, ref, WSFrame{Op: WSClose, Code: 1000})
	if err := c.WSSend(ref, []WSFrame{{Op: WSText}}); !errors.Is(err, ErrBadState) && !errors.Is(err, ErrNoStream) {
		t.Fatalf("send after close: %v", err)
	}
	if _, err := c.WSUpgrade("bad path", nil, nil); !errors.Is(err, ErrBadArg) {
		t.Fatalf("bad path: %v", err)
	}
	if _, err := c.WSUpgrade("/ws", []Header{{"bad name", "x"}}, nil); !errors.Is(err, ErrBadArg) {
		t.Fatalf("bad header: %v", err)
	}
}

// TestWSShutdown: Gun's shutdown closes a WebSocket with 1001.
func TestWSShutdown(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{"retry":3}`)
	ref, _ := wsUpgrade(t, q, c, "/ws", nil)
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	ev := expectWS(t, q, ref, WSClose)
	if ev.CloseCode != 1001 {
		t.Fatalf("close echo %d, want 1001", ev.CloseCode)
	}
	if ev := expect(t, q, EvExit, 0); ev.Reason != "shutdown" {
		t.Fatalf("got %s", evString(ev))
	}
}

// TestWSCloseWhileUp: gm_close on a WebSocket leaves no goroutine behind
// (TestMain's leak check) and no event after EXIT.
func TestWSCloseWhileUp(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{"retry":0}`)
	ref, _ := wsUpgrade(t, q, c, "/ws", wsOpts(t, `{"keepalive":20}`))
	wsSend(t, c, ref, WSFrame{Op: WSText, Data: []byte("x")}, WSFrame{Op: WSPing})
	c.Close()
	evs := waitExit(t, q, c)
	for _, ev := range evs[:len(evs)-1] {
		if ev.Kind != EvWS {
			t.Fatalf("before EXIT: %s", evString(ev))
		}
	}
	noEvent(t, q, 100*time.Millisecond)
	if err := c.WSSend(ref, []WSFrame{{Op: WSText}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
}

// TestWSBackpressure: a host that takes no events stops the socket reads
// (the pipe and the read budget are bounded) and loses nothing.
func TestWSBackpressure(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{"retry":0}`)
	ref, _ := wsUpgrade(t, q, c, "/ws", nil)
	msg := bytes.Repeat([]byte("z"), 64<<10)
	const n = 400 // 25 MiB of echoes: more than the read budget
	go func() {
		for i := 0; i < n; i++ {
			if c.WSSend(ref, []WSFrame{{Op: WSBinary, Data: msg}}) != nil {
				return
			}
		}
	}()
	time.Sleep(500 * time.Millisecond) // let the echoes pile up against the budget
	if l := q.Len(); l*len(msg) > readBudget+2*(64<<10)+len(msg) {
		t.Fatalf("%d events (%d bytes) queued: the budget does not hold", l, l*len(msg))
	}
	for i := 0; i < n; i++ {
		if ev := expectWS(t, q, ref, WSBinary); len(ev.Data) != len(msg) {
			t.Fatalf("echo %d: %d bytes", i, len(ev.Data))
		}
	}
}

// TestWSBadEncoding: a text message that is not UTF-8 ends the stream with
// ERROR badencoding and a close frame 1007 (Gun's {error, badencoding}).
func TestWSBadEncoding(t *testing.T) {
	codes := make(chan int, 1)
	s := startRaw(t, func(nc net.Conn) {
		br := bufio.NewReader(nc)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.WriteString(nc, "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-accept: "+
			wsAcceptKey(req.Header.Get("Sec-WebSocket-Key"))+"\r\n\r\n")
		nc.Write([]byte{0x81, 0x02, 0xff, 0xfe}) // text, 2 bytes, not UTF-8
		// The client's close frame: masked, code in the first 2 bytes.
		var h [8]byte
		if _, err := io.ReadFull(br, h[:]); err != nil || h[0] != 0x88 {
			codes <- -1
			return
		}
		codes <- int(h[6]^h[2])<<8 | int(h[7]^h[3])
		nc.Close()
	})
	q := newQueue(t)
	c := openTo(t, q, s.port(), `{"retry":0}`)
	awaitUp(t, c)
	ref, _ := wsUpgrade(t, q, c, "/", wsOpts(t, `{"closing_timeout":200}`))
	ev := expect(t, q, EvError, ref)
	if !hasReason(ev, "badencoding") {
		t.Fatalf("got %s", evString(ev))
	}
	select {
	case code := <-codes:
		if code != 1007 {
			t.Fatalf("close code %d, want 1007", code)
		}
	case <-time.After(waitFor):
		t.Fatal("no close frame")
	}
	if ev := expect(t, q, EvDown, 0); ev.Protocol != "ws" || len(ev.Killed) != 1 || ev.Killed[0] != ref {
		t.Fatalf("got %s", evString(ev))
	}
	expect(t, q, EvExit, 0)
}

// TestWSClosingTimeout: a peer that never answers our close frame: after
// closing_timeout the stream gets ERROR closing_timeout and the connection
// goes with that reason, the stream in DOWN's killed list.
func TestWSClosingTimeout(t *testing.T) {
	s := startRaw(t, func(nc net.Conn) {
		br := bufio.NewReader(nc)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.WriteString(nc, "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-accept: "+
			wsAcceptKey(req.Header.Get("Sec-WebSocket-Key"))+"\r\n\r\n")
		io.Copy(io.Discard, br) // never answers
	})
	q := newQueue(t)
	c := openTo(t, q, s.port(), `{"retry":0}`)
	awaitUp(t, c)
	ref, _ := wsUpgrade(t, q, c, "/", wsOpts(t, `{"closing_timeout":300}`))
	start := time.Now()
	wsSend(t, c, ref, WSFrame{Op: WSClose, Code: 1000})
	if si, err := c.StreamInfo(ref); err != nil || si.State != "stopping" {
		t.Fatalf("stream info while closing: %+v %v", si, err)
	}
	ev := expect(t, q, EvError, ref)
	if !hasReason(ev, "closing_timeout") || !strings.Contains(ev.Reason, "300 ms") {
		t.Fatalf("got %s", evString(ev))
	}
	ev = expect(t, q, EvDown, 0)
	if ev.Protocol != "ws" || !hasReason(ev, "closing_timeout") || len(ev.Killed) != 1 || ev.Killed[0] != ref {
		t.Fatalf("got %s", evString(ev))
	}
	t.Logf("DOWN %v after the close frame (closing_timeout 300 ms)", time.Since(start))
	expect(t, q, EvExit, 0)
}

// TestWSOverHTTP2NoExtendedConnect: the test server's HTTP/2 does not
// send SETTINGS_ENABLE_CONNECT_PROTOCOL, so RFC 8441 cannot be used: the
// stream gets ERROR badstate (an upgrade made before the server's SETTINGS
// waits for them), and the connection goes on. RFC 8441 itself is tested
// against hypercorn in tests/wsinterop.
func TestWSOverHTTP2NoExtendedConnect(t *testing.T) {
	q := newQueue(t)
	c := openTo(t, q, srv.HTTPPort(), `{"retry":0,"protocols":["http2"]}`)
	early, err := c.WSUpgrade("/ws", nil, nil) // most likely before UP
	if err != nil {
		t.Fatal(err)
	}
	var evs []*Event
	for len(evs) < 2 {
		evs = append(evs, nextOf(t, q, c))
	}
	for _, ev := range evs {
		switch {
		case ev.Kind == EvUp && ev.Protocol == "http2":
		case ev.Kind == EvError && ev.Ref == early && strings.Contains(ev.Reason, "SETTINGS_ENABLE_CONNECT_PROTOCOL"):
		default:
			t.Fatalf("got %s", evString(ev))
		}
	}
	late, err := c.WSUpgrade("/ws", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ev := expect(t, q, EvError, late); !hasReason(ev, "badstate") {
		t.Fatalf("got %s", evString(ev))
	}
	// The connection is unharmed.
	if b := ok200(t, q, get(t, c, "/bytes/2")); string(b) != "ab" {
		t.Fatalf("GET: %q", b)
	}
}

// TestWSSendNoWait: a server that stops reading (its echoes are not taken
// from the queue, so it blocks writing them): WSSendNoWait never blocks,
// refuses with ErrWouldBlock once the output is past its bound, and every
// frame it accepted, and none it refused, is echoed once the queue drains.
func TestWSSendNoWait(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{"retry":0}`)
	ref, _ := wsUpgrade(t, q, c, "/ws", nil)
	payload := func(i int) []byte {
		b := bytes.Repeat([]byte{'.'}, 64<<10)
		copy(b, fmt.Sprintf("%08d", i))
		return b
	}
	sent, refused := 0, -1
	for i := 0; i < 4096; i++ {
		err := c.WSSendNoWait(ref, []WSFrame{{Op: WSBinary, Data: payload(i)}})
		if errors.Is(err, ErrWouldBlock) {
			refused = i
			break
		}
		if err != nil {
			t.Fatalf("WSSendNoWait %d: %v", i, err)
		}
		sent++
	}
	if refused < 0 {
		t.Fatalf("%d frames of 64 KiB accepted and never ErrWouldBlock", sent)
	}
	for i := 0; i < sent; i++ {
		ev := expectWS(t, q, ref, WSBinary)
		if got := string(ev.Data[:8]); got != fmt.Sprintf("%08d", i) {
			t.Fatalf("echo %d is frame %s", i, got)
		}
	}
	noEvent(t, q, 200*time.Millisecond) // the refused frame was not sent
	if err := c.WSSendNoWait(ref, []WSFrame{{Op: WSText, Data: []byte("after")}}); err != nil {
		t.Fatalf("WSSendNoWait once drained: %v", err)
	}
	if ev := expectWS(t, q, ref, WSText); string(ev.Data) != "after" {
		t.Fatalf("echo %q", ev.Data)
	}
}
