package h2interop

import (
	"strconv"
	"testing"

	"gunmetal/core"
	"gunmetal/tests/nginx"
)

// openHTTP1 connects and waits for UP http.
func openHTTP1(t *testing.T, q *core.Queue, port int, js string) *core.Conn {
	t.Helper()
	o, err := core.ParseOptions([]byte(js), port)
	if err != nil {
		t.Fatal(err)
	}
	c, err := core.Open("localhost", port, o, q, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); <-c.Done() })
	if p, err := c.AwaitUp(waitFor); err != nil || p != "http" {
		t.Fatalf("UP %q %v, want http", p, err)
	}
	return c
}

// TestNginxHTTP1: the HTTP/1.1 engine against a server nobody here wrote:
// keep-alive, pipelining, content-length and chunked bodies, HEAD, 204,
// 301, 404, over TCP and over TLS with ALPN http/1.1.
func TestNginxHTTP1(t *testing.T) {
	n := nginx.Start(t)
	for _, tc := range []struct {
		name string
		port int
		opts string
	}{
		{"tcp", n.HTTPPort, `{}`},
		{"tls", n.TLSPort, tlsOpts(n.CAFile, `,"protocols":["http"]`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := newQueue(t)
			c := openHTTP1(t, q, tc.port, tc.opts)

			// 50 pipelined requests of every size, answered in order.
			sizes := []int{0, 100, 100000, 10485760}
			var refs []uint64
			for i := range 50 {
				refs = append(refs, get(t, c, "/bytes/"+strconv.Itoa(sizes[i%len(sizes)])))
			}
			res := collect(t, q, refs, nil)
			for i, ref := range refs {
				r := res[ref]
				if r.status != 200 || r.err != "" {
					t.Fatalf("#%d: %+v\n%s", i, r, n.ErrorLog())
				}
				checkPattern(t, r.body, sizes[i%len(sizes)])
			}

			// Chunked (SSI), HEAD, 204, 301, 404 on the same connection.
			chunked := get(t, c, "/chunked.shtml")
			head, err := c.Request(&core.Request{Method: "HEAD", Path: "/bytes/100"})
			if err != nil {
				t.Fatal(err)
			}
			s204, s301, s404 := get(t, c, "/status204"), get(t, c, "/redirect"), get(t, c, "/nothing-here")
			res = collect(t, q, []uint64{chunked, head, s204, s301, s404}, nil)
			if r := res[chunked]; r.status != 200 || header(r.headers, "transfer-encoding") != "chunked" || len(r.body) == 0 {
				t.Fatalf("chunked: %+v", r)
			}
			if r := res[head]; r.status != 200 || len(r.body) != 0 || header(r.headers, "content-length") != "100" {
				t.Fatalf("HEAD: %+v", r)
			}
			if res[s204].status != 204 || res[s301].status != 301 || res[s404].status != 404 {
				t.Fatalf("204 %+v 301 %+v 404 %+v", res[s204], res[s301], res[s404])
			}
			// collect fails on any DOWN: all of it went over one connection.
			if in := c.Info(); in.State != "connected" || in.Protocol != "http" {
				t.Fatalf("info %+v", in)
			}
		})
	}
}
