/* The parts of the C ABI that need no Go: error strings, the thread-local
 * error sentence, the version. Calling them costs no C→Go crossing. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include "gunmetal.h"

static __thread char gm_errbuf[1024];

void gm__set_errmsg(const char *s, size_t n) {
    if (n >= sizeof gm_errbuf) n = sizeof gm_errbuf - 1;
    memcpy(gm_errbuf, s, n);
    gm_errbuf[n] = 0;
}

const char *gm_errmsg(void) { return gm_errbuf; }

/* Protocol names handed out by gm_await_up: static, never freed. */
const char *gm__static_name(const char *s, size_t n) {
    static const char *const names[] = {"http", "http2", "raw", "socks", "ws"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i]) == n && memcmp(names[i], s, n) == 0) return names[i];
    return "unknown";
}

const char *gm_version(void) { return GM_VERSION_STRING; }

int gm_version_number(void) { return GM_VERSION_NUMBER; }

const char *gm_strerror(int code) {
    switch (code) {
    case GM_OK: return "ok";
    case GM_EINVAL: return "invalid argument";
    case GM_ENOMEM: return "out of memory";
    case GM_ECLOSED: return "connection closed";
    case GM_ETIMEOUT: return "timed out";
    case GM_EOPTION: return "invalid option";
    case GM_ENOSTREAM: return "no such stream";
    case GM_ENOTUP: return "connection not up";
    case GM_EBADSTATE: return "not possible in this state";
    case GM_EUNSUPPORTED: return "not supported by the protocol";
    case GM_ESTREAM: return "stream error";
    case GM_EINTERNAL: return "internal error";
    case GM_EQUEUE: return "queue freed";
    case GM_EAGAIN: return "would block";
    }
    return "unknown error";
}


/* cgo cannot declare const parameters: the Go side exports these under
 * gmgo_* names, and the header's const signatures forward to them. */
extern int gmgo_open(gm_queue *, char *, int, char *, gm_conn **);
extern int gmgo_open_unix(gm_queue *, char *, char *, gm_conn **);
extern int gmgo_open_fd(gm_queue *, int, char *, gm_conn **);
extern int gmgo_await_up(gm_conn *, int, char **);
extern int gmgo_request(gm_conn *, char *, char *, gm_header *, size_t, void *, size_t, unsigned, gm_req_opts *, gm_ref *);
extern int gmgo_data(gm_conn *, gm_ref, void *, size_t, int, size_t *);
extern int gmgo_connect(gm_conn *, char *, gm_header *, size_t, gm_req_opts *, gm_ref *);
extern int gmgo_ws_upgrade(gm_conn *, char *, gm_header *, size_t, char *, gm_queue *, gm_ref *);
extern int gmgo_ws_send(gm_conn *, gm_ref, gm_ws_frame *, size_t, int);

int gm_open(gm_queue *owner, const char *host, int port, const char *opts_json, gm_conn **out) {
    return gmgo_open(owner, (char *)host, port, (char *)opts_json, out);
}

int gm_open_unix(gm_queue *owner, const char *path, const char *opts_json, gm_conn **out) {
    return gmgo_open_unix(owner, (char *)path, (char *)opts_json, out);
}

int gm_open_fd(gm_queue *owner, int fd, const char *opts_json, gm_conn **out) {
    return gmgo_open_fd(owner, fd, (char *)opts_json, out);
}

int gm_await_up(gm_conn *c, int timeout_ms, const char **protocol) {
    return gmgo_await_up(c, timeout_ms, (char **)protocol);
}

int gm_request(gm_conn *c, const char *method, const char *path,
               const gm_header *headers, size_t n_headers,
               const void *body, size_t body_len,
               unsigned flags, const gm_req_opts *opts, gm_ref *ref) {
    return gmgo_request(c, (char *)method, (char *)path, (gm_header *)headers, n_headers,
                        (void *)body, body_len, flags, (gm_req_opts *)opts, ref);
}

int gm_connect(gm_conn *c, const char *dest_json, const gm_header *headers, size_t n_headers,
               const gm_req_opts *opts, gm_ref *ref) {
    return gmgo_connect(c, (char *)dest_json, (gm_header *)headers, n_headers, (gm_req_opts *)opts, ref);
}

int gm_data(gm_conn *c, gm_ref ref, const void *data, size_t len, int fin) {
    return gmgo_data(c, ref, (void *)data, len, fin, NULL);
}

int gm_data_v2(gm_conn *c, gm_ref ref, const void *data, size_t len, int fin, size_t *sent) {
    return gmgo_data(c, ref, (void *)data, len, fin, sent);
}

int gm_ws_upgrade(gm_conn *c, const char *path, const gm_header *headers, size_t n_headers,
                  const char *ws_opts_json, gm_ref *ref) {
    return gmgo_ws_upgrade(c, (char *)path, (gm_header *)headers, n_headers, (char *)ws_opts_json, NULL, ref);
}

int gm_ws_upgrade_to(gm_conn *c, const char *path, const gm_header *headers, size_t n_headers,
                     const char *ws_opts_json, gm_queue *reply_to, gm_ref *ref) {
    return gmgo_ws_upgrade(c, (char *)path, (gm_header *)headers, n_headers, (char *)ws_opts_json, reply_to, ref);
}

int gm_ws_send(gm_conn *c, gm_ref ref, const gm_ws_frame *frames, size_t n) {
    return gmgo_ws_send(c, ref, (gm_ws_frame *)frames, n, 0);
}

int gm_ws_send_nowait(gm_conn *c, gm_ref ref, const gm_ws_frame *frames, size_t n) {
    return gmgo_ws_send(c, ref, (gm_ws_frame *)frames, n, 1);
}

extern int gmgo_cookies_set(gm_conn *, char *);

int gm_cookies_set(gm_conn *c, const char *json) {
    return gmgo_cookies_set(c, (char *)json);
}

/* gm_queue_poll waits here, in C, not in Go: a goroutine entered from C is
 * locked to the host's thread, and parking it makes the Go scheduler hand
 * that thread's P to another thread and back on every wait (a futex round
 * trip or two per poll that waits). gmgo_queue_poll takes without waiting and
 * answers GM__WAIT with the queue's eventfd, which is readable exactly while
 * the queue holds events or a gm_queue_wake is pending. */
#define GM__WAIT (-1000)
extern int gmgo_queue_poll(gm_queue *, gm_event **, int, int, int *);
extern int gmgo_bad_timeout(int);

static long long gm__now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int gm_queue_poll(gm_queue *q, gm_event **out, int max, int timeout_ms) {
    if (timeout_ms < -1) return gmgo_bad_timeout(timeout_ms);
    int fd = -1;
    int rc = gmgo_queue_poll(q, out, max, timeout_ms != 0, &fd);
    if (rc != GM__WAIT) return rc;
    long long deadline = timeout_ms > 0 ? gm__now_ms() + timeout_ms : 0;
    for (;;) {
        int left = -1;
        if (timeout_ms > 0) {
            long long l = deadline - gm__now_ms();
            left = l > 0 ? (int)l : 0;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = left == 0 ? 0 : poll(&p, 1, left);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) /* timed out (or poll failed): one last look */
            return gmgo_queue_poll(q, out, max, 0, &fd);
        rc = gmgo_queue_poll(q, out, max, 1, &fd);
        if (rc != GM__WAIT) return rc;
    }
}
