package core

import "strconv"

// Header is one header field. Response header names arrive lower-cased, as
// Gun gives them.
type Header struct {
	Name, Value string
}

// EventKind says what an Event is. The values are part of the C ABI
// (GM_EV_*): append only.
type EventKind uint8

const (
	EvUp       EventKind = 1  // gun_up: Protocol
	EvDown     EventKind = 2  // gun_down: Protocol, Reason, Killed
	EvExit     EventKind = 3  // the connection's last event: Reason
	EvInform   EventKind = 4  // gun_inform: Ref, Status, Headers
	EvResponse EventKind = 5  // gun_response: Ref, Fin, Status, Headers
	EvData     EventKind = 6  // gun_data: Ref, Fin, Data
	EvTrailers EventKind = 7  // gun_trailers: Ref, Headers
	EvPush     EventKind = 8  // gun_push: Ref (parent), NewRef, Method, URI, Headers
	EvError    EventKind = 9  // gun_error: Ref (0 for a connection-wide error), Reason
	EvUpgrade  EventKind = 10 // gun_upgrade: Ref, Protocol ("websocket": Gun's [<<"websocket">>]), Headers (the 101's)
	EvWS       EventKind = 11 // gun_ws: Ref, WSOp, Data; close: CloseCode (0: none) and the reason in Data
	EvNotify   EventKind = 12 // gun_notify: Reason names it ("ping_ack", "settings_changed"), Ref, Headers
	EvTunnelUp EventKind = 13 // gun_tunnel_up: Ref, Protocol
	EvTrace    EventKind = 14 // a gun_event callback (option "trace", trace.go): Reason (its name), Ref, TS, Status, Headers, Data
	EvSSE      EventKind = 15 // gun_sse: Ref, Fin, Headers (Gun's event map), Data (sse.go)
)

var kindNames = [...]string{"", "gun_up", "gun_down", "exit", "gun_inform", "gun_response", "gun_data",
	"gun_trailers", "gun_push", "gun_error", "gun_upgrade", "gun_ws", "gun_notify", "gun_tunnel_up", "trace", "gun_sse"}

func (k EventKind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "event(" + strconv.Itoa(int(k)) + ")"
}

// WebSocket frame kinds carried by EvWS (part of the C ABI: GM_WS_*).
const (
	WSText   uint8 = 1
	WSBinary uint8 = 2
	WSClose  uint8 = 8
	WSPing   uint8 = 9
	WSPong   uint8 = 10
)

// Event is one message of Gun's, addressed to a connection's owner.
//
// Reasons are short strings: an atom of Gun's ("closed", "normal",
// "shutdown", "econnrefused", "timeout", ...) optionally followed by ": "
// and a detail sentence ("closed: econnreset", "stream_error: CANCEL").
type Event struct {
	Kind      EventKind
	Fin       bool
	WSOp      uint8
	Status    int
	CloseCode int
	Conn      *Conn
	Ref       uint64
	NewRef    uint64 // EvPush: the pushed stream
	Protocol  string
	Reason    string
	Method    string // EvPush
	URI       string // EvPush
	Headers   []Header
	Data      []byte
	Killed    []uint64 // EvDown: the streams the connection took with it
	TS        int64    // EvTrace: when, CLOCK_MONOTONIC nanoseconds (MonotonicNS)

	// credit is what this event holds of its connection's read budget; the
	// connection gets it back when the host takes the event off a queue.
	credit int
	// hold is where an HTTP/2 stream counts the held bytes of this event's
	// Data (http2_hold.go), 0 when it is found by ref.
	hold uint32
	// pooled: Data is a dataBuf (databuf.go), which RecycleData may take
	// back once the Data has been copied out.
	pooled bool
}

// eventOverhead is what an event costs the read budget besides its bytes,
// so that a flood of empty events is bounded too.
const eventOverhead = 64

func (e *Event) size() int {
	data := len(e.Data)
	if e.pooled {
		data = cap(e.Data) // the whole pooled buffer is held while queued
	}
	n := eventOverhead + data + len(e.Reason) + len(e.Method) + len(e.URI)
	for _, h := range e.Headers {
		n += len(h.Name) + len(h.Value) + 16
	}
	return n
}
