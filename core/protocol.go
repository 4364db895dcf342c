package core

import "time"

// protocol is what Gun's protocol modules (gun_http, gun_http2, gun_ws,
// gun_raw) have in common. Conn calls every method with its lock held; a
// protocol writes with c.write and reports with c.emit.
type protocol interface {
	name() string
	// handle takes bytes read from the socket and returns how many it used;
	// the rest comes again with more. An error ends the connection: its
	// text is DOWN's reason (errCloseNormal: "normal").
	handle(buf []byte) (int, error)
	// eof: the peer closed. A close-delimited body ends; nil or an error.
	eof() error
	request(r *Request) error
	data(ref uint64, p []byte, fin bool) error
	cancel(ref uint64) error
	updateFlow(ref uint64, n int) error
	// consumed: the host took n bytes of data of stream ref.
	consumed(ref uint64, n int)
	// paused: stop reading the socket (Gun's flow ran out).
	paused() bool
	// down returns the streams that were in flight when the connection
	// was lost (Gun's Protocol:down); Conn reports them.
	down() []uint64
	// shutdown starts a graceful close and returns how long it may take.
	shutdown() time.Duration
	// idle: nothing in flight, a closing connection can go.
	idle() bool
	streamInfo(ref uint64) (StreamInfo, bool)
}

// protocols maps a name of the "protocols" option to its engine.
var protocols = map[string]func(c *Conn) protocol{}
