package main

// W6 (issue 16): the drain of a pile of queued events through the C ABI's
// gm_queue_poll + gm_events_free, with only the drain timed, so that
// `go test -bench Drain -cpuprofile` shows where the time per event goes.
// bench/w6/w6.c measures the same thing from a C host.

import (
	"os"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"gunmetal/tests/testserver"
)

func benchDrain(b *testing.B, ws bool, batch int) {
	srv, err := testserver.Start(testserver.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	q := gm_queue_new()
	defer gm_queue_free(q)
	perRound := 40000
	if s := os.Getenv("W6_PILE"); s != "" {
		perRound, _ = strconv.Atoi(s)
	}
	nconns := 1
	if !ws {
		nconns = perRound / 400 // 200 streams each: a stream's slot returns when its events are freed
	}
	conns := make([]*_Ctype_struct_gm_conn, nconns)
	opts := `{"protocols":["http2"],"retry":0}`
	if ws {
		opts = `{"retry":0}`
	}
	for i := range conns {
		if rc := gmgo_open(q, cbytes("127.0.0.1"), _Ctype_int(srv.HTTPPort()), cbytes(opts), &conns[i]); rc != 0 {
			b.Fatalf("gm_open: %d", rc)
		}
		defer gm_conn_free(conns[i])
		defer gm_close(conns[i])
		if rc := gmgo_await_up(conns[i], 10000, nil); rc != 0 {
			b.Fatalf("gm_await_up: %d", rc)
		}
	}
	out := make([]uintptr, batch) // C-side slots (uintptr: see cstore_test.go)
	outEv := (**_Ctype_struct_gm_event)(unsafe.Pointer(&out[0]))
	drain := func() int {
		n := 0
		for {
			k := gmgo_queue_poll(q, outEv, _Ctype_int(batch), 0, new(_Ctype_int))
			if k < 0 {
				b.Fatalf("gm_queue_poll: %d", k)
			}
			if k == 0 {
				return n
			}
			gm_events_free(outEv, k)
			n += int(k)
		}
	}
	drain()
	var ref _Ctype_gm_ref
	payload := make([]byte, 100)
	if ws {
		if rc := gmgo_ws_upgrade(conns[0], cbytes("/ws"), nil, 0, nil, nil, &ref); rc != 0 {
			b.Fatalf("gm_ws_upgrade: %d", rc)
		}
		time.Sleep(100 * time.Millisecond)
		drain()
	}
	fill := func() {
		if ws {
			frames := make([]_Ctype_gm_ws_frame, 256)
			for i := range frames {
				frames[i].op = 2
				frames[i].data = unsafe.Pointer(&payload[0])
				frames[i].len = 100
			}
			for i := 0; i < perRound; i += 256 {
				if rc := gmgo_ws_send(conns[0], ref, &frames[0], _Ctype_size_t(min(256, perRound-i)), 0); rc != 0 {
					b.Fatalf("gm_ws_send: %d", rc)
				}
			}
		} else {
			var r _Ctype_gm_ref
			for i := 0; i < perRound/2; i++ {
				if rc := gmgo_request(conns[i%nconns], cbytes("GET"), cbytes("/bytes/100"), nil, 0, nil, 0, 0, nil, &r); rc != 0 {
					b.Fatalf("gm_request: %d", rc)
				}
			}
		}
		deadline := time.Now().Add(30 * time.Second)
		for int(gm_queue_len(q)) < perRound {
			if time.Now().After(deadline) {
				b.Fatalf("only %d of %d events queued", gm_queue_len(q), perRound)
			}
			time.Sleep(time.Millisecond)
		}
	}
	b.ResetTimer()
	b.StopTimer()
	for done := 0; done < b.N; {
		fill()
		b.StartTimer()
		done += drain()
		b.StopTimer()
	}
}

func BenchmarkDrainH2Batch16(b *testing.B)  { benchDrain(b, false, 16) }
func BenchmarkDrainH2Batch256(b *testing.B) { benchDrain(b, false, 256) }
func BenchmarkDrainWSBatch16(b *testing.B)  { benchDrain(b, true, 16) }
func BenchmarkDrainWSBatch256(b *testing.B) { benchDrain(b, true, 256) }
