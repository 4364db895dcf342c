package core

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// TestUnimplementedOptionsRefused: issue 9 item 9. Options the parser
// takes but this build does not implement are refused when the connection
// is opened, naming them; their implemented values are accepted.
func TestUnimplementedOptionsRefused(t *testing.T) {
	q := newQueue(t)
	refused := []struct{ js, name string }{
		{`{"transport":"tls","protocols":["socks","http2"],"socks_opts":{"host":"h","port":80}}`, "option protocols = \"socks\": socks must be the only protocol"},
		{`{"transport":"tls","protocols":["http2","raw"]}`, "option protocols = \"raw\": raw must be the only protocol"},
		{`{"socks_opts":{"host":"h","port":80}}`, "option socks_opts: given, but socks is not in protocols"},
		{`{"supervise":false}`, "option supervise = false: not supported"},
		{`{"tcp_opts":{"send_timeout_close":false}}`, "option tcp_opts.send_timeout_close = false: only with protocols [\"raw\"] over tcp"},
		{`{"protocols":["raw"],"transport":"tls","tcp_opts":{"send_timeout_close":false}}`, "option tcp_opts.send_timeout_close = false: only with protocols [\"raw\"] over tcp"},
		{`{"http2_opts":{"stream_window_data_threshold":16384}}`, "option http2_opts.stream_window_data_threshold = 16384: not supported"},
		{`{"ws_opts":{"invalid_request_headers":"ignore"}}`, "option ws_opts.invalid_request_headers = \"ignore\": not supported"},
	}
	for _, r := range refused {
		o, err := ParseOptions([]byte(r.js), 80)
		if err != nil {
			t.Fatalf("%s: the parser refused it (%v): it should parse, and Open refuse", r.js, err)
		}
		c, err := Open("127.0.0.1", 80, o, q, nil)
		var oe *OptionError
		if c != nil || !errors.As(err, &oe) || !strings.HasPrefix(err.Error(), r.name) {
			t.Errorf("%s: conn made %v, err %v; want an OptionError %q...", r.js, c != nil, err, r.name)
		}
	}
	if _, err := ParseWSOpts([]byte(`{"invalid_request_headers":"ignore"}`)); err == nil ||
		!strings.Contains(err.Error(), "invalid_request_headers") {
		t.Errorf("ws_upgrade's ws_opts: %v", err)
	}
	if q.Len() != 0 {
		t.Fatalf("refused opens queued %d events", q.Len())
	}
	// What they do mean is accepted.
	for _, js := range []string{`{"supervise":true,"trace":false,"tcp_opts":{"send_timeout_close":true},
		"http2_opts":{"stream_window_data_threshold":0,"max_stream_buffer_size":1000,"enable_connect_protocol":true},
		"ws_opts":{"invalid_request_headers":"raise"},"raw_opts":{"flow":3,"closing_timeout":100}}`} {
		c := up(t, q, js)
		c.Close()
		waitExit(t, q, c)
	}
}

// TestHTTPKeepalive: http_opts.keepalive sends an empty line on an idle
// HTTP/1.1 connection every keepalive ms (Gun's gun_http:keepalive), never
// inside a streamed request body; with the default (infinity) nothing.
func TestHTTPKeepalive(t *testing.T) {
	type conn struct{ got chan []byte }
	accepted := make(chan conn, 4)
	rs := startRaw(t, func(nc net.Conn) {
		cc := conn{got: make(chan []byte, 1024)}
		accepted <- cc
		buf := make([]byte, 4096)
		for {
			n, err := nc.Read(buf)
			if n > 0 {
				cc.got <- append([]byte(nil), buf[:n]...)
			}
			if err != nil {
				close(cc.got)
				return
			}
		}
	})
	// readUntil gathers what the client sent until it holds want.
	readUntil := func(cc conn, have []byte, want string) []byte {
		t.Helper()
		deadline := time.After(waitFor)
		for !bytes.Contains(have, []byte(want)) {
			select {
			case b, ok := <-cc.got:
				if !ok {
					t.Fatalf("connection closed; got %q, want %q", have, want)
				}
				have = append(have, b...)
			case <-deadline:
				t.Fatalf("got %q, never %q", have, want)
			}
		}
		return have
	}
	q := newQueue(t)
	c := openTo(t, q, rs.port(), `{"http_opts":{"keepalive":30}}`)
	awaitUp(t, c)
	cc := <-accepted
	// Idle: empty lines, nothing else.
	got := readUntil(cc, nil, "\r\n\r\n\r\n")
	if strings.Trim(string(got), "\r\n") != "" {
		t.Fatalf("idle connection sent %q", got)
	}
	// A streamed body: no empty line inside it, however long it takes.
	ref, err := c.Request(&Request{Method: "POST", Path: "/up", Stream: true, Headers: []Header{{"content-length", "10"}}})
	if err != nil {
		t.Fatal(err)
	}
	got = readUntil(cc, nil, "POST /up HTTP/1.1\r\n")
	got = readUntil(cc, got, "\r\n\r\n")
	if err := c.Data(ref, []byte("01234"), false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // ten keepalive periods: proving an absence
	if err := c.Data(ref, []byte("56789"), true); err != nil {
		t.Fatal(err)
	}
	got = readUntil(cc, got, "0123456789")
	// And after the body, idle again: the empty lines resume.
	got = readUntil(cc, got[bytes.Index(got, []byte("0123456789")):], "0123456789\r\n\r\n")
	_ = got

	// The default: infinity, no bytes at all.
	c2 := openTo(t, q, rs.port(), `{}`)
	awaitUp(t, c2)
	cc2 := <-accepted
	time.Sleep(300 * time.Millisecond) // proving an absence
	select {
	case b := <-cc2.got:
		t.Fatalf("keepalive infinity sent %q", b)
	default:
	}
}

// TestH2EnableConnectProtocol: http2_opts.enable_connect_protocol true is
// announced in the client's SETTINGS, as cowlib does; not by default.
func TestH2EnableConnectProtocol(t *testing.T) {
	_, _, _, sc := h2script(t, `,"http2_opts":{"enable_connect_protocol":true}`)
	sc.ReadPreface()
	if v, ok := sc.ClientSetting(http2.SettingEnableConnectProtocol); !ok || v != 1 {
		t.Fatalf("client settings %v: no ENABLE_CONNECT_PROTOCOL=1", sc.ClientSettings)
	}
	_, _, _, sc = h2script(t, "")
	sc.ReadPreface()
	if _, ok := sc.ClientSetting(http2.SettingEnableConnectProtocol); ok {
		t.Fatalf("client settings %v: ENABLE_CONNECT_PROTOCOL by default", sc.ClientSettings)
	}
}
