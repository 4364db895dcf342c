package core

import (
	"fmt"
	"strings"
)

// HTTP/1.1 Upgrade to raw, as Gun 2 does it (gun_http:handle_inform): a
// request that carries an upgrade header (other than gun:ws_upgrade's)
// answered by 101 Switching Protocols with an upgrade header turns the
// connection into the raw protocol: an UPGRADE event on the request's ref
// ({gun_upgrade, ConnPid, StreamRef, Protocols, Headers}: Protocol holds
// the 101's upgrade tokens, lower case, joined by ", "), then the byte
// stream is ref 0 as for protocols ["raw"] (Data on ref 0, DATA events on
// ref 0, raw_opts apply), its events going to the request's reply_to as
// Gun's gun_raw is started with the stream's ReplyTo. The bytes after the
// 101 are the raw stream's first (Gun drops them: its @todo).
//
// Stricter than Gun where Gun has a @todo: a 101 to a request that asked
// for no upgrade, or one without an upgrade header, is a protocol error
// (Gun switches anyway, or takes the latter for an informational
// response). As for WebSocket upgrades, requests made after the upgrade
// request wait for its answer and fail with badstate when it is accepted.

// switchToRaw: the 101 to s, which asked for an upgrade.
func (h *http1) switchToRaw(s *h1Stream, hs []Header, buf []byte, off int) (int, error) {
	v, _ := hasHeader(hs, "upgrade")
	var protos []string
	for _, t := range strings.Split(v, ",") {
		if t = strings.ToLower(strings.TrimSpace(t)); t != "" {
			protos = append(protos, t)
		}
	}
	if len(protos) == 0 {
		return off, fmt.Errorf("protocol_error: 101 switching protocols without an upgrade header naming the protocol")
	}
	h.streams[0] = nil
	h.streams = h.streams[1:]
	h.begun, h.upgrading = false, nil
	c := h.c
	c.emit(&Event{Kind: EvUpgrade, Ref: s.ref, Protocol: strings.Join(protos, ", "), Headers: hs})
	const why = "badstate: the connection was upgraded to raw."
	for _, x := range h.streams {
		c.emit(&Event{Kind: EvError, Ref: x.ref, Reason: why})
	}
	for _, r := range h.waiting {
		c.emit(&Event{Kind: EvError, Ref: r.ref, Reason: why})
		if r.ws != nil {
			r.ws.fail()
		}
	}
	h.streams, h.waiting, h.out = nil, nil, nil
	r := newRaw(c).(*rawProto)
	if q, ok := c.replyTo[s.ref]; ok {
		r.replyTo = q
	}
	c.proto, c.protoNm = r, r.name()
	if off == len(buf) {
		return off, nil // nothing after the 101 yet: no empty DATA
	}
	n, err := r.handle(buf[off:])
	return off + n, err
}

// rawReplyTo is the queue of a connection-wide (ref 0) event ev when the
// connection is raw after an upgrade with reply_to: its DATA and NOTIFY go
// there; nil otherwise (the owner). Called with c.mu held.
func (c *Conn) rawReplyTo(ev *Event) *Queue {
	if r, ok := c.proto.(*rawProto); ok && r.replyTo != nil && (ev.Kind == EvData || ev.Kind == EvNotify) {
		return r.replyTo
	}
	return nil
}
