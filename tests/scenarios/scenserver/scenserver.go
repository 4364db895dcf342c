// Package scenserver serves the scenario suite (tests/scenarios): the test
// server (gunmetal/tests/testserver) and, for every scenario file with a
// "script", a loopback listener that plays the script to each client
// connection: HTTP/1.1 bytes, HTTP/2 frames, WebSocket frames. Every host's
// runner uses the same servers (the Go runner in-process, the others through
// the command tests/scenarios/server), so that a scenario means the same
// bytes on the wire in every host.
package scenserver

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"gunmetal/tests/testserver"
)

// Script is a scenario's server side: what to do on the Nth client
// connection (Conns[N], the last one again for any later connection).
type Script struct {
	Conns [][]Step `json:"conns"`
}

// Step is one scripted action, named by Do; the other fields are its
// arguments. tests/scenarios/README.md lists the actions.
type Step struct {
	Do       string            `json:"do"`
	Line     string            `json:"line,omitempty"`
	Data     string            `json:"data,omitempty"`
	Stream   string            `json:"stream,omitempty"`
	As       string            `json:"as,omitempty"`
	Path     string            `json:"path,omitempty"`
	Status   int               `json:"status,omitempty"`
	Headers  [][2]string       `json:"headers,omitempty"`
	End      bool              `json:"end,omitempty"`
	Code     int               `json:"code,omitempty"`
	Last     string            `json:"last,omitempty"`
	Op       string            `json:"op,omitempty"`
	Size     int               `json:"size,omitempty"`
	N        int               `json:"n,omitempty"`
	Settings map[string]uint32 `json:"settings,omitempty"`
}

// Server is the test server plus one listener per scripted scenario.
type Server struct {
	TS      *testserver.Server
	lns     map[string]net.Listener
	log     *log.Logger
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	closed  bool
	fails   map[string][]string
	scripts map[string]*Script
	active  map[string]int // script connections still playing, per scenario
	idle    *sync.Cond
}

// Info is what the command prints: where each server listens.
type Info struct {
	HTTP    int            `json:"http"`
	HTTPS   int            `json:"https"`
	CA      string         `json:"ca"`
	Scripts map[string]int `json:"scripts"`
}

// Start starts the test server and a listener for every scripted scenario
// in dir (*.json files with a "script").
func Start(dir string, logw io.Writer) (*Server, error) {
	if logw == nil {
		logw = io.Discard
	}
	s := &Server{lns: map[string]net.Listener{}, log: log.New(logw, "scenserver: ", 0),
		conns: map[net.Conn]struct{}{}, fails: map[string][]string{}, scripts: map[string]*Script{},
		active: map[string]int{}}
	s.idle = sync.NewCond(&s.mu)
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var sc struct {
			Name   string  `json:"name"`
			Script *Script `json:"script"`
		}
		if err := json.Unmarshal(b, &sc); err != nil {
			return nil, fmt.Errorf("%s: %v", f, err)
		}
		if want := strings.TrimSuffix(filepath.Base(f), ".json"); sc.Name != want {
			return nil, fmt.Errorf("%s: name %q, want %q (the file's name)", f, sc.Name, want)
		}
		if sc.Script == nil {
			continue
		}
		if len(sc.Script.Conns) == 0 {
			return nil, fmt.Errorf("%s: script without conns", f)
		}
		s.scripts[sc.Name] = sc.Script
	}
	s.TS, err = testserver.Start(testserver.Config{Log: logw})
	if err != nil {
		return nil, err
	}
	for name, sc := range s.scripts {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			s.Close()
			return nil, err
		}
		s.lns[name] = ln
		s.wg.Add(1)
		go s.accept(name, sc, ln)
	}
	return s, nil
}

// Info says where everything listens.
func (s *Server) Info() Info {
	in := Info{HTTP: s.TS.HTTPPort(), HTTPS: s.TS.TLSPort(), CA: s.TS.CAFile(), Scripts: map[string]int{}}
	for name, ln := range s.lns {
		in.Scripts[name] = ln.Addr().(*net.TCPAddr).Port
	}
	return in
}

// Failures are the script errors seen so far on a scenario's connections
// (a client that did not send what the script expected).
func (s *Server) Failures(name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.fails[name]...)
}

// Settle waits (at most Timeout) until no connection of the scenario is
// still playing its script, so that Failures is complete: a client's end
// can reach the host before the script has seen it.
func (s *Server) Settle(name string) {
	t := time.AfterFunc(Timeout, func() {
		s.mu.Lock()
		s.idle.Broadcast()
		s.mu.Unlock()
	})
	defer t.Stop()
	deadline := time.Now().Add(Timeout)
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.active[name] > 0 && time.Now().Before(deadline) {
		s.idle.Wait()
	}
}

// Close stops every listener and connection, and the test server.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	for _, ln := range s.lns {
		ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	if s.TS != nil {
		s.TS.Close()
	}
}

func (s *Server) accept(name string, sc *Script, ln net.Listener) {
	defer s.wg.Done()
	for n := 0; ; n++ {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.conns[nc] = struct{}{}
		s.active[name]++
		s.mu.Unlock()
		steps := sc.Conns[min(n, len(sc.Conns)-1)]
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			err := play(nc, steps)
			nc.Close()
			s.mu.Lock()
			delete(s.conns, nc)
			s.active[name]--
			s.idle.Broadcast()
			closed := s.closed
			if err != nil && !closed {
				msg := fmt.Sprintf("connection %d: %v", n, err)
				s.fails[name] = append(s.fails[name], msg)
				s.log.Printf("%s: %s", name, msg)
			}
			s.mu.Unlock()
		}()
	}
}
