// Package nghttpd runs Debian's nghttpd (package nghttp2-server) on
// 127.0.0.1 for interop tests and benchmarks: an HTTP/2 server nobody in
// this project wrote, and one that can push.
//
// The document root holds:
//
//	/index.html      "hello from nghttpd\n"
//	/pushed          "pushed\n"
//	/bytes/N         N bytes, byte i = 'a' + i%26, for N in Sizes
//
// Start serves TLS (ALPN h2) with a certificate for localhost and
// 127.0.0.1 signed by CAFile, or cleartext h2c (prior knowledge) with
// Options.NoTLS.
package nghttpd

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Sizes are the /bytes/N files.
var Sizes = []int{0, 10, 100, 1000, 100000, 1 << 20, 10 << 20}

// Options for Start.
type Options struct {
	NoTLS bool     // h2c with prior knowledge
	Args  []string // more nghttpd options, e.g. "--push=/=/pushed", "-m", "2", "-w", "16"
}

// Server is a running nghttpd.
type Server struct {
	Port     int
	Dir      string // document root, certificate, log
	CAFile   string // what clients trust ("" without TLS)
	CertFile string
	KeyFile  string

	cmd  *exec.Cmd
	log  *lockedBuffer
	done chan struct{}
	once sync.Once
}

// Binary finds nghttpd.
func Binary() (string, error) {
	if p, err := exec.LookPath("nghttpd"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/nghttpd", "/usr/bin/nghttpd", "/usr/local/bin/nghttpd"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("nghttpd is not installed: run `make deps` or `apt-get install -y nghttp2-server` (Debian package nghttp2-server)")
}

// Start runs nghttpd with its files in dir (created if needed). Stop it
// with Stop.
func Start(dir string, o Options) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "www", "bytes"), 0o755); err != nil {
		return nil, err
	}
	if err := writeFiles(filepath.Join(dir, "www")); err != nil {
		return nil, err
	}
	s := &Server{Dir: dir}
	if !o.NoTLS {
		if err := s.writeCerts(); err != nil {
			return nil, err
		}
	}
	// Pick a free port; another process may take it before nghttpd binds
	// it, so try a few.
	var last error
	for range 5 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		args := []string{"-a", "127.0.0.1", "-d", filepath.Join(dir, "www")}
		args = append(args, o.Args...)
		args = append(args, strconv.Itoa(port))
		if o.NoTLS {
			args = append([]string{"--no-tls"}, args...)
		} else {
			args = append(args, s.KeyFile, s.CertFile)
		}
		s.log = &lockedBuffer{}
		s.cmd = exec.Command(bin, args...)
		s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
		s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := s.cmd.Start(); err != nil {
			return nil, fmt.Errorf("nghttpd: %v", err)
		}
		s.done = make(chan struct{})
		go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(s.cmd, s.done)
		s.Port = port
		if last = s.waitListening(); last == nil {
			return s, nil
		}
		s.Stop()
	}
	return nil, fmt.Errorf("nghttpd did not start: %v", last)
}

func (s *Server) waitListening() error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("nghttpd exited: %s", s.log.String())
		default:
		}
		nc, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)), time.Second)
		if err == nil {
			nc.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("nghttpd not listening on %d after 10s: %s", s.Port, s.log.String())
}

// Log is what nghttpd printed.
func (s *Server) Log() string { return s.log.String() }

// Stop ends nghttpd; calling it twice is harmless.
func (s *Server) Stop() {
	s.once.Do(func() {
		if s.cmd != nil && s.cmd.Process != nil {
			s.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.done:
			case <-time.After(5 * time.Second):
				s.cmd.Process.Kill()
				<-s.done
			}
		}
	})
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func writeFiles(www string) error {
	if err := os.WriteFile(filepath.Join(www, "index.html"), []byte("hello from nghttpd\n"), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(www, "pushed"), []byte("pushed\n"), 0o644); err != nil {
		return err
	}
	for _, n := range Sizes {
		p := filepath.Join(www, "bytes", strconv.Itoa(n))
		if st, err := os.Stat(p); err == nil && st.Size() == int64(n) {
			continue
		}
		b := make([]byte, n)
		for i := range b {
			b[i] = 'a' + byte(i%26)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) writeCerts() error {
	s.CAFile = filepath.Join(s.Dir, "ca.pem")
	s.CertFile = filepath.Join(s.Dir, "cert.pem")
	s.KeyFile = filepath.Join(s.Dir, "key.pem")
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gunmetal nghttpd test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(0, 1, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(0, 1, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	write := func(path, typ string, b []byte) error {
		return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600)
	}
	if err := write(s.CAFile, "CERTIFICATE", caDER); err != nil {
		return err
	}
	if err := write(s.CertFile, "CERTIFICATE", der); err != nil {
		return err
	}
	return write(s.KeyFile, "PRIVATE KEY", kb)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 1<<20 {
		return len(p), nil
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
