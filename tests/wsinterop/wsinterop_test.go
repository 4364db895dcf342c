// Package wsinterop tests gunmetal's WebSocket client against servers
// nobody in this project wrote: the Python `websockets` library
// (ws_server.py, started by the tests on a port they pick), and nginx
// proxying WebSocket over TLS to it (a config of our own, nginx.conf.tmpl).
//
// A missing python3, `websockets` module or nginx fails the tests (it does
// not skip them): `pip install websockets` and Debian's nginx package
// provide them (`make deps`).
package wsinterop

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gunmetal/core"
)

const waitFor = 15 * time.Second

func here() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// freePort is a port on 127.0.0.1 that nothing listens on right now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startPython runs ws_server.py on a port the test picks (another one if
// that was taken meanwhile) and returns it. pingEvery > 0 makes the server
// ping that often.
func startPython(t testing.TB, pingEvery time.Duration) int {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 is not installed: the WebSocket interop tests need it and its `websockets` package (pip install websockets)")
	}
	if out, err := exec.Command(py, "-c", "import websockets").CombinedOutput(); err != nil {
		t.Fatalf("the Python package websockets is missing (pip install websockets): %v\n%s", err, out)
	}
	var lastErr string
	for attempt := 0; attempt < 5; attempt++ {
		port := freePort(t)
		args := []string{filepath.Join(here(), "ws_server.py"), strconv.Itoa(port)}
		if pingEvery > 0 {
			args = append(args, strconv.FormatFloat(pingEvery.Seconds(), 'f', 3, 64))
		}
		cmd := exec.Command(py, args...)
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ready := make(chan string, 1)
		go func() {
			line, _ := bufio.NewReader(stdout).ReadString('\n')
			ready <- line
			io.Copy(io.Discard, stdout)
		}()
		var line string
		select {
		case line = <-ready:
		case <-time.After(waitFor):
		}
		if strings.HasPrefix(line, "ready ") {
			t.Cleanup(func() {
				stdin.Close() // the server exits when its stdin closes
				done := make(chan struct{})
				go func() { cmd.Wait(); close(done) }()
				select {
				case <-done:
				case <-time.After(5 * time.Second):
					cmd.Process.Kill()
					<-done
				}
			})
			return port
		}
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
		lastErr = stderr.String()
		if !strings.Contains(lastErr, "address already in use") {
			break
		}
	}
	t.Fatalf("ws_server.py did not start: %s", lastErr)
	return 0
}

// writeCert makes a self-signed certificate for 127.0.0.1 and localhost:
// nginx serves it, gunmetal trusts it (cacertfile).
func writeCert(t testing.TB, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "gunmetal wsinterop"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func findNginx(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx", "/sbin/nginx"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("nginx is not installed: run `make deps` (Debian package nginx)")
	return ""
}

// startNginx runs nginx (our nginx.conf.tmpl) on a TLS port the test picks,
// proxying WebSocket to 127.0.0.1:backend. It returns the port and the
// certificate to trust.
func startNginx(t testing.TB, backend int) (int, string) {
	t.Helper()
	bin := findNginx(t)
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	tmpl, err := os.ReadFile(filepath.Join(here(), "nginx.conf.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	user := ""
	if os.Geteuid() == 0 {
		// A root master would hand its workers to `nobody`, who cannot
		// read the test's temp dir.
		user = "user root root;"
		if g, err := exec.Command("id", "-gn").Output(); err == nil {
			user = "user root " + strings.TrimSpace(string(g)) + ";"
		}
	}
	for attempt := 0; attempt < 5; attempt++ {
		port := freePort(t)
		conf := strings.NewReplacer("@DIR@", dir, "@PORT@", strconv.Itoa(port), "@BACKEND@", strconv.Itoa(backend),
			"@CERT@", cert, "@KEY@", key, "@USER@", user).Replace(string(tmpl))
		confFile := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
		cmd := exec.Command(bin, "-p", dir, "-c", confFile, "-e", filepath.Join(dir, "logs", "error.log"))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		// Up once it accepts connections.
		deadline := time.Now().Add(waitFor)
		for time.Now().Before(deadline) {
			select {
			case <-exited:
				deadline = time.Time{}
				continue
			default:
			}
			if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
				c.Close()
				t.Cleanup(func() {
					cmd.Process.Signal(syscall.SIGQUIT) // graceful: the master stops its worker
					select {
					case <-exited:
					case <-time.After(5 * time.Second):
						cmd.Process.Kill()
						<-exited
					}
				})
				return port, cert
			}
			time.Sleep(20 * time.Millisecond)
		}
		cmd.Process.Kill()
		<-exited
		log, _ := os.ReadFile(filepath.Join(dir, "logs", "error.log"))
		if !strings.Contains(string(log)+out.String(), "Address already in use") {
			t.Fatalf("nginx did not start: %s\n%s", out.String(), log)
		}
	}
	t.Fatal("nginx did not start: no free port")
	return 0, ""
}

// ---- gunmetal side ----

type client struct {
	t *testing.T
	q *core.Queue
	c *core.Conn
}

func open(t *testing.T, port int, opts string) *client {
	t.Helper()
	q, err := core.NewQueue()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q.Free)
	o, err := core.ParseOptions([]byte(opts), port)
	if err != nil {
		t.Fatal(err)
	}
	c, err := core.Open("127.0.0.1", port, o, q, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		select {
		case <-c.Done():
		case <-time.After(waitFor):
			t.Errorf("connection did not exit")
		}
	})
	if _, err := c.AwaitUp(waitFor); err != nil {
		t.Fatalf("await up: %v", err)
	}
	return &client{t, q, c}
}

func (cl *client) next() *core.Event {
	cl.t.Helper()
	var evs [1]*core.Event
	n, err := cl.q.Poll(evs[:], waitFor)
	if err != nil || n == 0 {
		cl.t.Fatalf("no event within %v (%v)", waitFor, err)
	}
	return evs[0]
}

func evString(ev *core.Event) string {
	return fmt.Sprintf("%s ref %d op %d code %d protocol %q reason %q %d bytes killed %v",
		ev.Kind, ev.Ref, ev.WSOp, ev.CloseCode, ev.Protocol, ev.Reason, len(ev.Data), ev.Killed)
}

func (cl *client) expect(kind core.EventKind, ref uint64) *core.Event {
	cl.t.Helper()
	ev := cl.next()
	if ev.Kind != kind || (ref != 0 && ev.Ref != ref) {
		cl.t.Fatalf("got %s, want %s ref %d", evString(ev), kind, ref)
	}
	return ev
}

func (cl *client) expectWS(ref uint64, op uint8) *core.Event {
	cl.t.Helper()
	ev := cl.expect(core.EvWS, ref)
	if ev.WSOp != op {
		cl.t.Fatalf("got %s, want WS op %d", evString(ev), op)
	}
	return ev
}

func (cl *client) upgrade(path, wsOpts string) (uint64, *core.Event) {
	cl.t.Helper()
	o, err := core.ParseWSOpts([]byte(wsOpts))
	if err != nil {
		cl.t.Fatal(err)
	}
	ref, err := cl.c.WSUpgrade(path, nil, o)
	if err != nil {
		cl.t.Fatal(err)
	}
	return ref, cl.expect(core.EvUpgrade, ref)
}

func (cl *client) send(ref uint64, frames ...core.WSFrame) {
	cl.t.Helper()
	if err := cl.c.WSSend(ref, frames); err != nil {
		cl.t.Fatalf("ws send: %v", err)
	}
}

func header(hs []core.Header, name string) string {
	for _, h := range hs {
		if h.Name == name {
			return h.Value
		}
	}
	return ""
}

// suite runs the same checks over any path to a ws_server.py.
func suite(t *testing.T, port int, opts string) {
	t.Run("echo", func(t *testing.T) {
		cl := open(t, port, opts)
		ref, up := cl.upgrade("/echo", `{"protocols":["nope","superchat","chat"]}`)
		if p := header(up.Headers, "sec-websocket-protocol"); p != "superchat" {
			t.Fatalf("subprotocol %q, want superchat (headers %v)", p, up.Headers)
		}
		big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
		cl.send(ref, core.WSFrame{Op: core.WSText, Data: []byte("hello")},
			core.WSFrame{Op: core.WSBinary, Data: []byte{0, 255}},
			core.WSFrame{Op: core.WSBinary, Data: big})
		if ev := cl.expectWS(ref, core.WSText); string(ev.Data) != "hello" {
			t.Fatalf("echo %q", ev.Data)
		}
		if ev := cl.expectWS(ref, core.WSBinary); !bytes.Equal(ev.Data, []byte{0, 255}) {
			t.Fatalf("echo %v", ev.Data)
		}
		if ev := cl.expectWS(ref, core.WSBinary); !bytes.Equal(ev.Data, big) {
			t.Fatalf("big echo: %d bytes", len(ev.Data))
		}
		const n = 2000
		for i := 0; i < n; i += 100 {
			fs := make([]core.WSFrame, 100)
			for j := range fs {
				fs[j] = core.WSFrame{Op: core.WSText, Data: []byte(fmt.Sprintf("m%d", i+j))}
			}
			cl.send(ref, fs...)
		}
		for i := 0; i < n; i++ {
			if ev := cl.expectWS(ref, core.WSText); string(ev.Data) != fmt.Sprintf("m%d", i) {
				t.Fatalf("message %d: %q", i, ev.Data)
			}
		}
		cl.send(ref, core.WSFrame{Op: core.WSClose, Code: 4100, Data: []byte("done")})
		ev := cl.expectWS(ref, core.WSClose)
		if ev.CloseCode != 4100 || string(ev.Data) != "done" {
			t.Fatalf("close echo %d %q", ev.CloseCode, ev.Data)
		}
		ev = cl.expect(core.EvDown, 0)
		if ev.Protocol != "ws" || ev.Reason != "normal" || len(ev.Killed) != 1 || ev.Killed[0] != ref {
			t.Fatalf("got %s", evString(ev))
		}
	})
	t.Run("compress", func(t *testing.T) {
		cl := open(t, port, opts)
		ref, up := cl.upgrade("/echo", `{"compress":true}`)
		if ext := header(up.Headers, "sec-websocket-extensions"); !strings.HasPrefix(ext, "permessage-deflate") {
			t.Fatalf("extensions %q", ext)
		}
		msg := []byte(strings.Repeat("compress me, compress me; ", 400))
		for i := 0; i < 20; i++ {
			cl.send(ref, core.WSFrame{Op: core.WSText, Data: msg})
		}
		for i := 0; i < 20; i++ {
			if ev := cl.expectWS(ref, core.WSText); !bytes.Equal(ev.Data, msg) {
				t.Fatalf("echo %d differs", i)
			}
		}
	})
	t.Run("server_close", func(t *testing.T) {
		cl := open(t, port, opts)
		ref, _ := cl.upgrade("/close?code=4003", `{}`)
		ev := cl.expectWS(ref, core.WSClose)
		if ev.CloseCode != 4003 || string(ev.Data) != "bye" {
			t.Fatalf("close %d %q", ev.CloseCode, ev.Data)
		}
		ev = cl.expect(core.EvDown, 0)
		if ev.Protocol != "ws" || ev.Reason != "normal" || len(ev.Killed) != 1 || ev.Killed[0] != ref {
			t.Fatalf("got %s", evString(ev))
		}
	})
	t.Run("max_message_size", func(t *testing.T) {
		cl := open(t, port, opts)
		ref, _ := cl.upgrade("/echo", `{"max_message_size":100}`)
		cl.send(ref, core.WSFrame{Op: core.WSText, Data: bytes.Repeat([]byte("x"), 101)})
		if ev := cl.expect(core.EvError, ref); !strings.HasPrefix(ev.Reason, "max_message_size") {
			t.Fatalf("got %s", evString(ev))
		}
		if ev := cl.expect(core.EvDown, 0); ev.Protocol != "ws" {
			t.Fatalf("got %s", evString(ev))
		}
	})
}

func TestPythonWebsockets(t *testing.T) {
	suite(t, startPython(t, 0), `{"retry":0}`)
}

// TestPythonServerPings: the server's pings are answered (it would close
// the connection after ping_timeout otherwise) and, with silence_pings
// false, reported.
func TestPythonServerPings(t *testing.T) {
	port := startPython(t, 100*time.Millisecond)
	cl := open(t, port, `{"retry":0}`)
	ref, _ := cl.upgrade("/echo", `{"silence_pings":false}`)
	for i := 0; i < 3; i++ {
		cl.expectWS(ref, core.WSPing)
	}
	cl.send(ref, core.WSFrame{Op: core.WSText, Data: []byte("still here")})
	for {
		ev := cl.expect(core.EvWS, ref)
		if ev.WSOp == core.WSText {
			if string(ev.Data) != "still here" {
				t.Fatalf("echo %q", ev.Data)
			}
			break
		}
		if ev.WSOp != core.WSPing {
			t.Fatalf("got %s", evString(ev))
		}
	}
}

// TestNginxTLSProxy: WebSocket over TLS through nginx (proxy_pass with the
// Upgrade/Connection headers) to the Python server.
func TestNginxTLSProxy(t *testing.T) {
	backend := startPython(t, 0)
	port, cert := startNginx(t, backend)
	opts := fmt.Sprintf(`{"retry":0,"transport":"tls","protocols":["http"],"tls_opts":{"cacertfile":%q}}`, cert)
	suite(t, port, opts)
}

// startHypercorn serves asgi_echo.py with hypercorn on a port the test
// picks and returns it, and a function that kills it at once.
func startHypercorn(t testing.TB) (int, func()) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 is not installed: the RFC 8441 tests need it and its `hypercorn` package (pip install hypercorn)")
	}
	if out, err := exec.Command(py, "-c", "import hypercorn").CombinedOutput(); err != nil {
		t.Fatalf("the Python package hypercorn is missing (pip install hypercorn): %v\n%s", err, out)
	}
	var lastErr string
	for attempt := 0; attempt < 5; attempt++ {
		port := freePort(t)
		cmd := exec.Command(py, "-m", "hypercorn", "--bind", fmt.Sprintf("127.0.0.1:%d", port), "asgi_echo:app")
		cmd.Dir = here()
		// hypercorn serves from a worker process: signals go to the group.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		deadline := time.Now().Add(waitFor)
		for time.Now().Before(deadline) {
			select {
			case <-exited:
				deadline = time.Time{}
				continue
			default:
			}
			if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
				c.Close()
				pgid := cmd.Process.Pid
				t.Cleanup(func() {
					syscall.Kill(-pgid, syscall.SIGTERM)
					select {
					case <-exited:
					case <-time.After(5 * time.Second):
						syscall.Kill(-pgid, syscall.SIGKILL)
						<-exited
					}
					if t.Failed() || testing.Verbose() {
						t.Logf("hypercorn's output:\n%s", out.String())
					}
				})
				return port, func() { syscall.Kill(-pgid, syscall.SIGKILL); <-exited }
			}
			time.Sleep(20 * time.Millisecond)
		}
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		lastErr = out.String()
		if !strings.Contains(lastErr, "in use") {
			break
		}
	}
	t.Fatalf("hypercorn did not start: %s", lastErr)
	return 0, nil
}

func (cl *client) get(path string) string {
	cl.t.Helper()
	ref, err := cl.c.Request(&core.Request{Method: "GET", Path: path})
	if err != nil {
		cl.t.Fatal(err)
	}
	b, err := cl.c.AwaitBody(ref, waitFor)
	if err != nil {
		cl.t.Fatalf("GET %s: %v", path, err)
	}
	return string(b.Data)
}

// TestHypercornRFC8441: WebSocket over HTTP/2 (extended CONNECT) next to
// ordinary streams of the same connection, against hypercorn (h2c).
//
// hypercorn 0.18 forgets a WebSocket stream as soon as it has sent its own
// close frame and END_STREAM, and then fails the whole connection on the
// frames RFC 6455 and RFC 8441 still require from us on that stream (our
// close frame, our END_STREAM): "KeyError" in its log. So after a close
// these tests check the WebSocket's events, not that the connection lives.
func TestHypercornRFC8441(t *testing.T) {
	port, _ := startHypercorn(t)
	h2 := `{"retry":0,"protocols":["http2"]}`
	t.Run("echo", func(t *testing.T) {
		cl := open(t, port, h2)
		if in := cl.c.Info(); in.Protocol != "http2" {
			t.Fatalf("protocol %q", in.Protocol)
		}
		ref, up := cl.upgrade("/echo", `{"protocols":["chat"]}`)
		if p := header(up.Headers, "sec-websocket-protocol"); p != "chat" {
			t.Fatalf("subprotocol %q (headers %v)", p, up.Headers)
		}
		// Another stream of the same connection, while the WebSocket is open.
		if got := cl.get("/plain"); got != "ok 2" {
			t.Fatalf("GET beside the WebSocket: %q", got)
		}
		big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB: past every window
		cl.send(ref, core.WSFrame{Op: core.WSText, Data: []byte("hello")},
			core.WSFrame{Op: core.WSBinary, Data: big})
		if ev := cl.expectWS(ref, core.WSText); string(ev.Data) != "hello" {
			t.Fatalf("echo %q", ev.Data)
		}
		if ev := cl.expectWS(ref, core.WSBinary); !bytes.Equal(ev.Data, big) {
			t.Fatalf("big echo: %d bytes", len(ev.Data))
		}
		const n = 2000
		for i := 0; i < n; i += 100 {
			fs := make([]core.WSFrame, 100)
			for j := range fs {
				fs[j] = core.WSFrame{Op: core.WSText, Data: []byte(fmt.Sprintf("m%d", i+j))}
			}
			cl.send(ref, fs...)
		}
		for i := 0; i < n; i++ {
			if ev := cl.expectWS(ref, core.WSText); string(ev.Data) != fmt.Sprintf("m%d", i) {
				t.Fatalf("message %d: %q", i, ev.Data)
			}
		}
		if si, err := cl.c.StreamInfo(ref); err != nil || si.Protocol != "http2" {
			t.Fatalf("stream info %+v %v", si, err)
		}
		if got := cl.get("/again"); got != "ok 2" {
			t.Fatalf("GET beside the WebSocket: %q", got)
		}
		cl.send(ref, core.WSFrame{Op: core.WSClose, Code: 1000, Data: []byte("done")})
		if ev := cl.expectWS(ref, core.WSClose); ev.CloseCode != 1000 {
			t.Fatalf("close echo %d %q", ev.CloseCode, ev.Data)
		}
	})
	t.Run("compress", func(t *testing.T) {
		cl := open(t, port, h2)
		ref, up := cl.upgrade("/echo", `{"compress":true}`)
		t.Logf("extensions %q", header(up.Headers, "sec-websocket-extensions"))
		msg := []byte(strings.Repeat("compress me, compress me; ", 400))
		for i := 0; i < 10; i++ {
			cl.send(ref, core.WSFrame{Op: core.WSText, Data: msg})
		}
		for i := 0; i < 10; i++ {
			if ev := cl.expectWS(ref, core.WSText); !bytes.Equal(ev.Data, msg) {
				t.Fatalf("echo %d differs", i)
			}
		}
	})
	t.Run("server_close", func(t *testing.T) {
		cl := open(t, port, h2)
		ref, _ := cl.upgrade("/close", `{}`)
		ev := cl.expectWS(ref, core.WSClose)
		if ev.CloseCode != 4001 || string(ev.Data) != "bye" {
			t.Fatalf("close %d %q", ev.CloseCode, ev.Data)
		}
	})
	t.Run("two_websockets", func(t *testing.T) {
		cl := open(t, port, h2)
		a, _ := cl.upgrade("/echo", `{}`)
		b, _ := cl.upgrade("/echo", `{}`)
		cl.send(a, core.WSFrame{Op: core.WSText, Data: []byte("to a")})
		cl.send(b, core.WSFrame{Op: core.WSText, Data: []byte("to b")})
		got := map[uint64]string{}
		for len(got) < 2 {
			ev := cl.expect(core.EvWS, 0)
			got[ev.Ref] = string(ev.Data)
		}
		if got[a] != "to a" || got[b] != "to b" {
			t.Fatalf("echoes %v", got)
		}
	})
	t.Run("request_stays_http", func(t *testing.T) {
		// Over HTTP/2 a WebSocket does not take the connection over.
		cl := open(t, port, h2)
		ref, _ := cl.upgrade("/echo", `{}`)
		if got := cl.get("/x"); got != "ok 2" {
			t.Fatalf("GET: %q", got)
		}
		cl.send(ref, core.WSFrame{Op: core.WSText, Data: []byte("still")})
		cl.expectWS(ref, core.WSText)
	})
}

// TestHypercornRFC8441Killed: a WebSocket stream lost with its HTTP/2
// connection gets ERROR and is in DOWN's killed list (Gun #265).
func TestHypercornRFC8441Killed(t *testing.T) {
	port, kill := startHypercorn(t)
	cl := open(t, port, `{"retry":0,"protocols":["http2"]}`)
	ref, _ := cl.upgrade("/echo", `{}`)
	cl.send(ref, core.WSFrame{Op: core.WSText, Data: []byte("x")})
	cl.expectWS(ref, core.WSText)
	kill()
	if ev := cl.expect(core.EvError, ref); !strings.HasPrefix(ev.Reason, "closed") {
		t.Fatalf("got %s", evString(ev))
	}
	ev := cl.expect(core.EvDown, 0)
	if ev.Protocol != "http2" || len(ev.Killed) != 1 || ev.Killed[0] != ref {
		t.Fatalf("got %s", evString(ev))
	}
}
