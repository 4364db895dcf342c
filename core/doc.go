// Package core is gunmetal's connection engine: Erlang's Gun rebuilt in Go.
//
// A Conn is Gun's connection process: it connects in the background
// (DNS → TCP → TLS/ALPN → protocol), reports UP, carries streams, reports
// DOWN and reconnects per its retry options, and ends with exactly one EXIT
// event. Every event goes to a Queue, the owner's mailbox: ordered, batched,
// selectively receivable and pollable through an eventfd.
//
// conn.go is the only place that knows about connecting, retrying and
// exiting; each protocol (http1.go, http2.go, ws.go, raw.go) implements the
// protocol interface, the way Gun's gun_http, gun_http2, gun_ws and gun_raw
// implement one behaviour.
package core
