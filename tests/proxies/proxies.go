// Package proxies starts real proxies for the tunnel tests on 127.0.0.1:
// tinyproxy (HTTP/1.1 CONNECT, Basic auth), microsocks (SOCKS5, with and
// without username/password), nghttpx (HTTP/2 forward proxy: CONNECT as an
// HTTP/2 stream), each from Debian's packages on a port picked here, and a
// scripted CONNECT proxy of ours for what they cannot be told to do
// (refusals, a delayed answer, a reset).
package proxies

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Proc is a proxy process.
type Proc struct {
	Port int
	cmd  *exec.Cmd
	dir  string
	log  *os.File
}

// Stop kills the proxy and removes its files.
func (p *Proc) Stop() {
	if p.cmd.Process != nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
	}
	p.log.Close()
	os.RemoveAll(p.dir)
}

// Log is what the proxy printed.
func (p *Proc) Log() string {
	b, _ := os.ReadFile(p.log.Name())
	return string(b)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func start(name string, conf func(dir string, port int) ([]string, error)) (*Proc, error) {
	bin, err := exec.LookPath(name)
	if err != nil {
		return nil, fmt.Errorf("%s is not installed (Debian package; make deps installs it): %w", name, err)
	}
	dir, err := os.MkdirTemp("", "gmproxy")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	args, err := conf(dir, port)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	log, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	p := &Proc{Port: port, cmd: cmd, dir: dir, log: log}
	// Ready when it accepts.
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			c.Close()
			return p, nil
		}
		if time.Now().After(deadline) {
			out := p.Log()
			p.Stop()
			return nil, fmt.Errorf("%s did not listen on %d: %s", name, port, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Tinyproxy starts tinyproxy; with user != "" it asks for Basic
// proxy-authorization.
func Tinyproxy(user, pass string) (*Proc, error) {
	return start("tinyproxy", func(dir string, port int) ([]string, error) {
		conf := fmt.Sprintf("Port %d\nListen 127.0.0.1\nTimeout 60\nMaxClients 100\nAllow 127.0.0.1\nLogLevel Info\n", port)
		if user != "" {
			conf += fmt.Sprintf("BasicAuth %s %s\n", user, pass)
		}
		f := filepath.Join(dir, "tinyproxy.conf")
		return []string{"-d", "-c", f}, os.WriteFile(f, []byte(conf), 0o600)
	})
}

// Microsocks starts microsocks; with user != "" it asks for
// username/password (RFC 1929).
func Microsocks(user, pass string) (*Proc, error) {
	return start("microsocks", func(dir string, port int) ([]string, error) {
		args := []string{"-i", "127.0.0.1", "-p", strconv.Itoa(port)}
		if user != "" {
			args = append(args, "-u", user, "-P", pass)
		}
		return args, nil
	})
}

// Nghttpx starts nghttpx as an HTTP/2 forward proxy (--http2-proxy):
// CONNECT is one stream of an HTTP/2 connection. As in its documented
// setup, it hands the requests to an HTTP/1.1 forward proxy behind it
// (backendPort: a tinyproxy). With certFile/keyFile it listens with TLS
// (h2 by ALPN), else h2c (prior knowledge).
func Nghttpx(certFile, keyFile string, backendPort int) (*Proc, error) {
	return start("nghttpx", func(dir string, port int) ([]string, error) {
		front := fmt.Sprintf("127.0.0.1,%d", port)
		args := []string{"--http2-proxy", "--workers=1", "--log-level=INFO",
			"--pid-file=" + filepath.Join(dir, "pid"), "--conf=/dev/null",
			"--errorlog-file=/dev/stderr", "--accesslog-file=/dev/stdout",
			"-b", fmt.Sprintf("127.0.0.1,%d", backendPort)}
		if certFile == "" {
			args = append(args, "-f", front+";no-tls")
		} else {
			args = append(args, "-f", front, keyFile, certFile)
		}
		return args, nil
	})
}

// Scripted is our own HTTP/1.1 CONNECT proxy for the cases real proxies
// cannot be told to produce: it answers every CONNECT with Status (after
// Delay), and on a 2xx relays bytes to the origin named in the request.
// Requests records the CONNECT requests it received.
type Scripted struct {
	Port   int
	Status int
	Header http.Header
	Delay  time.Duration

	l        net.Listener
	mu       sync.Mutex
	requests []*http.Request
	wg       sync.WaitGroup
	conns    map[net.Conn]bool
	closed   bool
}

// StartScripted starts it on 127.0.0.1.
func StartScripted(status int) (*Scripted, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Scripted{Port: l.Addr().(*net.TCPAddr).Port, Status: status, Header: http.Header{}, l: l, conns: map[net.Conn]bool{}}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Requests are the CONNECT requests received so far.
func (s *Scripted) Requests() []*http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*http.Request(nil), s.requests...)
}

// CloseConns closes every connection it has (client and origin sides),
// as a proxy going away would.
func (s *Scripted) CloseConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

// Close stops it and closes every connection.
func (s *Scripted) Close() {
	s.l.Close()
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Scripted) track(c net.Conn, on bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on && s.closed { // accepted (or dialled) as Close ran: it would be missed
		c.Close()
	} else if on {
		s.conns[c] = true
	} else {
		delete(s.conns, c)
	}
	return true
}

func (s *Scripted) accept() {
	defer s.wg.Done()
	for {
		c, err := s.l.Accept()
		if err != nil {
			return
		}
		s.track(c, true)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.track(c, false)
			defer c.Close()
			s.serve(c)
		}()
	}
}

func (s *Scripted) serve(c net.Conn) {
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		s.mu.Lock()
		s.requests = append(s.requests, req)
		status, delay := s.Status, s.Delay
		hdr := s.Header.Clone()
		s.mu.Unlock()
		if req.Method != "CONNECT" {
			io.WriteString(c, "HTTP/1.1 501 Not Implemented\r\ncontent-length: 0\r\n\r\n")
			continue
		}
		time.Sleep(delay)
		var b strings.Builder
		fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", status, http.StatusText(status))
		hdr.Write(&b)
		b.WriteString("\r\n")
		if status/100 != 2 {
			if _, ok := hdr["Content-Length"]; !ok {
				b.Reset()
				fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", status, http.StatusText(status))
				hdr.Set("Content-Length", "0")
				hdr.Write(&b)
				b.WriteString("\r\n")
			}
			io.WriteString(c, b.String())
			continue
		}
		origin, err := net.Dial("tcp", req.Host)
		if err != nil {
			io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
			continue
		}
		s.track(origin, true)
		io.WriteString(c, b.String())
		relay(c, br, origin)
		s.track(origin, false)
		return
	}
}

// relay copies both ways until either side ends; half-closes pass through.
func relay(client net.Conn, br *bufio.Reader, origin net.Conn) {
	done := make(chan struct{})
	go func() {
		io.Copy(origin, br)
		if cw, ok := origin.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		close(done)
	}()
	io.Copy(client, origin)
	if cw, ok := client.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	<-done
	origin.Close()
}


// TLSFront puts TLS in front of a proxy (socat, Debian's package): the
// proxy reached over TLS, as Gun's tests reach theirs with ssl.
func TLSFront(certFile, keyFile string, backendPort int) (*Proc, error) {
	return start("socat", func(dir string, port int) ([]string, error) {
		return []string{
			fmt.Sprintf("OPENSSL-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork,cert=%s,key=%s,verify=0", port, certFile, keyFile),
			fmt.Sprintf("TCP:127.0.0.1:%d", backendPort),
		}, nil
	})
}
