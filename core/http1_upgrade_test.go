package core

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// Issue 11: HTTP/1.1 Upgrade to raw, as Gun's raw_SUITE
// http11_upgrade_raw_tcp and http11_upgrade_raw_reply_to: a GET with
// connection: upgrade, upgrade: custom/1.0 answered by 101 makes the
// connection raw; UPGRADE names the protocols; the bytes after the 101 and
// everything after are the raw stream's (ref 0), in the request's reply_to.

// upgradeServer reads one request, checks it asked for custom/1.0, answers
// 101 (once answer is closed, with early right after it) and echoes. A
// request that did not ask gets a 200.
func upgradeServer(t *testing.T, early string, answer <-chan struct{}) *rawServer {
	return startRaw(t, func(nc net.Conn) {
		defer nc.Close()
		br := bufio.NewReader(nc)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if req.Header.Get("Upgrade") != "custom/1.0" {
			io.WriteString(nc, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nno")
			return
		}
		<-answer
		io.WriteString(nc, "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: Custom/1.0\r\n\r\n"+early)
		io.Copy(nc, br)
	})
}

func TestHTTP1UpgradeRaw(t *testing.T) {
	for i, replyTo := range []bool{false, true, false} {
		early := "early bytes"
		if i == 2 {
			early = "" // nothing after the 101: no empty DATA either
		}
		answer := make(chan struct{})
		s := upgradeServer(t, early, answer)
		q := newQueue(t)
		dst := q
		c := openTo(t, q, s.port(), `{"retry":0}`)
		if p, err := c.AwaitUp(waitFor); err != nil || p != "http" {
			t.Fatalf("up: %q %v", p, err)
		}
		r := &Request{Method: "GET", Path: "/", Headers: []Header{{"connection", "upgrade"}, {"upgrade", "custom/1.0"}}}
		if replyTo {
			dst = newQueue(t)
			r.ReplyTo = dst
		}
		ref, err := c.Request(r)
		if err != nil {
			t.Fatal(err)
		}
		// Made after the upgrade request: waits for its answer, then fails.
		ref2, err := c.Request(&Request{Method: "GET", Path: "/later"})
		if err != nil {
			t.Fatal(err)
		}
		close(answer)
		ev, err := c.Await(ref, waitFor)
		if err != nil || ev.Kind != EvUpgrade || ev.Protocol != "custom/1.0" {
			t.Fatalf("replyTo %v: got %v %v, want UPGRADE custom/1.0", replyTo, evString(ev), err)
		}
		if v, _ := hasHeader(ev.Headers, "upgrade"); v != "Custom/1.0" {
			t.Errorf("UPGRADE headers %v", ev.Headers)
		}
		ev, err = c.Await(ref2, waitFor)
		if err != nil || ev.Kind != EvError || ev.Reason != "badstate: the connection was upgraded to raw." {
			t.Fatalf("the request after the upgrade: %v %v", evString(ev), err)
		}
		if early != "" {
			if ev := nextOf(t, dst, c); ev.Kind != EvData || ev.Ref != 0 || string(ev.Data) != early {
				t.Fatalf("the bytes after the 101: %s", evString(ev))
			}
		}
		if err := c.Data(0, []byte("Hello world!"), false); err != nil {
			t.Fatal(err)
		}
		// Gun's gun:await(ConnPid, undefined) in the reply_to process.
		ev, err = c.Await(0, waitFor)
		if err != nil || ev.Kind != EvData || string(ev.Data) != "Hello world!" {
			t.Fatalf("await ref 0: %v %v", evString(ev), err)
		}
		if info := c.Info(); info.Protocol != "raw" {
			t.Errorf("info protocol %q, want raw", info.Protocol)
		}
		// A request on the upgraded connection: an ERROR naming raw.
		ref3, err := c.Request(&Request{Method: "GET", Path: "/"})
		if err != nil {
			t.Fatal(err)
		}
		if ev, err := c.Await(ref3, waitFor); err != nil || ev.Kind != EvError || !strings.Contains(ev.Reason, "raw") {
			t.Errorf("a request on the upgraded connection: %v %v", evString(ev), err)
		}
		c.Close()
		waitExit(t, q, c)
	}
}

// TestHTTP1UpgradeRawRefused: a server that answers the upgrade request
// with an ordinary response: the connection stays HTTP and the requests
// that waited go out.
func TestHTTP1UpgradeRawRefused(t *testing.T) {
	s := startRaw(t, func(nc net.Conn) {
		defer nc.Close()
		br := bufio.NewReader(nc)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.WriteString(nc, "HTTP/1.1 200 OK\r\ncontent-length: "+strconv.Itoa(len(req.URL.Path))+"\r\n\r\n"+req.URL.Path)
		}
	})
	q := newQueue(t)
	c := openTo(t, q, s.port(), `{"retry":0}`)
	if _, err := c.AwaitUp(waitFor); err != nil {
		t.Fatal(err)
	}
	ref, _ := c.Request(&Request{Method: "GET", Path: "/up", Headers: []Header{{"connection", "upgrade"}, {"upgrade", "custom/1.0"}}})
	ref2, _ := c.Request(&Request{Method: "GET", Path: "/after"})
	for _, x := range []struct {
		ref  uint64
		body string
	}{{ref, "/up"}, {ref2, "/after"}} {
		b, err := c.AwaitBody(x.ref, waitFor)
		if err != nil || string(b.Data) != x.body {
			t.Fatalf("%s: %v %v", x.body, b, err)
		}
	}
	if info := c.Info(); info.Protocol != "http" {
		t.Errorf("protocol %q", info.Protocol)
	}
	c.Close()
	waitExit(t, q, c)
}
