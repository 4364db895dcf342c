package core

// Connection options: Gun 2.x's gun:opts() as one JSON object.
//
// The keys are Gun's option names; a value is the JSON spelling of Gun's:
// atoms are strings ("tls", "verify_none", "HTTP/1.0"), timeouts are
// milliseconds as JSON integers or the string "infinity" where Gun allows
// infinity, lists are arrays and maps are objects. Validation is strict, as
// gun:open/3's check_options is: an unknown key, a wrong type or an
// out-of-range value is refused with an *OptionError naming the key, the
// value and, inside a protocol's options, the protocol (Gun's
// {options, {http2, {Key, Value}}}). A JSON null value counts as "not given"
// (the default applies), so that C callers may serialise optional fields.
//
// How Gun's terms are spelled here:
//
//	protocols           ["http2", "http"], or with options:
//	                    [["http2", {...http2_opts}], {"http": {...}}, "raw"]
//	                    (Gun's {http2, Opts}; such options replace http2_opts
//	                    for that connection, as in Gun)
//	tcp_opts            an object: nodelay, keepalive, send_timeout,
//	                    send_timeout_close, sndbuf, recbuf, ip, port, inet,
//	                    inet6 (Gun takes a gen_tcp option list)
//	tls_opts            an object: verify, cacertfile, cacerts (a list of
//	                    base64 DER certificates, ssl's cacerts), certfile, keyfile,
//	                    server_name_indication, versions, reuse_sessions,
//	                    session_lifetime, session_cache_client_max
//	ws_opts.protocols   ["mqtt", ...] or [["mqtt", "gun_ws_h"], ...]
//	socks_opts.auth     ["none", ["username_password", "User", "Pass"]]
//	retry_fun           a policy declared as data, see RetryPolicy
//	cookie_store        true or false: gunmetal's own in-memory jar
//
// Gun keys parsed here whose other values this build does not implement
// (supervise false, trace true, tcp_opts.send_timeout_close false,
// http2_opts.stream_window_data_threshold, ws_opts.invalid_request_headers
// "ignore", the socks protocol and its options, raw beside other
// protocols) are refused when a connection is opened, naming them: see
// options_implemented.go. ws_opts.default_protocol and a
// protocols handler must be gun_ws_h (there are no handler modules);
// ws_opts.user_opts is refused. Gun keys refused with "not supported by
// gunmetal" are listed in optUnsupported below.
//
// gunmetal's own keys: raw_opts.closing_timeout, max_pending_requests, max_pending_body, retry_on_tls_verify_failure,
// cookie_ignore_informational at
// the top level (the default for http_opts' and http2_opts'), raw_opts,
// http2_opts.wait_for_stream_slot, http2_opts.max_header_list_size,
// http_opts' and http2_opts' max_informational_responses,
// http2_opts.max_settings_entries,
// the progress bounds http_opts.head_timeout, http_opts.discard_timeout,
// http2_opts.frame_timeout and http2_opts.send_window_timeout,
// ws_opts.max_message_size (an alias of Gun's ws_opts.max_frame_size) and
// the tls_opts object's keys above.
//
// In the parsed Options every time.Duration of 0 means infinity, except
// RetryTimeout (0 = retry at once). Because of that a timeout of 0 ms, which
// Gun would take as "expire at once", is refused: give a positive number of
// milliseconds or "infinity". For the same reason flow must be positive
// (leave it out to disable flow control, as in Gun) and
// max_concurrent_streams positive or "infinity".
//
// Each option set lives beside its protocol, as Gun's protocol modules own
// their check_options/1: its type, defaults and parser (an optSet's check)
// are in http1_opts.go (http_opts), http2_opts.go, ws_opts.go, raw_opts.go,
// socks_opts.go and transport_opts.go (tcp_opts, tls_opts). This file keeps
// the top-level keys, their dispatch (ParseOptions) and the JSON field
// helpers every set shares (optObject, optField).

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// OptionError is Gun's {options, Opt} / {options, {Proto, {Key, Value}}}.
type OptionError struct {
	// Proto is "" for a top-level key, else the dotted path of the option
	// set that holds Key: "http_opts", "http2_opts", "ws_opts", "tcp_opts",
	// "tls_opts", "raw_opts", "socks_opts", "retry_fun",
	// "socks_opts.tls_opts", "protocols.http2" (the options given with a
	// protocol in the protocols list)...
	Proto string
	Key   string
	// Value is the offending JSON value, decoded (integers as int64, other
	// numbers as float64, then string, bool, []any, map[string]any), or nil
	// when the option is missing.
	Value any
	// Msg says why, e.g. "unknown option", "must be a non-negative integer",
	// "must be one of tcp, tls".
	Msg string
}

func (e *OptionError) Error() string {
	name := e.Key
	if e.Proto != "" {
		if name != "" {
			name = e.Proto + "." + name
		} else {
			name = e.Proto
		}
	}
	var b strings.Builder
	if name == "" {
		b.WriteString("options")
	} else {
		b.WriteString("option ")
		b.WriteString(name)
	}
	if e.Value != nil {
		b.WriteString(" = ")
		b.WriteString(optFormatValue(e.Value))
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// Options is a connection's configuration, every default filled.
type Options struct {
	Transport string   // "tcp" | "tls"; default "tls" when port == 443, else "tcp" (unix sockets: "tcp"); "ssl" is taken as "tls"
	Protocols []string // each "http" | "http2" | "raw" | "socks"; default ["http"] on tcp, ["http2","http"] on tls; exactly one on tcp

	Retry        int           // "retry", default 5, >= 0
	RetryTimeout time.Duration // "retry_timeout", default 5000 ms, >= 0
	RetryFun     *RetryPolicy  // "retry_fun", default nil (every retry waits RetryTimeout)

	// 0 = infinity (the default for all three). Gun's names:
	// connect_timeout, domain_lookup_timeout, tls_handshake_timeout.
	ConnectTimeout, DomainLookupTimeout, TLSHandshakeTimeout time.Duration

	// RetryOnTLSVerifyFailure is gunmetal's "retry_on_tls_verify_failure":
	// false (the default) makes a certificate that fails verification
	// (expired, unknown CA, wrong host name) end the connection at once,
	// EXIT with the verifier's reason, as such a failure is not transient;
	// true retries it like any other failure, per retry.
	RetryOnTLSVerifyFailure bool

	// MaxPendingRequests is how many requests are queued while not
	// connected (gunmetal's "max_pending_requests"); default 1024, >= 0.
	MaxPendingRequests int
	// MaxPendingBody is how many bytes of request bodies are held for
	// requests queued while not connected (gunmetal's "max_pending_body");
	// default 4 MiB (GM_PENDING_BODY_MAX). Past it Data waits for UP; 0
	// holds nothing: Data before UP is ErrNotUp and the host holds the body
	// (the Erlang binding does, so that no NIF call waits for a connection).
	MaxPendingBody int

	// CookieStore is "cookie_store": true enables an in-memory cookie jar
	// for the connection; default false. Gun takes a store {Module, State};
	// gunmetal has one store and this switches it on.
	CookieStore bool
	// CookieIgnoreInformational is a top-level "cookie_ignore_informational"
	// (a gunmetal convenience): the default of http_opts' and http2_opts'
	// cookie_ignore_informational, which are what the engine uses. Default
	// false, as Gun's.
	CookieIgnoreInformational bool

	Supervise bool // "supervise", default true; false is refused by Open (checkImplemented)
	Trace     bool // "trace", default false: true, or a non-empty list of names (trace.go)

	TraceMask uint64 // the trace events on, 1<<index in TraceNames

	TCP   TCPOpts
	TLS   TLSOpts
	HTTP  HTTPOpts
	HTTP2 HTTP2Opts
	WS    WSOpts
	Raw   RawOpts
	Socks *SocksOpts // nil unless given
}

// RetryPolicy is "retry_fun" declared as data:
//
//	{"backoff": "fixed"|"exponential"|"linear",  (required)
//	 "initial": ms (default retry_timeout),
//	 "max": ms (default 60000, or initial when that is larger),
//	 "factor": number >= 1 (exponential only; default 2)}
//
// Gun's retry_fun is an Erlang fun; gunmetal cannot call one, so the usual
// strategies are declared instead. The number of retries is still "retry".
type RetryPolicy struct {
	Backoff      string
	Initial, Max time.Duration
	Factor       float64
}

// Delay gives the wait before retry number attempt (1-based, counting
// delayed retries): fixed waits Initial every time, linear Initial*attempt,
// exponential Initial*Factor^(attempt-1); never more than Max (when Max > 0).
func (p *RetryPolicy) Delay(attempt int) time.Duration {
	if p == nil {
		return 0
	}
	if attempt < 1 {
		attempt = 1
	}
	limit := p.Max
	if limit <= 0 {
		limit = math.MaxInt64
	}
	init := p.Initial
	if init <= 0 {
		return 0
	}
	var d time.Duration
	switch p.Backoff {
	case "linear":
		if int64(attempt) > int64(limit)/int64(init) {
			return limit
		}
		d = init * time.Duration(attempt)
	case "exponential":
		f := p.Factor
		if f == 0 {
			f = 2
		}
		if f < 1 || math.IsNaN(f) {
			f = 1
		}
		x := float64(init) * math.Pow(f, float64(attempt-1))
		if math.IsInf(x, 0) || math.IsNaN(x) || x >= float64(limit) {
			return limit
		}
		d = time.Duration(x)
	default: // "fixed"
		d = init
	}
	if d > limit {
		d = limit
	}
	return d
}

// RetryDelay is the wait before retry number attempt (1-based): RetryFun's
// when given, else RetryTimeout.
func (o *Options) RetryDelay(attempt int) time.Duration {
	if o.RetryFun != nil {
		return o.RetryFun.Delay(attempt)
	}
	return o.RetryTimeout
}

// Defaults.

// DefaultOptions is what ParseOptions gives for "{}" and port (0 for a unix
// socket).
func DefaultOptions(port int) *Options {
	o := &Options{
		Retry:              5,
		RetryTimeout:       5000 * time.Millisecond,
		MaxPendingRequests: 1024,
		MaxPendingBody:     4 << 20,
		Supervise:          true,
		TCP:                DefaultTCPOpts(),
		TLS:                *DefaultTLSOpts(),
		HTTP:               *DefaultHTTPOpts(),
		HTTP2:              *DefaultHTTP2Opts(),
		WS:                 *DefaultWSOpts(),
		Raw:                *DefaultRawOpts(),
	}
	o.Transport = optDefaultTransport(port)
	o.Protocols = optDefaultProtocols(o.Transport)
	o.TLS.ALPN = optALPN(o.Protocols)
	return o
}

func optDefaultTransport(port int) string {
	if port == 443 {
		return "tls"
	}
	return "tcp"
}

func optDefaultProtocols(transport string) []string {
	if transport == "tls" {
		return []string{"http2", "http"}
	}
	return []string{"http"}
}

// optALPN maps protocols to ALPN names, in the protocols' order (Gun's
// ensure_alpn_sni happens to reverse them; the list is documented as an
// order of preference, so gunmetal keeps it). raw and socks add none.
func optALPN(protocols []string) []string {
	var out []string
	for _, p := range protocols {
		switch p {
		case "http":
			out = append(out, "http/1.1")
		case "http2":
			out = append(out, "h2")
		}
	}
	return out
}

// optUnsupported lists the Gun keys gunmetal refuses, per option set.
var optUnsupported = map[string]map[string]string{
	"": {
		"event_handler":  "not supported by gunmetal: events go to the owner's queue",
		"http3_opts":     "not supported by gunmetal: no HTTP/3",
		"transport_opts": "not supported by gunmetal: a Gun 1.x option, use tcp_opts and tls_opts",
		"spdy_opts":      "not supported by gunmetal: SPDY was removed in Gun 2.0",
		"type":           "not supported by gunmetal: a Gun 1.0 option, use transport",
	},
	"http_opts": {
		"transform_header_name": "not supported by gunmetal: takes an Erlang fun",
	},
	"ws_opts": {
		"reply_to":  "not supported by gunmetal: pass reply_to to the call",
		"user_opts": "not supported by gunmetal: only handler modules read it (" + wsHandlerMsg + ")",
		"tunnel":    "not supported by gunmetal: pass the tunnel to the call",
	},
	"tls_opts": {
		"verify_fun":                      "not supported by gunmetal: takes an Erlang fun",
		"customize_hostname_check":        "not supported by gunmetal: takes Erlang funs",
		"partial_chain":                   "not supported by gunmetal: takes an Erlang fun",
		"cert":                            "not supported by gunmetal: use certfile",
		"key":                             "not supported by gunmetal: use keyfile",
		"certs_keys":                      "not supported by gunmetal: use certfile and keyfile",
		"password":                        "not supported by gunmetal: keyfile must not be encrypted",
		"ciphers":                         "not supported by gunmetal: Go chooses the cipher suites",
		"alpn_advertised_protocols":       "not supported by gunmetal: ALPN is derived from protocols",
		"client_preferred_next_protocols": "not supported by gunmetal: ALPN is derived from protocols",
		"depth":                           "not supported by gunmetal",
		"crl_check":                       "not supported by gunmetal",
		"session_tickets":                 "not supported by gunmetal: use reuse_sessions",
		"reuse_session":                   "not supported by gunmetal: use reuse_sessions",
	},
}

// Parsing.

// optSet is one option set (http_opts, http2_opts, ws_opts, raw_opts,
// socks_opts, tcp_opts, tls_opts), owned by its protocol's file as Gun's
// protocol modules each own check_options/1: http1_opts.go, http2_opts.go,
// ws_opts.go, raw_opts.go, socks_opts.go, transport_opts.go. check parses raw, the JSON
// object at parent.key, over the values already in the set (its defaults)
// and returns the keys it was given (null members left out), so that
// ParseOptions can tell a key set there from one inherited from the top
// level (cookie_ignore_informational).
type optSet interface {
	check(parent, key string, raw json.RawMessage) (given []string, err error)
}

var _ = []optSet{
	(*HTTPOpts)(nil), (*HTTP2Opts)(nil), (*WSOpts)(nil), (*RawOpts)(nil),
	(*SocksOpts)(nil), (*TCPOpts)(nil), (*TLSOpts)(nil),
}

// ParseOptions parses and validates js, Gun's opts() as a JSON object, for a
// connection to port (0 for a unix socket), and fills every default. Empty
// input, "null" and "{}" give all defaults. Errors are *OptionError (a JSON
// syntax error is one with Key "" and Msg "invalid JSON: ...").
func ParseOptions(js []byte, port int) (*Options, error) {
	if port < 0 || port > 65535 {
		return nil, &OptionError{Key: "port", Value: int64(port), Msg: "must be between 0 and 65535"}
	}
	o := DefaultOptions(port)
	obj, err := optParseObject("", "", js)
	if err != nil {
		return nil, err
	}
	var (
		transportSet, protocolsSet  bool
		httpCII, http2CII           bool
		retryFun                    json.RawMessage
		protoEntries                []optProtoEntry
		tupleHTTP                   *HTTPOpts
		tupleHTTP2                  *HTTP2Opts
		tupleRaw                    *RawOpts
		tupleSocks                  *SocksOpts
		tupleHTTPCII, tupleHTTP2CII bool
	)
	for _, k := range obj.keys {
		f := optField{proto: "", key: k, raw: obj.vals[k]}
		var err error
		switch k {
		case "connect_timeout":
			o.ConnectTimeout, err = f.timeout()
		case "cookie_store":
			if c := optKind(f.raw); c != 't' && c != 'f' {
				err = f.fail("must be true or false: gunmetal has its own in-memory cookie store and cannot take a Gun store module")
				break
			}
			o.CookieStore, err = f.boolean()
		case "cookie_ignore_informational":
			o.CookieIgnoreInformational, err = f.boolean()
		case "domain_lookup_timeout":
			o.DomainLookupTimeout, err = f.timeout()
		case "http_opts":
			var given []string
			given, err = o.HTTP.check("", k, f.raw)
			httpCII = optContains(given, "cookie_ignore_informational")
		case "http2_opts":
			var given []string
			given, err = o.HTTP2.check("", k, f.raw)
			http2CII = optContains(given, "cookie_ignore_informational")
		case "max_pending_requests":
			var n int64
			n, err = f.integer(0, math.MaxInt32)
			o.MaxPendingRequests = int(n)
		case "max_pending_body":
			var n int64
			n, err = f.integer(0, 1<<30)
			o.MaxPendingBody = int(n)
		case "protocols":
			protoEntries, err = optParseProtocols("", k, f.raw)
			if err != nil {
				break
			}
			protocolsSet = true
			o.Protocols = o.Protocols[:0:0]
			for _, e := range protoEntries {
				o.Protocols = append(o.Protocols, e.name)
				if e.opts == nil {
					continue
				}
				switch e.name {
				case "http":
					tupleHTTP = DefaultHTTPOpts()
					var given []string
					given, err = tupleHTTP.check(k, e.name, e.opts)
					tupleHTTPCII = optContains(given, "cookie_ignore_informational")
				case "http2":
					tupleHTTP2 = DefaultHTTP2Opts()
					var given []string
					given, err = tupleHTTP2.check(k, e.name, e.opts)
					tupleHTTP2CII = optContains(given, "cookie_ignore_informational")
				case "raw":
					tupleRaw = DefaultRawOpts()
					_, err = tupleRaw.check(k, e.name, e.opts)
				case "socks":
					tupleSocks, err = parseSocksOpts(k, e.name, e.opts)
				}
				if err != nil {
					break
				}
			}
		case "raw_opts":
			_, err = o.Raw.check("", k, f.raw)
		case "retry":
			var n int64
			n, err = f.integer(0, math.MaxInt32)
			o.Retry = int(n)
		case "retry_fun":
			retryFun = f.raw // needs retry_timeout: parsed below
		case "retry_timeout":
			o.RetryTimeout, err = f.millis(0)
		case "retry_on_tls_verify_failure":
			o.RetryOnTLSVerifyFailure, err = f.boolean()
		case "socks_opts":
			o.Socks, err = parseSocksOpts("", k, f.raw)
		case "supervise":
			o.Supervise, err = f.boolean()
		case "tcp_opts":
			_, err = o.TCP.check("", k, f.raw)
		case "tls_handshake_timeout":
			o.TLSHandshakeTimeout, err = f.timeout()
		case "tls_opts":
			_, err = o.TLS.check("", k, f.raw)
		case "trace":
			o.TraceMask, err = f.trace()
			o.Trace = o.TraceMask != 0
		case "transport":
			var s string
			s, err = f.enum("tcp", "tls", "ssl")
			if err == nil {
				if s == "ssl" {
					s = "tls"
				}
				o.Transport = s
				transportSet = true
			} else {
				err = f.fail("must be one of tcp, tls")
			}
		case "ws_opts":
			_, err = o.WS.check("", k, f.raw)
			if err == nil && o.WS.Tunnel != 0 {
				err = &OptionError{Proto: "ws_opts", Key: "tunnel", Value: int64(o.WS.Tunnel),
					Msg: "is an option of one upgrade (gm_ws_upgrade's ws_opts), not of the connection"}
			}
		default:
			err = f.unknown("")
		}
		if err != nil {
			return nil, err
		}
	}

	if !transportSet {
		o.Transport = optDefaultTransport(port)
	}
	if !protocolsSet {
		o.Protocols = optDefaultProtocols(o.Transport)
	} else if o.Transport == "tcp" && len(o.Protocols) != 1 {
		return nil, &OptionError{Key: "protocols", Value: optDecodeValue(obj.vals["protocols"]),
			Msg: "must contain exactly one protocol when transport is tcp (ALPN needs tls)"}
	}
	if tupleHTTP != nil {
		o.HTTP, httpCII = *tupleHTTP, tupleHTTPCII
	}
	if tupleHTTP2 != nil {
		o.HTTP2, http2CII = *tupleHTTP2, tupleHTTP2CII
	}
	if tupleRaw != nil {
		o.Raw = *tupleRaw
	}
	if tupleSocks != nil {
		o.Socks = tupleSocks
	}
	if !httpCII {
		o.HTTP.CookieIgnoreInformational = o.CookieIgnoreInformational
	}
	if !http2CII {
		o.HTTP2.CookieIgnoreInformational = o.CookieIgnoreInformational
	}
	if o.Socks == nil && optContains(o.Protocols, "socks") {
		return nil, &OptionError{Key: "socks_opts",
			Msg: "required when protocols include socks (host and port are mandatory)"}
	}
	if retryFun != nil {
		p, err := parseRetryPolicy("", "retry_fun", retryFun, o.RetryTimeout)
		if err != nil {
			return nil, err
		}
		o.RetryFun = p
	}
	o.TLS.ALPN = optALPN(o.Protocols)
	return o, nil
}

func parseRetryPolicy(parent, key string, raw json.RawMessage, retryTimeout time.Duration) (*RetryPolicy, error) {
	if c := optKind(raw); c == 'f' || c == 't' || c == '"' || c == '[' || (c >= '0' && c <= '9') || c == '-' {
		f := optField{proto: parent, key: key, raw: raw}
		return nil, f.fail("must be an object {\"backoff\": \"fixed\"|\"exponential\"|\"linear\", \"initial\", \"max\", \"factor\"}: gunmetal cannot call an Erlang fun")
	}
	obj, err := optParseObject(parent, key, raw)
	if err != nil {
		return nil, err
	}
	path := optJoin(parent, key)
	p := &RetryPolicy{Initial: retryTimeout, Factor: 2}
	var backoffSet, maxSet bool
	var maxField optField
	for _, k := range obj.keys {
		f := optField{proto: path, key: k, raw: obj.vals[k]}
		switch k {
		case "backoff":
			p.Backoff, err = f.enum("fixed", "exponential", "linear")
			backoffSet = true
		case "initial":
			p.Initial, err = f.millis(0)
		case "max":
			p.Max, err = f.millis(0)
			maxSet, maxField = true, f
		case "factor":
			p.Factor, err = f.number()
			if err == nil && (p.Factor < 1 || p.Factor > 1000) {
				err = f.fail("must be a number between 1 and 1000")
			}
		default:
			err = f.unknown("retry_fun")
		}
		if err != nil {
			return nil, err
		}
	}
	if !backoffSet {
		return nil, &OptionError{Proto: path, Key: "backoff", Msg: "required: one of fixed, exponential, linear"}
	}
	if !maxSet {
		p.Max = max(60000*time.Millisecond, p.Initial)
	} else if p.Max < p.Initial {
		return nil, maxField.fail(fmt.Sprintf("must be at least initial (%d ms)", p.Initial.Milliseconds()))
	}
	return p, nil
}

// optProtoEntry is one element of a protocols list.
type optProtoEntry struct {
	name string
	opts json.RawMessage // nil unless given as [name, opts] or {name: opts}
}

var optProtocolNames = []string{"http", "http2", "raw", "socks"}

// optParseProtocols parses Gun's protocols(): a non-empty list of distinct
// names, each alone or with its options.
func optParseProtocols(parent, key string, raw json.RawMessage) ([]optProtoEntry, error) {
	whole := optField{proto: parent, key: key, raw: raw}
	elems, err := whole.array()
	if err != nil {
		return nil, whole.fail("must be a list of protocols (http, http2, raw, socks)")
	}
	if len(elems) == 0 {
		return nil, whole.fail("must not be empty")
	}
	var out []optProtoEntry
	seen := map[string]bool{}
	for _, el := range elems {
		var e optProtoEntry
		switch optKind(el) {
		case '"':
			_ = json.Unmarshal(el, &e.name)
		case '[':
			var pair []json.RawMessage
			if json.Unmarshal(el, &pair) != nil || len(pair) != 2 || optKind(pair[0]) != '"' || optKind(pair[1]) != '{' {
				return nil, whole.fail(fmt.Sprintf("element %s must be a protocol name or [name, {options}]", optCompact(el)))
			}
			_ = json.Unmarshal(pair[0], &e.name)
			e.opts = pair[1]
		case '{':
			o, err := optParseObject(parent, key, el)
			if err != nil {
				return nil, err
			}
			if len(o.keys) != 1 || optKind(o.vals[o.keys[0]]) != '{' {
				return nil, whole.fail(fmt.Sprintf("element %s must be a protocol name or {name: {options}}", optCompact(el)))
			}
			e.name, e.opts = o.keys[0], o.vals[o.keys[0]]
		default:
			return nil, whole.fail(fmt.Sprintf("element %s must be a protocol name (http, http2, raw, socks)", optCompact(el)))
		}
		if !optContains(optProtocolNames, e.name) {
			return nil, whole.fail(fmt.Sprintf("unknown protocol %q: must be one of http, http2, raw, socks", e.name))
		}
		if seen[e.name] {
			return nil, whole.fail(fmt.Sprintf("protocol %s is listed twice", e.name))
		}
		seen[e.name] = true
		out = append(out, e)
	}
	return out, nil
}

// JSON plumbing.

// optObject is a JSON object's members in document order, nulls left out.
type optObject struct {
	keys []string
	vals map[string]json.RawMessage
}

// optParseObject reads the object at parent.key. Empty input and null give
// an empty object; duplicate keys are refused.
func optParseObject(parent, key string, raw []byte) (*optObject, error) {
	obj := &optObject{vals: map[string]json.RawMessage{}}
	if len(bytes.TrimSpace(raw)) == 0 {
		return obj, nil
	}
	path := optJoin(parent, key)
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	syntax := func(err error) error {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return &OptionError{Proto: parent, Key: key, Msg: "invalid JSON: " + err.Error()}
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, syntax(err)
	}
	switch tok {
	case nil:
		if _, err := dec.Token(); err != io.EOF {
			return nil, syntax(errors.New("trailing data after null"))
		}
		return obj, nil
	case json.Delim('{'):
	default:
		msg := "must be an object"
		if path == "" {
			msg = "must be a JSON object"
		}
		if valid := json.Valid(raw); !valid {
			return nil, syntax(errors.New("not a single JSON value"))
		}
		return nil, &OptionError{Proto: parent, Key: key, Value: optDecodeValue(raw), Msg: msg}
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, syntax(err)
		}
		k, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, syntax(err)
		}
		if seen[k] {
			return nil, &OptionError{Proto: path, Key: k, Value: optDecodeValue(v), Msg: "duplicate key"}
		}
		seen[k] = true
		if optKind(v) == 'n' {
			continue // null: not given
		}
		obj.keys = append(obj.keys, k)
		obj.vals[k] = v
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, syntax(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			err = errors.New("trailing data after the object")
		}
		return nil, syntax(err)
	}
	return obj, nil
}

// optField is one member of an option set, ready to be checked.
type optField struct {
	proto, key string
	raw        json.RawMessage
}

func (f optField) fail(msg string) error {
	return &OptionError{Proto: f.proto, Key: f.key, Value: optDecodeValue(f.raw), Msg: msg}
}

// unknown refuses the key: "not supported by gunmetal" when Gun has it,
// else "unknown option".
func (f optField) unknown(set string) error {
	if msg, ok := optUnsupported[set][f.key]; ok {
		return f.fail(msg)
	}
	return f.fail("unknown option")
}

func (f optField) boolean() (bool, error) {
	switch string(bytes.TrimSpace(f.raw)) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, f.fail("must be a boolean (true or false)")
}

// trace is true, false, or a list of trace event names (trace.go).
func (f optField) trace() (uint64, error) {
	if optKind(f.raw) == '[' {
		var names []string
		if json.Unmarshal(f.raw, &names) != nil {
			return 0, f.fail("must be a boolean or a list of trace event names (strings)")
		}
		m, bad := traceMask(names)
		if bad != "" {
			return 0, f.fail("unknown trace event " + strconv.Quote(bad) + " (known: " + strings.Join(traceNames[:], ", ") + ")")
		}
		return m, nil
	}
	on, err := f.boolean()
	if err != nil {
		return 0, f.fail("must be a boolean or a list of trace event names")
	}
	if on {
		return TraceAll, nil
	}
	return 0, nil
}

// strict decodes a JSON string.
func (f optField) strict() (string, error) {
	var s string
	if optKind(f.raw) != '"' || json.Unmarshal(f.raw, &s) != nil {
		return "", f.fail("must be a string")
	}
	return s, nil
}

func (f optField) nonEmptyString() (string, error) {
	s, err := f.strict()
	if err != nil {
		return "", err
	}
	if s == "" {
		return "", f.fail("must be a non-empty string")
	}
	return s, nil
}

func (f optField) enum(values ...string) (string, error) {
	s, err := f.strict()
	if err == nil && optContains(values, s) {
		return s, nil
	}
	return "", f.fail("must be one of " + strings.Join(values, ", "))
}

func (f optField) isInfinity() bool {
	return string(bytes.TrimSpace(f.raw)) == `"infinity"`
}

// countOrInfinity accepts a positive integer bound, or "infinity" (0).
func (f optField) countOrInfinity() (int, error) {
	if f.isInfinity() {
		return 0, nil
	}
	n, err := f.integer(1, math.MaxInt32)
	if err != nil {
		return 0, f.fail("must be a positive integer or \"infinity\"")
	}
	return int(n), nil
}

// integer accepts a JSON integer (no fraction, no exponent) in [min, max].
func (f optField) integer(min, max int64) (int64, error) {
	s := string(bytes.TrimSpace(f.raw))
	if optIsInteger(s) {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= min && n <= max {
			return n, nil
		}
	}
	return 0, f.fail(optRangeMsg(min, max))
}

// number accepts any finite JSON number.
func (f optField) number() (float64, error) {
	s := string(bytes.TrimSpace(f.raw))
	if c := optKind(f.raw); c == '-' || (c >= '0' && c <= '9') {
		if x, err := strconv.ParseFloat(s, 64); err == nil && !math.IsInf(x, 0) {
			return x, nil
		}
	}
	return 0, f.fail("must be a number")
}

// flow is a positive integer (Gun: pos_integer()).
func (f optField) flow() (int64, error) {
	n, err := f.integer(1, math.MaxInt32)
	if err != nil {
		return 0, f.fail("must be a positive integer (leave it out to disable flow control)")
	}
	return n, nil
}

const optMaxMillis = math.MaxInt64 / int64(time.Millisecond)

// millis is a number of milliseconds >= min, without infinity.
func (f optField) millis(min int64) (time.Duration, error) {
	n, err := f.integer(min, optMaxMillis)
	if err != nil {
		if min == 0 {
			return 0, f.fail("must be a non-negative integer (milliseconds)")
		}
		return 0, f.fail("must be a positive integer (milliseconds)")
	}
	return time.Duration(n) * time.Millisecond, nil
}

// timeout is Gun's timeout(): "infinity" (→ 0) or a positive number of
// milliseconds (0 ms is refused: 0 means infinity in Options).
func (f optField) timeout() (time.Duration, error) {
	if f.isInfinity() {
		return 0, nil
	}
	n, err := f.integer(1, optMaxMillis)
	if err != nil {
		return 0, f.fail("must be a positive integer (milliseconds) or \"infinity\"")
	}
	return time.Duration(n) * time.Millisecond, nil
}

func (f optField) array() ([]json.RawMessage, error) {
	var elems []json.RawMessage
	if optKind(f.raw) != '[' || json.Unmarshal(f.raw, &elems) != nil {
		return nil, f.fail("must be a list")
	}
	return elems, nil
}

func optKind(raw []byte) byte {
	for _, c := range raw {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c
	}
	return 0
}

func optIsInteger(s string) bool {
	if strings.HasPrefix(s, "-") {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func optRangeMsg(min, max int64) string {
	switch {
	case max == math.MaxInt64 && min == 0, max == optMaxMillis && min == 0:
		return "must be a non-negative integer"
	case max == math.MaxInt64 && min == 1, max == optMaxMillis && min == 1:
		return "must be a positive integer"
	case min == max:
		return fmt.Sprintf("must be %d", min)
	case max == math.MaxInt64:
		return fmt.Sprintf("must be an integer >= %d", min)
	default:
		return fmt.Sprintf("must be between %d and %d", min, max)
	}
}

// optIsToken reports whether s is an RFC 9110 token.
func optIsToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

func optJoin(parent, key string) string {
	if parent == "" {
		return key
	}
	if key == "" {
		return parent
	}
	return parent + "." + key
}

func optContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// optDecodeValue decodes raw for an OptionError: integers as int64, other
// numbers as float64.
func optDecodeValue(raw []byte) any {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return string(raw)
	}
	return optNormalize(v)
}

func optNormalize(v any) any {
	switch x := v.(type) {
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		if f, err := x.Float64(); err == nil {
			return f
		}
		return x.String()
	case []any:
		for i := range x {
			x[i] = optNormalize(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = optNormalize(x[k])
		}
	}
	return v
}

func optFormatValue(v any) string {
	b, err := json.Marshal(v)
	s := string(b)
	if err != nil {
		s = fmt.Sprint(v)
	}
	if len(s) > 200 {
		s = s[:197] + "..."
	}
	return s
}

func optCompact(raw []byte) string {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return string(raw)
	}
	return optFormatValue(json.RawMessage(b.Bytes()))
}
