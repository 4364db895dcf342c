/*
 * util.h — helpers shared by the C tests: the test server's addresses (from
 * run.sh's environment), opening a connection, waiting for events, and
 * collecting whole streams.
 *
 * Nothing here sleeps to wait for an event: waits are gm_queue_poll /
 * gm_await calls with timeouts.
 */
#ifndef GM_UTIL_H
#define GM_UTIL_H

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"

/* Generous bound for anything that should happen "at once" on 127.0.0.1. */
#define WAIT_MS 5000

static inline int env_port(const char *name) {
    const char *s = getenv(name);
    if (!s || !*s) {
        fprintf(stderr, "%s is not set: run the tests through tests/c/run.sh\n", name);
        exit(2);
    }
    return atoi(s);
}

static inline int http_port(void) { return env_port("GM_TEST_HTTP_PORT"); }
static inline int https_port(void) { return env_port("GM_TEST_HTTPS_PORT"); }

static inline const char *unix_path(void) {
    const char *s = getenv("GM_TEST_UNIX");
    return s && *s ? s : NULL;
}

static inline void msleep(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* A port on 127.0.0.1 where nothing listens: bound by us, then released. */
static inline int refused_port(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(s, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (s >= 0) close(s);
    return port;
}

/* A listener of our own on 127.0.0.1 (the tests' scripted peer): its fd, the
 * port in *port; -1 on failure. */
static inline int listen_local(int *port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 4) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &len) != 0) {
        if (s >= 0) close(s);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return s;
}

/* 1 when fd is readable within timeout_ms, 0 when not, -1 on error. */
static inline int fd_readable(int fd, int timeout_ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r;
    do {
        r = poll(&p, 1, timeout_ms);
    } while (r < 0 && errno == EINTR);
    if (r < 0) return -1;
    return r > 0 && (p.revents & POLLIN) ? 1 : 0;
}

/* Opens a connection to the test server's cleartext port and waits for UP.
 * NULL (with a failed check) when that did not work. */
static inline gm_conn *open_up_opts(gm_queue *q, const char *opts) {
    gm_conn *c = NULL;
    int rc = gm_open(q, "127.0.0.1", http_port(), opts, &c);
    CHECK_RC(rc, GM_OK);
    if (rc != GM_OK) return NULL;
    /* protocol NULL: lifecycle.c checks the protocol out-parameter. */
    rc = gm_await_up(c, WAIT_MS, NULL);
    CHECK_RC(rc, GM_OK);
    if (rc != GM_OK) {
        gm_conn_free(c);
        return NULL;
    }
    return c;
}

static inline gm_conn *open_up(gm_queue *q) { return open_up_opts(q, NULL); }

/* The next event of q (NULL after timeout_ms). */
static inline gm_event *next_event(gm_queue *q, int timeout_ms) {
    gm_event *ev = NULL;
    int n = gm_queue_poll(q, &ev, 1, timeout_ms);
    if (n < 0) {
        fprintf(stderr, "gm_queue_poll: %d (%s) %s\n", n, gm_strerror(n), gm_errmsg());
        return NULL;
    }
    return n == 1 ? ev : NULL;
}

/* Takes events of q until one of kind `kind` (of connection c when c is
 * not NULL) and returns it; the others are freed, and counted in *skipped
 * when skipped is not NULL. NULL after timeout_ms in all. */
static inline gm_event *wait_kind(gm_queue *q, gm_conn *c, int kind, int timeout_ms, int *skipped) {
    int64_t end = check_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = end - check_now_ms();
        if (left < 0) return NULL;
        gm_event *ev = next_event(q, (int)left);
        if (!ev) return NULL;
        if (ev->kind == kind && (c == NULL || ev->conn == c)) return ev;
        if (skipped) (*skipped)++;
        gm_event_free(ev);
    }
}

/* A header's value in an event (first match, case-sensitive name), or NULL. */
static inline const char *ev_header(const gm_event *ev, const char *name) {
    for (size_t i = 0; ev && i < ev->n_headers; i++)
        if (ev->headers[i].name && strcmp(ev->headers[i].name, name) == 0) return ev->headers[i].value;
    return NULL;
}

/* The test server's body pattern: byte i of a body is 'a' + i % 26. */
static inline int is_pattern(const uint8_t *d, size_t n, size_t off) {
    for (size_t i = 0; i < n; i++)
        if (d[i] != (uint8_t)('a' + (off + i) % 26)) return 0;
    return 1;
}

/* GET path on c and wait for the whole body (gm_await_body): the status
 * (and the body in *body, malloc'ed, NUL-terminated, when body is not
 * NULL), or a negative GM_E* code. */
static inline int get_body(gm_conn *c, const char *path, char **body, size_t *len) {
    gm_ref ref = 0;
    int rc = gm_request(c, "GET", path, NULL, 0, NULL, 0, 0, NULL, &ref);
    if (rc != GM_OK) return rc;
    gm_event *ev = NULL;
    rc = gm_await_body(c, ref, WAIT_MS, &ev);
    if (rc != GM_OK) return rc;
    int status = ev->status;
    if (body) {
        *body = malloc(ev->data_len + 1);
        memcpy(*body, ev->data ? (const void *)ev->data : "", ev->data_len);
        (*body)[ev->data_len] = 0;
    }
    if (len) *len = ev->data_len;
    gm_event_free(ev);
    return status;
}

/* The test server's request counter (GET /count, itself counted), or -1. */
static inline long server_count(gm_conn *c) {
    char *body = NULL;
    int st = get_body(c, "/count", &body, NULL);
    long n = st == 200 ? strtol(body, NULL, 10) : -1;
    free(body);
    return n;
}

/* ---------------------------------------------------------------- streams */

/* What happened to one stream, as collected from its events. */
typedef struct stream {
    gm_ref ref;
    int status;           /* the RESPONSE's status */
    int informs;          /* INFORM events */
    int inform_status;    /* the last INFORM's status */
    int responses, datas, trailers, errors, others;
    int done;             /* its last event arrived */
    int after_done;       /* events that came after its last one */
    int order_bad;        /* DATA/TRAILERS before RESPONSE, INFORM after it */
    char reason[256];     /* the ERROR's reason */
    uint8_t *body;        /* DATA concatenated (malloc'ed) */
    size_t body_len, body_cap;
} stream;

static inline void stream_init(stream *s, gm_ref ref) {
    memset(s, 0, sizeof *s);
    s->ref = ref;
}

static inline void stream_free(stream *s) {
    free(s->body);
    s->body = NULL;
}

/* Records ev in s. */
static inline void stream_add(stream *s, const gm_event *ev) {
    if (s->done) s->after_done++;
    switch (ev->kind) {
    case GM_EV_INFORM:
        s->informs++;
        s->inform_status = ev->status;
        if (s->responses) s->order_bad++;
        break;
    case GM_EV_RESPONSE:
        s->responses++;
        s->status = ev->status;
        if (ev->fin) s->done = 1;
        break;
    case GM_EV_DATA:
        s->datas++;
        if (!s->responses) s->order_bad++;
        if (ev->data_len) {
            if (s->body_len + ev->data_len + 1 > s->body_cap) {
                s->body_cap = (s->body_len + ev->data_len + 1) * 2;
                s->body = realloc(s->body, s->body_cap);
            }
            memcpy(s->body + s->body_len, ev->data, ev->data_len);
            s->body_len += ev->data_len;
            s->body[s->body_len] = 0;
        }
        if (ev->fin) s->done = 1;
        break;
    case GM_EV_TRAILERS:
        s->trailers++;
        if (!s->responses) s->order_bad++;
        s->done = 1;
        break;
    case GM_EV_ERROR:
        s->errors++;
        snprintf(s->reason, sizeof s->reason, "%s", ev->reason ? ev->reason : "");
        s->done = 1;
        break;
    default:
        s->others++;
    }
}

/* Polls q until every stream of ss[0..n-1] is done or timeout_ms passed.
 * Events of other streams or of the connection go to *stray (counted) when
 * stray is not NULL. If log is not NULL, the refs of RESPONSE events are
 * appended to log[*log_n] in arrival order (log has room for log_cap).
 * Returns 1 when all are done. */
static inline int collect_log(gm_queue *q, stream *ss, int n, int timeout_ms, int *stray,
                              gm_ref *log, int *log_n, int log_cap) {
    int64_t end = check_now_ms() + timeout_ms;
    /* One event at a time: events after the streams' last ones (an EXIT,
     * say) stay queued for the caller. */
    gm_event *evs[1];
    for (;;) {
        int all = 1;
        for (int i = 0; i < n; i++) all &= ss[i].done;
        if (all) return 1;
        int64_t left = end - check_now_ms();
        if (left < 0) return 0;
        int k = gm_queue_poll(q, evs, 1, (int)left);
        if (k < 0) {
            fprintf(stderr, "gm_queue_poll: %d (%s) %s\n", k, gm_strerror(k), gm_errmsg());
            return 0;
        }
        for (int j = 0; j < k; j++) {
            int found = 0;
            for (int i = 0; i < n; i++) {
                if (evs[j]->ref == ss[i].ref && ss[i].ref != 0) {
                    stream_add(&ss[i], evs[j]);
                    found = 1;
                    break;
                }
            }
            if (!found) {
                if (stray) (*stray)++;
                fprintf(stderr, "    (stray event kind %d ref %" PRIu64 " reason %s)\n", evs[j]->kind,
                        evs[j]->ref, evs[j]->reason ? evs[j]->reason : "-");
            }
            if (log && evs[j]->kind == GM_EV_RESPONSE && *log_n < log_cap) log[(*log_n)++] = evs[j]->ref;
            gm_event_free(evs[j]);
        }
    }
}

static inline int collect(gm_queue *q, stream *ss, int n, int timeout_ms, int *stray) {
    return collect_log(q, ss, n, timeout_ms, stray, NULL, NULL, 0);
}

/* Takes every event already in q (or arriving within timeout_ms of the
 * last one) and frees them; returns how many. */
static inline int drain(gm_queue *q, int timeout_ms) {
    int total = 0;
    gm_event *evs[64];
    int k;
    while ((k = gm_queue_poll(q, evs, 64, timeout_ms)) > 0) {
        total += k;
        gm_events_free(evs, k);
    }
    return total;
}

/* Closes c, waits for its EXIT in q (freeing what comes before) and
 * releases it. 1 when the EXIT came. */
static inline int close_and_free(gm_queue *q, gm_conn *c) {
    if (!c) return 0;
    gm_close(c);
    gm_event *ev = wait_kind(q, c, GM_EV_EXIT, WAIT_MS, NULL);
    int ok = ev != NULL;
    gm_event_free(ev);
    gm_conn_free(c);
    return ok;
}

#endif /* GM_UTIL_H */
