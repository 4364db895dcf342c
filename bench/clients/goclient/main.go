// Command goclient is Go's net/http client for bench/harness (W1, W2, W3,
// W5), with the command line and output of bench/clients/gm_client.c:
//
//	goclient multi PORT TLS PATH N M WARMUP   one HTTP/2 connection, M goroutines
//	goclient conns PORT TLS PATH N            N connections at once (a Transport each)
//	goclient idle  PORT TLS PATH N IDLE_S     N connections, one GET each, then idle
//
// h2c is HTTP/2 with prior knowledge (http.Protocols.SetUnencryptedHTTP2);
// TLS is ALPN h2 without verification.
package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func cpu() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

func rssKB() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			n, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return n
		}
	}
	return -1
}

func die(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "goclient: "+f+"\n", a...)
	os.Exit(1)
}

var bytesSeen atomic.Int64

func transport(tlsOn bool, conns *atomic.Int32) *http.Transport {
	var p http.Protocols
	if tlsOn {
		p.SetHTTP2(true)
	} else {
		p.SetUnencryptedHTTP2(true)
	}
	return &http.Transport{
		Protocols:       &p,
		MaxConnsPerHost: 1,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if conns != nil {
				conns.Add(1)
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
}

func get(cl *http.Client, url string) {
	resp, err := cl.Get(url)
	if err != nil {
		die("%v", err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		die("status %d, %s, %v", resp.StatusCode, resp.Proto, err)
	}
	bytesSeen.Add(n)
}

func main() {
	if len(os.Args) < 6 {
		die("usage: goclient multi|conns|idle PORT TLS PATH N [M WARMUP | IDLE_S]")
	}
	mode, port, tlsOn, path := os.Args[1], os.Args[2], os.Args[3] == "1", os.Args[4]
	n, _ := strconv.Atoi(os.Args[5])
	arg := func(i, def int) int {
		if len(os.Args) > i {
			v, _ := strconv.Atoi(os.Args[i])
			return v
		}
		return def
	}
	scheme := "http"
	if tlsOn {
		scheme = "https"
	}
	url := scheme + "://127.0.0.1:" + port + path
	switch mode {
	case "multi":
		m, warm := arg(6, 100), arg(7, 1000)
		var dials atomic.Int32
		tr := transport(tlsOn, &dials)
		tr.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: m}
		cl := &http.Client{Transport: tr}
		run := func(n int) {
			var left atomic.Int64
			left.Store(int64(n))
			var wg sync.WaitGroup
			for range m {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for left.Add(-1) >= 0 {
						get(cl, url)
					}
				}()
			}
			wg.Wait()
		}
		if warm > 0 {
			run(warm)
		}
		bytesSeen.Store(0)
		t0, c0 := time.Now(), cpu()
		run(n)
		s, c := time.Since(t0).Seconds(), cpu()-c0
		if d := dials.Load(); d != 1 {
			die("net/http used %d connections, want 1", d)
		}
		fmt.Printf("RESULT n=%d s=%.6f cpu=%.6f bytes=%d\n", n, s, c, bytesSeen.Load())
	case "conns", "idle":
		fan := func(n int) []*http.Transport {
			trs := make([]*http.Transport, n)
			var wg sync.WaitGroup
			for i := range trs {
				trs[i] = transport(tlsOn, nil)
				wg.Add(1)
				go func(tr *http.Transport) {
					defer wg.Done()
					get(&http.Client{Transport: tr}, url)
				}(trs[i])
			}
			wg.Wait()
			return trs
		}
		var before int64
		if mode == "idle" {
			fan(1)[0].CloseIdleConnections()
			before = rssKB()
		}
		bytesSeen.Store(0)
		t0, c0 := time.Now(), cpu()
		trs := fan(n)
		s, c := time.Since(t0).Seconds(), cpu()-c0
		if mode == "idle" {
			time.Sleep(time.Duration(arg(6, 2)) * time.Second)
			fmt.Printf("RESULT n=%d s=%.6f cpu=%.6f bytes=%d rss_before_kb=%d rss_after_kb=%d\n", n, s, c, bytesSeen.Load(), before, rssKB())
		} else {
			fmt.Printf("RESULT n=%d s=%.6f cpu=%.6f bytes=%d\n", n, s, c, bytesSeen.Load())
		}
		for _, tr := range trs {
			tr.CloseIdleConnections()
		}
	default:
		die("unknown mode %s", mode)
	}
}
