package core

// h2Pipe: one HTTP/2 stream used as a byte stream both ways, the transport
// of whatever runs on it (the seam's stream half, tunnel.go's doc): the
// child connection of a CONNECT tunnel (through tunnelConn, its net.Conn
// face) and the WebSocket of an RFC 8441 extended CONNECT (fed in place,
// as the socket's read loop feeds a protocol). One path for both:
//
//   - input: the stream's DATA is handed to the user (handle) as it comes;
//     what the user does not take yet (Gun's flow ran out) waits here and
//     is handed again on resume. The bytes count as held, and the windows
//     stay shut on them, until the user is done with them: at once when it
//     takes them (a WebSocket parsed them into events), or when it says so
//     (keep: tunnelConn gives them back as its child reads);
//   - output: what the user writes becomes the stream's body and goes out
//     as the server's windows allow (sendBody), and the reader is never
//     blocked by it; a writer waits (back-pressure): a WebSocket's while
//     more than writeBound is pending, as over a socket; a tunnel's child
//     until its bytes went out within the windows, as a socket's writer
//     blocks in write(2) once the kernel's buffer is full (the child's own
//     output buffer bounds it, and raw's send_timeout counts on it);
//   - ends: closeWrite (END_STREAM after what is pending, then the peer's
//     END_STREAM awaited at most linger, else RST_STREAM CANCEL), abort
//     (RST_STREAM CANCEL now), and gone when the engine forgets the stream
//     (reset either way, closed both ways, or the connection went down).
//
// Everything runs with the connection's c.mu held; waitSent and write
// release it while they wait.

import (
	"fmt"
	"net"
	"strings"
	"time"

	"golang.org/x/net/http2"
)

// pipeUser is what runs on an h2Pipe.
type pipeUser interface {
	// handle takes bytes of the stream (as protocol.handle takes the
	// socket's): how many it took; an error means it is done: the pipe
	// drops the rest and ends our side (closeWrite). c.mu held.
	handle(b []byte) (int, error)
	// peerFin: the peer ended the stream (END_STREAM). c.mu held.
	peerFin()
	// gone: the stream is forgotten (why; s.errored says whether its end
	// was told the host already). c.mu held.
	gone(why string)
}

type h2Pipe struct {
	h     *h2conn
	s     *h2Stream
	user  pipeUser
	keep  bool   // the user gives taken bytes back itself (release)
	in    []byte // received, not taken yet
	open  bool   // our side is open: the body empties without END_STREAM
	spare []byte // the body's buffer, reused once it drained
	// linger: once our side ended because of the user (an error of handle,
	// or the peer's END_STREAM for a WebSocket), how long the peer's
	// END_STREAM is awaited (0: as long as it takes).
	linger time.Duration
}

// pipe makes s a byte stream for u, once its 2xx came.
func (h *h2conn) pipe(s *h2Stream, u pipeUser, keep bool, linger time.Duration) *h2Pipe {
	w := &h2Pipe{h: h, s: s, user: u, keep: keep, open: true, linger: linger}
	s.pipe = w
	return w
}

// on: the engine still carries the stream.
func (w *h2Pipe) on() bool {
	h := w.h
	return h.c.proto == h && !h.dead && h.refs[w.s.ref] == w.s
}

// live: the connection still carries the stream's engine.
func (w *h2Pipe) live() bool { return w.h.c.proto == w.h }

// pipeData: DATA of a pipe's stream. free: padding, given back now.
func (h *h2conn) pipeData(s *h2Stream, data []byte, fin bool, free int64) {
	w := s.pipe
	if len(data) > 0 {
		s.held += len(data)
		h.connHeld += len(data)
		if len(w.in) == 0 {
			n, err := w.user.handle(data)
			if err != nil {
				n = len(data)
			} else if n < len(data) {
				w.in = append(w.in, data[n:]...)
			}
			w.took(n, err)
		} else {
			w.in = append(w.in, data...)
			w.resume()
		}
	}
	if fin {
		s.remoteFin = true
		w.user.peerFin()
		h.maybeClose(s)
	} else if free > 0 {
		h.streamEnsure(s)
	}
	if free > 0 {
		h.connEnsure()
	}
}

// resume hands the user what it left (it can take more, or more came).
func (w *h2Pipe) resume() {
	if len(w.in) == 0 || !w.on() {
		return
	}
	n, err := w.user.handle(w.in)
	if err != nil {
		n = len(w.in)
	}
	w.in = w.in[:copy(w.in, w.in[n:])]
	w.took(n, err)
}

func (w *h2Pipe) took(n int, err error) {
	if err != nil {
		n += len(w.in) // dropped: given back with what it took
		w.in = nil
	}
	if n > 0 && !w.keep {
		w.release(n)
	}
	if err != nil {
		w.closeWrite(w.linger)
	}
}

// release: the user is done with n bytes: the server may send more.
func (w *h2Pipe) release(n int) {
	if w.live() {
		w.h.consumed(w.s.ref, n)
	}
}

// buf is where the next output is appended: the stream's unsent body.
func (w *h2Pipe) buf() []byte {
	if len(w.s.body) == 0 {
		return w.spare[:0]
	}
	return w.s.body
}

// put makes b (buf with output appended) the stream's body and sends what
// the windows allow; the rest goes as they open. Nothing once our side
// ended.
func (w *h2Pipe) put(b []byte) {
	s := w.s
	if !w.on() || s.localFin || !w.open {
		return
	}
	if len(s.body) == 0 && cap(b) <= writeBound {
		w.spare = b[:0]
	}
	s.body = b
	w.h.sendBody(s)
}

// pending is the output not yet sent within the server's windows.
func (w *h2Pipe) pending() int { return len(w.s.body) }

// waitSent blocks the writer (the lock released) while much of the
// stream's output waits for the server's windows, or the connection's
// output for the socket. False if the stream or the connection is gone
// with output unsent.
func (w *h2Pipe) waitSent() bool { return w.waitBelow(writeBound) }

// full: waitSent would wait.
func (w *h2Pipe) full() bool { return len(w.s.body) > writeBound || len(w.h.c.wbuf) > writeBound }

// waitBelow is waitSent down to bound bytes pending.
func (w *h2Pipe) waitBelow(bound int) bool {
	h, s := w.h, w.s
	for len(s.body) > bound && h.refs[s.ref] == s && h.live() {
		h.c.wincond.Wait()
	}
	if h.refs[s.ref] != s && len(s.body) > 0 {
		return false
	}
	if c := h.c; len(c.wbuf) > writeBound && !c.waitDrained() {
		return false
	}
	return true
}

// write is a writer's (tunnelConn's): b goes out, the writer waiting until
// it is sent within the server's windows.
func (w *h2Pipe) write(b []byte) (int, error) {
	if !w.on() || w.s.localFin || !w.open {
		return 0, net.ErrClosed
	}
	w.put(append(w.buf(), b...))
	if !w.waitBelow(0) {
		if why := w.s.endWhy; why != "" { // send_window_timeout reset it
			return 0, fmt.Errorf("%w: stream %d: %s", ErrTimeout, w.s.ref, strings.TrimPrefix(why, "timeout: "))
		}
		return 0, net.ErrClosed
	}
	return len(b), nil
}

// closeWrite ends our side: END_STREAM after what is pending. The peer's
// END_STREAM is then awaited at most linger (0: as long as it takes), past
// which the stream is reset.
func (w *h2Pipe) closeWrite(linger time.Duration) {
	h, s := w.h, w.s
	if !w.on() {
		return
	}
	if w.open {
		w.open = false
		if len(s.body) > 0 {
			h.sendBody(s) // END_STREAM goes with the last piece
		} else if !s.localFin {
			h.writeData(s.id, true, nil)
			s.localFin = true
			h.maybeClose(s)
		}
	}
	if linger > 0 && h.refs[s.ref] == s {
		time.AfterFunc(linger, func() {
			h.c.mu.Lock()
			defer h.c.mu.Unlock()
			if w.on() {
				h.reset(s, http2.ErrCodeCancel)
			}
		})
	}
}

// abort resets the stream (RST_STREAM CANCEL).
func (w *h2Pipe) abort() {
	if w.on() {
		w.h.reset(w.s, http2.ErrCodeCancel)
	}
}
