package core

import (
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
)

// adopt hands the fd of f to AdoptFD and OpenConn, then closes f as the C
// ABI closes the host's fd once gunmetal has its own.
func adopt(t *testing.T, q *Queue, fd int, js string) *Conn {
	t.Helper()
	if err := CheckAdoptOptions([]byte(js)); err != nil {
		t.Fatal(err)
	}
	nc, err := AdoptFD(fd)
	if err != nil {
		t.Fatal(err)
	}
	c, err := OpenConn(nc, parseOpts(t, js, 0), q, nil)
	if err != nil {
		nc.Close()
		t.Fatal(err)
	}
	closeOnCleanup(t, c)
	return c
}

// TestOpenFDHTTP: a TCP socket the test connected to the test server
// carries a GET; when the server closes, the connection exits (no retry).
func TestOpenFDHTTP(t *testing.T) {
	q := newQueue(t)
	nc, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", itoa(srv.HTTPPort())))
	if err != nil {
		t.Fatal(err)
	}
	f, err := nc.(*net.TCPConn).File()
	nc.Close()
	if err != nil {
		t.Fatal(err)
	}
	c := adopt(t, q, int(f.Fd()), `{"protocols":["http"]}`)
	f.Close()
	awaitUp(t, c)
	ref := get(t, c, "/bytes/1")
	ev := nextOf(t, q, c)
	if ev.Kind != EvResponse || ev.Ref != ref || ev.Status != 200 {
		t.Fatalf("got %s, want a 200 response", evString(ev))
	}
}

// TestOpenFDSocketpairRaw: raw bytes both ways over a socketpair end; the
// peer closing ends in DOWN then EXIT, never a reconnect.
func TestOpenFDSocketpairRaw(t *testing.T) {
	q := newQueue(t)
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	peer := os.NewFile(uintptr(fds[1]), "peer")
	c := adopt(t, q, fds[0], `{"protocols":["raw"]}`)
	syscall.Close(fds[0])
	if p, err := c.AwaitUp(waitFor); err != nil || p != "raw" {
		t.Fatalf("await up: %q %v", p, err)
	}
	if err := c.Data(0, []byte("ping"), false); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := peer.Read(buf); err != nil || string(buf) != "ping" {
		t.Fatalf("peer read %q %v", buf, err)
	}
	peer.Write([]byte("pong"))
	if got := rawRead(t, q, c, 4); string(got) != "pong" {
		t.Fatalf("got %q", got)
	}
	peer.Close()
	expectEnd(t, q, c, true, "closed")
}

// TestOpenFDRefused: what is not a connected stream socket, and options
// that cannot apply, are refused; the fd stays open.
func TestOpenFDRefused(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "x")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lf, _ := l.(*net.TCPListener).File()
	l.Close()
	defer lf.Close()
	s, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(s)
	for name, fd := range map[string]int{"-1": -1, "file": int(f.Fd()), "listener": int(lf.Fd()), "unconnected": s} {
		if _, err := AdoptFD(fd); !errors.Is(err, ErrBadArg) {
			t.Errorf("%s: %v, want ErrBadArg", name, err)
		}
		if fd >= 0 {
			var st syscall.Stat_t
			if err := syscall.Fstat(fd, &st); err != nil {
				t.Errorf("%s: fd closed: %v", name, err)
			}
		}
	}
	for _, js := range []string{`{"retry":1}`, `{"connect_timeout":100}`, `{"tcp_opts":{"nodelay":false}}`} {
		var oe *OptionError
		if err := CheckAdoptOptions([]byte(js)); !errors.As(err, &oe) {
			t.Errorf("%s: %v, want an OptionError", js, err)
		}
	}
	if err := CheckAdoptOptions([]byte(`{"tcp_opts":{"linger":5}}`)); err == nil || !strings.Contains(err.Error(), "tcp_opts.linger") {
		t.Errorf("tcp_opts.linger on an adopted socket: %v, want an error naming it", err)
	}
	for _, js := range []string{`{"retry":0}`, `{"tcp_opts":{"send_timeout":1000}}`} {
		if err := CheckAdoptOptions([]byte(js)); err != nil {
			t.Errorf("%s: %v", js, err)
		}
	}
	if _, err := OpenConn(&net.TCPConn{}, parseOpts(t, `{"transport":"tls"}`, 0), newQueue(t), nil); err == nil {
		t.Error("tls without server_name_indication nor verify_none accepted")
	}
}

// TestOpenFDTLS: TLS runs on an adopted TCP socket, verified against the
// test CA under the name server_name_indication gives, and ALPN picks h2.
func TestOpenFDTLS(t *testing.T) {
	q := newQueue(t)
	nc, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", itoa(srv.TLSPort())))
	if err != nil {
		t.Fatal(err)
	}
	f, err := nc.(*net.TCPConn).File()
	nc.Close()
	if err != nil {
		t.Fatal(err)
	}
	js := `{"transport":"tls","tls_opts":{"cacertfile":"` + srv.CAFile() + `","server_name_indication":"localhost"}}`
	c := adopt(t, q, int(f.Fd()), js)
	f.Close()
	p, err := c.AwaitUp(waitFor)
	if err != nil || p != "http2" {
		t.Fatalf("await up: %q %v", p, err)
	}
	ref := get(t, c, "/bytes/1")
	ev := nextOf(t, q, c)
	if ev.Kind != EvResponse || ev.Ref != ref || ev.Status != 200 {
		t.Fatalf("got %s, want a 200 response", evString(ev))
	}
}

// TestOpenFDTLSWrongName: the name verified is server_name_indication's:
// one the certificate does not hold fails, and the connection exits.
func TestOpenFDTLSWrongName(t *testing.T) {
	q := newQueue(t)
	nc, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", itoa(srv.TLSPort())))
	if err != nil {
		t.Fatal(err)
	}
	f, err := nc.(*net.TCPConn).File()
	nc.Close()
	if err != nil {
		t.Fatal(err)
	}
	js := `{"transport":"tls","tls_opts":{"cacertfile":"` + srv.CAFile() + `","server_name_indication":"nothere.invalid"}}`
	c := adopt(t, q, int(f.Fd()), js)
	f.Close()
	if p, err := c.AwaitUp(waitFor); err == nil {
		t.Fatalf("up as %q with a name the certificate does not hold", p)
	}
	ev := nextOf(t, q, c)
	if ev.Kind != EvExit {
		t.Fatalf("got %s, want EXIT", evString(ev))
	}
}
