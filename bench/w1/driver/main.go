// Command driver runs W1 — one HTTP/2 connection, 100 concurrent streams,
// 100-byte GETs against nghttpd (h2c, prior knowledge) — for every client
// from one run: h2load, gunmetal's engine called from Go, gunmetal from C
// through the ABI (the w1 binary built from bench/w1/w1.c), Go's net/http
// client, and any external clients given with -client (gunmetal from
// Python and Erlang, httpx: bench/w1/run.sh passes them). Rounds are
// interleaved (each client once per round) and each client's best and
// median rounds are reported, with ratios. Not a test: it prints figures.
//
//	driver -c-client BUILD/w1 [-n 200000] [-m 100] [-rounds 5] [-path /bytes/100]
//	       [-client 'NAME=COMMAND']... [-vs 'h2load,Go net/http']
//	       [-target 'LABEL: CLIENT vs BASE >= MIN']...
//
// An external client is a shell command (sh -c) run once per round against
// the driver's nghttpd, with {host}, {port}, {path} and {streams} replaced;
// it must exit 0 and print "R requests/s" (or "R req/s") on stdout, the last
// such figure being its rate. Anything else — a non-zero exit, no figure,
// running past -client-timeout — is reported as "client NAME failed: why",
// the client is left out of the later rounds, and the driver exits 1 after
// printing the table (as it does when a built-in client fails).
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
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
	"syscall"
	"time"

	"gunmetal/core"
	"gunmetal/tests/h2interop/nghttpd"
)

var (
	cClient  = flag.String("c-client", "", "the w1 binary (gunmetal from C)")
	total    = flag.Int("n", 200000, "requests per client per round (built-in clients; external ones choose their own)")
	conc     = flag.Int("m", 100, "concurrent streams on the one connection")
	rounds   = flag.Int("rounds", 5, "rounds (each client once per round)")
	path     = flag.String("path", "/bytes/100", "what to GET (nghttpd's document root is tests/h2interop/nghttpd's)")
	workers  = flag.Int("server-workers", 1, "nghttpd worker threads")
	only     = flag.String("only", "", "run only the clients whose name contains this")
	cpuprof  = flag.String("cpuprofile", "", "write a CPU profile of the in-process clients here")
	extTime  = flag.Duration("client-timeout", 60*time.Second, "longest an external client may run in one round")
	vsFlag   = flag.String("vs", "h2load,Go net/http", "comma-separated clients the table gives ratios to")
	externs  []extern
	targets  []target
	targetRE = regexp.MustCompile(`^(?:(.*?):\s*)?(.+?)\s+vs\s+(.+?)\s*>=\s*([0-9.]+)$`)
)

type extern struct{ name, command string }

type target struct {
	label, client, base string
	min                 float64
}

func init() {
	flag.Func("client", "an external client, 'NAME=COMMAND' (repeatable; see the package comment)", func(s string) error {
		name, cmd, ok := strings.Cut(s, "=")
		name, cmd = strings.TrimSpace(name), strings.TrimSpace(cmd)
		if !ok || name == "" || cmd == "" {
			return errors.New("want NAME=COMMAND")
		}
		externs = append(externs, extern{name, cmd})
		return nil
	})
	flag.Func("target", "a ratio to check, 'LABEL: CLIENT vs BASE >= MIN' (repeatable; medians)", func(s string) error {
		m := targetRE.FindStringSubmatch(strings.TrimSpace(s))
		if m == nil {
			return errors.New("want 'LABEL: CLIENT vs BASE >= MIN'")
		}
		min, err := strconv.ParseFloat(m[4], 64)
		if err != nil {
			return err
		}
		targets = append(targets, target{m[1], m[2], m[3], min})
		return nil
	})
}

type client struct {
	name   string
	run    func(port int) (rps float64, err error)
	rps    []float64
	failed error
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
	for _, e := range externs {
		e := e
		clients = append(clients, &client{name: e.name, run: func(port int) (float64, error) { return runExternal(e, port) }})
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
	width := 18
	for _, c := range clients {
		width = max(width, len(c.name))
	}
	fmt.Printf("W1: 1 connection, %d concurrent streams, GET %s (100 bytes), %d requests per built-in client per round, %d rounds\n",
		*conc, *path, *total, *rounds)
	fmt.Printf("server: nghttpd (h2c, %d worker) on 127.0.0.1:%d; %d CPUs, %s; load average at start: %s\n",
		*workers, srv.Port, runtime.NumCPU(), runtime.Version(), loadavg())
	for _, e := range externs {
		fmt.Printf("external client %q: %s\n", e.name, e.command)
	}
	t0 := time.Now()
	for r := 1; r <= *rounds; r++ {
		for _, c := range clients {
			if c.failed != nil {
				continue
			}
			rps, err := c.run(srv.Port)
			if err != nil {
				c.failed = err
				fmt.Printf("  round %d  client %s failed: %v\n", r, c.name, err)
				continue
			}
			c.rps = append(c.rps, rps)
			fmt.Printf("  round %d  %-*s %10.0f req/s\n", r, width, c.name, rps)
		}
	}
	fmt.Printf("(%d rounds in %.0f s; load average at the end: %s)\n", *rounds, time.Since(t0).Seconds(), loadavg())
	fmt.Println()

	best := map[string]float64{}
	med := map[string]float64{}
	for _, c := range clients {
		if c.failed != nil || len(c.rps) == 0 {
			continue
		}
		s := append([]float64(nil), c.rps...)
		sort.Float64s(s)
		best[c.name], med[c.name] = s[len(s)-1], s[len(s)/2]
	}
	var vs []string
	for _, b := range strings.Split(*vsFlag, ",") {
		if b = strings.TrimSpace(b); b != "" {
			vs = append(vs, b)
		}
	}
	fmt.Printf("%-*s %12s %12s", width, "client", "best req/s", "median")
	for _, b := range vs {
		fmt.Printf(" %*s", max(10, len(b)+4), "vs "+b)
	}
	fmt.Println()
	for _, c := range clients {
		if c.failed != nil {
			fmt.Printf("%-*s failed: %s\n", width, c.name, firstLine(c.failed.Error()))
			continue
		}
		fmt.Printf("%-*s %12.0f %12.0f", width, c.name, best[c.name], med[c.name])
		for _, b := range vs {
			if med[b] > 0 {
				fmt.Printf(" %*.2fx", max(10, len(b)+4)-1, med[c.name]/med[b])
			} else {
				fmt.Printf(" %*s", max(10, len(b)+4), "-")
			}
		}
		fmt.Println()
	}
	fmt.Println("(ratios use the medians)")
	if len(targets) > 0 {
		fmt.Println("targets:")
	}
	for _, t := range targets {
		label := ""
		if t.label != "" {
			label = t.label + ": "
		}
		if med[t.client] == 0 || med[t.base] == 0 {
			fmt.Printf("  %s%s vs %s >= %gx: not measured (a client failed or did not run)\n", label, t.client, t.base, t.min)
			continue
		}
		r := med[t.client] / med[t.base]
		verdict := "met"
		if r < t.min {
			verdict = "NOT met"
		}
		fmt.Printf("  %s%s vs %s: %.3fx (target >= %gx): %s\n", label, t.client, t.base, r, t.min, verdict)
	}
	failed := false
	for _, c := range clients {
		if c.failed != nil {
			failed = true
			fmt.Fprintf(os.Stderr, "client %s failed: %v\n", c.name, c.failed)
		}
	}
	if failed {
		if log := srv.Log(); log != "" {
			fmt.Fprintf(os.Stderr, "nghttpd's log (end):\n%s\n", tail(log, 4000))
		}
		srv.Stop()
		os.Exit(1)
	}
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

var extRPS = regexp.MustCompile(`([0-9]+(?:\.[0-9]+)?) req(?:uest)?s/s`)

// runExternal runs an external client's command once (its own process
// group, killed whole on timeout) and reads its rate from stdout.
func runExternal(e extern, port int) (float64, error) {
	cmdline := strings.NewReplacer("{host}", "127.0.0.1", "{port}", strconv.Itoa(port),
		"{path}", *path, "{streams}", strconv.Itoa(*conc)).Replace(e.command)
	ctx, cancel := context.WithTimeout(context.Background(), *extTime)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", cmdline)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	say := func(why string) error {
		out := strings.TrimSpace(tail(stderr.String(), 1500))
		if o := strings.TrimSpace(tail(stdout.String(), 1500)); o != "" {
			if out != "" {
				out += "\n"
			}
			out += o
		}
		if out == "" {
			return errors.New(why + " (and printed nothing)")
		}
		return fmt.Errorf("%s: %s", why, out)
	}
	if ctx.Err() == context.DeadlineExceeded {
		return 0, say(fmt.Sprintf("still running after %v, killed", *extTime))
	}
	if err != nil {
		return 0, say(err.Error())
	}
	m := extRPS.FindAllSubmatch(stdout.Bytes(), -1)
	if m == nil {
		return 0, say("no \"N requests/s\" on stdout")
	}
	rps, err := strconv.ParseFloat(string(m[len(m)-1][1]), 64)
	if err != nil || rps <= 0 {
		return 0, say(fmt.Sprintf("rate %q", m[len(m)-1][1]))
	}
	if s := strings.TrimSpace(stderr.String()); s != "" {
		fmt.Printf("    (%s on stderr: %s)\n", e.name, strings.ReplaceAll(tail(s, 500), "\n", " | "))
	}
	return rps, nil
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
