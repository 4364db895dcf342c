package core

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func ms(n int64) time.Duration { return time.Duration(n) * time.Millisecond }

func mustParseOptions(t *testing.T, js string, port int) *Options {
	t.Helper()
	o, err := ParseOptions([]byte(js), port)
	if err != nil {
		t.Fatalf("ParseOptions(%s): %v", js, err)
	}
	return o
}

func optErr(t *testing.T, js string, port int) *OptionError {
	t.Helper()
	_, err := ParseOptions([]byte(js), port)
	if err == nil {
		t.Fatalf("ParseOptions(%s): no error", js)
	}
	var oe *OptionError
	if !errors.As(err, &oe) {
		t.Fatalf("ParseOptions(%s): %T %v, want *OptionError", js, err, err)
	}
	return oe
}

func TestOptionsDefaults(t *testing.T) {
	for _, in := range []string{"", "  \n", "null", "{}", ` { } `} {
		o := mustParseOptions(t, in, 80)
		if o.Transport != "tcp" || !reflect.DeepEqual(o.Protocols, []string{"http"}) {
			t.Errorf("%q port 80: transport %q protocols %v", in, o.Transport, o.Protocols)
		}
	}
	o := mustParseOptions(t, "{}", 80)
	if o.Retry != 5 || o.RetryTimeout != ms(5000) || o.RetryFun != nil {
		t.Errorf("retry defaults: %d %v %v", o.Retry, o.RetryTimeout, o.RetryFun)
	}
	if o.ConnectTimeout != 0 || o.DomainLookupTimeout != 0 || o.TLSHandshakeTimeout != 0 {
		t.Errorf("timeouts should be infinity (0)")
	}
	if o.MaxPendingRequests != 1024 || o.RetryOnTLSVerifyFailure || o.CookieStore || o.CookieIgnoreInformational || !o.Supervise || o.Trace {
		t.Errorf("misc defaults: %+v", o)
	}
	if o.Socks != nil {
		t.Errorf("Socks should be nil")
	}
	wantTCP := TCPOpts{NoDelay: true, SendTimeout: ms(15000), SendTimeoutClose: true,
		Linger: -1, TOS: -1, Priority: -1, V6Only: -1}
	if o.TCP != wantTCP {
		t.Errorf("tcp defaults %+v", o.TCP)
	}
	if !o.TLS.Verify || o.TLS.SessionLifetime != ms(86400000) || o.TLS.SessionCacheClientMax != 1000 ||
		!o.TLS.Reuse || !reflect.DeepEqual(o.TLS.Versions, []string{"tlsv1.2", "tlsv1.3"}) ||
		!reflect.DeepEqual(o.TLS.ALPN, []string{"http/1.1"}) || o.TLS.sessions != nil { // nil: the process-wide cache
		t.Errorf("tls defaults %+v", o.TLS)
	}
	wantHTTP := HTTPOpts{Version: "HTTP/1.1", ClosingTimeout: ms(15000), MaxHeaders: 100,
		MaxHeaderBlockSize: 100000, MaxTrailerBlockSize: 10000, MaxInformational: 32,
		HeadTimeout: ms(30000), DiscardTimeout: ms(5000)}
	if o.HTTP != wantHTTP {
		t.Errorf("http defaults %+v", o.HTTP)
	}
	h2 := o.HTTP2
	if h2.ClosingTimeout != ms(15000) || h2.Flow != 0 || h2.KeepAlive != 0 || h2.KeepAliveTolerance != 0 ||
		h2.InitialConnectionWindowSize != 8000000 || h2.InitialStreamWindowSize != 8000000 ||
		h2.MaxConnectionWindowSize != math.MaxInt32 || h2.MaxStreamWindowSize != math.MaxInt32 ||
		h2.ConnectionWindowMarginSize != 65535 || h2.StreamWindowMarginSize != 65535 ||
		h2.ConnectionWindowUpdateThreshold != 163840 || h2.StreamWindowUpdateThreshold != 163840 ||
		h2.MaxConcurrentStreams != 100 || h2.MaxInformational != 32 || h2.MaxSettingsEntries != 64 || h2.MaxDecodeTableSize != 4096 || h2.MaxEncodeTableSize != 4096 ||
		h2.MaxFrameSizeReceived != 16384 || h2.MaxFrameSizeSent != 0 || h2.MaxFragmentedHeaderBlockSize != 32768 ||
		h2.PrefaceTimeout != ms(5000) || h2.SettingsTimeout != ms(5000) || h2.NotifySettingsChanged ||
		h2.WaitForStreamSlot || h2.EnableConnectProtocol || h2.MaxHeaderListSize != 0 ||
		h2.FrameTimeout != ms(30000) || h2.SendWindowTimeout != ms(15000) {
		t.Errorf("http2 defaults %+v", h2)
	}
	ws := o.WS
	if ws.ClosingTimeout != ms(15000) || ws.Compress || ws.Flow != 0 || ws.KeepAlive != 0 || ws.Protocols != nil ||
		!ws.SilencePings || ws.DefaultProtocol != "gun_ws_h" || ws.MaxMessageSize != 16<<20 {
		t.Errorf("ws defaults %+v", ws)
	}
	if o.Raw.Flow != 0 || o.Raw.ClosingTimeout != ms(15000) {
		t.Errorf("raw defaults %+v", o.Raw)
	}

	o = mustParseOptions(t, "", 443)
	if o.Transport != "tls" || !reflect.DeepEqual(o.Protocols, []string{"http2", "http"}) ||
		!reflect.DeepEqual(o.TLS.ALPN, []string{"h2", "http/1.1"}) {
		t.Errorf("port 443: %q %v %v", o.Transport, o.Protocols, o.TLS.ALPN)
	}
	o = mustParseOptions(t, "null", 0)
	if o.Transport != "tcp" || !reflect.DeepEqual(o.Protocols, []string{"http"}) {
		t.Errorf("unix: %q %v", o.Transport, o.Protocols)
	}
	// The transport decides the default protocols, whatever the port.
	o = mustParseOptions(t, `{"transport":"tls"}`, 8443)
	if !reflect.DeepEqual(o.Protocols, []string{"http2", "http"}) {
		t.Errorf("tls on 8443: %v", o.Protocols)
	}
	o = mustParseOptions(t, `{"transport":"ssl"}`, 0)
	if o.Transport != "tls" {
		t.Errorf("ssl should be taken as tls, got %q", o.Transport)
	}
	o = mustParseOptions(t, `{"transport":"tcp"}`, 443)
	if o.Transport != "tcp" || !reflect.DeepEqual(o.Protocols, []string{"http"}) {
		t.Errorf("tcp on 443: %q %v", o.Transport, o.Protocols)
	}
	if !reflect.DeepEqual(DefaultOptions(443).Protocols, []string{"http2", "http"}) {
		t.Errorf("DefaultOptions(443)")
	}
}

func TestOptionsEveryKey(t *testing.T) {
	js := `{
	  "connect_timeout": 1001,
	  "cookie_store": true,
	  "cookie_ignore_informational": true,
	  "domain_lookup_timeout": 1002,
	  "tls_handshake_timeout": 1003,
	  "max_pending_requests": 7,
	  "protocols": ["http2", "http"],
	  "retry": 3,
	  "retry_timeout": 250,
	  "retry_on_tls_verify_failure": true,
	  "retry_fun": {"backoff": "exponential", "initial": 100, "max": 3000, "factor": 1.5},
	  "supervise": false,
	  "trace": true,
	  "transport": "tls",
	  "tcp_opts": {"nodelay": false, "keepalive": true, "send_timeout": 2000, "send_timeout_close": false,
	               "sndbuf": 65536, "recbuf": 131072, "ip": "127.0.0.1", "port": 4000, "inet6": true, "inet": false,
	               "bind_to_device": "lo", "keepidle": 60, "keepintvl": 10, "keepcnt": 4, "linger": 3, "tos": 16,
	               "priority": 2, "reuseaddr": true, "ipv6_v6only": true},
	  "tls_opts": {"verify": "verify_none", "cacertfile": "/ca.pem", "certfile": "/c.pem", "keyfile": "/k.pem",
	               "server_name_indication": "sni.example", "session_lifetime": 60000,
	               "session_cache_client_max": 10, "reuse_sessions": false, "versions": ["tlsv1.3"]},
	  "http_opts": {"keepalive": 30000, "version": "HTTP/1.0", "closing_timeout": 100, "flow": 2,
	                "max_headers": 50, "max_header_block_size": 2000, "max_trailer_block_size": 300,
	                "max_informational_responses": 3,
	                "cookie_ignore_informational": false, "head_timeout": 108, "discard_timeout": "infinity"},
	  "http2_opts": {"closing_timeout": 101, "flow": 3, "keepalive": 102, "keepalive_tolerance": 4,
	                 "initial_connection_window_size": 70000, "initial_stream_window_size": 70001,
	                 "max_connection_window_size": 70002, "max_stream_window_size": 70003,
	                 "connection_window_margin_size": 11, "stream_window_margin_size": 12,
	                 "connection_window_update_threshold": 13, "stream_window_update_threshold": 14,
	                 "stream_window_data_threshold": 15, "max_stream_buffer_size": 16,
	                 "max_concurrent_streams": 17, "max_decode_table_size": 18, "max_encode_table_size": 19,
	                 "max_frame_size_received": 16777215, "max_frame_size_sent": 20000,
	                 "max_fragmented_header_block_size": 40000, "preface_timeout": 103, "settings_timeout": 104,
	                 "notify_settings_changed": true, "wait_for_stream_slot": true, "max_waiting_streams": 24,
	                 "enable_connect_protocol": true, "max_header_list_size": 21, "max_headers": 22,
	                 "max_informational_responses": "infinity", "max_settings_entries": 23,
	                 "frame_timeout": 109, "send_window_timeout": 110},
	  "ws_opts": {"closing_timeout": 105, "compress": true, "flow": 5, "keepalive": 106,
	              "protocols": ["mqtt", ["wamp.2.json", "gun_ws_h"]], "silence_pings": false,
	              "default_protocol": "gun_ws_h", "max_frame_size": 1000, "invalid_request_headers": "ignore"},
	  "raw_opts": {"flow": 6},
	  "socks_opts": {"host": "origin.example", "port": 8080, "version": 5,
	                 "auth": [["username_password", "user", "pass"], "none"],
	                 "protocols": ["http2"], "transport": "tls",
	                 "tls_opts": {"verify": "verify_peer"}, "tls_handshake_timeout": 107}
	}`
	o := mustParseOptions(t, js, 80)
	check := func(name string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", name, got, want)
		}
	}
	check("ConnectTimeout", o.ConnectTimeout, ms(1001))
	check("CookieStore", o.CookieStore, true)
	check("CookieIgnoreInformational", o.CookieIgnoreInformational, true)
	check("DomainLookupTimeout", o.DomainLookupTimeout, ms(1002))
	check("TLSHandshakeTimeout", o.TLSHandshakeTimeout, ms(1003))
	check("MaxPendingRequests", o.MaxPendingRequests, 7)
	check("Protocols", o.Protocols, []string{"http2", "http"})
	check("Retry", o.Retry, 3)
	check("RetryTimeout", o.RetryTimeout, ms(250))
	check("RetryOnTLSVerifyFailure", o.RetryOnTLSVerifyFailure, true)
	check("RetryFun", *o.RetryFun, RetryPolicy{Backoff: "exponential", Initial: ms(100), Max: ms(3000), Factor: 1.5})
	check("Supervise", o.Supervise, false)
	check("Trace", o.Trace, true)
	check("Transport", o.Transport, "tls")
	check("TCP", o.TCP, TCPOpts{NoDelay: false, KeepAlive: true, SendTimeout: ms(2000), SendTimeoutClose: false,
		SndBuf: 65536, RecBuf: 131072, LocalIP: "127.0.0.1", LocalPort: 4000, Inet6: true, Inet4: false,
		BindToDevice: "lo", KeepIdle: 60, KeepIntvl: 10, KeepCnt: 4, Linger: 3, TOS: 16, Priority: 2, ReuseAddr: true, V6Only: 1})
	tlsWant := TLSOpts{Verify: false, CACertFile: "/ca.pem", CertFile: "/c.pem", KeyFile: "/k.pem",
		ServerNameIndication: "sni.example", ALPN: []string{"h2", "http/1.1"}, SessionLifetime: ms(60000),
		SessionCacheClientMax: 10, Reuse: false, Versions: []string{"tlsv1.3"}, ownCache: true}
	check("TLS", o.TLS, tlsWant)
	check("HTTP", o.HTTP, HTTPOpts{KeepAlive: ms(30000), Version: "HTTP/1.0", ClosingTimeout: ms(100), Flow: 2,
		CookieIgnoreInformational: false, MaxHeaders: 50, MaxHeaderBlockSize: 2000, MaxTrailerBlockSize: 300, MaxInformational: 3,
		HeadTimeout: ms(108), DiscardTimeout: 0})
	check("HTTP2", o.HTTP2, HTTP2Opts{ClosingTimeout: ms(101), Flow: 3, KeepAlive: ms(102), KeepAliveTolerance: 4,
		CookieIgnoreInformational: true, NotifySettingsChanged: true, MaxHeaders: 22,
		InitialConnectionWindowSize: 70000, InitialStreamWindowSize: 70001,
		MaxConnectionWindowSize: 70002, MaxStreamWindowSize: 70003,
		ConnectionWindowMarginSize: 11, StreamWindowMarginSize: 12,
		ConnectionWindowUpdateThreshold: 13, StreamWindowUpdateThreshold: 14,
		StreamWindowDataThreshold: 15, MaxStreamBufferSize: 16, MaxConcurrentStreams: 17,
		MaxDecodeTableSize: 18, MaxEncodeTableSize: 19, MaxFrameSizeReceived: 16777215, MaxFrameSizeSent: 20000,
		MaxFragmentedHeaderBlockSize: 40000, PrefaceTimeout: ms(103), SettingsTimeout: ms(104),
		EnableConnectProtocol: true, WaitForStreamSlot: true, MaxWaitingStreams: 24, MaxHeaderListSize: 21,
		MaxInformational: 0, MaxSettingsEntries: 23,
		FrameTimeout: ms(109), SendWindowTimeout: ms(110)})
	check("WS", o.WS, WSOpts{ClosingTimeout: ms(105), Compress: true, Flow: 5, KeepAlive: ms(106),
		Protocols: []string{"mqtt", "wamp.2.json"}, SilencePings: false, DefaultProtocol: "gun_ws_h",
		MaxMessageSize: 1000, IgnoreInvalidRequestHeaders: true})
	check("Raw", o.Raw, RawOpts{Flow: 6, ClosingTimeout: ms(15000)})
	if o.Socks == nil {
		t.Fatal("Socks is nil")
	}
	s := *o.Socks
	if s.TLSOpts == nil || !s.TLSOpts.Verify || !reflect.DeepEqual(s.TLSOpts.ALPN, []string{"h2"}) {
		t.Errorf("Socks.TLSOpts = %+v", s.TLSOpts)
	}
	s.TLSOpts = nil
	check("Socks", s, SocksOpts{Host: "origin.example", Port: 8080, Version: 5,
		Auth: []string{"username_password", "none"}, Username: "user", Password: "pass",
		Protocols: []string{"http2"}, Transport: "tls", TLSHandshakeTimeout: ms(107)})
}

func TestOptionsInfinity(t *testing.T) {
	o := mustParseOptions(t, `{"connect_timeout":"infinity","domain_lookup_timeout":"infinity",
	  "tls_handshake_timeout":"infinity",
	  "tcp_opts":{"send_timeout":"infinity"},
	  "tls_opts":{"session_lifetime":"infinity"},
	  "http_opts":{"keepalive":"infinity","closing_timeout":"infinity"},
	  "http2_opts":{"keepalive":"infinity","closing_timeout":"infinity","preface_timeout":"infinity",
	    "settings_timeout":"infinity","max_concurrent_streams":"infinity","max_frame_size_sent":"infinity"},
	  "ws_opts":{"keepalive":"infinity","closing_timeout":"infinity","max_frame_size":"infinity"}}`, 80)
	for name, d := range map[string]time.Duration{
		"connect": o.ConnectTimeout, "lookup": o.DomainLookupTimeout, "tlshs": o.TLSHandshakeTimeout,
		"send": o.TCP.SendTimeout, "lifetime": o.TLS.SessionLifetime,
		"http.ka": o.HTTP.KeepAlive, "http.closing": o.HTTP.ClosingTimeout,
		"h2.ka": o.HTTP2.KeepAlive, "h2.closing": o.HTTP2.ClosingTimeout,
		"h2.preface": o.HTTP2.PrefaceTimeout, "h2.settings": o.HTTP2.SettingsTimeout,
		"ws.ka": o.WS.KeepAlive, "ws.closing": o.WS.ClosingTimeout,
	} {
		if d != 0 {
			t.Errorf("%s = %v, want 0 (infinity)", name, d)
		}
	}
	if o.HTTP2.MaxConcurrentStreams != 0 || o.HTTP2.MaxFrameSizeSent != 0 || o.WS.MaxMessageSize != 0 {
		t.Errorf("infinite sizes: %d %d %d", o.HTTP2.MaxConcurrentStreams, o.HTTP2.MaxFrameSizeSent, o.WS.MaxMessageSize)
	}
	// Where Gun does not allow infinity, neither do we.
	for _, js := range []string{`{"retry_timeout":"infinity"}`, `{"retry":"infinity"}`,
		`{"http2_opts":{"max_frame_size_received":"infinity"}}`, `{"http_opts":{"flow":"infinity"}}`} {
		optErr(t, js, 80)
	}
}

func TestOptionsUnknownKey(t *testing.T) {
	e := optErr(t, `{"foo": 1}`, 80)
	if e.Proto != "" || e.Key != "foo" || e.Value != int64(1) || e.Msg != "unknown option" {
		t.Errorf("%#v", e)
	}
	if got, want := e.Error(), `option foo = 1: unknown option`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	for _, c := range []struct{ js, proto, key string }{
		{`{"http_opts": {"bogus": true}}`, "http_opts", "bogus"},
		{`{"http2_opts": {"bogus": true}}`, "http2_opts", "bogus"},
		{`{"ws_opts": {"bogus": true}}`, "ws_opts", "bogus"},
		{`{"tcp_opts": {"bogus": true}}`, "tcp_opts", "bogus"},
		{`{"tls_opts": {"bogus": true}}`, "tls_opts", "bogus"},
		{`{"raw_opts": {"bogus": true}}`, "raw_opts", "bogus"},
		{`{"socks_opts": {"host":"h","port":1,"bogus": true}}`, "socks_opts", "bogus"},
		{`{"socks_opts": {"host":"h","port":1,"transport":"tls","tls_opts":{"bogus": true}}}`, "socks_opts.tls_opts", "bogus"},
		{`{"protocols": [["http2", {"bogus": true}]]}`, "protocols.http2", "bogus"},
		{`{"protocols": [{"http": {"bogus": true}}]}`, "protocols.http", "bogus"},
		{`{"retry_fun": {"backoff":"fixed","bogus": true}}`, "retry_fun", "bogus"},
	} {
		e := optErr(t, c.js, 80)
		if e.Proto != c.proto || e.Key != c.key || e.Value != true || e.Msg != "unknown option" {
			t.Errorf("%s: %#v", c.js, e)
		}
		if want := "option " + c.proto + "." + c.key + " = true: unknown option"; e.Error() != want {
			t.Errorf("%s: Error() = %q, want %q", c.js, e.Error(), want)
		}
	}
	e = optErr(t, `{"http2_opts": {"max_frame_size_received": 5}}`, 80)
	if got, want := e.Error(), `option http2_opts.max_frame_size_received = 5: must be between 16384 and 16777215`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestOptionsNotSupported(t *testing.T) {
	for _, c := range []struct{ js, proto, key string }{
		{`{"event_handler": ["my_event_h", {}]}`, "", "event_handler"},
		{`{"http3_opts": {}}`, "", "http3_opts"},
		{`{"transport_opts": []}`, "", "transport_opts"},
		{`{"http_opts": {"transform_header_name": "f"}}`, "http_opts", "transform_header_name"},
		{`{"ws_opts": {"reply_to": "pid"}}`, "ws_opts", "reply_to"},
		{`{"tls_opts": {"verify_fun": "f"}}`, "tls_opts", "verify_fun"},
		{`{"tls_opts": {"cert": "x"}}`, "tls_opts", "cert"},
	} {
		e := optErr(t, c.js, 80)
		if e.Proto != c.proto || e.Key != c.key || !strings.HasPrefix(e.Msg, "not supported by gunmetal") {
			t.Errorf("%s: %#v", c.js, e)
		}
	}
	// Accepted without effect.
	o := mustParseOptions(t, `{"supervise": true, "trace": false, "ws_opts": {"default_protocol": "gun_ws_h"}}`, 80)
	if !o.Supervise || o.Trace {
		t.Errorf("supervise/trace: %v %v", o.Supervise, o.Trace)
	}
	e := optErr(t, `{"cookie_store": ["gun_cookies_list", {}]}`, 80)
	if e.Key != "cookie_store" || !strings.Contains(e.Msg, "in-memory") {
		t.Errorf("cookie_store: %#v", e)
	}
}

func TestOptionsWrongTypes(t *testing.T) {
	for _, c := range []struct {
		js, proto, key string
		msg            string // substring
	}{
		{`{"retry": -1}`, "", "retry", "between 0 and"},
		{`{"retry": 1.5}`, "", "retry", "between 0 and"},
		{`{"retry": 1e2}`, "", "retry", "between 0 and"},
		{`{"retry": "5"}`, "", "retry", "between 0 and"},
		{`{"retry": 99999999999999999999999}`, "", "retry", "between 0 and"},
		{`{"retry_timeout": -5}`, "", "retry_timeout", "non-negative integer"},
		{`{"connect_timeout": 0}`, "", "connect_timeout", `positive integer (milliseconds) or "infinity"`},
		{`{"connect_timeout": "forever"}`, "", "connect_timeout", "positive integer"},
		{`{"connect_timeout": 2.5}`, "", "connect_timeout", "positive integer"},
		{`{"transport": "udp"}`, "", "transport", "must be one of tcp, tls"},
		{`{"transport": true}`, "", "transport", "must be one of tcp, tls"},
		{`{"trace": "yes"}`, "", "trace", "boolean"},
		{`{"supervise": 1}`, "", "supervise", "boolean"},
		{`{"max_pending_requests": -1}`, "", "max_pending_requests", "between 0 and"},
		{`{"protocols": []}`, "", "protocols", "must not be empty"},
		{`{"protocols": "http"}`, "", "protocols", "list of protocols"},
		{`{"protocols": ["spdy"]}`, "", "protocols", `unknown protocol "spdy"`},
		{`{"protocols": ["http", "http"], "transport": "tls"}`, "", "protocols", "listed twice"},
		{`{"protocols": [1]}`, "", "protocols", "must be a protocol name"},
		{`{"protocols": [["http2"]]}`, "", "protocols", "[name, {options}]"},
		{`{"protocols": ["http2", "http"]}`, "", "protocols", "exactly one protocol when transport is tcp"},
		{`{"protocols": ["socks"]}`, "", "socks_opts", "required"},
		{`{"http_opts": []}`, "", "http_opts", "must be an object"},
		{`{"http_opts": {"version": "HTTP/2"}}`, "http_opts", "version", "HTTP/1.1, HTTP/1.0"},
		{`{"http_opts": {"flow": 0}}`, "http_opts", "flow", "positive integer"},
		{`{"http_opts": {"keepalive": -1}}`, "http_opts", "keepalive", "positive integer"},
		{`{"http_opts": {"max_header_block_size": -1}}`, "http_opts", "max_header_block_size", "between 0 and"},
		{`{"http2_opts": {"initial_connection_window_size": 65534}}`, "http2_opts", "initial_connection_window_size", "between 65535 and 2147483647"},
		{`{"http2_opts": {"initial_stream_window_size": 2147483648}}`, "http2_opts", "initial_stream_window_size", "between 0 and 2147483647"},
		{`{"http2_opts": {"max_waiting_streams": 5}}`, "http2_opts", "max_waiting_streams", "only used with wait_for_stream_slot"},
		{`{"ws_opts": {"tunnel": 5}}`, "ws_opts", "tunnel", "not of the connection"},
		{`{"http2_opts": {"wait_for_stream_slot": true, "max_waiting_streams": 0}}`, "http2_opts", "max_waiting_streams", "between 1 and"},
		{`{"http2_opts": {"max_frame_size_sent": 100}}`, "http2_opts", "max_frame_size_sent", "16384 and 16777215"},
		{`{"http2_opts": {"max_concurrent_streams": 0}}`, "http2_opts", "max_concurrent_streams", "positive integer"},
		{`{"http_opts": {"max_informational_responses": 0}}`, "http_opts", "max_informational_responses", "positive integer"},
		{`{"http2_opts": {"max_settings_entries": -1}}`, "http2_opts", "max_settings_entries", "positive integer"},
		{`{"http2_opts": {"max_fragmented_header_block_size": 100}}`, "http2_opts", "max_fragmented_header_block_size", "between 16384"},
		{`{"http2_opts": {"notify_settings_changed": "true"}}`, "http2_opts", "notify_settings_changed", "boolean"},
		{`{"http2_opts": {"keepalive_tolerance": -1}}`, "http2_opts", "keepalive_tolerance", "between 0"},
		{`{"ws_opts": {"compress": "yes"}}`, "ws_opts", "compress", `true, false or "compat"`},
		{`{"ws_opts": {"protocols": "mqtt"}}`, "ws_opts", "protocols", "list"},
		{`{"ws_opts": {"protocols": ["bad name"]}}`, "ws_opts", "protocols", "not a valid token"},
		{`{"ws_opts": {"protocols": ["a", "a"]}}`, "ws_opts", "protocols", "listed twice"},
		{`{"ws_opts": {"protocols": [["a", 1]]}}`, "ws_opts", "protocols", "[name, handler]"},
		{`{"ws_opts": {"protocols": [["a", "my_handler"]]}}`, "ws_opts", "protocols", `must be "gun_ws_h"`},
		{`{"ws_opts": {"default_protocol": "my_ws_h"}}`, "ws_opts", "default_protocol", `must be "gun_ws_h"`},
		{`{"ws_opts": {"user_opts": {"a": 1}}}`, "ws_opts", "user_opts", "not supported by gunmetal"},
		{`{"ws_opts": {"max_frame_size": 0}}`, "ws_opts", "max_frame_size", "positive integer"},
		{`{"ws_opts": {"max_frame_size": 10, "max_message_size": 20}}`, "ws_opts", "max_message_size", "conflicts with max_frame_size"},
		{`{"ws_opts": {"invalid_request_headers": "warn"}}`, "ws_opts", "invalid_request_headers", "raise, ignore"},
		{`{"tcp_opts": {"ip": "not-an-ip"}}`, "tcp_opts", "ip", "IP address"},
		{`{"tcp_opts": {"ip": 127}}`, "tcp_opts", "ip", "IP address"},
		{`{"tcp_opts": {"port": 70000}}`, "tcp_opts", "port", "between 0 and 65535"},
		{`{"tcp_opts": {"inet": true, "inet6": true}}`, "tcp_opts", "inet6", "conflicts with inet"},
		{`{"tcp_opts": {"sndbuf": -1}}`, "tcp_opts", "sndbuf", "between 0"},
		{`{"tcp_opts": [{"nodelay": true}]}`, "", "tcp_opts", "must be an object"},
		{`{"tls_opts": {"verify": true}}`, "tls_opts", "verify", "verify_peer, verify_none"},
		{`{"tls_opts": {"versions": ["tlsv1.1"]}}`, "tls_opts", "versions", "tlsv1.2, tlsv1.3"},
		{`{"tls_opts": {"versions": []}}`, "tls_opts", "versions", "non-empty"},
		{`{"tls_opts": {"session_cache_client_max": 0}}`, "tls_opts", "session_cache_client_max", "between 1"},
		{`{"tls_opts": {"certfile": "/c.pem"}}`, "tls_opts", "keyfile", "required when certfile"},
		{`{"tls_opts": {"keyfile": "/k.pem"}}`, "tls_opts", "certfile", "required when keyfile"},
		{`{"tls_opts": {"cacertfile": ""}}`, "tls_opts", "cacertfile", "non-empty"},
		{`{"tls_opts": {"server_name_indication": "a b"}}`, "tls_opts", "server_name_indication", "host name"},
		{`{"socks_opts": {"port": 1080}}`, "socks_opts", "host", "required"},
		{`{"socks_opts": {"host": "h"}}`, "socks_opts", "port", "required"},
		{`{"socks_opts": {"host": "h", "port": 0}}`, "socks_opts", "port", "between 1 and 65535"},
		{`{"socks_opts": {"host": "h", "port": 1, "version": 4}}`, "socks_opts", "version", "must be 5"},
		{`{"socks_opts": {"host": "h", "port": 1, "auth": ["gssapi"]}}`, "socks_opts", "auth", "none"},
		{`{"socks_opts": {"host": "h", "port": 1, "auth": ["none", "none"]}}`, "socks_opts", "auth", "listed twice"},
		{`{"socks_opts": {"host": "h", "port": 1, "auth": ["username_password"]}}`, "socks_opts", "username", "required"},
		{`{"socks_opts": {"host": "h", "port": 1, "username": "u"}}`, "socks_opts", "password", "required"},
		{`{"socks_opts": {"host": "h", "port": 1, "protocols": ["http", "http2"]}}`, "socks_opts", "protocols", "exactly one"},
		{`{"socks_opts": {"host": "h", "port": 1, "protocols": ["socks"]}}`, "socks_opts", "protocols", "further socks hop"},
		{`{"retry_fun": "fun my:retry/2"}`, "", "retry_fun", "Erlang fun"},
		{`{"retry_fun": {}}`, "retry_fun", "backoff", "required"},
		{`{"retry_fun": {"backoff": "random"}}`, "retry_fun", "backoff", "fixed, exponential, linear"},
		{`{"retry_fun": {"backoff": "exponential", "factor": 0.5}}`, "retry_fun", "factor", "between 1 and 1000"},
		{`{"retry_fun": {"backoff": "exponential", "factor": "2"}}`, "retry_fun", "factor", "number"},
		{`{"retry_fun": {"backoff": "linear", "initial": 1000, "max": 10}}`, "retry_fun", "max", "at least initial"},
		{`{"retry": 1, "retry": 2}`, "", "retry", "duplicate key"},
		{`{"http2_opts": {"flow": 1, "flow": null}}`, "http2_opts", "flow", "duplicate key"},
	} {
		_, err := ParseOptions([]byte(c.js), 80)
		var e *OptionError
		if !errors.As(err, &e) {
			t.Errorf("%s: %v, want *OptionError", c.js, err)
			continue
		}
		if e.Proto != c.proto || e.Key != c.key || !strings.Contains(e.Msg, c.msg) {
			t.Errorf("%s: got {Proto:%q Key:%q Msg:%q}, want %q.%q ~ %q", c.js, e.Proto, e.Key, e.Msg, c.proto, c.key, c.msg)
		}
		if !strings.Contains(e.Error(), c.key) {
			t.Errorf("%s: Error() %q does not name the key", c.js, e.Error())
		}
	}
}

func TestOptionsErrorValue(t *testing.T) {
	e := optErr(t, `{"transport": "udp"}`, 80)
	if e.Value != "udp" || e.Error() != `option transport = "udp": must be one of tcp, tls` {
		t.Errorf("%#v %q", e, e.Error())
	}
	e = optErr(t, `{"retry": 1.5}`, 80)
	if e.Value != 1.5 {
		t.Errorf("Value = %#v", e.Value)
	}
	e = optErr(t, `{"socks_opts": {"port": 1}}`, 80)
	if e.Value != nil || e.Error() != `option socks_opts.host: required` {
		t.Errorf("%#v %q", e, e.Error())
	}
	e = optErr(t, `{"protocols": ["http", "spdy"]}`, 80)
	if !reflect.DeepEqual(e.Value, []any{"http", "spdy"}) {
		t.Errorf("Value = %#v", e.Value)
	}
}

func TestOptionsInvalidJSON(t *testing.T) {
	for _, js := range []string{`{`, `{"retry": }`, `{"retry": 1} {}`, `{"retry": 1}x`, `nul`, `{"a" 1}`} {
		e := optErr(t, js, 80)
		if e.Key != "" || e.Proto != "" || !strings.HasPrefix(e.Msg, "invalid JSON: ") {
			t.Errorf("%s: %#v", js, e)
		}
		if !strings.HasPrefix(e.Error(), "options: invalid JSON: ") {
			t.Errorf("%s: %q", js, e.Error())
		}
	}
	for _, js := range []string{`[]`, `5`, `"x"`, `true`} {
		e := optErr(t, js, 80)
		if e.Key != "" || e.Msg != "must be a JSON object" {
			t.Errorf("%s: %#v", js, e)
		}
	}
	if _, err := ParseOptions(nil, 70000); err == nil {
		t.Errorf("port 70000 accepted")
	}
}

func TestOptionsNullMeansDefault(t *testing.T) {
	o := mustParseOptions(t, `{"retry": null, "http_opts": null, "http2_opts": {"flow": null}}`, 80)
	if o.Retry != 5 || o.HTTP.Version != "HTTP/1.1" || o.HTTP2.Flow != 0 {
		t.Errorf("%+v", o)
	}
}

func TestOptionsProtocols(t *testing.T) {
	o := mustParseOptions(t, `{"transport": "tls", "http2_opts": {"flow": 9},
	  "protocols": [["http2", {"keepalive": 500}], {"http": {"version": "HTTP/1.0"}}, "raw"]}`, 0)
	if !reflect.DeepEqual(o.Protocols, []string{"http2", "http", "raw"}) {
		t.Errorf("Protocols %v", o.Protocols)
	}
	// As in Gun, the options given with the protocol replace http2_opts.
	if o.HTTP2.KeepAlive != ms(500) || o.HTTP2.Flow != 0 || o.HTTP.Version != "HTTP/1.0" {
		t.Errorf("tuple options: %+v %+v", o.HTTP2, o.HTTP)
	}
	if !reflect.DeepEqual(o.TLS.ALPN, []string{"h2", "http/1.1"}) {
		t.Errorf("ALPN %v", o.TLS.ALPN)
	}
	o = mustParseOptions(t, `{"protocols": ["http2"]}`, 80)
	if o.Transport != "tcp" || !reflect.DeepEqual(o.Protocols, []string{"http2"}) {
		t.Errorf("h2c prior knowledge: %q %v", o.Transport, o.Protocols)
	}
	o = mustParseOptions(t, `{"protocols": [["socks", {"host": "origin", "port": 443, "transport": "tls",
	    "protocols": [["http2", {"flow": 4}]]}]]}`, 1080)
	if o.Socks == nil || o.Socks.Host != "origin" || o.Socks.Port != 443 || o.Socks.HTTP2 == nil ||
		o.Socks.HTTP2.Flow != 4 || !reflect.DeepEqual(o.Socks.Auth, []string{"none"}) ||
		o.Socks.TLSOpts == nil || !reflect.DeepEqual(o.Socks.TLSOpts.ALPN, []string{"h2"}) {
		t.Errorf("socks tuple: %+v", o.Socks)
	}
	if len(o.TLS.ALPN) != 0 {
		t.Errorf("socks adds no ALPN: %v", o.TLS.ALPN)
	}
	o = mustParseOptions(t, `{"protocols": ["socks"], "socks_opts": {"host": "h", "port": 80,
	    "username": "u", "password": "p"}}`, 1080)
	if !reflect.DeepEqual(o.Socks.Auth, []string{"username_password"}) || o.Socks.Username != "u" ||
		o.Socks.Password != "p" || !reflect.DeepEqual(o.Socks.Protocols, []string{"http"}) || o.Socks.TLSOpts != nil {
		t.Errorf("socks credentials: %+v", o.Socks)
	}
	// cookie_ignore_informational: the top-level value is the protocols' default.
	o = mustParseOptions(t, `{"cookie_ignore_informational": true, "http2_opts": {"cookie_ignore_informational": false}}`, 80)
	if !o.HTTP.CookieIgnoreInformational || o.HTTP2.CookieIgnoreInformational {
		t.Errorf("cookie_ignore_informational: %v %v", o.HTTP.CookieIgnoreInformational, o.HTTP2.CookieIgnoreInformational)
	}
}

func TestOptionsProtocolParsers(t *testing.T) {
	ws, err := ParseWSOpts([]byte(`{"protocols": ["v1.chat"], "compress": "compat", "max_message_size": 64}`))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ws.Protocols, []string{"v1.chat"}) || !ws.Compress || !ws.CompressCompat ||
		ws.MaxMessageSize != 64 || !ws.SilencePings || ws.ClosingTimeout != ms(15000) {
		t.Errorf("%+v", ws)
	}
	if ws, err := ParseWSOpts(nil); err != nil || !reflect.DeepEqual(ws, DefaultWSOpts()) {
		t.Errorf("ParseWSOpts(nil) = %+v, %v", ws, err)
	}
	_, err = ParseWSOpts([]byte(`{"silence_pings": 1}`))
	var e *OptionError
	if !errors.As(err, &e) || e.Proto != "ws_opts" || e.Key != "silence_pings" {
		t.Errorf("%v", err)
	}
	h, err := ParseHTTPOpts([]byte(`{"flow": 10}`))
	if err != nil || h.Flow != 10 || h.Version != "HTTP/1.1" {
		t.Errorf("%+v %v", h, err)
	}
	h2, err := ParseHTTP2Opts([]byte(`{"max_frame_size_received": 32768}`))
	if err != nil || h2.MaxFrameSizeReceived != 32768 || h2.InitialStreamWindowSize != 8000000 {
		t.Errorf("%+v %v", h2, err)
	}
	if _, err := ParseHTTP2Opts([]byte(`{"max_frame_size_received": 5}`)); err == nil ||
		err.Error() != `option http2_opts.max_frame_size_received = 5: must be between 16384 and 16777215` {
		t.Errorf("%v", err)
	}
	if _, err := ParseHTTPOpts([]byte(`{`)); !errors.As(err, &e) || e.Key != "http_opts" ||
		!strings.HasPrefix(e.Msg, "invalid JSON") {
		t.Errorf("%v", err)
	}
}

func TestRetryPolicyDelay(t *testing.T) {
	cases := []struct {
		p    RetryPolicy
		want []int64 // ms for attempts 1..
	}{
		{RetryPolicy{Backoff: "fixed", Initial: ms(1000), Max: ms(60000)}, []int64{1000, 1000, 1000}},
		{RetryPolicy{Backoff: "linear", Initial: ms(1000), Max: ms(3500)}, []int64{1000, 2000, 3000, 3500, 3500}},
		{RetryPolicy{Backoff: "exponential", Initial: ms(100), Max: ms(1000), Factor: 2}, []int64{100, 200, 400, 800, 1000, 1000}},
		{RetryPolicy{Backoff: "exponential", Initial: ms(100), Max: ms(10000), Factor: 1.5}, []int64{100, 150, 225}},
	}
	for _, c := range cases {
		for i, w := range c.want {
			if got := c.p.Delay(i + 1); got != ms(w) {
				t.Errorf("%+v Delay(%d) = %v, want %dms", c.p, i+1, got, w)
			}
		}
	}
	// The cap holds for huge attempts (no overflow) and attempt < 1 is the first.
	p := RetryPolicy{Backoff: "exponential", Initial: ms(100), Max: ms(1000), Factor: 2}
	if p.Delay(100000) != ms(1000) || p.Delay(0) != ms(100) {
		t.Errorf("exponential cap: %v %v", p.Delay(100000), p.Delay(0))
	}
	l := RetryPolicy{Backoff: "linear", Initial: ms(100), Max: ms(1000)}
	if l.Delay(math.MaxInt) != ms(1000) {
		t.Errorf("linear cap: %v", l.Delay(math.MaxInt))
	}

	o := mustParseOptions(t, `{"retry_timeout": 300, "retry_fun": {"backoff": "linear"}}`, 80)
	if *o.RetryFun != (RetryPolicy{Backoff: "linear", Initial: ms(300), Max: ms(60000), Factor: 2}) {
		t.Errorf("defaults from retry_timeout: %+v", *o.RetryFun)
	}
	if o.RetryDelay(2) != ms(600) {
		t.Errorf("RetryDelay(2) = %v", o.RetryDelay(2))
	}
	o = mustParseOptions(t, `{"retry_fun": {"backoff": "fixed", "initial": 90000}}`, 80)
	if o.RetryFun.Max != ms(90000) || o.RetryDelay(3) != ms(90000) {
		t.Errorf("initial above the default max: %+v", *o.RetryFun)
	}
	o = mustParseOptions(t, `{"retry_timeout": 700}`, 80)
	if o.RetryDelay(4) != ms(700) {
		t.Errorf("RetryDelay without retry_fun = %v", o.RetryDelay(4))
	}
}

// TLS.

type testPKI struct {
	caFile   string
	caPool   *x509.CertPool
	server   tls.Certificate
	clientCF string // client cert file
	clientKF string // client key file
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gunmetal test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	p := &testPKI{caFile: filepath.Join(dir, "ca.pem"), caPool: x509.NewCertPool()}
	p.caPool.AddCert(caCert)
	writePEM(t, p.caFile, "CERTIFICATE", caDER)

	leaf := func(serial int64, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "example.test"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			DNSNames: []string{"example.test"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	sDER, sKey := leaf(2, x509.ExtKeyUsageServerAuth)
	p.server = tls.Certificate{Certificate: [][]byte{sDER}, PrivateKey: sKey}
	cDER, cKey := leaf(3, x509.ExtKeyUsageClientAuth)
	p.clientCF, p.clientKF = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	writePEM(t, p.clientCF, "CERTIFICATE", cDER)
	kDER, _ := x509.MarshalECPrivateKey(cKey)
	writePEM(t, p.clientKF, "EC PRIVATE KEY", kDER)
	return p
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// tlsServer accepts TLS connections on loopback and records what clients
// sent; each connection gets one byte after the handshake (so that TLS 1.3
// session tickets reach the client) and is closed.
type tlsServer struct {
	ln    net.Listener
	mu    sync.Mutex
	snis  []string
	alpns [][]string
	certs int // client certificates seen
	wg    sync.WaitGroup
}

func newTLSServer(t *testing.T, p *testPKI, cfg *tls.Config) *tlsServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &tlsServer{ln: ln}
	cfg.Certificates = []tls.Certificate{p.server}
	cfg.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		s.mu.Lock()
		s.snis = append(s.snis, h.ServerName)
		s.alpns = append(s.alpns, h.SupportedProtos)
		s.mu.Unlock()
		return nil, nil
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				tc := tls.Server(c, cfg)
				_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
				if tc.Handshake() != nil {
					return
				}
				if len(tc.ConnectionState().PeerCertificates) > 0 {
					s.mu.Lock()
					s.certs++
					s.mu.Unlock()
				}
				_, _ = tc.Write([]byte("x"))
				buf := make([]byte, 1)
				_, _ = tc.Read(buf) // until the client closes
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

// dial handshakes with cfg and reads the server's byte.
func (s *tlsServer) dial(cfg *tls.Config) (tls.ConnectionState, error) {
	c, err := net.Dial("tcp", s.ln.Addr().String())
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	tc := tls.Client(c, cfg)
	_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		return tls.ConnectionState{}, err
	}
	buf := make([]byte, 1)
	if _, err := tc.Read(buf); err != nil {
		return tls.ConnectionState{}, err
	}
	return tc.ConnectionState(), nil
}

func (s *tlsServer) lastSNI() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snis[len(s.snis)-1]
}

func TestTLSConfigDefaultVerify(t *testing.T) {
	o := mustParseOptions(t, "", 443)
	cfg, err := o.TLSConfig("example.com")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RootCAs != nil || cfg.InsecureSkipVerify || cfg.ServerName != "example.com" ||
		cfg.VerifyConnection != nil || len(cfg.Certificates) != 0 {
		t.Errorf("default config: %+v", cfg)
	}
	if cfg.MinVersion != tls.VersionTLS12 || cfg.MaxVersion != tls.VersionTLS13 {
		t.Errorf("versions %x..%x", cfg.MinVersion, cfg.MaxVersion)
	}
	if !reflect.DeepEqual(cfg.NextProtos, []string{"h2", "http/1.1"}) {
		t.Errorf("NextProtos %v", cfg.NextProtos)
	}
	if cfg.ClientSessionCache == nil {
		t.Errorf("no session cache")
	}
	cfg2, _ := o.TLSConfig("example.com")
	if cfg2.ClientSessionCache != cfg.ClientSessionCache {
		t.Errorf("the session cache is not shared across configs")
	}
	// IP literals: ServerName is the IP, which Go verifies but never sends as SNI.
	for _, h := range []string{"127.0.0.1", "[::1]"} {
		cfg, _ := o.TLSConfig(h)
		if net.ParseIP(cfg.ServerName) == nil {
			t.Errorf("%s: ServerName %q", h, cfg.ServerName)
		}
	}
	// A server certificate not signed by a system root is refused.
	p := newTestPKI(t)
	srv := newTLSServer(t, p, &tls.Config{})
	if _, err := srv.dial(cfg); err == nil {
		t.Errorf("handshake with an unknown CA succeeded")
	}
}

func TestTLSConfigCACertFile(t *testing.T) {
	p := newTestPKI(t)
	srv := newTLSServer(t, p, &tls.Config{})
	o := mustParseOptions(t, `{"tls_opts": {"cacertfile": "`+p.caFile+`"}}`, 443)
	cfg, err := o.TLSConfig("example.test")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RootCAs == nil || !cfg.RootCAs.Equal(p.caPool) {
		t.Errorf("RootCAs is not the cacertfile's")
	}
	st, err := srv.dial(cfg)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if st.NegotiatedProtocol != "" || srv.lastSNI() != "example.test" {
		t.Errorf("alpn %q sni %q", st.NegotiatedProtocol, srv.lastSNI())
	}
	// A reconnect with a config built again from the same options resumes.
	cfg2, _ := o.TLSConfig("example.test")
	st2, err := srv.dial(cfg2)
	if err != nil {
		t.Fatal(err)
	}
	if !st2.DidResume {
		t.Errorf("the reconnect did not resume the session")
	}
	// reuse_sessions false: no cache, no resumption.
	o2 := mustParseOptions(t, `{"tls_opts": {"cacertfile": "`+p.caFile+`", "reuse_sessions": false}}`, 443)
	cfg3, _ := o2.TLSConfig("example.test")
	if cfg3.ClientSessionCache != nil {
		t.Errorf("reuse_sessions false has a cache")
	}
	// The wrong name fails verification.
	cfgBad, _ := o.TLSConfig("other.test")
	if _, err := srv.dial(cfgBad); err == nil {
		t.Errorf("handshake for other.test succeeded")
	}
	// TLS 1.2 only.
	o4 := mustParseOptions(t, `{"tls_opts": {"cacertfile": "`+p.caFile+`", "versions": ["tlsv1.2"]}}`, 443)
	cfg4, _ := o4.TLSConfig("example.test")
	if st, err := srv.dial(cfg4); err != nil || st.Version != tls.VersionTLS12 {
		t.Errorf("tlsv1.2 only: %v %x", err, st.Version)
	}
	// A missing cacertfile is an OptionError naming it.
	o5 := mustParseOptions(t, `{"tls_opts": {"cacertfile": "/nonexistent/ca.pem"}}`, 443)
	_, err = o5.TLSConfig("example.test")
	var e *OptionError
	if !errors.As(err, &e) || e.Proto != "tls_opts" || e.Key != "cacertfile" {
		t.Errorf("missing cacertfile: %v", err)
	}
}

func TestTLSConfigClientCert(t *testing.T) {
	p := newTestPKI(t)
	srv := newTLSServer(t, p, &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: p.caPool})
	o := mustParseOptions(t, `{"tls_opts": {"cacertfile": "`+p.caFile+`", "certfile": "`+p.clientCF+
		`", "keyfile": "`+p.clientKF+`"}}`, 443)
	cfg, err := o.TLSConfig("example.test")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Certificates) != 1 {
		t.Fatalf("Certificates: %d", len(cfg.Certificates))
	}
	if _, err := srv.dial(cfg); err != nil {
		t.Fatalf("handshake with client cert: %v", err)
	}
	srv.mu.Lock()
	certs := srv.certs
	srv.mu.Unlock()
	if certs != 1 {
		t.Errorf("server saw %d client certificates", certs)
	}
	bad := mustParseOptions(t, `{"tls_opts": {"certfile": "/nonexistent.pem", "keyfile": "/nonexistent.key"}}`, 443)
	if _, err := bad.TLSConfig("example.test"); err == nil {
		t.Errorf("missing certfile accepted")
	}
}

func TestTLSConfigVerifyNone(t *testing.T) {
	p := newTestPKI(t)
	srv := newTLSServer(t, p, &tls.Config{})
	o := mustParseOptions(t, `{"tls_opts": {"verify": "verify_none"}}`, 443)
	cfg, err := o.TLSConfig("anything.invalid")
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.InsecureSkipVerify || cfg.ServerName != "anything.invalid" {
		t.Errorf("verify_none: %v %q", cfg.InsecureSkipVerify, cfg.ServerName)
	}
	if _, err := srv.dial(cfg); err != nil {
		t.Errorf("verify_none handshake: %v", err)
	}
	if srv.lastSNI() != "anything.invalid" {
		t.Errorf("SNI %q", srv.lastSNI())
	}
}

func TestTLSConfigSNI(t *testing.T) {
	p := newTestPKI(t)
	srv := newTLSServer(t, p, &tls.Config{})
	// Override: SNI and verification use the given name.
	o := mustParseOptions(t, `{"tls_opts": {"cacertfile": "`+p.caFile+`", "server_name_indication": "example.test"}}`, 443)
	cfg, err := o.TLSConfig("127.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ServerName != "example.test" {
		t.Errorf("ServerName %q", cfg.ServerName)
	}
	if _, err := srv.dial(cfg); err != nil || srv.lastSNI() != "example.test" {
		t.Errorf("SNI override: %v, server saw %q", err, srv.lastSNI())
	}
	// disable: no SNI sent, the certificate still checked against host.
	o = mustParseOptions(t, `{"tls_opts": {"cacertfile": "`+p.caFile+`", "server_name_indication": "disable"}}`, 443)
	cfg, _ = o.TLSConfig("example.test")
	if cfg.ServerName != "" {
		t.Errorf("disable: ServerName %q", cfg.ServerName)
	}
	if _, err := srv.dial(cfg); err != nil || srv.lastSNI() != "" {
		t.Errorf("SNI disable: %v, server saw %q", err, srv.lastSNI())
	}
	cfg, _ = o.TLSConfig("wrong.test")
	if _, err := srv.dial(cfg); err == nil {
		t.Errorf("SNI disable skipped verification")
	}
	// No SNI for IP literals, verified against the IP SAN.
	o = mustParseOptions(t, `{"tls_opts": {"cacertfile": "`+p.caFile+`"}}`, 443)
	cfg, _ = o.TLSConfig("127.0.0.1")
	if _, err := srv.dial(cfg); err != nil || srv.lastSNI() != "" {
		t.Errorf("IP literal: %v, server saw SNI %q", err, srv.lastSNI())
	}
}

func TestTLSConfigALPNOrder(t *testing.T) {
	p := newTestPKI(t)
	srv := newTLSServer(t, p, &tls.Config{NextProtos: []string{"http/1.1", "h2"}})
	for _, c := range []struct {
		protocols string
		want      []string
	}{
		{`["http2", "http"]`, []string{"h2", "http/1.1"}},
		{`["http", "http2"]`, []string{"http/1.1", "h2"}},
		{`["http2"]`, []string{"h2"}},
		{`["raw"]`, nil},
	} {
		o := mustParseOptions(t, `{"transport": "tls", "protocols": `+c.protocols+
			`, "tls_opts": {"cacertfile": "`+p.caFile+`"}}`, 0)
		cfg, err := o.TLSConfig("example.test")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(cfg.NextProtos, c.want) {
			t.Errorf("%s: NextProtos %v, want %v", c.protocols, cfg.NextProtos, c.want)
		}
		if _, err := srv.dial(cfg); err != nil {
			t.Fatalf("%s: %v", c.protocols, err)
		}
		srv.mu.Lock()
		got := srv.alpns[len(srv.alpns)-1]
		srv.mu.Unlock()
		if len(got) != len(c.want) || (len(c.want) > 0 && !reflect.DeepEqual(got, c.want)) {
			t.Errorf("%s: server saw ALPN %v, want %v", c.protocols, got, c.want)
		}
	}
}

func TestTLSConfigSessionCacheBounds(t *testing.T) {
	c := NewTLSSessionCache(2, time.Minute).(*optSessionCache)
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	s := &tls.ClientSessionState{}
	c.Put("a", s)
	c.Put("b", s)
	c.Get("a") // a is now the most recent
	c.Put("c", s)
	if _, ok := c.Get("b"); ok {
		t.Errorf("b should have been evicted")
	}
	if _, ok := c.Get("a"); !ok {
		t.Errorf("a evicted")
	}
	now = now.Add(2 * time.Minute)
	if _, ok := c.Get("a"); ok {
		t.Errorf("a outlived session_lifetime")
	}
	c.Put("c", nil)
	if _, ok := c.Get("c"); ok || c.ll.Len() != 0 {
		t.Errorf("Put(nil) did not remove; %d left", c.ll.Len())
	}
}

// tls_opts.cacerts is ssl's cacerts: base64 DER certificates, trusted with
// (or instead of) cacertfile; anything else is refused naming the key.
func TestOptionsCACerts(t *testing.T) {
	for _, js := range []string{
		`{"tls_opts": {"cacerts": []}}`,
		`{"tls_opts": {"cacerts": "x"}}`,
		`{"tls_opts": {"cacerts": [1]}}`,
		`{"tls_opts": {"cacerts": ["not base64!"]}}`,
		`{"tls_opts": {"cacerts": ["bm90IGEgY2VydA=="]}}`,
	} {
		if e := optErr(t, js, 443); e.Proto != "tls_opts" || e.Key != "cacerts" {
			t.Errorf("%s: %#v", js, e)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	o, err := ParseOptions([]byte(`{"tls_opts": {"cacerts": ["`+base64.StdEncoding.EncodeToString(der)+`"]}}`), 443)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := o.TLSConfig("example.org")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RootCAs == nil || !cfg.RootCAs.Equal(func() *x509.CertPool {
		p := x509.NewCertPool()
		c, _ := x509.ParseCertificate(der)
		p.AddCert(c)
		return p
	}()) {
		t.Errorf("RootCAs is not the one certificate given")
	}
}

// Certificate failures are named as OTP's ssl names its alerts.
func TestReasonOfTLSAlerts(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, "tls_alert: unknown_ca: "},
		{&tls.CertificateVerificationError{Err: x509.CertificateInvalidError{Reason: x509.Expired}}, "tls_alert: certificate_expired: "},
		{&tls.CertificateVerificationError{Err: x509.HostnameError{Certificate: &x509.Certificate{DNSNames: []string{"a.example"}}, Host: "x"}}, "tls_alert: handshake_failure: "},
		{&tls.CertificateVerificationError{Err: errors.New("other")}, "tls_alert: bad_certificate: "},
		{tls.AlertError(40), "tls_alert: handshake_failure: "},
		{tls.AlertError(48), "tls_alert: unknown_ca: "},
	} {
		if got := reasonOf(c.err); !strings.HasPrefix(got, c.want) {
			t.Errorf("reasonOf(%v) = %q, want prefix %q", c.err, got, c.want)
		}
	}
}
