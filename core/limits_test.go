package core

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestRequestTargetAndLimits: issue 9 item 8 on the Go API. Control
// characters in header values (other than HTAB), request targets of the
// wrong form and lengths past the documented limits are ErrBadArg, and
// nothing reaches the wire; what is allowed (HTAB, "*" for OPTIONS,
// absolute-form on HTTP/1.1) goes out as given.
func TestRequestTargetAndLimits(t *testing.T) {
	got := make(chan []byte, 8)
	rs := startRaw(t, func(nc net.Conn) {
		for {
			b, err := readRequest(nc)
			if err != nil {
				return
			}
			got <- b
			if _, err := io.WriteString(nc, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"); err != nil {
				return
			}
		}
	})
	q := newQueue(t)
	c := openTo(t, q, rs.port(), `{}`)
	awaitUp(t, c)

	many := make([]Header, MaxRequestHeaders+1)
	for i := range many {
		many[i] = Header{"x", ""}
	}
	big := strings.Repeat("a", 100<<20) // the 100 MB header value
	bad := map[string]*Request{
		"value with 0x01":         {Method: "GET", Path: "/", Headers: []Header{{"x", "a\x01b"}}},
		"value with DEL":          {Method: "GET", Path: "/", Headers: []Header{{"x", "a\x7fb"}}},
		"value with ESC":          {Method: "GET", Path: "/", Headers: []Header{{"x", "\x1b[31m"}}},
		"value with VT":           {Method: "GET", Path: "/", Headers: []Header{{"x", "a\x0bb"}}},
		"path without slash":      {Method: "GET", Path: "index.html"},
		"path query only":         {Method: "GET", Path: "?a=1"},
		"asterisk with GET":       {Method: "GET", Path: "*"},
		"authority-form":          {Method: "GET", Path: "example.com:443"},
		"scheme without host":     {Method: "GET", Path: "http:///x"},
		"other scheme":            {Method: "GET", Path: "ftp://example.com/"},
		"too many headers":        {Method: "GET", Path: "/", Headers: many},
		"100 MB header value":     {Method: "GET", Path: "/", Headers: []Header{{"x", big}}},
		"header bytes past limit": {Method: "GET", Path: "/", Headers: []Header{{"x", big[:MaxHeaderBytes/2]}, {"y", big[:MaxHeaderBytes/2]}}},
		"path past limit":         {Method: "GET", Path: "/" + big[:MaxTargetLen]},
		"method past limit":       {Method: big[:MaxTargetLen+1], Path: "/"},
	}
	var ms runtime.MemStats
	for name, r := range bad {
		runtime.ReadMemStats(&ms)
		before := ms.TotalAlloc
		ref, err := c.Request(r)
		if !errors.Is(err, ErrBadArg) || ref != 0 {
			t.Errorf("%s: ref %d, err %v; want ErrBadArg", name, ref, err)
			continue
		}
		runtime.ReadMemStats(&ms)
		// A refusal copies nothing of the size of what it refuses.
		if d := ms.TotalAlloc - before; d > 1<<20 {
			t.Errorf("%s: refusing it allocated %d bytes", name, d)
		}
		if strings.Contains(name, "limit") || name == "too many headers" || name == "100 MB header value" {
			if !strings.Contains(err.Error(), "limit") {
				t.Errorf("%s: error %q does not name the limit", name, err)
			}
		}
	}
	if q.Len() != 0 {
		t.Fatalf("refused requests queued %d events", q.Len())
	}
	good := []struct {
		r    *Request
		line string
	}{
		{&Request{Method: "GET", Path: "/tab", Headers: []Header{{"x", "a\tb"}}}, "GET /tab HTTP/1.1\r\n"},
		{&Request{Method: "OPTIONS", Path: "*"}, "OPTIONS * HTTP/1.1\r\n"},
		{&Request{Method: "GET", Path: "http://example.com/p?q"}, "GET http://example.com/p?q HTTP/1.1\r\n"},
		{&Request{Method: "GET", Path: "/", Headers: []Header{{"x", big[:MaxHeaderBytes-1]}}}, "GET / HTTP/1.1\r\n"},
	}
	for _, g := range good {
		ref, err := c.Request(g.r)
		if err != nil {
			t.Fatalf("%s %s refused: %v", g.r.Method, truncateForMsg(g.r.Path, 40), err)
		}
		var b []byte
		select {
		case b = <-got:
		case <-time.After(waitFor):
			t.Fatal("a valid request never reached the server")
		}
		if !bytes.HasPrefix(b, []byte(g.line)) {
			t.Fatalf("the server's first bytes are %q, want %q: something else was written first", truncateForMsg(string(b), 80), g.line)
		}
		ok200(t, q, ref)
	}
	if n := len(rs.acceptTimes()); n != 1 {
		t.Fatalf("%d connections", n)
	}
}

// TestAbsoluteFormRefusedWhereHTTP2: :path cannot carry an absolute-form
// target, so it is refused whenever HTTP/2 is or may be spoken.
func TestAbsoluteFormRefusedWhereHTTP2(t *testing.T) {
	q := newQueue(t)
	for _, js := range []string{`{"protocols":["http2"]}`, `{"transport":"tls","protocols":["http2","http"]}`} {
		c := openTo(t, q, 1, js)
		_, err := c.Request(&Request{Method: "GET", Path: "http://example.com/"})
		if !errors.Is(err, ErrBadArg) || !strings.Contains(err.Error(), "absolute-form") {
			t.Errorf("%s: %v; want ErrBadArg naming absolute-form", js, err)
		}
	}
}
