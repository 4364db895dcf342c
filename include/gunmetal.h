/*
 * gunmetal.h — the C interface of libgunmetal.
 *
 * gunmetal is Erlang's Gun HTTP client (HTTP/1.1, HTTP/2, WebSocket, raw
 * TCP/TLS) rebuilt as a Go engine. A connection (gm_conn) is Gun's
 * connection process: it connects in the background, reports UP, carries
 * streams, reports DOWN and reconnects per its retry options, and ends with
 * exactly one EXIT event. Every event goes to a queue (gm_queue), the owner's
 * mailbox, which the host drains in batches with gm_queue_poll or waits on
 * through a file descriptor (gm_queue_fd) with poll/epoll/asyncio/enif_select.
 * The library never calls back into host code: the queue is the only way out.
 *
 * CONVENTIONS (they hold for every function below unless it says otherwise)
 *
 *   Threads   Every function may be called from any thread, concurrently.
 *             Blocking functions (gm_queue_poll, gm_await*, gm_data when the
 *             socket is slow) block only the calling thread.
 *   Status    Functions return int: GM_OK (0) or a negative GM_E* code.
 *             After a failing call, gm_errmsg() on the same thread gives a
 *             sentence saying what was wrong.
 *   Strings   Input strings are NUL-terminated UTF-8; invalid UTF-8 is refused
 *             with GM_EINVAL. The library copies what it keeps: the caller
 *             owns its buffers and may reuse them as soon as a call returns.
 *   Handles   gm_queue and gm_conn are opaque. C lifetime rules apply: release
 *             a handle exactly once and never use it afterwards (its address
 *             may be reused by a later handle, as with malloc). Passing NULL
 *             where a handle is required returns GM_EINVAL; the release
 *             functions accept NULL as a no-op. A released handle that is
 *             used anyway answers GM_EINVAL or GM_ECLOSED, never a crash, as
 *             long as its address has not been reused.
 *   Bad input Is an error code and a sentence, and nothing is written to the
 *             wire: NULL pointers, invalid UTF-8, a control character in a
 *             header value (CR, LF, NUL, any other byte below 0x20 but HTAB,
 *             and DEL 0x7F: RFC 9110 5.5), a header name or method that is
 *             not a token, a path with a space or control character or of
 *             the wrong form (see gm_request), a port outside 1..65535, an
 *             unknown option key, an option of the wrong type, a length past
 *             its limit (below).
 *   Limits    Every length the caller passes is checked before anything is
 *             read or copied; past its limit the call fails with GM_EINVAL
 *             and nothing is truncated (a negative value cast to size_t is
 *             past every limit):
 *               GM_MAX_STRING        host, method, path, unix socket path
 *               GM_MAX_OPTS_JSON     opts_json, ws_opts_json
 *               GM_MAX_HEADERS       n_headers of one call
 *               GM_MAX_HEADER_BYTES  the sum of name_len and value_len over
 *                                    one call's headers (so also one value)
 *               GM_MAX_BODY          gm_request's body_len (the body is
 *                                    copied: larger bodies go with
 *                                    GM_REQ_STREAM and gm_data)
 *               GM_MAX_DATA          gm_data's len, a gm_ws_frame's len
 *                                    (views of the caller's memory, not
 *                                    copied: PTRDIFF_MAX)
 *               GM_MAX_WS_FRAMES     n of one gm_ws_send
 *   Timeouts  timeout_ms arguments are milliseconds >= 0 (0: do not wait) or
 *             -1 (wait for ever); any other negative value is GM_EINVAL.
 *   Panics    No Go panic ever crosses into C: an internal failure returns
 *             GM_EINTERNAL with the panic's text in gm_errmsg().
 *
 * THE GO RUNTIME IN YOUR PROCESS
 *   Loading the library starts a Go runtime (one per process). It never
 *   installs handlers through os/signal, but Go needs SA_ONSTACK on any
 *   signal handler the host installs after loading it. Do not fork after
 *   loading (exec right away is fine); never unload the library.
 *
 * ABI PROMISE
 *   Within a major version the ABI only grows: functions, event kinds, error
 *   codes, option keys and struct fields are added, never removed or
 *   reordered; new struct fields go at the end. The structs passed one at a
 *   time (gm_event, which the library fills, and gm_req_opts, which the
 *   caller fills) begin with a `size` field so both sides know which fields
 *   exist. The element structs of arrays (gm_header, gm_ws_frame) have no
 *   `size`: their layout is frozen for the major version (the caller's
 *   array stride must be known to both sides before any element is read,
 *   and a per-element size would cost every header of every call); a
 *   change to them would come as a new struct and a new function.
 */
#ifndef GUNMETAL_H
#define GUNMETAL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GM_VERSION_MAJOR 0
#define GM_VERSION_MINOR 1
#define GM_VERSION_PATCH 0
#define GM_VERSION_STRING "0.1.0"
/* GM_VERSION_NUMBER is MAJOR*10000 + MINOR*100 + PATCH. */
#define GM_VERSION_NUMBER (GM_VERSION_MAJOR * 10000 + GM_VERSION_MINOR * 100 + GM_VERSION_PATCH)

/* The limits on lengths (see CONVENTIONS, Limits). They may grow in a minor
 * version, never shrink. */
#define GM_MAX_STRING 65536u             /* host, method, path, unix path (bytes, without NUL) */
#define GM_MAX_OPTS_JSON 1048576u        /* opts_json, ws_opts_json */
#define GM_MAX_HEADERS 65536u            /* header fields in one call */
#define GM_MAX_HEADER_BYTES 1048576u     /* sum of their name and value lengths */
#define GM_MAX_BODY 1073741824u          /* gm_request's body_len (1 GiB) */
#define GM_MAX_DATA PTRDIFF_MAX          /* gm_data's len, gm_ws_frame's len */
#define GM_MAX_WS_FRAMES 1048576u        /* frames in one gm_ws_send */
/* gm_queue_poll hands over at most this many events per call. */
#define GM_POLL_MAX 256

/* The version of the library actually loaded, e.g. "0.1.0"; a static string. */
const char *gm_version(void);
/* GM_VERSION_NUMBER of the library actually loaded. */
int gm_version_number(void);

/* ---------------------------------------------------------------- errors */

/* Status codes. Append-only: values never change meaning. */
enum {
    GM_OK = 0,
    GM_EINVAL = -1,       /* bad argument: NULL, bad UTF-8, invalid header... */
    GM_ENOMEM = -2,       /* out of memory */
    GM_ECLOSED = -3,      /* the connection is closed (gm_close) or has exited */
    GM_ETIMEOUT = -4,     /* a wait ran out of time */
    GM_EOPTION = -5,      /* bad option: the message names the key and value */
    GM_ENOSTREAM = -6,    /* no such stream on this connection */
    GM_ENOTUP = -7,       /* the connection is not up (yet) */
    GM_EBADSTATE = -8,    /* not possible in the connection's current state */
    GM_EUNSUPPORTED = -9, /* the protocol in use cannot do that */
    GM_ESTREAM = -10,     /* gm_await_body: the stream ended with an ERROR */
    GM_EINTERNAL = -11,   /* a bug: please report the message */
    GM_EQUEUE = -12,      /* the queue was freed */
    GM_EAGAIN = -13       /* gm_ws_send_nowait: the output is past its bound; nothing sent */
};

/* A static English name for a status code ("invalid argument", ...). Never
 * NULL: unknown codes give "unknown error". */
const char *gm_strerror(int code);

/* The sentence explaining the last failing call made by this thread, or ""
 * when there was none. The string is thread-local and stays valid until the
 * next gm_* call on this thread. Successful calls do not clear it. */
const char *gm_errmsg(void);

/* ---------------------------------------------------------------- types */

typedef struct gm_queue gm_queue;  /* an owner's mailbox */
typedef struct gm_conn gm_conn;    /* a connection */

/* A stream reference: never 0, never reused within a process. */
typedef uint64_t gm_ref;

/* A header field. On input the lengths are used and the strings need no NUL
 * (a length of SIZE_MAX means "NUL-terminated: use strlen"); the lengths of
 * one call's headers add up to at most GM_MAX_HEADER_BYTES (a longer
 * NUL-terminated string is refused without being read past the limit). In
 * events both strings are also NUL-terminated. No `size` field: see the ABI
 * PROMISE. */
typedef struct gm_header {
    const char *name;
    const char *value;
    size_t name_len;
    size_t value_len;
} gm_header;

/* Event kinds (Gun's messages). Append-only. */
enum {
    GM_EV_UP = 1,        /* gun_up: protocol */
    GM_EV_DOWN = 2,      /* gun_down: protocol, reason, killed[] */
    GM_EV_EXIT = 3,      /* the connection's last event: reason */
    GM_EV_INFORM = 4,    /* gun_inform: ref, status, headers */
    GM_EV_RESPONSE = 5,  /* gun_response: ref, fin, status, headers */
    GM_EV_DATA = 6,      /* gun_data: ref, fin, data */
    GM_EV_TRAILERS = 7,  /* gun_trailers: ref, headers */
    GM_EV_PUSH = 8,      /* gun_push: ref (the parent), new_ref, method, uri, headers */
    GM_EV_ERROR = 9,     /* gun_error: ref (0: connection-wide), reason */
    GM_EV_UPGRADE = 10,  /* gun_upgrade: ref, protocol ("websocket"; an upgrade to raw: the 101's upgrade tokens, see gm_request), headers (the 101's) */
    GM_EV_WS = 11,       /* gun_ws: ref, ws_opcode, data; close: status = code (0: none), data = reason */
    GM_EV_NOTIFY = 12,   /* gun_notify: reason names it, headers carry the details */
    GM_EV_TUNNEL_UP = 13,/* gun_tunnel_up: ref, protocol */
    GM_EV_TRACE = 14,    /* a gun_event callback (option "trace"): reason = its name, ts_ns, see gm_event */
    GM_EV_SSE = 15,      /* gun_sse: ref, fin, headers (Gun's event map), data: see below */
    GM_EV_INFO = 100     /* not a message: the record gm_info/gm_stream_info fill */
};

/* WebSocket frame kinds (gm_event.ws_opcode). */
enum { GM_WS_TEXT = 1, GM_WS_BINARY = 2, GM_WS_CLOSE = 8, GM_WS_PING = 9, GM_WS_PONG = 10 };

/*
 * gm_event — one message. Everything it points to lives in the same
 * allocation and stays valid until gm_event_free(ev). Fields that do not
 * apply to a kind are 0/NULL.
 *
 * `conn` is the handle of the connection the event is about. It stays valid
 * while the event lives, even if gm_conn_free was called meanwhile: a
 * connection's handle is released only once the host has called
 * gm_conn_free, the connection has exited and every event it emitted has
 * been freed. So the host can always compare it with its own handles, and an
 * address is reused only after all that.
 *
 * An event holds its share of the connection's read budget (and, for DATA on
 * HTTP/2, of the flow-control windows) until it is freed: free events
 * promptly, or the connection stops reading and the server slows down.
 *
 * `reason` is a short string: an atom of Gun's ("closed", "normal",
 * "shutdown", "econnrefused", "nxdomain", "timeout", "closing", "owner_down")
 * optionally followed by ": " and detail ("closed: econnreset",
 * "protocol_error: ..."). For EXIT it is Gun's exit reason: "shutdown"
 * after gm_close/gm_shutdown, "owner_down" after gm_queue_free, else the
 * last failure (retries ran out), e.g. "econnrefused" or "closed".
 *
 * TRACE events (the "trace" option: true, or a list of names) are Gun's
 * gun_event callbacks, in Gun's order, in the owner's queue (also for a
 * stream with another reply_to), under the same read budget as the rest:
 * init, domain_lookup_start/end, connect_start/end, tls_handshake_start/end,
 * request_start/headers/end, push_promise_start/end, response_start/inform/
 * headers/trailers/end, ws_upgrade, ws_recv_frame_start/header/end,
 * ws_send_frame_start/end, protocol_changed, origin_changed (a tunnel's
 * origin: headers :type connect|socks5, :origin_scheme, :origin_host,
 * :origin_port), transport_changed (:transport tls when TLS to the origin
 * runs inside a tunnel), cancel, disconnect, terminate.
 * `reason` is the name, `ref` the stream (0 for connection events), `ts_ns`
 * the time (CLOCK_MONOTONIC, comparable with clock_gettime), `status` the
 * HTTP status (response_inform, response_headers), `data` a WebSocket frame's
 * payload (ws_recv_frame_end, ws_send_frame_start/end). `headers` carry the
 * rest of Gun's event map: first the details, each named ":" and Gun's key
 * (":method", ":path", ":error", ":tls_version", ":cipher", ":alpn",
 * ":resumed", ":reason", ...), then the HTTP header fields of the message
 * (request_start/headers, response_inform/headers/trailers,
 * push_promise_end). A header name never starts with ':'.
 *
 * GM_EV_SSE (Gun's gun_sse, with content_handlers ["gun_sse_h", ...] in
 * http_opts, http2_opts or gm_req_opts): a text/event-stream response body
 * comes as one event per dispatched SSE event instead of DATA. The headers
 * carry the keys of Gun's event map, the data the event's data:
 *   - an event: "last_event_id" (the last id seen on the stream, "" when
 *     none; it persists across events) and "event_type" (default
 *     "message"), plus "retry" (ASCII digits, milliseconds) when the event
 *     set one; data = its data lines joined with "\n" (data_len may be 0).
 *   - an id without data: "last_event_id" alone (Gun's lone-id event).
 *   - a retry without data or id: "retry" alone (gunmetal's addition).
 *   - fin = 1, no headers, no data: the body ended (Gun's `fin` message).
 * So "event_type" present means an event with data. Parsing follows the
 * WHATWG rules (BOM, CR/LF/CRLF, comments, id without NUL, retry digits
 * only; invalid UTF-8 becomes U+FFFD; a block unfinished at the end is
 * dropped). An event larger than gun_sse_h's max_event_size (default 10240
 * bytes: [["gun_sse_h", {"max_event_size": N}]]) ends the stream with
 * ERROR "limit_reached: ... max_event_size ..." (HTTP/2: RST_STREAM
 * CANCEL). Other bodies go to the next handler: gun_data_h gives DATA; with
 * none, the body is dropped and only an empty DATA with fin = 1 ends it.
 * gm_await_body on an SSE stream fails (GM_ESTREAM).
 */
typedef struct gm_event {
    uint32_t size;          /* sizeof(gm_event) as the library knows it */
    uint16_t kind;          /* GM_EV_* */
    uint8_t fin;            /* 1 when this is the stream's last event of its kind (Gun's fin) */
    uint8_t ws_opcode;      /* GM_WS_* for GM_EV_WS */
    int32_t status;         /* INFORM/RESPONSE: HTTP status; WS close: the close code */
    gm_conn *conn;
    gm_ref ref;             /* the stream, 0 for connection events */
    gm_ref new_ref;         /* PUSH: the pushed stream */
    const char *protocol;   /* UP, DOWN, TUNNEL_UP: "http", "http2", "raw", "socks", "ws" */
    const char *reason;     /* ERROR, DOWN, EXIT, NOTIFY; TRACE: the name */
    const char *method;     /* PUSH */
    const char *uri;        /* PUSH */
    const gm_header *headers;
    size_t n_headers;
    const uint8_t *data;    /* DATA, WS payload; NUL-terminated for convenience */
    size_t data_len;
    const gm_ref *killed;   /* DOWN: the streams lost with the connection */
    size_t n_killed;
    /* Appended after the first 0.1 layout: present when size > offsetof(gm_event, ts_ns). */
    int64_t ts_ns;          /* TRACE: when, CLOCK_MONOTONIC in nanoseconds; 0 for other kinds */
} gm_event;

/* Frees one event and everything it points to; NULL is a no-op. */
void gm_event_free(gm_event *ev);
/* Frees evs[0..n-1] (each may be NULL). The array itself is the caller's. */
void gm_events_free(gm_event **evs, int n);

/* ---------------------------------------------------------------- queues */

/* Makes a queue. Returns NULL (and sets gm_errmsg) if the OS refuses an
 * eventfd. Release with gm_queue_free. */
gm_queue *gm_queue_new(void);

/* Closes every connection the queue owns (their EXIT reason is
 * "owner_down"; the EXIT events are discarded with the queue), drops the
 * queued events and closes the fd. The connections' handles stay valid until
 * gm_conn_free. NULL is a no-op. Do not call it while another thread is
 * blocked in gm_queue_poll on the same queue: wake that thread first. */
void gm_queue_free(gm_queue *q);

/* The queue's file descriptor, readable exactly while the queue holds events
 * (level-triggered; also readable after gm_queue_wake until the next poll).
 * Owned by the queue: do not close or read it. Negative GM_E* on error. */
int gm_queue_fd(gm_queue *q);

/* Takes up to `max` events (and never more than GM_POLL_MAX, 256, in one
 * call: a batch that size already makes the crossing's cost negligible, and
 * the copy goes through a fixed buffer) into out[0..n-1], waiting up to
 * timeout_ms for the first one (0: do not wait; -1: wait forever; other
 * negative values: GM_EINVAL). Returns n >= 0 (0 on
 * timeout or gm_queue_wake) or a negative GM_E* code. Each event is the
 * caller's to free with gm_event_free. Freeing events is what lets the
 * connections read on: a host that stops polling (or freeing) slows the
 * servers down instead of growing memory. Take them in batches: every call
 * crosses from C into Go. */
int gm_queue_poll(gm_queue *q, gm_event **out, int max, int timeout_ms);

/* Makes a thread blocked in gm_queue_poll on q return, and the fd readable.
 * Callable from any thread, including signal-free contexts of other
 * threads; cheap. */
int gm_queue_wake(gm_queue *q);

/* The number of events waiting in q (>= 0) or a negative GM_E* code. */
int gm_queue_len(gm_queue *q);

/* Drops the events waiting in q of connection c (ref 0), of stream ref (c
 * NULL: whichever connection's; refs are unique in a process) or of both:
 * Gun's flush/1 (gun:flush(ConnPid), gun:flush(StreamRef)). A connection's
 * EXIT is never dropped (it is its last event, exactly once; Gun's flush
 * also drops the monitor's 'DOWN'). Events already taken by gm_queue_poll
 * are the host's: free them as usual. Dropped events are released at once,
 * as gm_event_free would: the connection reads on (read budget, HTTP/2
 * windows) and its handle settles. Returns how many events it dropped (>= 0)
 * or a negative GM_E* code (GM_EINVAL for c NULL and ref 0). */
int gm_flush(gm_queue *q, gm_conn *c, gm_ref ref);

/* ---------------------------------------------------------------- connections */

/*
 * Opens a connection to host:port, owned by `owner`, and returns at once with
 * *out set; connecting happens in the background and ends in GM_EV_UP or,
 * when every retry failed, GM_EV_EXIT. host is a name, an IPv4 literal or an
 * IPv6 literal (with or without brackets).
 *
 * opts_json: NULL or a JSON object with Gun's option names (see README):
 *   transport ("tcp"|"tls"; default tls on port 443, else tcp), protocols
 *   (["http"], ["http2"], ["http2","http"], ...), retry (5), retry_timeout
 *   (5000 ms), retry_fun ({"backoff":"exponential","initial":..,"max":..}),
 *   connect_timeout / domain_lookup_timeout / tls_handshake_timeout (ms or
 *   "infinity"), max_pending_requests (1024), max_pending_body (bytes of
 *   request bodies held before UP, GM_PENDING_BODY_MAX), tcp_opts, tls_opts (verify
 *   on by default with the system roots; "verify":"verify_none" turns it off;
 *   cacertfile, certfile, keyfile, server_name_indication, cacerts), http_opts
 *   (keepalive: ms between the empty lines sent on an idle HTTP/1.1
 *   connection, as Gun; default "infinity"), http2_opts, ws_opts, raw_opts.
 *   protocols ["raw"] (Gun's raw, over tcp or tls, alone in the list: it
 *   has no ALPN name) makes the connection one byte stream with gen_tcp's
 *   client semantics; its stream has no reference (Gun's undefined), so it
 *   is ref 0: gm_data(c, 0, ...) sends, received bytes are GM_EV_DATA
 *   events with ref 0 in order (fin 0; one per read, one per message with raw_opts.packet), the peer's close is
 *   GM_EV_DOWN "closed" (no stream killed) then retry applies, and
 *   gm_request answers GM_EUNSUPPORTED. raw_opts: flow (gen_tcp's
 *   {active, N}: after N DATA events reading stops and a GM_EV_NOTIFY with
 *   reason "passive", ref 0, says so, as {tcp_passive, S}; gm_update_flow(c,
 *   0, n) reads on; without flow, reading follows the host's freeing of
 *   events), closing_timeout (15000 ms: how long gm_shutdown waits for the
 *   peer's close), packet (gen_tcp's {packet, P}: 0 or "raw", the default,
 *   no framing; 1, 2, 4: each message has a big-endian length prefix of
 *   that many bytes; "line": a message ends with "\n"), packet_size
 *   (gen_tcp's packet_size: the largest message received, prefix not
 *   counted, a line with its "\n"; default 64 MiB (64 KiB for "line");
 *   gen_tcp's 0, no limit, is not offered: 1..2^30; refused without a
 *   packet). With a packet, a GM_EV_DATA is one whole message (without its
 *   prefix; a line with its "\n") however TCP split it, flow counts
 *   messages, and a message over packet_size ends the connection: GM_EV_DOWN
 *   (then GM_EV_EXIT per retry) with reason "emsgsize: ..." naming
 *   raw_opts.packet_size (gen_tcp's {error, emsgsize}); the bytes of an
 *   unfinished message at the peer's close are dropped.
 *   A certificate that fails verification ends the connection at once (EXIT
 *   with the x509 reason) unless retry_on_tls_verify_failure is true; a
 *   connection that goes down before it completed a response and within 1 s
 *   counts as a failed attempt (its retry waits and uses up retry), so no
 *   server can cause a reconnect storm. Progress bounds:
 *   http_opts.head_timeout (30000), discard_timeout (5000),
 *   http2_opts.frame_timeout (30000), send_window_timeout (15000). Flood
 *   bounds: http_opts/http2_opts max_headers (100),
 *   max_informational_responses (32), http2_opts.max_settings_entries (64),
 *   max_concurrent_streams (100, also the pushes held at once).
 *   Nothing is accepted and ignored: what this build does not implement is
 *   GM_EOPTION naming it: "raw" or "socks" beside other protocols,
 *   socks_opts without socks, supervise false (the library keeps the
 *   connection; there is no calling process to link it to), tcp_opts
 *   send_timeout_close false (except raw over tcp), http2_opts
 *   stream_window_data_threshold other
 *   than 0 (DATA is never held back), ws_opts invalid_request_headers
 *   "ignore".
 * Errors: GM_EINVAL (NULL owner/host/out, bad host, port out of range, an
 * owner already released with gm_queue_free: as for every released handle,
 * its address may have been reused, so the library cannot tell it from a
 * pointer it never made), GM_EOPTION (message: `option http_opts.version =
 * "2": must be ...`; also an option gunmetal does not implement, named),
 * GM_EQUEUE (the owner is being freed by gm_queue_free on another thread
 * during the call). On error *out is untouched.
 * Release the handle with gm_conn_free (after gm_close, or after the EXIT).
 */
int gm_open(gm_queue *owner, const char *host, int port, const char *opts_json, gm_conn **out);

/* As gm_open, over the Unix socket at path. */
int gm_open_unix(gm_queue *owner, const char *path, const char *opts_json, gm_conn **out);

/* As gm_open, over a socket the host connected itself (gen_tcp's {fd, Fd}):
 * a TCP or Unix stream socket, connected (getpeername succeeds). TLS runs on
 * it if opts ask ("transport": "tls"); it then needs
 * tls_opts.server_name_indication (the name verified and sent) or
 * tls_opts.verify = "verify_none", as there is no host name to verify. Then any
 * protocol (http, http2, raw).
 * Ownership: on GM_OK the fd is gunmetal's: it is already closed (the
 * connection runs on a duplicate), so the host must not use nor close it
 * (the number may have been reused). On any error it stays the host's,
 * open and untouched.
 * No reconnect is possible: a drop ends in DOWN then EXIT. "retry" other
 * than 0 is refused (GM_EOPTION naming it), as are connect_timeout,
 * domain_lookup_timeout and socks_opts (there is no dial), and tcp_opts
 * other than send_timeout (set socket options before handing it over).
 * Errors: as gm_open; GM_EINVAL also for an fd that is not a connected TCP
 * or Unix stream socket (-1, a file, a listening or unconnected socket). */
int gm_open_fd(gm_queue *owner, int fd, const char *opts_json, gm_conn **out);

/* Ends the connection at once (Gun's gun:close): in-flight streams are
 * dropped, no DOWN is sent, the EXIT's reason is "shutdown". The handle stays
 * valid (later calls answer GM_ECLOSED, except gm_info, which reports state
 * "closed") until gm_conn_free. NULL and a closed connection are no-ops
 * returning GM_OK. */
int gm_close(gm_conn *c);

/* Closes gracefully (Gun's gun:shutdown): requests in flight finish (bounded
 * by the protocol's closing_timeout), requests made afterwards fail at once
 * with an ERROR "closing", and the connection never reconnects; EXIT's
 * reason is "shutdown". On raw it shuts down the write side (as fin on
 * gm_data), goes on delivering what arrives, and ends when the peer closes
 * or at raw_opts.closing_timeout, without a DOWN. GM_ECLOSED if already
 * closed. */
int gm_shutdown(gm_conn *c);

/* Releases the handle; closes the connection first if it is still open and
 * waits (briefly: the socket is closed under it) for the connection to
 * exit. Events still queued or held keep their `conn` pointer valid until
 * they are freed; the handle's address is given back after the last one.
 * NULL is a no-op. Call it exactly once per handle. */
void gm_conn_free(gm_conn *c);

/* Moves the connection to another queue (Gun's set_owner); events already
 * queued stay where they are. GM_EBADSTATE while shutting down. */
int gm_set_owner(gm_conn *c, gm_queue *q);

/* Waits up to timeout_ms (-1: forever) for this connection's next UP in its
 * owner's queue and takes it, leaving every other event in place (selective
 * receive). *protocol (may be NULL) gets a static string ("http", "http2",
 * ...). GM_ETIMEOUT on timeout (gm_errmsg() names the last failure, if
 * any); GM_ECLOSED when the connection exited (the EXIT stays queued for the
 * owner), and gm_errmsg() gives the EXIT's reason, e.g. a certificate that
 * failed verification. */
int gm_await_up(gm_conn *c, int timeout_ms, const char **protocol);

/* Request flags. */
#define GM_REQ_STREAM 0x1u  /* the body follows with gm_data (Gun's gun:headers); body must be NULL/0 */

/* Per-request options; NULL means the defaults. Set size = sizeof(gm_req_opts). */
typedef struct gm_req_opts {
    uint32_t size;
    int32_t timeout_ms;  /* > 0: past it the stream gets ERROR "timeout" and is cancelled (0: none) */
    int32_t flow;        /* > 0: Gun's flow for this stream (events before it pauses); 0: the protocol's option */
    gm_queue *reply_to;  /* NULL: the owner. The stream's events go to this queue. */
    /* Added in 0.1 after reply_to (a caller passing the older size still
     * works). NULL: the connection's http_opts/http2_opts content_handlers.
     * Else Gun's req_opts content_handlers as a JSON list, e.g.
     * "[\"gun_sse_h\", \"gun_data_h\"]" (see GM_EV_SSE); a bad list is
     * GM_EOPTION naming req_opts.content_handlers. */
    const char *content_handlers_json;
    /* Added in 0.1 after content_handlers_json (older sizes still work):
     * Gun's req_opts tunnel. 0: the connection (on an HTTP/1.1 or SOCKS
     * tunnel the connection itself became, that is the origin). Else the
     * ref of a gm_connect whose HTTP/2 tunnel (a stream of a connection to
     * an HTTP/2 proxy, or of a tunnel inside it) carries the request, or
     * the ref of an HTTP/1.1 CONNECT made inside such a tunnel (it names the
     * connection that CONNECT became; raw through it sends and receives on
     * that ref); a ref that is no tunnel up is GM_ENOSTREAM. */
    gm_ref tunnel;
} gm_req_opts;

/*
 * Sends a request (Gun's gun:request / gun:headers and get/post/...): method,
 * path, headers[0..n_headers-1] (may be NULL when 0), a body of body_len
 * bytes (may be NULL when 0; at most GM_MAX_BODY). The path is the request
 * target (RFC 9112 3.2) in origin-form ("/p?q"), or "*" for OPTIONS, or in
 * absolute-form ("http://host/p", "https://...") for a forward proxy; the
 * last is HTTP/1.1 only and GM_EINVAL where HTTP/2 is or may be spoken (its
 * :path takes origin-form). Anything else, authority-form included (CONNECT
 * tunnels are not requests), is GM_EINVAL. Gun sends any path as given; a
 * target of another form would be read by the server as something else.
 * A host header is added when missing; content-length is added for a body;
 * with GM_REQ_STREAM and no content-length, HTTP/1.1 uses chunked encoding.
 * While the connection is not up the request waits (up to
 * max_pending_requests) and goes out on UP; requests in flight when a
 * connection is lost are not retried (they get ERROR "closed" and appear in
 * DOWN's killed list).
 * *ref gets the stream reference. Errors: GM_EINVAL for bad input (nothing
 * is sent), GM_ECLOSED after gm_close/exit. A request made during
 * gm_shutdown gets a ref whose only event is ERROR "closing".
 * HTTP/2 (whenever the connection speaks it or may): connection-specific
 * headers (connection, keep-alive, proxy-connection, transfer-encoding,
 * upgrade; te other than "trailers") are GM_EINVAL; a request past the
 * server's max_concurrent_streams gets ERROR "too_many_streams: ..." at
 * once, unless http2_opts.wait_for_stream_slot queues it (at most
 * http2_opts.max_waiting_streams, default 1024, wait; gm_ws_upgrade's
 * RFC 8441 streams queue the same way); after the
 * server's GOAWAY a request gets ERROR "closing", and streams the server
 * did not process get ERROR "unprocessed: ..." (safe to retry).
 * HTTP/1.1 Upgrade to raw, as Gun 2: a request with an upgrade header
 * (e.g. connection: upgrade, upgrade: custom/1.0) answered by 101 Switching
 * Protocols makes the connection raw: GM_EV_UPGRADE on *ref with protocol
 * the 101's upgrade tokens (lower case, ", " between them; Gun's Protocols
 * list) and headers the 101's; then the byte stream is ref 0 exactly as
 * with protocols ["raw"] (gm_data/gm_data_v2 on ref 0, GM_EV_DATA on ref 0,
 * raw_opts and tcp_opts.send_timeout apply; gm_info's protocol is "raw"),
 * and its events go to the request's reply_to (Gun starts gun_raw with the
 * stream's ReplyTo). Bytes the server sent right after the 101 are the raw
 * stream's first. Requests made after the upgrade request wait for its
 * answer and get ERROR "badstate: the connection was upgraded to raw." if
 * it is accepted (an ordinary response leaves the connection HTTP and they
 * go out). A 101 to a request without an upgrade header, or without an
 * upgrade header of its own, is a protocol error (DOWN). A reconnect comes
 * up as the protocols option says (http).
 */
int gm_request(gm_conn *c, const char *method, const char *path,
               const gm_header *headers, size_t n_headers,
               const void *body, size_t body_len,
               unsigned flags, const gm_req_opts *opts, gm_ref *ref);

/*
 * Opens a tunnel through the proxy the connection speaks to (Gun's
 * gun:connect): a CONNECT request to the destination dest_json, a JSON
 * object with Gun's destination keys:
 *   {"host": "origin.example", "port": 443,      required
 *    "username": "u", "password": "p",            Basic proxy-authorization
 *    "transport": "tcp" | "tls",                  to the origin, inside the tunnel
 *    "protocols": ["http2", "http"] | ["http"] | ["raw"] ... or
 *                 [["socks", {socks_opts}]]: a SOCKS5 proxy at the end of the
 *                 tunnel (GM_EV_TUNNEL_UP "socks", then the origin's),
 *    "tls_opts": {...}, "tls_handshake_timeout": ms}
 * (unknown keys, bad values: GM_EOPTION naming them). headers[0..n-1] are
 * added to the request (host is the destination's authority unless given;
 * content-length and transfer-encoding are GM_EINVAL: a CONNECT has no
 * body). opts as gm_request's (NULL: defaults; timeout_ms, reply_to, flow
 * and content_handlers_json apply to the proxy's answer; opts->tunnel
 * sends the CONNECT through an HTTP/2 tunnel: nested proxies). *ref gets
 * the stream's reference.
 *
 * The proxy's answer is a GM_EV_RESPONSE on *ref. A 2xx (reported with
 * fin = 1: no DATA follows on *ref) is followed, once the origin's
 * transport is up (TLS inside the tunnel when transport is "tls"), by
 * GM_EV_TUNNEL_UP on *ref with the protocol spoken to the origin (ALPN
 * decides on tls). Any other status is an ordinary response (+ DATA) and
 * the connection stays the proxy's (many proxies close after a 407).
 *
 * Over HTTP/1.1 the connection itself becomes the tunnel, as in Gun:
 * requests, gm_ws_upgrade and raw gm_data go to the origin from then on
 * (those made while the CONNECT waited for its answer too; opts->tunnel 0
 * or *ref both mean it), gm_info describes the origin and lists the proxy
 * in its "intermediary" entries; a further gm_connect nests. A TLS
 * handshake with the origin that fails takes the connection DOWN with its
 * reason; a reconnect (retry) goes to the proxy again, without the tunnel.
 *
 * Over HTTP/2 the tunnel is one stream among the connection's others: name
 * it in gm_req_opts.tunnel (requests, gm_connect), in gm_ws_upgrade's
 * ws_opts as {"tunnel": ref}; for a raw tunnel, gm_data and gm_update_flow
 * on *ref send its bytes and its received bytes come as GM_EV_DATA on *ref.
 * Every other call on a stream inside the tunnel (gm_data, gm_cancel,
 * gm_await, gm_stream_info, gm_flush...) takes the connection and that
 * stream's ref, and its events name the connection. gm_stream_info(*ref)
 * describes the tunnel. Flow control holds end to end (the proxy's stream
 * window reopens as the tunnel's events are freed). The tunnel ends with
 * one GM_EV_ERROR on *ref: the proxy's RST_STREAM ("stream_error: ..."),
 * the proxy ending the stream ("closed: the tunnel ended"), a failed TLS
 * handshake with the origin (its reason); each stream inside it gets its
 * GM_EV_ERROR first. gm_cancel(*ref) ends it without that ERROR (the
 * streams inside get theirs). When the connection goes down, the streams
 * inside tunnels get their ERRORs, then the tunnels' refs are in DOWN's
 * killed list. A tunnel is never reconnected.
 *
 * Errors: GM_EUNSUPPORTED when the connection speaks neither HTTP/1.1 nor
 * HTTP/2 (raw, or a WebSocket after an upgrade), GM_ENOSTREAM for an
 * opts->tunnel that is no tunnel, GM_EINVAL, GM_EOPTION, GM_ECLOSED. For
 * SOCKS5, open the connection with protocols ["socks"] and socks_opts
 * instead (GM_EV_UP "socks", then GM_EV_TUNNEL_UP with ref 0, as Gun's
 * gun_tunnel_up with undefined).
 * Any thread; the strings and arrays are copied before the call returns.
 */
int gm_connect(gm_conn *c, const char *dest_json, const gm_header *headers, size_t n_headers,
               const gm_req_opts *opts, gm_ref *ref);

/* The body bytes held per connection for requests waiting for UP: the
 * default of the option max_pending_body (0 holds nothing: gm_data before UP
 * then answers GM_ENOTUP at once and the host holds the body). */
#define GM_PENDING_BODY_MAX (4 << 20)

/* Sends len bytes of a streamed request body; fin = 1 ends it (Gun's
 * gun:data). On a raw connection ref is 0 and the bytes go out as they
 * are; fin = 1 then shuts down the write side once they are out (gen_tcp's
 * shutdown(S, write): TCP FIN, TLS close_notify) while reading goes on
 * until the peer closes; gm_data after it answers GM_EBADSTATE, another
 * ref GM_ENOSTREAM. With raw_opts.packet 1, 2 or 4 each call sends one
 * message with its length prefix (len too large for the prefix, over 255
 * or 65535 or 2^32-1: GM_EINVAL naming raw_opts.packet, nothing sent; an
 * empty non-fin call sends an empty message, an empty fin call only the
 * fin); with "line" the bytes go as given. Empty non-fin pieces are
 * otherwise ignored. Blocks while the connection
 * has a lot of unsent output (the socket is slower than the caller), and
 * on HTTP/2 while the server's flow-control window (the stream's or the
 * connection's) is closed: the body is never buffered once the connection
 * is up. Before UP (the request waits in the connection) the piece is
 * copied and held, and goes out on UP after the request, in order, as in
 * Gun: up to max_pending_body bytes per connection (GM_PENDING_BODY_MAX by
 * default), past which gm_data waits for UP (with max_pending_body 0:
 * GM_ENOTUP at once); a body given while an earlier waiting request's streamed
 * body has not ended is GM_EBADSTATE (HTTP/1.1 sends bodies one after the
 * other, and the protocol is not known before UP). GM_ENOSTREAM if ref is not
 * sending a body or its stream was reset meanwhile; GM_ECLOSED if the
 * connection went down meanwhile. A thread blocked here always gets out:
 * gm_close, gm_cancel of ref and ref's timeout_ms release it (GM_ECLOSED;
 * on HTTP/1.1 the connection, which cannot finish that body, then closes
 * and reconnects); tcp_opts.send_timeout (default 15 s) bounds a socket
 * that takes nothing; on HTTP/2 http2_opts.send_window_timeout (default
 * 15 s) bounds a window kept at 0 (GM_ETIMEOUT, the stream is reset).
 * On raw with a send_timeout (the default), the call returns once its
 * bytes were written to the socket, or fails with GM_ETIMEOUT as gen_tcp's
 * send does: see gm_data_v2, which also says how many went out. */
int gm_data(gm_conn *c, gm_ref ref, const void *data, size_t len, int fin);

/* Cancels a stream (Gun's gun:cancel): no more events for it. HTTP/1.1 still
 * reads (and drops) the response, for at most http_opts.discard_timeout
 * (default 5 s; then the connection closes and reconnects), and closes the
 * connection at once if the stream's request body was still being sent;
 * HTTP/2 resets the stream. Unknown or finished streams are ignored
 * (GM_OK), as in Gun. */
int gm_cancel(gm_conn *c, gm_ref ref);

/* Adds n > 0 to a stream's flow (Gun's update_flow): a stream opened with a
 * flow stops being read after that many DATA events until the host adds
 * more. On raw (ref 0) it is gen_tcp's setopts {active, N}: GM_EBADSTATE
 * when the connection was opened without raw_opts.flow. */
int gm_update_flow(gm_conn *c, gm_ref ref, int n);

/* Waits up to timeout_ms for the next event of stream ref in the queue it
 * goes to (its reply_to, else the owner) and takes it, leaving every other
 * event in place (Gun's gun:await). A connection-wide ERROR of this
 * connection also ends the wait (and is taken). On raw, ref 0 is the byte
 * stream: its DATA, NOTIFY and the connection's UP/DOWN (never the EXIT).
 * GM_ETIMEOUT on timeout;
 * GM_ECLOSED when the connection exited (the EXIT stays queued). *out is
 * the caller's to free with gm_event_free. */
int gm_await(gm_conn *c, gm_ref ref, int timeout_ms, gm_event **out);

/* Waits for the rest of a stream's body (Gun's gun:await_body): takes its
 * events until fin and returns one GM_EV_DATA event holding the whole body in
 * data, with status the response's status (0 if the RESPONSE had already
 * been taken) and the trailers, if any, in headers (the response's own
 * headers are not included: take the RESPONSE with gm_await first when you
 * need them). The timeout bounds the whole call (Gun's applies to each
 * wait: a body that never ends would hold a C caller for ever): the call
 * returns within timeout_ms, taking after it only the stream's events already
 * queued, and fails with GM_ETIMEOUT if fin has not come; the body taken so
 * far is then dropped (continue with gm_await, or gm_cancel the stream). A
 * body over GM_AWAIT_BODY_MAX bytes cancels the stream and fails with
 * GM_ESTREAM ("limit_reached: ..."): read bodies that large by their DATA
 * events. GM_ESTREAM when the stream ends with an ERROR (the reason is in
 * gm_errmsg); GM_ETIMEOUT; GM_ECLOSED. */
int gm_await_body(gm_conn *c, gm_ref ref, int timeout_ms, gm_event **out);

/* The largest body gm_await_body collects: 1 GiB. */
#define GM_AWAIT_BODY_MAX 1073741824u

/* Fills *out with a GM_EV_INFO record describing the connection (Gun's
 * gun:info): headers are (key, value) pairs: state (connecting, connected,
 * not_connected, closing, closed), protocol, transport, host, port, origin
 * (scheme://authority), and when connected, sock_ip/sock_port (local) and
 * peer (address, or the socket path); on TLS while connected, tls_version
 * ("TLS 1.3"), tls_cipher, alpn ("" when none was agreed) and tls_resumed
 * ("true" when the session was resumed from the process-wide cache, see
 * gm_tls_session_cache); origin_scheme, origin_host, origin_port (Gun's:
 * where requests go, the origin at the end of the tunnels when the
 * connection goes through proxies, else host and port); one
 * "intermediary" pair per proxy gone through, in order (Gun's
 * intermediaries), its value "TYPE HOST PORT TRANSPORT PROTOCOL" separated
 * by single spaces, e.g. "connect 127.0.0.1 3128 tcp http" or
 * "socks5 proxy.lan 1080 tls socks"; cookie_store ("true" with the
 * cookie_store option: see gm_cookies_get). Gun's owner has no meaning
 * here (the owner is the gm_queue the host gave), nor do socket and
 * event_handler. Once the connection has exited,
 * reason (the EXIT's reason, also while that event is still queued). Free
 * with gm_event_free. Unlike the calls that act on the connection, it still
 * answers GM_OK after gm_close and after the EXIT, with state "closed": it
 * reads the handle's record, which lives until gm_conn_free (Gun's gun:info
 * on a dead connection exits with noproc; a C handle outlives its
 * connection). */
int gm_info(gm_conn *c, gm_event **out);

/* Bounds the process-wide TLS client session cache (Erlang's ssl keeps one
 * per VM, sized by the ssl application's session_cache_client_max and
 * session_lifetime): at most max entries (1..INT32_MAX, least recently used
 * evicted first), each forgotten lifetime_ms after it was stored (0: kept
 * until evicted). Defaults: 1000 entries, 24 h (86400000 ms), ssl's. Every
 * TLS connection whose tls_opts name neither session_cache_client_max nor
 * session_lifetime resumes from this cache, keyed by the client certificate
 * file, the host and port given to gm_open and the server name, so a second
 * gm_open to the same server resumes the first one's session (gm_info's
 * tls_resumed). A connection whose tls_opts give either key keeps its own
 * cache with those bounds, shared by its reconnects only; reuse_sessions
 * false uses none. Call it once, at start-up, before opening connections;
 * it is thread-safe and may be called again (entries past the new bounds
 * go at once). GM_EINVAL for max < 1 or lifetime_ms < 0. */
int gm_tls_session_cache(int max, int64_t lifetime_ms);

/* Exports the connection's cookie store (the cookie_store option) as a
 * GM_EV_INFO record whose data (data_len bytes, NUL-terminated) is a JSON
 * array of cookies, each an object with Gun's gun_cookies field names:
 * name, value, domain (lower case, no leading dot), path, host_only,
 * secure_only, http_only, same_site ("strict", "lax", "none"; absent when
 * not given) and expiry_time (RFC 3339, UTC; absent for a session cookie).
 * Only cookies the store would still send are listed (expired or replaced
 * ones are not). Free with gm_event_free. GM_EBADSTATE without the
 * cookie_store option. */
int gm_cookies_get(gm_conn *c, gm_event **out);

/* Seeds the connection's cookie store with a JSON array of that shape
 * (gm_cookies_get's output, or one made by hand: name, value and domain are
 * required; path defaults to "/"), e.g. to carry a store from one
 * connection, or one run, to the next. The store's rules apply (a public
 * suffix is refused as a cookie's domain, silently, as for Set-Cookie);
 * an expiry_time in the past removes the stored cookie. Unknown fields and
 * bad values are GM_EINVAL naming the cookie and the field, and then none of
 * the array is taken. GM_EBADSTATE without the cookie_store option. Limit:
 * GM_MAX_OPTS_JSON bytes. */
int gm_cookies_set(gm_conn *c, const char *json);

/* Fills *out with a GM_EV_INFO record for a stream (Gun's
 * gun:stream_info): ref, and headers ref, state (running, stopping, queued),
 * method, path, protocol, flow (-1 when off); for the CONNECT stream of an
 * HTTP/2 tunnel that is up (Gun's tunnel map), tunnel_transport,
 * tunnel_protocol, tunnel_origin_scheme, tunnel_origin_host and
 * tunnel_origin_port. Streams inside a tunnel are found through the
 * connection too. GM_ENOSTREAM for an unknown or finished stream. */
int gm_stream_info(gm_conn *c, gm_ref ref, gm_event **out);

/* Sends a ping to the server (Gun's gun:ping) and sets *ref to its
 * reference. When the server acknowledges it, a GM_EV_NOTIFY event with
 * reason "ping_ack" and that ref arrives (pings the server never answers
 * give nothing). HTTP/2 only: GM_EUNSUPPORTED on an HTTP/1.1 connection,
 * GM_ENOTUP while the connection is not up, GM_ECLOSED after gm_close or
 * EXIT, GM_EBADSTATE when 1024 pings already wait for their ack.
 * GM_EINVAL for NULL c or ref. */
int gm_ping(gm_conn *c, gm_ref *ref);

/* gm_ping to the server at the end of an HTTP/2 tunnel (Gun's gun:ping/2
 * with #{tunnel => StreamRef}): tunnel is a gm_connect ref whose tunnel is
 * up and speaks HTTP/2 inside; its ack is the same GM_EV_NOTIFY "ping_ack"
 * with *ref, in the connection's queue. tunnel 0 is gm_ping. GM_ENOSTREAM
 * when tunnel is no tunnel of c; GM_EUNSUPPORTED when what runs inside it
 * has no ping (HTTP/1.1, raw); the rest as gm_ping. */
int gm_ping_tunnel(gm_conn *c, gm_ref tunnel, gm_ref *ref);

/* HTTP/2 notifications (GM_EV_NOTIFY, ref 0): with the option
 * http2_opts.notify_settings_changed, each SETTINGS frame from the server
 * gives reason "settings_changed" with every server setting as a header:
 * header_table_size, enable_push, max_concurrent_streams,
 * initial_window_size, max_frame_size, max_header_list_size,
 * enable_connect_protocol (values in decimal, "true"/"false", or
 * "infinity" where unlimited). A server push is a GM_EV_PUSH (ref: the
 * request's stream, new_ref: the pushed stream, whose events follow with
 * that ref), in the order the server sent it: servers promise before
 * they answer, so it comes before the request's own GM_EV_RESPONSE. Pushes
 * for another scheme or authority are refused. */

/* ------------------------------------------------------------- WebSocket */

/*
 * Upgrades the connection to WebSocket (Gun's gun:ws_upgrade): a GET of path
 * with headers[0..n_headers-1] (may be NULL when 0) plus the upgrade headers,
 * then the WebSocket protocol on the SAME connection. Returns at once; *ref
 * gets the stream reference. Outcomes, as events of that ref:
 *   - GM_EV_UPGRADE: protocol "websocket", headers the 101's (the negotiated
 *     subprotocol is its sec-websocket-protocol header). From then on the
 *     connection's protocol is "ws" and the stream's frames arrive as
 *     GM_EV_WS events; send with gm_ws_send.
 *   - the server said no: an ordinary GM_EV_RESPONSE (+ GM_EV_DATA), as in
 *     Gun; the connection stays HTTP.
 *   - a 101 that fails Gun's checks (Sec-WebSocket-Accept, an extension or
 *     subprotocol we did not offer): GM_EV_ERROR "ws_handshake_failed: ...",
 *     and the connection goes DOWN.
 * HTTP/1.1: the upgrade is pipelined after the requests in flight (their
 * responses come first); requests made after it wait for its outcome and
 * get GM_EV_ERROR "badstate: ..." if it succeeds (Gun writes them and loses
 * them). On an upgraded HTTP/1.1 connection, gm_request and gm_ws_upgrade
 * give a connection-wide GM_EV_ERROR (ref 0) "badstate: This connection only
 * accepts Websocket frames.". Over HTTP/1.0 the stream gets GM_EV_ERROR
 * "badstate: Websocket cannot be used over an HTTP/1.0 connection.".
 * HTTP/2: RFC 8441 extended CONNECT on a stream of its own, once the
 * server's SETTINGS allow it (SETTINGS_ENABLE_CONNECT_PROTOCOL; else the
 * stream gets GM_EV_ERROR "badstate: ..."); the UPGRADE's headers are the
 * 2xx's; other streams, WebSockets included, go on beside it. While the
 * connection is not up the upgrade waits and goes out on UP, like a
 * request.
 *
 * ws_opts_json: NULL for the connection's ws_opts, or a JSON object that
 * replaces them (as in Gun), with Gun's keys and defaults: compress (false;
 * true offers permessage-deflate as Gun does, "permessage-deflate;
 * client_max_window_bits; server_max_window_bits=15", and "compat" offers
 * "permessage-deflate" without parameters; the server's
 * no_context_takeover either way and window bits are honoured, context
 * takeover is kept otherwise), keepalive (ms between empty pings,
 * "infinity"), protocols (subprotocols offered, ["chat", ...]; a 101 naming
 * one we did not offer fails, one naming none is accepted), silence_pings
 * (true: pings and pongs are not events; pings are always answered with
 * their payload), flow (GM_EV_WS events before the stream pauses;
 * gm_update_flow adds), tunnel (the ref of an HTTP/2 tunnel that carries
 * the upgrade, see gm_connect; not a connection option), closing_timeout
 * (15000 ms), default_protocol
 * ("gun_ws_h" only: gunmetal has no handler modules), max_message_size
 * (alias max_frame_size; default 16 MiB). user_opts and reply_to are
 * refused in JSON (reply_to: use gm_ws_upgrade_to).
 *
 * The WebSocket fails, with a close frame of the code below, GM_EV_ERROR on
 * the stream and (HTTP/1.1) GM_EV_DOWN with the same reason:
 *   - 1009 "max_message_size: ...": a frame header announcing a message
 *     larger than max_message_size (refused at the header: nothing of it is
 *     buffered or read), or a compressed message inflating past it;
 *   - 1007 "badencoding: ...": a text message or close reason not UTF-8;
 *   - 1002 "ws_error: ...": a frame that breaks RFC 6455 or 7692 (reserved
 *     bits or opcodes, a masked frame, a fragmented or oversized control
 *     frame, a continuation out of place, a length with its top bit set or
 *     not minimally encoded, a bad close code, a message that does not
 *     inflate).
 *
 * The end: the server's close frame is the stream's last event (GM_EV_WS
 * close, status = its code, 0 when it has none); data messages that arrive
 * before it are delivered, also after our own close frame. Ours answers it
 * (1000, as Gun) unless we sent one. After a close frame from gm_ws_send the
 * server has closing_timeout to answer; past it the stream gets GM_EV_ERROR
 * "closing_timeout: ..." and the connection (or HTTP/2 stream) ends with
 * that reason. On HTTP/1.1 the connection ends with the WebSocket:
 * GM_EV_DOWN follows with protocol "ws", reason "normal" after a close
 * handshake (else the reason above) and the stream in its killed list
 * (Gun #265), then the connection reconnects per its retry options as an
 * HTTP connection (no automatic re-upgrade). Over HTTP/2 only the stream
 * ends (END_STREAM). A WebSocket lost with its connection gets GM_EV_ERROR
 * "closed..." and is in DOWN's killed list.
 *
 * Errors: GM_EINVAL (bad path or header: nothing is sent), GM_EOPTION (bad
 * ws_opts_json, the message names the key), GM_ECLOSED, GM_EUNSUPPORTED (a
 * protocol without WebSocket: raw, socks).
 */
int gm_ws_upgrade(gm_conn *c, const char *path, const gm_header *headers, size_t n_headers,
                  const char *ws_opts_json, gm_ref *ref);

/* gm_ws_upgrade with Gun's ws_opts reply_to: the stream's events (UPGRADE,
 * WS, ERROR, or the rejecting RESPONSE) go to reply_to instead of the
 * connection's owner; DOWN and EXIT still go to the owner. reply_to NULL is
 * gm_ws_upgrade. Errors as gm_ws_upgrade, and GM_EINVAL for a queue that is
 * not live. */
int gm_ws_upgrade_to(gm_conn *c, const char *path, const gm_header *headers, size_t n_headers,
                     const char *ws_opts_json, gm_queue *reply_to, gm_ref *ref);

/* A frame for gm_ws_send. op is GM_WS_TEXT, GM_WS_BINARY, GM_WS_PING,
 * GM_WS_PONG or GM_WS_CLOSE; data/len the payload (data may be NULL when len
 * is 0; text must be UTF-8; a ping or pong carries at most 125 bytes); for
 * GM_WS_CLOSE, code is the close code (0: a close frame without code or
 * reason) and data/len the reason (at most 123 bytes of UTF-8). code is
 * ignored for other ops. */
typedef struct gm_ws_frame {
    uint32_t op;
    uint32_t code;
    const void *data;
    size_t len;
} gm_ws_frame;

/*
 * Sends frames[0..n-1] on WebSocket stream ref, in order (Gun's
 * gun:ws_send): every frame is checked first (a bad one fails the call and
 * nothing is sent), then all go on the wire whole and in this order, before
 * any frame of a later call. Text and binary frames are compressed when
 * permessage-deflate was negotiated. {ping, Payload} and {pong, Payload}
 * send the caller's payload (an unsolicited pong is allowed, RFC 6455
 * 5.5.3). The call blocks while much output is pending, as gm_data does; the
 * library copies what it needs before returning. A close frame must be the
 * last: it starts the close handshake (closing_timeout bounds the wait for
 * the server's close frame), after which the stream and, on HTTP/1.1, the
 * connection end; later calls answer GM_EBADSTATE (or GM_ENOSTREAM once the
 * stream is gone).
 *
 * Errors: GM_EINVAL (bad op, bad close code, reason too long, a ping or
 * pong over 125 bytes, invalid UTF-8, a frame after a close frame, NULL
 * frames with n > 0), GM_ENOSTREAM (ref is not this connection's
 * WebSocket), GM_EBADSTATE (the upgrade has not completed yet, or the
 * stream is closing), GM_ENOTUP (the upgrade waits for the connection),
 * GM_ECLOSED.
 */
int gm_ws_send(gm_conn *c, gm_ref ref, const gm_ws_frame *frames, size_t n);

/* gm_ws_send that never blocks, for a caller that must not (an Erlang NIF on
 * a normal scheduler, an event loop's thread): when the output is already
 * past its bound (the connection's socket, or on HTTP/2 the stream's
 * windows) it sends nothing and returns GM_EAGAIN; otherwise it queues the
 * frames (checked as gm_ws_send checks them) and returns GM_OK without
 * waiting for them to go out. After GM_EAGAIN call gm_ws_send (which waits)
 * from a thread that may block, or try again later. Memory stays bounded:
 * each call adds at most its own frames past the bound, and only when the
 * output was below it. Other errors as gm_ws_send. */
int gm_ws_send_nowait(gm_conn *c, gm_ref ref, const gm_ws_frame *frames, size_t n);

/* As gm_data, and *sent (when not NULL) is set on return to how many of
 * this call's len bytes went out: len on GM_OK; on a failed call, the count
 * when it is known, else 0.
 * It is known on a raw connection with tcp_opts.send_timeout (the default,
 * 15000 ms; "infinity" turns it off): there each call returns only once its
 * bytes were written to the socket (the OS took them), as gen_tcp's send,
 * and calls take turns. When a write cannot complete within send_timeout
 * (the peer does not read), the call fails with GM_ETIMEOUT; *sent bytes of
 * it went out (with raw_opts.packet 1, 2 or 4 the prefix is not counted,
 * and went out first), and gm_errmsg() says so: "timeout: N of LEN bytes
 * went out within tcp_opts.send_timeout = ...". gen_tcp's {timeout, RestData}
 * is data + *sent. Then:
 *   - tcp_opts.send_timeout_close true (the default, as gen_tcp): the
 *     connection closes: GM_EV_DOWN with reason "timeout: a send did not
 *     complete within ... (tcp_opts.send_timeout) ...", then retry applies;
 *   - send_timeout_close false (only with protocols ["raw"] over tcp, else
 *     GM_EOPTION at gm_open): the connection stays up and nothing more of
 *     this call is sent; the peer got exactly *sent bytes of it. Send the
 *     rest (data + *sent) again, or close. A fin given with the call is not
 *     applied (send it again).
 * If the connection goes down while the call waits: GM_ECLOSED, with the
 * count in *sent and in the sentence. On other protocols, or with
 * send_timeout "infinity", the bytes are queued for the socket and *sent is
 * len on GM_OK, 0 on error. */
int gm_data_v2(gm_conn *c, gm_ref ref, const void *data, size_t len, int fin, size_t *sent);

/* ---------------------------------------------------------------- testing */

/* The number of handles (queues and connections) not yet released. For leak
 * tests: after every handle is released and every event freed it is back to
 * where it started. Not part of the ABI promise. */
int64_t gm__live_handles(void);

/* Writes every goroutine's stack to stderr, for a test's watchdog that sees
 * a call not returning. Not part of the ABI promise. */
void gm__dump_goroutines(void);

#ifdef __cplusplus
}
#endif
#endif /* GUNMETAL_H */
