package core

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// FuzzParseOptions: the JSON options parser (what gm_open and
// gm_ws_upgrade take from the host, as bytes of any kind) never panics,
// answers either options or an *OptionError that names something, and is
// deterministic; what it accepts has its invariants (documented ranges,
// one protocol on tcp) and opens or is refused by Open with an
// *OptionError, never another error.
func FuzzParseOptions(f *testing.F) {
	seeds := []string{
		``, `null`, `{}`, `[]`, `{"retry": 3}`, `{"retry": -1}`, `{"retry": 1e400}`,
		`{"transport":"tls","protocols":["http2","http"],"tls_opts":{"verify":"verify_none"}}`,
		`{"protocols":[["http2",{"keepalive":500}],{"http":{"version":"HTTP/1.0"}},"raw"]}`,
		`{"http_opts":{"keepalive":"infinity","max_headers":10}}`,
		`{"http2_opts":{"max_concurrent_streams":"infinity","initial_stream_window_size":0}}`,
		`{"ws_opts":{"compress":true,"protocols":[["mqtt","h"]],"max_frame_size":1}}`,
		`{"retry_fun":{"backoff":"exponential","initial":1,"max":10,"factor":1.5}}`,
		`{"socks_opts":{"host":"h","port":1,"auth":[["username_password","u","p"]]}}`,
		`{"tcp_opts":{"ip":"::1","port":65535,"inet6":true}}`, `{"a":1,"a":2}`, `{"retry":5,}`,
		"{\"\xff\":1}", `{"connect_timeout":0}`, `{"cookie_store":true,"supervise":false,"trace":true}`,
		`{"http2_opts":{"stream_window_data_threshold":1}}`, `{"ws_opts":{"invalid_request_headers":"ignore"}}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s), uint16(80))
		f.Add([]byte(s), uint16(443))
	}
	q, err := NewQueue()
	if err != nil {
		f.Fatal(err)
	}
	defer q.Free()
	f.Fuzz(func(t *testing.T, js []byte, port uint16) {
		if len(js) > 1<<16 {
			return
		}
		o, err := ParseOptions(js, int(port))
		_, err2 := ParseOptions(js, int(port))
		if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
			t.Fatalf("not deterministic: %v / %v", err, err2)
		}
		if err != nil {
			var oe *OptionError
			if !errors.As(err, &oe) {
				t.Fatalf("error %T %v is not an *OptionError", err, err)
			}
			if msg := err.Error(); oe.Msg == "" || !strings.HasPrefix(msg, "option") {
				t.Fatalf("error %q says nothing", msg)
			}
			if o != nil {
				t.Fatalf("options and an error")
			}
			return
		}
		checkOptionInvariants(t, o)
		// ws_upgrade's options: same rules for the ws_opts object alone.
		var probe map[string]json.RawMessage
		if json.Unmarshal(js, &probe) == nil && probe["ws_opts"] != nil {
			if _, err := ParseWSOpts(probe["ws_opts"]); err != nil {
				var oe *OptionError
				if !errors.As(err, &oe) {
					t.Fatalf("ParseWSOpts error %T %v", err, err)
				}
			}
		}
		// Open refuses only with an *OptionError (what this build does not
		// implement); a connection it starts is closed at once. Port 1 on
		// 127.0.0.1: nothing listens, no traffic leaves the machine.
		if port == 0 || o.Socks != nil {
			return
		}
		c, err := Open("127.0.0.1", 1, o, q, nil)
		if err != nil {
			var oe *OptionError
			if !errors.As(err, &oe) {
				t.Fatalf("Open: error %T %v is not an *OptionError", err, err)
			}
			return
		}
		c.Close()
		<-c.Done()
		for q.Len() > 0 {
			evs := make([]*Event, 16)
			q.Poll(evs, 0)
		}
	})
}

func checkOptionInvariants(t *testing.T, o *Options) {
	t.Helper()
	if o.Transport != "tcp" && o.Transport != "tls" {
		t.Fatalf("transport %q", o.Transport)
	}
	if len(o.Protocols) == 0 || (o.Transport == "tcp" && len(o.Protocols) != 1) {
		t.Fatalf("protocols %v on %s", o.Protocols, o.Transport)
	}
	if o.Retry < 0 || o.RetryTimeout < 0 || o.MaxPendingRequests < 0 ||
		o.ConnectTimeout < 0 || o.DomainLookupTimeout < 0 || o.TLSHandshakeTimeout < 0 {
		t.Fatalf("negative value accepted: %+v", o)
	}
	if o.HTTP.Flow < 0 || o.HTTP2.Flow < 0 || o.WS.Flow < 0 || o.WS.MaxMessageSize < 0 {
		t.Fatalf("negative flow or size accepted")
	}
	if o.HTTP.Version != "HTTP/1.1" && o.HTTP.Version != "HTTP/1.0" {
		t.Fatalf("http version %q", o.HTTP.Version)
	}
	if f := o.HTTP2.MaxFrameSizeReceived; f < 16384 || f > 16777215 {
		t.Fatalf("max_frame_size_received %d", f)
	}
	if o.TCP.LocalPort < 0 || o.TCP.LocalPort > 65535 {
		t.Fatalf("tcp port %d", o.TCP.LocalPort)
	}
}

// FuzzH1Chunked: the chunked decoder. Arbitrary bytes after a chunked
// response head never panic, never loop, and decode the same whatever the
// split into reads (h1Drive checks the API's invariants on the way); a
// valid encoding of any payload, with chunk sizes, hex case, extensions
// and trailers chosen by the fuzzer, decodes to exactly that payload.
func FuzzH1Chunked(f *testing.F) {
	f.Add([]byte("5\r\nhello\r\n0\r\n\r\n"), []byte("hello"), uint64(0))
	f.Add([]byte("A;x=1\r\n0123456789\r\n0;y\r\nT: v\r\n\r\n"), []byte("0123456789"), uint64(0x0123456789))
	f.Add([]byte("ffffffffffffffff0\r\n"), []byte{}, uint64(7))
	f.Add([]byte("3\r\nabc\n0\r\n\r\n"), []byte("a\r\n0\r\n"), uint64(1<<40))
	f.Add([]byte("1 ; a = \"b\\\"\"\r\nx\r\n0\r\n\r\n"), bytes.Repeat([]byte("z"), 300), uint64(3))
	const head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	lims := []h1Limits{h1TestLimits, {MaxHeaderBlock: 64, MaxTrailerBlock: 24, MaxChunkLine: 12}}
	f.Fuzz(func(t *testing.T, body, payload []byte, sel uint64) {
		if len(body) > 1<<13 || len(payload) > 1<<13 {
			return
		}
		lim := lims[sel&1]
		in := append([]byte(head), body...)
		whole := h1Drive(t, lim, []string{"GET"}, [][]byte{in}).String()
		bytewise := make([][]byte, len(in))
		for i := range in {
			bytewise[i] = in[i : i+1]
		}
		if got := h1Drive(t, lim, []string{"GET"}, bytewise).String(); got != whole {
			t.Fatalf("byte at a time:\n got: %s\nwant: %s", got, whole)
		}

		// A valid encoding of payload.
		var enc bytes.Buffer
		enc.WriteString(head)
		r := sel
		for rest := payload; len(rest) > 0; {
			n := int(r%64) + 1
			r = r>>6 | r<<58
			n = min(n, len(rest))
			size := fmt.Sprintf("%x", n)
			if r&1 != 0 {
				size = strings.ToUpper(size)
			}
			if r&2 != 0 {
				size = "00" + size // leading zeros are valid
			}
			enc.WriteString(size)
			if r&4 != 0 {
				enc.WriteString(";ext=1")
			}
			enc.WriteString("\r\n")
			enc.Write(rest[:n])
			enc.WriteString("\r\n")
			rest = rest[n:]
		}
		enc.WriteString("0\r\n")
		if sel&8 != 0 {
			enc.WriteString("x-t: 1\r\n")
		}
		enc.WriteString("\r\n")
		tr := h1Drive(t, h1TestLimits, []string{"GET"}, [][]byte{enc.Bytes()})
		// "data ... fin", or "data ..." then the trailers.
		want := fmt.Sprintf("data %q", payload)
		found := len(payload) == 0
		for _, ev := range tr.Events {
			if ev == want || ev == want+" fin" {
				found = true
			}
		}
		if tr.Err != "" || !found {
			t.Fatalf("valid encoding of %d bytes decoded as %s", len(payload), tr)
		}
	})
}
