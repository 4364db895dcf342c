package core

// tcp_opts and tls_opts: the transports' options (Gun passes them to
// gen_tcp and ssl), and the tls.Config built from tls_opts. The shared
// JSON field helpers (optField, optParseObject) are in options.go.

import (
	"container/list"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// TCPOpts is "tcp_opts" (Gun: a gen_tcp option list; here an object).
type TCPOpts struct {
	NoDelay          bool          // "nodelay", default true
	KeepAlive        bool          // "keepalive", default false
	SendTimeout      time.Duration // "send_timeout", default 15000 ms ("infinity" → 0)
	SendTimeoutClose bool          // "send_timeout_close", default true; false is refused by Open: a send timeout always closes
	SndBuf, RecBuf   int           // "sndbuf", "recbuf"; 0 = OS default
	LocalIP          string        // "ip": local address to bind (must parse as an IP)
	LocalPort        int           // "port": local port to bind, 0..65535
	Inet6            bool          // "inet6": IPv6 only, as gen_tcp's inet6 (AAAA lookups, an IPv6 socket)
	Inet4            bool          // "inet": IPv4 only (both true is refused)

	// Socket options set before connect (see sockControl in transport.go).
	BindToDevice string // "bind_to_device": SO_BINDTODEVICE (CAP_NET_RAW before Linux 5.7)
	KeepIdle     int    // "keepidle": TCP_KEEPIDLE in seconds; 0 = OS default; needs keepalive
	KeepIntvl    int    // "keepintvl": TCP_KEEPINTVL in seconds; 0 = OS default; needs keepalive
	KeepCnt      int    // "keepcnt": TCP_KEEPCNT probes; 0 = OS default; needs keepalive
	Linger       int    // "linger": SO_LINGER seconds; -1 = off (false, the default)
	TOS          int    // "tos": IP_TOS (IPV6_TCLASS on IPv6); -1 = OS default
	Priority     int    // "priority": SO_PRIORITY; -1 = OS default (above 6 needs CAP_NET_ADMIN)
	ReuseAddr    bool   // "reuseaddr": SO_REUSEADDR
	V6Only       int    // "ipv6_v6only": IPV6_V6ONLY on IPv6 sockets; -1 = Go's choice
}

// DefaultTCPOpts is tcp_opts' defaults.
func DefaultTCPOpts() TCPOpts {
	return TCPOpts{NoDelay: true, SendTimeout: 15000 * time.Millisecond, SendTimeoutClose: true,
		Linger: -1, TOS: -1, Priority: -1, V6Only: -1}
}

// check is tcp_opts' check_options (see optSet).
func (dst *TCPOpts) check(parent, key string, raw json.RawMessage) (given []string, err error) {
	obj, err := optParseObject(parent, key, raw)
	if err != nil {
		return nil, err
	}
	path := optJoin(parent, key)
	for _, k := range obj.keys {
		f := optField{proto: path, key: k, raw: obj.vals[k]}
		var n int64
		switch k {
		case "nodelay":
			dst.NoDelay, err = f.boolean()
		case "keepalive":
			dst.KeepAlive, err = f.boolean()
		case "send_timeout":
			dst.SendTimeout, err = f.timeout()
		case "send_timeout_close":
			dst.SendTimeoutClose, err = f.boolean()
		case "sndbuf":
			n, err = f.integer(0, math.MaxInt32)
			dst.SndBuf = int(n)
		case "recbuf":
			n, err = f.integer(0, math.MaxInt32)
			dst.RecBuf = int(n)
		case "ip":
			var s string
			s, err = f.strict()
			if err == nil && net.ParseIP(s) == nil {
				err = f.fail("must be an IP address")
			} else if err != nil {
				err = f.fail("must be an IP address (a string)")
			}
			dst.LocalIP = s
		case "port":
			n, err = f.integer(0, 65535)
			dst.LocalPort = int(n)
		case "inet6":
			dst.Inet6, err = f.boolean()
		case "inet":
			dst.Inet4, err = f.boolean()
		case "bind_to_device":
			dst.BindToDevice, err = f.nonEmptyString()
			if err == nil && (len(dst.BindToDevice) >= 16 || strings.ContainsAny(dst.BindToDevice, "/ \x00")) {
				err = f.fail("must be a network interface name (under 16 bytes)")
			}
		case "keepidle":
			n, err = f.integer(1, 32767) // Linux's MAX_TCP_KEEPIDLE
			dst.KeepIdle = int(n)
		case "keepintvl":
			n, err = f.integer(1, 32767) // MAX_TCP_KEEPINTVL
			dst.KeepIntvl = int(n)
		case "keepcnt":
			n, err = f.integer(1, 127) // MAX_TCP_KEEPCNT
			dst.KeepCnt = int(n)
		case "linger":
			// gen_tcp's {linger, {true, Sec}} | {linger, {false, _}}: here an
			// integer of seconds, or false.
			if b, berr := f.boolean(); berr == nil && !b {
				dst.Linger = -1
			} else {
				n, err = f.integer(0, math.MaxInt32)
				if err != nil {
					err = f.fail("must be false or a number of seconds (0 or more)")
				}
				dst.Linger = int(n)
			}
		case "tos":
			n, err = f.integer(0, 255)
			dst.TOS = int(n)
		case "priority":
			n, err = f.integer(0, math.MaxInt32)
			dst.Priority = int(n)
		case "reuseaddr":
			dst.ReuseAddr, err = f.boolean()
		case "ipv6_v6only":
			var b bool
			b, err = f.boolean()
			dst.V6Only = 0
			if b {
				dst.V6Only = 1
			}
		case "buffer":
			err = f.fail("not supported by gunmetal: the read buffer starts at 64 KiB and grows to fit what the protocol needs")
		default:
			err = f.unknown("tcp_opts")
		}
		if err != nil {
			return nil, err
		}
	}
	if dst.Inet4 && dst.Inet6 {
		return nil, &OptionError{Proto: path, Key: "inet6", Value: true, Msg: "conflicts with inet: choose one address family"}
	}
	if !dst.KeepAlive {
		for _, k := range []string{"keepidle", "keepintvl", "keepcnt"} {
			if optContains(obj.keys, k) {
				return nil, &OptionError{Proto: path, Key: k, Value: optDecodeValue(obj.vals[k]), Msg: "needs keepalive: true"}
			}
		}
	}
	if dst.V6Only == 1 && dst.Inet4 {
		return nil, &OptionError{Proto: path, Key: "ipv6_v6only", Value: true, Msg: "conflicts with inet: an IPv4 socket has no IPV6_V6ONLY"}
	}
	return obj.keys, nil
}

// TLSOpts is "tls_opts" (Gun: an ssl option list; here an object).
type TLSOpts struct {
	Verify                bool          // "verify": "verify_peer" (default, true) | "verify_none"
	CACertFile            string        // "cacertfile": PEM CAs trusted instead of the system roots
	CACerts               [][]byte      // "cacerts": DER CAs (base64 in JSON), trusted with cacertfile's instead of the system roots
	CertFile, KeyFile     string        // "certfile", "keyfile": client certificate (both or neither)
	ServerNameIndication  string        // "server_name_indication": a host name, or "disable"; "" = the host connected to
	ALPN                  []string      // not a key: derived from the protocols ("h2", "http/1.1")
	SessionLifetime       time.Duration // "session_lifetime" in ms (Erlang's ssl takes seconds), default 86400000; "infinity" → 0
	SessionCacheClientMax int           // "session_cache_client_max", default 1000, > 0
	Reuse                 bool          // "reuse_sessions", default true
	Versions              []string      // "versions": non-empty subset of "tlsv1.2", "tlsv1.3"; default both

	// sessions is the connection's own resumption cache, made when tls_opts
	// give session_lifetime or session_cache_client_max (ownCache), shared by
	// every config built from these options, so that reconnects resume; nil:
	// the process-wide cache (tls_sessions.go).
	sessions tls.ClientSessionCache
	ownCache bool
}

// DefaultTLSOpts is tls_opts' defaults (the process-wide session cache).
func DefaultTLSOpts() *TLSOpts {
	t := &TLSOpts{
		Verify:                true,
		SessionLifetime:       86400000 * time.Millisecond,
		SessionCacheClientMax: 1000,
		Reuse:                 true,
		Versions:              []string{"tlsv1.2", "tlsv1.3"},
	}
	return t
}

// check is tls_opts' check_options (see optSet).
func (dst *TLSOpts) check(parent, key string, raw json.RawMessage) (given []string, err error) {
	obj, err := optParseObject(parent, key, raw)
	if err != nil {
		return nil, err
	}
	path := optJoin(parent, key)
	for _, k := range obj.keys {
		f := optField{proto: path, key: k, raw: obj.vals[k]}
		var n int64
		switch k {
		case "verify":
			var s string
			s, err = f.enum("verify_peer", "verify_none")
			dst.Verify = s == "verify_peer"
		case "cacertfile":
			dst.CACertFile, err = f.nonEmptyString()
		case "cacerts":
			dst.CACerts, err = optParseDERList(f)
		case "certfile":
			dst.CertFile, err = f.nonEmptyString()
		case "keyfile":
			dst.KeyFile, err = f.nonEmptyString()
		case "server_name_indication":
			var s string
			s, err = f.nonEmptyString()
			if err == nil && strings.ContainsAny(s, " \t\r\n/") {
				err = f.fail("must be a host name or \"disable\"")
			}
			dst.ServerNameIndication = s
		case "session_lifetime":
			dst.SessionLifetime, err = f.timeout()
			dst.ownCache = true
		case "session_cache_client_max":
			n, err = f.integer(1, math.MaxInt32)
			dst.SessionCacheClientMax = int(n)
			dst.ownCache = true
		case "reuse_sessions":
			dst.Reuse, err = f.boolean()
		case "versions":
			dst.Versions, err = optParseVersions(f)
		default:
			err = f.unknown("tls_opts")
		}
		if err != nil {
			return nil, err
		}
	}
	if dst.CertFile != "" && dst.KeyFile == "" {
		return nil, &OptionError{Proto: path, Key: "keyfile", Msg: "required when certfile is given"}
	}
	if dst.KeyFile != "" && dst.CertFile == "" {
		return nil, &OptionError{Proto: path, Key: "certfile", Msg: "required when keyfile is given"}
	}
	dst.sessions = nil
	if dst.Reuse && dst.ownCache {
		dst.sessions = NewTLSSessionCache(dst.SessionCacheClientMax, dst.SessionLifetime)
	}
	return obj.keys, nil
}

func optParseVersions(f optField) ([]string, error) {
	const msg = "must be a non-empty list of tlsv1.2, tlsv1.3"
	elems, err := f.array()
	if err != nil || len(elems) == 0 {
		return nil, f.fail(msg)
	}
	var out []string
	for _, el := range elems {
		var v string
		if optKind(el) != '"' || json.Unmarshal(el, &v) != nil || (v != "tlsv1.2" && v != "tlsv1.3") {
			return nil, f.fail(msg)
		}
		if optContains(out, v) {
			return nil, f.fail(fmt.Sprintf("version %s is listed twice", v))
		}
		out = append(out, v)
	}
	return out, nil
}

// optParseDERList reads ssl's cacerts: a non-empty list of base64 (standard
// alphabet) DER certificates, each of which must parse.
func optParseDERList(f optField) ([][]byte, error) {
	elems, err := f.array()
	if err != nil {
		return nil, err
	}
	if len(elems) == 0 {
		return nil, f.fail("must be a non-empty list of base64 DER certificates")
	}
	out := make([][]byte, 0, len(elems))
	for i, e := range elems {
		var s string
		if optKind(e) != '"' || json.Unmarshal(e, &s) != nil {
			return nil, f.fail(fmt.Sprintf("element %d must be a base64 DER certificate (a string)", i+1))
		}
		der, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, f.fail(fmt.Sprintf("element %d is not base64: %v", i+1, err))
		}
		if _, err := x509.ParseCertificate(der); err != nil {
			return nil, f.fail(fmt.Sprintf("element %d is not a DER certificate: %v", i+1, err))
		}
		out = append(out, der)
	}
	return out, nil
}

// TLSConfig builds the client tls.Config for host: SNI (host, the
// server_name_indication override, or none with "disable"; never for IP
// literals, as Go does), verification against the system roots or
// cacertfile (verify_none sets InsecureSkipVerify), the client certificate,
// min/max version, ALPN from Protocols ("h2" for http2, "http/1.1" for http,
// in the protocols' order) and the session cache. The cache belongs to the
// options and is shared by every config built from them, so that reconnects
// resume sessions. Errors are *OptionError naming the tls_opts key.
func (o *Options) TLSConfig(host string) (*tls.Config, error) {
	return o.TLS.clientConfig("tls_opts", host, optALPN(o.Protocols))
}

// ClientConfig is TLSConfig for these TLS options alone, with t.ALPN (e.g.
// a socks hop's TLSOpts, whose ALPN ParseOptions fills from its protocols).
func (t *TLSOpts) ClientConfig(host string) (*tls.Config, error) {
	return t.clientConfig("tls_opts", host, t.ALPN)
}

func (t *TLSOpts) clientConfig(proto, host string, alpn []string) (*tls.Config, error) {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS13}
	if len(alpn) > 0 {
		cfg.NextProtos = append([]string(nil), alpn...)
	}
	if len(t.Versions) > 0 {
		hasV12, hasV13 := optContains(t.Versions, "tlsv1.2"), optContains(t.Versions, "tlsv1.3")
		if !hasV12 {
			cfg.MinVersion = tls.VersionTLS13
		}
		if !hasV13 {
			cfg.MaxVersion = tls.VersionTLS12
		}
	}
	if t.CACertFile != "" || len(t.CACerts) > 0 {
		pool := x509.NewCertPool()
		if t.CACertFile != "" {
			pem, err := os.ReadFile(t.CACertFile)
			if err != nil {
				return nil, &OptionError{Proto: proto, Key: "cacertfile", Value: t.CACertFile, Msg: "cannot read: " + err.Error()}
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, &OptionError{Proto: proto, Key: "cacertfile", Value: t.CACertFile, Msg: "no PEM certificate found"}
			}
		}
		for _, der := range t.CACerts {
			cert, err := x509.ParseCertificate(der) // checked when parsed; built by hand otherwise
			if err != nil {
				return nil, &OptionError{Proto: proto, Key: "cacerts", Msg: "not a DER certificate: " + err.Error()}
			}
			pool.AddCert(cert)
		}
		cfg.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, &OptionError{Proto: proto, Key: "certfile", Value: t.CertFile, Msg: "cannot load with keyfile: " + err.Error()}
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if t.Reuse {
		cfg.ClientSessionCache = t.sessions
		if cfg.ClientSessionCache == nil {
			cfg.ClientSessionCache = sessionView{prefix: t.CertFile + "\x00"}
		}
	}
	sni := host
	if t.ServerNameIndication != "" {
		sni = t.ServerNameIndication
	}
	switch {
	case !t.Verify:
		cfg.InsecureSkipVerify = true
		if sni != "disable" {
			cfg.ServerName = sni
		}
	case sni == "disable":
		// No SNI, but the certificate is still checked against host: Go
		// only skips SNI with an empty ServerName, which also skips its
		// own verification, so it is done here.
		cfg.InsecureSkipVerify = true
		roots := cfg.RootCAs
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("tls: server sent no certificate")
			}
			opts := x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: x509.NewCertPool()}
			for _, c := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(c)
			}
			if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
				// As Go's own verification reports it (a verification failure
				// ends the connection: see retry_on_tls_verify_failure).
				return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: err}
			}
			return nil
		}
	default:
		cfg.ServerName = sni
	}
	return cfg, nil
}

// NewTLSSessionCache is a client session cache of at most capacity entries
// (least recently used evicted first) whose sessions are forgotten lifetime
// after they were stored (0 = kept until evicted).
func NewTLSSessionCache(capacity int, lifetime time.Duration) tls.ClientSessionCache {
	if capacity < 1 {
		capacity = 1
	}
	return &optSessionCache{capacity: capacity, lifetime: lifetime, now: time.Now,
		ll: list.New(), m: map[string]*list.Element{}}
}

type optSessionCache struct {
	mu       sync.Mutex
	capacity int
	lifetime time.Duration
	now      func() time.Time
	ll       *list.List // front = most recent
	m        map[string]*list.Element
}

type optSessionEntry struct {
	key    string
	cs     *tls.ClientSessionState
	stored time.Time
}

func (c *optSessionCache) Get(key string) (*tls.ClientSessionState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.m[key]
	if !ok {
		return nil, false
	}
	e := el.Value.(*optSessionEntry)
	if c.lifetime > 0 && c.now().Sub(e.stored) > c.lifetime {
		c.ll.Remove(el)
		delete(c.m, key)
		return nil, false
	}
	c.ll.MoveToFront(el)
	return e.cs, true
}

func (c *optSessionCache) Put(key string, cs *tls.ClientSessionState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[key]; ok {
		if cs == nil {
			c.ll.Remove(el)
			delete(c.m, key)
			return
		}
		e := el.Value.(*optSessionEntry)
		e.cs, e.stored = cs, c.now()
		c.ll.MoveToFront(el)
		return
	}
	if cs == nil {
		return
	}
	c.m[key] = c.ll.PushFront(&optSessionEntry{key: key, cs: cs, stored: c.now()})
	for c.ll.Len() > c.capacity {
		el := c.ll.Back()
		c.ll.Remove(el)
		delete(c.m, el.Value.(*optSessionEntry).key)
	}
}
