package main

/*
#cgo CFLAGS: -I${SRCDIR}/../include -O2
#include "gunmetal.h"
void gm__set_errmsg(const char *s, size_t n);
const char *gm__static_name(const char *s, size_t n);
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime/debug"
	"sync/atomic"
	"unsafe"

	"github.com/mattn/go-pointer"

	"gunmetal/core"
)

// Handles are go-pointer keys: real C pointers that map back to Go values,
// so C never holds a Go pointer. A connection's handle is released once the
// host has called gm_conn_free AND the connection has settled (exited, every
// event it emitted freed by the host): so an event's conn is valid for as
// long as the event lives, and an address is reused only after that.

type queueHandle struct{ q *core.Queue }

type connHandle struct {
	c     *core.Conn
	self  unsafe.Pointer
	freed atomic.Bool
}

// live counts handles not yet released, for the leak test.
var live atomic.Int64

func newQueueHandle(q *core.Queue) *C.gm_queue {
	live.Add(1)
	return (*C.gm_queue)(pointer.Save(&queueHandle{q: q}))
}

func newConnHandle() *connHandle {
	h := &connHandle{}
	h.self = pointer.Save(h)
	live.Add(1)
	return h
}

// release gives the handle's address back.
func (h *connHandle) release() {
	pointer.Unref(h.self)
	live.Add(-1)
}

// status is an error code with its sentence.
type status struct {
	code C.int
	msg  string
}

func fail(code C.int, format string, args ...any) *status {
	return &status{code, fmt.Sprintf(format, args...)}
}

// report sets the thread's error sentence and returns the code.
func (s *status) report() C.int {
	if s == nil {
		return C.GM_OK
	}
	setErrmsg(s.msg)
	return s.code
}

func setErrmsg(msg string) {
	if msg == "" {
		msg = " "
	}
	C.gm__set_errmsg((*C.char)(unsafe.Pointer(unsafe.StringData(msg))), C.size_t(len(msg)))
}

// fromErr maps the engine's errors to status codes.
func fromErr(err error) *status {
	if err == nil {
		return nil
	}
	var optErr *core.OptionError
	var streamErr *core.StreamError
	code := C.int(C.GM_EINTERNAL)
	switch {
	case errors.As(err, &optErr):
		code = C.GM_EOPTION
	case errors.As(err, &streamErr):
		code = C.GM_ESTREAM
		return &status{code, streamErr.Reason}
	case errors.Is(err, core.ErrBadArg):
		code = C.GM_EINVAL
	case errors.Is(err, core.ErrClosed):
		code = C.GM_ECLOSED
	case errors.Is(err, core.ErrTimeout):
		code = C.GM_ETIMEOUT
	case errors.Is(err, core.ErrNoStream):
		code = C.GM_ENOSTREAM
	case errors.Is(err, core.ErrNotUp):
		code = C.GM_ENOTUP
	case errors.Is(err, core.ErrBadState):
		code = C.GM_EBADSTATE
	case errors.Is(err, core.ErrUnsupported):
		code = C.GM_EUNSUPPORTED
	case errors.Is(err, core.ErrQueueClosed):
		code = C.GM_EQUEUE
	case errors.Is(err, core.ErrWouldBlock):
		code = C.GM_EAGAIN
	}
	return &status{code, err.Error()}
}

// guard turns a panic into GM_EINTERNAL: no panic crosses into C.
func guard(rc *C.int) {
	if r := recover(); r != nil {
		setErrmsg(fmt.Sprintf("internal error (please report): %v\n%s", r, debug.Stack()))
		if rc != nil {
			*rc = C.GM_EINTERNAL
		}
	}
}

func queueOf(p *C.gm_queue) (*core.Queue, *status) {
	if p == nil {
		return nil, fail(C.GM_EINVAL, "queue is NULL")
	}
	h, ok := pointer.Restore(unsafe.Pointer(p)).(*queueHandle)
	if !ok {
		return nil, fail(C.GM_EINVAL, "not a live queue handle (freed, or never made by gm_queue_new)")
	}
	return h.q, nil
}

func connOf(p *C.gm_conn) (*connHandle, *status) {
	if p == nil {
		return nil, fail(C.GM_EINVAL, "connection is NULL")
	}
	h, ok := pointer.Restore(unsafe.Pointer(p)).(*connHandle)
	if !ok {
		return nil, fail(C.GM_EINVAL, "not a live connection handle (freed, or never made by gm_open)")
	}
	if h.freed.Load() {
		return nil, fail(C.GM_ECLOSED, "connection handle was released with gm_conn_free")
	}
	return h, nil
}

func main() {}
