package core

// tcp_opts and tls_opts: the transports' options (Gun passes them to
// gen_tcp and ssl), and the tls.Config built from tls_opts. The shared
// JSON field helpers (optField, optParseObject) are in options.go.

import (
	"encoding/json"
	"math"
	"net"
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
	Inet6            bool          // "inet6": prefer IPv6
	Inet4            bool          // "inet": force IPv4 (both true is refused)
}

// DefaultTCPOpts is tcp_opts' defaults.
func DefaultTCPOpts() TCPOpts {
	return TCPOpts{NoDelay: true, SendTimeout: 15000 * time.Millisecond, SendTimeoutClose: true}
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
	return obj.keys, nil
}
