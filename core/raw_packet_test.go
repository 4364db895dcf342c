package core

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// Issue 11, packet framing: raw_opts.packet (gen_tcp's {packet, P}) and
// packet_size.

// frame is msg as the peer sends it with packet p (0 < p <= 4, or PacketLine).
func frame(p int, msg []byte) []byte {
	if p == PacketLine {
		return msg
	}
	var pre [8]byte
	binary.BigEndian.PutUint64(pre[:], uint64(len(msg)))
	return append(pre[8-p:], msg...)
}

// packetMsgs are messages for packet p: an empty one where the prefix
// allows it, and one as large as the prefix (or a generous size) allows.
func packetMsgs(p int) [][]byte {
	big := map[int]int{1: 255, 2: 65535, 4: 200000, PacketLine: 5000}[p]
	msgs := [][]byte{[]byte("a"), []byte("hello world"), bytes.Repeat([]byte("xyz"), big/3)}
	if p != PacketLine {
		msgs = append(msgs, nil, []byte("\n\n"))
	}
	for i, m := range msgs {
		if p == PacketLine {
			msgs[i] = append(m, '\n')
		}
	}
	return msgs
}

// TestRawPacketFraming: for packet 1, 2, 4 and line, a Go server checks
// that Data sent one message with its prefix, then writes messages byte by
// byte and then all in one write; each DATA event is one whole message.
func TestRawPacketFraming(t *testing.T) {
	for _, p := range []int{1, 2, 4, PacketLine} {
		name := fmt.Sprint(p)
		js := fmt.Sprintf(`{"protocols":["raw"],"retry":0,"raw_opts":{"packet":%d}}`, p)
		if p == PacketLine {
			name, js = "line", `{"protocols":[["raw",{"packet":"line"}]],"retry":0}`
		}
		t.Run(name, func(t *testing.T) {
			msgs := packetMsgs(p)
			ping := []byte("ping\x00\xff")
			if p == PacketLine {
				ping = []byte("ping\n")
			}
			gotPing := make(chan []byte, 1)
			s := startRaw(t, func(nc net.Conn) {
				defer nc.Close()
				want := frame(p, ping)
				b := make([]byte, len(want))
				if _, err := io.ReadFull(nc, b); err != nil {
					gotPing <- nil
					return
				}
				gotPing <- b
				for _, m := range msgs {
					for _, x := range frame(p, m) {
						if _, err := nc.Write([]byte{x}); err != nil {
							return
						}
					}
				}
				var all []byte
				for _, m := range msgs {
					all = append(all, frame(p, m)...)
				}
				nc.Write(all)
				io.Copy(io.Discard, nc)
			})
			q := newQueue(t)
			c := rawUp(t, q, s.port(), js)
			if err := c.Data(0, ping, false); err != nil {
				t.Fatal(err)
			}
			if b := <-gotPing; !bytes.Equal(b, frame(p, ping)) {
				t.Fatalf("server read %q, want %q", b, frame(p, ping))
			}
			for round := 0; round < 2; round++ {
				for i, m := range msgs {
					ev := nextOf(t, q, c)
					if ev.Kind != EvData || ev.Ref != 0 || !bytes.Equal(ev.Data, m) {
						t.Fatalf("round %d message %d: got %s (%d bytes), want DATA of %d bytes", round, i, evString(ev), len(ev.Data), len(m))
					}
				}
			}
			noEvent(t, q, 200*time.Millisecond)
			c.Close()
			expectEnd(t, q, c, false, "shutdown")
		})
	}
}

// TestRawPacketOversize: a message over raw_opts.packet_size ends the
// connection with emsgsize naming it (gen_tcp's {error, emsgsize}), for a
// length prefix and for a line, whether or not its end has arrived.
func TestRawPacketOversize(t *testing.T) {
	for _, tc := range []struct{ name, js, send string }{
		{"prefix", `{"packet":2,"packet_size":10}`, "\x00\x0b0123456789a"},
		{"prefix-head-only", `{"packet":4,"packet_size":10}`, "\x00\x00\x00\x0b"},
		{"line", `{"packet":"line","packet_size":8}`, "0123456789\n"},
		{"line-unended", `{"packet":"line","packet_size":8}`, "0123456789"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startRaw(t, func(nc net.Conn) {
				defer nc.Close()
				nc.Write([]byte(tc.send))
				io.Copy(io.Discard, nc)
			})
			q := newQueue(t)
			c := rawUp(t, q, s.port(), `{"protocols":["raw"],"retry":0,"raw_opts":`+tc.js+`}`)
			ev := nextOf(t, q, c)
			if ev.Kind != EvDown || !strings.HasPrefix(ev.Reason, "emsgsize: ") || !strings.Contains(ev.Reason, "raw_opts.packet_size") {
				t.Fatalf("got %s, want DOWN emsgsize naming raw_opts.packet_size", evString(ev))
			}
			ev = nextOf(t, q, c)
			if ev.Kind != EvExit {
				t.Fatalf("got %s, want EXIT", evString(ev))
			}
		})
	}
}

// TestRawPacketSendTooLong: a message too long for the prefix is refused
// (ErrBadArg naming it), nothing goes on the wire; the longest one goes.
func TestRawPacketSendTooLong(t *testing.T) {
	got := make(chan []byte, 1)
	s := startRaw(t, func(nc net.Conn) {
		defer nc.Close()
		b, _ := io.ReadAll(nc)
		got <- b
	})
	q := newQueue(t)
	c := rawUp(t, q, s.port(), `{"protocols":["raw"],"retry":0,"raw_opts":{"packet":1}}`)
	if err := c.Data(0, make([]byte, 256), false); !errors.Is(err, ErrBadArg) || !strings.Contains(err.Error(), "raw_opts.packet = 1") {
		t.Fatalf("256 bytes with packet 1: %v", err)
	}
	if err := c.Data(0, bytes.Repeat([]byte("m"), 255), false); err != nil {
		t.Fatal(err)
	}
	if err := c.Data(0, nil, false); err != nil { // an empty message: its prefix
		t.Fatal(err)
	}
	if err := c.Data(0, nil, true); err != nil { // fin only
		t.Fatal(err)
	}
	want := append(append([]byte{255}, bytes.Repeat([]byte("m"), 255)...), 0)
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("server read %d bytes %q, want %d", len(b), b, len(want))
	}
	expectEnd(t, q, c, true, "closed")
}

// TestRawPacketFlow: with raw_opts.flow, active N counts messages, not
// reads: five messages in one write give two DATA events, passive, and
// the rest after UpdateFlow.
func TestRawPacketFlow(t *testing.T) {
	msgs := []string{"one", "two", "three", "four", "five"}
	s := startRaw(t, func(nc net.Conn) {
		defer nc.Close()
		var all []byte
		for _, m := range msgs {
			all = append(all, frame(2, []byte(m))...)
		}
		nc.Write(all)
		io.Copy(io.Discard, nc)
	})
	q := newQueue(t)
	c := rawUp(t, q, s.port(), `{"protocols":["raw"],"retry":0,"raw_opts":{"packet":2,"flow":2}}`)
	data := func(want string) {
		t.Helper()
		ev := nextOf(t, q, c)
		if ev.Kind != EvData || string(ev.Data) != want {
			t.Fatalf("got %s, want DATA %q", evString(ev), want)
		}
	}
	passive := func() {
		t.Helper()
		ev := nextOf(t, q, c)
		if ev.Kind != EvNotify || ev.Reason != "passive" {
			t.Fatalf("got %s, want NOTIFY passive", evString(ev))
		}
	}
	data("one")
	data("two")
	passive()
	noEvent(t, q, 300*time.Millisecond)
	if err := c.UpdateFlow(0, 2); err != nil {
		t.Fatal(err)
	}
	data("three")
	data("four")
	passive()
	noEvent(t, q, 200*time.Millisecond)
	if err := c.UpdateFlow(0, 5); err != nil {
		t.Fatal(err)
	}
	data("five")
	if si, err := c.StreamInfo(0); err != nil || si.Flow != 4 {
		t.Fatalf("stream info %+v %v, want flow 4", si, err)
	}
	c.Close()
	expectEnd(t, q, c, false, "shutdown")
}

// TestRawPacketOptions: the values gen_tcp has parse; others are refused
// naming the key, and packet_size alone (nothing to bound) is refused.
func TestRawPacketOptions(t *testing.T) {
	for js, want := range map[string][2]int{
		`{"raw_opts":{"packet":0}}`:                   {0, 0},
		`{"raw_opts":{"packet":"raw"}}`:               {0, 0},
		`{"raw_opts":{"packet":4,"packet_size":100}}`: {4, 100},
		`{"raw_opts":{"packet_size":100,"packet":1}}`: {1, 100},
		`{"protocols":[["raw",{"packet":"line"}]]}`:   {PacketLine, 0},
	} {
		o, err := ParseOptions([]byte(js), 80)
		if err != nil || o.Raw.Packet != want[0] || o.Raw.PacketSize != want[1] {
			t.Errorf("%s: %v, %+v", js, err, o.Raw)
		}
	}
	for js, want := range map[string]string{
		`{"raw_opts":{"packet":3}}`:                     "raw_opts.packet = 3: must be",
		`{"raw_opts":{"packet":"http"}}`:                "raw_opts.packet",
		`{"raw_opts":{"packet":2,"packet_size":0}}`:     "raw_opts.packet_size = 0",
		`{"raw_opts":{"packet_size":100}}`:              "raw_opts.packet_size = 100: bounds framed messages",
		`{"raw_opts":{"packet":"raw","packet_size":9}}`: "raw_opts.packet_size = 9",
	} {
		if _, err := ParseOptions([]byte(js), 80); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", js, err, want)
		}
	}
}
