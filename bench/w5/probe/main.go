// Command probe opens N idle h2c connections with gunmetal's engine and
// prints where their memory is (heap in use, goroutine stacks) per
// connection, with a heap profile in -heapprofile: the W5 profile.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"time"

	"gunmetal/core"
)

func main() {
	port := flag.Int("port", 0, "h2c server port")
	n := flag.Int("n", 2000, "connections")
	prof := flag.String("heapprofile", "", "write a heap profile here")
	gprof := flag.String("goroutines", "", "write the goroutines' stacks here (debug=1)")
	peak := flag.String("peakprofile", "", "write a heap profile here once every connection is up, before taking any response (what the set-up holds at its peak, as a host that opens them all first sees)")
	gcs := flag.Int("gcs", 1, "GC cycles before measuring (each may shrink idle goroutines' stacks by half)")
	flag.Parse()
	q, _ := core.NewQueue()
	o, err := core.ParseOptions([]byte(`{"protocols":["http2"],"retry":0}`), *port)
	if err != nil {
		panic(err)
	}
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	g0 := runtime.NumGoroutine()
	conns := make([]*core.Conn, *n)
	for i := range conns {
		if conns[i], err = core.Open("127.0.0.1", *port, o, q, nil); err != nil {
			panic(err)
		}
	}
	for _, c := range conns {
		if _, err := c.AwaitUp(10 * time.Second); err != nil {
			panic(err)
		}
		if _, err := c.Request(&core.Request{Method: "GET", Path: "/bytes/100"}); err != nil {
			panic(err)
		}
	}
	if *peak != "" {
		time.Sleep(time.Second) // the responses arrive and wait in the queue
		runtime.GC()
		f, _ := os.Create(*peak)
		pprof.WriteHeapProfile(f)
		f.Close()
	}
	evs := make([]*core.Event, 256)
	for got := 0; got < 2**n; { // RESPONSE and DATA fin (and the UPs, if AwaitUp left them)
		k, err := q.Poll(evs, 10*time.Second)
		if err != nil || k == 0 {
			panic(fmt.Sprint("poll ", k, err))
		}
		for _, ev := range evs[:k] {
			if ev.Kind != core.EvUp {
				got++
			}
		}
	}
	time.Sleep(time.Second)
	for i := 0; i < *gcs; i++ {
		runtime.GC()
	}
	runtime.ReadMemStats(&m1)
	per := func(a, b uint64) float64 { return (float64(b) - float64(a)) / float64(*n) / 1024 }
	fmt.Printf("per connection: heap in use %.2f KiB, stacks %.2f KiB, goroutines %.2f, sys %.2f KiB\n",
		per(m0.HeapInuse, m1.HeapInuse), per(m0.StackInuse, m1.StackInuse),
		float64(runtime.NumGoroutine()-g0)/float64(*n), per(m0.Sys, m1.Sys))
	fmt.Printf("  of sys: heap live %.2f, heap free not returned %.2f, stacks %.2f, spans %.2f, GC metadata %.2f, other %.2f KiB; %d GC cycles\n",
		per(m0.HeapAlloc, m1.HeapAlloc), per(m0.HeapIdle-m0.HeapReleased+m0.HeapInuse-m0.HeapAlloc, m1.HeapIdle-m1.HeapReleased+m1.HeapInuse-m1.HeapAlloc),
		per(m0.StackSys, m1.StackSys), per(m0.MSpanSys, m1.MSpanSys), per(m0.GCSys, m1.GCSys), per(m0.OtherSys+m0.MCacheSys+m0.BuckHashSys, m1.OtherSys+m1.MCacheSys+m1.BuckHashSys), m1.NumGC-m0.NumGC)
	if *gprof != "" {
		f, _ := os.Create(*gprof)
		pprof.Lookup("goroutine").WriteTo(f, 1)
		f.Close()
	}
	if *prof != "" {
		f, _ := os.Create(*prof)
		pprof.WriteHeapProfile(f)
		f.Close()
	}
}
