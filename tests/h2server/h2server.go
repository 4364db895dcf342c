// Package h2server is a scripted, frame-level HTTP/2 server for tests: it
// does on demand what real servers won't — a GOAWAY with a chosen
// last-stream-id, RST_STREAM, a SETTINGS frame never acknowledged,
// PUSH_PROMISE for any authority, windows of 0, an HTTP/1 reply to the
// preface, oversized or flooding header blocks.
//
// It listens on 127.0.0.1 (or ::1) in cleartext: clients speak h2c with
// prior knowledge. A test accepts each client connection and drives it
// step by step from the test goroutine:
//
//	s := h2server.Start(t)
//	// open a client to s.Port() with {"protocols":["http2"]}
//	sc := s.Accept(t)
//	sc.Handshake()                  // preface + SETTINGS both ways
//	req := sc.ReadRequest()         // the client's next HEADERS
//	sc.Respond(req.StreamID, 200, false, "content-type", "text/plain")
//	sc.Data(req.StreamID, true, []byte("hello"))
//
// Every read waits at most Timeout; a failure fails the test (t.Fatal), so
// call the methods from the test goroutine.
package h2server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Timeout bounds every wait for the client (generous: tests run on loaded
// machines under -race).
var Timeout = 10 * time.Second

// Server accepts client connections on a loopback port.
type Server struct {
	ln    net.Listener
	conns chan net.Conn
	done  chan struct{}
	wg    sync.WaitGroup

	mu  sync.Mutex
	all []net.Conn
}

// Start listens on 127.0.0.1 and stops when the test ends.
func Start(t testing.TB) *Server { return StartOn(t, "127.0.0.1:0") }

// StartOn listens on addr ("[::1]:0" for IPv6).
func StartOn(t testing.TB, addr string) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("h2server: listen %s: %v", addr, err)
	}
	s := &Server{ln: ln, conns: make(chan net.Conn, 16), done: make(chan struct{})}
	s.wg.Add(1)
	go s.acceptLoop()
	t.Cleanup(s.Close)
	return s
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.all = append(s.all, nc)
		s.mu.Unlock()
		select {
		case s.conns <- nc:
		case <-s.done:
			nc.Close()
			return
		}
	}
}

// Accepted is how many client connections the server has accepted (to
// prove that a client does not reconnect in a storm).
func (s *Server) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.all)
}

// Port is the port the server listens on.
func (s *Server) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// Close stops listening and closes every connection.
func (s *Server) Close() {
	select {
	case <-s.done:
		return
	default:
	}
	close(s.done)
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.all {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Accept waits for the next client connection.
func (s *Server) Accept(t testing.TB) *Conn {
	t.Helper()
	select {
	case nc := <-s.conns:
		return newConn(t, nc)
	case <-time.After(Timeout):
		t.Fatalf("h2server: no client connection within %v", Timeout)
		return nil
	}
}

// Serve hands every client connection, as it is accepted, to handle on a
// goroutine of its own, until the server closes: for servers that
// misbehave on every connection, reconnects included. A failure in handle
// calls t's Fatalf from that goroutine: pass a testing.TB whose FailNow
// ends the goroutine (runtime.Goexit) when clients may go away. Do not mix
// with Accept.
func (s *Server) Serve(t testing.TB, handle func(*Conn)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			select {
			case nc := <-s.conns:
				go handle(newConn(t, nc))
			case <-s.done:
				return
			}
		}
	}()
}

// NoAccept proves that no client connects within d.
func (s *Server) NoAccept(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case nc := <-s.conns:
		nc.Close()
		t.Fatalf("h2server: unexpected client connection")
	case <-time.After(d):
	}
}

// Conn is one client connection, driven by the test.
type Conn struct {
	t    testing.TB
	NC   net.Conn
	Fr   *http2.Framer
	enc  *hpack.Encoder
	ebuf bytes.Buffer

	// ClientSettings are the settings of the client's first SETTINGS frame.
	ClientSettings []http2.Setting
	// Frames logs a summary of every frame read, for failure messages.
	Frames []string
}

func newConn(t testing.TB, nc net.Conn) *Conn {
	c := &Conn{t: t, NC: nc}
	c.Fr = http2.NewFramer(nc, nc)
	c.Fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.Fr.MaxHeaderListSize = 16 << 20
	c.enc = hpack.NewEncoder(&c.ebuf)
	return c
}

func (c *Conn) fatalf(format string, args ...any) {
	c.t.Helper()
	c.t.Fatalf("h2server: "+format+"\nframes read: %v", append(args, c.Frames)...)
}

// ReadPreface reads the client's connection preface and its first
// SETTINGS frame (kept in ClientSettings), and nothing else.
func (c *Conn) ReadPreface() {
	c.t.Helper()
	buf := make([]byte, len(http2.ClientPreface))
	c.NC.SetReadDeadline(time.Now().Add(Timeout))
	if _, err := io.ReadFull(c.NC, buf); err != nil {
		c.fatalf("reading the client preface: %v", err)
	}
	if string(buf) != http2.ClientPreface {
		c.fatalf("client preface %q", buf)
	}
	f := c.ReadFrame()
	sf, ok := f.(*http2.SettingsFrame)
	if !ok || sf.IsAck() {
		c.fatalf("first frame after the preface is %v, want SETTINGS", Summary(f))
	}
	c.ClientSettings = nil
	sf.ForeachSetting(func(s http2.Setting) error {
		c.ClientSettings = append(c.ClientSettings, s)
		return nil
	})
}

// Handshake reads the client preface, sends the server's SETTINGS (the
// given ones) and acknowledges the client's.
func (c *Conn) Handshake(settings ...http2.Setting) {
	c.t.Helper()
	c.ReadPreface()
	c.Settings(settings...)
	c.SettingsAck()
}

// ClientSetting returns the value of a setting of the client's first
// SETTINGS frame.
func (c *Conn) ClientSetting(id http2.SettingID) (uint32, bool) {
	for _, s := range c.ClientSettings {
		if s.ID == id {
			return s.Val, true
		}
	}
	return 0, false
}

// ReadFrame reads the next frame (HEADERS come merged with their
// CONTINUATIONs as *http2.MetaHeadersFrame). It is valid until the next
// read.
func (c *Conn) ReadFrame() http2.Frame {
	c.t.Helper()
	f, err := c.TryReadFrame(Timeout)
	if err != nil {
		c.fatalf("reading a frame: %v", err)
	}
	return f
}

// TryReadFrame reads the next frame within d.
func (c *Conn) TryReadFrame(d time.Duration) (http2.Frame, error) {
	c.NC.SetReadDeadline(time.Now().Add(d))
	f, err := c.Fr.ReadFrame()
	if err != nil {
		return nil, err
	}
	c.Frames = append(c.Frames, Summary(f))
	return f, nil
}

// Expect reads frames until one satisfies match, and returns it; other
// frames are skipped (SETTINGS acks, WINDOW_UPDATEs, ...).
func (c *Conn) Expect(what string, match func(http2.Frame) bool) http2.Frame {
	c.t.Helper()
	deadline := time.Now().Add(Timeout)
	for {
		f, err := c.TryReadFrame(time.Until(deadline))
		if err != nil {
			c.fatalf("waiting for %s: %v", what, err)
		}
		if match(f) {
			return f
		}
	}
}

// ExpectType reads until a frame of type ft (and stream id, unless
// streamID is -1).
func (c *Conn) ExpectType(ft http2.FrameType, streamID int) http2.Frame {
	c.t.Helper()
	return c.Expect(fmt.Sprintf("%v on stream %d", ft, streamID), func(f http2.Frame) bool {
		h := f.Header()
		return h.Type == ft && (streamID < 0 || h.StreamID == uint32(streamID))
	})
}

// NoFrame proves that no frame matching match arrives within d (other
// frames are read and dropped).
func (c *Conn) NoFrame(d time.Duration, what string, match func(http2.Frame) bool) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return
		}
		f, err := c.TryReadFrame(left)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return
			}
			c.fatalf("while proving that no %s comes: %v", what, err)
		}
		if match(f) {
			c.fatalf("unexpected %s: %s", what, Summary(f))
		}
	}
}

// Request is a request the client sent.
type Request struct {
	StreamID                        uint32
	Method, Scheme, Authority, Path string
	Headers                         []hpack.HeaderField // regular fields, in order
	EndStream                       bool
}

// Header returns the value of the first regular field named name.
func (r *Request) Header(name string) (string, bool) {
	for _, f := range r.Headers {
		if f.Name == name {
			return f.Value, true
		}
	}
	return "", false
}

// ReadRequest reads frames until the client's next HEADERS.
func (c *Conn) ReadRequest() *Request {
	c.t.Helper()
	f := c.Expect("a request (HEADERS)", func(f http2.Frame) bool {
		_, ok := f.(*http2.MetaHeadersFrame)
		return ok
	})
	mh := f.(*http2.MetaHeadersFrame)
	r := &Request{StreamID: mh.StreamID, EndStream: mh.StreamEnded()}
	for _, hf := range mh.Fields {
		switch hf.Name {
		case ":method":
			r.Method = hf.Value
		case ":scheme":
			r.Scheme = hf.Value
		case ":authority":
			r.Authority = hf.Value
		case ":path":
			r.Path = hf.Value
		default:
			r.Headers = append(r.Headers, hf)
		}
	}
	return r
}

// ReadBody reads the DATA of stream id until END_STREAM and returns it.
func (c *Conn) ReadBody(id uint32) []byte {
	c.t.Helper()
	var body []byte
	for {
		f := c.ExpectType(http2.FrameData, int(id)).(*http2.DataFrame)
		body = append(body, f.Data()...)
		if f.StreamEnded() {
			return body
		}
	}
}

// Block encodes header fields (name, value pairs) with the server's
// encoder.
func (c *Conn) Block(kv ...string) []byte {
	if len(kv)%2 != 0 {
		panic("h2server: odd number of header strings")
	}
	c.ebuf.Reset()
	for i := 0; i < len(kv); i += 2 {
		c.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return append([]byte(nil), c.ebuf.Bytes()...)
}

func (c *Conn) check(err error) {
	c.t.Helper()
	if err != nil {
		c.fatalf("write: %v", err)
	}
}

// Respond sends a response head: :status then the regular fields.
func (c *Conn) Respond(id uint32, status int, endStream bool, kv ...string) {
	c.t.Helper()
	c.Headers(id, endStream, append([]string{":status", strconv.Itoa(status)}, kv...)...)
}

// Headers sends a HEADERS frame with exactly these fields (trailers, or
// malformed heads).
func (c *Conn) Headers(id uint32, endStream bool, kv ...string) {
	c.t.Helper()
	c.check(c.Fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.Block(kv...), EndStream: endStream, EndHeaders: true}))
}

// Data sends one DATA frame.
func (c *Conn) Data(id uint32, endStream bool, p []byte) {
	c.t.Helper()
	c.check(c.Fr.WriteData(id, endStream, p))
}

// Push sends a PUSH_PROMISE on stream parent promising stream promised.
func (c *Conn) Push(parent, promised uint32, method, scheme, authority, path string, kv ...string) {
	c.t.Helper()
	block := c.Block(append([]string{":method", method, ":scheme", scheme, ":authority", authority, ":path", path}, kv...)...)
	c.check(c.Fr.WritePushPromise(http2.PushPromiseParam{StreamID: parent, PromiseID: promised, BlockFragment: block, EndHeaders: true}))
}

// RST sends RST_STREAM.
func (c *Conn) RST(id uint32, code http2.ErrCode) {
	c.t.Helper()
	c.check(c.Fr.WriteRSTStream(id, code))
}

// GoAway sends GOAWAY.
func (c *Conn) GoAway(last uint32, code http2.ErrCode, debug string) {
	c.t.Helper()
	c.check(c.Fr.WriteGoAway(last, code, []byte(debug)))
}

// Settings sends a SETTINGS frame.
func (c *Conn) Settings(s ...http2.Setting) {
	c.t.Helper()
	c.check(c.Fr.WriteSettings(s...))
}

// SettingsAck acknowledges the client's SETTINGS.
func (c *Conn) SettingsAck() {
	c.t.Helper()
	c.check(c.Fr.WriteSettingsAck())
}

// Ping sends a PING (ack false) or a PING ack.
func (c *Conn) Ping(ack bool, data [8]byte) {
	c.t.Helper()
	c.check(c.Fr.WritePing(ack, data))
}

// WindowUpdate sends WINDOW_UPDATE (id 0: the connection).
func (c *Conn) WindowUpdate(id, inc uint32) {
	c.t.Helper()
	c.check(c.Fr.WriteWindowUpdate(id, inc))
}

// Raw writes bytes as they are.
func (c *Conn) Raw(b []byte) {
	c.t.Helper()
	c.NC.SetWriteDeadline(time.Now().Add(Timeout))
	if _, err := c.NC.Write(b); err != nil {
		c.fatalf("raw write: %v", err)
	}
}

// RawFrame writes a frame with any type, flags, stream and payload.
func (c *Conn) RawFrame(t http2.FrameType, flags http2.Flags, id uint32, payload []byte) {
	c.t.Helper()
	c.Raw(Frame(t, flags, id, payload))
}

// Frame builds the bytes of one frame.
func Frame(t http2.FrameType, flags http2.Flags, id uint32, payload []byte) []byte {
	n := len(payload)
	b := []byte{byte(n >> 16), byte(n >> 8), byte(n), byte(t), byte(flags),
		byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)}
	return append(b, payload...)
}

// WaitClosed waits until the client closes the connection (reading and
// dropping frames), and returns the frames it sent meanwhile.
func (c *Conn) WaitClosed() []http2.Frame {
	c.t.Helper()
	var got []http2.Frame
	deadline := time.Now().Add(Timeout)
	for {
		f, err := c.TryReadFrame(time.Until(deadline))
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.fatalf("the client did not close the connection within %v", Timeout)
			}
			return got
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			got = append(got, &http2.GoAwayFrame{FrameHeader: g.FrameHeader, LastStreamID: g.LastStreamID, ErrCode: g.ErrCode})
		}
	}
}

// Close closes the connection.
func (c *Conn) Close() { c.NC.Close() }

// Summary describes a frame in one line.
func Summary(f http2.Frame) string {
	if f == nil {
		return "<nil>"
	}
	h := f.Header()
	s := fmt.Sprintf("%v stream=%d len=%d flags=%v", h.Type, h.StreamID, h.Length, h.Flags)
	switch f := f.(type) {
	case *http2.GoAwayFrame:
		s += fmt.Sprintf(" last=%d code=%v", f.LastStreamID, f.ErrCode)
	case *http2.RSTStreamFrame:
		s += fmt.Sprintf(" code=%v", f.ErrCode)
	case *http2.WindowUpdateFrame:
		s += fmt.Sprintf(" inc=%d", f.Increment)
	case *http2.PingFrame:
		s += fmt.Sprintf(" data=%x", f.Data)
	}
	return s
}
