package main

// Regression test for issue 9's heap corruption: the library stored
// pointers into C memory (a host's out-parameters, malloc'ed events) with
// Go's write barrier, which also hands the GC the slot's OLD value to mark.
// A host's uninitialised `gm_event *out[256]` on its stack can hold stale Go
// heap pointers (the Go runtime runs on a foreign thread's own stack while
// it serves a call); marking one corrupted the heap ("found pointer to free
// object", "found bad pointer in Go heap"). Here the slots are filled with
// such a pointer on purpose — the address of a freed Go heap span — and the
// library writes into them while the GC runs: before the fix the process
// died with "fatal error: found bad pointer in Go heap".

import (
	"runtime"
	"sync"
	"testing"
	"time"
	"unsafe"

	"gunmetal/tests/testserver"
)

// freedHeapAddress is the address of a Go heap object whose span has been
// freed: exactly what a stale pointer left in C memory looks like.
func freedHeapAddress() uintptr {
	b := make([]byte, 64<<20) // a span of its own, not reused by the test's small allocations
	p := uintptr(unsafe.Pointer(&b[0])) + 4096
	runtime.KeepAlive(b)
	b = nil
	runtime.GC()
	runtime.GC()
	return p
}

// cbytes is a NUL-terminated copy of s, for the exports' char* parameters.
func cbytes(s string) *_Ctype_char {
	b := append([]byte(s), 0)
	return (*_Ctype_char)(unsafe.Pointer(&b[0]))
}

func TestOutParametersIgnoreStaleContents(t *testing.T) {
	srv, err := testserver.Start(testserver.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	stale := freedHeapAddress()

	// Slots typed uintptr (C memory is never scanned by the GC; a Go
	// pointer-typed array holding stale would be found by the GC itself).
	var slots [256]uintptr
	dirty := func() {
		for i := range slots {
			slots[i] = stale
		}
	}
	outConn := (**_Ctype_struct_gm_conn)(unsafe.Pointer(&slots[0]))
	outEv := (**_Ctype_struct_gm_event)(unsafe.Pointer(&slots[0]))

	// The GC runs the whole time, so the write barrier is on for most of
	// the stores below.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				runtime.GC()
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	q := gm_queue_new()
	defer gm_queue_free(q)
	dirty()
	if rc := gmgo_open(q, cbytes("127.0.0.1"), _Ctype_int(srv.HTTPPort()), nil, outConn); rc != 0 {
		t.Fatalf("gm_open: %d", rc)
	}
	c := *outConn
	defer gm_conn_free(c)
	dirty()
	if rc := gmgo_await_up(c, 10000, (**_Ctype_char)(unsafe.Pointer(&slots[0]))); rc != 0 {
		t.Fatalf("gm_await_up: %d", rc)
	}

	// gm_info: one out-parameter per call, an event marshalled into fresh
	// malloc'ed memory each time.
	end := time.Now().Add(time.Second)
	for n := 0; time.Now().Before(end) || n < 1000; n++ {
		dirty()
		if rc := gm_info(c, outEv); rc != 0 {
			t.Fatalf("gm_info: %d", rc)
		}
		gm_event_free(*outEv)
	}

	// gm_queue_poll: a batch of out-parameters, from a streaming body.
	ref := new(_Ctype_gm_ref)
	if rc := gmgo_request(c, cbytes("GET"), cbytes("/infinite"), nil, 0, nil, 0, 0, nil, ref); rc != 0 {
		t.Fatalf("gm_request: %d", rc)
	}
	end = time.Now().Add(time.Second)
	for time.Now().Before(end) {
		dirty()
		n := gmgo_queue_poll(q, outEv, 256, 0, new(_Ctype_int))
		if n < 0 {
			t.Fatalf("gm_queue_poll: %d", n)
		}
		gm_events_free(outEv, n)
	}
	if rc := gm_close(c); rc != 0 {
		t.Fatalf("gm_close: %d", rc)
	}
	for {
		n := gmgo_queue_poll(q, outEv, 256, 0, new(_Ctype_int))
		if n <= 0 {
			break
		}
		gm_events_free(outEv, n)
	}
}
