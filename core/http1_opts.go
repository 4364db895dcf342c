package core

// http_opts: HTTP/1.1's options, Gun's gun_http:check_options/1. The
// shared JSON field helpers (optField, optParseObject) are in options.go.

import (
	"encoding/json"
	"math"
	"time"
)

// HTTPOpts is "http_opts".
type HTTPOpts struct {
	KeepAlive                 time.Duration // "keepalive", default 0 = infinity
	Version                   string        // "version": "HTTP/1.1" (default) | "HTTP/1.0"
	ClosingTimeout            time.Duration // "closing_timeout", default 15000 ms; 0 = infinity
	Flow                      int           // "flow": 0 = no flow control (default); > 0 initial flow per stream
	CookieIgnoreInformational bool          // "cookie_ignore_informational", default false
	MaxHeaders                int           // "max_headers", default 100 (Gun 2.6): fields per header or trailer block; 0 = no limit
	MaxHeaderBlockSize        int           // "max_header_block_size", default 100000 (Gun 2.4)
	MaxTrailerBlockSize       int           // "max_trailer_block_size", default 10000 (Gun 2.4)
	MaxInformational          int           // gunmetal "max_informational_responses": 1xx responses per request, default 32; 0 = infinity

	// ContentHandlers is "content_handlers" (sse.go); unset: [gun_data_h].
	ContentHandlers ContentHandlers

	// HeadTimeout is gunmetal's "head_timeout": once the first byte of a
	// response head (status line and header fields; also each 1xx, a
	// chunk-size line, the trailers) has arrived, the rest must arrive
	// within it, else the connection goes down with reason "timeout: ...
	// http_opts.head_timeout" and reconnects per retry. Default 30000 ms;
	// "infinity" (0) turns it off. Waiting for a response to begin is not
	// bounded by it (that is the request's timeout).
	HeadTimeout time.Duration
	// DiscardTimeout is gunmetal's "discard_timeout": HTTP/1.1 cannot abort
	// one response, so the response of a cancelled (or timed out) stream is
	// read and dropped, as in Gun; if it has not ended within this time of
	// the cancel (or of its turn, while responses pipelined before it are
	// read), the connection is closed (DOWN "discard_timeout: ...") and
	// reconnects, so that an endless body is not read for ever. Default
	// 5000 ms; "infinity" (0): Gun's behaviour, read until it ends.
	DiscardTimeout time.Duration
}

// DefaultHTTPOpts is http_opts' defaults.
func DefaultHTTPOpts() *HTTPOpts {
	return &HTTPOpts{
		Version:             "HTTP/1.1",
		ClosingTimeout:      15000 * time.Millisecond,
		MaxHeaders:          100,
		MaxHeaderBlockSize:  100000,
		MaxTrailerBlockSize: 10000,
		MaxInformational:    32,
		HeadTimeout:         30000 * time.Millisecond,
		DiscardTimeout:      5000 * time.Millisecond,
	}
}

// ParseHTTPOpts parses http_opts alone (e.g. per-request options), with
// defaults filled. Errors name the proto "http_opts".
func ParseHTTPOpts(js []byte) (*HTTPOpts, error) {
	o := DefaultHTTPOpts()
	if _, err := o.check("", "http_opts", js); err != nil {
		return nil, err
	}
	return o, nil
}

// check is http_opts' check_options (see optSet).
func (dst *HTTPOpts) check(parent, key string, raw json.RawMessage) (given []string, err error) {
	obj, err := optParseObject(parent, key, raw)
	if err != nil {
		return nil, err
	}
	path := optJoin(parent, key)
	for _, k := range obj.keys {
		f := optField{proto: path, key: k, raw: obj.vals[k]}
		var n int64
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
		case "head_timeout":
			dst.HeadTimeout, err = f.timeout()
		case "discard_timeout":
			dst.DiscardTimeout, err = f.timeout()
		case "max_headers":
			n, err = f.integer(0, math.MaxInt32)
			dst.MaxHeaders = int(n)
		case "max_header_block_size":
			n, err = f.integer(0, math.MaxInt32)
			dst.MaxHeaderBlockSize = int(n)
		case "max_trailer_block_size":
			n, err = f.integer(0, math.MaxInt32)
			dst.MaxTrailerBlockSize = int(n)
		case "max_informational_responses":
			dst.MaxInformational, err = f.countOrInfinity()
		case "version":
			dst.Version, err = f.enum("HTTP/1.1", "HTTP/1.0")
		case "content_handlers":
			dst.ContentHandlers, err = f.contentHandlers()
		default:
			err = f.unknown("http_opts")
		}
		if err != nil {
			return nil, err
		}
	}
	return obj.keys, nil
}
