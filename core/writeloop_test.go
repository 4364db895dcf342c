package core

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestWriteLoopSpareNotAliased: after a write larger than writeBound the
// writer must not hand out, as the next output buffer, the array it is
// about to write. Shape: a 3 MiB request (its buffer becomes the spare), a
// 5 MiB one (too big to keep as spare), a 3 MiB one queued while the 5 MiB
// one is written (it lands in the spare), and a 3 MiB one queued while that
// is written. Before the fix the last request was appended into the very
// array the writer was sending, and the server read its bytes in the middle
// of the third request's body.
func TestWriteLoopSpareNotAliased(t *testing.T) {
	type req struct {
		path string
		fill byte
		size int
	}
	reqs := []req{{"/r0", 'z', 3 << 20}, {"/r1", 'a', 5 << 20}, {"/r2", 'b', 3 << 20}, {"/r3", 'c', 3 << 20}}
	gates := make([]chan struct{}, len(reqs)) // gates[i]: the server may read request i
	for i := range gates {
		gates[i] = make(chan struct{})
	}
	readDone := make([]chan struct{}, len(reqs))
	for i := range readDone {
		readDone[i] = make(chan struct{})
	}
	errc := make(chan error, 1)
	srv := startRaw(t, func(nc net.Conn) {
		nc.(*net.TCPConn).SetReadBuffer(64 << 10)
		br := bufio.NewReaderSize(nc, 4096)
		tp := textproto.NewReader(br)
		for i, r := range reqs {
			<-gates[i]
			line, err := tp.ReadLine()
			if err != nil {
				errc <- err
				return
			}
			if want := "POST " + r.path + " HTTP/1.1"; line != want {
				errc <- fmt.Errorf("request %d: line %q, want %q", i, trunc(line), want)
				return
			}
			h, err := tp.ReadMIMEHeader()
			if err != nil {
				errc <- fmt.Errorf("request %d head: %v", i, err)
				return
			}
			n, _ := strconv.Atoi(h.Get("Content-Length"))
			if n != r.size {
				errc <- fmt.Errorf("request %d: content-length %d, want %d", i, n, r.size)
				return
			}
			body := make([]byte, n)
			if _, err := io.ReadFull(br, body); err != nil {
				errc <- fmt.Errorf("request %d body: %v", i, err)
				return
			}
			if k := bytes.IndexFunc(body, func(c rune) bool { return byte(c) != r.fill }); k >= 0 {
				errc <- fmt.Errorf("request %d body: byte %d is %q, want %q (another request's bytes: %q)",
					i, k, body[k], r.fill, trunc(string(body[k:min(k+40, n)])))
				return
			}
			close(readDone[i])
		}
		errc <- nil
		io.Copy(io.Discard, nc)
	})
	q := newQueue(t)
	c := openTo(t, q, srv.port(), `{"retry":0,"tcp_opts":{"sndbuf":65536}}`)
	awaitUp(t, c)
	post := func(r req) {
		do(t, c, &Request{Method: "POST", Path: r.path, Body: bytes.Repeat([]byte{r.fill}, r.size)})
	}
	wait := func(ch chan struct{}) {
		select {
		case <-ch:
		case err := <-errc:
			t.Fatal(err)
		case <-time.After(20 * time.Second):
			t.Fatal("the server did not get the request")
		}
	}
	close(gates[0])
	post(reqs[0])
	wait(readDone[0])
	post(reqs[1]) // being written; the server does not read it yet
	time.Sleep(100 * time.Millisecond)
	post(reqs[2])   // queued behind it, in the spare buffer
	close(gates[1]) // the 5 MiB one goes out; then the 1 MiB one is written...
	wait(readDone[1])
	time.Sleep(100 * time.Millisecond)
	post(reqs[3]) // ...while this one is queued
	close(gates[2])
	close(gates[3])
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the server did not get every request")
	}
}

func trunc(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}
