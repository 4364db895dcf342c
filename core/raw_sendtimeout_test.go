package core

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
)

// Issue 11, send timeouts as gen_tcp's: tcp_opts.send_timeout on raw makes
// a Data call that cannot complete fail with ErrTimeout saying how many of
// its bytes went out ({timeout, RestData}); send_timeout_close (default
// true) closes the connection, false keeps it up.

// stalledServer accepts one connection and reads nothing until read is
// closed; then it reads everything until the client's FIN and sends it on
// got.
func stalledServer(t *testing.T) (s *rawServer, read chan struct{}, got chan []byte) {
	read, got = make(chan struct{}), make(chan []byte, 1)
	s = startRaw(t, func(nc net.Conn) {
		defer nc.Close()
		<-read
		b, _ := io.ReadAll(nc)
		got <- b
	})
	return s, read, got
}

func sendTimeoutPayload() []byte {
	big := make([]byte, 16<<20) // far more than the socket buffers of a peer that does not read
	for i := range big {
		big[i] = byte(i*31 + i>>11)
	}
	return big
}

// TestRawSendTimeoutClose: the default send_timeout_close true: the call
// fails with a SendTimeoutError (GM_ETIMEOUT) giving how much went out, and
// the connection goes DOWN naming tcp_opts.send_timeout.
func TestRawSendTimeoutClose(t *testing.T) {
	s, read, _ := stalledServer(t)
	defer close(read)
	q := newQueue(t)
	c := rawUp(t, q, s.port(), `{"protocols":["raw"],"retry":0,"tcp_opts":{"send_timeout":300,"sndbuf":4096}}`)
	big := sendTimeoutPayload()
	err := c.Data(0, big, false)
	var st *SendTimeoutError
	if !errors.As(err, &st) || !errors.Is(err, ErrTimeout) {
		t.Fatalf("Data to a peer that does not read: %v, want a SendTimeoutError", err)
	}
	if !st.Closed || st.Len != len(big) || st.Sent <= 0 || st.Sent >= len(big) {
		t.Fatalf("timeout %+v: want Closed, 0 < Sent < %d", st, len(big))
	}
	if !strings.Contains(err.Error(), "bytes went out within tcp_opts.send_timeout = 300ms; the connection closes") {
		t.Errorf("sentence %q", err)
	}
	ev := nextOf(t, q, c)
	if ev.Kind != EvDown || !strings.Contains(ev.Reason, "tcp_opts.send_timeout") {
		t.Fatalf("got %s, want DOWN naming tcp_opts.send_timeout", evString(ev))
	}
	ev = nextOf(t, q, c)
	if ev.Kind != EvExit {
		t.Fatalf("got %s, want EXIT", evString(ev))
	}
}

// TestRawSendTimeoutKeepOpen: send_timeout_close false: the call fails with
// the count of its bytes that went out, the connection stays up, and the
// peer gets exactly those bytes, then what the next calls send: the count
// is exact (gen_tcp's RestData is big[Sent:]).
func TestRawSendTimeoutKeepOpen(t *testing.T) {
	for _, packet := range []int{0, 4} {
		s, read, got := stalledServer(t)
		q := newQueue(t)
		c := rawUp(t, q, s.port(), `{"protocols":["raw"],"retry":0,"raw_opts":{"packet":`+string(rune('0'+packet))+`},`+
			`"tcp_opts":{"send_timeout":1500,"send_timeout_close":false,"sndbuf":4096}}`)
		big := sendTimeoutPayload()
		if packet == 4 {
			big = big[:8<<20]
		}
		err := c.Data(0, big, false)
		var st *SendTimeoutError
		if !errors.As(err, &st) || !errors.Is(err, ErrTimeout) || st.Closed || st.Sent >= len(big) || st.Len != len(big) {
			t.Fatalf("packet %d: Data: %v (%+v), want a SendTimeoutError, not closed, Sent < %d", packet, err, st, len(big))
		}
		if !strings.Contains(err.Error(), "the connection stays up (send_timeout_close false)") {
			t.Errorf("sentence %q", err)
		}
		if si, err := c.StreamInfo(0); err != nil || si.State != "running" {
			t.Fatalf("after the timeout: %+v %v, want the stream running", si, err)
		}
		close(read) // the peer reads again
		tail := []byte("the rest of the stream")
		if err := c.Data(0, tail, true); err != nil {
			t.Fatalf("packet %d: Data after the timeout: %v", packet, err)
		}
		b := <-got
		want := append(append([]byte(nil), big[:st.Sent]...), tail...)
		if packet == 4 {
			// The first message's prefix, its Sent bytes, then the second
			// message with its prefix.
			want = append(append(frame(4, big)[:4], big[:st.Sent]...), frame(4, tail)...)
		}
		if !bytes.Equal(b, want) {
			t.Fatalf("packet %d: the peer got %d bytes, want %d (Sent %d, then the tail)", packet, len(b), len(want), st.Sent)
		}
		c.Close()
		waitExit(t, q, c)
	}
}

// TestRawSendTimeoutNotReached: a peer that reads: every call completes,
// big or small, and nothing is lost.
func TestRawSendTimeoutNotReached(t *testing.T) {
	s := echoServer(t)
	q := newQueue(t)
	c := rawUp(t, q, s.port(), `{"protocols":["raw"],"retry":0,"tcp_opts":{"send_timeout":5000,"send_timeout_close":false}}`)
	big := sendTimeoutPayload()[:1<<20]
	for off := 0; off < len(big); off += 65536 {
		if err := c.Data(0, big[off:off+65536], false); err != nil {
			t.Fatal(err)
		}
		if got := rawRead(t, q, c, 65536); !bytes.Equal(got, big[off:off+65536]) {
			t.Fatal("echo differs")
		}
	}
	c.Close()
	waitExit(t, q, c)
}
