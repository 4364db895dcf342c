package h2server

import (
	"bytes"
	"net"
	"strconv"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// A hand-driven client against the scripted server: the handshake, a
// request, a response, a GOAWAY.
func TestScriptedExchange(t *testing.T) {
	s := Start(t)
	nc, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(s.Port()))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(Timeout))
	fr := http2.NewFramer(nc, nc)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "a.example"}, {":path", "/x"}, {"x-k", "v"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	nc.Write([]byte(http2.ClientPreface))
	fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1000})
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})

	sc := s.Accept(t)
	sc.Handshake(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 5})
	if v, ok := sc.ClientSetting(http2.SettingInitialWindowSize); !ok || v != 1000 {
		t.Fatalf("client settings %v", sc.ClientSettings)
	}
	r := sc.ReadRequest()
	if r.StreamID != 1 || r.Method != "GET" || r.Authority != "a.example" || r.Path != "/x" || !r.EndStream {
		t.Fatalf("request %+v", r)
	}
	if v, _ := r.Header("x-k"); v != "v" {
		t.Fatalf("headers %v", r.Headers)
	}
	sc.Respond(1, 200, false, "content-type", "text/plain")
	sc.Data(1, true, []byte("hi"))
	sc.GoAway(1, http2.ErrCodeNo, "done")

	var got []string
	for len(got) < 5 {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("client read: %v (got %v)", err, got)
		}
		got = append(got, Summary(f))
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if f.PseudoValue("status") != "200" {
				t.Fatalf("response %v", f.Fields)
			}
		case *http2.DataFrame:
			if string(f.Data()) != "hi" || !f.StreamEnded() {
				t.Fatalf("data %q", f.Data())
			}
		case *http2.GoAwayFrame:
			if f.LastStreamID != 1 || string(f.DebugData()) != "done" {
				t.Fatalf("goaway %+v", f)
			}
		}
	}
	want := []http2.FrameType{http2.FrameSettings, http2.FrameSettings, http2.FrameHeaders, http2.FrameData, http2.FrameGoAway}
	for i, w := range want {
		if got[i][:len(w.String())] != w.String() {
			t.Fatalf("frames %v, want types %v", got, want)
		}
	}
	nc.Close()
	if frames := sc.WaitClosed(); len(frames) != 0 {
		t.Fatalf("unexpected GOAWAY from the client %v", frames)
	}
}
