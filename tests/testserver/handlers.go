package testserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
)

// HeadersReply is the JSON body of /headers.
type HeadersReply struct {
	Method           string              `json:"method"`
	Path             string              `json:"path"`
	Query            string              `json:"query"`
	Proto            string              `json:"proto"`
	Host             string              `json:"host"`
	RemoteAddr       string              `json:"remote_addr"`
	Headers          map[string][]string `json:"headers"` // lowercase names
	ContentLength    int64               `json:"content_length"`
	TransferEncoding []string            `json:"transfer_encoding"`
	BodyLen          int64               `json:"body_len"`
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/bytes/{n}", handleBytes)
	mux.HandleFunc("/chunked/{n}", handleChunked)
	mux.HandleFunc("/trailers", handleTrailers)
	mux.HandleFunc("/inform/{n}", handleInform)
	mux.HandleFunc("/early-hints", handleInform)
	mux.HandleFunc("/slow", handleSlow)
	mux.HandleFunc("/infinite", handleInfinite)
	mux.HandleFunc("/echo", handleEcho)
	mux.HandleFunc("/headers", handleHeaders)
	mux.HandleFunc("/delay/{ms}", handleDelay)
	mux.HandleFunc("/close", handleClose)
	mux.HandleFunc("/drop", handleDrop(false))
	mux.HandleFunc("/drop-conn", handleDrop(true))
	mux.HandleFunc("/status/{code}", handleStatus)
	mux.HandleFunc("/nolength", handleNoLength)
	mux.HandleFunc("/http10", handleHTTP10)
	mux.HandleFunc("/push", handlePush)
	mux.HandleFunc("/pushed", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "pushed") })
	mux.HandleFunc("/ws", s.handleWS)
	mux.HandleFunc("/ws-reject", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusForbidden) })
	mux.HandleFunc("/big-headers", handleBigHeaders)
	// /set-cookie?name=N&value=V[&path=P]: a Set-Cookie to test cookie stores.
	mux.HandleFunc("/set-cookie", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		http.SetCookie(w, &http.Cookie{Name: q.Get("name"), Value: q.Get("value"), Path: q.Get("path")})
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("/sse", handleSSE)
	mux.HandleFunc("/count", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strconv.FormatInt(s.requests.Load(), 10))
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		mux.ServeHTTP(w, r)
	})
}

// pattern holds the body pattern ('a'+i%26) with 26 bytes of slack so any
// offset can be served as one slice.
var pattern = func() []byte {
	b := make([]byte, 32<<10+26)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return b
}()

// writePattern writes n pattern bytes starting at stream offset off.
func writePattern(w io.Writer, off, n int64) error {
	for n > 0 {
		k := min(n, 32<<10)
		start := off % 26
		if _, err := w.Write(pattern[start : start+k]); err != nil {
			return err
		}
		off, n = off+k, n-k
	}
	return nil
}

// intArg parses a path value or query parameter; ok is false (and a 400 has
// been sent) if it is present but not a non-negative integer.
func intArg(w http.ResponseWriter, s string, def int64) (int64, bool) {
	if s == "" {
		return def, true
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		http.Error(w, "bad number "+strconv.Quote(s), http.StatusBadRequest)
		return 0, false
	}
	return n, true
}

func flush(w http.ResponseWriter) error { return http.NewResponseController(w).Flush() }

func handleBytes(w http.ResponseWriter, r *http.Request) {
	n, ok := intArg(w, r.PathValue("n"), 0)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	writePattern(w, 0, n)
}

func handleChunked(w http.ResponseWriter, r *http.Request) {
	n, ok := intArg(w, r.PathValue("n"), 0)
	k, ok2 := intArg(w, r.URL.Query().Get("chunk"), 1000)
	if !ok || !ok2 {
		return
	}
	k = max(k, 1)
	w.Header().Set("Content-Type", "application/octet-stream")
	// Flushing the head first forces chunked framing even for tiny bodies.
	flush(w)
	for off := int64(0); off < n; off += k {
		if writePattern(w, off, min(k, n-off)) != nil || flush(w) != nil {
			return
		}
	}
}

func handleTrailers(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Trailer", "X-Checksum, X-Trailer-Two")
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, "hello trailers")
	flush(w)
	w.Header().Set("X-Checksum", "abc123")
	w.Header().Set("X-Trailer-Two", "2")
}

// handleInform serves /inform/N?code=C and /early-hints (one 103).
func handleInform(w http.ResponseWriter, r *http.Request) {
	n, ok := intArg(w, r.PathValue("n"), 1)
	code, ok2 := intArg(w, r.URL.Query().Get("code"), http.StatusEarlyHints)
	if !ok || !ok2 {
		return
	}
	if code < 100 || code > 199 || code == http.StatusSwitchingProtocols {
		http.Error(w, "code must be 1xx other than 101", http.StatusBadRequest)
		return
	}
	w.Header().Set("Link", "</style.css>; rel=preload")
	for range n {
		w.WriteHeader(int(code))
	}
	// net/http keeps 1xx headers in the map; drop them from the final response.
	w.Header().Del("Link")
	io.WriteString(w, "ok")
}

func handleSlow(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	chunks, ok1 := intArg(w, q.Get("chunks"), 10)
	delay, ok2 := intArg(w, q.Get("delay"), 100)
	size, ok3 := intArg(w, q.Get("size"), 10)
	if !ok1 || !ok2 || !ok3 {
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	for i := range chunks {
		if i > 0 {
			select {
			case <-time.After(time.Duration(delay) * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
		if writePattern(w, i*size, size) != nil || flush(w) != nil {
			return
		}
	}
}

func handleInfinite(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/octet-stream")
	for off := int64(0); r.Context().Err() == nil; off += 16 << 10 {
		if writePattern(w, off, 16<<10) != nil || flush(w) != nil {
			return
		}
	}
}

// handleEcho streams the request body back as it arrives, so it also works
// as a full-duplex echo on HTTP/2.
func handleEcho(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	rc.EnableFullDuplex() // HTTP/1.1 needs opting in; HTTP/2 is always duplex
	h := w.Header()
	h.Set("X-Method", r.Method)
	h.Set("X-Content-Length", strconv.FormatInt(r.ContentLength, 10))
	h.Set("X-Transfer-Encoding", strings.Join(r.TransferEncoding, ","))
	h.Set("Content-Type", "application/octet-stream")
	if r.ContentLength >= 0 {
		h.Set("Content-Length", strconv.FormatInt(r.ContentLength, 10))
	}
	// No head before the first Read: that Read is what sends 100 Continue.
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil || rc.Flush() != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func handleHeaders(w http.ResponseWriter, r *http.Request) {
	n, _ := io.Copy(io.Discard, r.Body)
	rep := HeadersReply{
		Method:           r.Method,
		Path:             r.URL.Path,
		Query:            r.URL.RawQuery,
		Proto:            r.Proto,
		Host:             r.Host,
		RemoteAddr:       r.RemoteAddr,
		Headers:          make(map[string][]string, len(r.Header)),
		ContentLength:    r.ContentLength,
		TransferEncoding: append([]string{}, r.TransferEncoding...), // [] rather than null
		BodyLen:          n,
	}
	for k, v := range r.Header {
		rep.Headers[strings.ToLower(k)] = v
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(rep)
}

func handleDelay(w http.ResponseWriter, r *http.Request) {
	ms, ok := intArg(w, r.PathValue("ms"), 0)
	if !ok {
		return
	}
	select {
	case <-time.After(time.Duration(ms) * time.Millisecond):
		io.WriteString(w, "ok")
	case <-r.Context().Done():
	}
}

// handleClose: on HTTP/2 net/http turns "Connection: close" into a GOAWAY.
func handleClose(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Connection", "close")
	io.WriteString(w, "bye")
}

// handleDrop promises 1000000 bytes, sends `after` of them, then fails:
// HTTP/1.1 closes the TCP connection; HTTP/2 resets the stream, or with
// wholeConn closes the connection under it.
func handleDrop(wholeConn bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		after, ok := intArg(w, r.URL.Query().Get("after"), 0)
		if !ok {
			return
		}
		after = min(after, 999999)
		if r.ProtoMajor == 1 {
			c, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			brw.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n")
			writePattern(brw, 0, after)
			brw.Flush()
			abort(c)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", "1000000")
		w.WriteHeader(http.StatusOK)
		writePattern(w, 0, after)
		flush(w)
		if c, ok := r.Context().Value(connKey{}).(net.Conn); ok && wholeConn {
			// Flush only hands frames to the conn's write loop; give it a
			// moment to put them on the wire before pulling the plug.
			time.Sleep(100 * time.Millisecond)
			abort(c)
		}
		panic(http.ErrAbortHandler) // RST_STREAM; silent in net/http's log
	}
}

func handleStatus(w http.ResponseWriter, r *http.Request) {
	code, ok := intArg(w, r.PathValue("code"), 0)
	if !ok {
		return
	}
	if code < 200 || code > 999 {
		http.Error(w, "status must be 200..999", http.StatusBadRequest)
		return
	}
	if code == http.StatusNotModified {
		w.Header().Set("ETag", `"v1"`)
	}
	w.WriteHeader(int(code))
}

// handleNoLength sends a close-delimited body on HTTP/1.1. HTTP/2 has no
// such framing, so there the body simply ends with END_STREAM and no
// content-length.
func handleNoLength(w http.ResponseWriter, r *http.Request) {
	n, ok := intArg(w, r.URL.Query().Get("size"), 0)
	if !ok {
		return
	}
	if r.ProtoMajor != 1 {
		w.Header().Set("Content-Type", "application/octet-stream")
		flush(w)
		writePattern(w, 0, n)
		return
	}
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	brw.WriteString("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
	writePattern(brw, 0, n)
	brw.Flush()
	closeGracefully(c)
}

// handleHTTP10 answers with an HTTP/1.0 status line (HTTP/1.x only; on
// HTTP/2 it is a plain 200 "ok").
func handleHTTP10(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor != 1 {
		io.WriteString(w, "ok")
		return
	}
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	brw.WriteString("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
	brw.Flush()
	closeGracefully(c)
}

// closeGracefully half-closes so the client sees every byte and then EOF
// (a plain Close with unread input would turn into a RST).
func closeGracefully(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite() // for *tls.Conn this sends close_notify
		c.SetReadDeadline(time.Now().Add(time.Second))
		io.Copy(io.Discard, c)
	}
	c.Close()
}

func handlePush(w http.ResponseWriter, r *http.Request) {
	if p, ok := w.(http.Pusher); ok {
		// Errors (e.g. client disabled push) are expected and ignored.
		p.Push("/bytes/10", nil)
		p.Push("/pushed", nil)
	}
	io.WriteString(w, "main")
}

func handleBigHeaders(w http.ResponseWriter, r *http.Request) {
	n, ok := intArg(w, r.URL.Query().Get("n"), 0)
	if !ok {
		return
	}
	w.Header().Set("X-Big", strings.Repeat("x", int(min(n, 64<<20))))
	io.WriteString(w, "ok")
}

// handleWS is a WebSocket echo on gobwas/ws (frames read and written
// here). Subprotocol choice follows the client's order. permessage-deflate
// is accepted without context takeover either way (each message compressed
// on its own), and an echo is compressed when its message was.
func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	var closeCode int64 = -1
	if v := r.URL.Query().Get("close"); v != "" {
		var ok bool
		if closeCode, ok = intArg(w, v, 0); !ok {
			return
		}
	}
	ext := &wsflate.Extension{Parameters: wsflate.Parameters{
		ServerNoContextTakeover: true, ClientNoContextTakeover: true, ServerMaxWindowBits: 15,
	}}
	up := ws.HTTPUpgrader{
		Protocol:  func(p string) bool { return p == "echo" || p == "chat" },
		Negotiate: ext.Negotiate,
	}
	nc, rw, _, err := up.Upgrade(r, w)
	if err != nil {
		s.log.Printf("ws accept: %v", err)
		return
	}
	defer nc.Close()
	if closeCode >= 0 {
		ws.WriteFrame(nc, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusCode(closeCode), "bye")))
		ws.ReadHeader(rw) // its answer, then close
		return
	}
	_, deflate := ext.Accepted()
	if err := wsEcho(rw.Reader, nc, deflate); err != nil && !errors.Is(err, io.EOF) {
		s.log.Printf("ws: %v", err)
	}
}

// wsEcho echoes messages until the client's close frame, which it answers.
func wsEcho(rd io.Reader, w io.Writer, deflate bool) error {
	var msg []byte
	var op ws.OpCode
	var z bool
	for {
		h, err := ws.ReadHeader(rd)
		if err != nil {
			return err
		}
		if h.Length > 64<<20 || len(msg)+int(h.Length) > 64<<20 {
			ws.WriteFrame(w, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusMessageTooBig, "")))
			return fmt.Errorf("a frame of %d bytes", h.Length)
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(rd, payload); err != nil {
			return err
		}
		if h.Masked {
			ws.Cipher(payload, h.Mask, 0)
		}
		switch h.OpCode {
		case ws.OpPing:
			if err := ws.WriteFrame(w, ws.NewPongFrame(payload)); err != nil {
				return err
			}
			continue
		case ws.OpPong:
			continue
		case ws.OpClose:
			ws.WriteFrame(w, ws.NewCloseFrame(payload)) // code and reason echoed
			return nil
		case ws.OpContinuation:
			msg = append(msg, payload...)
		default:
			op, msg = h.OpCode, payload
			z = deflate && h.Rsv1()
		}
		if !h.Fin {
			continue
		}
		f := ws.NewFrame(op, true, msg)
		if z {
			f.Header.Rsv = ws.Rsv(true, false, false)
			if f, err = wsflate.DecompressFrame(f); err != nil {
				return err
			}
			if f, err = wsflate.CompressFrame(f); err != nil {
				return err
			}
		}
		if err := ws.WriteFrame(w, f); err != nil {
			return err
		}
		msg = nil
	}
}

// SSEStream is what /sse sends: a BOM, a comment, a retry alone, a
// two-line message (LF then CRLF ends), a typed event with an id (CR ends),
// an id alone, a message carrying the last id, and an unfinished block
// (no blank line: discarded at the end).
const SSEStream = "\xEF\xBB\xBF: hello\nretry: 1500\n\ndata: first\ndata: second\r\n\r\n" +
	"id: 7\revent: tick\rdata:x\r\rid: 8\n\ndata: after\n\ndata: lost\n"

// handleSSE: /sse[?ct=TYPE] sends SSEStream, one line per write and flush,
// as text/event-stream (or TYPE).
func handleSSE(w http.ResponseWriter, r *http.Request) {
	ct := r.URL.Query().Get("ct")
	if ct == "" {
		ct = "text/event-stream"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "no-cache")
	rest := SSEStream
	for rest != "" {
		i := strings.IndexAny(rest, "\r\n") + 1
		if i == 0 {
			i = len(rest)
		}
		if _, err := io.WriteString(w, rest[:i]); err != nil || flush(w) != nil {
			return
		}
		rest = rest[i:]
	}
}
