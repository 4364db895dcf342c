package main

/*
#include <stdlib.h>
#include "gunmetal.h"
*/
import "C"

import (
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/mattn/go-pointer"

	"gunmetal/core"
)

// An event crosses into C as a private prefix (what the event holds of its
// connection's read budget, given back by gm_event_free, the arena it
// lives in, and what finds its stream's flow accounting), the gm_event, its
// arrays (headers, killed), then its strings and data, each NUL-terminated.
//
// The events of one gm_queue_poll share arenas: one malloc per batch and
// one free when its last event is freed, instead of a malloc and a free per
// event — each is a cgo call from Go, and at batch 256 those two calls were
// most of the cost of an event (issue 16, W6). An arena starts with its
// count of live events; an event bigger than arenaEventMax gets a block of
// its own, and an arena holds at most arenaMax bytes, so an event a host
// keeps pins at most that much of its batch. Events taken one at a time
// (gm_await, gm_info, ...) have a block of their own (arena nil).

const (
	prefixSize    = 32 // credit int64, arena pointer, tunnel ref (tunnel_h2.go), stream hold uint32 (core/http2_hold.go), padding
	arenaHeader   = 16 // live events int64, padding
	arenaMax      = 64 << 10
	arenaEventMax = 4 << 10
)

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

// Events that need a block of their own and fit bigBlockSize (an HTTP/2
// DATA frame of up to 16 KiB: W2's bodies) get one of that size from a
// bounded free list, given back by gm_event_free, instead of a malloc and a
// free each: each is a cgo call, and a host's malloc giving the memory of
// freed blocks back to the system and faulting it in again was a tenth of
// W2's CPU (issue 16). Such a block's arena slot holds bigMark.
const (
	bigBlockSize = 20 << 10
	bigBlocksMax = 256 // 5 MiB kept at most
)

var (
	bigMark = C.malloc(1) // never freed: only its address is used
	// The free list is C memory (calloc'ed once, its address in a Go
	// global): LeakSanitizer, which checks the C tests, scans the
	// library's globals and C memory but not the Go heap, so blocks listed
	// from a Go slice would look leaked.
	bigFree = (*[bigBlocksMax]uintptr)(C.calloc(bigBlocksMax, C.size_t(unsafe.Sizeof(uintptr(0)))))
	bigMu   sync.Mutex
	bigN    int
)

func getBigBlock() unsafe.Pointer {
	bigMu.Lock()
	if bigN > 0 {
		bigN--
		b := *(*unsafe.Pointer)(unsafe.Pointer(&bigFree[bigN])) // a C pointer, kept in C memory
		bigFree[bigN] = 0
		bigMu.Unlock()
		return b
	}
	bigMu.Unlock()
	return C.malloc(bigBlockSize)
}

// putBigBlocks gives blocks back to the free list, under one lock for a
// batch (gm_events_free), and frees those past its bound.
func putBigBlocks(bs []unsafe.Pointer) {
	bigMu.Lock()
	i := 0
	for ; i < len(bs) && bigFree != nil && bigN < bigBlocksMax; i++ {
		cStore(unsafe.Pointer(&bigFree[bigN]), bs[i])
		bigN++
	}
	bigMu.Unlock()
	for _, b := range bs[i:] {
		C.free(b)
	}
}

// freeBlock frees an event's own block (arena slot a: nil or bigMark).
func freeBlock(base, a unsafe.Pointer) {
	if a == bigMark {
		putBigBlocks([]unsafe.Pointer{base})
		return
	}
	C.free(base)
}

// marshal copies ev into a C block of its own; nil if malloc fails (the
// event is then released at once). credit is what the C event will give
// back when freed.
func marshal(ev *core.Event, credit int) *C.gm_event {
	total := eventBytes(ev)
	if prefixSize+total > arenaEventMax && prefixSize+total <= bigBlockSize {
		if base := getBigBlock(); base != nil {
			return fill(base, bigMark, ev, credit, total)
		}
	}
	base := C.malloc(C.size_t(prefixSize + total))
	if base == nil {
		if ev.Conn != nil {
			ev.Conn.ReleaseTaken(core.Taken{Kind: ev.Kind, Ref: ev.Ref, Fin: ev.Fin, DataLen: len(ev.Data), Credit: credit, Tunnel: ev.Tunnel(), Hold: ev.Hold()})
		}
		return nil
	}
	return fill(base, nil, ev, credit, total)
}

// marshalBatch copies evs into C memory, into dst, arenas shared (see the
// top of the file). It returns how many it copied: fewer than len(evs) only
// when malloc fails, and the events not copied are then released.
func marshalBatch(evs []*core.Event, dst []*C.gm_event) int {
	var sizes [256]int
	for i := 0; i < len(evs); {
		// The run evs[i:j] goes into one arena.
		size, j := 0, i
		for ; j < len(evs); j++ {
			b := eventBytes(evs[j])
			if j-i < len(sizes) {
				sizes[j-i] = b
			}
			n := prefixSize + align8(b)
			if n > arenaEventMax || j-i >= len(sizes) || (j > i && size+n > arenaMax) {
				break
			}
			size += n
		}
		if j == i { // a big event: a block of its own
			if dst[i] = marshal(evs[i], evs[i].Credit()); dst[i] == nil {
				core.ReleaseEvents(evs[i+1:])
				return i
			}
			core.RecycleData(evs[i]) // copied: its buffer serves the next frame
			i++
			continue
		}
		arena := C.malloc(C.size_t(arenaHeader + size))
		if arena == nil {
			core.ReleaseEvents(evs[i:])
			return i
		}
		*(*int64)(arena) = int64(j - i)
		off := arenaHeader
		for k := i; k < j; k++ {
			dst[k] = fill(unsafe.Add(arena, off), arena, evs[k], evs[k].Credit(), sizes[k-i])
			off += prefixSize + align8(sizes[k-i])
		}
		i = j
	}
	return len(evs)
}

// fill writes the prefix at base and ev after it (total bytes: eventBytes).
func fill(base, arena unsafe.Pointer, ev *core.Event, credit int, total int) *C.gm_event {
	*(*int64)(base) = int64(credit)
	cStore(unsafe.Add(base, 8), arena)
	*(*uint64)(unsafe.Add(base, 16)) = ev.Tunnel() // which tunnel's (tunnel_h2.go) the release goes to
	*(*uint64)(unsafe.Add(base, 24)) = uint64(ev.Hold())
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
		DataLen: int(e.data_len), Credit: int(*(*int64)(base)), Tunnel: *(*uint64)(unsafe.Add(base, 16)),
		Hold: uint32(*(*uint64)(unsafe.Add(base, 24)))}
}

// eventConn is the connection an event names. Its handle is live: it is
// released only after the event's release.
func eventConn(p *C.gm_conn) *core.Conn {
	if h, ok := pointer.Restore(unsafe.Pointer(p)).(*connHandle); ok {
		return h.c
	}
	return nil
}

// release frees the C memory of e: its block, or its share of its arena.
func release(e *C.gm_event) {
	base := unsafe.Add(unsafe.Pointer(e), -prefixSize)
	if arena := *(*unsafe.Pointer)(unsafe.Add(base, 8)); arena != nil && arena != bigMark {
		dropArena(arena, 1)
	} else {
		freeBlock(base, arena)
	}
}

// dropArena takes n freed events off arena's count and frees it with its
// last one. Atomic: a host may free the events of one batch on several
// threads.
func dropArena(arena unsafe.Pointer, n int64) {
	if atomic.AddInt64((*int64)(arena), -n) == 0 {
		C.free(arena)
	}
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
	release(e)
}

// gm_events_free frees a batch in one crossing, releasing each run of
// events of the same connection under one lock, and each arena with one
// count update.
//
//export gm_events_free
func gm_events_free(evs **C.gm_event, n C.int) {
	defer guard(nil)
	if evs == nil || n <= 0 {
		return
	}
	list := unsafe.Slice(evs, int(n))
	var buf [64]core.Taken
	run := buf[:0]
	var runConn *C.gm_conn
	var arena unsafe.Pointer
	var inArena int64
	var bigBuf [64]unsafe.Pointer // blocks for the free list, given back under one lock
	big := bigBuf[:0]
	for _, e := range list {
		if e == nil {
			continue
		}
		if e.conn != runConn || len(run) == len(buf) {
			releaseRun(runConn, run)
			run = run[:0]
			runConn = e.conn
		}
		if e.conn != nil {
			run = append(run, taken(e))
		}
		// Freeing the memory before the release is fine: what the release
		// needs was copied into run, and the handle lives until then.
		base := unsafe.Add(unsafe.Pointer(e), -prefixSize)
		a := *(*unsafe.Pointer)(unsafe.Add(base, 8))
		switch {
		case a == bigMark:
			if big = append(big, base); len(big) == cap(big) {
				putBigBlocks(big)
				big = big[:0]
			}
		case a == nil:
			C.free(base)
		case a == arena:
			inArena++
		default:
			if arena != nil {
				dropArena(arena, inArena)
			}
			arena, inArena = a, 1
		}
	}
	if arena != nil {
		dropArena(arena, inArena)
	}
	if len(big) > 0 {
		putBigBlocks(big)
	}
	releaseRun(runConn, run)
}

func releaseRun(p *C.gm_conn, run []core.Taken) {
	if p != nil && len(run) > 0 {
		if c := eventConn(p); c != nil {
			c.ReleaseTaken(run...)
		}
	}
}
