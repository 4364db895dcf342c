// Package testserver is the local HTTP/1.1, HTTP/2 (TLS and h2c) and
// WebSocket peer that gunmetal's tests talk to. Every listener binds to
// 127.0.0.1 (or a Unix socket) and serves the same set of endpoints; see
// routes in handlers.go.
package testserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
)

// Config controls Start. The zero value is valid.
type Config struct {
	Unix     string    // optional Unix socket path served alongside TCP
	CertDir  string    // where ca.pem, cert.pem and key.pem go; a temp dir (removed by Close) if empty
	HTTPPort int       // cleartext port; 0 lets the OS pick
	TLSPort  int       // TLS port; 0 lets the OS pick
	Log      io.Writer // server-side errors; io.Discard if nil
}

// Server is a running (or stopped-but-restartable) test server.
type Server struct {
	cfg     Config
	log     *log.Logger
	handler http.Handler
	tlsCfg  *tls.Config
	tmpDir  string

	caFile, certFile, keyFile string
	caPool                    *x509.CertPool

	accepted atomic.Int64
	requests atomic.Int64

	life sync.Mutex     // serialises Stop/Restart
	wg   sync.WaitGroup // Serve goroutines of the current generation

	mu                sync.Mutex
	srv               *http.Server // nil while stopped
	httpPort, tlsPort int
	conns             map[*trackedConn]struct{}
}

// Start generates certificates and starts all listeners.
func Start(cfg Config) (*Server, error) {
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	s := &Server{
		cfg:      cfg,
		log:      log.New(cfg.Log, "testserver: ", log.LstdFlags),
		conns:    map[*trackedConn]struct{}{},
		httpPort: cfg.HTTPPort,
		tlsPort:  cfg.TLSPort,
	}
	dir := cfg.CertDir
	if dir == "" {
		d, err := os.MkdirTemp("", "gunmetal-testserver-")
		if err != nil {
			return nil, err
		}
		dir, s.tmpDir = d, d
	}
	cert, err := s.writeCerts(dir)
	if err != nil {
		s.removeTmp()
		return nil, err
	}
	s.tlsCfg = &tls.Config{
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"h2", "http/1.1"},
		MinVersion:   tls.VersionTLS12,
	}
	s.handler = s.routes()
	if err := s.listen(); err != nil {
		s.removeTmp()
		return nil, err
	}
	return s, nil
}

func (s *Server) HTTPPort() int    { s.mu.Lock(); defer s.mu.Unlock(); return s.httpPort }
func (s *Server) TLSPort() int     { s.mu.Lock(); defer s.mu.Unlock(); return s.tlsPort }
func (s *Server) UnixPath() string { return s.cfg.Unix }
func (s *Server) CAFile() string   { return s.caFile }
func (s *Server) CertFile() string { return s.certFile }
func (s *Server) KeyFile() string  { return s.keyFile }
func (s *Server) Accepted() int64  { return s.accepted.Load() }
func (s *Server) HTTPURL() string  { return "http://127.0.0.1:" + strconv.Itoa(s.HTTPPort()) }
func (s *Server) TLSURL() string   { return "https://localhost:" + strconv.Itoa(s.TLSPort()) }

// ClientTLSConfig trusts the generated CA; handy for Go clients in tests.
func (s *Server) ClientTLSConfig() *tls.Config {
	return &tls.Config{RootCAs: s.caPool, ServerName: "localhost"}
}

// Restart listens again on the same ports (and socket path) after Stop.
func (s *Server) Restart() error {
	s.life.Lock()
	defer s.life.Unlock()
	s.mu.Lock()
	running := s.srv != nil
	s.mu.Unlock()
	if running {
		return errors.New("testserver: already running")
	}
	return s.listen()
}

// Stop closes all listeners and every client connection, hijacked ones
// included. The ports stay reserved in the sense that Restart reuses them.
func (s *Server) Stop() {
	s.life.Lock()
	defer s.life.Unlock()
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv == nil {
		return
	}
	srv.Close()
	s.CloseClientConns() // http.Server forgets hijacked conns (ws, /drop)
	s.wg.Wait()
}

// Close stops the server and removes the temp cert dir, if any.
func (s *Server) Close() {
	s.Stop()
	s.removeTmp()
}

// CloseClientConns abruptly closes every open client connection (no TLS
// close_notify, no GOAWAY) while the listeners keep accepting.
func (s *Server) CloseClientConns() {
	s.mu.Lock()
	cs := make([]*trackedConn, 0, len(s.conns))
	for c := range s.conns {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
}

// FreePort returns a 127.0.0.1 TCP port that nothing listens on right now.
func FreePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *Server) removeTmp() {
	if s.tmpDir != "" {
		os.RemoveAll(s.tmpDir)
	}
}

// listen binds every listener (on the remembered ports, if any) and starts
// one fresh http.Server for all of them: an http.Server can't be reused
// after Close.
func (s *Server) listen() error {
	s.mu.Lock()
	hp, tp := s.httpPort, s.tlsPort
	s.mu.Unlock()

	var ls []net.Listener
	fail := func(err error) error {
		for _, l := range ls {
			l.Close()
		}
		return err
	}
	hl, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", hp))
	if err != nil {
		return fail(err)
	}
	ls = append(ls, hl)
	tl, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", tp))
	if err != nil {
		return fail(err)
	}
	ls = append(ls, tl)
	if s.cfg.Unix != "" {
		os.Remove(s.cfg.Unix) // stale socket from a crashed run
		ul, err := net.Listen("unix", s.cfg.Unix)
		if err != nil {
			return fail(err)
		}
		ls = append(ls, ul)
	}

	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetHTTP2(true)            // TLS + ALPN h2
	protos.SetUnencryptedHTTP2(true) // h2c prior knowledge next to HTTP/1.1
	// RFC 8441 extended CONNECT: Go 1.26's HTTP/2 server only advertises
	// SETTINGS_ENABLE_CONNECT_PROTOCOL when the process starts with
	// GODEBUG=http2xconnect=1 (read via os.Getenv in net/http's init, so a
	// //go:debug line doesn't help), and gobwas/ws's HTTPUpgrader
	// needs http.Hijacker, which HTTP/2 streams lack. So /ws is HTTP/1.1-only.
	srv := &http.Server{
		Handler:   s.handler,
		Protocols: &protos,
		ErrorLog:  s.log,
		// /drop-conn needs the connection behind an HTTP/2 stream.
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
	}

	s.mu.Lock()
	s.httpPort = hl.Addr().(*net.TCPAddr).Port
	s.tlsPort = tl.Addr().(*net.TCPAddr).Port
	s.srv = srv
	s.mu.Unlock()

	serve := func(l net.Listener) {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
				s.log.Printf("serve %s: %v", l.Addr(), err)
			}
		}()
	}
	serve(&trackListener{hl, s})
	serve(tls.NewListener(&trackListener{tl, s}, s.tlsCfg))
	for _, l := range ls[2:] {
		serve(&trackListener{l, s})
	}
	return nil
}

type connKey struct{}

// trackListener counts accepted connections and registers them so that
// CloseClientConns/Stop can reach hijacked ones too.
type trackListener struct {
	net.Listener
	s *Server
}

func (l *trackListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.s.accepted.Add(1)
	tc := &trackedConn{Conn: c, s: l.s}
	l.s.mu.Lock()
	l.s.conns[tc] = struct{}{}
	l.s.mu.Unlock()
	return tc, nil
}

type trackedConn struct {
	net.Conn
	s    *Server
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

// CloseWrite keeps net/http's and our half-close paths working through the wrapper.
func (c *trackedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// abort closes the raw connection under c, skipping TLS close_notify.
func abort(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	c.Close()
}
