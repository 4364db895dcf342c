package main

/*
#include <stdlib.h>
#include "gunmetal.h"
*/
import "C"

import (
	"unsafe"

	"github.com/mattn/go-pointer"

	"gunmetal/core"
)

// An event crosses into C as one malloc: a private prefix (what the event
// holds of its connection's read budget, given back by gm_event_free), the
// gm_event, its arrays (headers, killed), then its strings and data, each
// NUL-terminated.

const prefixSize = 16

const (
	evSize  = C.sizeof_gm_event
	hdrSize = C.sizeof_gm_header
)

func align8(n int) int { return (n + 7) &^ 7 }

// cStore writes p into *slot, where slot is C memory (an event being built,
// or a host's out-parameter), with a plain store instead of Go's write
// barrier. The barrier also records the slot's old value as a pointer for
// the GC to mark, and C memory holds anything before we write it: a
// malloc'ed block is uninitialised, and a host's `gm_event *out[256]` on its
// stack holds whatever the Go runtime left there while it ran on that
// thread (a foreign thread's Go code runs its runtime frames on the thread's
// own stack), stale Go heap pointers included. Marking one of those frees
// nothing but corrupts the heap: "found pointer to free object" or "found
// bad pointer in Go heap" a GC cycle later (golang/go#19928). Every value
// stored this way is a C pointer, which the GC never needs to see.
func cStore(slot, p unsafe.Pointer) {
	*(*uintptr)(slot) = uintptr(p)
}

func eventBytes(ev *core.Event) int {
	n := align8(evSize) + len(ev.Headers)*hdrSize + len(ev.Killed)*8
	for _, s := range [...]string{ev.Protocol, ev.Reason, ev.Method, ev.URI} {
		if s != "" {
			n += len(s) + 1
		}
	}
	for _, h := range ev.Headers {
		n += len(h.Name) + len(h.Value) + 2
	}
	if ev.Data != nil {
		n += len(ev.Data) + 1
	}
	return n
}

// marshal copies ev into C memory; nil if malloc fails (the event is then
// released at once). credit is what the C event will give back when freed.
func marshal(ev *core.Event, credit int) *C.gm_event {
	total := eventBytes(ev)
	base := C.malloc(C.size_t(prefixSize + total))
	if base == nil {
		if ev.Conn != nil {
			ev.Conn.ReleaseTaken(core.Taken{Kind: ev.Kind, Ref: ev.Ref, Fin: ev.Fin, DataLen: len(ev.Data), Credit: credit})
		}
		return nil
	}
	*(*int64)(base) = int64(credit)
	*(*uint64)(unsafe.Add(base, 8)) = ev.Tunnel() // which tunnel's (tunnel_h2.go) the release goes to
	mem := unsafe.Add(base, prefixSize)
	buf := unsafe.Slice((*byte)(mem), total)
	e := (*C.gm_event)(mem)
	clear(buf[:evSize]) // bytes: no write barrier (see cStore)
	e.size = C.uint32_t(evSize)
	e.kind = C.uint16_t(ev.Kind)
	if ev.Fin {
		e.fin = 1
	}
	e.ws_opcode = C.uint8_t(ev.WSOp)
	e.status = C.int32_t(ev.Status)
	if ev.Kind == core.EvWS && ev.WSOp == core.WSClose {
		e.status = C.int32_t(ev.CloseCode)
	}
	e.ref = C.gm_ref(ev.Ref)
	e.new_ref = C.gm_ref(ev.NewRef)
	e.ts_ns = C.int64_t(ev.TS)
	if ev.Conn != nil {
		if h, ok := ev.Conn.Tag().(*connHandle); ok {
			cStore(unsafe.Pointer(&e.conn), h.self)
		}
	}
	off := align8(evSize)
	if len(ev.Headers) > 0 {
		hs := unsafe.Slice((*C.gm_header)(unsafe.Pointer(&buf[off])), len(ev.Headers))
		cStore(unsafe.Pointer(&e.headers), unsafe.Pointer(&hs[0]))
		e.n_headers = C.size_t(len(hs))
		off += len(ev.Headers) * hdrSize
	}
	if len(ev.Killed) > 0 {
		ks := unsafe.Slice((*C.gm_ref)(unsafe.Pointer(&buf[off])), len(ev.Killed))
		for i, k := range ev.Killed {
			ks[i] = C.gm_ref(k)
		}
		cStore(unsafe.Pointer(&e.killed), unsafe.Pointer(&ks[0]))
		e.n_killed = C.size_t(len(ks))
		off += len(ev.Killed) * 8
	}
	if len(ev.Headers) > 0 {
		hs := unsafe.Slice(e.headers, len(ev.Headers))
		for i, h := range ev.Headers {
			off = putString(&hs[i].name, buf, off, h.Name)
			hs[i].name_len = C.size_t(len(h.Name))
			off = putString(&hs[i].value, buf, off, h.Value)
			hs[i].value_len = C.size_t(len(h.Value))
		}
	}
	if ev.Protocol != "" {
		off = putString(&e.protocol, buf, off, ev.Protocol)
	}
	if ev.Reason != "" {
		off = putString(&e.reason, buf, off, ev.Reason)
	}
	if ev.Method != "" {
		off = putString(&e.method, buf, off, ev.Method)
	}
	if ev.URI != "" {
		off = putString(&e.uri, buf, off, ev.URI)
	}
	if ev.Data != nil {
		copy(buf[off:], ev.Data)
		buf[off+len(ev.Data)] = 0
		cStore(unsafe.Pointer(&e.data), unsafe.Pointer(&buf[off]))
		e.data_len = C.size_t(len(ev.Data))
	}
	return e
}

// putString copies s NUL-terminated to buf[off:], points *slot at it and
// returns the offset past it.
func putString(slot **C.char, buf []byte, off int, s string) int {
	copy(buf[off:], s)
	buf[off+len(s)] = 0
	cStore(unsafe.Pointer(slot), unsafe.Pointer(&buf[off]))
	return off + len(s) + 1
}

// taken is what gm_event_free gives back of e to its connection.
func taken(e *C.gm_event) core.Taken {
	base := unsafe.Add(unsafe.Pointer(e), -prefixSize)
	return core.Taken{Kind: core.EventKind(e.kind), Ref: uint64(e.ref), Fin: e.fin != 0,
		DataLen: int(e.data_len), Credit: int(*(*int64)(base)), Tunnel: *(*uint64)(unsafe.Add(base, 8))}
}

// eventConn is the connection an event names. Its handle is live: it is
// released only after the event's release.
func eventConn(p *C.gm_conn) *core.Conn {
	if h, ok := pointer.Restore(unsafe.Pointer(p)).(*connHandle); ok {
		return h.c
	}
	return nil
}

//export gm_event_free
func gm_event_free(e *C.gm_event) {
	defer guard(nil)
	if e == nil {
		return
	}
	if e.conn != nil {
		if c := eventConn(e.conn); c != nil {
			c.ReleaseTaken(taken(e))
		}
	}
	C.free(unsafe.Add(unsafe.Pointer(e), -prefixSize))
}

// gm_events_free frees a batch in one crossing, releasing each run of
// events of the same connection under one lock.
//
//export gm_events_free
func gm_events_free(evs **C.gm_event, n C.int) {
	defer guard(nil)
	if evs == nil || n <= 0 {
		return
	}
	list := unsafe.Slice(evs, int(n))
	var run []core.Taken
	var runConn *C.gm_conn
	flush := func() {
		if runConn != nil && len(run) > 0 {
			if c := eventConn(runConn); c != nil {
				c.ReleaseTaken(run...)
			}
		}
		run = run[:0]
	}
	for _, e := range list {
		if e == nil {
			continue
		}
		if e.conn != runConn {
			flush()
			runConn = e.conn
		}
		if e.conn != nil {
			run = append(run, taken(e))
		}
		// Freeing the memory before the release is fine: what the release
		// needs was copied into run, and the handle lives until then.
		C.free(unsafe.Add(unsafe.Pointer(e), -prefixSize))
	}
	flush()
}
