package core

// ws_opts: WebSocket's options (the connection's, and ws_upgrade's), Gun's
// gun_ws:check_options/1. The shared JSON field helpers (optField,
// optParseObject) are in options.go.

import (
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// WSOpts is "ws_opts" (also what ws_upgrade takes).
type WSOpts struct {
	ClosingTimeout time.Duration // "closing_timeout" 15000 ms; 0 = infinity
	Compress       bool          // "compress": true, false (default) or "compat"
	CompressCompat bool          // "compress": "compat" (Gun 2.5): offer permessage-deflate without parameters
	Flow           int           // "flow"; 0 = no flow control
	KeepAlive      time.Duration // "keepalive"; 0 = infinity
	// Protocols are the subprotocols offered, in order. Gun takes
	// [{Name, Handler}]; gunmetal takes ["name", ...] or
	// [["name", "gun_ws_h"], ...] (no other handler exists).
	Protocols       []string
	SilencePings    bool   // "silence_pings", true
	DefaultProtocol string // "default_protocol": "gun_ws_h", the only handler
	// MaxMessageSize is Gun's "max_frame_size" (the largest incoming
	// message, across fragments, after decompression), also accepted as
	// "max_message_size"; 0 = infinity. Default 16 MiB (Gun's is 1000000).
	MaxMessageSize int64
	// IgnoreInvalidRequestHeaders is "invalid_request_headers": "ignore"
	// (true) or "raise" (false, the default).
	IgnoreInvalidRequestHeaders bool
	// ReplyTo is Gun's ws_opts reply_to: the queue that gets the upgrade
	// stream's events (nil: the owner). Not a JSON key: the C ABI passes it
	// to gm_ws_upgrade_to, a Go caller sets it here.
	ReplyTo *Queue
	// Tunnel is Gun's ws_opts tunnel: the CONNECT whose tunnel carries the
	// upgrade ("tunnel" in gm_ws_upgrade's JSON; not a connection option).
	Tunnel uint64
}

// DefaultWSOpts is ws_opts' defaults.
func DefaultWSOpts() *WSOpts {
	return &WSOpts{
		ClosingTimeout:  15000 * time.Millisecond,
		SilencePings:    true,
		DefaultProtocol: "gun_ws_h",
		MaxMessageSize:  16 << 20,
	}
}

// ParseWSOpts parses ws_opts alone (ws_upgrade's options), with defaults
// filled: as in Gun, they replace the connection's ws_opts, they are not
// merged into them.
func ParseWSOpts(js []byte) (*WSOpts, error) {
	o := DefaultWSOpts()
	if _, err := o.check("", "ws_opts", js); err != nil {
		return nil, err
	}
	if err := o.checkImplemented("ws_opts"); err != nil {
		return nil, err
	}
	return o, nil
}

// check is ws_opts' check_options (see optSet).
func (dst *WSOpts) check(parent, key string, raw json.RawMessage) (given []string, err error) {
	obj, err := optParseObject(parent, key, raw)
	if err != nil {
		return nil, err
	}
	path := optJoin(parent, key)
	sizeKey := ""
	for _, k := range obj.keys {
		f := optField{proto: path, key: k, raw: obj.vals[k]}
		var n int64
		switch k {
		case "closing_timeout":
			dst.ClosingTimeout, err = f.timeout()
		case "compress":
			if s, e := f.strict(); e == nil && s == "compat" {
				dst.Compress, dst.CompressCompat = true, true
				break
			}
			dst.Compress, err = f.boolean()
			dst.CompressCompat = false
			if err != nil {
				err = f.fail("must be true, false or \"compat\"")
			}
		case "default_protocol":
			// Gun's handler module for the frames; gunmetal's only handler
			// is gun_ws_h's behaviour (events to the owner or reply_to).
			if dst.DefaultProtocol, err = f.nonEmptyString(); err == nil && dst.DefaultProtocol != "gun_ws_h" {
				err = f.fail(wsHandlerMsg)
			}
		case "flow":
			n, err = f.flow()
			dst.Flow = int(n)
		case "invalid_request_headers":
			var s string
			s, err = f.enum("raise", "ignore")
			dst.IgnoreInvalidRequestHeaders = s == "ignore"
		case "keepalive":
			dst.KeepAlive, err = f.timeout()
		case "max_frame_size", "max_message_size":
			if sizeKey != "" {
				err = f.fail("conflicts with " + sizeKey + " (the same limit)")
				break
			}
			sizeKey = k
			if f.isInfinity() {
				dst.MaxMessageSize = 0
				break
			}
			n, err = f.integer(1, math.MaxInt64)
			if err != nil {
				err = f.fail("must be a positive integer or \"infinity\"")
			}
			dst.MaxMessageSize = n
		case "protocols":
			dst.Protocols, err = optParseWSProtocols(f)
		case "silence_pings":
			dst.SilencePings, err = f.boolean()
		case "tunnel":
			n, err = f.integer(1, math.MaxInt64)
			dst.Tunnel = uint64(n)
		default:
			err = f.unknown("ws_opts")
		}
		if err != nil {
			return nil, err
		}
	}
	return obj.keys, nil
}

// wsHandlerMsg: gunmetal has no Erlang handler modules.
const wsHandlerMsg = `must be "gun_ws_h": gunmetal has no handler modules (frames are events for the owner or reply_to)`

// optParseWSProtocols parses ws_opts.protocols: ["name", ...] or
// [["name", "gun_ws_h"], ...].
func optParseWSProtocols(f optField) ([]string, error) {
	elems, err := f.array()
	if err != nil {
		return nil, f.fail("must be a list of subprotocol names")
	}
	out := []string{}
	for _, el := range elems {
		var name string
		switch optKind(el) {
		case '"':
			_ = json.Unmarshal(el, &name)
		case '[':
			var pair []json.RawMessage
			if json.Unmarshal(el, &pair) != nil || len(pair) != 2 || optKind(pair[0]) != '"' || optKind(pair[1]) != '"' {
				return nil, f.fail(fmt.Sprintf("element %s must be a name or [name, handler]", optCompact(el)))
			}
			_ = json.Unmarshal(pair[0], &name)
			var h string
			if _ = json.Unmarshal(pair[1], &h); h != "gun_ws_h" {
				return nil, f.fail(fmt.Sprintf("element %s: handler %q: %s", optCompact(el), h, wsHandlerMsg))
			}
		default:
			return nil, f.fail(fmt.Sprintf("element %s must be a name or [name, handler]", optCompact(el)))
		}
		if !optIsToken(name) {
			return nil, f.fail(fmt.Sprintf("subprotocol %q is not a valid token", name))
		}
		if optContains(out, name) {
			return nil, f.fail(fmt.Sprintf("subprotocol %q is listed twice", name))
		}
		out = append(out, name)
	}
	return out, nil
}
