// Command harness runs issue 16's workloads (W1–W6) for every client
// against the same server, rounds interleaved (each client once per round),
// and prints medians with ratios to the workload's base (h2load for W1–W3,
// Go's coder/websocket client for W4), client CPU per request and peak RSS
// beside every rate. bench/run.sh builds the clients and runs it. Not a
// test: it prints figures; it exits 1 only if a client failed.
//
//	harness -build DIR -root REPO [-only w1,w2,...] [-quick] [-rounds N]
//
// Every client is a process of its own. CPU is user + sys of that process
// over its measured part, net of start-up and warm-up: the clients written
// here print it ("RESULT n=.. s=.. cpu=.."); for h2load, which cannot, it is
// the process's rusage less that of a one-request run. Peak RSS is the
// process's ru_maxrss (through bench/clients/rusage.c). A client that cannot run here prints "NA why" and is
// shown as n/a with the reason.
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"gunmetal/tests/h2interop/nghttpd"
	"gunmetal/tests/testserver"
)

var (
	build  = flag.String("build", "build", "the build directory (clients and library)")
	root   = flag.String("root", ".", "the repository")
	only   = flag.String("only", "w1,w2,w3,w4,w5,w6", "workloads to run, comma-separated")
	quick  = flag.Bool("quick", false, "each workload once, briefly (a smoke run: figures mean nothing)")
	rounds = flag.Int("rounds", 5, "interleaved rounds per workload")
	failed bool
)

// client is one peer of a workload.
type client struct {
	name     string
	argv     []string
	baseline []string // h2load: a one-request run, for CPU net of start-up
	na       string   // why it cannot run here ("" : it can)
	samples  []sample
	err      error
	baseCPU  float64
}

type sample struct {
	n, s, cpu float64 // units, seconds, CPU seconds (measured part)
	rssKB     int64   // peak RSS
	kv        map[string]float64
}

type workload struct {
	id, title     string
	unit          string  // "req/s", "MB/s", "msgs/s", "events/s"
	perUnit       float64 // bytes per unit for MB/s
	lowerIsBetter bool    // W3: time
	body          float64 // bytes of each response body: a client reporting bytes= must have read n × body
	base          []string
	clients       []*client
}

func main() {
	flag.Parse()
	if *quick {
		*rounds = 1
	}
	var lim syscall.Rlimit // W5: 10,000 connections on each side
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	fmt.Printf("machine: %d CPUs (%s), %s; %s; load average %s\n", runtime.NumCPU(), cpuModel(), kernel(), versions(), loadavg())
	for _, w := range strings.Split(*only, ",") {
		w = strings.TrimSpace(w)
		var err error
		switch w {
		case "w1":
			err = runW1()
		case "w2":
			err = runW2()
		case "w3":
			err = runW3()
		case "w4":
			err = runW4()
		case "w5":
			err = runW5()
		case "w6":
			err = runW6()
		default:
			err = fmt.Errorf("unknown workload %q", w)
		}
		if err != nil {
			fmt.Printf("%s: %v\n", w, err)
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}

func q(quickV, fullV int) string {
	if *quick {
		return strconv.Itoa(quickV)
	}
	return strconv.Itoa(fullV)
}

func bin(name string) string { return filepath.Join(*build, name) }

func nghttpdStart(tls bool) (*nghttpd.Server, string, error) {
	dir, err := os.MkdirTemp("", "gm-bench-")
	if err != nil {
		return nil, "", err
	}
	s, err := nghttpd.Start(dir, nghttpd.Options{NoTLS: !tls, Args: []string{"-n", "1"}})
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", err
	}
	return s, dir, nil
}

func h2loadClient(url, n, c, m string) *client {
	return &client{name: "h2load", argv: []string{"h2load", "-n", n, "-c", c, "-m", m, "-t", "1", url},
		baseline: []string{"h2load", "-n", "1", "-c", "1", "-m", "1", "-t", "1", url}}
}

// erlangNA marks c n/a when the Erlang binding is not built.
func erlangNA(c *client) *client {
	if _, err := os.Stat(filepath.Join(*root, "bindings/erlang_nif/priv/gunmetal_nif.so")); err != nil {
		c.na = "the Erlang binding is not built (make -C bindings/erlang_nif; bench/run.sh does it when erl is installed)"
	}
	return c
}

func gunNA() *client {
	return &client{name: "Gun 2.x (Erlang)", na: "not installable here: rebar3 finds no gun package in its registry and cannot fetch the source (no network route); see RESULTS.md. bench/w4/erl_ws.escript runs it with --module gun where it is"}
}

// ---- W1: 1 connection × 100 streams, 100-byte GETs, nghttpd h2c and TLS.
func runW1() error {
	for _, tls := range []bool{false, true} {
		srv, dir, err := nghttpdStart(tls)
		if err != nil {
			return err
		}
		port, t, scheme, name := strconv.Itoa(srv.Port), "0", "http", "h2c"
		if tls {
			t, scheme, name = "1", "https", "TLS"
		}
		n, warm, secs, wsecs := q(5000, 200000), q(500, 2000), q(1, 2), q(0, 1)
		py := func(kind string) []string {
			a := []string{"python3", filepath.Join(*root, "bench/w1/py_client.py"), "--client", kind, "--port", port,
				"--seconds", secs, "--warmup", wsecs}
			if tls {
				a = append(a, "--tls")
			}
			return a
		}
		erl := []string{"escript", filepath.Join(*root, "bindings/erlang_nif/bench_w1.escript"), "--port", port,
			"--protocol", "http2", "--path", "/bytes/100", "--streams", "100", "--seconds", secs, "--warmup", wsecs}
		if tls {
			erl = append(erl, "--tls")
		}
		erlC := erlangNA(&client{name: "gunmetal (Erlang)", argv: erl})
		w := &workload{id: "W1 " + name, unit: "req/s", base: []string{"h2load"}, body: 100,
			title: fmt.Sprintf("1 connection, 100 concurrent streams, GET /bytes/100, nghttpd (%s, 1 worker); %s requests per round (Python, Erlang: %s s after %s s warm-up)", name, n, secs, wsecs),
			clients: []*client{
				h2loadClient(scheme+"://127.0.0.1:"+port+"/bytes/100", n, "1", "100"),
				{name: "gunmetal (C)", argv: []string{bin("gm_client"), "multi", port, t, "/bytes/100", n, "100", warm}},
				{name: "gunmetal (Python sync)", argv: py("sync")},
				{name: "gunmetal (Python asyncio)", argv: py("asyncio")},
				erlC,
				{name: "libcurl multi (C)", argv: []string{bin("curl_client"), "multi", port, t, "/bytes/100", n, "100", warm}},
				{name: "Go net/http", argv: []string{bin("goclient"), "multi", port, t, "/bytes/100", n, "100", warm}},
				{name: "httpx (HTTP/2)", argv: py("httpx")},
				{name: "aiohttp", na: "no HTTP/2 client (HTTP/1.1 only)"},
				gunNA(),
			}}
		err = w.run()
		srv.Stop()
		os.RemoveAll(dir)
		if err != nil {
			return err
		}
	}
	return nil
}

// ---- W2: 1 MiB bodies, 10 in flight, 1 connection, Go test server h2c and TLS.
func runW2() error {
	srv, err := testserver.Start(testserver.Config{})
	if err != nil {
		return err
	}
	defer srv.Close()
	const path = "/bytes/1048576"
	for _, tls := range []bool{false, true} {
		port, t, scheme, name := strconv.Itoa(srv.HTTPPort()), "0", "http", "h2c"
		if tls {
			port, t, scheme, name = strconv.Itoa(srv.TLSPort()), "1", "https", "TLS"
		}
		n, warm, secs := q(20, 1000), q(10, 50), q(1, 3)
		httpx := []string{"python3", filepath.Join(*root, "bench/w1/py_client.py"), "--client", "httpx", "--port", port,
			"--path", path, "--body", "1048576", "--streams", "10", "--seconds", secs, "--warmup", q(0, 1)}
		if tls {
			httpx = append(httpx, "--tls")
		}
		w := &workload{id: "W2 " + name, unit: "MB/s", perUnit: 1 << 20, body: 1 << 20, base: []string{"h2load", "libcurl multi (C)"},
			title: fmt.Sprintf("1 connection, 10 concurrent streams, GET %s (1 MiB), Go test server (%s); %s requests per round (httpx: %s s)", path, name, n, secs),
			clients: []*client{
				h2loadClient(scheme+"://127.0.0.1:"+port+path, n, "1", "10"),
				{name: "gunmetal (C)", argv: []string{bin("gm_client"), "multi", port, t, path, n, "10", warm}},
				{name: "libcurl multi (C)", argv: []string{bin("curl_client"), "multi", port, t, path, n, "10", warm}},
				{name: "Go net/http", argv: []string{bin("goclient"), "multi", port, t, path, n, "10", warm}},
				{name: "httpx (HTTP/2)", argv: httpx},
				{name: "aiohttp", na: "no HTTP/2 client (HTTP/1.1 only)"},
				gunNA(),
			}}
		if err := w.run(); err != nil {
			return err
		}
	}
	return nil
}

// ---- W3: 1,000 connections at once, one GET each (nghttpd h2c).
func runW3() error {
	srv, dir, err := nghttpdStart(false)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	defer srv.Stop()
	port, n := strconv.Itoa(srv.Port), q(100, 1000)
	w := &workload{id: "W3", unit: "s", lowerIsBetter: true, body: 100, base: []string{"h2load"},
		title: fmt.Sprintf("%s connections at once, one GET /bytes/100 each, nghttpd (h2c, 1 worker); time to the last response", n),
		clients: []*client{
			h2loadClient("http://127.0.0.1:"+port+"/bytes/100", n, n, "1"),
			{name: "gunmetal (C)", argv: []string{bin("gm_client"), "conns", port, "0", "/bytes/100", n}},
			{name: "libcurl multi (C)", argv: []string{bin("curl_client"), "conns", port, "0", "/bytes/100", n}},
			{name: "Go net/http", argv: []string{bin("goclient"), "conns", port, "0", "/bytes/100", n}},
			gunNA(),
		}}
	return w.run()
}

// ---- W4: one WebSocket, 100-byte echo, 100 in flight (Go test server /ws).
func runW4() error {
	srv, err := testserver.Start(testserver.Config{})
	if err != nil {
		return err
	}
	defer srv.Close()
	port, secs, warm := strconv.Itoa(srv.HTTPPort()), q(1, 3), q(0, 1)
	url := "ws://127.0.0.1:" + port + "/ws"
	w := &workload{id: "W4", unit: "msgs/s", base: []string{"coder/websocket (Go)"},
		title: fmt.Sprintf("one WebSocket connection, 100-byte binary echo, 100 in flight, Go test server (/ws); %s s per round after %s s warm-up", secs, warm),
		clients: []*client{
			{name: "coder/websocket (Go)", argv: []string{bin("w4-peer"), "-url", url, "-seconds", secs, "-inflight", "100", "-size", "100", "-warmup", warm}},
			{name: "gunmetal (C)", argv: []string{bin("w4"), port, secs, "100", "100", warm}},
			erlangNA(&client{name: "gunmetal (Erlang)", argv: []string{"escript", filepath.Join(*root, "bench/w4/erl_ws.escript"),
				"--port", port, "--seconds", secs, "--warmup", warm}}),
			{name: "aiohttp", argv: []string{"python3", filepath.Join(*root, "bench/w4/aiohttp_ws.py"), "--url", url, "--seconds", secs, "--warmup", warm}},
			gunNA(),
		}}
	return w.run()
}

// ---- W5: N idle h2c connections: RSS per connection (nghttpd).
func runW5() error {
	srv, dir, err := nghttpdStart(false)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	defer srv.Stop()
	port, n, idle := strconv.Itoa(srv.Port), q(300, 10000), q(1, 3)
	w := &workload{id: "W5", unit: "KiB/conn", lowerIsBetter: true, body: 100, base: []string{"libcurl multi (C)"},
		title: fmt.Sprintf("%s idle h2c connections (one GET each first), nghttpd; RSS growth per connection after %s s idle (target <= 12 KiB)", n, idle),
		clients: []*client{
			{name: "gunmetal (C)", argv: []string{bin("gm_client"), "idle", port, "0", "/bytes/100", n, idle}},
			{name: "libcurl multi (C)", argv: []string{bin("curl_client"), "idle", port, "0", "/bytes/100", n, idle}},
			{name: "Go net/http", argv: []string{bin("goclient"), "idle", port, "0", "/bytes/100", n, idle}},
			gunNA(),
		}}
	return w.run()
}

// ---- W6: draining a pile of queued events from C (Go test server).
func runW6() error {
	srv, err := testserver.Start(testserver.Config{})
	if err != nil {
		return err
	}
	defer srv.Close()
	port := strconv.Itoa(srv.HTTPPort())
	h2n, wsn, rr := q(4000, 40000), q(10000, 100000), q(1, 3)
	w := &workload{id: "W6", unit: "events/s", base: []string{"HTTP/2, batch 16"},
		title: fmt.Sprintf("a pile of queued events drained with gm_queue_poll(batch) + gm_events_free from C: HTTP/2 %s events (RESPONSE + DATA of 100-byte GETs over %s connections), WebSocket %s 100-byte messages; median of %s drains per round (target >= 20 M events/s at batch 256)", h2n, q(10, 100), wsn, rr),
		clients: []*client{
			{name: "HTTP/2, batch 16", argv: []string{bin("w6"), port, "h2", h2n, "16", rr}},
			{name: "HTTP/2, batch 256", argv: []string{bin("w6"), port, "h2", h2n, "256", rr}},
			{name: "WebSocket, batch 16", argv: []string{bin("w6"), port, "ws", wsn, "16", rr}},
			{name: "WebSocket, batch 256", argv: []string{bin("w6"), port, "ws", wsn, "256", rr}},
		}}
	return w.run()
}

// ---- running and reporting

func (w *workload) run() error {
	fmt.Printf("\n== %s: %s\n", w.id, w.title)
	fmt.Printf("   %d round(s), clients interleaved; load average at start %s\n", *rounds, loadavg())
	t0 := time.Now()
	for _, c := range w.clients {
		if c.na == "" && c.baseline != nil {
			var cpus []float64
			for range 3 {
				s, err := execute(c.baseline)
				if err != nil {
					break
				}
				cpus = append(cpus, s.cpu)
			}
			if len(cpus) > 0 {
				c.baseCPU = median(cpus)
			}
		}
	}
	for r := 1; r <= *rounds; r++ {
		for _, c := range w.clients {
			if c.na != "" || c.err != nil {
				continue
			}
			s, err := execute(c.argv)
			if err != nil {
				if na, ok := err.(naError); ok {
					c.na = string(na)
					continue
				}
				c.err = err
				failed = true
				fmt.Printf("   round %d: %s failed: %v\n", r, c.name, err)
				continue
			}
			if b, ok := s.kv["bytes"]; ok && w.body > 0 && b != s.n*w.body {
				c.err = fmt.Errorf("read %.0f body bytes for %.0f responses of %.0f", b, s.n, w.body)
				failed = true
				fmt.Printf("   round %d: %s failed: %v\n", r, c.name, c.err)
				continue
			}
			if c.baseline != nil {
				s.cpu = max(0, s.cpu-c.baseCPU)
			}
			c.samples = append(c.samples, s)
		}
	}
	fmt.Printf("   %.0f s; load average at end %s\n", time.Since(t0).Seconds(), loadavg())
	w.report()
	return nil
}

type naError string

func (e naError) Error() string { return string(e) }

var resultRE = regexp.MustCompile(`(?m)^RESULT (.*)$`)
var threeRE = regexp.MustCompile(`(?m)^([0-9.]+) ([0-9.]+) ([0-9.]+)$`)
var h2loadRE = regexp.MustCompile(`finished in ([0-9.]+)(m?s),`)
var h2loadOK = regexp.MustCompile(`requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded`)

// execute runs argv once; the figures it printed, its CPU (its own figure,
// or its rusage when it prints none) and its peak RSS.
func execute(argv []string) (sample, error) {
	limit := 10 * time.Minute
	if *quick {
		limit = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	// Through bench/clients/rusage.c: see there why.
	cmd := exec.CommandContext(ctx, bin("rusage"), argv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.Env = append(os.Environ(), "GUNMETAL_BUILD_DIR="+*build, "GUNMETAL_LIBRARY="+filepath.Join(*build, "libgunmetal.so"))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	pr, pw, perr := os.Pipe()
	if perr != nil {
		return sample{}, perr
	}
	cmd.ExtraFiles = []*os.File{pw} // fd 3
	ruc := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(pr)
		pr.Close()
		ruc <- string(b)
	}()
	err := cmd.Run()
	pw.Close()
	var s sample
	var ut, st float64
	if _, e := fmt.Sscanf(<-ruc, "RUSAGE %f %f %d", &ut, &st, &s.rssKB); e == nil {
		s.cpu = ut + st
	}
	text := out.String()
	if err != nil {
		return s, fmt.Errorf("%v: %s", err, tail(strings.TrimSpace(errb.String()+"\n"+text), 600))
	}
	if strings.HasPrefix(text, "NA ") {
		return s, naError(strings.TrimSpace(strings.TrimPrefix(text, "NA ")))
	}
	if m := resultRE.FindAllStringSubmatch(text, -1); m != nil {
		s.kv = map[string]float64{}
		for _, f := range strings.Fields(m[len(m)-1][1]) {
			k, v, _ := strings.Cut(f, "=")
			s.kv[k], _ = strconv.ParseFloat(v, 64)
		}
		s.n, s.s, s.cpu = s.kv["n"], s.kv["s"], s.kv["cpu"]
		return s, nil
	}
	if m := threeRE.FindAllStringSubmatch(text, -1); m != nil { // w4, w4-peer, w6: "N S CPU" lines
		// w6 prints one line per drain: the median drain.
		var rates []float64
		for _, l := range m {
			n, _ := strconv.ParseFloat(l[1], 64)
			t, _ := strconv.ParseFloat(l[2], 64)
			rates = append(rates, n/t)
		}
		i := medianIndex(rates)
		s.n, _ = strconv.ParseFloat(m[i][1], 64)
		s.s, _ = strconv.ParseFloat(m[i][2], 64)
		s.cpu, _ = strconv.ParseFloat(m[i][3], 64)
		return s, nil
	}
	if m := h2loadRE.FindStringSubmatch(text); m != nil {
		ok := h2loadOK.FindStringSubmatch(text)
		if ok == nil || ok[1] != ok[2] {
			return s, fmt.Errorf("h2load: not every request succeeded: %s", tail(text, 600))
		}
		s.n, _ = strconv.ParseFloat(ok[1], 64)
		s.s, _ = strconv.ParseFloat(m[1], 64)
		if m[2] == "ms" {
			s.s /= 1000
		}
		return s, nil // s.cpu: its rusage; the caller takes the baseline off
	}
	return s, fmt.Errorf("no figure in its output: %s", tail(text+errb.String(), 600))
}

func (w *workload) value(s sample) float64 {
	switch {
	case w.unit == "s":
		return s.s
	case w.unit == "KiB/conn":
		return (s.kv["rss_after_kb"] - s.kv["rss_before_kb"]) / s.n
	case w.perUnit > 0:
		return s.n * w.perUnit / s.s / 1e6
	}
	return s.n / s.s
}

func (w *workload) report() {
	type row struct {
		c             *client
		v, cpu, rssMB float64
	}
	var rows []row
	med := map[string]row{}
	for _, c := range w.clients {
		if len(c.samples) == 0 {
			rows = append(rows, row{c: c})
			continue
		}
		var vs, cpus, rss []float64
		for _, s := range c.samples {
			vs = append(vs, w.value(s))
			cpus = append(cpus, s.cpu/s.n*1e6)
			rss = append(rss, float64(s.rssKB)/1024)
		}
		r := row{c, median(vs), median(cpus), median(rss)}
		rows = append(rows, r)
		med[c.name] = r
	}
	per := "req"
	switch w.unit {
	case "msgs/s":
		per = "msg"
	case "events/s":
		per = "event"
	case "KiB/conn", "s":
		per = "conn"
	}
	fmt.Printf("   %-27s %14s", "client", "median "+w.unit)
	for _, b := range w.base {
		fmt.Printf(" %14s", "vs "+short(b))
	}
	fmt.Printf(" %13s", "CPU µs/"+per)
	for _, b := range w.base {
		fmt.Printf(" %14s", "CPU vs "+short(b))
	}
	fmt.Printf(" %13s  %s\n", "peak RSS MiB", "rounds")
	for _, r := range rows {
		if r.c.na != "" {
			fmt.Printf("   %-27s n/a: %s\n", r.c.name, r.c.na)
			continue
		}
		if r.c.err != nil || len(r.c.samples) == 0 {
			fmt.Printf("   %-27s failed: %v\n", r.c.name, firstLine(fmt.Sprint(r.c.err)))
			continue
		}
		fmt.Printf("   %-27s %14s", r.c.name, fmtv(r.v))
		for _, b := range w.base {
			if m, ok := med[b]; ok && m.v > 0 {
				fmt.Printf(" %13.2fx", r.v/m.v)
			} else {
				fmt.Printf(" %14s", "-")
			}
		}
		fmt.Printf(" %13.2f", r.cpu)
		for _, b := range w.base {
			if m, ok := med[b]; ok && m.cpu > 0 {
				fmt.Printf(" %13.2fx", r.cpu/m.cpu)
			} else {
				fmt.Printf(" %14s", "-")
			}
		}
		var each []string
		for _, s := range r.c.samples {
			each = append(each, fmtv(w.value(s)))
		}
		fmt.Printf(" %13.1f  %s\n", r.rssMB, strings.Join(each, " "))
	}
	if w.lowerIsBetter {
		fmt.Printf("   (%s: lower is better; ratios are client / base)\n", w.unit)
	}
}

func short(s string) string {
	if i := strings.Index(s, " ("); i > 0 {
		return s[:i]
	}
	return s
}

func fmtv(v float64) string {
	switch {
	case v >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func medianIndex(v []float64) int {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return v[idx[a]] < v[idx[b]] })
	return idx[len(idx)/2]
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return "Linux " + strings.TrimSpace(string(b))
}

func versions() string {
	v := []string{runtime.Version()}
	try := func(label string, argv ...string) {
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		if err == nil {
			v = append(v, label+" "+strings.TrimSpace(firstLine(string(out))))
		}
	}
	try("", "h2load", "--version")
	try("", "curl-config", "--version")
	try("", "python3", "-c", "import sys, httpx, aiohttp; print('Python', sys.version.split()[0], 'httpx', httpx.__version__, 'aiohttp', aiohttp.__version__)")
	try("OTP", "erl", "-noshell", "-eval", "io:format(\"~s~n\", [erlang:system_info(otp_release)]), halt().")
	return strings.Join(v, ", ")
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
