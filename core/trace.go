package core

import (
	"crypto/tls"
	"encoding/binary"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/gobwas/ws"
	_ "unsafe" // go:linkname
)

// Trace events: Gun's gun_event callbacks (its event_handler option) as
// EvTrace events in the owner's queue, enabled by the "trace" option (true:
// all; a list: those names). Each carries the callback's name in Reason,
// the stream in Ref (0 for connection events), a CLOCK_MONOTONIC timestamp
// in TS, the HTTP status in Status where Gun's map has one, a WebSocket
// payload in Data, and the rest of Gun's map as Headers: the details first,
// each named ":" + Gun's key (":method", ":error", ":tls_version"), then the
// HTTP header fields of the message, if any (a header name never starts
// with ':', so the two cannot be confused).
//
// They go to the owner even for a stream with another reply_to (Gun runs
// the handler in the connection process), through the same queue and read
// budget as every event. When off, each hook costs one test of a word that
// never changes (c.trace): no allocation, no call.
//
// origin_changed and transport_changed are Gun's for tunnels (tunnel.go):
// the origin (":type" connect or socks5, ":origin_scheme", ":origin_host",
// ":origin_port") and then the transport (":transport" tls, when TLS to the
// origin runs inside the tunnel) changed; protocol_changed follows with the
// origin's protocol.

// The names, in Gun's order (gun_event.erl); a name's index is its bit.
var traceNames = [...]string{
	"init",
	"domain_lookup_start", "domain_lookup_end",
	"connect_start", "connect_end",
	"tls_handshake_start", "tls_handshake_end",
	"request_start", "request_headers", "request_end",
	"push_promise_start", "push_promise_end",
	"response_start", "response_inform", "response_headers", "response_trailers", "response_end",
	"ws_upgrade",
	"ws_recv_frame_start", "ws_recv_frame_header", "ws_recv_frame_end",
	"ws_send_frame_start", "ws_send_frame_end",
	"protocol_changed", "origin_changed", "transport_changed",
	"cancel", "disconnect", "terminate",
}

type traceID uint8

const (
	trInit traceID = iota
	trLookupStart
	trLookupEnd
	trConnectStart
	trConnectEnd
	trTLSStart
	trTLSEnd
	trRequestStart
	trRequestHeaders
	trRequestEnd
	trPushStart
	trPushEnd
	trResponseStart
	trResponseInform
	trResponseHeaders
	trResponseTrailers
	trResponseEnd
	trWSUpgrade
	trWSRecvStart
	trWSRecvHeader
	trWSRecvEnd
	trWSSendStart
	trWSSendEnd
	trProtocolChanged
	trOriginChanged
	trTransportChanged
	trCancel
	trDisconnect
	trTerminate
	trCount
)

// TraceAll is the mask of "trace": true.
const TraceAll = uint64(1)<<trCount - 1

// Masks of the hooks that test several names at once.
const (
	trmConnect  = 1<<trLookupStart | 1<<trLookupEnd | 1<<trConnectStart | 1<<trConnectEnd | 1<<trTLSStart | 1<<trTLSEnd
	trmRequest  = 1<<trRequestStart | 1<<trRequestHeaders | 1<<trRequestEnd | 1<<trWSUpgrade
	trmResponse = 1<<trPushStart | 1<<trPushEnd | 1<<trResponseStart | 1<<trResponseInform | 1<<trResponseHeaders |
		1<<trResponseTrailers | 1<<trResponseEnd | 1<<trProtocolChanged
	trmWSRecv = 1<<trWSRecvStart | 1<<trWSRecvHeader | 1<<trWSRecvEnd
	trmWSSend = 1<<trWSSendStart | 1<<trWSSendEnd
)

// TraceNames lists the names the "trace" option accepts, in Gun's order.
func TraceNames() []string { return append([]string(nil), traceNames[:]...) }

// traceMask parses the list form of the option.
func traceMask(names []string) (uint64, string) {
	var m uint64
	for _, n := range names {
		i := 0
		for i < len(traceNames) && traceNames[i] != n {
			i++
		}
		if i == len(traceNames) {
			return 0, n
		}
		m |= 1 << i
	}
	return m, ""
}

//go:linkname nanotime runtime.nanotime
func nanotime() int64

// MonotonicNS is the clock of trace timestamps: CLOCK_MONOTONIC in
// nanoseconds on Linux (Go's runtime clock), comparable with the host's
// clock_gettime(CLOCK_MONOTONIC).
func MonotonicNS() int64 { return nanotime() }

func (c *Conn) on(id traceID) bool { return c.trace&(1<<id) != 0 }

// traceLocked emits one trace event. c.mu held.
func (c *Conn) traceLocked(id traceID, ref uint64, status int, data []byte, hs []Header) {
	if !c.on(id) {
		return
	}
	c.emit(&Event{Kind: EvTrace, Reason: traceNames[id], Ref: ref, Status: status, Data: data, Headers: hs, TS: nanotime()})
}

// trace is traceLocked for callers without c.mu (the dialer).
func (c *Conn) trace1(id traceID, ref uint64, hs []Header) {
	if !c.on(id) {
		return
	}
	c.mu.Lock()
	c.traceLocked(id, ref, 0, nil, hs)
	c.mu.Unlock()
}

func td(k, v string) Header { return Header{":" + k, v} }

func msOrInfinity(t time.Duration) string {
	if t <= 0 {
		return "infinity"
	}
	return strconv.FormatInt(t.Milliseconds(), 10)
}

func (c *Conn) traceInit() {
	scheme := "http"
	if c.opts.Transport == "tls" {
		scheme = "https"
	}
	hs := []Header{td("transport", c.opts.Transport), td("origin_scheme", scheme), td("origin_host", c.host),
		td("origin_port", strconv.Itoa(c.port))}
	if c.unixPath != "" {
		hs = append(hs, td("unix_path", c.unixPath))
	}
	c.mu.Lock()
	c.traceLocked(trInit, 0, 0, nil, hs)
	c.mu.Unlock()
}

func ipList(ips []string) string { return strings.Join(ips, ",") }

func (c *Conn) traceTLSEnd(tc *tls.Conn, name string, err error) {
	if err != nil {
		c.trace1(trTLSEnd, 0, []Header{td("error", reasonOf(err))})
		return
	}
	st := tc.ConnectionState()
	alpn := st.NegotiatedProtocol
	if alpn == "" {
		alpn = "undefined"
	}
	c.trace1(trTLSEnd, 0, []Header{
		td("tls_version", strings.ToLower(strings.ReplaceAll(tls.VersionName(st.Version), " ", "v"))),
		td("cipher", tls.CipherSuiteName(st.CipherSuite)),
		td("alpn", alpn),
		td("resumed", strconv.FormatBool(st.DidResume)),
		td("protocol", name),
	})
}

// traceRequest: request_start and request_headers (and request_end for a
// request whose body is whole) as the request goes to the protocol; an
// upgrade first gets ws_upgrade. c.mu held.
func (c *Conn) traceRequest(r *Request) {
	fn, method := "request", r.Method
	if r.Stream {
		fn = "headers"
	}
	if r.ws != nil {
		fn = "ws_upgrade"
		if _, h2 := c.proto.(*h2conn); h2 {
			method = "CONNECT"
		}
		c.traceLocked(trWSUpgrade, r.ref, 0, nil, nil)
	}
	if c.trace&(1<<trRequestStart|1<<trRequestHeaders) != 0 {
		scheme := "http"
		if c.opts.Transport == "tls" {
			scheme = "https"
		}
		hs := make([]Header, 0, 5+len(r.Headers))
		hs = append(hs, td("function", fn), td("method", method), td("scheme", scheme), td("authority", c.authority()), td("path", r.Path))
		hs = append(hs, r.Headers...)
		c.traceLocked(trRequestStart, r.ref, 0, nil, hs)
		c.traceLocked(trRequestHeaders, r.ref, 0, nil, hs)
	}
	if !r.Stream {
		c.traceLocked(trRequestEnd, r.ref, 0, nil, nil)
	}
}

// traceAround emits ev with the response-side trace events it implies, in
// Gun's order: the trace event of a part of a response (response_headers,
// push_promise_end, response_end...) before the owner's message, as
// gun_http does (response_end before the last gun_data: the stream is still
// the host's when its end is traced); protocol_changed after the
// gun_upgrade. c.mu held.
func (c *Conn) traceAround(ev *Event) {
	switch ev.Kind {
	case EvInform, EvResponse, EvUpgrade:
		if c.trStarted == nil {
			c.trStarted = map[uint64]bool{}
		}
		if !c.trStarted[ev.Ref] {
			c.trStarted[ev.Ref] = true
			c.traceLocked(trResponseStart, ev.Ref, 0, nil, nil)
		}
		switch ev.Kind {
		case EvInform:
			c.traceLocked(trResponseInform, ev.Ref, ev.Status, nil, ev.Headers)
			c.emitEvent(ev)
		case EvResponse:
			c.traceLocked(trResponseHeaders, ev.Ref, ev.Status, nil, ev.Headers)
			if ev.Fin {
				c.traceEnd(ev.Ref)
			}
			c.emitEvent(ev)
		case EvUpgrade:
			// Gun: a 101 over HTTP/1.1 is a response_inform; RFC 8441's 200
			// over HTTP/2 a response_headers and response_end. Then the
			// stream speaks ws.
			if _, h2 := c.proto.(*h2conn); h2 {
				c.traceLocked(trResponseHeaders, ev.Ref, 200, nil, ev.Headers)
				c.traceEnd(ev.Ref)
			} else {
				c.traceLocked(trResponseInform, ev.Ref, 101, nil, ev.Headers)
				delete(c.trStarted, ev.Ref)
			}
			c.emitEvent(ev)
			c.traceLocked(trProtocolChanged, ev.Ref, 0, nil, []Header{td("protocol", "ws")})
		}
	case EvData, EvSSE: // gun_sse's fin ends the response too
		if ev.Fin {
			c.traceEnd(ev.Ref)
		}
		c.emitEvent(ev)
	case EvTrailers:
		c.traceLocked(trResponseTrailers, ev.Ref, 0, nil, ev.Headers)
		c.traceEnd(ev.Ref)
		c.emitEvent(ev)
	case EvPush:
		c.traceLocked(trPushStart, ev.Ref, 0, nil, nil)
		if c.on(trPushEnd) {
			hs := make([]Header, 0, 3+len(ev.Headers))
			hs = append(hs, td("promised_stream_ref", strconv.FormatUint(ev.NewRef, 10)), td("method", ev.Method), td("uri", ev.URI))
			c.traceLocked(trPushEnd, ev.Ref, 0, nil, append(hs, ev.Headers...))
		}
		c.emitEvent(ev)
	case EvError:
		delete(c.trStarted, ev.Ref)
		c.emitEvent(ev)
	default:
		c.emitEvent(ev)
	}
}

func (c *Conn) traceEnd(ref uint64) {
	delete(c.trStarted, ref)
	c.traceLocked(trResponseEnd, ref, 0, nil, nil)
}

var wsOpNames = [...]string{0: "fragment", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}

func wsOpName(op byte) string {
	if int(op) < len(wsOpNames) && wsOpNames[op] != "" {
		return wsOpNames[op]
	}
	return strconv.Itoa(int(op))
}

// traceLookedUp: domain_lookup_end (Gun's lookup_info: the addresses and
// port) and connect_start.
func (c *Conn) traceLookedUp(ips []net.IP, timeout time.Duration) {
	addrs := make([]string, len(ips))
	for i, ip := range ips {
		addrs[i] = ip.String()
	}
	port := strconv.Itoa(c.port)
	c.trace1(trLookupEnd, 0, []Header{td("host", c.host), td("port", port), td("ip_addresses", ipList(addrs))})
	c.trace1(trConnectStart, 0, []Header{td("ip_addresses", ipList(addrs)), td("port", port), td("timeout", msOrInfinity(timeout))})
}

// traceConnected: connect_end, with the socket's addresses, and the
// protocol when no TLS handshake follows (Gun gives it in
// tls_handshake_end then), or the error.
func (c *Conn) traceConnected(nc net.Conn, err error) {
	if err != nil {
		c.trace1(trConnectEnd, 0, []Header{td("error", reasonOf(err))})
		return
	}
	hs := []Header{td("local", nc.LocalAddr().String()), td("peer", nc.RemoteAddr().String())}
	if c.opts.Transport != "tls" {
		hs = append(hs, td("protocol", c.opts.Protocols[0]))
	}
	c.trace1(trConnectEnd, 0, hs)
}

func (p *wsProto) extensions() string {
	if p.deflate {
		return "permessage-deflate"
	}
	return ""
}

func (p *wsProto) fragState() string {
	if p.msgOp != 0 { // a data message is in progress
		return "nofin " + wsOpName(p.msgOp)
	}
	return "undefined"
}

// traceRecvHeader: ws_recv_frame_start and ws_recv_frame_header, as a
// frame header has been read. c.mu held.
func (p *wsProto) traceRecvHeader(h ws.Header) {
	p.flen = h.Length
	c, fs, ext := p.c, p.fragState(), p.extensions()
	c.traceLocked(trWSRecvStart, p.ref, 0, nil, []Header{td("frag_state", fs), td("extensions", ext)})
	if c.on(trWSRecvHeader) {
		mask := "undefined"
		if h.Masked {
			mask = strconv.FormatUint(uint64(binary.BigEndian.Uint32(h.Mask[:])), 10)
		}
		c.traceLocked(trWSRecvHeader, p.ref, 0, nil, []Header{td("frag_state", fs), td("extensions", ext),
			td("type", wsOpName(byte(h.OpCode))), td("rsv", strconv.FormatUint(uint64(h.Rsv>>2&1), 2)+
				strconv.FormatUint(uint64(h.Rsv>>1&1), 2)+strconv.FormatUint(uint64(h.Rsv&1), 2)),
			td("len", strconv.FormatInt(h.Length, 10)), td("mask_key", mask)})
	}
}

// traceRecvEnd: ws_recv_frame_end, with the frame's payload (as received:
// still compressed when permessage-deflate compressed it) and the close
// code of a close frame. c.mu held.
func (p *wsProto) traceRecvEnd() {
	var payload []byte
	code := "undefined"
	if p.fop.IsControl() {
		payload = append([]byte{}, p.ctl[:p.ctlN]...)
		if p.fop == ws.OpClose && len(payload) >= 2 {
			code = strconv.Itoa(int(binary.BigEndian.Uint16(payload)))
			payload = payload[2:]
		}
	} else if n := int(min(p.flen, int64(len(p.msg)))); n >= 0 {
		payload = append([]byte{}, p.msg[len(p.msg)-n:]...)
	}
	fs := "undefined" // Gun's: a whole message in one frame, or a control frame
	if !p.fop.IsControl() && (p.fop == ws.OpContinuation || !p.ffin) {
		fs = "nofin " + wsOpName(p.msgOp)
		if p.ffin {
			fs = "fin " + wsOpName(p.msgOp)
		}
	}
	p.c.traceLocked(trWSRecvEnd, p.ref, 0, payload, []Header{td("frag_state", fs),
		td("extensions", p.extensions()), td("close_code", code)})
}
