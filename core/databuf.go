package core

import "sync"

// HTTP/2 DATA payloads over dataBufMin bytes (W2's 1 MiB bodies come as
// 16 KiB frames) are copied into buffers kept on a bounded free list rather
// than new allocations: a host that copies each event out at once (the C
// ABI's gm_queue_poll) hands the buffer back (RecycleData), so a fast body
// does not make the GC churn through a fresh 16 KiB per frame, with the
// page faults of a heap that grows and is given back (issue 16, W2). A
// Data nobody hands back is garbage like any other.
const (
	dataBufSize = 16384 // HTTP/2's default frame size, max_frame_size_received's default
	dataBufMin  = 4096
	dataBufsMax = 256 // 4 MiB kept at most
)

var dataBufs struct {
	mu   sync.Mutex
	free [][]byte
}

// dataCopy is a copy of p in a pooled buffer when it fits one; pooled says
// which.
func dataCopy(p []byte) (b []byte, pooled bool) {
	if len(p) <= dataBufMin || len(p) > dataBufSize {
		return append([]byte(nil), p...), false
	}
	dataBufs.mu.Lock()
	if n := len(dataBufs.free); n > 0 {
		b = dataBufs.free[n-1]
		dataBufs.free[n-1] = nil
		dataBufs.free = dataBufs.free[:n-1]
	}
	dataBufs.mu.Unlock()
	if b == nil {
		b = make([]byte, dataBufSize)
	}
	b = b[:len(p)]
	copy(b, p)
	return b, true
}

// RecycleData takes back ev's Data, which the caller has copied and will
// not touch again (nor anyone else: the event was taken from its queue),
// and clears it from ev. Events whose Data is not pooled are left alone.
func RecycleData(ev *Event) {
	if !ev.pooled {
		return
	}
	b := ev.Data[:0:dataBufSize]
	ev.Data, ev.pooled = nil, false
	dataBufs.mu.Lock()
	if len(dataBufs.free) < dataBufsMax {
		dataBufs.free = append(dataBufs.free, b)
	}
	dataBufs.mu.Unlock()
}
