package core

import (
	"bytes"
	"encoding/binary"
	"errors"
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
//
//   - fin on Data shuts down the write side (gen_tcp shutdown(S, write)),
//     reads go on until the peer closes (gun_raw ignores IsFin);
//
//   - Shutdown does the same and waits for the peer's close, at most
//     raw_opts.closing_timeout (gun_raw closes at once);
//
//   - raw_opts.flow is gen_tcp's {active, N}: after N DATA events reading
//     stops and a NOTIFY "passive" says so ({tcp_passive, S}); UpdateFlow
//     adds N. Without a flow, reading follows the host's release of events
//     (the connection's read budget), as for every protocol.
//
//   - raw_opts.packet is gen_tcp's {packet, P}: with 1, 2 or 4 each
//     message has a big-endian length prefix of that many bytes, with
//     "line" it ends with "\n". A DATA event is then one whole message
//     (without its prefix; a line with its "\n"), however TCP split or
//     coalesced it, and flow counts messages. A message longer than
//     raw_opts.packet_size (default 64 MiB; 64 KiB for line: gen_tcp's 0,
//     no limit, is not offered) ends the connection with reason
//     "emsgsize: ..." naming it (gen_tcp's {error, emsgsize}), as soon as
//     its prefix (or that many bytes without a "\n") arrived. Data sends
//     p as one message with its prefix (a p too long for the prefix is
//     ErrBadArg); in line mode p goes as given. An empty Data with fin
//     sends only the fin; bytes of an unfinished message at the peer's
//     close are dropped, as gen_tcp does.
//
// A peer close is a DOWN "closed" (then retry applies), as Gun's.
func init() { protocols["raw"] = newRaw }

type rawProto struct {
	c       *Conn
	flow    int    // DATA events left before reading stops; -1: flow control off
	finSent bool   // the write side is shut down (fin on Data, or Shutdown)
	packet  int    // raw_opts.packet: 0, 1, 2, 4 or PacketLine
	maxSize int    // raw_opts.packet_size, or its default for packet
	scanned int    // line mode: bytes at the buffer's start known to hold no "\n"
	sending bool   // a sendSync call is under way (calls take turns)
	replyTo *Queue // an HTTP/1.1 upgrade's reply_to: where DATA and NOTIFY go (nil: the owner)

	// detach's snapshot of the socket's end, for a sendSync call that waited.
	detached bool
	endSent  uint64
	endErr   error
	endFail  error
}

func newRaw(c *Conn) protocol {
	r := &rawProto{c: c, flow: -1, packet: c.opts.Raw.Packet, maxSize: c.opts.Raw.PacketSize}
	if c.opts.Raw.Flow > 0 {
		r.flow = c.opts.Raw.Flow
	}
	if r.maxSize == 0 {
		r.maxSize = DefaultPacketSize
		if r.packet == PacketLine {
			r.maxSize = DefaultLineSize
		}
	}
	return r
}

func (r *rawProto) name() string { return "raw" }

func (r *rawProto) handle(buf []byte) (int, error) {
	if r.packet == 0 {
		if r.flow == 0 {
			return 0, nil // passive: the bytes wait for UpdateFlow
		}
		r.deliver(buf)
		return len(buf), nil
	}
	used := 0
	for r.flow != 0 {
		msg, n, err := r.message(buf[used:])
		if err != nil {
			return used, err
		}
		if n == 0 {
			break // unfinished: the reader keeps it and reads on
		}
		r.deliver(msg)
		used += n
	}
	return used, nil
}

// message cuts the first whole message off b: its payload and the bytes
// it took, or n = 0 while it is unfinished.
func (r *rawProto) message(b []byte) (msg []byte, n int, err error) {
	if r.packet == PacketLine {
		i := bytes.IndexByte(b[r.scanned:], '\n')
		if i < 0 {
			if len(b) > r.maxSize {
				return nil, 0, fmt.Errorf("emsgsize: no \"\\n\" in %d bytes, a line is at most raw_opts.packet_size = %d bytes", len(b), r.maxSize)
			}
			r.scanned = len(b) // not rescanned as more arrives
			return nil, 0, nil
		}
		n = r.scanned + i + 1
		r.scanned = 0
		if n > r.maxSize {
			return nil, 0, fmt.Errorf("emsgsize: a line of %d bytes, over raw_opts.packet_size = %d", n, r.maxSize)
		}
		return b[:n], n, nil
	}
	h := r.packet
	if len(b) < h {
		return nil, 0, nil
	}
	var size uint64
	for _, x := range b[:h] {
		size = size<<8 | uint64(x)
	}
	if size > uint64(r.maxSize) {
		return nil, 0, fmt.Errorf("emsgsize: a message of %d bytes announced, over raw_opts.packet_size = %d", size, r.maxSize)
	}
	if uint64(len(b)-h) < size {
		return nil, 0, nil
	}
	n = h + int(size)
	return b[h:n], n, nil
}

// deliver emits one DATA event (a message, or the bytes of one read) and
// counts it against the flow.
func (r *rawProto) deliver(p []byte) {
	// The server answered: the connection was useful (retries reset).
	r.c.useful = true
	r.c.emit(&Event{Kind: EvData, Data: append([]byte(nil), p...)})
	if r.flow > 0 {
		r.flow--
		if r.flow == 0 {
			r.c.emit(&Event{Kind: EvNotify, Reason: "passive"})
		}
	}
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
	var pre []byte
	if r.packet > 0 && (len(p) > 0 || !fin) {
		if uint64(len(p)) >= 1<<(8*r.packet) {
			return fmt.Errorf("%w: a message of %d bytes does not fit raw_opts.packet = %d (at most %d bytes)", ErrBadArg, len(p), r.packet, uint64(1)<<(8*r.packet)-1)
		}
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(len(p)))
		pre = b[8-r.packet:]
	}
	if t := r.c.opts.TCP.SendTimeout; t > 0 && len(pre)+len(p) > 0 {
		if err := r.sendSync(pre, p, t); err != nil {
			return err
		}
	} else {
		if pre != nil {
			r.c.write(pre)
		}
		if len(p) > 0 {
			r.c.write(p)
		}
	}
	if fin {
		r.finSent = true
		r.c.shutWrite()
	}
	return nil
}

// SendTimeoutError is a raw Data call whose bytes did not all go out within
// tcp_opts.send_timeout (gen_tcp's {error, timeout}, or {timeout, RestData}
// with send_timeout_close false): Sent of its Len bytes went out (a
// packet's length prefix not counted), the rest did not. Closed: the
// connection closes (send_timeout_close true); otherwise it stays up and
// the call may be repeated with the rest. errors.Is(err, ErrTimeout).
type SendTimeoutError struct {
	Sent, Len int
	Timeout   time.Duration
	Closed    bool
}

func (e *SendTimeoutError) Error() string {
	then := "the connection stays up (send_timeout_close false): send the rest again, or close"
	if e.Closed {
		then = "the connection closes (send_timeout_close)"
	}
	return fmt.Sprintf("timeout: %d of %d bytes went out within tcp_opts.send_timeout = %v; %s", e.Sent, e.Len, e.Timeout, then)
}

func (e *SendTimeoutError) Unwrap() error { return ErrTimeout }

// BytesSent is how many bytes of the failed call went out (see SentCount).
func (e *SendTimeoutError) BytesSent() int { return e.Sent }

// SentCount is how many bytes of a failed raw Data call went out, when the
// error knows (a send timeout, or the connection going down while a call
// with a send timeout waited); ok false otherwise.
func SentCount(err error) (n int, ok bool) {
	var s interface{ BytesSent() int }
	if errors.As(err, &s) {
		return s.BytesSent(), true
	}
	return 0, false
}

// sentClosed: the connection went down while a sendSync call waited.
type sentClosed struct {
	sent int
	err  error
}

func (e *sentClosed) Error() string  { return e.err.Error() }
func (e *sentClosed) Unwrap() error  { return e.err }
func (e *sentClosed) BytesSent() int { return e.sent }

// sendSync writes one call's bytes and waits until the writer is done with
// them: with a send timeout the call must learn how many went out (gen_tcp's
// send returns once its data is with the OS, or fails with the timeout).
// Calls take turns (r.sending), so the counters (monotonic for the Conn)
// tell this call's bytes apart; nothing else writes on a raw connection.
// Called with c.mu held.
func (r *rawProto) sendSync(pre, p []byte, t time.Duration) error {
	c := r.c
	nc := c.nc
	alive := func() bool { return !r.detached && c.nc == nc && c.werr == nil && !c.wclosed }
	for alive() && (r.sending || c.wdone != c.wq) {
		c.drained.Wait()
	}
	if !alive() {
		return r.sendDown(0, len(p))
	}
	r.sending = true
	defer func() {
		r.sending = false
		c.drained.Broadcast()
	}()
	start := c.wsent
	if pre != nil {
		c.write(pre)
	}
	c.write(p)
	end := c.wq
	for c.wdone < end && alive() {
		c.drained.Wait()
	}
	ws := c.wsent
	if r.detached {
		ws = r.endSent // the connection went down; a new one counts on
	}
	total := uint64(len(pre) + len(p))
	if ws-start >= total {
		return nil // all of it went out
	}
	sent := max(int(ws-start)-len(pre), 0)
	if alive() {
		// The writer dropped the rest and the connection stays up
		// (send_timeout_close false).
		return &SendTimeoutError{Sent: sent, Len: len(p), Timeout: t}
	}
	return r.sendDown(sent, len(p))
}

// sendDown: the connection failed or closed while a sendSync call waited.
func (r *rawProto) sendDown(sent, n int) error {
	werr, failErr := r.c.werr, r.c.failErr
	if r.detached {
		werr, failErr = r.endErr, r.endFail
	}
	var st errSendTimeout
	if errors.As(werr, &st) {
		return &SendTimeoutError{Sent: sent, Len: n, Timeout: st.d, Closed: true}
	}
	if failErr != nil {
		return &sentClosed{sent, fmt.Errorf("%w: the connection went down while sending (%d of %d bytes went out): %v", ErrClosed, sent, n, failErr)}
	}
	return &sentClosed{sent, fmt.Errorf("%w: the connection went down while sending (%d of %d bytes went out)", ErrClosed, sent, n)}
}

// detach: the socket is gone (serve, with c.mu held, after the writer
// exited): a sendSync call still waiting reads its outcome from here, as a
// reconnect resets c.werr and counts new bytes.
func (r *rawProto) detach() {
	r.detached = true
	r.endSent, r.endErr, r.endFail = r.c.wsent, r.c.werr, r.c.failErr
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
