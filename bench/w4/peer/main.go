// Command peer is W4's reference: Go's coder/websocket client on one
// WebSocket connection, 100-byte binary messages echoed by the server, a
// fixed number in flight. It prints one line: "MSGS SECONDS CPU_SECONDS"
// (CPU: user + sys of the whole process over the measured window).
//
//	peer -url ws://127.0.0.1:PORT/ws -seconds 5 -inflight 100 -size 100
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

func main() {
	url := flag.String("url", "", "ws:// URL of an echo endpoint")
	seconds := flag.Float64("seconds", 5, "how long to measure")
	warmup := flag.Float64("warmup", 1, "seconds before measuring")
	inflight := flag.Int("inflight", 100, "messages in flight")
	size := flag.Int("size", 100, "message size in bytes")
	flag.Parse()
	if err := run(*url, *seconds, *warmup, *inflight, *size); err != nil {
		fmt.Fprintln(os.Stderr, "peer:", err)
		os.Exit(1)
	}
}

func run(url string, seconds, warmup float64, inflight, size int) error {
	ctx := context.Background()
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return err
	}
	defer ws.CloseNow()
	ws.SetReadLimit(1 << 20)
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = 'a' + byte(i%26)
	}
	tokens := make(chan struct{}, inflight)
	for i := 0; i < inflight; i++ {
		tokens <- struct{}{}
	}
	var stop atomic.Bool
	werr := make(chan error, 1)
	go func() {
		for range tokens {
			if stop.Load() {
				werr <- nil
				return
			}
			if err := ws.Write(ctx, websocket.MessageBinary, payload); err != nil {
				werr <- err
				return
			}
		}
	}()
	var got int64
	var t0 time.Time
	var base int64
	var c0 float64
	start := time.Now()
	measuring := false
	for {
		_, b, err := ws.Read(ctx)
		if err != nil {
			return err
		}
		if len(b) != size {
			return fmt.Errorf("echo of %d bytes, want %d", len(b), size)
		}
		got++
		now := time.Now()
		if !measuring && now.Sub(start).Seconds() >= warmup {
			measuring, t0, base, c0 = true, now, got, cpu()
		}
		if measuring && now.Sub(t0).Seconds() >= seconds {
			el := now.Sub(t0).Seconds()
			stop.Store(true)
			tokens <- struct{}{}
			fmt.Printf("%d %.6f %.6f\n", got-base, el, cpu()-c0)
			return nil
		}
		tokens <- struct{}{}
	}
}

// cpu is the process's CPU seconds (user + sys) so far.
func cpu() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}
