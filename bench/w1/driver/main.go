// Command driver runs W1 — one HTTP/2 connection, 100 concurrent streams,
// 100-byte GETs against nghttpd (h2c, prior knowledge) — for every client
// from one run: h2load, gunmetal's engine called from Go, gunmetal from C
// through the ABI (the w1 binary built from bench/w1/w1.c), and Go's
// net/http client. Rounds are interleaved (each client once per round) and
// each client's best and median rounds are reported, with ratios. Not a
// test: it prints figures.
//
//	driver -c-client BUILD/w1 [-n 200000] [-m 100] [-rounds 5] [-path /bytes/100]
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gunmetal/core"
	"gunmetal/tests/h2interop/nghttpd"
)

var (
	cClient = flag.String("c-client", "", "the w1 binary (gunmetal from C)")
	total   = flag.Int("n", 200000, "requests per client per round")
	conc    = flag.Int("m", 100, "concurrent streams on the one connection")
	rounds  = flag.Int("rounds", 5, "rounds (each client once per round)")
	path    = flag.String("path", "/bytes/100", "what to GET (nghttpd's document root is tests/h2interop/nghttpd's)")
	workers = flag.Int("server-workers", 1, "nghttpd worker threads")
	only    = flag.String("only", "", "run only the clients whose name contains this")
	cpuprof = flag.String("cpuprofile", "", "write a CPU profile of the in-process clients here")
)

type client struct {
	name string
	run  func(port int) (rps float64, err error)
	rps  []float64
}

func main() {
	flag.Parse()
	if *cClient == "" {
		fmt.Fprintln(os.Stderr, "driver: -c-client is required (bench/w1/run.sh builds it)")
		os.Exit(2)
	}
	dir, err := os.MkdirTemp("", "gm-w1-")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(dir)
	srv, err := nghttpd.Start(dir, nghttpd.Options{NoTLS: true, Args: []string{"-n", strconv.Itoa(*workers)}})
	if err != nil {
		fatal(err)
	}
	server = srv
	defer srv.Stop()

	h2load, err := exec.LookPath("h2load")
	if err != nil {
		fatal(fmt.Errorf("h2load is not installed (Debian package nghttp2-client): %v", err))
	}
	clients := []*client{
		{name: "h2load", run: func(port int) (float64, error) { return runH2load(h2load, port) }},
		{name: "gunmetal (Go)", run: runGunmetalGo},
		{name: "gunmetal (C ABI)", run: runGunmetalC},
		{name: "Go net/http", run: runNetHTTP},
	}
	if *only != "" {
		var keep []*client
		for _, c := range clients {
			if strings.Contains(c.name, *only) {
				keep = append(keep, c)
			}
		}
		clients = keep
	}
	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		if err != nil {
			fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	fmt.Printf("W1: 1 connection, %d concurrent streams, GET %s (100 bytes), %d requests per client per round, %d rounds\n",
		*conc, *path, *total, *rounds)
	fmt.Printf("server: nghttpd (h2c, %d worker) on 127.0.0.1:%d; %d CPUs, %s\n", *workers, srv.Port, runtime.NumCPU(), runtime.Version())
	for r := 1; r <= *rounds; r++ {
		for _, c := range clients {
			rps, err := c.run(srv.Port)
			if err != nil {
				fatal(fmt.Errorf("%s: %v\nnghttpd: %s", c.name, err, srv.Log()))
			}
			c.rps = append(c.rps, rps)
			fmt.Printf("  round %d  %-18s %10.0f req/s\n", r, c.name, rps)
		}
	}
	fmt.Println()
	fmt.Printf("%-18s %12s %12s %14s %16s\n", "client", "best req/s", "median", "vs h2load", "vs Go net/http")
	best := map[string]float64{}
	med := map[string]float64{}
	for _, c := range clients {
		s := append([]float64(nil), c.rps...)
		sort.Float64s(s)
		best[c.name], med[c.name] = s[len(s)-1], s[len(s)/2]
	}
	if best["h2load"] == 0 || best["Go net/http"] == 0 || best["gunmetal (C ABI)"] == 0 {
		for _, c := range clients {
			fmt.Printf("%-18s %12.0f %12.0f\n", c.name, best[c.name], med[c.name])
		}
		return
	}
	for _, c := range clients {
		fmt.Printf("%-18s %12.0f %12.0f %13.2fx %15.2fx\n", c.name, best[c.name], med[c.name],
			med[c.name]/med["h2load"], med[c.name]/med["Go net/http"])
	}
	fmt.Println("(ratios use the medians)")
	fmt.Printf("targets: gunmetal (C ABI) >= 0.7x h2load: %.2fx; >= 2.5x Go net/http: %.2fx\n",
		med["gunmetal (C ABI)"]/med["h2load"], med["gunmetal (C ABI)"]/med["Go net/http"])
}

// server is stopped by fatal too (os.Exit skips deferred calls).
var server *nghttpd.Server

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "driver:", err)
	if server != nil {
		server.Stop()
	}
	os.Exit(1)
}

var h2loadRPS = regexp.MustCompile(`finished in [0-9.]+m?s, ([0-9.]+) req/s`)

func runH2load(bin string, port int) (float64, error) {
	url := fmt.Sprintf("http://127.0.0.1:%d%s", port, *path)
	// h2load's -m is per client; -c 1 is one connection; -t 1 one thread.
	out, err := exec.Command(bin, "-n", strconv.Itoa(*total), "-c", "1", "-m", strconv.Itoa(*conc), "-t", "1", url).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("%v: %s", err, out)
	}
	if !strings.Contains(string(out), fmt.Sprintf("%d succeeded", *total)) {
		return 0, fmt.Errorf("not all requests succeeded:\n%s", out)
	}
	m := h2loadRPS.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("cannot read h2load's output:\n%s", out)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

func runGunmetalC(port int) (float64, error) {
	out, err := exec.Command(*cClient, strconv.Itoa(port), *path, strconv.Itoa(*total), strconv.Itoa(*conc), "2000").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("%v: %s", err, out)
	}
	f := strings.Fields(string(out))
	if len(f) != 3 || f[2] != "0" {
		return 0, fmt.Errorf("w1 printed %q", out)
	}
	n, _ := strconv.ParseFloat(f[0], 64)
	s, _ := strconv.ParseFloat(f[1], 64)
	return n / s, nil
}

// runGunmetalGo is the same loop as w1.c, on the Go API.
func runGunmetalGo(port int) (float64, error) {
	q, err := core.NewQueue()
	if err != nil {
		return 0, err
	}
	defer q.Free()
	o, err := core.ParseOptions([]byte(`{"protocols":["http2"],"retry":0}`), port)
	if err != nil {
		return 0, err
	}
	c, err := core.Open("127.0.0.1", port, o, q, nil)
	if err != nil {
		return 0, err
	}
	defer func() {
		c.Close()
		<-c.Done()
	}()
	if _, err := c.AwaitUp(10 * time.Second); err != nil {
		return 0, err
	}
	run := func(n int) error {
		issued, done := 0, 0
		get := func() error {
			_, err := c.Request(&core.Request{Method: "GET", Path: *path})
			issued++
			return err
		}
		for issued < n && issued < *conc {
			if err := get(); err != nil {
				return err
			}
		}
		evs := make([]*core.Event, 256)
		for done < n {
			k, err := q.Poll(evs, 10*time.Second)
			if err != nil || k == 0 {
				return fmt.Errorf("poll: %d %v", k, err)
			}
			for _, ev := range evs[:k] {
				end := false
				switch ev.Kind {
				case core.EvResponse, core.EvData:
					end = ev.Fin
				case core.EvTrailers:
					end = true
				case core.EvError, core.EvDown, core.EvExit:
					return fmt.Errorf("%s: %s", ev.Kind, ev.Reason)
				}
				if end {
					done++
					if issued < n {
						if err := get(); err != nil {
							return err
						}
					}
				}
			}
			clear(evs[:k])
		}
		return nil
	}
	if err := run(2000); err != nil {
		return 0, err
	}
	t0 := time.Now()
	if err := run(*total); err != nil {
		return 0, err
	}
	return float64(*total) / time.Since(t0).Seconds(), nil
}

// runNetHTTP: Go's client over h2c with prior knowledge, one connection,
// *conc goroutines issuing GETs.
func runNetHTTP(port int) (float64, error) {
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	var dials atomic.Int32
	tr := &http.Transport{
		Protocols:       &protos,
		MaxConnsPerHost: 1,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig: &tls.Config{},
	}
	tr.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: *conc}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr}
	url := fmt.Sprintf("http://127.0.0.1:%d%s", port, *path)
	run := func(n int) error {
		var left atomic.Int64
		left.Store(int64(n))
		var wg sync.WaitGroup
		var firstErr atomic.Value
		for range *conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for left.Add(-1) >= 0 {
					resp, err := cl.Get(url)
					if err != nil {
						firstErr.CompareAndSwap(nil, err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						firstErr.CompareAndSwap(nil, fmt.Errorf("status %d", resp.StatusCode))
						return
					}
				}
			}()
		}
		wg.Wait()
		if err, _ := firstErr.Load().(error); err != nil {
			return err
		}
		return nil
	}
	if err := run(2000); err != nil {
		return 0, err
	}
	t0 := time.Now()
	if err := run(*total); err != nil {
		return 0, err
	}
	rps := float64(*total) / time.Since(t0).Seconds()
	if d := dials.Load(); d != 1 {
		return 0, fmt.Errorf("net/http used %d connections, want 1", d)
	}
	return rps, nil
}
