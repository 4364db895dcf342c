// Command peer is W4's reference: Go's coder/websocket client on one
// WebSocket connection, 100-byte binary messages echoed by the server, a
// fixed number in flight. It prints one line: "MSGS SECONDS".
//
//	peer -url ws://127.0.0.1:PORT/ws -seconds 5 -inflight 100 -size 100
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync/atomic"
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
			measuring, t0, base = true, now, got
		}
		if measuring && now.Sub(t0).Seconds() >= seconds {
			el := now.Sub(t0).Seconds()
			stop.Store(true)
			tokens <- struct{}{}
			fmt.Printf("%d %.6f\n", got-base, el)
			return nil
		}
		tokens <- struct{}{}
	}
}
