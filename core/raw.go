package core

import (
	"fmt"
	"time"
)

// raw is Gun's gun_raw: the connection carries one byte stream, with
// gen_tcp's client semantics on top.
//
// The stream's reference: Gun gives it none ("When we take over the entire
// connection there is no stream reference": gun_data messages carry
// undefined, and gun:data takes undefined). gunmetal's spelling of
// undefined is ref 0, the reference of connection-wide events: DATA events
// carry ref 0 and Data/gm_data, UpdateFlow and StreamInfo take ref 0.
//
// Deviations from gun_raw, as the gen_tcp manual asks (issue 11):
//   - fin on Data shuts down the write side (gen_tcp shutdown(S, write)),
//     reads go on until the peer closes (gun_raw ignores IsFin);
//   - Shutdown does the same and waits for the peer's close, at most
//     raw_opts.closing_timeout (gun_raw closes at once);
//   - raw_opts.flow is gen_tcp's {active, N}: after N DATA events reading
//     stops and a NOTIFY "passive" says so ({tcp_passive, S}); UpdateFlow
//     adds N. Without a flow, reading follows the host's release of events
//     (the connection's read budget), as for every protocol.
//
// A peer close is a DOWN "closed" (then retry applies), as Gun's.
func init() { protocols["raw"] = newRaw }

type rawProto struct {
	c       *Conn
	flow    int  // DATA events left before reading stops; -1: flow control off
	finSent bool // the write side is shut down (fin on Data, or Shutdown)
}

func newRaw(c *Conn) protocol {
	r := &rawProto{c: c, flow: -1}
	if c.opts.Raw.Flow > 0 {
		r.flow = c.opts.Raw.Flow
	}
	return r
}

func (r *rawProto) name() string { return "raw" }

func (r *rawProto) handle(buf []byte) (int, error) {
	if r.flow == 0 {
		return 0, nil // passive: the bytes wait for UpdateFlow
	}
	// The server answered: the connection was useful (retries reset).
	r.c.useful = true
	r.c.emit(&Event{Kind: EvData, Data: append([]byte(nil), buf...)})
	if r.flow > 0 {
		r.flow--
		if r.flow == 0 {
			r.c.emit(&Event{Kind: EvNotify, Reason: "passive"})
		}
	}
	return len(buf), nil
}

// eof: the peer closed; DOWN says "closed", nothing more to deliver.
func (r *rawProto) eof() error { return nil }

func (r *rawProto) request(*Request) error {
	return fmt.Errorf("%w: a raw connection carries one byte stream, not requests: send bytes with Data on ref 0", ErrUnsupported)
}

func (r *rawProto) data(ref uint64, p []byte, fin bool) error {
	if ref != 0 {
		return fmt.Errorf("%w: a raw connection's byte stream is ref 0 (Gun's undefined), not %d", ErrNoStream, ref)
	}
	if r.finSent {
		return fmt.Errorf("%w: the write side of this raw connection was shut down (fin or shutdown)", ErrBadState)
	}
	if len(p) > 0 {
		r.c.write(p)
	}
	if fin {
		r.finSent = true
		r.c.shutWrite()
	}
	return nil
}

func (r *rawProto) cancel(ref uint64) error {
	if ref != 0 {
		return nil // unknown streams are ignored, as in Gun
	}
	return fmt.Errorf("%w: a raw connection's byte stream cannot be cancelled: close the connection, or send fin to end the writing side", ErrUnsupported)
}

func (r *rawProto) updateFlow(ref uint64, n int) error {
	if ref != 0 {
		return fmt.Errorf("%w: a raw connection's byte stream is ref 0 (Gun's undefined), not %d", ErrNoStream, ref)
	}
	if r.flow < 0 {
		return fmt.Errorf("%w: flow control is off on this raw connection: open it with raw_opts.flow", ErrBadState)
	}
	r.flow += n
	return nil
}

func (r *rawProto) consumed(uint64, int) {}

func (r *rawProto) paused() bool { return r.flow == 0 }

// down: the byte stream is no stream with a reference; DOWN kills none.
func (r *rawProto) down() []uint64 { return nil }

// shutdown half-closes (if fin has not already) and waits for the peer.
func (r *rawProto) shutdown() time.Duration {
	if !r.finSent {
		r.finSent = true
		r.c.shutWrite()
	}
	return r.c.opts.Raw.ClosingTimeout
}

// idle: never; a closing raw connection ends when the peer closes (or at
// closing_timeout).
func (r *rawProto) idle() bool { return false }

func (r *rawProto) streamInfo(ref uint64) (StreamInfo, bool) {
	if ref != 0 {
		return StreamInfo{}, false
	}
	st := "running"
	if r.finSent {
		st = "stopping" // writing is over; reads go on until the peer closes
	}
	return StreamInfo{State: st, Flow: r.flow}, true
}
