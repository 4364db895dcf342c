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
//
// The seam (one way of layering, Gun's gun_tunnel with gun_tcp_proxy and
// gun_tls_proxy): a protocol runs on a transport that is either the socket
// or one stream of another protocol, with flow control and back-pressure
// carried through it, and never knows which.
//   - The socket: the connection's read loop hands it the bytes (handle)
//     and keeps what it leaves; its output waits in the connection's
//     buffer for the writer. A tunnel that takes the whole socket (an
//     HTTP/1.1 CONNECT's 2xx, a SOCKS5 reply: tunnel.go) wraps it, TLS to
//     the origin included, and the origin's protocol runs on that.
//   - A stream: after the 2xx to a CONNECT on HTTP/2, the stream is an
//     h2Pipe (pipe_h2.go): its DATA is handed to what runs on it, and held
//     (the stream's window shut on it) until that is done with it; what it
//     writes becomes the stream's body, sent as the server's windows
//     allow; its end is END_STREAM (then the peer's awaited, bounded) or
//     RST_STREAM. Two things run on a pipe: a whole child connection, any
//     protocol and TLS included, through tunnelConn, the pipe's net.Conn
//     face (tunnel_h2.go: gun:connect through an HTTP/2 proxy), and an RFC
//     8441 WebSocket, the same ws.go state machine that runs on a socket
//     after a 101 (ws_h2.go), fed in place with no goroutine of its own.
//     What a WebSocket writes goes through a wsCarrier, the socket's or the
//     pipe's; an error from its handle ends its transport our way (the
//     connection; or our side of the stream), and closing_timeout ends it
//     at once (the connection; or RST_STREAM CANCEL), so a WebSocket over
//     HTTP/2 ends its stream, not the connection.
//
// WebSocket (ws.go) is gunmetal's own state machine on gobwas/ws's frames
// and wsflate's parameters, as Gun's gun_ws is on cow_ws. It replaced
// coder/websocket, whose message-level API could not send a ping with a
// chosen payload or an unsolicited pong, dropped data messages arriving
// between our close frame and the peer's, capped the wait for the peer's
// close at 5 s, and refused an oversized frame only after buffering 16 MiB
// of it.
//
// Where this departs from the project's DESIGN.md, and why:
//
//   - Flow control follows the host's release of events. A Go caller
//     releases an event by taking it (Poll, Await); a queue in deferred
//     release mode (the C ABI's) keeps each event charged to its connection
//     until ReleaseTaken, i.e. until gm_event_free. That is what makes
//     "WINDOW_UPDATE as the host consumes events (polled and freed)" true, and
//     it bounds the memory a C host can hold, not only what is queued.
//   - Instead of a reference count per event, a connection "settles" once it
//     has exited and every event it emitted was released (OnSettled): the C
//     ABI frees a handle then, so an event's connection pointer can never be
//     reused while the event lives.
//   - Gun 2's retry rule is kept for a connection that was really up: the
//     first retry, after a drop or a failed first attempt, is immediate;
//     retry N means N+1 attempts. A declared retry_fun policy times the
//     later, delayed retries. Gun resets the count on every connect; here a
//     connection that goes down before it completed a response (or an
//     upgrade) and within usefulUptime (1 s) counts as a failed attempt, so
//     that a server failing every connection at once is not reconnected to
//     in a loop: its retries wait and run out.
//   - A TLS certificate that fails verification (expired, unknown CA,
//     wrong host name) is not transient: EXIT at once with the verifier's
//     reason, unless retry_on_tls_verify_failure asks for Gun's retries.
//   - Progress is bounded where Gun waits for ever: a response head (HTTP/1.1,
//     http_opts.head_timeout) or a frame or header block (HTTP/2,
//     http2_opts.frame_timeout) begun must be whole within 30 s; a request
//     body kept without window (http2_opts.send_window_timeout, 15 s) is
//     reset. On HTTP/1.1 the response of a cancelled stream is read and
//     dropped for at most http_opts.discard_timeout (5 s), and a stream
//     cancelled (or timed out) while its body is being sent closes the
//     connection: the body cannot be finished (Gun leaves it stuck).
//   - Data for a request still queued before UP is held and goes out on UP,
//     in order, as Gun does; the held bytes are bounded (4 MiB per
//     connection, max_pending_body): past it Data waits for UP, as it waits
//     for a slow socket. Where Gun would only fail after UP, held data is
//     refused at once: a body after its fin (ErrBadState), on a request
//     that streams no body (ErrNoStream), and an HTTP/1.1-style body ahead
//     of an earlier queued request's unfinished one (ErrBadState; also on
//     HTTP/2, as the protocol is not known before UP).
//   - Queue.Flush (Gun's flush/1) keeps a connection's EXIT: it is the
//     connection's last event, exactly once, and the bindings release their
//     handles on it (Gun's flush also drops the monitor's 'DOWN').
//   - The TLS client session cache is one per process (SetTLSSessionCache),
//     as Erlang's ssl keeps one per VM. Erlang sets session_lifetime and
//     session_cache_client_max on the ssl application only; given in a
//     connection's tls_opts they make it a cache of its own with those
//     bounds (shared by its reconnects), so they are never ignored.
//   - The cookie store is net/http/cookiejar, which cannot list its
//     cookies: a connection records what went in so that Cookies can export
//     it (those the jar would no longer send are left out).
//   - content_handlers (sse.go) runs Gun's gun_sse_h and gun_data_h in the
//     engine; other handler modules are refused. SSE parsing follows WHATWG
//     where cowlib does not (UTF-8 BOM, id with NUL, retry digits only), a
//     retry without data or id is an event, gun_sse_h's max_event_size has
//     no "infinity", and a body no handler takes still ends with an empty
//     DATA fin.
package core
