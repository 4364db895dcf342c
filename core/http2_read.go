package core

// HTTP/2: turning the server's frames into events (see http2.go).

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

var h2HTTP1 = []byte("HTTP/1")

// handle takes whole frames off buf; a partial frame stays for the next
// call.
func (h *h2conn) handle(buf []byte) (int, error) {
	if h.fatal != nil {
		return 0, h.fatal
	}
	off := 0
	for h.fatal == nil {
		rest := buf[off:]
		if !h.gotPreface && len(rest) > 0 {
			n := min(len(rest), len(h2HTTP1))
			if bytes.Equal(rest[:n], h2HTTP1[:n]) {
				if n == len(h2HTTP1) {
					return off, h.connError(http2.ErrCodeProtocol, "Invalid connection preface received. Appears to be an HTTP/1 response? (RFC7540 3.5)")
				}
				break // wait for more to tell
			}
		}
		if len(rest) < 9 {
			break
		}
		length := uint32(rest[0])<<16 | uint32(rest[1])<<8 | uint32(rest[2])
		if !h.gotPreface && (http2.FrameType(rest[3]) != http2.FrameSettings || http2.Flags(rest[4]).Has(http2.FlagSettingsAck)) {
			return off, h.connError(http2.ErrCodeProtocol, "Invalid connection preface received. (RFC7540 3.5)")
		}
		if length > h.o.MaxFrameSizeReceived {
			return off, h.connError(http2.ErrCodeFrameSize, fmt.Sprintf("Frame of %d bytes is larger than max_frame_size_received (%d). (RFC7540 4.2)", length, h.o.MaxFrameSizeReceived))
		}
		if len(rest) < 9+int(length) {
			break
		}
		ft, flags := http2.FrameType(rest[3]), http2.Flags(rest[4])
		id := binary.BigEndian.Uint32(rest[5:9]) & h2MaxStreamID
		payload := rest[9 : 9+length]
		whole := rest[:9+length]
		off += 9 + int(length)
		if h.hdrOn && (ft != http2.FrameContinuation || id != h.hdrStream) {
			return off, h.connError(http2.ErrCodeProtocol, fmt.Sprintf("Got %v for stream %d; expected CONTINUATION for stream %d. (RFC7540 6.10)", ft, id, h.hdrStream))
		}
		var err error
		switch ft {
		// The frames of every response are parsed here, without copies;
		// the Framer reads the others.
		case http2.FrameData:
			err = h.dataFrame(id, flags, payload)
		case http2.FrameHeaders:
			err = h.headersFrame(id, flags, payload)
		case http2.FramePushPromise:
			err = h.pushPromiseFrame(id, flags, payload)
		case http2.FrameContinuation:
			err = h.continuation(id, flags, payload)
		default:
			h.src.b = whole
			f, rerr := h.framer().ReadFrame()
			if rerr != nil {
				err = h.readError(rerr, h2FrameRule(ft, flags, id, payload))
			} else {
				err = h.frame(f)
			}
		}
		if err != nil {
			return off, err
		}
	}
	if h.fatal != nil {
		return off, h.fatal
	}
	if len(h.c.wbuf) > h2OutputLimit {
		return off, h.connError(http2.ErrCodeEnhanceYourCalm, "The server sends frames that need answers faster than it reads the answers.")
	}
	return off, nil
}

// readError handles what the Framer refused: a stream error resets that
// stream, anything else ends the connection. why names the frame and the
// rule it broke (h2FrameRule).
func (h *h2conn) readError(err error, why string) error {
	var se http2.StreamError
	var ce http2.ConnectionError
	switch {
	case errors.As(err, &se):
		if s := h.streams[se.StreamID]; s != nil {
			h.streamError(s, se.Code, why)
		} else {
			h.framer().WriteRSTStream(se.StreamID, se.Code)
		}
		return nil
	case errors.As(err, &ce):
		return h.connError(http2.ErrCode(ce), why)
	}
	return h.connError(http2.ErrCodeProtocol, why)
}

// h2FrameRule says which rule of RFC 9113 a frame the Framer refused
// breaks, so that an error names the frame and the rule, not just
// "malformed frame". It checks what the Framer checks for the frames it
// reads for us (the control frames).
func h2FrameRule(ft http2.FrameType, flags http2.Flags, id uint32, p []byte) string {
	n := len(p)
	switch ft {
	case http2.FrameSettings:
		switch {
		case flags.Has(http2.FlagSettingsAck) && n > 0:
			return fmt.Sprintf("SETTINGS frame with the ACK flag and a %d-byte payload; an acknowledgement must be empty. (RFC9113 6.5)", n)
		case id != 0:
			return fmt.Sprintf("SETTINGS frame on stream %d; SETTINGS apply to the connection, stream 0. (RFC9113 6.5)", id)
		case n%6 != 0:
			return fmt.Sprintf("SETTINGS frame of %d bytes; its length must be a multiple of 6. (RFC9113 6.5)", n)
		}
		for i := 0; i+6 <= n; i += 6 {
			if http2.SettingID(binary.BigEndian.Uint16(p[i:])) == http2.SettingInitialWindowSize {
				if v := binary.BigEndian.Uint32(p[i+2:]); v > h2MaxWindow {
					return fmt.Sprintf("SETTINGS_INITIAL_WINDOW_SIZE of %d is above the maximum window 2^31-1. (RFC9113 6.5.2)", v)
				}
			}
		}
	case http2.FramePing:
		switch {
		case n != 8:
			return fmt.Sprintf("PING frame of %d bytes; a PING payload is exactly 8 bytes. (RFC9113 6.7)", n)
		case id != 0:
			return fmt.Sprintf("PING frame on stream %d; PING applies to the connection, stream 0. (RFC9113 6.7)", id)
		}
	case http2.FrameGoAway:
		switch {
		case id != 0:
			return fmt.Sprintf("GOAWAY frame on stream %d; GOAWAY applies to the connection, stream 0. (RFC9113 6.8)", id)
		case n < 8:
			return fmt.Sprintf("GOAWAY frame of %d bytes; it needs at least 8 (last-stream-id and error code). (RFC9113 6.8)", n)
		}
	case http2.FrameWindowUpdate:
		switch {
		case n != 4:
			return fmt.Sprintf("WINDOW_UPDATE frame of %d bytes; its payload is exactly 4 bytes. (RFC9113 6.9)", n)
		case binary.BigEndian.Uint32(p)&h2MaxWindow == 0:
			return fmt.Sprintf("WINDOW_UPDATE frame with an increment of 0 on stream %d. (RFC9113 6.9)", id)
		}
	case http2.FrameRSTStream:
		switch {
		case n != 4:
			return fmt.Sprintf("RST_STREAM frame of %d bytes; its payload is exactly 4 bytes. (RFC9113 6.4)", n)
		case id == 0:
			return "RST_STREAM frame on stream 0; it must name a stream. (RFC9113 6.4)"
		}
	case http2.FramePriority:
		switch {
		case id == 0:
			return "PRIORITY frame on stream 0; it must name a stream. (RFC9113 6.3)"
		case n != 5:
			return fmt.Sprintf("PRIORITY frame of %d bytes; its payload is exactly 5 bytes. (RFC9113 6.3)", n)
		}
	}
	return fmt.Sprintf("%v frame (flags 0x%x, stream %d, %d bytes) could not be parsed.", ft, uint8(flags), id, n)
}

func (h *h2conn) frame(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.SettingsFrame:
		return h.settingsFrame(f)
	case *http2.PingFrame:
		return h.pingFrame(f)
	case *http2.GoAwayFrame:
		return h.goawayFrame(f)
	case *http2.RSTStreamFrame:
		return h.rstFrame(f)
	case *http2.WindowUpdateFrame:
		return h.windowUpdateFrame(f)
	}
	return nil // PRIORITY, PRIORITY_UPDATE, unknown extensions: ignored
}

// unpad strips a PADDED frame's pad length and padding.
func (h *h2conn) unpad(ft http2.FrameType, flags http2.Flags, p []byte) ([]byte, error) {
	if !flags.Has(http2.FlagDataPadded) { // the same bit for HEADERS and PUSH_PROMISE
		return p, nil
	}
	if len(p) == 0 || int(p[0]) > len(p)-1 {
		return nil, h.connError(http2.ErrCodeProtocol, fmt.Sprintf("%v frame with a padding longer than its payload. (RFC7540 6.1)", ft))
	}
	return p[1 : len(p)-int(p[0])], nil
}

// idleStream: a stream id the server may not use yet.
func (h *h2conn) idleStream(id uint32) bool {
	if id%2 == 1 {
		return id >= h.nextID
	}
	return id > h.maxPromised
}

// ---- DATA ----

func (h *h2conn) dataFrame(id uint32, flags http2.Flags, payload []byte) error {
	if id == 0 {
		return h.connError(http2.ErrCodeProtocol, "DATA frame with stream ID 0. (RFC7540 6.1)")
	}
	flowLen := int64(len(payload))
	data, err := h.unpad(http2.FrameData, flags, payload)
	if err != nil {
		return err
	}
	h.connRecv -= flowLen
	if h.connRecv < 0 {
		return h.connError(http2.ErrCodeFlowControl, "DATA frame overflowed the connection flow-control window. (RFC7540 6.9.1)")
	}
	s := h.streams[id]
	if s == nil {
		if h.idleStream(id) {
			return h.connError(http2.ErrCodeProtocol, "DATA frame received for an idle stream. (RFC7540 5.1)")
		}
		if !h.lingering(id) {
			h.framer().WriteRSTStream(id, http2.ErrCodeStreamClosed)
			h.lingerAdd(id)
		}
		h.connEnsure() // cancelled streams' data still counts, and is acknowledged
		return nil
	}
	free := flowLen - int64(len(data)) // padding: never reaches the host
	s.recvWin -= flowLen
	switch {
	case s.remoteFin:
		h.streamError(s, http2.ErrCodeStreamClosed, "DATA frame received for a half-closed (remote) stream. (RFC7540 5.1)")
	case s.recvWin < 0:
		h.streamError(s, http2.ErrCodeFlowControl, "DATA frame overflowed the stream flow-control window. (RFC7540 6.9.1)")
	case !s.gotFinal:
		h.streamError(s, http2.ErrCodeProtocol, "DATA frame received before the response headers. (RFC7540 8.1)")
	default:
		if s.pipe != nil { // a tunnel's or a WebSocket's bytes (pipe_h2.go)
			h.pipeData(s, data, flags.Has(http2.FlagDataEndStream), free)
			return nil
		}
		s.rcvd += int64(len(data))
		fin := flags.Has(http2.FlagDataEndStream)
		if s.clen >= 0 && (s.rcvd > s.clen || fin && s.rcvd != s.clen) {
			free += int64(len(data))
			h.streamError(s, http2.ErrCodeProtocol, fmt.Sprintf("The response body (%d bytes so far) does not match its content-length (%d). (RFC7540 8.1.2.6)", s.rcvd, s.clen))
			break
		}
		if s.sink != nil {
			// A content handler's events hold only their data: the rest
			// (field names, comments, a dropped body) is free at once.
			n, held, failed := s.sink.feed(h.c, data, fin)
			s.held += held
			h.connHeld += held
			free += int64(max(len(data)-held, 0)) // held may be earlier frames' bytes: consumed() ensures then
			if s.flow > 0 {
				s.flow = max(s.flow-n, 0)
			}
			if failed { // ERROR given: the rest of the stream is not wanted
				h.reset(s, http2.ErrCodeCancel)
				h.connEnsure()
				return nil
			}
		} else if len(data) > 0 || fin {
			ev := &Event{Kind: EvData, Ref: s.ref, Fin: fin}
			ev.Data, ev.pooled = dataCopy(data)
			if len(data) > 0 {
				ev.hold = h.holdOf(s)
			}
			h.c.emit(ev)
			if len(data) > 0 {
				s.held += len(data)
				h.connHeld += len(data)
				if s.flow > 0 {
					s.flow--
				}
			}
		}
		if fin {
			s.remoteFin = true
			h.maybeClose(s)
		} else if free > 0 {
			h.streamEnsure(s)
		}
		if free > 0 {
			h.connEnsure()
		}
		return nil
	}
	// The stream was reset: none of the frame reaches the host.
	h.connEnsure()
	return nil
}

// ---- header blocks ----

func (h *h2conn) headersFrame(id uint32, flags http2.Flags, p []byte) error {
	if id == 0 {
		return h.connError(http2.ErrCodeProtocol, "HEADERS frame with stream ID 0. (RFC7540 6.2)")
	}
	p, err := h.unpad(http2.FrameHeaders, flags, p)
	if err != nil {
		return err
	}
	if flags.Has(http2.FlagHeadersPriority) {
		if len(p) < 5 {
			return h.connError(http2.ErrCodeFrameSize, "HEADERS frame too short for its priority fields. (RFC7540 6.2)")
		}
		p = p[5:] // priorities are ignored
	}
	return h.startBlock(id, 0, flags.Has(http2.FlagHeadersEndStream), flags.Has(http2.FlagHeadersEndHeaders), p)
}

func (h *h2conn) pushPromiseFrame(id uint32, flags http2.Flags, p []byte) error {
	if id == 0 {
		return h.connError(http2.ErrCodeProtocol, "PUSH_PROMISE frame with stream ID 0. (RFC7540 6.6)")
	}
	p, err := h.unpad(http2.FramePushPromise, flags, p)
	if err != nil {
		return err
	}
	if len(p) < 4 {
		return h.connError(http2.ErrCodeFrameSize, "PUSH_PROMISE frame too short for its promised stream ID. (RFC7540 6.6)")
	}
	promised := binary.BigEndian.Uint32(p) & h2MaxStreamID
	return h.startBlock(id, promised, false, flags.Has(http2.FlagPushPromiseEndHeaders), p[4:])
}

func (h *h2conn) startBlock(id, promised uint32, endStream, endHeaders bool, frag []byte) error {
	if promised != 0 {
		if !h.peerPushAllowed() {
			return h.connError(http2.ErrCodeProtocol, "PUSH_PROMISE frame received after push was disabled. (RFC7540 6.6)")
		}
		if promised == 0 || promised%2 != 0 || promised <= h.maxPromised {
			return h.connError(http2.ErrCodeProtocol, fmt.Sprintf("PUSH_PROMISE promised stream %d, not an unused even stream id. (RFC7540 5.1.1)", promised))
		}
		h.maxPromised = promised
	}
	h.hdrStream, h.hdrPromised, h.hdrEnd, h.hdrFrames = id, promised, endStream, 0
	if endHeaders {
		return h.endBlock(frag)
	}
	h.hdrOn = true
	h.hdrBlock = append(h.hdrBlock[:0], frag...)
	return h.checkBlockSize()
}

func (h *h2conn) peerPushAllowed() bool { return true } // we never disable push

func (h *h2conn) checkBlockSize() error {
	if len(h.hdrBlock) > h.o.MaxFragmentedHeaderBlockSize {
		return h.connError(http2.ErrCodeEnhanceYourCalm, fmt.Sprintf("Header block of more than %d bytes (max_fragmented_header_block_size). (RFC7540 4.3)", h.o.MaxFragmentedHeaderBlockSize))
	}
	if h.hdrFrames > h2MaxContinuation {
		return h.connError(http2.ErrCodeEnhanceYourCalm, fmt.Sprintf("Header block in more than %d CONTINUATION frames.", h2MaxContinuation))
	}
	return nil
}

func (h *h2conn) continuation(id uint32, flags http2.Flags, frag []byte) error {
	if !h.hdrOn { // handle checked the stream of those that follow a block
		return h.connError(http2.ErrCodeProtocol, fmt.Sprintf("Unexpected CONTINUATION frame for stream %d. (RFC7540 6.10)", id))
	}
	h.hdrFrames++
	h.hdrBlock = append(h.hdrBlock, frag...)
	if err := h.checkBlockSize(); err != nil {
		return err
	}
	if !flags.Has(http2.FlagContinuationEndHeaders) {
		return nil
	}
	h.hdrOn = false
	err := h.endBlock(h.hdrBlock)
	if cap(h.hdrBlock) > 64<<10 {
		h.hdrBlock = nil
	}
	return err
}

// onField is the hpack decoder's callback.
func (h *h2conn) onField(f hpack.HeaderField) {
	h.dSize += len(f.Name) + len(f.Value) + 32
	if h.dSize > h.dLimit {
		if h.dBad == "" {
			h.dBad = fmt.Sprintf("The header list is larger than %d bytes.", h.dLimit)
		}
		h.dec.SetEmitEnabled(false)
		return
	}
	if strings.HasPrefix(f.Name, ":") {
		if h.dRegular && h.dBad == "" {
			h.dBad = "Pseudo-header field after a regular header field. (RFC7540 8.1.2.1)"
		}
		var dst *string
		switch f.Name {
		case ":status":
			dst = &h.dPseudo.status
		case ":method":
			dst = &h.dPseudo.method
		case ":scheme":
			dst = &h.dPseudo.scheme
		case ":authority":
			dst = &h.dPseudo.authority
		case ":path":
			dst = &h.dPseudo.path
		}
		switch {
		case dst == nil:
			if h.dBad == "" {
				h.dBad = fmt.Sprintf("Unknown pseudo-header field %q. (RFC7540 8.1.2.1)", f.Name)
			}
		case *dst != "":
			if h.dBad == "" {
				h.dBad = fmt.Sprintf("Duplicate pseudo-header field %q. (RFC7540 8.1.2.1)", f.Name)
			}
		default:
			*dst = f.Value
			h.dPseudo.n++
		}
		return
	}
	h.dRegular = true
	if h.dBad == "" {
		for i := 0; i < len(f.Name); i++ {
			if b := f.Name[i]; b >= 'A' && b <= 'Z' {
				h.dBad = fmt.Sprintf("Header name %q is not lower-case. (RFC7540 8.1.2)", f.Name)
				break
			}
		}
		switch f.Name { // lower-case here, or already refused above
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
			h.dBad = fmt.Sprintf("Connection-specific header %q. (RFC7540 8.1.2.2)", f.Name)
		}
	}
	if max := h.o.MaxHeaders; max > 0 && len(h.dFields) >= max {
		if h.dBad == "" {
			h.dBad = fmt.Sprintf("More than %d header fields (max_headers).", max)
		}
		return
	}
	h.dFields = append(h.dFields, Header{Name: f.Name, Value: f.Value})
}

// fields is a copy of the decoded regular fields for an event to own (the
// decoding buffer is reused).
func (h *h2conn) fields() []Header {
	if len(h.dFields) == 0 {
		return nil
	}
	hs := make([]Header, len(h.dFields))
	copy(hs, h.dFields)
	if cap(h.dFields) > 1024 {
		h.dFields = nil
	}
	return hs
}

// decode runs a complete header block through hpack. Its error is a
// connection error: the compression context is lost.
func (h *h2conn) decode(block []byte) error {
	h.dFields, h.dPseudo, h.dSize, h.dBad, h.dRegular = h.dFields[:0], h2pseudo{}, 0, "", false
	h.dec.SetEmitEnabled(true)
	if _, err := h.dec.Write(block); err != nil {
		return h.connError(http2.ErrCodeCompression, "Error while trying to decode HPACK-encoded header block: "+err.Error()+". (RFC7540 4.3)")
	}
	if err := h.dec.Close(); err != nil {
		return h.connError(http2.ErrCodeCompression, "Error while trying to decode HPACK-encoded header block: "+err.Error()+". (RFC7540 4.3)")
	}
	return nil
}

func (h *h2conn) endBlock(block []byte) error {
	if err := h.decode(block); err != nil {
		return err
	}
	if h.hdrPromised != 0 {
		return h.pushPromise(h.hdrStream, h.hdrPromised)
	}
	return h.headers(h.hdrStream, h.hdrEnd)
}

// headers: a response head (informational or final), or trailers.
func (h *h2conn) headers(id uint32, endStream bool) error {
	s := h.streams[id]
	if s == nil {
		if h.idleStream(id) {
			return h.connError(http2.ErrCodeProtocol, "HEADERS frame received for an idle stream. (RFC7540 5.1.1)")
		}
		if h.lingering(id) {
			return nil // we reset it: its late frames are expected
		}
		// Closed by END_STREAM both ways (or reset long ago): the server
		// breaks the stream state machine, as cowlib says.
		return h.connError(http2.ErrCodeStreamClosed, fmt.Sprintf("HEADERS frame received for stream %d, closed after its END_STREAM. (RFC9113 5.1)", id))
	}
	if s.remoteFin {
		h.streamError(s, http2.ErrCodeStreamClosed, "HEADERS frame received for a half-closed (remote) stream. (RFC7540 5.1)")
		return nil
	}
	if h.dBad != "" {
		h.streamError(s, http2.ErrCodeProtocol, h.dBad)
		return nil
	}
	p := &h.dPseudo
	if s.gotFinal { // trailers
		switch {
		case !endStream:
			h.streamError(s, http2.ErrCodeProtocol, "Trailing HEADERS frame without the END_STREAM flag. (RFC7540 8.1)")
		case p.n > 0:
			h.streamError(s, http2.ErrCodeProtocol, "Pseudo-header fields in trailers. (RFC7540 8.1.2.1)")
		case s.clen >= 0 && s.rcvd != s.clen:
			h.streamError(s, http2.ErrCodeProtocol, fmt.Sprintf("The response body (%d bytes) does not match its content-length (%d). (RFC7540 8.1.2.6)", s.rcvd, s.clen))
		default:
			h.c.emit(&Event{Kind: EvTrailers, Ref: s.ref, Headers: h.fields()})
			s.remoteFin = true
			h.maybeClose(s)
		}
		return nil
	}
	status, err := strconv.Atoi(p.status)
	if p.n != 1 || p.status == "" || len(p.status) != 3 || err != nil || status < 100 {
		h.streamError(s, http2.ErrCodeProtocol, "A response must have exactly one pseudo-header field, a valid :status. (RFC7540 8.1.2.4)")
		return nil
	}
	if status < 200 {
		switch {
		case status == 101:
			h.streamError(s, http2.ErrCodeProtocol, "A 101 Switching Protocols response is not allowed in HTTP/2. (RFC7540 8.1.1)")
		case endStream:
			h.streamError(s, http2.ErrCodeProtocol, "An informational response with the END_STREAM flag. (RFC7540 8.1)")
		case h.o.MaxInformational > 0 && s.informs >= h.o.MaxInformational:
			// An endless run of 1xx would be endless work for the host.
			h.streamError(s, http2.ErrCodeEnhanceYourCalm, fmt.Sprintf("More than %d informational (1xx) responses (max_informational_responses).", h.o.MaxInformational))
		default:
			s.informs++
			h.c.emit(&Event{Kind: EvInform, Ref: s.ref, Status: status, Headers: h.fields()})
		}
		return nil
	}
	if s.ws != nil { // an extended CONNECT (RFC 8441, ws_h2.go)
		// wsResponse keeps h.dFields: give it a copy of its own, not the
		// buffer the next header block is decoded into.
		h.dFields = h.fields()
		if done, err := h.wsResponse(s, status, endStream); done {
			h.dFields = nil
			return err
		}
	}
	if s.tun != nil && h.connectResponse(s, status, endStream) { // tunnel_h2.go
		return nil
	}
	s.gotFinal, s.status = true, status
	if cl, ok := hasHeader(h.dFields, "content-length"); ok && s.method != "HEAD" && status != 304 && status != 204 {
		n, err := strconv.ParseInt(cl, 10, 64)
		if err != nil || n < 0 || strings.TrimSpace(cl) != cl {
			h.streamError(s, http2.ErrCodeProtocol, fmt.Sprintf("Invalid content-length %q. (RFC7230 3.3.2)", cl))
			return nil
		}
		s.clen = n
		if endStream && n != 0 {
			h.streamError(s, http2.ErrCodeProtocol, fmt.Sprintf("The response has no body but a content-length of %d. (RFC7540 8.1.2.6)", n))
			return nil
		}
	}
	hdrs := h.fields()
	h.c.emit(&Event{Kind: EvResponse, Ref: s.ref, Fin: endStream, Status: status, Headers: hdrs})
	if hs := s.handlers; !endStream && (hs.SSE || !hs.Set && h.o.ContentHandlers.SSE) {
		if !hs.Set {
			hs = h.o.ContentHandlers
		}
		s.sink = newBodySink(hs, s.ref, hdrs)
		if s.sink != nil && s.sink.sse != nil {
			s.sink.hold = h.holdOf(s) // its events' data is held (http2_hold.go)
		}
	}
	if endStream {
		s.remoteFin = true
		h.maybeClose(s)
	}
	return nil
}

// pushPromise: a PUSH event for a stream the server will send, or a
// refusal (another authority, shutting down, too many).
func (h *h2conn) pushPromise(parentID, promised uint32) error {
	parent := h.streams[parentID]
	if parent == nil {
		if h.idleStream(parentID) {
			return h.connError(http2.ErrCodeProtocol, "PUSH_PROMISE frame received for an idle stream. (RFC7540 6.6)")
		}
		h.framer().WriteRSTStream(promised, http2.ErrCodeCancel) // its parent was cancelled
		h.lingerAdd(promised)
		return nil
	}
	if parent.pushed || parent.remoteFin {
		return h.connError(http2.ErrCodeProtocol, "PUSH_PROMISE frame received on a stream the client did not open or that is closed. (RFC7540 6.6)")
	}
	refuse := func(code http2.ErrCode) error {
		h.framer().WriteRSTStream(promised, code)
		h.lingerAdd(promised)
		return nil
	}
	p := &h.dPseudo
	switch {
	case h.dBad != "" || p.n != 4 || p.method == "" || p.scheme == "" || p.authority == "" || p.path == "" || p.status != "":
		return refuse(http2.ErrCodeProtocol)
	case p.method != "GET" && p.method != "HEAD": // pushed requests must be safe and cacheable (RFC7540 8.2)
		return refuse(http2.ErrCodeProtocol)
	case h.goawaySent || h.goawayRecv || h.c.state == stateClosing:
		return refuse(http2.ErrCodeCancel)
	case p.scheme != h.scheme || p.authority != parent.authority:
		return refuse(http2.ErrCodeProtocol) // not for the origin we asked (Gun refuses these)
	case h.o.MaxConcurrentStreams > 0 && uint32(h.activePush) >= h.o.MaxConcurrentStreams:
		return refuse(http2.ErrCodeRefusedStream)
	}
	s := &h2Stream{
		id: promised, ref: newRef(), method: p.method, path: p.path, authority: p.authority,
		flow: parent.initFlow, initFlow: parent.initFlow, pushed: true, localFin: true,
		recvWin: int64(h.o.InitialStreamWindowSize), clen: -1, handlers: parent.handlers,
	}
	h.track(promised, s)
	h.activePush++
	h.lastPushID = promised
	if q, ok := h.c.replyTo[parent.ref]; ok {
		h.c.replyTo[s.ref] = q
	}
	h.c.emit(&Event{Kind: EvPush, Ref: parent.ref, NewRef: s.ref, Method: p.method,
		URI: p.scheme + "://" + p.authority + p.path, Headers: h.fields()})
	return nil
}

// ---- control frames ----

func (h *h2conn) settingsFrame(f *http2.SettingsFrame) error {
	if f.IsAck() {
		if !h.settingsAcked {
			h.settingsAcked = true
			if h.settingsT != nil {
				h.settingsT.Stop()
				h.settingsT = nil // done with: not kept by an idle connection
			}
			h.dec.SetAllowedMaxDynamicTableSize(h.o.MaxDecodeTableSize)
		}
		return nil
	}
	if max := h.o.MaxSettingsEntries; max > 0 && f.NumSettings() > max {
		// Each entry is applied (INITIAL_WINDOW_SIZE touches every
		// stream): thousands per frame are work, not configuration.
		return h.connError(http2.ErrCodeEnhanceYourCalm, fmt.Sprintf("SETTINGS frame with %d settings, more than max_settings_entries (%d).", f.NumSettings(), max))
	}
	first := !h.gotPreface
	h.gotPreface = true
	if first && h.prefaceT != nil {
		h.prefaceT.Stop()
		h.prefaceT = nil
	}
	var ferr error
	f.ForeachSetting(func(st http2.Setting) error {
		if err := st.Valid(); err != nil {
			var ce http2.ConnectionError
			errors.As(err, &ce)
			ferr = h.connError(http2.ErrCode(ce), fmt.Sprintf("Invalid setting %v. (RFC7540 6.5.2)", st))
			return ferr
		}
		switch st.ID {
		case http2.SettingHeaderTableSize:
			h.peerTable = st.Val
			if h.enc != nil { // none while idle: the next one is made with this size
				h.enc.SetMaxDynamicTableSize(min(st.Val, h.o.MaxEncodeTableSize))
			}
			h.encGen++
		case http2.SettingEnablePush:
			h.peerPush = st.Val == 1
		case http2.SettingMaxConcurrentStreams:
			h.peerMaxStreams = min(st.Val, math.MaxUint32-1)
		case http2.SettingInitialWindowSize:
			delta := int64(st.Val) - h.peerInitWin
			h.peerInitWin = int64(st.Val)
			for _, s := range h.streams {
				if s.pushed {
					continue
				}
				s.sendWin += delta
				if s.sendWin > h2MaxWindow {
					ferr = h.connError(http2.ErrCodeFlowControl, "SETTINGS_INITIAL_WINDOW_SIZE made a stream's window overflow. (RFC7540 6.9.2)")
					return ferr
				}
			}
		case http2.SettingMaxFrameSize:
			h.peerMaxFrame = st.Val
			h.maxFrameSend = st.Val
			if m := h.o.MaxFrameSizeSent; m > 0 {
				h.maxFrameSend = min(st.Val, m)
			}
		case http2.SettingMaxHeaderListSize:
			h.peerMaxList = st.Val
		case http2.SettingEnableConnectProtocol:
			h.peerConnect = st.Val == 1
		}
		return nil
	})
	if ferr != nil {
		return ferr
	}
	h.framer().WriteSettingsAck()
	if h.o.NotifySettingsChanged {
		h.c.emit(&Event{Kind: EvNotify, Reason: "settings_changed", Headers: h.remoteSettings()})
	}
	h.flushBodies()
	h.dequeue()
	h.wsFlush() // ws_h2.go: upgrades that waited for these SETTINGS
	h.c.wincond.Broadcast()
	return nil
}

// remoteSettings is Gun's get_remote_settings: every setting, defaults
// filled in.
func (h *h2conn) remoteSettings() []Header {
	u := func(v uint32) string { return strconv.FormatUint(uint64(v), 10) }
	mcs := "infinity"
	if h.peerMaxStreams != math.MaxUint32 {
		mcs = u(h.peerMaxStreams)
	}
	mhl := "infinity"
	if h.peerMaxList != 0 {
		mhl = u(h.peerMaxList)
	}
	return []Header{
		{"header_table_size", u(h.peerTable)},
		{"enable_push", strconv.FormatBool(h.peerPush)},
		{"max_concurrent_streams", mcs},
		{"initial_window_size", strconv.FormatInt(h.peerInitWin, 10)},
		{"max_frame_size", u(h.peerMaxFrame)},
		{"max_header_list_size", mhl},
		{"enable_connect_protocol", strconv.FormatBool(h.peerConnect)},
	}
}

func (h *h2conn) pingFrame(f *http2.PingFrame) error {
	if !f.IsAck() {
		h.framer().WritePing(true, f.Data)
		return nil
	}
	var payload uint64
	for _, b := range f.Data {
		payload = payload<<8 | uint64(b)
	}
	if payload == 0 {
		// Keepalive; unrequested acks must not make pings_unack negative.
		h.pingsUnack = max(0, h.pingsUnack-1)
		return nil
	}
	if ref, ok := h.userPings[payload]; ok {
		delete(h.userPings, payload)
		h.c.emit(&Event{Kind: EvNotify, Ref: ref, Reason: "ping_ack"})
	}
	return nil // other acks are ignored, as Gun does
}

// goawayFrame: the streams the server will not process get ERROR
// "unprocessed" (safe to retry), the others finish, new requests fail with
// "closing", and the connection closes once nothing is left.
func (h *h2conn) goawayFrame(f *http2.GoAwayFrame) error {
	last := f.LastStreamID
	if h.goawayRecv && last > h.goawayLast {
		last = h.goawayLast // it may only go down
	}
	h.goawayRecv, h.goawayLast = true, last
	reason := fmt.Sprintf("unprocessed: the server sent GOAWAY (%s, last stream %d) before processing this request; it is safe to retry", f.ErrCode, last)
	var gone []*h2Stream
	for _, s := range h.streams {
		if !s.pushed && s.id > last {
			gone = append(gone, s)
		}
	}
	sortStreams(gone)
	for _, s := range gone {
		h.c.emit(&Event{Kind: EvError, Ref: s.ref, Reason: reason})
		h.remove(s)
	}
	for _, r := range h.waiting {
		h.c.emit(&Event{Kind: EvError, Ref: r.ref, Reason: reason})
	}
	h.waiting = nil
	if !h.goawaySent {
		h.framer().WriteGoAway(h.lastPushID, http2.ErrCodeNo, nil)
		h.goawaySent = true
	}
	h.c.wincond.Broadcast()
	if h.idle() {
		h.fatal = errCloseNormal
		return errCloseNormal
	}
	if h.closingT == nil && h.o.ClosingTimeout > 0 {
		h.closingT = h.after(h.o.ClosingTimeout, func() { h.failAsync(errCloseNormal) })
	}
	return nil
}

func sortStreams(ss []*h2Stream) {
	for i := 1; i < len(ss); i++ {
		for j := i; j > 0 && ss[j].id < ss[j-1].id; j-- {
			ss[j], ss[j-1] = ss[j-1], ss[j]
		}
	}
}

func (h *h2conn) rstFrame(f *http2.RSTStreamFrame) error {
	s := h.streams[f.StreamID]
	if s == nil {
		if h.idleStream(f.StreamID) {
			return h.connError(http2.ErrCodeProtocol, "RST_STREAM frame received for an idle stream. (RFC7540 6.4)")
		}
		return nil
	}
	if !s.remoteFin || s.tun != nil { // a complete response needs no error after it; a tunnel does
		s.errored = true
		h.c.emit(&Event{Kind: EvError, Ref: s.ref, Reason: "stream_error: " + f.ErrCode.String()})
	}
	h.lingerAdd(s.id)
	h.remove(s)
	return nil
}

func (h *h2conn) windowUpdateFrame(f *http2.WindowUpdateFrame) error {
	inc := int64(f.Increment)
	if f.StreamID == 0 {
		h.connSend += inc
		if h.connSend > h2MaxWindow {
			return h.connError(http2.ErrCodeFlowControl, "WINDOW_UPDATE made the connection window overflow. (RFC7540 6.9.1)")
		}
	} else {
		s := h.streams[f.StreamID]
		if s == nil {
			if h.idleStream(f.StreamID) {
				return h.connError(http2.ErrCodeProtocol, "WINDOW_UPDATE frame received for an idle stream. (RFC7540 5.1)")
			}
			return nil
		}
		s.sendWin += inc
		if s.sendWin > h2MaxWindow {
			h.streamError(s, http2.ErrCodeFlowControl, "WINDOW_UPDATE made the stream window overflow. (RFC7540 6.9.1)")
			return nil
		}
	}
	h.flushBodies()
	h.c.wincond.Broadcast()
	return nil
}
