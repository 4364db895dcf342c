package core

// socks_opts: the socks protocol's options, Gun's gun_socks:check_options/1.
// The shared JSON field helpers (optField, optParseObject) are in
// options.go.

import (
	"encoding/json"
	"fmt"
	"time"
)

// SocksOpts is "socks_opts".
type SocksOpts struct {
	Host      string   // "host" (required): the destination, name or IP
	Port      int      // "port" (required): 1..65535
	Version   int      // "version": 5
	Auth      []string // "auth": methods offered in order, "none" | "username_password"; default ["none"]
	Username  string   // from ["username_password", User, Pass] in auth, or "username"
	Password  string   // likewise, or "password"
	Protocols []string // default ["http"] on tcp, ["http2","http"] on tls
	Transport string   // "tcp" (default) | "tls": the transport to the destination, through the proxy
	TLSOpts   *TLSOpts // "tls_opts"; defaults filled when Transport is "tls", else nil unless given

	TLSHandshakeTimeout time.Duration // "tls_handshake_timeout"; 0 = infinity

	// Options given with a protocol in Protocols ({http2, Opts}); nil when
	// not given (the connection's own then apply).
	HTTP  *HTTPOpts
	HTTP2 *HTTP2Opts
	Raw   *RawOpts
	Socks *SocksOpts // a further socks hop
}

// parseSocksOpts is socks_opts' defaults, checked against raw.
func parseSocksOpts(parent, key string, raw json.RawMessage) (*SocksOpts, error) {
	s := &SocksOpts{Version: 5, Transport: "tcp"}
	if _, err := s.check(parent, key, raw); err != nil {
		return nil, err
	}
	return s, nil
}

// check is socks_opts' check_options (see optSet). host and port have no
// default: check refuses a set without them.
func (s *SocksOpts) check(parent, key string, raw json.RawMessage) (given []string, err error) {
	obj, err := optParseObject(parent, key, raw)
	if err != nil {
		return nil, err
	}
	path := optJoin(parent, key)
	var (
		hostSet, portSet, protocolsSet, authSet bool
		authCreds                               bool // username_password given with its credentials
		userKey, passKey                        bool
		tlsHandshakeTimeout                     time.Duration
	)
	for _, k := range obj.keys {
		f := optField{proto: path, key: k, raw: obj.vals[k]}
		var n int64
		switch k {
		case "host":
			s.Host, err = f.nonEmptyString()
			if err == nil && len(s.Host) > 255 {
				err = f.fail("must be at most 255 bytes long")
			}
			hostSet = true
		case "port":
			n, err = f.integer(1, 65535)
			s.Port = int(n)
			portSet = true
		case "version":
			n, err = f.integer(5, 5)
			if err != nil {
				err = f.fail("must be 5")
			}
			s.Version = int(n)
		case "auth":
			s.Auth, authCreds, err = optParseSocksAuth(f, s)
			authSet = true
		case "username":
			s.Username, err = f.socksCredential()
			userKey = true
		case "password":
			s.Password, err = f.socksCredential()
			passKey = true
		case "protocols":
			var entries []optProtoEntry
			entries, err = optParseProtocols(path, k, f.raw)
			if err != nil {
				break
			}
			protocolsSet = true
			for _, e := range entries {
				s.Protocols = append(s.Protocols, e.name)
				if e.opts == nil {
					continue
				}
				switch e.name {
				case "http":
					s.HTTP = DefaultHTTPOpts()
					_, err = s.HTTP.check(optJoin(path, k), e.name, e.opts)
				case "http2":
					s.HTTP2 = DefaultHTTP2Opts()
					_, err = s.HTTP2.check(optJoin(path, k), e.name, e.opts)
				case "raw":
					s.Raw = DefaultRawOpts()
					_, err = s.Raw.check(optJoin(path, k), e.name, e.opts)
				case "socks":
					s.Socks, err = parseSocksOpts(optJoin(path, k), e.name, e.opts)
				}
				if err != nil {
					break
				}
			}
		case "transport":
			s.Transport, err = f.enum("tcp", "tls", "ssl")
			if s.Transport == "ssl" {
				s.Transport = "tls"
			}
			if err != nil {
				err = f.fail("must be one of tcp, tls")
			}
		case "tls_opts":
			s.TLSOpts = DefaultTLSOpts()
			_, err = s.TLSOpts.check(path, k, f.raw)
		case "tls_handshake_timeout":
			tlsHandshakeTimeout, err = f.timeout()
		default:
			err = f.unknown("socks_opts")
		}
		if err != nil {
			return nil, err
		}
	}
	s.TLSHandshakeTimeout = tlsHandshakeTimeout
	if !hostSet {
		return nil, &OptionError{Proto: path, Key: "host", Msg: "required"}
	}
	if !portSet {
		return nil, &OptionError{Proto: path, Key: "port", Msg: "required"}
	}
	switch {
	case userKey && !passKey:
		return nil, &OptionError{Proto: path, Key: "password", Msg: "required with username"}
	case passKey && !userKey:
		return nil, &OptionError{Proto: path, Key: "username", Msg: "required with password"}
	case userKey && authCreds:
		return nil, &OptionError{Proto: path, Key: "username", Value: s.Username,
			Msg: "conflicts with the credentials given in auth"}
	}
	switch {
	case !authSet && userKey:
		s.Auth = []string{"username_password"}
	case !authSet:
		s.Auth = []string{"none"}
	case optContains(s.Auth, "username_password") && !authCreds && !userKey:
		return nil, &OptionError{Proto: path, Key: "username", Msg: "required when auth includes username_password"}
	case !optContains(s.Auth, "username_password") && userKey:
		return nil, &OptionError{Proto: path, Key: "username", Value: s.Username,
			Msg: "only used when auth includes username_password"}
	}
	if !protocolsSet {
		s.Protocols = optDefaultProtocols(s.Transport)
	} else if s.Transport == "tcp" && len(s.Protocols) != 1 {
		return nil, &OptionError{Proto: path, Key: "protocols", Value: optDecodeValue(obj.vals["protocols"]),
			Msg: "must contain exactly one protocol when transport is tcp (ALPN needs tls)"}
	}
	if s.Socks == nil && optContains(s.Protocols, "socks") {
		return nil, &OptionError{Proto: path, Key: "protocols",
			Value: optDecodeValue(obj.vals["protocols"]),
			Msg:   "a further socks hop needs its options: [\"socks\", {\"host\": ..., \"port\": ...}]"}
	}
	if s.Transport == "tls" && s.TLSOpts == nil {
		s.TLSOpts = DefaultTLSOpts()
	}
	if s.TLSOpts != nil {
		s.TLSOpts.ALPN = optALPN(s.Protocols)
	}
	return obj.keys, nil
}

// optParseSocksAuth parses socks_opts.auth: "none", "username_password"
// (with the username and password keys), or
// ["username_password", User, Pass].
func optParseSocksAuth(f optField, s *SocksOpts) (methods []string, creds bool, err error) {
	const msg = "must be a non-empty list of \"none\" and [\"username_password\", User, Pass]"
	elems, err := f.array()
	if err != nil || len(elems) == 0 {
		return nil, false, f.fail(msg)
	}
	for _, el := range elems {
		var m string
		switch optKind(el) {
		case '"':
			_ = json.Unmarshal(el, &m)
			if m != "none" && m != "username_password" {
				return nil, false, f.fail(msg)
			}
		case '[':
			var parts []string
			if json.Unmarshal(el, &parts) != nil || len(parts) != 3 || parts[0] != "username_password" {
				return nil, false, f.fail(msg)
			}
			for _, c := range parts[1:] {
				if len(c) == 0 || len(c) > 255 {
					return nil, false, f.fail("username and password must be 1 to 255 bytes long (RFC 1929)")
				}
			}
			m, creds = "username_password", true
			s.Username, s.Password = parts[1], parts[2]
		default:
			return nil, false, f.fail(msg)
		}
		if optContains(methods, m) {
			return nil, false, f.fail(fmt.Sprintf("method %s is listed twice", m))
		}
		methods = append(methods, m)
	}
	return methods, creds, nil
}

func (f optField) socksCredential() (string, error) {
	s, err := f.strict()
	if err != nil || len(s) == 0 || len(s) > 255 {
		return "", f.fail("must be a string of 1 to 255 bytes (RFC 1929)")
	}
	return s, nil
}
