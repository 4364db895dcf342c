package core

import (
	"errors"
	"fmt"
)

// Request bodies sent before UP (Gun queues them with the request, as its
// state machine postpones every call made while not connected).
//
// Data on a streamed request still waiting in c.pending is copied and held,
// up to max_pending_body bytes per connection; past it Data waits, as it
// does when output outruns the socket, until the connection is up and the
// held bytes went out (or the stream or the connection ends). On UP one
// goroutine sends the held pieces through the protocol in request order;
// meanwhile a Data call for a stream with held pieces waits its turn, so
// pieces go out in the order they were given.

// The default of max_pending_body (Options.MaxPendingBody) is
// GM_PENDING_BODY_MAX in the header: 4 MiB.

type heldPiece struct {
	p   []byte
	fin bool
}

type heldBody struct {
	pieces []heldPiece
	fin    bool
}

func (c *Conn) pendingReq(ref uint64) *Request {
	for _, r := range c.pending {
		if r.ref == ref {
			return r
		}
	}
	return nil
}

// holdLocked holds p for the queued request r; (false, nil) when the bound
// says wait.
func (c *Conn) holdLocked(r *Request, p []byte, fin bool) (bool, error) {
	if r.ws != nil || !r.Stream {
		return false, fmt.Errorf("%w: stream %d is not sending a body", ErrNoStream, r.ref)
	}
	hb := c.held[r.ref]
	if hb != nil && hb.fin {
		return false, fmt.Errorf("%w: the body of stream %d has already ended", ErrBadState, r.ref)
	}
	// HTTP/1.1 sends bodies one after the other: a later request's body
	// cannot go ahead of an earlier one's end (refused here rather than
	// after UP, where nobody could be told).
	for _, e := range c.pending {
		if e == r {
			break
		}
		if e.Stream && e.ws == nil && (c.held[e.ref] == nil || !c.held[e.ref].fin) {
			return false, fmt.Errorf("%w: the body of an earlier request (stream %d) has not ended; this one's can follow once it does", ErrBadState, e.ref)
		}
	}
	if len(p) == 0 && !fin {
		return true, nil // as the protocols: an empty piece that does not end the body is nothing
	}
	if c.opts.MaxPendingBody == 0 {
		return false, fmt.Errorf("%w: max_pending_body is 0, so the body of stream %d is not held before UP", ErrNotUp, r.ref)
	}
	if c.heldBytes+len(p) > c.opts.MaxPendingBody {
		return false, nil
	}
	if hb == nil {
		if c.held == nil {
			c.held = map[uint64]*heldBody{}
		}
		hb = &heldBody{}
		c.held[r.ref] = hb
	}
	hb.pieces = append(hb.pieces, heldPiece{p: append([]byte(nil), p...), fin: fin})
	hb.fin = fin
	c.heldBytes += len(p)
	return true, nil
}

// dropHeldLocked forgets ref's held body, if any (cancelled, timed out, or
// the connection ended), and wakes the callers waiting in Data.
func (c *Conn) dropHeldLocked(ref uint64) {
	if hb, ok := c.held[ref]; ok {
		for _, pc := range hb.pieces {
			c.heldBytes -= len(pc.p)
		}
		delete(c.held, ref)
	}
	c.drained.Broadcast() // a caller waiting for the bound, or for this stream
}

// heldRefs lists the requests about to be sent on UP that have a held
// body, in request order. Called with c.mu held.
func (c *Conn) heldRefs(reqs []*Request) []uint64 {
	var refs []uint64
	for _, r := range reqs {
		if c.held[r.ref] != nil {
			refs = append(refs, r.ref)
		}
	}
	return refs
}

// sendHeld sends the held bodies of refs once the connection is up (in a
// goroutine of its own: a protocol may wait for the server's window, which
// only the running reader opens).
func (c *Conn) sendHeld(refs []uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, ref := range refs {
		hb := c.held[ref]
		for hb != nil && c.held[ref] == hb && len(hb.pieces) > 0 {
			pc := hb.pieces[0]
			err := c.sendDataLocked(ref, pc.p, pc.fin)
			if c.held[ref] != hb {
				break // cancelled or timed out meanwhile: nothing more to say
			}
			hb.pieces[0] = heldPiece{}
			hb.pieces = hb.pieces[1:]
			c.heldBytes -= len(pc.p)
			c.drained.Broadcast()
			if err != nil {
				if errorsIsDown(err) {
					// The connection went down: DOWN killed the stream, and
					// the bodies behind it with theirs.
					for _, r := range refs[i:] {
						c.dropHeldLocked(r)
					}
					return
				}
				if errors.Is(err, ErrBadArg) {
					// The body cannot go on (more than its content-length):
					// the stream ends here, saying why. (A stream that ended
					// otherwise, reset or timed out, has had its last event.)
					if c.proto != nil {
						c.proto.cancel(ref)
					}
					c.emit(&Event{Kind: EvError, Ref: ref, Reason: reasonOf(err)})
				}
				break
			}
		}
		c.dropHeldLocked(ref)
	}
}

func errorsIsDown(err error) bool {
	return errors.Is(err, ErrClosed) || errors.Is(err, ErrNotUp)
}
