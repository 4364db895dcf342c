package core

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Issue 11, first slice: Gun's raw protocol over tcp and tls, half-close,
// graceful shutdown, flow as gen_tcp's {active, N}.

// rawUp opens a raw connection to port and waits for its UP "raw".
func rawUp(t *testing.T, q *Queue, port int, js string) *Conn {
	t.Helper()
	c := openTo(t, q, port, js)
	p, err := c.AwaitUp(waitFor)
	if err != nil {
		t.Fatalf("await up: %v", err)
	}
	if p != "raw" {
		t.Fatalf("UP protocol %q, want raw", p)
	}
	return c
}

// rawRead takes DATA events of c (ref 0, Gun's undefined) until n bytes
// came, failing on any other event.
func rawRead(t *testing.T, q *Queue, c *Conn, n int) []byte {
	t.Helper()
	var got []byte
	for len(got) < n {
		ev := nextOf(t, q, c)
		if ev.Kind != EvData || ev.Ref != 0 || ev.Fin {
			t.Fatalf("after %d of %d bytes: %s, want DATA on ref 0", len(got), n, evString(ev))
		}
		got = append(got, ev.Data...)
	}
	if len(got) != n {
		t.Fatalf("got %d bytes, want %d", len(got), n)
	}
	return got
}

// expectEnd takes c's remaining events: optionally a DOWN (closed), then
// the EXIT with reason exit.
func expectEnd(t *testing.T, q *Queue, c *Conn, down bool, exit string) {
	t.Helper()
	if down {
		ev := nextOf(t, q, c)
		if ev.Kind != EvDown || ev.Protocol != "raw" || ev.Reason != "closed" || len(ev.Killed) != 0 {
			t.Fatalf("got %s, want DOWN raw closed, no stream killed", evString(ev))
		}
	}
	ev := nextOf(t, q, c)
	if ev.Kind != EvExit || ev.Reason != exit {
		t.Fatalf("got %s, want EXIT %s", evString(ev), exit)
	}
}

func echoServer(t *testing.T) *rawServer {
	return startRaw(t, func(nc net.Conn) {
		io.Copy(nc, nc)
		nc.Close()
	})
}

// TestRawEcho: bytes both ways through a Go echo server, in order, on ref
// 0; requests and other refs are refused, naming why.
func TestRawEcho(t *testing.T) {
	s := echoServer(t)
	q := newQueue(t)
	c := rawUp(t, q, s.port(), `{"protocols":["raw"],"retry":0}`)

	if err := c.Data(0, []byte("hello"), false); err != nil {
		t.Fatal(err)
	}
	if got := rawRead(t, q, c, 5); string(got) != "hello" {
		t.Fatalf("echo %q", got)
	}
	// A megabyte in pieces comes back whole and in order.
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	for off := 0; off < len(big); off += 100000 {
		if err := c.Data(0, big[off:min(off+100000, len(big))], false); err != nil {
			t.Fatal(err)
		}
	}
	if got := rawRead(t, q, c, len(big)); !bytes.Equal(got, big) {
		t.Fatal("1 MiB echo differs")
	}

	if _, err := c.Request(&Request{Method: "GET", Path: "/"}); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "raw") {
		t.Errorf("request on raw: %v", err)
	}
	if err := c.Data(7, []byte("x"), false); !errors.Is(err, ErrNoStream) || !strings.Contains(err.Error(), "ref 0") {
		t.Errorf("data on ref 7: %v", err)
	}
	if err := c.UpdateFlow(0, 1); !errors.Is(err, ErrBadState) || !strings.Contains(err.Error(), "raw_opts.flow") {
		t.Errorf("update_flow without flow: %v", err)
	}
	si, err := c.StreamInfo(0)
	if err != nil || si.State != "running" || si.Protocol != "raw" || si.Flow != -1 {
		t.Errorf("stream info %+v %v", si, err)
	}
	c.Close()
	expectEnd(t, q, c, false, "shutdown")
}

// TestRawHalfClose: fin on Data shuts down the write side only: the server
// reads EOF (all of it came), answers, and the client still reads the
// answer; then the server's close is a DOWN/EXIT. Data after fin is
// refused.
func TestRawHalfClose(t *testing.T) {
	s := startRaw(t, func(nc net.Conn) {
		defer nc.Close()
		got, err := io.ReadAll(nc) // until the client's FIN
		if err != nil {
			return
		}
		fmt.Fprintf(nc, "got %d: %s", len(got), got)
	})
	q := newQueue(t)
	c := rawUp(t, q, s.port(), `{"protocols":["raw"],"retry":0}`)
	if err := c.Data(0, []byte("abc"), false); err != nil {
		t.Fatal(err)
	}
	if err := c.Data(0, []byte("def"), true); err != nil {
		t.Fatal(err)
	}
	if err := c.Data(0, []byte("more"), false); !errors.Is(err, ErrBadState) {
		t.Errorf("data after fin: %v", err)
	}
	if si, err := c.StreamInfo(0); err != nil || si.State != "stopping" {
		t.Errorf("stream info after fin %+v %v", si, err)
	}
	want := "got 6: abcdef"
	if got := rawRead(t, q, c, len(want)); string(got) != want {
		t.Fatalf("reply %q, want %q", got, want)
	}
	expectEnd(t, q, c, true, "closed")
}

// TestRawHalfCloseSocat: the same against socat (a server nobody here
// wrote): socat passes the client's FIN on as EOF to `wc -c`, whose count
// comes back on the half-closed connection.
func TestRawHalfCloseSocat(t *testing.T) {
	if _, err := exec.LookPath("socat"); err != nil {
		t.Fatal("socat is missing (Debian package socat; scripts/deps.sh installs it)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // socat listens on it next (for one connection)
	cmd := exec.Command("socat", "TCP-LISTEN:"+strconv.Itoa(port)+",bind=127.0.0.1,reuseaddr", "SYSTEM:wc -c")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	q := newQueue(t)
	var c *Conn
	for deadline := time.Now().Add(waitFor); ; {
		c = openTo(t, q, port, `{"protocols":["raw"],"retry":0}`)
		ev := nextOf(t, q, c)
		if ev.Kind == EvUp {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("socat did not listen again: %s; %s", evString(ev), stderr.String())
		}
		time.Sleep(20 * time.Millisecond) // EXIT econnrefused: socat is not listening yet
	}
	payload := bytes.Repeat([]byte("0123456789"), 1000)
	if err := c.Data(0, payload, true); err != nil {
		t.Fatal(err)
	}
	got := []byte{}
	for !bytes.Contains(got, []byte("\n")) {
		ev := nextOf(t, q, c)
		if ev.Kind != EvData {
			t.Fatalf("got %s before wc's count (so far %q); socat: %s", evString(ev), got, stderr.String())
		}
		got = append(got, ev.Data...)
	}
	if strings.TrimSpace(string(got)) != "10000" {
		t.Fatalf("wc -c said %q, want 10000", got)
	}
	expectEnd(t, q, c, true, "closed")
}

// TestRawShutdown: a graceful shutdown half-closes and waits for the
// peer's close, reading what it still sends; then EXIT shutdown without a
// DOWN. A peer that never closes is cut at closing_timeout.
func TestRawShutdown(t *testing.T) {
	var sawEOF atomic.Int32
	s := startRaw(t, func(nc net.Conn) {
		defer nc.Close()
		if _, err := io.ReadAll(nc); err != nil {
			return
		}
		sawEOF.Add(1)
		nc.Write([]byte("bye"))
	})
	q := newQueue(t)
	c := rawUp(t, q, s.port(), `{"protocols":["raw"],"retry":3}`)
	if err := c.Data(0, []byte("x"), false); err != nil {
		t.Fatal(err)
	}
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if got := rawRead(t, q, c, 3); string(got) != "bye" {
		t.Fatalf("after shutdown %q", got)
	}
	expectEnd(t, q, c, false, "shutdown")
	if sawEOF.Load() != 1 {
		t.Fatal("the server never read EOF")
	}

	// A peer that reads the EOF but never closes: closing_timeout ends it.
	hold := make(chan struct{})
	s2 := startRaw(t, func(nc net.Conn) {
		defer nc.Close()
		if _, err := io.ReadAll(nc); err == nil {
			sawEOF.Add(1)
		}
		<-hold
	})
	t.Cleanup(func() { close(hold) }) // before s2's close (cleanups run last first)
	c2 := rawUp(t, q, s2.port(), `{"protocols":["raw"],"retry":3,"raw_opts":{"closing_timeout":200}}`)
	if err := c2.Shutdown(); err != nil {
		t.Fatal(err)
	}
	expectEnd(t, q, c2, false, "shutdown")
	if sawEOF.Load() != 2 {
		t.Fatal("the second server never read EOF")
	}
}

// TestRawFlow: raw_opts.flow is gen_tcp's {active, N}: after N DATA events
// reading stops and a NOTIFY "passive" follows the Nth; bytes sent
// meanwhile wait (in the kernel) until UpdateFlow adds flow.
func TestRawFlow(t *testing.T) {
	send := make(chan string)
	s := startRaw(t, func(nc net.Conn) {
		defer nc.Close()
		for m := range send {
			if _, err := nc.Write([]byte(m)); err != nil {
				return
			}
		}
	})
	t.Cleanup(func() { close(send) })
	q := newQueue(t)
	c := rawUp(t, q, s.port(), `{"protocols":["raw"],"retry":0,"raw_opts":{"flow":2}}`)
	data := func(want string) {
		t.Helper()
		ev := nextOf(t, q, c)
		if ev.Kind != EvData || ev.Ref != 0 || string(ev.Data) != want {
			t.Fatalf("got %s, want DATA %q", evString(ev), want)
		}
	}
	passive := func() {
		t.Helper()
		ev := nextOf(t, q, c)
		if ev.Kind != EvNotify || ev.Ref != 0 || ev.Reason != "passive" {
			t.Fatalf("got %s, want NOTIFY passive", evString(ev))
		}
	}
	send <- "one"
	data("one")
	send <- "two"
	data("two")
	passive()
	send <- "three" // written while passive: not read
	noEvent(t, q, 300*time.Millisecond)
	if si, err := c.StreamInfo(0); err != nil || si.Flow != 0 {
		t.Fatalf("stream info while passive %+v %v", si, err)
	}
	if err := c.UpdateFlow(0, 1); err != nil {
		t.Fatal(err)
	}
	data("three")
	passive()
	if err := c.UpdateFlow(0, 5); err != nil {
		t.Fatal(err)
	}
	send <- "four"
	data("four")
	if si, err := c.StreamInfo(0); err != nil || si.Flow != 4 {
		t.Fatalf("stream info %+v %v, want flow 4", si, err)
	}
	if err := c.UpdateFlow(9, 1); !errors.Is(err, ErrNoStream) {
		t.Errorf("update_flow on ref 9: %v", err)
	}
	c.Close()
	expectEnd(t, q, c, false, "shutdown")
}

// TestRawTLS: raw over TLS (no ALPN offered): echo, then fin sends
// close_notify, the server reads EOF, answers, closes.
func TestRawTLS(t *testing.T) {
	p := newTestPKI(t)
	cfg := &tls.Config{Certificates: []tls.Certificate{p.server}}
	var alpn atomic.Value
	cfg.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		alpn.Store(fmt.Sprint(h.SupportedProtos))
		return nil, nil
	}
	s := startRaw(t, func(nc net.Conn) {
		tc := tls.Server(nc, cfg)
		defer tc.Close()
		buf := make([]byte, 4096)
		var all []byte
		for {
			n, err := tc.Read(buf)
			if n > 0 {
				all = append(all, buf[:n]...)
				tc.Write(buf[:n]) // echo
			}
			if err != nil {
				if err == io.EOF {
					fmt.Fprintf(tc, "|eof after %d", len(all))
				}
				return
			}
		}
	})
	q := newQueue(t)
	c := rawUp(t, q, s.port(), `{"transport":"tls","protocols":["raw"],"retry":0,"tls_opts":{"cacertfile":"`+p.caFile+`"}}`)
	if err := c.Data(0, []byte("secret"), false); err != nil {
		t.Fatal(err)
	}
	if got := rawRead(t, q, c, 6); string(got) != "secret" {
		t.Fatalf("tls echo %q", got)
	}
	if err := c.Data(0, []byte("!"), true); err != nil {
		t.Fatal(err)
	}
	want := "!|eof after 7"
	if got := rawRead(t, q, c, len(want)); string(got) != want {
		t.Fatalf("after fin %q, want %q", got, want)
	}
	expectEnd(t, q, c, true, "closed")
	if a := alpn.Load(); a != "[]" {
		t.Errorf("raw offered ALPN %v", a)
	}
}

// TestRawPeerCloseRetry: a peer close is DOWN "closed" (no stream killed)
// then a reconnect per retry, UP raw again; retries run out into EXIT.
func TestRawPeerCloseRetry(t *testing.T) {
	var n atomic.Int32
	s := startRaw(t, func(nc net.Conn) {
		if n.Add(1) == 1 {
			nc.Write([]byte("hi"))
		}
		nc.Close()
	})
	q := newQueue(t)
	c := rawUp(t, q, s.port(), `{"protocols":["raw"],"retry":1,"retry_timeout":10}`)
	if got := rawRead(t, q, c, 2); string(got) != "hi" {
		t.Fatalf("got %q", got)
	}
	ev := nextOf(t, q, c)
	if ev.Kind != EvDown || ev.Protocol != "raw" || ev.Reason != "closed" || len(ev.Killed) != 0 {
		t.Fatalf("got %s, want DOWN raw closed", evString(ev))
	}
	if ev = nextOf(t, q, c); ev.Kind != EvUp || ev.Protocol != "raw" {
		t.Fatalf("got %s, want UP raw (the retry)", evString(ev))
	}
	expectEnd(t, q, c, true, "closed")
	if got := n.Load(); got != 2 {
		t.Fatalf("%d connections, want 2", got)
	}
}

// TestRawUnix: raw over a Unix stream socket, fin half-closes it too.
func TestRawUnix(t *testing.T) {
	path := t.TempDir() + "/raw.sock"
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		got, _ := io.ReadAll(nc)
		fmt.Fprintf(nc, "unix got %q", got)
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	q := newQueue(t)
	c, err := OpenUnix(path, parseOpts(t, `{"protocols":["raw"],"retry":0}`, 0), q, nil)
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, c)
	if p, err := c.AwaitUp(waitFor); err != nil || p != "raw" {
		t.Fatalf("await up %q %v", p, err)
	}
	if err := c.Data(0, []byte("over unix"), true); err != nil {
		t.Fatal(err)
	}
	want := `unix got "over unix"`
	if got := rawRead(t, q, c, len(want)); string(got) != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	expectEnd(t, q, c, true, "closed")
}

// TestRawAwait: Await on ref 0 (the raw stream) takes its DATA, then the
// DOWN; the EXIT is never taken but stays queued (ErrClosed), as for every
// stream.
func TestRawAwait(t *testing.T) {
	start := make(chan struct{})
	s := startRaw(t, func(nc net.Conn) {
		<-start
		nc.Write([]byte("x"))
		nc.Close()
	})
	q := newQueue(t)
	c := rawUp(t, q, s.port(), `{"protocols":["raw"],"retry":0}`)
	close(start)
	ev, err := c.Await(0, waitFor)
	if err != nil || ev.Kind != EvData || string(ev.Data) != "x" {
		t.Fatalf("await: %v %v", ev, err)
	}
	if ev, err = c.Await(0, waitFor); err != nil || ev.Kind != EvDown {
		t.Fatalf("await: %v %v, want the DOWN", ev, err)
	}
	<-c.Done()
	if ev, err = c.Await(0, waitFor); !errors.Is(err, ErrClosed) {
		t.Fatalf("await after exit: %v %v, want ErrClosed", ev, err)
	}
	expectEnd(t, q, c, false, "closed")
}

// TestRawResetIsNotEOF: a peer's reset after some bytes is DOWN
// "econnreset", never a clean "closed": the idle reader's readiness peek
// must not swallow the socket's pending error (seen as an EOF before).
func TestRawResetIsNotEOF(t *testing.T) {
	for i := 0; i < 20; i++ {
		s := startRaw(t, func(nc net.Conn) {
			nc.Write([]byte("partial"))
			time.Sleep(50 * time.Millisecond) // the client reads it, then waits idle
			nc.(*net.TCPConn).SetLinger(0)
			nc.Close()
		})
		q := newQueue(t)
		c := rawUp(t, q, s.port(), `{"retry":0,"protocols":["raw"]}`)
		rawRead(t, q, c, 7)
		if ev := nextOf(t, q, c); ev.Kind != EvDown || ev.Reason != "econnreset" {
			t.Fatalf("got %s, want DOWN econnreset", evString(ev))
		}
		nextOf(t, q, c) // EXIT
	}
}
