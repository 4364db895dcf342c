package core

import (
	"runtime"
	"testing"
	"time"
)

// Idle connections hold no read buffer (issue 16, W5): 200 idle h2c
// connections, each after one GET, add less than 75 KiB of Go heap each,
// the test server's side of each included (it runs in this process). With
// a 64 KiB read buffer kept per connection it was 94 KiB each; without, 35
// (54 under -race).
func TestIdleConnsHoldNoReadBuffer(t *testing.T) {
	const n = 200
	q, err := NewQueue()
	if err != nil {
		t.Fatal(err)
	}
	defer q.Free()
	o, err := ParseOptions([]byte(`{"protocols":["http2"],"retry":0}`), srv.HTTPPort())
	if err != nil {
		t.Fatal(err)
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC() // a second cycle empties sync.Pool's victim cache
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	before := heap()
	conns := make([]*Conn, n)
	for i := range conns {
		if conns[i], err = Open("127.0.0.1", srv.HTTPPort(), o, q, nil); err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		for _, c := range conns {
			c.Close()
			<-c.Done()
		}
	}()
	for _, c := range conns {
		if _, err := c.AwaitUp(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Request(&Request{Method: "GET", Path: "/bytes/100"}); err != nil {
			t.Fatal(err)
		}
	}
	evs := make([]*Event, 256)
	for ended := 0; ended < n; {
		k, err := q.Poll(evs, 10*time.Second)
		if err != nil || k == 0 {
			t.Fatalf("poll: %d %v (%d of %d streams ended)", k, err, ended, n)
		}
		for _, ev := range evs[:k] {
			switch {
			case ev.Kind == EvData && ev.Fin:
				ended++
			case ev.Kind == EvError || ev.Kind == EvDown || ev.Kind == EvExit:
				t.Fatalf("%s: %s", ev.Kind, ev.Reason)
			}
		}
		clear(evs[:k])
	}
	per := (float64(heap()) - float64(before)) / n / 1024
	t.Logf("%.1f KiB of heap per idle connection", per)
	if per > 75 {
		t.Fatalf("%.1f KiB of heap per idle connection, want < 75 (a read buffer kept while idle?)", per)
	}
}
