package core

// Content handlers (Gun's content_handlers: gun_content_handler, gun_data_h,
// gun_sse_h). A response body goes to the first handler of the list that
// takes it: gun_sse_h takes a text/event-stream body and turns it into
// EvSSE events; gun_data_h takes any body and gives EvData events (the
// default list is [gun_data_h], Gun's). Handlers are built in: Gun's
// handler modules are Erlang code, so a name other than these two is
// refused (the Erlang binding may run its own on the Erlang side).
//
// An EvSSE event (GM_EV_SSE) carries, as Gun's gun_sse message does, the
// fields of Gun's event map as Headers, and the data in Data:
//   - an event: headers "last_event_id" (the last event ID buffer, which
//     persists across events; "" when none) and "event_type" (the event
//     field, "message" by default), and "retry" (ASCII digits) when the
//     block set one; Data is the data lines joined with "\n".
//   - an id without data (Gun's lone last_event_id event): the header
//     "last_event_id" alone (and "retry" if set); no "event_type".
//   - a retry without data or id: the header "retry" alone (Gun sends no
//     message; gunmetal does so the host can honour the reconnection time).
//   - Fin: the body ended (Gun's {gun_sse, ConnPid, StreamRef, fin}): no
//     headers, no data.
//
// Parsing follows the WHATWG rules (HTML, 9.2.6 Interpreting an event
// stream): a UTF-8 byte order mark at the start is skipped (cowlib looks
// for FE FF, which is not UTF-8's); lines end at CRLF, LF or CR, split
// anywhere across reads; a line starting with ':' is a comment; "field:
// value" loses one space after the colon; a line without a colon is a field
// with an empty value; an id containing NUL is ignored; retry is taken only
// when it is all ASCII digits; unknown fields are ignored; a blank line
// dispatches; what is pending when the body ends is discarded. Invalid UTF-8
// becomes U+FFFD. An event larger than max_event_size (the bytes of its
// lines since the last blank line, line ends included, comments not
// counted once whole; default 10240 as in Gun) resets the stream with ERROR
// "limit_reached: ..." naming the option. Gun's "infinity" is refused: the
// bound is what keeps a server from growing our memory without limit.
//
// Where gunmetal differs from Gun: a body that no handler takes (a list
// without gun_data_h and a body that is not an event stream) is dropped as
// in Gun, but its end still gives one empty DATA event with fin, so the
// stream ends for the host (Gun sends nothing and an awaiting caller times
// out).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"
)

// ContentHandlers is a content_handlers list reduced to what it does (a
// comparable value, as the other options are): gun_data_h takes every body,
// so the first of the two names decides, and what follows gun_data_h is
// never reached.
type ContentHandlers struct {
	Set          bool // given; a request's unset one means the connection's
	SSE          bool // gun_sse_h comes before gun_data_h: it takes event streams
	MaxEventSize int  // its max_event_size, bytes
	Drop         bool // no gun_data_h after it: other bodies are dropped (as in Gun)
}

const (
	chData = "gun_data_h"
	chSSE  = "gun_sse_h"

	defaultMaxEventSize = 10240 // gun_sse_h's
)

// ParseContentHandlers parses a content_handlers JSON list, as for a
// request's own (gm_req_opts.content_handlers_json).
func ParseContentHandlers(raw []byte) (ContentHandlers, error) {
	return optField{proto: "req_opts", key: "content_handlers", raw: raw}.contentHandlers()
}

// contentHandlers accepts Gun's list: names ("gun_data_h", "gun_sse_h",
// or "data", "sse") and [name, {options}] pairs.
func (f optField) contentHandlers() (ContentHandlers, error) {
	const what = `must be a non-empty list of "gun_sse_h", "gun_data_h" or [name, {options}]`
	items, err := f.array()
	if err != nil || len(items) == 0 {
		return ContentHandlers{}, f.fail(what)
	}
	out := ContentHandlers{Set: true}
	decided := false
	for _, it := range items {
		name, opts := it, json.RawMessage(nil)
		if optKind(it) == '[' {
			var pair []json.RawMessage
			if json.Unmarshal(it, &pair) != nil || len(pair) != 2 {
				return ContentHandlers{}, f.fail(what)
			}
			name, opts = pair[0], pair[1]
		}
		var n string
		if optKind(name) != '"' || json.Unmarshal(name, &n) != nil {
			return ContentHandlers{}, f.fail(what)
		}
		switch n {
		case "sse":
			n = chSSE
		case "data":
			n = chData
		case chSSE, chData:
		default:
			return ContentHandlers{}, f.fail(fmt.Sprintf("handler %q: gunmetal has only the built-in gun_sse_h and gun_data_h (handler modules are Erlang code)", n))
		}
		max := defaultMaxEventSize
		if opts != nil {
			obj, err := optParseObject(f.proto, f.key, opts)
			if err != nil {
				return ContentHandlers{}, err
			}
			for _, k := range obj.keys {
				g := optField{proto: optJoin(f.proto, f.key), key: n + "." + k, raw: obj.vals[k]}
				if n != chSSE || k != "max_event_size" {
					return ContentHandlers{}, g.fail("unknown option")
				}
				v, err := g.integer(1, math.MaxInt32)
				if err != nil {
					return ContentHandlers{}, g.fail("must be a positive integer (bytes); \"infinity\" is refused: the bound keeps a server from growing memory without limit")
				}
				max = int(v)
			}
		}
		switch {
		case decided:
		case n == chData:
			decided = true
		case !out.SSE:
			out.SSE, out.MaxEventSize = true, max
		}
	}
	out.Drop = !decided
	if !out.SSE {
		out = ContentHandlers{Set: true} // gun_data_h first: plain DATA
	}
	return out, nil
}

// bodySink is the handler that took a response body; nil means gun_data_h
// (plain DATA events, the fast path).
type bodySink struct {
	sse  *sseParser // nil: no handler took the body (dropped)
	ref  uint64
	dead bool // the event size limit was hit: the rest is dropped

	hold uint32 // HTTP/2: its stream's hold, which its events carry (http2_hold.go)
}

// newBodySink runs Gun's gun_content_handler:init for a response head;
// nil when gun_data_h takes the body.
func newBodySink(hs ContentHandlers, ref uint64, headers []Header) *bodySink {
	switch {
	case !hs.SSE:
		return nil
	case isEventStream(headers):
		return &bodySink{ref: ref, sse: &sseParser{max: hs.MaxEventSize, bom: true}}
	case hs.Drop:
		return &bodySink{ref: ref}
	}
	return nil
}

// isEventStream: content-type is text/event-stream, any parameters,
// case-insensitive (gun_sse_h via cow_http_hd:parse_content_type).
func isEventStream(headers []Header) bool {
	for _, h := range headers {
		if h.Name == "content-type" {
			t, _, _ := strings.Cut(h.Value, ";")
			return strings.EqualFold(strings.TrimSpace(t), "text/event-stream")
		}
	}
	return false
}

// feed hands body bytes to the sink and emits its events (c.mu held).
// events counts the events emitted (Gun's flow), held the bytes of their
// Data (what the host holds until it takes them: HTTP/2's window). A
// non-empty errMsg is a limit breach: the caller resets the stream after
// the ERROR event feed emitted.
func (b *bodySink) feed(c *Conn, data []byte, fin bool) (events, held int, failed bool) {
	if b.dead {
		return 0, 0, false
	}
	if b.sse == nil {
		if fin {
			c.emit(&Event{Kind: EvData, Ref: b.ref, Fin: true})
			return 1, 0, false
		}
		return 0, 0, false
	}
	emit := func(ev *Event) {
		ev.Kind, ev.Ref, ev.hold = EvSSE, b.ref, b.hold
		c.emit(ev)
		events++
		held += len(ev.Data)
	}
	if err := b.sse.parse(data, emit); err != nil {
		b.dead = true
		c.emit(&Event{Kind: EvError, Ref: b.ref, Reason: err.Error()})
		return events, held, true
	}
	if fin {
		emit(&Event{Fin: true})
	}
	return events, held, false
}

// sseParser is the WHATWG event stream interpreter, fed in pieces.
type sseParser struct {
	max    int
	bom    bool // the start of the stream: a BOM may come
	skipLF bool // the last line ended with CR: a LF first is its CRLF's
	line   []byte
	lastID string
	idSet  bool // an id field in this block (Gun's last_event_id_set)
	etype  string
	data   []byte
	hasD   bool // a data field in this block
	retry  string
	size   int // bytes of the block's field lines so far
}

func (p *sseParser) parse(in []byte, emit func(*Event)) error {
	if p.bom {
		// The three bytes may come split: hold them until decided.
		p.line = append(p.line, in...)
		bom := []byte{0xEF, 0xBB, 0xBF}
		if len(p.line) < 3 && bytes.HasPrefix(bom, p.line) {
			return nil
		}
		p.bom = false
		in = p.line
		if bytes.HasPrefix(in, bom) {
			in = in[3:]
		}
		p.line = nil
	}
	for len(in) > 0 {
		if p.skipLF {
			p.skipLF = false
			if in[0] == '\n' {
				in = in[1:]
				continue
			}
		}
		i := bytes.IndexAny(in, "\r\n")
		if i < 0 {
			p.line = append(p.line, in...)
			break
		}
		var line []byte
		if len(p.line) > 0 {
			p.line = append(p.line, in[:i]...)
			line = p.line
		} else {
			line = in[:i]
		}
		if p.size+len(line) > p.max {
			return p.tooLarge()
		}
		p.skipLF = in[i] == '\r'
		in = in[i+1:]
		if len(line) > 0 && line[0] != ':' {
			p.size += len(line) + 1 // comments do not count once whole
		}
		p.field(line, emit)
		p.line = p.line[:0]
		if p.size > p.max {
			return p.tooLarge()
		}
	}
	if p.size+len(p.line) > p.max {
		return p.tooLarge()
	}
	return nil
}

func (p *sseParser) tooLarge() error {
	return fmt.Errorf("limit_reached: a Server-Sent Events event is larger than max_event_size (%d bytes; content_handlers gun_sse_h option)", p.max)
}

func (p *sseParser) field(line []byte, emit func(*Event)) {
	if len(line) == 0 {
		p.dispatch(emit)
		return
	}
	if line[0] == ':' {
		return // a comment
	}
	name, value := line, []byte(nil)
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		name, value = line[:i], line[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	switch string(name) {
	case "event":
		p.etype = string(value)
	case "data":
		p.data = append(p.data, value...)
		p.data = append(p.data, '\n')
		p.hasD = true
	case "id":
		if bytes.IndexByte(value, 0) < 0 {
			p.lastID = string(value)
			p.idSet = true
		}
	case "retry":
		if len(value) > 0 && allDigits(value) {
			p.retry = string(value)
		}
	}
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// dispatch is the blank line: an event when there is data (WHATWG), an id
// alone (Gun's lone last_event_id event) or a retry alone.
func (p *sseParser) dispatch(emit func(*Event)) {
	var hs []Header
	ev := &Event{}
	switch {
	case p.hasD:
		et := p.etype
		if et == "" {
			et = "message"
		}
		hs = []Header{{"last_event_id", validUTF8(p.lastID)}, {"event_type", validUTF8(et)}}
		d := p.data[:len(p.data)-1] // the last LF goes
		if !utf8.Valid(d) {
			d = []byte(validUTF8(string(d)))
		} else {
			d = append([]byte{}, d...) // non-nil: an event with empty data has data
		}
		ev.Data = d
	case p.idSet:
		hs = []Header{{"last_event_id", validUTF8(p.lastID)}}
	}
	if p.retry != "" {
		hs = append(hs, Header{"retry", p.retry})
	}
	if hs != nil {
		ev.Headers = hs
		emit(ev)
	}
	p.etype, p.data, p.hasD, p.idSet, p.retry, p.size = "", p.data[:0], false, false, "", 0
}

// validUTF8 replaces each invalid byte with U+FFFD (the WHATWG stream is
// decoded as UTF-8 with replacement).
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteString("\uFFFD")
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}
