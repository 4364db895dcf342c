package core

import (
	"bytes"
	"errors"
	"fmt"
)

// Incremental HTTP/1.x response parser (RFC 9112), following the semantics
// of Erlang Gun's gun_http / cowlib's cow_http.
//
// The parser never buffers input: the caller owns the receive buffer, calls
// Next with everything it holds, drops the consumed prefix and appends newly
// received bytes to the rest. When Next needs more input it returns h1None; it
// remembers how far it already scanned so that feeding a large header block a
// few bytes at a time stays linear.
//
// Allocations: one string (holding every name and value of the block) and
// one []Header per header or trailer block. Body data is never copied.

// Default limits, used when a field of h1Limits is zero or negative.
const (
	h1DefaultMaxHeaderBlock  = 100000 // Gun's max_header_block_size default
	h1DefaultMaxTrailerBlock = 10000
	h1DefaultMaxChunkLine    = 4096
)

// h1Limits bounds what a server may send. A zero or negative field selects
// the default.
type h1Limits struct {
	// MaxHeaderBlock is the maximum size of a status line plus its header
	// fields, counted from the first byte of the status line up to and
	// including the CRLF of the empty line that ends the block. Each 1xx
	// informational block is measured on its own.
	MaxHeaderBlock int
	// MaxTrailerBlock is the maximum size of the trailer section of a
	// chunked body (the bytes after the last-chunk line, up to and including
	// the final empty line's CRLF).
	MaxTrailerBlock int
	// MaxChunkLine is the maximum size of a chunk-size line, extensions and
	// CRLF included.
	MaxChunkLine int
	// MaxHeaders is the most fields in one header or trailer block
	// (http_opts.max_headers); 0 = no limit.
	MaxHeaders int
	// MaxInformational is the most 1xx responses before one final
	// response (http_opts.max_informational_responses); 0 = no limit.
	MaxInformational int
}

type h1PartKind uint8

const (
	h1None     h1PartKind = iota // need more input
	h1Inform                     // 1xx (not 101): Status, Headers. The same response continues.
	h1Upgrade                    // 101 Switching Protocols: Status, Headers. Parser stops; remaining bytes belong to the new protocol.
	h1Head                       // final status line + headers: Status, Version (10 or 11), Headers, Fin (true when no body follows)
	h1Data                       // body bytes: Data (a sub-slice of the input), Fin (true on the last piece)
	h1Trailers                   // trailer block of a chunked body: Headers; always the end of the response (Fin true)
)

func (k h1PartKind) String() string {
	switch k {
	case h1None:
		return "none"
	case h1Inform:
		return "inform"
	case h1Upgrade:
		return "upgrade"
	case h1Head:
		return "head"
	case h1Data:
		return "data"
	case h1Trailers:
		return "trailers"
	}
	return fmt.Sprintf("h1PartKind(%d)", uint8(k))
}

type h1Part struct {
	Kind    h1PartKind
	Status  int
	Version int      // 10 or 11
	Headers []Header // names lower-cased, values with surrounding OWS trimmed
	Data    []byte   // sub-slice of the buffer given to Next (capacity clipped)
	Fin     bool
	// Close, on h1Head: the connection will close after this response
	// (Connection: close, HTTP/1.0 without keep-alive, a close-delimited
	// body, or a Transfer-Encoding + Content-Length conflict).
	Close bool
}

// h1MaxRetainedScratch bounds the scratch buffer kept between blocks.
const h1MaxRetainedScratch = 16 << 10

type h1State uint8

const (
	h1sIdle      h1State = iota // no response expected: call Begin
	h1sHead                     // reading a status line and header block
	h1sBodyLen                  // Content-Length body
	h1sBodyClose                // close-delimited body
	h1sChunkSize                // chunk-size line
	h1sChunkData                // chunk data
	h1sChunkEnd                 // CRLF after chunk data
	h1sTrailers                 // trailer section after the last chunk
	h1sSwitched                 // after 101 or a 2xx to CONNECT: bytes belong to another protocol
	h1sFailed                   // a protocol error occurred; sticky
)

type h1Parser struct {
	lim   h1Limits
	state h1State
	err   error

	isHead    bool // response to a HEAD request
	isConnect bool // response to a CONNECT request
	started   bool // a 1xx of the current response was consumed
	informs   int  // 1xx responses consumed for the current request

	// Incremental line scanning, relative to the start of the current
	// element (which is always buf[0] when Next is called).
	scanned   int // bytes already searched for '\n'
	lineStart int // start of the line being scanned

	// Status line of the head being read, parsed as soon as its line is
	// complete.
	status    int
	version   int
	statusEnd int // length of the status line including CRLF

	remaining int64 // body or chunk bytes left

	scratch []byte // reused: lower-cased names and values of a block
	offs    []int  // reused: 4 offsets into scratch per field
}

func newH1Parser(l h1Limits) *h1Parser {
	if l.MaxHeaderBlock <= 0 {
		l.MaxHeaderBlock = h1DefaultMaxHeaderBlock
	}
	if l.MaxTrailerBlock <= 0 {
		l.MaxTrailerBlock = h1DefaultMaxTrailerBlock
	}
	if l.MaxChunkLine <= 0 {
		l.MaxChunkLine = h1DefaultMaxChunkLine
	}
	return &h1Parser{lim: l}
}

// Begin prepares for the next response, to the request with this method
// ("HEAD" → no body whatever the headers say; "CONNECT" with 2xx → no body,
// the tunnel follows). It may be called again after a protocol switch. A
// protocol error is sticky: Begin does not clear it.
func (p *h1Parser) Begin(method string) {
	if p.state == h1sFailed {
		return
	}
	p.isHead = method == "HEAD"
	p.isConnect = method == "CONNECT"
	p.started = false
	p.informs = 0
	p.remaining = 0
	p.setState(h1sHead)
}

// Idle reports whether the parser is between responses (nothing partially
// parsed): no response expected, a response expected but none of its bytes
// seen yet, or after a protocol switch.
func (p *h1Parser) Idle() bool {
	switch p.state {
	case h1sIdle, h1sSwitched:
		return true
	case h1sHead:
		return !p.started && p.scanned == 0
	}
	return false
}

// EOF tells the parser the connection closed. For a close-delimited body in
// progress it returns a final empty h1Data part with Fin=true and ok=true; in
// any other mid-response state it returns ok=false (the response was cut);
// when idle (between responses) it returns ok=false, idle=true.
func (p *h1Parser) EOF() (part h1Part, ok bool, idle bool) {
	switch {
	case p.state == h1sBodyClose:
		p.setState(h1sIdle)
		return h1Part{Kind: h1Data, Fin: true}, true, false
	case p.state == h1sFailed:
		return h1Part{}, false, false
	case p.Idle():
		return h1Part{}, false, true
	}
	return h1Part{}, false, false
}

// cut says where a response was when the connection closed under it (for
// the DOWN reason, when EOF returned neither ok nor idle).
func (p *h1Parser) cut() string {
	switch p.state {
	case h1sHead:
		if p.started {
			return "after an informational response, before the final response head ended"
		}
		return "in the middle of a response head"
	case h1sBodyLen:
		return fmt.Sprintf("with %d bytes of the response body (content-length) still to come", p.remaining)
	case h1sChunkSize, h1sChunkData, h1sChunkEnd:
		return "in the middle of a chunked response body, before its last chunk"
	case h1sTrailers:
		return "in the middle of the trailers of a chunked response"
	}
	return "in the middle of a response"
}

func (p *h1Parser) setState(s h1State) {
	p.state = s
	p.scanned = 0
	p.lineStart = 0
}

func (p *h1Parser) fail(err error) error {
	p.err = err
	p.state = h1sFailed
	return err
}

var (
	errH1NoRequest    = errors.New("http: unexpected data received with no request outstanding")
	errH1Switched     = errors.New("http: data after a protocol switch cannot be parsed as HTTP/1.1")
	errH1StatusPrefix = errors.New(`http: malformed status line: response does not begin with "HTTP/1."`)
	errH1BareLF       = errors.New("http: line not terminated by CRLF (bare LF)")
	errH1ChunkCRLF    = errors.New("http: chunk data not followed by CRLF")
)

const h1StatusPrefix = "HTTP/1."

// Next parses from buf and returns the next part and how many bytes of buf it
// consumed. Kind h1None means more bytes are needed (consumed may be
// non-zero: the caller drops those bytes, keeps the rest and appends more).
// An error is a protocol error; it is sticky.
func (p *h1Parser) Next(buf []byte) (part h1Part, consumed int, err error) {
	if p.state == h1sFailed {
		return h1Part{}, 0, p.err
	}
	if p.scanned > len(buf) {
		// The caller did not keep the unconsumed bytes: rescan.
		p.scanned, p.lineStart = 0, 0
	}
	for {
		b := buf[consumed:]
		switch p.state {
		case h1sIdle:
			if len(b) == 0 {
				return h1Part{}, consumed, nil
			}
			return h1Part{}, consumed, p.fail(errH1NoRequest)

		case h1sSwitched:
			if len(b) == 0 {
				return h1Part{}, consumed, nil
			}
			// Not sticky: the caller may Begin again if it wants to.
			return h1Part{}, consumed, errH1Switched

		case h1sHead:
			if p.scanned < len(h1StatusPrefix) {
				n := min(len(b), len(h1StatusPrefix))
				if string(b[:n]) != h1StatusPrefix[:n] {
					return h1Part{}, consumed, p.fail(errH1StatusPrefix)
				}
			}
			end, err := p.scanBlock(b, p.lim.MaxHeaderBlock, true)
			if err != nil {
				return h1Part{}, consumed, p.fail(err)
			}
			if end < 0 {
				return h1Part{}, consumed, nil
			}
			part, err := p.head(b[:end])
			if err != nil {
				return h1Part{}, consumed, p.fail(err)
			}
			return part, consumed + end, nil

		case h1sBodyLen, h1sChunkData:
			if len(b) == 0 {
				return h1Part{}, consumed, nil
			}
			n := len(b)
			if int64(n) > p.remaining {
				n = int(p.remaining)
			}
			p.remaining -= int64(n)
			fin := false
			if p.remaining == 0 {
				if p.state == h1sBodyLen {
					fin = true
					p.setState(h1sIdle)
				} else {
					p.setState(h1sChunkEnd)
				}
			}
			return h1Part{Kind: h1Data, Data: b[:n:n], Fin: fin}, consumed + n, nil

		case h1sBodyClose:
			if len(b) == 0 {
				return h1Part{}, consumed, nil
			}
			return h1Part{Kind: h1Data, Data: b[:len(b):len(b)]}, consumed + len(b), nil

		case h1sChunkEnd:
			if len(b) < 2 {
				if len(b) == 1 && b[0] != '\r' {
					return h1Part{}, consumed, p.fail(errH1ChunkCRLF)
				}
				return h1Part{}, consumed, nil
			}
			if b[0] != '\r' || b[1] != '\n' {
				return h1Part{}, consumed, p.fail(errH1ChunkCRLF)
			}
			consumed += 2
			p.setState(h1sChunkSize)

		case h1sChunkSize:
			end, err := p.scanLine(b, p.lim.MaxChunkLine)
			if err != nil {
				return h1Part{}, consumed, p.fail(err)
			}
			if end < 0 {
				return h1Part{}, consumed, nil
			}
			size, err := h1ParseChunkSize(b[:end-2])
			if err != nil {
				return h1Part{}, consumed, p.fail(err)
			}
			consumed += end
			if size == 0 {
				p.setState(h1sTrailers)
			} else {
				p.setState(h1sChunkData)
				p.remaining = size
			}

		case h1sTrailers:
			end, err := p.scanBlock(b, p.lim.MaxTrailerBlock, false)
			if err != nil {
				return h1Part{}, consumed, p.fail(err)
			}
			if end < 0 {
				return h1Part{}, consumed, nil
			}
			if end == 2 {
				p.setState(h1sIdle)
				return h1Part{Kind: h1Data, Fin: true}, consumed + 2, nil
			}
			hs, err := p.fields(b[:end-2], "trailer")
			if err != nil {
				return h1Part{}, consumed, p.fail(err)
			}
			p.setState(h1sIdle)
			return h1Part{Kind: h1Trailers, Headers: hs, Fin: true}, consumed + end, nil

		default:
			return h1Part{}, consumed, p.fail(fmt.Errorf("http: internal error: parser in state %d", p.state))
		}
	}
}

// scanBlock looks for the empty line ending a header (head=true) or trailer
// block, resuming where the previous call stopped. It returns the length of
// the block including the final CRLF, or -1 if more input is needed. A block
// longer than limit is an error as soon as that is certain.
func (p *h1Parser) scanBlock(b []byte, limit int, head bool) (int, error) {
	window := b
	if len(window) > limit {
		window = window[:limit]
	}
	for p.scanned < len(window) {
		i := bytes.IndexByte(window[p.scanned:], '\n')
		if i < 0 {
			p.scanned = len(window)
			break
		}
		i += p.scanned
		if i == 0 || window[i-1] != '\r' {
			return -1, errH1BareLF
		}
		if head && p.lineStart == 0 {
			// The status line is complete: reject garbage early.
			v, s, err := h1ParseStatusLine(window[:i-1])
			if err != nil {
				return -1, err
			}
			p.version, p.status, p.statusEnd = v, s, i+1
		} else if i-1 == p.lineStart {
			return i + 1, nil
		}
		p.lineStart = i + 1
		p.scanned = i + 1
	}
	if len(b) >= limit {
		if head {
			return -1, fmt.Errorf("http: response header block exceeds max_header_block_size (%d)", limit)
		}
		return -1, fmt.Errorf("http: trailer block exceeds max_trailer_block_size (%d)", limit)
	}
	return -1, nil
}

// scanLine looks for the end of a chunk-size line. It returns the length of
// the line including CRLF, or -1 if more input is needed.
func (p *h1Parser) scanLine(b []byte, limit int) (int, error) {
	window := b
	if len(window) > limit {
		window = window[:limit]
	}
	if p.scanned < len(window) {
		i := bytes.IndexByte(window[p.scanned:], '\n')
		if i >= 0 {
			i += p.scanned
			if i == 0 || window[i-1] != '\r' {
				return -1, errH1BareLF
			}
			return i + 1, nil
		}
		p.scanned = len(window)
	}
	if len(b) >= limit {
		return -1, fmt.Errorf("http: chunk size line exceeds %d bytes (a fixed bound, not an option)", limit)
	}
	return -1, nil
}

// head handles a complete status line + header block (CRLFs included).
func (p *h1Parser) head(block []byte) (h1Part, error) {
	hs, err := p.fields(block[p.statusEnd:len(block)-2], "header")
	if err != nil {
		return h1Part{}, err
	}
	part := h1Part{Status: p.status, Version: p.version, Headers: hs}
	if p.status < 200 {
		if p.status == 101 {
			part.Kind = h1Upgrade
			p.setState(h1sSwitched)
			return part, nil
		}
		// Informational: the final response follows. An endless run of
		// them would be endless work for the host: bounded.
		p.informs++
		if max := p.lim.MaxInformational; max > 0 && p.informs > max {
			return h1Part{}, fmt.Errorf("http: more than %d informational (1xx) responses to one request (max_informational_responses)", max)
		}
		part.Kind = h1Inform
		p.started = true
		p.setState(h1sHead)
		return part, nil
	}
	part.Kind = h1Head

	// Connection persistence (RFC 9112 §9.3).
	closeTok, keepAlive := false, false
	for i := range hs {
		if hs[i].Name != "connection" {
			continue
		}
		for e, rest := h1NextListElem(hs[i].Value); e != "" || rest != ""; e, rest = h1NextListElem(rest) {
			if h1EqualFold(e, "close") {
				closeTok = true
			} else if h1EqualFold(e, "keep-alive") {
				keepAlive = true
			}
		}
	}
	part.Close = closeTok || (p.version == 10 && !keepAlive)

	// Message body length (RFC 9112 §6.3).
	switch {
	case p.isHead || p.status == 204 || p.status == 304:
		part.Fin = true
		p.setState(h1sIdle)
		return part, nil
	case p.isConnect && p.status/100 == 2:
		part.Fin = true
		p.setState(h1sSwitched)
		return part, nil
	}
	hasTE, hasCL := false, false
	for i := range hs {
		switch hs[i].Name {
		case "transfer-encoding":
			hasTE = true
		case "content-length":
			hasCL = true
		}
	}
	switch {
	case hasTE && p.version == 10:
		// RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means the
		// framing is faulty: read until close (Content-Length ignored).
		part.Close = true
		p.setState(h1sBodyClose)
	case hasTE:
		chunked, err := h1ChunkedLast(hs)
		if err != nil {
			return h1Part{}, err
		}
		if chunked {
			// Chunked wins over Content-Length, but the conflict means the
			// connection must not be reused.
			if hasCL {
				part.Close = true
			}
			p.setState(h1sChunkSize)
		} else {
			part.Close = true
			p.setState(h1sBodyClose)
		}
	case hasCL:
		n, err := h1ContentLength(hs)
		if err != nil {
			return h1Part{}, err
		}
		if n == 0 {
			part.Fin = true
			p.setState(h1sIdle)
		} else {
			p.setState(h1sBodyLen)
			p.remaining = n
		}
	default:
		part.Close = true
		p.setState(h1sBodyClose)
	}
	return part, nil
}

// h1ParseStatusLine parses a status line without its CRLF:
// "HTTP/1.x" SP 3DIGIT [ SP reason-phrase ].
func h1ParseStatusLine(line []byte) (version, status int, err error) {
	if len(line) < len(h1StatusPrefix) || string(line[:len(h1StatusPrefix)]) != h1StatusPrefix {
		return 0, 0, errH1StatusPrefix
	}
	if len(line) < 12 || line[8] != ' ' {
		return 0, 0, fmt.Errorf("http: malformed status line %q", h1Quote(line))
	}
	switch line[7] {
	case '0':
		version = 10
	case '1':
		version = 11
	default:
		return 0, 0, fmt.Errorf("http: unsupported HTTP version %q", line[:8])
	}
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return 0, 0, fmt.Errorf("http: malformed status code in status line %q", h1Quote(line))
		}
		status = status*10 + int(c-'0')
	}
	if status < 100 {
		return 0, 0, fmt.Errorf("http: invalid status code %d", status)
	}
	rest := line[12:]
	if len(rest) > 0 {
		if rest[0] != ' ' {
			return 0, 0, fmt.Errorf("http: malformed status line %q", h1Quote(line))
		}
		for _, c := range rest[1:] {
			if !h1FieldByte(c) {
				return 0, 0, fmt.Errorf("http: invalid character %q in reason phrase", c)
			}
		}
	}
	return version, status, nil
}

// fields parses header (or trailer) lines, each ending in CRLF (scanBlock
// guarantees there is no bare LF). Names are lower-cased; values are
// trimmed. All names and values share one string allocation.
func (p *h1Parser) fields(region []byte, what string) ([]Header, error) {
	if len(region) == 0 {
		return nil, nil
	}
	scratch := p.scratch[:0]
	offs := p.offs[:0]
	for n := 1; len(region) > 0; n++ {
		if max := p.lim.MaxHeaders; max > 0 && n > max {
			return nil, fmt.Errorf("http: more than %d %s fields (max_headers)", max, what)
		}
		nl := bytes.IndexByte(region, '\n')
		line := region[:nl-1]
		region = region[nl+1:]
		if line[0] == ' ' || line[0] == '\t' {
			return nil, fmt.Errorf("http: obsolete line folding (obs-fold) in %s section", what)
		}
		colon := -1
		for i, c := range line {
			if c == ':' {
				colon = i
				break
			}
			if !h1TokenByte(c) {
				if c == ' ' || c == '\t' {
					return nil, fmt.Errorf("http: whitespace between %s field name and colon in %q", what, h1Quote(line))
				}
				return nil, fmt.Errorf("http: invalid character %q in %s field name %q", c, what, h1Quote(line))
			}
		}
		switch colon {
		case -1:
			return nil, fmt.Errorf("http: malformed %s field line (no colon) %q", what, h1Quote(line))
		case 0:
			return nil, fmt.Errorf("http: empty %s field name in %q", what, h1Quote(line))
		}
		nameStart := len(scratch)
		for _, c := range line[:colon] {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			scratch = append(scratch, c)
		}
		nameEnd := len(scratch)
		v := line[colon+1:]
		for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
			v = v[1:]
		}
		for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
			v = v[:len(v)-1]
		}
		for _, c := range v {
			if !h1FieldByte(c) {
				return nil, fmt.Errorf("http: invalid character %q in %s field value of %q", c, what, line[:colon])
			}
		}
		scratch = append(scratch, v...)
		offs = append(offs, nameStart, nameEnd, nameEnd, len(scratch))
	}
	s := string(scratch)
	if cap(scratch) <= h1MaxRetainedScratch {
		p.scratch, p.offs = scratch, offs
	} else {
		p.scratch, p.offs = nil, nil // do not pin a huge block's buffer
	}
	hs := make([]Header, len(offs)/4)
	for i := range hs {
		o := offs[4*i : 4*i+4]
		hs[i] = Header{Name: s[o[0]:o[1]], Value: s[o[2]:o[3]]}
	}
	return hs, nil
}

// h1ChunkedLast reports whether chunked is the final transfer coding of the
// (possibly multi-line) Transfer-Encoding field. chunked applied more than
// once, or an empty / malformed coding list, is an error.
func h1ChunkedLast(hs []Header) (bool, error) {
	count, nChunked, last := 0, 0, ""
	var bad string
	for i := range hs {
		if hs[i].Name != "transfer-encoding" {
			continue
		}
		for e, rest := h1NextListElem(hs[i].Value); e != "" || rest != ""; e, rest = h1NextListElem(rest) {
			if e == "" {
				continue
			}
			// transfer-coding = token *( OWS ";" OWS transfer-parameter )
			name := e
			for j := 0; j < len(e); j++ {
				if e[j] == ';' || e[j] == ' ' || e[j] == '\t' {
					name = e[:j]
					break
				}
			}
			if !h1IsToken(name) && bad == "" {
				bad = e
			}
			count++
			last = name
			if h1EqualFold(name, "chunked") {
				nChunked++
			}
		}
	}
	switch {
	case bad != "":
		return false, fmt.Errorf("http: malformed transfer-encoding %q", h1Quote([]byte(bad)))
	case count == 0:
		return false, errors.New("http: empty transfer-encoding")
	case nChunked > 1:
		return false, errors.New("http: transfer-encoding applies chunked more than once")
	case nChunked == 1 && !h1EqualFold(last, "chunked"):
		// chunked is not the final coding: the body is close-delimited.
		return false, nil
	}
	return nChunked == 1, nil
}

// h1ContentLength returns the value of the Content-Length field(s). Repeated
// identical values (as separate lines or a list) are accepted; differing or
// malformed values are an error (RFC 9110 §8.6, RFC 9112 §6.3).
func h1ContentLength(hs []Header) (int64, error) {
	var n int64 = -1
	for i := range hs {
		if hs[i].Name != "content-length" {
			continue
		}
		v := hs[i].Value
		for {
			elem := v
			comma := -1
			for j := 0; j < len(v); j++ {
				if v[j] == ',' {
					comma = j
					break
				}
			}
			if comma >= 0 {
				elem, v = v[:comma], v[comma+1:]
			}
			elem = h1TrimOWS(elem)
			m, ok := h1ParseDecimal(elem)
			if !ok {
				return 0, fmt.Errorf("http: invalid content-length %q", h1Quote([]byte(hs[i].Value)))
			}
			if n >= 0 && m != n {
				return 0, fmt.Errorf("http: conflicting content-length values %d and %d", n, m)
			}
			n = m
			if comma < 0 {
				break
			}
		}
	}
	return n, nil
}

func h1ParseDecimal(s string) (int64, bool) {
	if len(s) == 0 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (1<<63-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// h1ParseChunkSize parses a chunk-size line without its CRLF:
// 1*HEXDIG [ BWS chunk-ext ]. Extensions are validated loosely and ignored.
func h1ParseChunkSize(line []byte) (int64, error) {
	var n int64
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			goto rest
		}
		if n > (1<<63-1)>>4 {
			return 0, errors.New("http: chunk size too large")
		}
		n = n<<4 | int64(d)
	}
rest:
	if i == 0 {
		return 0, fmt.Errorf("http: invalid chunk size line %q", h1Quote(line))
	}
	ext := line[i:]
	for len(ext) > 0 && (ext[0] == ' ' || ext[0] == '\t') {
		ext = ext[1:]
	}
	if len(ext) == 0 {
		return n, nil
	}
	if ext[0] != ';' {
		return 0, fmt.Errorf("http: invalid chunk size line %q", h1Quote(line))
	}
	for _, c := range ext {
		if !h1FieldByte(c) {
			return 0, fmt.Errorf("http: invalid character %q in chunk extension", c)
		}
	}
	return n, nil
}

// h1NextListElem splits the first element off a comma-separated list and
// returns it OWS-trimmed (possibly empty) with the rest of the list. The list
// is exhausted when both results are empty.
func h1NextListElem(v string) (elem, rest string) {
	for j := 0; j < len(v); j++ {
		if v[j] == ',' {
			return h1TrimOWS(v[:j]), v[j+1:]
		}
	}
	return h1TrimOWS(v), ""
}

func h1TrimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// h1EqualFold compares s with a lower-case ASCII word, ignoring case.
func h1EqualFold(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

func h1IsToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !h1TokenByte(s[i]) {
			return false
		}
	}
	return true
}

// h1TokenByte reports whether c is a tchar (RFC 9110 §5.6.2).
func h1TokenByte(c byte) bool {
	return c < 128 && h1TokenTable[c]
}

var h1TokenTable = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// h1FieldByte reports whether c may appear in a field value, reason phrase
// or chunk extension: HTAB, SP, VCHAR or obs-text. NUL, CR, LF, the other
// control characters and DEL are rejected (as Go's net/textproto does).
func h1FieldByte(c byte) bool {
	return c == '\t' || (c >= ' ' && c != 0x7f)
}

// h1Quote shortens b for inclusion in an error message.
func h1Quote(b []byte) []byte {
	const max = 64
	if len(b) > max {
		return b[:max]
	}
	return b
}
