package core

// The bytes of DATA (and SSE) events a host holds are charged to their
// stream (s.held, its window) until it frees them. A released event used to
// find its stream by ref: a map lookup in h.refs and, the stream being done
// by then (the usual case: a response is read whole before the host takes
// it), a lookup and a delete in lingerHeld; for a pile of events drained
// from C, most of the cost of freeing them (issue 16, W6). Now such an event
// carries its stream's hold: an index into h.holds, checked against the
// stream's ref (refs are unique in a process, so an event of an earlier
// HTTP/2 connection of the same Conn cannot match).

// h2Hold is a stream's count of held bytes once the stream is gone.
type h2Hold struct {
	ref    uint64
	s      *h2Stream // nil once removed: linger is what the host still holds
	linger int
}

// h2Holds are a connection's holds: made by the first, dropped when the
// connection is idle and none is in use (W5).
type h2Holds struct {
	all  []h2Hold
	free []int32
	used int
}

// holdOf is s's hold (index + 1), made on first use.
func (h *h2conn) holdOf(s *h2Stream) uint32 {
	if s.hold != 0 {
		return s.hold
	}
	if h.holds == nil {
		h.holds = &h2Holds{}
	}
	hs := h.holds
	var i int
	if n := len(hs.free); n > 0 {
		i = int(hs.free[n-1])
		hs.free = hs.free[:n-1]
	} else {
		i = len(hs.all)
		hs.all = append(hs.all, h2Hold{})
	}
	hs.all[i] = h2Hold{ref: s.ref, s: s}
	hs.used++
	s.hold = uint32(i + 1)
	return s.hold
}

// holdRemoved: s is removed; its held bytes linger in its hold until
// released. False if s has no hold.
func (h *h2conn) holdRemoved(s *h2Stream) bool {
	if s.hold == 0 {
		return false
	}
	i := int(s.hold - 1)
	s.hold = 0
	hd := &h.holds.all[i]
	hd.s, hd.linger = nil, s.held
	s.held = 0
	if hd.linger <= 0 {
		h.freeHold(i)
	}
	return true
}

func (h *h2conn) freeHold(i int) {
	hs := h.holds
	hs.all[i] = h2Hold{}
	hs.used--
	if hs.used == 0 && len(h.streams) == 0 && !h.busy {
		h.holds = nil // idle and none held: its storage goes (W5), as lingerHeld's
		return
	}
	hs.free = append(hs.free, int32(i))
}

// consumedHold is consumed for an event that carries its stream's hold.
func (h *h2conn) consumedHold(hold uint32, ref uint64, n int) {
	i := int(hold) - 1
	if h.holds == nil || i >= len(h.holds.all) || h.holds.all[i].ref != ref {
		return // its bytes were given back already (as consumed does for a ref it does not know)
	}
	hd := &h.holds.all[i]
	if s := hd.s; s != nil {
		if s.held >= n {
			s.held -= n
			h.connHeld -= n
			h.streamEnsure(s)
			h.connEnsure()
		}
		return
	}
	n = min(n, hd.linger)
	hd.linger -= n
	h.connHeld -= n
	if hd.linger <= 0 {
		h.freeHold(i)
	}
	h.connEnsure()
}

// consumedEvent gives back n bytes of data of an event of stream ref with
// hold (0: none) to c's protocol. Called with c.mu held.
func (c *Conn) consumedEvent(ref uint64, hold uint32, n int) {
	if hold != 0 {
		if h, ok := c.proto.(*h2conn); ok {
			h.consumedHold(hold, ref, n)
			return
		}
	}
	c.proto.consumed(ref, n)
}
