package core

// http2_opts: HTTP/2's options, Gun's gun_http2:check_options/1. The
// shared JSON field helpers (optField, optParseObject) are in options.go.

import (
	"encoding/json"
	"math"
	"time"
)

// HTTP2Opts is "http2_opts", with Gun's names and defaults (and
// cow_http2_machine's for the state machine options).
type HTTP2Opts struct {
	ClosingTimeout            time.Duration // "closing_timeout" 15000 ms; 0 = infinity
	Flow                      int           // "flow"; 0 = no flow control
	KeepAlive                 time.Duration // "keepalive"; 0 = infinity (default)
	KeepAliveTolerance        int           // "keepalive_tolerance"; 0 = off (default); > 0 unacked pings before closing
	CookieIgnoreInformational bool          // "cookie_ignore_informational", default false
	NotifySettingsChanged     bool          // "notify_settings_changed", default false
	MaxHeaders                int           // "max_headers" (Gun 2.5), default 100; 0 = no limit
	MaxInformational          int           // gunmetal "max_informational_responses": 1xx responses per stream, default 32; 0 = infinity
	MaxSettingsEntries        int           // gunmetal "max_settings_entries": settings in one SETTINGS frame, default 64; 0 = infinity

	// ContentHandlers is "content_handlers" (sse.go); unset: [gun_data_h].
	ContentHandlers ContentHandlers

	InitialConnectionWindowSize     uint32        // 8000000 (Gun's default); 65535..2^31-1
	InitialStreamWindowSize         uint32        // 8000000; 0..2^31-1
	MaxConnectionWindowSize         uint32        // 2^31-1
	MaxStreamWindowSize             uint32        // 2^31-1
	ConnectionWindowMarginSize      uint32        // 65535
	StreamWindowMarginSize          uint32        // 65535
	ConnectionWindowUpdateThreshold uint32        // 163840
	StreamWindowUpdateThreshold     uint32        // 163840
	StreamWindowDataThreshold       uint32        // 0 (cowlib: 16384): DATA is never held back; other values are refused by Open
	MaxStreamBufferSize             uint32        // 8000000
	MaxConcurrentStreams            uint32        // 100 (Gun: infinity); 0 = infinity. What we advertise, and the most pushes held at once
	MaxDecodeTableSize              uint32        // 4096
	MaxEncodeTableSize              uint32        // 4096
	MaxFrameSizeReceived            uint32        // 16384; 16384..16777215
	MaxFrameSizeSent                uint32        // 0 = infinity (use the server's); else 16384..16777215
	MaxFragmentedHeaderBlockSize    int           // 32768; 16384..2^31-1
	PrefaceTimeout, SettingsTimeout time.Duration // 5000 ms each; 0 = infinity
	EnableConnectProtocol           bool          // "enable_connect_protocol", false
	WaitForStreamSlot               bool          // gunmetal "wait_for_stream_slot", false
	MaxWaitingStreams               int           // gunmetal "max_waiting_streams": requests waiting for a slot, 1024; only with wait_for_stream_slot
	MaxHeaderListSize               uint32        // gunmetal "max_header_list_size"; 0 = none

	// FrameTimeout is gunmetal's "frame_timeout": once the first byte of a
	// frame has arrived, the rest must arrive within it, and a header block
	// (HEADERS or PUSH_PROMISE and its CONTINUATION frames) must be whole
	// within it of its first byte; else the connection goes down with reason
	// "timeout: ... http2_opts.frame_timeout". Default 30000 ms; "infinity"
	// (0) turns it off.
	FrameTimeout time.Duration
	// SendWindowTimeout is gunmetal's "send_window_timeout": a request body
	// that cannot send a byte because the server keeps the stream's or the
	// connection's flow-control window at 0 for this long is given up: the
	// stream is reset (CANCEL), gets ERROR "timeout: ...
	// http2_opts.send_window_timeout", and a Data (gm_data) blocked on it
	// returns. Default 15000 ms (tcp_opts.send_timeout's, which bounds the
	// same stall on HTTP/1.1); "infinity" (0) waits for ever.
	SendWindowTimeout time.Duration
}

// DefaultHTTP2Opts is http2_opts' defaults.
func DefaultHTTP2Opts() *HTTP2Opts {
	return &HTTP2Opts{
		ClosingTimeout:                  15000 * time.Millisecond,
		MaxHeaders:                      100,
		MaxInformational:                32,
		MaxSettingsEntries:              64,
		MaxConcurrentStreams:            100,
		InitialConnectionWindowSize:     8000000,
		InitialStreamWindowSize:         8000000,
		MaxConnectionWindowSize:         math.MaxInt32,
		MaxStreamWindowSize:             math.MaxInt32,
		ConnectionWindowMarginSize:      65535,
		StreamWindowMarginSize:          65535,
		ConnectionWindowUpdateThreshold: 163840,
		StreamWindowUpdateThreshold:     163840,
		StreamWindowDataThreshold:       0, // gunmetal holds no DATA back (checkImplemented)
		MaxStreamBufferSize:             8000000,
		MaxDecodeTableSize:              4096,
		MaxEncodeTableSize:              4096,
		MaxFrameSizeReceived:            16384,
		MaxFragmentedHeaderBlockSize:    32768,
		PrefaceTimeout:                  5000 * time.Millisecond,
		SettingsTimeout:                 5000 * time.Millisecond,
		FrameTimeout:                    30000 * time.Millisecond,
		SendWindowTimeout:               15000 * time.Millisecond,
		MaxWaitingStreams:               1024,
	}
}

// ParseHTTP2Opts parses http2_opts alone, with defaults filled.
func ParseHTTP2Opts(js []byte) (*HTTP2Opts, error) {
	o := DefaultHTTP2Opts()
	if _, err := o.check("", "http2_opts", js); err != nil {
		return nil, err
	}
	return o, nil
}

// check is http2_opts' check_options (see optSet).
func (dst *HTTP2Opts) check(parent, key string, raw json.RawMessage) (given []string, err error) {
	obj, err := optParseObject(parent, key, raw)
	if err != nil {
		return nil, err
	}
	path := optJoin(parent, key)
	const max31 = math.MaxInt32
	waitingSet := false
	for _, k := range obj.keys {
		f := optField{proto: path, key: k, raw: obj.vals[k]}
		var n int64
		u32 := func(min, max int64, dst *uint32) {
			n, err = f.integer(min, max)
			*dst = uint32(n)
		}
		switch k {
		case "closing_timeout":
			dst.ClosingTimeout, err = f.timeout()
		case "cookie_ignore_informational":
			dst.CookieIgnoreInformational, err = f.boolean()
		case "flow":
			n, err = f.flow()
			dst.Flow = int(n)
		case "keepalive":
			dst.KeepAlive, err = f.timeout()
		case "keepalive_tolerance":
			n, err = f.integer(0, math.MaxInt32)
			dst.KeepAliveTolerance = int(n)
		case "notify_settings_changed":
			dst.NotifySettingsChanged, err = f.boolean()
		case "max_headers":
			n, err = f.integer(0, math.MaxInt32)
			dst.MaxHeaders = int(n)
		case "max_informational_responses":
			dst.MaxInformational, err = f.countOrInfinity()
		case "max_settings_entries":
			dst.MaxSettingsEntries, err = f.countOrInfinity()
		case "content_handlers":
			dst.ContentHandlers, err = f.contentHandlers()
		case "connection_window_margin_size":
			u32(0, max31, &dst.ConnectionWindowMarginSize)
		case "connection_window_update_threshold":
			u32(0, max31, &dst.ConnectionWindowUpdateThreshold)
		case "enable_connect_protocol":
			dst.EnableConnectProtocol, err = f.boolean()
		case "initial_connection_window_size":
			u32(65535, max31, &dst.InitialConnectionWindowSize)
		case "initial_stream_window_size":
			u32(0, max31, &dst.InitialStreamWindowSize)
		case "max_concurrent_streams":
			if f.isInfinity() {
				dst.MaxConcurrentStreams = 0
				break
			}
			n, err = f.integer(1, math.MaxUint32)
			if err != nil {
				err = f.fail("must be a positive integer or \"infinity\" (0 is not supported)")
			}
			dst.MaxConcurrentStreams = uint32(n)
		case "max_connection_window_size":
			u32(0, max31, &dst.MaxConnectionWindowSize)
		case "max_decode_table_size":
			u32(0, math.MaxUint32, &dst.MaxDecodeTableSize)
		case "max_encode_table_size":
			u32(0, math.MaxUint32, &dst.MaxEncodeTableSize)
		case "max_fragmented_header_block_size":
			n, err = f.integer(16384, max31)
			dst.MaxFragmentedHeaderBlockSize = int(n)
		case "max_frame_size_received":
			u32(16384, 16777215, &dst.MaxFrameSizeReceived)
		case "max_frame_size_sent":
			if f.isInfinity() {
				dst.MaxFrameSizeSent = 0
				break
			}
			n, err = f.integer(16384, 16777215)
			if err != nil {
				err = f.fail("must be between 16384 and 16777215, or \"infinity\"")
			}
			dst.MaxFrameSizeSent = uint32(n)
		case "max_stream_buffer_size":
			u32(0, math.MaxUint32, &dst.MaxStreamBufferSize)
		case "max_stream_window_size":
			u32(0, max31, &dst.MaxStreamWindowSize)
		case "frame_timeout":
			dst.FrameTimeout, err = f.timeout()
		case "send_window_timeout":
			dst.SendWindowTimeout, err = f.timeout()
		case "preface_timeout":
			dst.PrefaceTimeout, err = f.timeout()
		case "settings_timeout":
			dst.SettingsTimeout, err = f.timeout()
		case "stream_window_data_threshold":
			u32(0, max31, &dst.StreamWindowDataThreshold)
		case "stream_window_margin_size":
			u32(0, max31, &dst.StreamWindowMarginSize)
		case "stream_window_update_threshold":
			u32(0, max31, &dst.StreamWindowUpdateThreshold)
		case "wait_for_stream_slot":
			dst.WaitForStreamSlot, err = f.boolean()
		case "max_waiting_streams":
			n, err = f.integer(1, math.MaxInt32)
			dst.MaxWaitingStreams = int(n)
			waitingSet = true
		case "max_header_list_size":
			u32(0, math.MaxUint32, &dst.MaxHeaderListSize)
		default:
			err = f.unknown("http2_opts")
		}
		if err != nil {
			return nil, err
		}
	}
	if waitingSet && !dst.WaitForStreamSlot {
		return nil, &OptionError{Proto: path, Key: "max_waiting_streams", Value: int64(dst.MaxWaitingStreams),
			Msg: "only used with wait_for_stream_slot: true (else a request past the server's max_concurrent_streams fails at once)"}
	}
	return obj.keys, nil
}
