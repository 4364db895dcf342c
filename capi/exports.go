package main

/*
#include <stdint.h>
#include <string.h>
#include "gunmetal.h"
const char *gm__static_name(const char *s, size_t n);
*/
import "C"

import (
	"errors"
	"math"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/mattn/go-pointer"

	"gunmetal/core"
)

// cgo cannot declare const parameters, so the functions of the header that
// take const pointers are exported as gmgo_* and wrapped in gunmetal.c.
//
// Every export recovers panics (guard) and reports failures through the
// thread's error sentence. This file is marshalling only: no protocol logic.

// The limits the header documents as GM_MAX_*: every length the caller
// gives is checked against one before anything is read or copied, so a
// wrong or hostile length is GM_EINVAL, never a huge copy, a truncation or
// a Go fatal error (C.GoStringN and C.GoBytes take a C int).
const (
	maxString   = core.MaxTargetLen // GM_MAX_STRING: host, method, path, unix path
	maxOptsJSON = 1 << 20           // GM_MAX_OPTS_JSON: opts_json, ws_opts_json
	maxBody     = 1 << 30           // GM_MAX_BODY: gm_request's body (copied: it may wait for UP)
	maxWSFrames = 1 << 20           // GM_MAX_WS_FRAMES: frames in one gm_ws_send
	maxView     = math.MaxInt       // GM_MAX_DATA (PTRDIFF_MAX): gm_data's len, a ws frame's len
)

// goString copies the NUL-terminated p, refusing NULL, more than limit
// bytes (without reading past limit+1) and invalid UTF-8.
func goString(p *C.char, what string, limit int) (string, *status) {
	if p == nil {
		return "", fail(C.GM_EINVAL, "%s is NULL", what)
	}
	n := cstrnlen(p, limit+1)
	if n > limit {
		return "", fail(C.GM_EINVAL, "%s is longer than the limit of %d bytes", what, limit)
	}
	s := C.GoStringN(p, C.int(n))
	if !utf8.ValidString(s) {
		return "", fail(C.GM_EINVAL, "%s is not valid UTF-8", what)
	}
	return s, nil
}

// goStringN copies n bytes at p (n == SIZE_MAX: NUL-terminated), taking
// them from *budget; more than *budget is refused.
func goStringN(p *C.char, n C.size_t, what string, budget *int) (string, *status) {
	if p == nil {
		if n == 0 {
			return "", nil
		}
		return "", fail(C.GM_EINVAL, "%s is NULL", what)
	}
	if n == ^C.size_t(0) {
		n = C.size_t(cstrnlen(p, *budget+1))
	}
	if n > C.size_t(*budget) {
		return "", fail(C.GM_EINVAL, "%s: length %d is past the limit of GM_MAX_HEADER_BYTES (%d bytes for all names and values of one call)",
			what, uint64(n), core.MaxHeaderBytes)
	}
	*budget -= int(n)
	return C.GoStringN(p, C.int(n)), nil
}

// cstrnlen is strnlen(3) in Go: a call into C from an export costs more
// than scanning the short strings of a request (a method, a path, header
// names) here. It reads byte by byte, so never past the NUL (a wider read
// could cross into an unmapped page).
func cstrnlen(p *C.char, max int) int {
	b := unsafe.Pointer(p)
	n := 0
	for n < max && *(*byte)(unsafe.Add(b, n)) != 0 {
		n++
	}
	return n
}

func duration(ms C.int) time.Duration {
	if ms < 0 {
		return -1
	}
	return time.Duration(ms) * time.Millisecond
}

// timeout maps a timeout_ms argument: -1 waits for ever, other negative
// values are refused (the header promises only -1).
func timeout(ms C.int) (time.Duration, *status) {
	if ms < -1 {
		return 0, fail(C.GM_EINVAL, "timeout_ms %d: must be >= 0, or -1 to wait for ever", int(ms))
	}
	return duration(ms), nil
}

func parseOpts(js *C.char, port int) (*core.Options, *status) {
	var raw []byte
	if js != nil {
		s, st := goString(js, "opts_json", maxOptsJSON)
		if st != nil {
			return nil, st
		}
		raw = []byte(s)
	}
	o, err := core.ParseOptions(raw, port)
	if err != nil {
		return nil, fromErr(err)
	}
	return o, nil
}

//export gm_queue_new
func gm_queue_new() (out *C.gm_queue) {
	defer guard(nil)
	q, err := core.NewQueue()
	if err != nil {
		fail(C.GM_ENOMEM, "cannot make the queue's eventfd: %v", err).report()
		return nil
	}
	// Flow control follows gm_event_free, not gm_queue_poll.
	q.SetDeferredRelease(true)
	return newQueueHandle(q)
}

//export gm_queue_free
func gm_queue_free(p *C.gm_queue) {
	defer guard(nil)
	if p == nil {
		return
	}
	q, st := queueOf(p)
	if st != nil {
		st.report()
		return
	}
	pointer.Unref(unsafe.Pointer(p))
	live.Add(-1)
	q.Free()
}

//export gm_queue_fd
func gm_queue_fd(p *C.gm_queue) (rc C.int) {
	defer guard(&rc)
	q, st := queueOf(p)
	if st != nil {
		return st.report()
	}
	return C.int(q.FD())
}

//export gm_queue_len
func gm_queue_len(p *C.gm_queue) (rc C.int) {
	defer guard(&rc)
	q, st := queueOf(p)
	if st != nil {
		return st.report()
	}
	return C.int(q.Len())
}

//export gm_queue_wake
func gm_queue_wake(p *C.gm_queue) (rc C.int) {
	defer guard(&rc)
	q, st := queueOf(p)
	if st != nil {
		return st.report()
	}
	q.Wake()
	return C.GM_OK
}

//export gm_flush
func gm_flush(qp *C.gm_queue, p *C.gm_conn, ref C.gm_ref) (rc C.int) {
	defer guard(&rc)
	q, st := queueOf(qp)
	if st != nil {
		return st.report()
	}
	var c *core.Conn
	if p != nil {
		h, st := connOf(p)
		if st != nil {
			return st.report()
		}
		c = h.c
	}
	n, err := q.Flush(c, uint64(ref))
	if err != nil {
		return fromErr(err).report()
	}
	if n > math.MaxInt32 {
		n = math.MaxInt32
	}
	return C.int(n)
}

var pollBufs = sync.Pool{New: func() any { s := make([]*core.Event, 256); return &s }}

// gmgo_queue_poll takes what is queued without waiting. When there is
// nothing (and no wake was pending) and the caller may wait, it returns
// gmWait with *fd the queue's eventfd: gm_queue_poll (gunmetal.c) then waits
// in C, in poll(2), and calls again. Waiting in Go instead would park the
// goroutine of a cgo callback, which is locked to the host's thread: the
// runtime then hands its P to another thread and back on every wait.
//
// gmWait is gmgo_queue_poll's "wait on *fd and call again"; gunmetal.c's
// GM__WAIT. Never returned to the host.
const gmWait = -1000

//export gmgo_queue_poll
func gmgo_queue_poll(p *C.gm_queue, out **C.gm_event, max C.int, mayWait C.int, fd *C.int) (rc C.int) {
	defer guard(&rc)
	q, st := queueOf(p)
	if st != nil {
		return st.report()
	}
	if out == nil || max <= 0 {
		return fail(C.GM_EINVAL, "out must be an array of max > 0 pointers").report()
	}
	bp := pollBufs.Get().(*[]*core.Event)
	defer pollBufs.Put(bp)
	evs := *bp
	if int(max) < len(evs) {
		evs = evs[:max]
	}
	n, woken, err := q.TryPoll(evs)
	if err != nil {
		return fromErr(err).report()
	}
	if n == 0 {
		if mayWait != 0 && !woken {
			*fd = C.int(q.FD())
			return gmWait
		}
		return 0
	}
	var dst [256]*C.gm_event // C pointers, copied to out with cStore
	k := marshalBatch(evs[:n], dst[:n])
	clear(evs[:n])
	outs := unsafe.Slice(out, int(max))
	for i := 0; i < k; i++ {
		cStore(unsafe.Pointer(&outs[i]), unsafe.Pointer(dst[i]))
	}
	if k == 0 {
		// The events taken are lost to the host: say so rather than hide it.
		return fail(C.GM_ENOMEM, "out of memory copying %d events", n).report()
	}
	return C.int(k)
}

//export gmgo_bad_timeout
func gmgo_bad_timeout(ms C.int) C.int {
	_, st := timeout(ms)
	return st.report()
}

func open(owner *C.gm_queue, out **C.gm_conn, opts *C.char, port int,
	start func(o *core.Options, q *core.Queue, h *connHandle) (*core.Conn, error)) *status {
	q, st := queueOf(owner)
	if st != nil {
		return st
	}
	if out == nil {
		return fail(C.GM_EINVAL, "out is NULL")
	}
	o, st := parseOpts(opts, port)
	if st != nil {
		return st
	}
	h := newConnHandle()
	c, err := start(o, q, h)
	if err != nil {
		h.release()
		return fromErr(err)
	}
	h.c = c
	cStore(unsafe.Pointer(out), h.self)
	return nil
}

//export gmgo_open
func gmgo_open(owner *C.gm_queue, host *C.char, port C.int, opts *C.char, out **C.gm_conn) (rc C.int) {
	defer guard(&rc)
	hs, st := goString(host, "host", maxString)
	if st != nil {
		return st.report()
	}
	if port < 1 || port > 65535 {
		return fail(C.GM_EINVAL, "port %d out of range 1..65535", int(port)).report()
	}
	return open(owner, out, opts, int(port), func(o *core.Options, q *core.Queue, h *connHandle) (*core.Conn, error) {
		return core.Open(hs, int(port), o, q, h)
	}).report()
}

//export gmgo_open_unix
func gmgo_open_unix(owner *C.gm_queue, path *C.char, opts *C.char, out **C.gm_conn) (rc C.int) {
	defer guard(&rc)
	ps, st := goString(path, "path", maxString)
	if st != nil {
		return st.report()
	}
	return open(owner, out, opts, 0, func(o *core.Options, q *core.Queue, h *connHandle) (*core.Conn, error) {
		return core.OpenUnix(ps, o, q, h)
	}).report()
}

//export gmgo_open_fd
func gmgo_open_fd(owner *C.gm_queue, fd C.int, opts *C.char, out **C.gm_conn) (rc C.int) {
	defer guard(&rc)
	if opts != nil {
		s, st := goString(opts, "opts_json", maxOptsJSON)
		if st != nil {
			return st.report()
		}
		if err := core.CheckAdoptOptions([]byte(s)); err != nil {
			return fromErr(err).report()
		}
	}
	st := open(owner, out, opts, 0, func(o *core.Options, q *core.Queue, h *connHandle) (*core.Conn, error) {
		nc, err := core.AdoptFD(int(fd)) // a duplicate: fd stays the host's until we succeed
		if err != nil {
			return nil, err
		}
		c, err := core.OpenConn(nc, o, q, h)
		if err != nil {
			nc.Close()
			return nil, err
		}
		return c, nil
	})
	if st == nil {
		syscall.Close(int(fd)) // ownership passed: the connection runs on its duplicate
	}
	return st.report()
}

//export gm_close
func gm_close(p *C.gm_conn) (rc C.int) {
	defer guard(&rc)
	if p == nil {
		return C.GM_OK
	}
	h, st := connOf(p)
	if st != nil {
		return st.report()
	}
	h.c.Close()
	return C.GM_OK
}

//export gm_shutdown
func gm_shutdown(p *C.gm_conn) (rc C.int) {
	defer guard(&rc)
	h, st := connOf(p)
	if st != nil {
		return st.report()
	}
	return fromErr(h.c.Shutdown()).report()
}

//export gm_conn_free
func gm_conn_free(p *C.gm_conn) {
	defer guard(nil)
	if p == nil {
		return
	}
	h, st := connOf(p)
	if st != nil {
		st.report()
		return
	}
	if h.freed.Swap(true) {
		return
	}
	h.c.Close()
	// Closing is quick (the socket is closed under the goroutines); wait
	// for the EXIT so the handle's release below is deterministic.
	<-h.c.Done()
	h.c.OnSettled(h.release)
}

//export gm_set_owner
func gm_set_owner(p *C.gm_conn, qp *C.gm_queue) (rc C.int) {
	defer guard(&rc)
	h, st := connOf(p)
	if st != nil {
		return st.report()
	}
	q, st := queueOf(qp)
	if st != nil {
		return st.report()
	}
	return fromErr(h.c.SetOwner(q)).report()
}

// staticName gives a protocol name from C static storage, so the host
// needs not free it.
func staticName(s string) *C.char {
	return C.gm__static_name((*C.char)(unsafe.Pointer(unsafe.StringData(s))), C.size_t(len(s)))
}

//export gmgo_await_up
func gmgo_await_up(p *C.gm_conn, timeoutMS C.int, protocol **C.char) (rc C.int) {
	defer guard(&rc)
	h, st := connOf(p)
	if st != nil {
		return st.report()
	}
	d, st := timeout(timeoutMS)
	if st != nil {
		return st.report()
	}
	name, err := h.c.AwaitUp(d)
	if errors.Is(err, core.ErrTimeout) {
		if why := h.c.LastFailure(); why != "" {
			return fail(C.GM_ETIMEOUT, "no UP within %d ms (connection state: %s; last failure: %s)",
				int(timeoutMS), h.c.Info().State, why).report()
		}
		return fail(C.GM_ETIMEOUT, "no UP within %d ms (connection state: %s)", int(timeoutMS), h.c.Info().State).report()
	}
	if err != nil {
		return fromErr(err).report()
	}
	if protocol != nil {
		cStore(unsafe.Pointer(protocol), unsafe.Pointer(staticName(name)))
	}
	return C.GM_OK
}

func goHeaders(hs *C.gm_header, n C.size_t) ([]core.Header, *status) {
	if n == 0 {
		return nil, nil
	}
	if hs == nil {
		return nil, fail(C.GM_EINVAL, "headers is NULL but n_headers is %d", uint64(n))
	}
	if n > core.MaxRequestHeaders {
		return nil, fail(C.GM_EINVAL, "n_headers %d is past the limit of GM_MAX_HEADERS (%d)", uint64(n), core.MaxRequestHeaders)
	}
	in := unsafe.Slice(hs, int(n))
	out := make([]core.Header, len(in))
	budget := core.MaxHeaderBytes
	for i := range in {
		name, st := goStringN(in[i].name, in[i].name_len, "header name "+strconv.Itoa(i), &budget)
		if st != nil {
			return nil, st
		}
		value, st := goStringN(in[i].value, in[i].value_len, "header value "+strconv.Itoa(i), &budget)
		if st != nil {
			return nil, st
		}
		out[i] = core.Header{Name: name, Value: value}
	}
	return out, nil
}

//export gmgo_request
func gmgo_request(p *C.gm_conn, method, path *C.char, hs *C.gm_header, nh C.size_t,
	body unsafe.Pointer, bodyLen C.size_t, flags C.unsigned, opts *C.gm_req_opts, ref *C.gm_ref) (rc C.int) {
	defer guard(&rc)
	h, st := connOf(p)
	if st != nil {
		return st.report()
	}
	if ref == nil {
		return fail(C.GM_EINVAL, "ref is NULL").report()
	}
	r := &core.Request{Stream: flags&C.GM_REQ_STREAM != 0}
	if flags&^C.GM_REQ_STREAM != 0 {
		return fail(C.GM_EINVAL, "unknown request flags 0x%x", uint(flags)).report()
	}
	if r.Method, st = goString(method, "method", maxString); st != nil {
		return st.report()
	}
	if r.Path, st = goString(path, "path", maxString); st != nil {
		return st.report()
	}
	if r.Headers, st = goHeaders(hs, nh); st != nil {
		return st.report()
	}
	if bodyLen > 0 {
		if body == nil {
			return fail(C.GM_EINVAL, "body is NULL but body_len is %d", uint64(bodyLen)).report()
		}
		if bodyLen > maxBody {
			return fail(C.GM_EINVAL, "body_len %d is past the limit of GM_MAX_BODY (%d bytes): send a larger body with GM_REQ_STREAM and gm_data",
				uint64(bodyLen), maxBody).report()
		}
		r.Body = C.GoBytes(body, C.int(bodyLen))
	}
	if st = reqOpts(opts, r); st != nil {
		return st.report()
	}
	id, err := h.c.Request(r)
	if err != nil {
		return fromErr(err).report()
	}
	*ref = C.gm_ref(id)
	return C.GM_OK
}

// reqOpts reads a gm_req_opts (NULL: the defaults) into r.
func reqOpts(opts *C.gm_req_opts, r *core.Request) *status {
	if opts == nil {
		return nil
	}
	// A caller built against an older header passes the size it knew
	// (without content_handlers_json, or without tunnel); any other short
	// size is a mistake.
	older := C.uint32_t(unsafe.Offsetof(opts.content_handlers_json))
	withHandlers := C.uint32_t(unsafe.Offsetof(opts.tunnel))
	if opts.size != older && opts.size != withHandlers && opts.size < C.uint32_t(unsafe.Sizeof(C.gm_req_opts{})) {
		return fail(C.GM_EINVAL, "gm_req_opts.size is %d; set it to sizeof(gm_req_opts)", uint32(opts.size))
	}
	if opts.timeout_ms < 0 || opts.flow < 0 {
		return fail(C.GM_EINVAL, "gm_req_opts timeout_ms and flow must be >= 0")
	}
	r.Timeout = duration(opts.timeout_ms)
	r.Flow = int(opts.flow)
	var st *status
	if opts.reply_to != nil {
		if r.ReplyTo, st = queueOf(opts.reply_to); st != nil {
			return st
		}
	}
	if opts.size != older && opts.content_handlers_json != nil {
		js, st := goString(opts.content_handlers_json, "gm_req_opts.content_handlers_json", maxOptsJSON)
		if st != nil {
			return st
		}
		var err error
		if r.ContentHandlers, err = core.ParseContentHandlers([]byte(js)); err != nil {
			return fromErr(err)
		}
	}
	if opts.size > withHandlers {
		r.Tunnel = uint64(opts.tunnel)
	}
	return nil
}

//export gmgo_connect
func gmgo_connect(p *C.gm_conn, destJSON *C.char, hs *C.gm_header, nh C.size_t, opts *C.gm_req_opts, ref *C.gm_ref) (rc C.int) {
	defer guard(&rc)
	h, st := connOf(p)
	if st != nil {
		return st.report()
	}
	if ref == nil {
		return fail(C.GM_EINVAL, "ref is NULL").report()
	}
	if destJSON == nil {
		return fail(C.GM_EINVAL, "dest_json is NULL").report()
	}
	js, st := goString(destJSON, "dest_json", maxOptsJSON)
	if st != nil {
		return st.report()
	}
	d, err := core.ParseDestination([]byte(js))
	if err != nil {
		return fromErr(err).report()
	}
	r := &core.Request{}
	if r.Headers, st = goHeaders(hs, nh); st != nil {
		return st.report()
	}
	if st = reqOpts(opts, r); st != nil {
		return st.report()
	}
	id, err := h.c.Connect(d, r)
	if err != nil {
		return fromErr(err).report()
	}
	*ref = C.gm_ref(id)
	return C.GM_OK
}

//export gmgo_data
func gmgo_data(p *C.gm_conn, ref C.gm_ref, data unsafe.Pointer, n C.size_t, fin C.int, sent *C.size_t) (rc C.int) {
	defer guard(&rc)
	if sent != nil {
		*sent = 0
	}
	h, st := connOf(p)
	if st != nil {
		return st.report()
	}
	if n > 0 && data == nil {
		return fail(C.GM_EINVAL, "data is NULL but len is %d", uint64(n)).report()
	}
	if uint64(n) > maxView {
		return fail(C.GM_EINVAL, "len %d is past the limit of GM_MAX_DATA (PTRDIFF_MAX): a negative value cast to size_t?", uint64(n)).report()
	}
	var b []byte
	if n > 0 {
		// The engine copies into its output buffer before returning, so a
		// view of the caller's memory is enough.
		b = unsafe.Slice((*byte)(data), int(n))
	}
	err := h.c.Data(uint64(ref), b, fin != 0)
	if sent != nil {
		if err == nil {
			*sent = n
		} else if k, ok := core.SentCount(err); ok {
			*sent = C.size_t(k)
		}
	}
	return fromErr(err).report()
}

//export gm_cancel
func gm_cancel(p *C.gm_conn, ref C.gm_ref) (rc C.int) {
	defer guard(&rc)
	h, st := connOf(p)
	if st != nil {
		return st.report()
	}
	return fromErr(h.c.Cancel(uint64(ref))).report()
}

//export gm_update_flow
func gm_update_flow(p *C.gm_conn, ref C.gm_ref, n C.int) (rc C.int) {
	defer guard(&rc)
	h, st := connOf(p)
	if st != nil {
		return st.report()
	}
	return fromErr(h.c.UpdateFlow(uint64(ref), int(n))).report()
}

//export gm_await
func gm_await(p *C.gm_conn, ref C.gm_ref, timeoutMS C.int, out **C.gm_event) (rc C.int) {
	defer guard(&rc)
	h, st := connOf(p)
	if st != nil {
		return st.report()
	}
	if out == nil {
		return fail(C.GM_EINVAL, "out is NULL").report()
	}
	d, st := timeout(timeoutMS)
	if st != nil {
		return st.report()
	}
	ev, err := h.c.Await(uint64(ref), d)
	if err != nil {
		return fromErr(err).report()
	}
	e := marshal(ev, ev.Credit())
	cStore(unsafe.Pointer(out), unsafe.Pointer(e))
	if e == nil {
		return fail(C.GM_ENOMEM, "out of memory").report()
	}
	return C.GM_OK
}

//export gm_await_body
func gm_await_body(p *C.gm_conn, ref C.gm_ref, timeoutMS C.int, out **C.gm_event) (rc C.int) {
	defer guard(&rc)
	h, st := connOf(p)
	if st != nil {
		return st.report()
	}
	if out == nil {
		return fail(C.GM_EINVAL, "out is NULL").report()
	}
	d, st := timeout(timeoutMS)
	if st != nil {
		return st.report()
	}
	b, err := h.c.AwaitBody(uint64(ref), d)
	if err != nil {
		return fromErr(err).report()
	}
	data := b.Data
	if data == nil {
		data = []byte{}
	}
	ev := &core.Event{Kind: core.EvData, Fin: true, Conn: h.c, Ref: uint64(ref), Status: b.Status, Data: data, Headers: b.Trailers}
	e := record(ev)
	cStore(unsafe.Pointer(out), unsafe.Pointer(e))
	if e == nil {
		return fail(C.GM_ENOMEM, "out of memory").report()
	}
	return C.GM_OK
}

// record marshals an event made here, not taken from a queue: it pins its
// connection like a queued event until gm_event_free.
// evInfo is GM_EV_INFO: the kind of the records gm_info, gm_stream_info and
// gm_cookies_get fill (not a queue event).
const evInfo = core.EventKind(C.GM_EV_INFO)

func record(ev *core.Event) *C.gm_event {
	return marshal(ev, ev.Conn.Pin(64))
}

func infoEvent(h *connHandle, ref uint64, kv ...string) *C.gm_event {
	hs := make([]core.Header, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		hs = append(hs, core.Header{Name: kv[i], Value: kv[i+1]})
	}
	return record(&core.Event{Kind: evInfo, Conn: h.c, Ref: ref, Headers: hs})
}

//export gm_info
func gm_info(p *C.gm_conn, out **C.gm_event) (rc C.int) {
	defer guard(&rc)
	h, st := connOf(p)
	if st != nil {
		return st.report()
	}
	if out == nil {
		return fail(C.GM_EINVAL, "out is NULL").report()
	}
	in := h.c.Info()
	kv := []string{"state", in.State, "protocol", in.Protocol, "transport", in.Transport,
		"host", in.Host, "port", strconv.Itoa(in.Port), "origin", in.Origin}
	if ip, port, err := net.SplitHostPort(in.Local); err == nil {
		kv = append(kv, "sock_ip", ip, "sock_port", port)
	}
	if in.Peer != "" {
		kv = append(kv, "peer", in.Peer)
	}
	if in.Reason != "" {
		kv = append(kv, "reason", in.Reason)
	}
	kv = append(kv, "origin_scheme", in.OriginScheme, "origin_host", in.OriginHost, "origin_port", strconv.Itoa(in.OriginPort),
		"cookie_store", strconv.FormatBool(in.CookieStore))
	for _, x := range in.Intermediaries {
		kv = append(kv, "intermediary", strings.Join([]string{x.Type, x.Host, strconv.Itoa(x.Port), x.Transport, x.Protocol}, " "))
	}
	if in.TLS != nil {
		kv = append(kv, "tls_version", in.TLS.Version, "tls_cipher", in.TLS.Cipher, "alpn", in.TLS.ALPN,
			"tls_resumed", strconv.FormatBool(in.TLS.Resumed))
	}
	e := infoEvent(h, 0, kv...)
	cStore(unsafe.Pointer(out), unsafe.Pointer(e))
	if e == nil {
		return fail(C.GM_ENOMEM, "out of memory").report()
	}
	return C.GM_OK
}

//export gm_tls_session_cache
func gm_tls_session_cache(max C.int, lifetimeMS C.int64_t) (rc C.int) {
	defer guard(&rc)
	if lifetimeMS < 0 || int64(lifetimeMS) > math.MaxInt64/int64(time.Millisecond) {
		return fail(C.GM_EINVAL, "lifetime_ms %d: must be >= 0 (0: no lifetime) and fit a duration", int64(lifetimeMS)).report()
	}
	return fromErr(core.SetTLSSessionCache(int(max), time.Duration(lifetimeMS)*time.Millisecond)).report()
}

//export gm_cookies_get
func gm_cookies_get(p *C.gm_conn, out **C.gm_event) (rc C.int) {
	defer guard(&rc)
	h, st := connOf(p)
	if st != nil {
		return st.report()
	}
	if out == nil {
		return fail(C.GM_EINVAL, "out is NULL").report()
	}
	js, err := h.c.CookiesJSON()
	if err != nil {
		return fromErr(err).report()
	}
	e := record(&core.Event{Kind: evInfo, Conn: h.c, Data: js})
	cStore(unsafe.Pointer(out), unsafe.Pointer(e))
	if e == nil {
		return fail(C.GM_ENOMEM, "out of memory").report()
	}
	return C.GM_OK
}

//export gmgo_cookies_set
func gmgo_cookies_set(p *C.gm_conn, js *C.char) (rc C.int) {
	defer guard(&rc)
	h, st := connOf(p)
	if st != nil {
		return st.report()
	}
	s, st := goString(js, "json", maxOptsJSON)
	if st != nil {
		return st.report()
	}
	return fromErr(h.c.SetCookies([]byte(s))).report()
}

//export gm_stream_info
func gm_stream_info(p *C.gm_conn, ref C.gm_ref, out **C.gm_event) (rc C.int) {
	defer guard(&rc)
	h, st := connOf(p)
	if st != nil {
		return st.report()
	}
	if out == nil {
		return fail(C.GM_EINVAL, "out is NULL").report()
	}
	si, err := h.c.StreamInfo(uint64(ref))
	if err != nil {
		return fromErr(err).report()
	}
	kv := []string{"ref", strconv.FormatUint(si.Ref, 10), "state", si.State,
		"method", si.Method, "path", si.Path, "protocol", si.Protocol, "flow", strconv.Itoa(si.Flow)}
	if t := si.Tunnel; t != nil {
		kv = append(kv, "tunnel_transport", t.Transport, "tunnel_protocol", t.Protocol, "tunnel_origin_scheme", t.OriginScheme,
			"tunnel_origin_host", t.OriginHost, "tunnel_origin_port", strconv.Itoa(t.OriginPort))
	}
	cStore(unsafe.Pointer(out), unsafe.Pointer(infoEvent(h, uint64(ref), kv...)))
	if *out == nil {
		return fail(C.GM_ENOMEM, "out of memory").report()
	}
	return C.GM_OK
}

//export gm_ping
func gm_ping(p *C.gm_conn, ref *C.gm_ref) (rc C.int) {
	defer guard(&rc)
	return ping(p, 0, ref)
}

//export gm_ping_tunnel
func gm_ping_tunnel(p *C.gm_conn, tunnel C.gm_ref, ref *C.gm_ref) (rc C.int) {
	defer guard(&rc)
	return ping(p, tunnel, ref)
}

// ping is gm_ping_tunnel; tunnel 0 is gm_ping.
func ping(p *C.gm_conn, tunnel C.gm_ref, ref *C.gm_ref) C.int {
	h, st := connOf(p)
	if st != nil {
		return st.report()
	}
	if ref == nil {
		return fail(C.GM_EINVAL, "ref is NULL").report()
	}
	id, err := h.c.PingVia(uint64(tunnel))
	if err != nil {
		return fromErr(err).report()
	}
	*ref = C.gm_ref(id)
	return C.GM_OK
}

//export gmgo_ws_upgrade
func gmgo_ws_upgrade(p *C.gm_conn, path *C.char, hs *C.gm_header, nh C.size_t, opts *C.char, replyTo *C.gm_queue, ref *C.gm_ref) (rc C.int) {
	defer guard(&rc)
	h, st := connOf(p)
	if st != nil {
		return st.report()
	}
	if ref == nil {
		return fail(C.GM_EINVAL, "ref is NULL").report()
	}
	ps, st := goString(path, "path", maxString)
	if st != nil {
		return st.report()
	}
	headers, st := goHeaders(hs, nh)
	if st != nil {
		return st.report()
	}
	var wo *core.WSOpts // nil: the connection's ws_opts
	if opts != nil {
		js, st := goString(opts, "ws_opts_json", maxOptsJSON)
		if st != nil {
			return st.report()
		}
		o, err := core.ParseWSOpts([]byte(js))
		if err != nil {
			return fromErr(err).report()
		}
		wo = o
	}
	if replyTo != nil {
		// Gun's ws_opts reply_to: the stream's events go to that queue.
		q, st := queueOf(replyTo)
		if st != nil {
			return st.report()
		}
		if wo == nil {
			o := h.c.WSOpts()
			wo = &o
		}
		wo.ReplyTo = q
	}
	id, err := h.c.WSUpgrade(ps, headers, wo)
	if err != nil {
		return fromErr(err).report()
	}
	*ref = C.gm_ref(id)
	return C.GM_OK
}

//export gmgo_ws_send
func gmgo_ws_send(p *C.gm_conn, ref C.gm_ref, frames *C.gm_ws_frame, n C.size_t, nowait C.int) (rc C.int) {
	defer guard(&rc)
	h, st := connOf(p)
	if st != nil {
		return st.report()
	}
	if n > 0 && frames == nil {
		return fail(C.GM_EINVAL, "frames is NULL but n is %d", uint64(n)).report()
	}
	if n > maxWSFrames {
		return fail(C.GM_EINVAL, "n %d is past the limit of GM_MAX_WS_FRAMES (%d)", uint64(n), maxWSFrames).report()
	}
	in := unsafe.Slice(frames, int(n))
	out := make([]core.WSFrame, len(in))
	for i := range in {
		f := &in[i]
		if f.len > 0 && f.data == nil {
			return fail(C.GM_EINVAL, "frame %d: data is NULL but len is %d", i, uint64(f.len)).report()
		}
		if uint64(f.len) > maxView {
			return fail(C.GM_EINVAL, "frame %d: len %d is past the limit of GM_MAX_DATA (PTRDIFF_MAX): a negative value cast to size_t?", i, uint64(f.len)).report()
		}
		if f.op > 255 {
			return fail(C.GM_EINVAL, "frame %d: unknown op %d", i, uint32(f.op)).report()
		}
		out[i] = core.WSFrame{Op: uint8(f.op), Code: int(f.code)}
		if f.op == C.GM_WS_CLOSE && f.code > 0xffff {
			return fail(C.GM_EINVAL, "frame %d: close code %d out of range", i, uint32(f.code)).report()
		}
		if f.len > 0 {
			// A view of the caller's memory: the engine copies what it
			// writes before returning and keeps nothing.
			out[i].Data = unsafe.Slice((*byte)(f.data), int(f.len))
		}
	}
	if nowait != 0 {
		return fromErr(h.c.WSSendNoWait(uint64(ref), out)).report()
	}
	return fromErr(h.c.WSSend(uint64(ref), out)).report()
}

// gm__live_handles is for the leak test: handles not yet released.
//
//export gm__live_handles
func gm__live_handles() C.int64_t { return C.int64_t(live.Load()) }

// gm__dump_goroutines writes every goroutine's stack to stderr: a test's
// watchdog calls it when a call has not returned for far too long, so a hang
// seen once (in CI) shows where it waits.
//
//export gm__dump_goroutines
func gm__dump_goroutines() {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) || len(buf) >= 64<<20 {
			os.Stderr.Write(buf[:n])
			return
		}
		buf = make([]byte, 2*len(buf))
	}
}
