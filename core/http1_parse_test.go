package core

import (
	"fmt"
	"strings"
	"testing"
	"unsafe"
)

var h1TestLimits = h1Limits{MaxHeaderBlock: 100000, MaxTrailerBlock: 10000, MaxChunkLine: 4096}

// h1Transcript is a split-independent record of what the parser produced
// for an input: consecutive Data parts are merged.
type h1Transcript struct {
	Events []string
	Err    string // protocol error, "" if none
	Tail   string // "eof idle", "eof ok", "eof cut", "rest <quoted>" (after a switch), "" after an error
}

func (tr h1Transcript) String() string {
	return fmt.Sprintf("events=%q err=%q tail=%q", tr.Events, tr.Err, tr.Tail)
}

func h1FormatHeaders(hs []Header) string {
	var sb strings.Builder
	sb.WriteByte('[')
	for i, h := range hs {
		if i > 0 {
			sb.WriteString(" | ")
		}
		sb.WriteString(h.Name)
		sb.WriteString(": ")
		sb.WriteString(h.Value)
	}
	sb.WriteByte(']')
	return sb.String()
}

// h1Drive runs a parser over input delivered in the given chunks, the way
// the engine does: unconsumed bytes are kept and new ones appended; Begin is
// called for each response with methods[i] (GET when exhausted); parsing
// stops at an error or a protocol switch; EOF is signalled at the end. It
// checks the API invariants and fails tb on a violation.
func h1Drive(tb testing.TB, lim h1Limits, methods []string, chunks [][]byte) h1Transcript {
	tb.Helper()
	var tr h1Transcript
	p := newH1Parser(lim)
	if !p.Idle() {
		tb.Fatalf("new parser not idle")
	}
	nresp := 0
	begin := func() string {
		m := "GET"
		if nresp < len(methods) {
			m = methods[nresp]
		}
		nresp++
		p.Begin(m)
		if !p.Idle() {
			tb.Fatalf("parser not idle after Begin")
		}
		return m
	}
	method := begin()

	var pending []byte
	var data []byte
	inData := false
	flush := func(fin bool) {
		if inData || fin {
			ev := fmt.Sprintf("data %q", data)
			if fin {
				ev += " fin"
			}
			tr.Events = append(tr.Events, ev)
		}
		data, inData = data[:0], false
	}
	total := 0
	for _, c := range chunks {
		total += len(c)
	}
	fed := 0
	for ci, c := range chunks {
		pending = append(pending, c...)
		fed += len(c)
		for iter := 0; ; iter++ {
			if iter > total+16 {
				tb.Fatalf("no progress: %d iterations on %d bytes", iter, total)
			}
			part, n, err := p.Next(pending)
			if n < 0 || n > len(pending) {
				tb.Fatalf("consumed %d of %d bytes", n, len(pending))
			}
			if err != nil {
				if part.Kind != h1None {
					tb.Fatalf("error %v with part kind %v", err, part.Kind)
				}
				flush(false)
				tr.Err = err.Error()
				// The error must be sticky.
				if _, n2, err2 := p.Next(pending[n:]); err2 == nil || n2 != 0 {
					tb.Fatalf("error not sticky: %v, %d", err2, n2)
				}
				if _, ok, idle := p.EOF(); ok || idle {
					tb.Fatalf("EOF after error: ok=%v idle=%v", ok, idle)
				}
				return tr
			}
			if part.Kind == h1None {
				pending = pending[n:]
				if n == 0 {
					break
				}
				continue
			}
			if n == 0 {
				tb.Fatalf("part %v consumed nothing", part.Kind)
			}
			if part.Kind == h1Data {
				if len(part.Data) == 0 && !part.Fin {
					tb.Fatalf("empty non-fin data part")
				}
				if len(part.Data) > 0 {
					if cap(part.Data) != len(part.Data) {
						tb.Fatalf("data capacity not clipped")
					}
					if unsafe.SliceData(part.Data) != &pending[n-len(part.Data)] {
						tb.Fatalf("data is not the sub-slice of the input ending at consumed")
					}
				}
				data = append(data, part.Data...)
				inData = true
				pending = pending[n:]
				if part.Fin {
					flush(true)
					if !p.Idle() {
						tb.Fatalf("not idle after fin data")
					}
					method = begin()
				} else if p.Idle() {
					tb.Fatalf("idle in the middle of a body")
				}
				continue
			}
			flush(false)
			pending = pending[n:]
			switch part.Kind {
			case h1Inform:
				if part.Status < 100 || part.Status > 199 || part.Status == 101 || part.Fin {
					tb.Fatalf("bad inform part %+v", part)
				}
				tr.Events = append(tr.Events, fmt.Sprintf("inform %d %s", part.Status, h1FormatHeaders(part.Headers)))
				if p.Idle() {
					tb.Fatalf("idle after an informational response")
				}
			case h1Upgrade:
				if part.Status != 101 {
					tb.Fatalf("bad upgrade part %+v", part)
				}
				tr.Events = append(tr.Events, fmt.Sprintf("upgrade %d %s", part.Status, h1FormatHeaders(part.Headers)))
			case h1Head:
				ev := fmt.Sprintf("head %d %d %s", part.Status, part.Version, h1FormatHeaders(part.Headers))
				if part.Fin {
					ev += " fin"
				}
				if part.Close {
					ev += " close"
				}
				tr.Events = append(tr.Events, ev)
			case h1Trailers:
				if !part.Fin {
					tb.Fatalf("trailers without fin")
				}
				tr.Events = append(tr.Events, "trailers "+h1FormatHeaders(part.Headers))
			default:
				tb.Fatalf("unknown part kind %v", part.Kind)
			}
			switched := part.Kind == h1Upgrade ||
				(part.Kind == h1Head && method == "CONNECT" && part.Status/100 == 2)
			if switched {
				if !part.Fin && part.Kind == h1Head {
					tb.Fatalf("CONNECT 2xx without fin")
				}
				rest := string(pending)
				for _, c2 := range chunks[ci+1:] {
					rest += string(c2)
				}
				tr.Tail = fmt.Sprintf("rest %q", rest)
				if !p.Idle() {
					tb.Fatalf("not idle after a protocol switch")
				}
				return tr
			}
			if part.Fin {
				if !p.Idle() {
					tb.Fatalf("not idle after fin %v", part.Kind)
				}
				method = begin()
			}
		}
	}
	_ = fed
	part, ok, idle := p.EOF()
	switch {
	case ok:
		if part.Kind != h1Data || !part.Fin || len(part.Data) != 0 || idle {
			tb.Fatalf("bad EOF part %+v idle=%v", part, idle)
		}
		data = append(data, part.Data...)
		inData = true
		flush(true)
		tr.Tail = "eof ok"
	case idle:
		if len(pending) != 0 {
			tb.Fatalf("EOF idle with %d unconsumed bytes", len(pending))
		}
		flush(false)
		tr.Tail = "eof idle"
	default:
		flush(false)
		tr.Tail = "eof cut"
	}
	return tr
}

func h1Whole(in string) [][]byte { return [][]byte{[]byte(in)} }

func h1Bytewise(in string) [][]byte {
	cs := make([][]byte, len(in))
	for i := range cs {
		cs[i] = []byte(in[i : i+1])
	}
	return cs
}

type h1Case struct {
	name    string
	methods []string
	in      string
	events  []string
	err     string // substring of the expected error
	tail    string
}

var h1Cases = []h1Case{
	// Status line.
	{name: "content-length body",
		in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
		events: []string{
			"head 200 11 [content-length: 5 | content-type: text/plain]",
			`data "hello" fin`,
		},
		tail: "eof idle"},
	{name: "empty reason no space",
		in:     "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
		events: []string{"head 200 11 [content-length: 0] fin"}, tail: "eof idle"},
	{name: "empty reason with space",
		in:     "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n",
		events: []string{"head 404 11 [content-length: 0] fin"}, tail: "eof idle"},
	{name: "reason with spaces tabs obs-text",
		in:     "HTTP/1.1 500 Internal\tServer \xe9rror \r\nContent-Length: 0\r\n\r\n",
		events: []string{"head 500 11 [content-length: 0] fin"}, tail: "eof idle"},
	{name: "no headers at all is close-delimited",
		in:     "HTTP/1.1 200 OK\r\n\r\nabc",
		events: []string{"head 200 11 [] close", `data "abc" fin`}, tail: "eof ok"},
	{name: "status 6xx accepted",
		in:     "HTTP/1.1 600 Odd\r\nContent-Length: 0\r\n\r\n",
		events: []string{"head 600 11 [content-length: 0] fin"}, tail: "eof idle"},
	{name: "status line two-digit code", in: "HTTP/1.1 20 OK\r\n\r\n", err: "malformed status"},
	{name: "status line four-digit code", in: "HTTP/1.1 2000 OK\r\n\r\n", err: "malformed status line"},
	{name: "status line no space after code", in: "HTTP/1.1 200OK\r\n\r\n", err: "malformed status line"},
	{name: "status line non-digit code", in: "HTTP/1.1 2x0 OK\r\n\r\n", err: "malformed status code"},
	{name: "status code below 100", in: "HTTP/1.1 099 OK\r\n\r\n", err: "invalid status code 99"},
	{name: "HTTP/2.0 status line", in: "HTTP/2.0 200 OK\r\n\r\n", err: `does not begin with "HTTP/1."`},
	{name: "HTTP/1.2 status line", in: "HTTP/1.2 200 OK\r\n\r\n", err: "unsupported HTTP version"},
	{name: "lower-case protocol", in: "http/1.1 200 OK\r\n\r\n", err: `does not begin with "HTTP/1."`},
	{name: "garbage", in: "\x16\x03\x01\x00", err: `does not begin with "HTTP/1."`},
	{name: "leading empty line", in: "\r\nHTTP/1.1 200 OK\r\n\r\n", err: `does not begin with "HTTP/1."`},
	{name: "two spaces before code", in: "HTTP/1.1  200 OK\r\n\r\n", err: "malformed status"},
	{name: "NUL in reason", in: "HTTP/1.1 200 O\x00K\r\n\r\n", err: "reason phrase"},
	{name: "CR in reason", in: "HTTP/1.1 200 O\rK\r\n\r\n", err: "reason phrase"},
	{name: "bare LF after status line", in: "HTTP/1.1 200 OK\nContent-Length: 0\n\n", err: "bare LF"},
	{name: "bare LF ends header block", in: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\n", err: "bare LF"},
	{name: "bare LF in header line", in: "HTTP/1.1 200 OK\r\nA: b\nContent-Length: 0\r\n\r\n", err: "bare LF"},

	// Header fields.
	{name: "names lower-cased values trimmed",
		in: "HTTP/1.1 200 OK\r\nX-Foo: \t bar  baz \t\r\nX-EMPTY:\r\nx-nospace:v\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n",
		events: []string{
			"head 200 11 [x-foo: bar  baz | x-empty:  | x-nospace: v | set-cookie: a=1 | set-cookie: b=2 | content-length: 0] fin",
		},
		tail: "eof idle"},
	{name: "token characters in names",
		in:     "HTTP/1.1 200 OK\r\n!#$%&'*+-.^_`|~09AZaz: x\r\nContent-Length: 0\r\n\r\n",
		events: []string{"head 200 11 [!#$%&'*+-.^_`|~09azaz: x | content-length: 0] fin"}, tail: "eof idle"},
	{name: "obs-text and colon in values",
		in:     "HTTP/1.1 200 OK\r\nX: a:b \xff\r\nContent-Length: 0\r\n\r\n",
		events: []string{"head 200 11 [x: a:b \xff | content-length: 0] fin"}, tail: "eof idle"},
	{name: "obs-fold", in: "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n", err: "obs-fold"},
	{name: "obs-fold tab", in: "HTTP/1.1 200 OK\r\nX: a\r\n\tb\r\n\r\n", err: "obs-fold"},
	{name: "space before colon", in: "HTTP/1.1 200 OK\r\nX : a\r\n\r\n", err: "whitespace between header field name and colon"},
	{name: "no colon", in: "HTTP/1.1 200 OK\r\nXa\r\n\r\n", err: "no colon"},
	{name: "empty name", in: "HTTP/1.1 200 OK\r\n: a\r\n\r\n", err: "empty header field name"},
	{name: "non-token name", in: "HTTP/1.1 200 OK\r\nX(y): a\r\n\r\n", err: "field name"},
	{name: "non-ascii name", in: "HTTP/1.1 200 OK\r\nX\xe9: a\r\n\r\n", err: "field name"},
	{name: "NUL in value", in: "HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n", err: "field value"},
	{name: "CR in value", in: "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", err: "field value"},
	{name: "control char in value", in: "HTTP/1.1 200 OK\r\nX: a\x01b\r\n\r\n", err: "field value"},
	{name: "DEL in value", in: "HTTP/1.1 200 OK\r\nX: a\x7fb\r\n\r\n", err: "field value"},

	// Connection persistence.
	{name: "connection close",
		in:     "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
		events: []string{"head 200 11 [connection: close | content-length: 2] close", `data "ok" fin`}, tail: "eof idle"},
	{name: "connection list with close",
		in:     "HTTP/1.1 200 OK\r\nConnection: Keep-Alive, ,  CLOSE \r\nContent-Length: 0\r\n\r\n",
		events: []string{"head 200 11 [connection: Keep-Alive, ,  CLOSE | content-length: 0] fin close"}, tail: "eof idle"},
	{name: "connection close on second line",
		in:     "HTTP/1.1 200 OK\r\nConnection: upgrade\r\nconnection: close\r\nContent-Length: 0\r\n\r\n",
		events: []string{"head 200 11 [connection: upgrade | connection: close | content-length: 0] fin close"}, tail: "eof idle"},
	{name: "connection closed is not close",
		in:     "HTTP/1.1 200 OK\r\nConnection: closed\r\nContent-Length: 0\r\n\r\n",
		events: []string{"head 200 11 [connection: closed | content-length: 0] fin"}, tail: "eof idle"},
	{name: "http/1.0 closes by default",
		in:     "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
		events: []string{"head 200 10 [content-length: 2] close", `data "ok" fin`}, tail: "eof idle"},
	{name: "http/1.0 keep-alive",
		in:     "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
		events: []string{"head 200 10 [connection: keep-alive | content-length: 2]", `data "ok" fin`}, tail: "eof idle"},
	{name: "http/1.0 keep-alive but close-delimited",
		in:     "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\nabc",
		events: []string{"head 200 10 [connection: keep-alive] close", `data "abc" fin`}, tail: "eof ok"},

	// Bodyless responses.
	{name: "204 ignores content-length",
		in:     "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
		events: []string{"head 204 11 [content-length: 5] fin"}, tail: "eof idle"},
	{name: "304 ignores transfer-encoding",
		in:     "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
		events: []string{"head 304 11 [transfer-encoding: chunked] fin"}, tail: "eof idle"},
	{name: "204 without framing headers",
		in:     "HTTP/1.1 204 No Content\r\n\r\n",
		events: []string{"head 204 11 [] fin"}, tail: "eof idle"},
	{name: "HEAD with content-length", methods: []string{"HEAD"},
		in:     "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
		events: []string{"head 200 11 [content-length: 100] fin"}, tail: "eof idle"},
	{name: "HEAD with chunked", methods: []string{"HEAD"},
		in:     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
		events: []string{"head 200 11 [transfer-encoding: chunked] fin"}, tail: "eof idle"},
	{name: "HEAD without framing is not close-delimited", methods: []string{"HEAD"},
		in:     "HTTP/1.1 200 OK\r\n\r\n",
		events: []string{"head 200 11 [] fin"}, tail: "eof idle"},
	{name: "HEAD ignores a bad content-length", methods: []string{"HEAD"},
		in:     "HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n",
		events: []string{"head 200 11 [content-length: nope] fin"}, tail: "eof idle"},
	{name: "HEAD with connection close", methods: []string{"HEAD"},
		in:     "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
		events: []string{"head 200 11 [connection: close] fin close"}, tail: "eof idle"},
	{name: "CONNECT 200 starts the tunnel", methods: []string{"CONNECT"},
		in:     "HTTP/1.1 200 Connection Established\r\nContent-Length: 10\r\n\r\n\x16\x03\x01tunnel",
		events: []string{"head 200 11 [content-length: 10] fin"}, tail: `rest "\x16\x03\x01tunnel"`},
	{name: "CONNECT 407 has a body", methods: []string{"CONNECT"},
		in:     "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 4\r\n\r\ndeny",
		events: []string{"head 407 11 [content-length: 4]", `data "deny" fin`}, tail: "eof idle"},
	{name: "content-length zero",
		in:     "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		events: []string{"head 200 11 [content-length: 0] fin"}, tail: "eof idle"},

	// Informational and upgrade.
	{name: "100 continue then final",
		in:     "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
		events: []string{"inform 100 []", "head 200 11 [content-length: 1]", `data "x" fin`}, tail: "eof idle"},
	{name: "103 early hints twice then final",
		in: "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" +
			"HTTP/1.1 103 Early Hints\r\nLink: </b.js>; rel=preload\r\n\r\n" +
			"HTTP/1.1 204 No Content\r\n\r\n",
		events: []string{
			"inform 103 [link: </a.css>; rel=preload]",
			"inform 103 [link: </b.js>; rel=preload]",
			"head 204 11 [] fin",
		},
		tail: "eof idle"},
	{name: "1xx with content-length has no body",
		in:     "HTTP/1.1 102 Processing\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		events: []string{"inform 102 [content-length: 5]", "head 200 11 [content-length: 0] fin"}, tail: "eof idle"},
	{name: "cut after 1xx", in: "HTTP/1.1 100 Continue\r\n\r\n",
		events: []string{"inform 100 []"}, tail: "eof cut"},
	{name: "101 switching protocols",
		in:     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello",
		events: []string{"upgrade 101 [upgrade: websocket | connection: Upgrade]"}, tail: `rest "\x81\x05hello"`},
	{name: "101 after 100",
		in:     "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\nPRI",
		events: []string{"inform 100 []", "upgrade 101 [upgrade: h2c]"}, tail: `rest "PRI"`},

	// Content-Length.
	{name: "repeated identical content-length list",
		in:     "HTTP/1.1 200 OK\r\nContent-Length: 3 , 3\r\n\r\nabc",
		events: []string{"head 200 11 [content-length: 3 , 3]", `data "abc" fin`}, tail: "eof idle"},
	{name: "repeated identical content-length lines",
		in:     "HTTP/1.1 200 OK\r\nContent-Length: 3\r\ncontent-length: 003\r\n\r\nabc",
		events: []string{"head 200 11 [content-length: 3 | content-length: 003]", `data "abc" fin`}, tail: "eof idle"},
	{name: "conflicting content-length lines", in: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", err: "conflicting content-length"},
	{name: "conflicting content-length list", in: "HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\nabcd", err: "conflicting content-length"},
	{name: "non-numeric content-length", in: "HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", err: "invalid content-length"},
	{name: "signed content-length", in: "HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc", err: "invalid content-length"},
	{name: "negative content-length", in: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", err: "invalid content-length"},
	{name: "empty content-length", in: "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n", err: "invalid content-length"},
	{name: "empty content-length list element", in: "HTTP/1.1 200 OK\r\nContent-Length: 3,\r\n\r\n", err: "invalid content-length"},
	{name: "hex content-length", in: "HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n", err: "invalid content-length"},
	{name: "overflowing content-length", in: "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", err: "invalid content-length"},
	{name: "max int64 content-length",
		in:     "HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775807\r\n\r\nab",
		events: []string{"head 200 11 [content-length: 9223372036854775807]", `data "ab"`}, tail: "eof cut"},
	{name: "content-length one past max int64", in: "HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775808\r\n\r\n", err: "invalid content-length"},
	{name: "content-length body cut", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel",
		events: []string{"head 200 11 [content-length: 5]", `data "hel"`}, tail: "eof cut"},
	{name: "content-length body cut before any byte", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
		events: []string{"head 200 11 [content-length: 5]"}, tail: "eof cut"},
	{name: "head cut", in: "HTTP/1.1 200 OK\r\nContent-Len", tail: "eof cut"},
	{name: "no response at all", in: "", tail: "eof idle"},

	// Transfer-Encoding.
	{name: "chunked with extensions",
		in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"5\r\nhello\r\n6;name=value;x=\"q d\"\r\n world\r\n1 ; a\t\r\n!\r\n0;last\r\n\r\n",
		events: []string{"head 200 11 [transfer-encoding: chunked]", `data "hello world!" fin`}, tail: "eof idle"},
	{name: "chunked upper-case hex and leading zeros",
		in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n" +
			"0000A\r\n0123456789\r\na\r\nabcdefghij\r\n000\r\n\r\n",
		events: []string{"head 200 11 [transfer-encoding: Chunked]", `data "0123456789abcdefghij" fin`}, tail: "eof idle"},
	{name: "chunked empty body",
		in:     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		events: []string{"head 200 11 [transfer-encoding: chunked]", `data "" fin`}, tail: "eof idle"},
	{name: "chunked with trailers",
		in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n" +
			"3\r\nabc\r\n0\r\nX-Checksum: 900150983cd24fb0\r\nServer-Timing: db;dur=53 \r\n\r\n",
		events: []string{
			"head 200 11 [transfer-encoding: chunked | trailer: X-Checksum]",
			`data "abc"`,
			"trailers [x-checksum: 900150983cd24fb0 | server-timing: db;dur=53]",
		},
		tail: "eof idle"},
	{name: "chunked empty body with trailers",
		in:     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: b\r\n\r\n",
		events: []string{"head 200 11 [transfer-encoding: chunked]", "trailers [a: b]"}, tail: "eof idle"},
	{name: "gzip then chunked is chunked",
		in:     "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\n\x1f\x8b\r\n0\r\n\r\n",
		events: []string{"head 200 11 [transfer-encoding: gzip, chunked]", `data "\x1f\x8b" fin`}, tail: "eof idle"},
	{name: "transfer-encoding over two lines",
		in:     "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n",
		events: []string{"head 200 11 [transfer-encoding: gzip | transfer-encoding: chunked]", `data "z" fin`}, tail: "eof idle"},
	{name: "chunked not last is close-delimited",
		in:     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n1\r\nz\r\n",
		events: []string{"head 200 11 [transfer-encoding: chunked, gzip] close", `data "1\r\nz\r\n" fin`}, tail: "eof ok"},
	{name: "gzip only is close-delimited",
		in:     "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 2\r\n\r\nabcd",
		events: []string{"head 200 11 [transfer-encoding: gzip | content-length: 2] close", `data "abcd" fin`}, tail: "eof ok"},
	{name: "chunked wins over content-length and closes",
		in:     "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n",
		events: []string{"head 200 11 [content-length: 100 | transfer-encoding: chunked] close", `data "ab" fin`}, tail: "eof idle"},
	{name: "chunked wins over a bad content-length",
		in:     "HTTP/1.1 200 OK\r\nContent-Length: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		events: []string{"head 200 11 [content-length: x | transfer-encoding: chunked] close", `data "" fin`}, tail: "eof idle"},
	{name: "transfer-encoding in http/1.0 is faulty framing",
		in:     "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n0\r\n\r\n",
		events: []string{"head 200 10 [transfer-encoding: chunked | content-length: 3 | connection: keep-alive] close", `data "0\r\n\r\n" fin`}, tail: "eof ok"},
	{name: "chunked twice", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", err: "chunked more than once"},
	{name: "empty transfer-encoding", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: \r\n\r\n", err: "empty transfer-encoding"},
	{name: "malformed transfer-encoding", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", err: "malformed transfer-encoding"},
	{name: "transfer-encoding with parameters",
		in:     "HTTP/1.1 200 OK\r\nTransfer-Encoding: foo ; q=1, chunked\r\n\r\n0\r\n\r\n",
		events: []string{"head 200 11 [transfer-encoding: foo ; q=1, chunked]", `data "" fin`}, tail: "eof idle"},
	{name: "bad chunk size", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", err: "invalid chunk size line",
		events: []string{"head 200 11 [transfer-encoding: chunked]"}},
	{name: "empty chunk size", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n", err: "invalid chunk size line",
		events: []string{"head 200 11 [transfer-encoding: chunked]"}},
	{name: "0x chunk size", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n", err: "invalid chunk size line",
		events: []string{"head 200 11 [transfer-encoding: chunked]"}},
	{name: "signed chunk size", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n", err: "invalid chunk size line",
		events: []string{"head 200 11 [transfer-encoding: chunked]"}},
	{name: "chunk size junk after BWS", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 x\r\nhello\r\n", err: "invalid chunk size line",
		events: []string{"head 200 11 [transfer-encoding: chunked]"}},
	{name: "chunk size overflow", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n", err: "chunk size too large",
		events: []string{"head 200 11 [transfer-encoding: chunked]"}},
	{name: "max chunk size", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7fffffffffffffff\r\nab",
		events: []string{"head 200 11 [transfer-encoding: chunked]", `data "ab"`}, tail: "eof cut"},
	{name: "bare LF after chunk size", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\nx\r\n", err: "bare LF",
		events: []string{"head 200 11 [transfer-encoding: chunked]"}},
	{name: "CR in chunk extension", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;a\rb\r\nx\r\n", err: "chunk extension",
		events: []string{"head 200 11 [transfer-encoding: chunked]"}},
	{name: "chunk data too long", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy\r\n0\r\n\r\n", err: "not followed by CRLF",
		events: []string{"head 200 11 [transfer-encoding: chunked]", `data "x"`}},
	{name: "chunk data followed by LF only", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\n0\r\n\r\n", err: "not followed by CRLF",
		events: []string{"head 200 11 [transfer-encoding: chunked]", `data "x"`}},
	{name: "chunked cut in data", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
		events: []string{"head 200 11 [transfer-encoding: chunked]", `data "hel"`}, tail: "eof cut"},
	{name: "chunked cut after data CR", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r",
		events: []string{"head 200 11 [transfer-encoding: chunked]", `data "hello"`}, tail: "eof cut"},
	{name: "chunked cut in size line", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1",
		events: []string{"head 200 11 [transfer-encoding: chunked]", `data "hello"`}, tail: "eof cut"},
	{name: "chunked cut before trailers end", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
		events: []string{"head 200 11 [transfer-encoding: chunked]"}, tail: "eof cut"},
	{name: "chunked cut in trailers", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: b\r\n",
		events: []string{"head 200 11 [transfer-encoding: chunked]"}, tail: "eof cut"},
	{name: "obs-fold in trailers", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: b\r\n c\r\n\r\n", err: "(obs-fold) in trailer section",
		events: []string{"head 200 11 [transfer-encoding: chunked]"}},
	{name: "bad trailer name", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA b: c\r\n\r\n", err: "trailer field name",
		events: []string{"head 200 11 [transfer-encoding: chunked]"}},
	{name: "bare LF ends trailers", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\n", err: "bare LF",
		events: []string{"head 200 11 [transfer-encoding: chunked]"}},

	// Close-delimited.
	{name: "close-delimited body",
		in:     "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nsome body\r\nHTTP/1.1 200 OK\r\n\r\n",
		events: []string{"head 200 11 [content-type: text/plain] close", "data \"some body\\r\\nHTTP/1.1 200 OK\\r\\n\\r\\n\" fin"}, tail: "eof ok"},
	{name: "close-delimited empty body",
		in:     "HTTP/1.1 200 OK\r\n\r\n",
		events: []string{"head 200 11 [] close", `data "" fin`}, tail: "eof ok"},

	// Pipelining.
	{name: "pipelined responses", methods: []string{"GET", "HEAD", "GET", "GET", "DELETE"},
		in: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc" +
			"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n" +
			"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\nT: 1\r\n\r\n" +
			"HTTP/1.1 304 Not Modified\r\n\r\n" +
			"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		events: []string{
			"head 200 11 [content-length: 3]", `data "abc" fin`,
			"head 200 11 [content-length: 10] fin",
			"inform 100 []", "head 200 11 [transfer-encoding: chunked]", `data "xyz"`, "trailers [t: 1]",
			"head 304 11 [] fin",
			"head 202 11 [transfer-encoding: chunked]", `data "" fin`,
		},
		tail: "eof idle"},
	{name: "pipelined then cut", methods: []string{"GET", "GET"},
		in:     "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 200 OK\r\n",
		events: []string{"head 200 11 [content-length: 1]", `data "a" fin`}, tail: "eof cut"},
	{name: "pipelined error in second", methods: []string{"GET", "GET"},
		in:     "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naXTTP/1.1 200 OK\r\n",
		events: []string{"head 200 11 [content-length: 1]", `data "a" fin`}, err: `does not begin with "HTTP/1."`},
}

func h1Check(t *testing.T, c h1Case, how string, got h1Transcript) {
	t.Helper()
	ok := len(got.Events) == len(c.events)
	for i := 0; ok && i < len(got.Events); i++ {
		ok = got.Events[i] == c.events[i]
	}
	if c.err == "" {
		ok = ok && got.Err == "" && got.Tail == c.tail
	} else {
		ok = ok && strings.Contains(got.Err, c.err) && got.Tail == ""
	}
	if !ok {
		t.Fatalf("%s:\n got: %v\nwant: events=%q err~%q tail=%q", how, got, c.events, c.err, c.tail)
	}
}

func TestH1ParserCases(t *testing.T) {
	for _, c := range h1Cases {
		t.Run(c.name, func(t *testing.T) {
			whole := h1Drive(t, h1TestLimits, c.methods, h1Whole(c.in))
			h1Check(t, c, "whole", whole)
			h1Check(t, c, "byte at a time", h1Drive(t, h1TestLimits, c.methods, h1Bytewise(c.in)))
			for i := 0; i <= len(c.in); i++ {
				got := h1Drive(t, h1TestLimits, c.methods, [][]byte{[]byte(c.in[:i]), []byte(c.in[i:])})
				h1Check(t, c, fmt.Sprintf("split at %d", i), got)
			}
			// Three-way splits for short inputs.
			if len(c.in) <= 160 {
				for i := 0; i <= len(c.in); i++ {
					for j := i; j <= len(c.in); j++ {
						got := h1Drive(t, h1TestLimits, c.methods, [][]byte{[]byte(c.in[:i]), []byte(c.in[i:j]), []byte(c.in[j:])})
						if got.String() != whole.String() {
							t.Fatalf("split at %d,%d:\n got: %v\nwant: %v", i, j, got, whole)
						}
					}
				}
			}
		})
	}
}

// h1Pad returns "X-Pad: ppp...\r\n" of exactly n bytes (n >= 9).
func h1Pad(n int) string {
	return "X-Pad: " + strings.Repeat("p", n-9) + "\r\n"
}

func TestH1Limits(t *testing.T) {
	const start = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
	headerBlock := func(size int) string {
		// start + pad + final CRLF == size
		return start + h1Pad(size-len(start)-2) + "\r\n"
	}
	const te = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	trailerBlock := func(size int) string {
		return te + "0\r\n" + h1Pad(size-2) + "\r\n"
	}
	chunkLine := func(size int) string {
		// "1;" + ext + CRLF == size
		return te + "1;" + strings.Repeat("e", size-4) + "\r\nx\r\n0\r\n\r\n"
	}
	for _, lim := range []int{64, 200, 1000, 100000} {
		for _, tc := range []struct {
			name   string
			limits h1Limits
			in     func(int) string
			okEv   []string
			err    string
		}{
			{"header block", h1Limits{MaxHeaderBlock: lim}, headerBlock, nil,
				fmt.Sprintf("http: response header block exceeds max_header_block_size (%d)", lim)},
			{"trailer block", h1Limits{MaxTrailerBlock: lim}, trailerBlock, nil,
				fmt.Sprintf("http: trailer block exceeds max_trailer_block_size (%d)", lim)},
			{"chunk line", h1Limits{MaxChunkLine: lim}, chunkLine, nil,
				fmt.Sprintf("http: chunk size line exceeds %d bytes (a fixed bound, not an option)", lim)},
		} {
			t.Run(fmt.Sprintf("%s/%d", tc.name, lim), func(t *testing.T) {
				at := tc.in(lim)
				over := tc.in(lim + 1)
				for _, how := range []string{"whole", "bytewise"} {
					feed := h1Whole
					if how == "bytewise" {
						feed = h1Bytewise
					}
					if got := h1Drive(t, tc.limits, nil, feed(at)); got.Err != "" || got.Tail != "eof idle" {
						t.Fatalf("%s: block of exactly %d bytes: %v", how, lim, got)
					}
					if got := h1Drive(t, tc.limits, nil, feed(over)); got.Err != tc.err {
						t.Fatalf("%s: block of %d bytes: %v, want error %q", how, lim+1, got, tc.err)
					}
				}
				// The limit is detected without waiting for the end of the
				// block: exactly lim bytes of an unfinished block fail.
				if tc.name == "header block" {
					got := h1Drive(t, tc.limits, nil, h1Whole(over[:lim]))
					if got.Err != tc.err {
						t.Fatalf("unfinished block of %d bytes: %v", lim, got)
					}
					got = h1Drive(t, tc.limits, nil, h1Whole(over[:lim-1]))
					if got.Err != "" || got.Tail != "eof cut" {
						t.Fatalf("unfinished block of %d bytes: %v", lim-1, got)
					}
				}
			})
		}
	}
	// Each informational block is measured on its own.
	l := h1Limits{MaxHeaderBlock: 64}
	info := "HTTP/1.1 103 Early Hints\r\n" + h1Pad(64-len("HTTP/1.1 103 Early Hints\r\n")-2) + "\r\n"
	in := info + info + headerBlock(64)
	if got := h1Drive(t, l, nil, h1Whole(in)); got.Err != "" || len(got.Events) != 3 {
		t.Fatalf("informational blocks at the limit: %v", got)
	}
	// Defaults.
	p := newH1Parser(h1Limits{})
	if p.lim != (h1Limits{MaxHeaderBlock: 100000, MaxTrailerBlock: 10000, MaxChunkLine: 4096}) {
		t.Fatalf("default limits: %+v", p.lim)
	}
	if got := h1Drive(t, h1Limits{}, nil, h1Whole(headerBlock(100001))); !strings.Contains(got.Err, "(100000)") {
		t.Fatalf("default header limit: %v", got)
	}
}

func TestH1ParserAPI(t *testing.T) {
	t.Run("next without begin", func(t *testing.T) {
		p := newH1Parser(h1TestLimits)
		if part, n, err := p.Next(nil); part.Kind != h1None || n != 0 || err != nil {
			t.Fatalf("empty Next: %v %d %v", part.Kind, n, err)
		}
		if _, _, err := p.Next([]byte("HTTP/1.1 200 OK\r\n\r\n")); err == nil || !strings.Contains(err.Error(), "no request outstanding") {
			t.Fatalf("Next without Begin: %v", err)
		}
	})
	t.Run("pipelined bytes stay unconsumed", func(t *testing.T) {
		head := "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
		buf := []byte(head + "HTTP/1.1 204 No Content\r\n\r\n")
		p := newH1Parser(h1TestLimits)
		p.Begin("GET")
		part, n, err := p.Next(buf)
		if err != nil || part.Kind != h1Head || !part.Fin || n != len(head) {
			t.Fatalf("first: %+v %d %v", part, n, err)
		}
		if !p.Idle() {
			t.Fatal("not idle after a complete response")
		}
		// Without Begin the next response is unexpected; with it, parsed.
		p.Begin("GET")
		part, n2, err := p.Next(buf[n:])
		if err != nil || part.Kind != h1Head || part.Status != 204 || n+n2 != len(buf) {
			t.Fatalf("second: %+v %d %v", part, n2, err)
		}
	})
	t.Run("idle and eof", func(t *testing.T) {
		p := newH1Parser(h1TestLimits)
		if _, ok, idle := p.EOF(); ok || !idle {
			t.Fatalf("EOF on a fresh parser: ok=%v idle=%v", ok, idle)
		}
		p.Begin("GET")
		if _, ok, idle := p.EOF(); ok || !idle {
			t.Fatalf("EOF before any byte: ok=%v idle=%v", ok, idle)
		}
		p.Begin("GET")
		if part, n, err := p.Next([]byte("HTTP/1.1 2")); part.Kind != h1None || n != 0 || err != nil {
			t.Fatalf("partial: %v %d %v", part.Kind, n, err)
		}
		if p.Idle() {
			t.Fatal("idle with a partial status line")
		}
		if _, ok, idle := p.EOF(); ok || idle {
			t.Fatalf("EOF in a status line: ok=%v idle=%v", ok, idle)
		}
	})
	t.Run("after upgrade", func(t *testing.T) {
		p := newH1Parser(h1TestLimits)
		p.Begin("GET")
		buf := []byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nframe")
		part, n, err := p.Next(buf)
		if err != nil || part.Kind != h1Upgrade || string(buf[n:]) != "frame" {
			t.Fatalf("upgrade: %+v %d %v", part, n, err)
		}
		if !p.Idle() {
			t.Fatal("not idle after upgrade")
		}
		if _, _, err := p.Next(buf[n:]); err == nil {
			t.Fatal("parsed bytes after a protocol switch")
		}
		if _, ok, idle := p.EOF(); ok || !idle {
			t.Fatalf("EOF after upgrade: ok=%v idle=%v", ok, idle)
		}
	})
	t.Run("data parts do not wait for the whole body", func(t *testing.T) {
		p := newH1Parser(h1TestLimits)
		p.Begin("GET")
		buf := []byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n100\r\nabc")
		part, n, _ := p.Next(buf)
		if part.Kind != h1Head {
			t.Fatalf("head: %+v", part)
		}
		part, n2, err := p.Next(buf[n:])
		if err != nil || part.Kind != h1Data || string(part.Data) != "abc" || part.Fin || n+n2 != len(buf) {
			t.Fatalf("data: %+v %d %v", part, n2, err)
		}
	})
	t.Run("chunk size line is not split", func(t *testing.T) {
		p := newH1Parser(h1TestLimits)
		p.Begin("GET")
		buf := []byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n10")
		_, n, _ := p.Next(buf)
		part, n2, _ := p.Next(buf[n:])
		if string(part.Data) != "abc" {
			t.Fatalf("data: %+v", part)
		}
		n += n2
		part, n2, err := p.Next(buf[n:])
		if err != nil || part.Kind != h1None || string(buf[n+n2:]) != "10" {
			t.Fatalf("partial size line: %+v consumed %d (%q left) %v", part, n2, buf[n+n2:], err)
		}
	})
	t.Run("begin does not clear an error", func(t *testing.T) {
		p := newH1Parser(h1TestLimits)
		p.Begin("GET")
		if _, _, err := p.Next([]byte("HTTP/1.1 200 OK\r\nX : y\r\n\r\n")); err == nil {
			t.Fatal("no error")
		}
		p.Begin("GET")
		if _, _, err := p.Next([]byte("HTTP/1.1 200 OK\r\n\r\n")); err == nil {
			t.Fatal("error cleared by Begin")
		}
		if p.Idle() {
			t.Fatal("failed parser reports idle")
		}
	})
}

func TestH1ParserAllocs(t *testing.T) {
	resp := []byte("HTTP/1.1 200 OK\r\nDate: Mon, 27 Jul 2009 12:28:53 GMT\r\nServer: Apache\r\n" +
		"Last-Modified: Wed, 22 Jul 2009 19:15:56 GMT\r\nETag: \"34aa387-d-1568eb00\"\r\n" +
		"Accept-Ranges: bytes\r\nContent-Length: 51\r\nVary: Accept-Encoding\r\nContent-Type: text/plain\r\n\r\n" +
		"Hello World! My content includes a trailing CRLF.\r\n")
	chunked := []byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
	p := newH1Parser(h1TestLimits)
	run := func(buf []byte) {
		p.Begin("GET")
		for len(buf) > 0 {
			part, n, err := p.Next(buf)
			if err != nil || part.Kind == h1None {
				t.Fatalf("unexpected %v %v", part.Kind, err)
			}
			buf = buf[n:]
		}
	}
	// One string for all names and values plus the []Header.
	if a := testing.AllocsPerRun(100, func() { run(resp) }); a > 2 {
		t.Errorf("content-length response: %v allocs, want <= 2", a)
	}
	if a := testing.AllocsPerRun(100, func() { run(chunked) }); a > 2 {
		t.Errorf("chunked response: %v allocs, want <= 2", a)
	}
	// Body-only parsing does not allocate.
	p.Begin("GET")
	_, n, _ := p.Next(resp)
	body := resp[n:]
	if a := testing.AllocsPerRun(100, func() {
		p.remaining = int64(len(body))
		p.state = h1sBodyLen
		if part, _, _ := p.Next(body); part.Kind != h1Data {
			t.Fatal("no data")
		}
	}); a != 0 {
		t.Errorf("body: %v allocs, want 0", a)
	}
}

func BenchmarkH1ParserHead(b *testing.B) {
	resp := []byte("HTTP/1.1 200 OK\r\nDate: Mon, 27 Jul 2009 12:28:53 GMT\r\nServer: Apache\r\n" +
		"Content-Length: 0\r\nVary: Accept-Encoding\r\nContent-Type: text/plain\r\n\r\n")
	p := newH1Parser(h1TestLimits)
	b.ReportAllocs()
	b.SetBytes(int64(len(resp)))
	for b.Loop() {
		p.Begin("GET")
		if _, _, err := p.Next(resp); err != nil {
			b.Fatal(err)
		}
	}
}
