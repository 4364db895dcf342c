package core

// raw_opts: the raw protocol's options, Gun's gun_raw:check_options/1. The
// shared JSON field helpers (optField, optParseObject) are in options.go.

import (
	"encoding/json"
	"strings"
	"time"
)

// RawOpts is "raw_opts" (and the options of "raw" in a protocols list).
type RawOpts struct {
	Flow int // "flow"; 0 = no flow control. gen_tcp's {active, N}: DATA events before reading stops
	// ClosingTimeout is gunmetal's "closing_timeout" (Gun's raw closes at
	// once): how long a graceful shutdown, after shutting down the write
	// side, waits for the peer to close. Default 15000 ms; 0 = infinity.
	ClosingTimeout time.Duration
	// Packet is gen_tcp's {packet, P}: 0 (raw, none), 1, 2, 4 (a big-endian
	// length prefix of that many bytes), or PacketLine (a message ends with
	// "\n" and is delivered with it).
	Packet int
	// PacketSize is gen_tcp's packet_size: the largest message received.
	// gen_tcp's default 0 means no limit; gunmetal always bounds what it
	// buffers, so the default is DefaultPacketSize (4), DefaultLineSize
	// (line); 1 and 2 are bounded by their prefix anyway.
	PacketSize int
}

// PacketLine is raw_opts.packet "line".
const PacketLine = -1

// The default bounds of raw_opts.packet_size (see RawOpts.PacketSize).
const (
	DefaultPacketSize = 64 << 20
	DefaultLineSize   = 64 << 10
)

// DefaultRawOpts is raw_opts' defaults.
func DefaultRawOpts() *RawOpts {
	return &RawOpts{ClosingTimeout: 15000 * time.Millisecond}
}

// check is raw_opts' check_options (see optSet).
func (dst *RawOpts) check(parent, key string, raw json.RawMessage) (given []string, err error) {
	obj, err := optParseObject(parent, key, raw)
	if err != nil {
		return nil, err
	}
	path := optJoin(parent, key)
	var sizeGiven *optField
	for _, k := range obj.keys {
		f := optField{proto: path, key: k, raw: obj.vals[k]}
		switch k {
		case "flow":
			var n int64
			n, err = f.flow()
			dst.Flow = int(n)
		case "closing_timeout":
			dst.ClosingTimeout, err = f.timeout()
		case "packet":
			switch strings.TrimSpace(string(f.raw)) {
			case "0", `"raw"`:
				dst.Packet = 0
			case "1", "2", "4":
				dst.Packet = int(strings.TrimSpace(string(f.raw))[0] - '0')
			case `"line"`:
				dst.Packet = PacketLine
			default:
				err = f.fail(`must be 0 or "raw" (no framing), 1, 2, 4 (a big-endian length prefix of that many bytes) or "line"`)
			}
		case "packet_size":
			// gen_tcp's 0 (no limit) is not offered: what is buffered is bounded.
			var n int64
			n, err = f.integer(1, 1<<30)
			dst.PacketSize = int(n)
			g := f
			sizeGiven = &g
		default:
			err = f.unknown("raw_opts")
		}
		if err != nil {
			return nil, err
		}
	}
	if sizeGiven != nil && dst.Packet == 0 {
		// Accepted and ignored otherwise: it bounds framed messages only.
		return nil, sizeGiven.fail(`bounds framed messages: it needs raw_opts.packet 1, 2, 4 or "line"`)
	}
	return obj.keys, nil
}
