package hostile

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"gunmetal/core"
)

// HTTP/1.1 servers that misbehave at the byte level on every connection,
// after reading the client's request (the host asks again on every UP).
// Each connection ends with a DOWN whose reason names the problem (the
// request dies with it), and the retries run out: EXIT with that reason.
func TestHTTP1(t *testing.T) {
	cases := []struct {
		name string
		opts string // extra options for the hostile connection
		// send writes the hostile response; it may stop early when the
		// client closes the connection.
		send func(nc net.Conn)
		want []string // in the DOWN reason
	}{
		{
			name: "endless 1xx responses",
			send: func(nc net.Conn) {
				flood(nc, []byte("HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n"), 1<<30)
			},
			want: []string{"protocol_error", "more than 32 informational (1xx) responses", "max_informational_responses"},
		},
		{
			name: "1xx bound is an option",
			opts: `"http_opts":{"max_informational_responses":3},`,
			send: func(nc net.Conn) {
				flood(nc, []byte("HTTP/1.1 102 Processing\r\n\r\n"), 1<<30)
			},
			want: []string{"more than 3 informational (1xx) responses", "max_informational_responses"},
		},
		{
			name: "101 header fields",
			send: func(nc net.Conn) {
				io.WriteString(nc, "HTTP/1.1 200 OK\r\n"+headerLines(101)+"content-length: 0\r\n\r\n")
			},
			want: []string{"protocol_error", "more than 100 header fields", "max_headers"},
		},
		{
			name: "100002 header fields in a large header block",
			opts: `"http_opts":{"max_header_block_size":2000000},`,
			send: func(nc net.Conn) {
				io.WriteString(nc, "HTTP/1.1 200 OK\r\n"+strings.Repeat("a: b\r\n", 100002)+"\r\n")
			},
			want: []string{"more than 100 header fields", "max_headers"},
		},
		{
			name: "101 trailer fields",
			send: func(nc net.Conn) {
				io.WriteString(nc, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n"+headerLines(101)+"\r\n")
			},
			want: []string{"more than 100 trailer fields", "max_headers"},
		},
		{
			name: "endless header block",
			send: func(nc net.Conn) {
				io.WriteString(nc, "HTTP/1.1 200 OK\r\n")
				flood(nc, []byte("x-filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"), 1<<30)
			},
			want: []string{"protocol_error", "header block exceeds max_header_block_size (100000)"},
		},
		{
			name: "one endless header line",
			send: func(nc net.Conn) {
				io.WriteString(nc, "HTTP/1.1 200 OK\r\nx-long: ")
				flood(nc, []byte("a"), 1<<30)
			},
			want: []string{"header block exceeds max_header_block_size"},
		},
		{
			name: "endless trailers",
			send: func(nc net.Conn) {
				io.WriteString(nc, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n")
				flood(nc, []byte("x-trailer: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"), 1<<30)
			},
			want: []string{"trailer block exceeds max_trailer_block_size (10000)"},
		},
		{
			name: "truncated head",
			send: func(nc net.Conn) {
				io.WriteString(nc, "HTTP/1.1 200 OK\r\ncontent-len")
				nc.Close()
			},
			want: []string{"closed", "in the middle of a response head"},
		},
		{
			name: "truncated status line",
			send: func(nc net.Conn) {
				io.WriteString(nc, "HTTP/1.")
				nc.Close()
			},
			want: []string{"closed", "in the middle of a response head"},
		},
		{
			name: "truncated content-length body",
			send: func(nc net.Conn) {
				io.WriteString(nc, "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789")
				nc.Close()
			},
			want: []string{"closed", "90 bytes of the response body (content-length) still to come"},
		},
		{
			name: "truncated chunked body",
			send: func(nc net.Conn) {
				io.WriteString(nc, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel")
				nc.Close()
			},
			want: []string{"closed", "chunked response body, before its last chunk"},
		},
		{
			name: "not HTTP",
			send: func(nc net.Conn) { io.WriteString(nc, "SSH-2.0-OpenSSH_9.6\r\n") },
			want: []string{"protocol_error", `does not begin with "HTTP/1."`},
		},
		{
			name: "bare LF",
			send: func(nc net.Conn) { io.WriteString(nc, "HTTP/1.1 200 OK\ncontent-length: 0\n\n") },
			want: []string{"protocol_error", "bare LF"},
		},
		{
			name: "obs-fold",
			send: func(nc net.Conn) { io.WriteString(nc, "HTTP/1.1 200 OK\r\nx-a: b\r\n c\r\ncontent-length: 0\r\n\r\n") },
			want: []string{"protocol_error", "obsolete line folding"},
		},
		{
			name: "conflicting content-length",
			send: func(nc net.Conn) {
				io.WriteString(nc, "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!")
			},
			want: []string{"protocol_error", "conflicting content-length values 5 and 6"},
		},
		{
			name: "chunk size not hex",
			send: func(nc net.Conn) {
				io.WriteString(nc, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
			},
			want: []string{"protocol_error", `invalid chunk size line "zz"`},
		},
		{
			name: "chunk size overflow",
			send: func(nc net.Conn) {
				io.WriteString(nc, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n10000000000000000\r\nhello\r\n")
			},
			want: []string{"protocol_error", "chunk size too large"},
		},
		{
			name: "negative chunk size",
			send: func(nc net.Conn) {
				io.WriteString(nc, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n-5\r\nhello\r\n")
			},
			want: []string{"protocol_error", `invalid chunk size line "-5"`},
		},
		{
			name: "chunk data without CRLF",
			send: func(nc net.Conn) {
				io.WriteString(nc, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n")
			},
			want: []string{"protocol_error", "chunk data not followed by CRLF"},
		},
		{
			name: "endless chunk size line",
			send: func(nc net.Conn) {
				io.WriteString(nc, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;ext=")
				flood(nc, []byte("a"), 1<<30)
			},
			want: []string{"protocol_error", "chunk size line exceeds"},
		},
		{
			name: "chunked applied twice",
			send: func(nc net.Conn) {
				io.WriteString(nc, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, chunked\r\n\r\n0\r\n\r\n")
			},
			want: []string{"protocol_error", "transfer-encoding applies chunked more than once"},
		},
		{
			name: "101 to a plain request",
			send: func(nc net.Conn) {
				io.WriteString(nc, "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n")
			},
			want: []string{"protocol_error", "101 switching protocols to a request that asked for no upgrade"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Every connection: read the request, answer with the hostile
			// bytes, hold the connection until the client closes it.
			srv := startRaw(t, nil, func(nc net.Conn) {
				defer nc.Close()
				nc.SetReadDeadline(time.Now().Add(wait))
				br := bufio.NewReader(nc)
				if _, err := readHead(br); err != nil {
					return
				}
				closed := make(chan struct{})
				go func() { // later requests never back up
					io.Copy(io.Discard, br)
					close(closed)
				}()
				tc.send(nc)
				<-closed // the client closed the connection (or wait passed)
			})
			h, refs := newHost(t, srv.port(), "{"+tc.opts+retryOpts+"}", get("/hostile"))
			down := h.awaitReason(core.EvDown, tc.want...)
			if len(down.Killed) != 1 || down.Killed[0] != refs[0] {
				t.Errorf("DOWN killed %v, want the request %d", down.Killed, refs[0])
			}
			h.awaitExit(srv.count, tc.want...)
			h.finish(64, srv.count)
		})
	}
}

func headerLines(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "x-h%d: v\r\n", i)
	}
	return b.String()
}

// An HTTP/1.1 server that accepts every connection and never reads, while
// the client sends a large request body: the send ends by
// tcp_opts.send_timeout (the connection goes down naming it), it does not
// hang, and the retries run out.
func TestHTTP1NeverReadsBody(t *testing.T) {
	srv := startRaw(t, nil, func(nc net.Conn) {
		// A small receive buffer so that the body backs up at once; the
		// connection stays open, unread, until the client closes it or the
		// test ends.
		nc.(*net.TCPConn).SetReadBuffer(4096)
	})
	body := make([]byte, 4<<20)
	opts := `{"tcp_opts":{"send_timeout":300,"sndbuf":4096},` + retryOpts + `}`
	h, refs := newHost(t, srv.port(), opts, &core.Request{Method: "POST", Path: "/upload", Body: body})
	want := []string{"timeout: a send did not complete within 300ms (tcp_opts.send_timeout); the server is not reading"}
	down := h.awaitReason(core.EvDown, want...)
	if len(down.Killed) != 1 || down.Killed[0] != refs[0] {
		t.Errorf("DOWN killed %v, want the request %d", down.Killed, refs[0])
	}
	h.awaitExit(srv.count, want...)
	h.finish(16, srv.count)
}

// Servers that fail every connection before any request: an HTTP/1.1
// response to no request, and an HTTP/1 answer to the HTTP/2 preface. No
// request is made (the host has none to make): each connection dies at
// once, counts as a failed attempt, and the retries run out.
func TestFailBeforeAnyRequest(t *testing.T) {
	for _, tc := range []struct {
		name, opts string
		want       []string
	}{
		{"HTTP/1.1 response before any request", `"protocols":["http"]`,
			[]string{"protocol_error", "unexpected bytes from the server with no request in flight"}},
		{"HTTP/2 preface answered with HTTP/1", `"protocols":["http2"]`,
			[]string{"connection_error: PROTOCOL_ERROR", "Appears to be an HTTP/1 response?"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startRaw(t, nil, func(nc net.Conn) {
				io.WriteString(nc, "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
				holdOpen(nc)
			})
			h, _ := newHost(t, srv.port(), "{"+tc.opts+","+retryOpts+"}")
			h.awaitReason(core.EvDown, tc.want...)
			h.awaitExit(srv.count, tc.want...)
			h.finish(8, srv.count)
		})
	}
}
