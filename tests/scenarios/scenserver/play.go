package scenserver

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Timeout bounds every wait for the client: generous, as runners share a
// loaded machine.
var Timeout = 10 * time.Second

type player struct {
	nc      net.Conn
	br      *bufio.Reader
	fr      *http2.Framer
	enc     *hpack.Encoder
	ebuf    bytes.Buffer
	streams map[string]uint32
	pushID  uint32
	auth    string // the last request's :authority (a push must carry it)
}

// play runs steps on one client connection; an error is the first step the
// client did not match (the connection is then closed, which the client's
// expected events show).
func play(nc net.Conn, steps []Step) error {
	p := &player{nc: nc, br: bufio.NewReader(nc), streams: map[string]uint32{}, pushID: 0}
	for i, st := range steps {
		nc.SetDeadline(time.Now().Add(Timeout))
		if err := p.step(st); err != nil {
			return fmt.Errorf("step %d (%s): %v", i, st.Do, err)
		}
	}
	if len(steps) > 0 && steps[len(steps)-1].Do == "close" {
		return nil
	}
	// The script is over: keep the connection until the client closes it,
	// so that its end is the client's doing.
	// An HTTP/2 client still gets its PINGs and SETTINGS answered; frames
	// of its streams are read and dropped.
	nc.SetDeadline(time.Now().Add(Timeout))
	if p.fr != nil {
		for {
			if _, err := p.readFrame(); err != nil {
				return nil
			}
		}
	}
	io.Copy(io.Discard, p.br)
	return nil
}

func (p *player) h2() *http2.Framer {
	if p.fr == nil {
		p.fr = http2.NewFramer(p.nc, p.br)
		p.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
		p.fr.MaxHeaderListSize = 1 << 20
		p.enc = hpack.NewEncoder(&p.ebuf)
	}
	return p.fr
}

func (p *player) stream(name string) (uint32, error) {
	if name == "" || name == "0" {
		return 0, nil
	}
	if id, ok := p.streams[name]; ok {
		return id, nil
	}
	if n, err := strconv.ParseUint(name, 10, 31); err == nil {
		return uint32(n), nil
	}
	return 0, fmt.Errorf("unknown stream %q", name)
}

func (p *player) block(status int, hs [][2]string, extra ...[2]string) []byte {
	p.ebuf.Reset()
	if status != 0 {
		p.enc.WriteField(hpack.HeaderField{Name: ":status", Value: strconv.Itoa(status)})
	}
	for _, h := range append(extra, hs...) {
		p.enc.WriteField(hpack.HeaderField{Name: h[0], Value: h[1]})
	}
	return append([]byte(nil), p.ebuf.Bytes()...)
}

// readFrame returns the next frame that is not connection housekeeping
// (SETTINGS are acknowledged, PINGs answered, WINDOW_UPDATE and PRIORITY
// skipped).
func (p *player) readFrame() (http2.Frame, error) {
	fr := p.h2()
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return nil, err
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				if err := fr.WriteSettingsAck(); err != nil {
					return nil, err
				}
			}
			continue
		case *http2.PingFrame:
			if !f.IsAck() {
				if err := fr.WritePing(true, f.Data); err != nil {
					return nil, err
				}
			}
			continue
		case *http2.WindowUpdateFrame, *http2.PriorityFrame:
			continue
		}
		return f, nil
	}
}

func (p *player) step(st Step) error {
	switch st.Do {
	case "read_request":
		line, _, err := p.readHTTP1()
		if err != nil {
			return err
		}
		if st.Line != "" && line != st.Line {
			return fmt.Errorf("request line %q, want %q", line, st.Line)
		}
	case "send":
		_, err := io.WriteString(p.nc, st.Data)
		return err
	case "close":
		return p.nc.Close()
	case "read_bytes": // raw: exactly these bytes
		buf := make([]byte, len(st.Data))
		if _, err := io.ReadFull(p.br, buf); err != nil {
			return err
		}
		if string(buf) != st.Data {
			return fmt.Errorf("read %q, want %q", buf, st.Data)
		}
	case "read_eof":
		n, err := io.Copy(io.Discard, p.br)
		if err != nil {
			return err
		}
		if n != 0 && st.Size == 0 {
			return fmt.Errorf("%d bytes before the client closed", n)
		}

	case "h2_handshake":
		buf := make([]byte, len(http2.ClientPreface))
		if _, err := io.ReadFull(p.br, buf); err != nil {
			return err
		}
		if string(buf) != http2.ClientPreface {
			return fmt.Errorf("client preface %q", buf)
		}
		var ss []http2.Setting
		for k, v := range st.Settings {
			id, ok := settingIDs[k]
			if !ok {
				return fmt.Errorf("unknown setting %q", k)
			}
			ss = append(ss, http2.Setting{ID: id, Val: v})
		}
		return p.h2().WriteSettings(ss...)
	case "h2_settings":
		var ss []http2.Setting
		for k, v := range st.Settings {
			ss = append(ss, http2.Setting{ID: settingIDs[k], Val: v})
		}
		return p.h2().WriteSettings(ss...)
	case "h2_read_headers":
		f, err := p.readFrame()
		if err != nil {
			return err
		}
		h, ok := f.(*http2.MetaHeadersFrame)
		if !ok {
			return fmt.Errorf("got %T, want HEADERS", f)
		}
		if st.Path != "" && h.PseudoValue("path") != st.Path {
			return fmt.Errorf(":path %q, want %q", h.PseudoValue("path"), st.Path)
		}
		if st.As != "" {
			p.streams[st.As] = h.StreamID
		}
		p.auth = h.PseudoValue("authority")
	case "h2_read_data":
		id, err := p.stream(st.Stream)
		if err != nil {
			return err
		}
		var got []byte
		for {
			f, err := p.readFrame()
			if err != nil {
				return err
			}
			d, ok := f.(*http2.DataFrame)
			if !ok || d.StreamID != id {
				return fmt.Errorf("got %T on stream %d, want DATA on %d", f, f.Header().StreamID, id)
			}
			got = append(got, d.Data()...)
			if d.StreamEnded() || (st.Size > 0 && len(got) >= st.Size) {
				break
			}
		}
		if st.Data != "" && string(got) != st.Data {
			return fmt.Errorf("data %q, want %q", got, st.Data)
		}
	case "h2_read_rst":
		id, err := p.stream(st.Stream)
		if err != nil {
			return err
		}
		for {
			f, err := p.readFrame()
			if err != nil {
				return err
			}
			if _, ok := f.(*http2.DataFrame); ok && f.Header().StreamID == id {
				continue // a body still on its way
			}
			r, ok := f.(*http2.RSTStreamFrame)
			if !ok || r.StreamID != id {
				return fmt.Errorf("got %T on stream %d, want RST_STREAM on %d", f, f.Header().StreamID, id)
			}
			return nil
		}
	case "h2_read_ping":
		// The next frame must be a PING, answered here (readFrame would
		// answer it silently).
		f, err := p.h2().ReadFrame()
		for err == nil {
			if sf, ok := f.(*http2.SettingsFrame); ok {
				if !sf.IsAck() {
					p.fr.WriteSettingsAck()
				}
			} else if _, ok := f.(*http2.GoAwayFrame); ok {
				// the client's answer to our GOAWAY
			} else if _, ok := f.(*http2.WindowUpdateFrame); !ok {
				break
			}
			f, err = p.fr.ReadFrame()
		}
		if err != nil {
			return err
		}
		pf, ok := f.(*http2.PingFrame)
		if !ok || pf.IsAck() {
			return fmt.Errorf("got %T, want PING", f)
		}
		return p.fr.WritePing(true, pf.Data)
	case "h2_read_goaway":
		f, err := p.readFrame()
		if err != nil {
			return err
		}
		if _, ok := f.(*http2.GoAwayFrame); !ok {
			return fmt.Errorf("got %T, want GOAWAY", f)
		}
	case "h2_headers", "h2_trailers":
		id, err := p.stream(st.Stream)
		if err != nil {
			return err
		}
		status := st.Status
		if st.Do == "h2_trailers" {
			status = 0
		}
		return p.h2().WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: p.block(status, st.Headers),
			EndStream: st.End || st.Do == "h2_trailers", EndHeaders: true})
	case "h2_data":
		id, err := p.stream(st.Stream)
		if err != nil {
			return err
		}
		return p.h2().WriteData(id, st.End, []byte(st.Data))
	case "h2_push":
		id, err := p.stream(st.Stream)
		if err != nil {
			return err
		}
		p.pushID += 2
		p.streams[st.As] = p.pushID
		blk := p.block(0, st.Headers, [2]string{":method", "GET"}, [2]string{":scheme", "http"},
			[2]string{":authority", p.auth}, [2]string{":path", st.Path})
		return p.h2().WritePushPromise(http2.PushPromiseParam{StreamID: id, PromiseID: p.pushID, BlockFragment: blk, EndHeaders: true})
	case "h2_goaway":
		id, err := p.stream(st.Last)
		if err != nil {
			return err
		}
		return p.h2().WriteGoAway(id, http2.ErrCode(st.Code), nil)
	case "h2_rst":
		id, err := p.stream(st.Stream)
		if err != nil {
			return err
		}
		return p.h2().WriteRSTStream(id, http2.ErrCode(st.Code))
	case "h2_window_update":
		id, err := p.stream(st.Stream)
		if err != nil {
			return err
		}
		return p.h2().WriteWindowUpdate(id, uint32(st.N))

	case "ws_accept":
		_, hs, err := p.readHTTP1()
		if err != nil {
			return err
		}
		key := hs["sec-websocket-key"]
		if key == "" {
			return fmt.Errorf("upgrade request without sec-websocket-key")
		}
		sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		_, err = io.WriteString(p.nc, "HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-accept: "+
			base64.StdEncoding.EncodeToString(sum[:])+"\r\n\r\n")
		return err
	case "ws_send":
		op, ok := wsOps[st.Op]
		if !ok {
			return fmt.Errorf("unknown op %q", st.Op)
		}
		payload := []byte(st.Data)
		if op == ws.OpClose && st.Code != 0 {
			payload = ws.NewCloseFrameBody(ws.StatusCode(st.Code), st.Data)
		}
		return ws.WriteFrame(p.nc, ws.NewFrame(op, true, payload))
	case "ws_read", "ws_echo":
		f, err := ws.ReadFrame(p.br)
		if err != nil {
			return err
		}
		if f.Header.Masked {
			ws.Cipher(f.Payload, f.Header.Mask, 0)
		}
		if st.Do == "ws_echo" {
			return ws.WriteFrame(p.nc, ws.NewFrame(f.Header.OpCode, true, f.Payload))
		}
		if st.Op != "" && f.Header.OpCode != wsOps[st.Op] {
			return fmt.Errorf("frame op %v, want %s", f.Header.OpCode, st.Op)
		}
		data := f.Payload
		if f.Header.OpCode == ws.OpClose && st.Code != 0 && len(data) < 2 {
			return fmt.Errorf("close frame without a code, want %d", st.Code)
		}
		if f.Header.OpCode == ws.OpClose && len(data) >= 2 {
			code := int(data[0])<<8 | int(data[1])
			if st.Code != 0 && code != st.Code {
				return fmt.Errorf("close code %d, want %d", code, st.Code)
			}
			data = data[2:]
		}
		if st.Data != "" && string(data) != st.Data {
			return fmt.Errorf("frame data %q, want %q", data, st.Data)
		}
	default:
		return fmt.Errorf("unknown action %q", st.Do)
	}
	return nil
}

var settingIDs = map[string]http2.SettingID{
	"HEADER_TABLE_SIZE": http2.SettingHeaderTableSize, "ENABLE_PUSH": http2.SettingEnablePush,
	"MAX_CONCURRENT_STREAMS": http2.SettingMaxConcurrentStreams, "INITIAL_WINDOW_SIZE": http2.SettingInitialWindowSize,
	"MAX_FRAME_SIZE": http2.SettingMaxFrameSize, "MAX_HEADER_LIST_SIZE": http2.SettingMaxHeaderListSize,
	"ENABLE_CONNECT_PROTOCOL": http2.SettingEnableConnectProtocol,
}

var wsOps = map[string]ws.OpCode{"text": ws.OpText, "binary": ws.OpBinary, "close": ws.OpClose, "ping": ws.OpPing, "pong": ws.OpPong}

// readHTTP1 reads one request: its line, its headers (names lower-cased)
// and its body (Content-Length or chunked), which it discards.
func (p *player) readHTTP1() (string, map[string]string, error) {
	line, err := p.br.ReadString('\n')
	if err != nil {
		return "", nil, err
	}
	line = strings.TrimRight(line, "\r\n")
	hs := map[string]string{}
	for {
		l, err := p.br.ReadString('\n')
		if err != nil {
			return "", nil, err
		}
		l = strings.TrimRight(l, "\r\n")
		if l == "" {
			break
		}
		k, v, _ := strings.Cut(l, ":")
		hs[strings.ToLower(k)] = strings.TrimSpace(v)
	}
	if n, err := strconv.Atoi(hs["content-length"]); err == nil && n > 0 {
		if _, err := io.CopyN(io.Discard, p.br, int64(n)); err != nil {
			return "", nil, err
		}
	} else if strings.Contains(strings.ToLower(hs["transfer-encoding"]), "chunked") {
		for {
			l, err := p.br.ReadString('\n')
			if err != nil {
				return "", nil, err
			}
			n, err := strconv.ParseInt(strings.TrimSpace(strings.SplitN(l, ";", 2)[0]), 16, 32)
			if err != nil {
				return "", nil, fmt.Errorf("chunk size %q", l)
			}
			if _, err := io.CopyN(io.Discard, p.br, n+2); err != nil && n > 0 {
				return "", nil, err
			}
			if n == 0 {
				break
			}
		}
	}
	return line, hs, nil
}
