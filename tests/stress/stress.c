/*
 * stress.c — crash-class stress of the C ABI (issue 9, item 1), run by
 * tests/stress/run.sh against the test server.
 *
 *   stress SHAPE [-t MS] [-s SEED]
 *
 * Shapes:
 *   repro    the reported shape: one queue, two connections; one receives
 *            an endless chunked HTTP/1.1 body on a request made with
 *            gm_req_opts.timeout_ms = 5000, the other makes small requests
 *            one after the other; the host drains with gm_queue_poll in
 *            batches and gm_events_free.
 *   freer    the same, the events freed by another thread than the poller.
 *   many     16 connections on one queue, each streaming: endless bodies
 *            whose timeouts fire mid-stream, chunked and sized bodies,
 *            gm_cancel and gm_close mid-stream, gm_conn_free while events of
 *            the connection are held, events freed by another thread.
 *
 * Every shape ends by itself after -t milliseconds of traffic (then lets the
 * streams finish, closes everything and drains), and fails loudly (message,
 * exit 1) on a lost event (a stream or connection that never ends), an
 * event out of order (anything before UP, after EXIT, after a stream's last
 * event; DATA before RESPONSE; body bytes not the server's pattern), and a
 * leak (gm__live_handles() not back to 0). An abort of the Go runtime or a
 * sanitizer report fails it too (run.sh looks at the exit status and
 * stderr).
 *
 * The reported abort ("found pointer to free object", about 1 run in 25 of
 * `repro` before the fix) came from the library storing pointers into the
 * host's uninitialised out[] array and into malloc'ed events through Go's
 * write barrier: see cStore in capi/event.go. pump() keeps its out array on
 * the stack, uninitialised, on purpose: that is what exposed it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gunmetal.h"

extern int64_t gm__live_handles(void);

static const char *shape;

__attribute__((noreturn, format(printf, 1, 2))) static void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "stress %s: FAIL: ", shape);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t rng;
static uint32_t rnd(uint32_t n) { /* xorshift64 */
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static int port;

/* ---------------------------------------------------------------- freeing */

/* Events go to gm_events_free on this thread (the poller) or, with a freer,
 * through a ring to another thread. */
#define RING 8192
static gm_event *ring[RING];
static int ring_head, ring_tail, ring_done, use_freer;
static pthread_mutex_t ring_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ring_cv = PTHREAD_COND_INITIALIZER;
static long freed_by_freer;

static void *freer_main(void *arg) {
    (void)arg;
    gm_event *b[256];
    for (;;) {
        pthread_mutex_lock(&ring_mu);
        while (ring_head == ring_tail && !ring_done) pthread_cond_wait(&ring_cv, &ring_mu);
        int n = 0;
        while (ring_head != ring_tail && n < 256) {
            b[n++] = ring[ring_head];
            ring_head = (ring_head + 1) % RING;
        }
        int done = ring_done;
        pthread_cond_broadcast(&ring_cv);
        pthread_mutex_unlock(&ring_mu);
        if (n > 0) {
            gm_events_free(b, n);
            freed_by_freer += n;
        } else if (done) {
            return NULL;
        }
    }
}

static void release(gm_event **evs, int n) {
    if (!use_freer) {
        gm_events_free(evs, n);
        return;
    }
    pthread_mutex_lock(&ring_mu);
    for (int i = 0; i < n; i++) {
        while ((ring_tail + 1) % RING == ring_head) pthread_cond_wait(&ring_cv, &ring_mu);
        ring[ring_tail] = evs[i];
        ring_tail = (ring_tail + 1) % RING;
    }
    pthread_cond_broadcast(&ring_cv);
    pthread_mutex_unlock(&ring_mu);
}

/* ---------------------------------------------------------------- book-keeping */

enum { K_SIZED, K_CHUNKED, K_ENDLESS };

typedef struct req {
    gm_ref ref;
    int kind;
    long want;      /* body length for sized/chunked */
    long got;       /* body bytes so far */
    int responded;  /* RESPONSE seen */
    int ended;      /* its last event seen */
    int cancelled;  /* gm_cancel'ed: no end event expected */
    int timeout_ms; /* > 0: ends with ERROR timeout (endless ones) */
    struct req *next;
} req;

typedef struct conn {
    gm_conn *c;      /* NULL once retired (EXIT seen) */
    int up, exited;  /* UP seen, EXIT seen */
    int closing;     /* gm_close called: streams end without events */
    int freed;       /* gm_conn_free called */
    int busy;        /* a request in flight (for the repro's second connection) */
    int stuck;       /* an endless body was asked for: HTTP/1.1 reads it for ever,
                      * what is pipelined behind it would never be answered */
    long events;
    req *reqs;
} conn;

#define MAXC 64
static conn conns[MAXC];
static int nconns;
static long total_events, total_bytes, timeouts_seen, discards_seen, cancels, closes, frees_held;

static conn *conn_of(gm_conn *c) {
    for (int i = 0; i < nconns; i++)
        if (conns[i].c == c && !conns[i].exited) return &conns[i];
    return NULL;
}

static req *req_of(conn *k, gm_ref ref) {
    for (req *r = k->reqs; r; r = r->next)
        if (r->ref == ref) return r;
    return NULL;
}

static void free_reqs(conn *k) {
    req *r = k->reqs;
    while (r) {
        req *n = r->next;
        free(r);
        r = n;
    }
    k->reqs = NULL;
}

static long opened;

/* A new connection, in a slot whose connection has exited and was freed
 * when there is one. */
static conn *open_conn(gm_queue *q) {
    conn *k = NULL;
    for (int i = 0; i < nconns && !k; i++)
        if (conns[i].exited && conns[i].freed) k = &conns[i];
    if (!k) {
        if (nconns == MAXC) fail("too many connections");
        k = &conns[nconns++];
    }
    free_reqs(k);
    memset(k, 0, sizeof *k);
    opened++;
    int rc = gm_open(q, "127.0.0.1", port, NULL, &k->c);
    if (rc != GM_OK) fail("gm_open: %d %s", rc, gm_errmsg());
    return k;
}

static req *request(conn *k, int kind, int timeout_ms) {
    req *r = calloc(1, sizeof *r);
    if (!r) fail("calloc");
    r->kind = kind;
    r->timeout_ms = timeout_ms;
    char path[64];
    switch (kind) {
    case K_SIZED:
        r->want = 1 + rnd(40000);
        snprintf(path, sizeof path, "/bytes/%ld", r->want);
        break;
    case K_CHUNKED:
        r->want = 1 + rnd(200000);
        snprintf(path, sizeof path, "/chunked/%ld?chunk=%u", r->want, 1 + rnd(20000));
        break;
    default:
        r->want = -1;
        snprintf(path, sizeof path, "/infinite");
    }
    gm_req_opts o = {.size = sizeof o, .timeout_ms = timeout_ms};
    int rc = gm_request(k->c, "GET", path, NULL, 0, NULL, 0, 0, timeout_ms ? &o : NULL, &r->ref);
    if (rc != GM_OK) fail("gm_request %s: %d %s", path, rc, gm_errmsg());
    r->next = k->reqs;
    k->reqs = r;
    k->busy = 1;
    return r;
}

static int is_pattern(const uint8_t *d, size_t n, long off) {
    for (size_t i = 0; i < n; i++)
        if (d[i] != (uint8_t)('a' + (off + (long)i) % 26)) return 0;
    return 1;
}

/* Checks one event against what came before it. */
static void account(gm_event *ev) {
    total_events++;
    if (ev->size != sizeof(gm_event)) fail("event size %u", ev->size);
    conn *k = conn_of(ev->conn);
    if (!k) fail("event kind %d for an unknown or exited connection %p", ev->kind, (void *)ev->conn);
    k->events++;
    if (ev->kind == GM_EV_UP) {
        k->up++;
        return;
    }
    if (!k->up && ev->kind != GM_EV_EXIT) fail("event kind %d before UP", ev->kind);
    if (ev->kind == GM_EV_EXIT) {
        k->exited = 1;
        for (req *r = k->reqs; r; r = r->next)
            if (!r->ended && !r->cancelled && !k->closing)
                fail("EXIT (%s) while stream %llu had not ended", ev->reason, (unsigned long long)r->ref);
        return;
    }
    if (ev->kind == GM_EV_DOWN) {
        /* The test server never drops a connection; gunmetal does once the
         * endless response of a cancelled or timed-out HTTP/1.1 stream has
         * been read and dropped for http_opts.discard_timeout. The streams
         * pipelined behind it got their ERROR first; the connection comes
         * up again. Anything else is a failure. */
        if (!ev->reason || strncmp(ev->reason, "discard_timeout", 15) != 0)
            fail("DOWN (%s): the test server does not drop connections", ev->reason);
        for (req *r = k->reqs; r; r = r->next)
            if (!r->ended && !r->cancelled) fail("DOWN (%s) while stream %llu had not ended", ev->reason,
                                                  (unsigned long long)r->ref);
        discards_seen++;
        k->busy = 0;
        return;
    }
    if (ev->ref == 0) fail("event kind %d without a stream (%s)", ev->kind, ev->reason ? ev->reason : "");
    req *r = req_of(k, ev->ref);
    if (!r) fail("event kind %d for unknown stream %llu", ev->kind, (unsigned long long)ev->ref);
    if (r->ended) fail("event kind %d after the end of stream %llu", ev->kind, (unsigned long long)ev->ref);
    switch (ev->kind) {
    case GM_EV_RESPONSE:
        if (r->responded) fail("second RESPONSE");
        if (ev->status != 200) fail("status %d", ev->status);
        r->responded = 1;
        if (ev->fin) r->ended = 1;
        break;
    case GM_EV_DATA:
        if (!r->responded) fail("DATA before RESPONSE");
        if (ev->data_len && !is_pattern(ev->data, ev->data_len, r->got))
            fail("stream %llu: body bytes at %ld are not the server's", (unsigned long long)r->ref, r->got);
        r->got += (long)ev->data_len;
        total_bytes += (long)ev->data_len;
        if (ev->fin) {
            r->ended = 1;
            if (r->kind == K_ENDLESS) fail("an endless body ended");
            if (r->got != r->want) fail("body of %ld bytes, wanted %ld", r->got, r->want);
        }
        break;
    case GM_EV_ERROR:
        r->ended = 1;
        if (r->timeout_ms > 0 && strncmp(ev->reason, "timeout", 7) == 0) {
            timeouts_seen++;
            break;
        }
        if (strstr(ev->reason, "discard_timeout")) break; /* behind a discarded response: see DOWN */
        fail("stream %llu: ERROR %s", (unsigned long long)r->ref, ev->reason);
    default:
        fail("unexpected event kind %d", ev->kind);
    }
    if (r->ended) k->busy = 0;
}

/* Polls once (up to timeout_ms), checks and releases what came. Returns the
 * number of events. */
static int pump(gm_queue *q, int timeout_ms, int hold, gm_event **held, int *nheld) {
    gm_event *evs[256];
    int n = gm_queue_poll(q, evs, 256, timeout_ms);
    if (n < 0) fail("gm_queue_poll: %d %s", n, gm_errmsg());
    for (int i = 0; i < n; i++) account(evs[i]);
    if (hold && n > 0) {
        memcpy(held, evs, (size_t)n * sizeof *evs);
        *nheld = n;
        return n;
    }
    release(evs, n);
    return n;
}

/* Every stream of every open connection ends (the endless ones by their
 * timeouts), every connection is closed and exits, the queue is freed, no
 * handle is left. */
static void finish(gm_queue *q, int64_t bound_ms) {
    int64_t end = now_ms() + bound_ms;
    for (;;) {
        int pending = 0;
        for (int i = 0; i < nconns; i++) {
            conn *k = &conns[i];
            if (k->exited || k->closing) continue;
            if (!k->up) pending++;
            for (req *r = k->reqs; r; r = r->next)
                if (!r->ended && !r->cancelled) pending++;
        }
        if (!pending) break;
        if (now_ms() > end) fail("lost events: %d streams or connections never ended", pending);
        pump(q, 100, 0, NULL, NULL);
    }
    for (int i = 0; i < nconns; i++) {
        conn *k = &conns[i];
        if (!k->closing && !k->exited) {
            k->closing = 1;
            int rc = gm_close(k->c);
            if (rc != GM_OK) fail("gm_close: %d %s", rc, gm_errmsg());
        }
    }
    for (;;) {
        int open = 0;
        for (int i = 0; i < nconns; i++) open += !conns[i].exited;
        if (!open) break;
        if (now_ms() > end + 10000) fail("lost events: %d connections never sent EXIT", open);
        pump(q, 100, 0, NULL, NULL);
    }
    for (int i = 0; i < nconns; i++)
        if (!conns[i].freed) {
            conns[i].freed = 1;
            gm_conn_free(conns[i].c);
        }
    if (gm_queue_len(q) != 0) fail("events after every EXIT: %d", gm_queue_len(q));
    if (use_freer) {
        pthread_mutex_lock(&ring_mu);
        ring_done = 1;
        pthread_cond_broadcast(&ring_cv);
        pthread_mutex_unlock(&ring_mu);
    }
}

static void check_leaks(gm_queue *q) {
    gm_queue_free(q);
    int64_t live = gm__live_handles();
    if (live != 0) fail("leak: %lld handles live at the end", (long long)live);
    for (int i = 0; i < nconns; i++) free_reqs(&conns[i]);
}

/* ---------------------------------------------------------------- shapes */

/* The reported shape (and, with a freer thread, its neighbour). */
static void shape_repro(gm_queue *q, int ms) {
    conn *a = open_conn(q), *b = open_conn(q);
    request(a, K_ENDLESS, 5000);
    request(b, K_SIZED, 0);
    int64_t end = now_ms() + ms;
    while (now_ms() < end) {
        pump(q, 20, 0, NULL, NULL);
        if (b->up && !b->busy) request(b, K_SIZED, 0);
    }
    /* The endless body would run to its 5 s timeout: cancel it. */
    for (req *r = a->reqs; r; r = r->next)
        if (!r->ended) {
            int rc = gm_cancel(a->c, r->ref);
            if (rc != GM_OK) fail("gm_cancel: %d %s", rc, gm_errmsg());
            r->cancelled = 1;
        }
    finish(q, 15000);
}

/* Many connections, every way of ending a stream mid-way. */
static void shape_many(gm_queue *q, int ms) {
    for (int i = 0; i < 16; i++) open_conn(q);
    int64_t end = now_ms() + ms;
    gm_event *held[256];
    while (now_ms() < end) {
        int hold = 0, nheld = 0;
        conn *victim = NULL;
        /* Now and then: free a connection's handle while holding events
         * that name it. */
        if (rnd(15) == 0) {
            for (int t = 0; t < 4 && !victim; t++) {
                conn *k = &conns[rnd((uint32_t)nconns)];
                if (!k->exited && !k->freed && k->up) victim = k;
            }
            hold = victim != NULL;
        }
        pump(q, 20, hold, held, &nheld);
        if (hold) {
            gm_conn *vc = victim->c;
            victim->closing = victim->freed = 1;
            gm_conn_free(vc);
            frees_held++;
            /* The held events' conn is still a handle that answers. */
            for (int i = 0; i < nheld; i++)
                if (held[i]->conn == vc) {
                    gm_event *x = NULL;
                    int rc = gm_info(held[i]->conn, &x);
                    if (rc != GM_ECLOSED || x) fail("gm_info on a freed handle held by an event: %d", rc);
                    break;
                }
            release(held, nheld);
        }
        for (int i = 0; i < nconns; i++) {
            conn *k = &conns[i];
            if (!k->up || k->closing || k->exited) continue;
            int busy = 0;
            for (req *r = k->reqs; r; r = r->next) busy += !r->ended && !r->cancelled;
            if (k->stuck && !busy && rnd(10) == 0) { /* timed out, still reading: close it */
                k->closing = 1;
                int rc = gm_close(k->c);
                if (rc != GM_OK) fail("gm_close: %d %s", rc, gm_errmsg());
                closes++;
                continue;
            }
            if (busy < 2 && !k->stuck) {
                switch (rnd(3)) {
                case 0: request(k, K_ENDLESS, 20 + (int)rnd(200)); k->stuck = 1; break;
                case 1: request(k, K_CHUNKED, rnd(2) ? 0 : 5000); break;
                default: request(k, K_SIZED, rnd(2) ? 0 : 5000);
                }
            }
            if (rnd(200) == 0) { /* cancel a stream mid-way */
                for (req *r = k->reqs; r; r = r->next)
                    if (!r->ended && !r->cancelled) {
                        int rc = gm_cancel(k->c, r->ref);
                        if (rc != GM_OK) fail("gm_cancel: %d %s", rc, gm_errmsg());
                        r->cancelled = 1;
                        cancels++;
                        break;
                    }
            }
            if (rnd(400) == 0) { /* close the connection mid-stream */
                k->closing = 1;
                int rc = gm_close(k->c);
                if (rc != GM_OK) fail("gm_close: %d %s", rc, gm_errmsg());
                closes++;
            }
        }
        /* Keep 16 going: free what exited (its EXIT may still be held by
         * the freer thread), open new ones. */
        for (int i = 0; i < nconns; i++)
            if (conns[i].exited && !conns[i].freed) {
                conns[i].freed = 1;
                gm_conn_free(conns[i].c);
            }
        int open = 0;
        for (int i = 0; i < nconns; i++) open += !conns[i].closing && !conns[i].exited;
        while (open < 16 && nconns < MAXC) {
            open_conn(q);
            open++;
        }
    }
    finish(q, 15000);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: stress repro|freer|many [-t MS] [-s SEED]\n");
        return 2;
    }
    shape = argv[1];
    int ms = 300;
    rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
    for (int i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "-t") == 0) ms = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "-s") == 0) rng = strtoull(argv[i + 1], NULL, 10);
    }
    if (!rng) rng = 1;
    uint64_t seed = rng;
    const char *p = getenv("GM_TEST_HTTP_PORT");
    if (!p || !*p) {
        fprintf(stderr, "GM_TEST_HTTP_PORT is not set: run through tests/stress/run.sh\n");
        return 2;
    }
    port = atoi(p);
    pthread_t th;
    use_freer = strcmp(shape, "freer") == 0 || strcmp(shape, "many") == 0;
    if (use_freer && pthread_create(&th, NULL, freer_main, NULL) != 0) fail("pthread_create");
    gm_queue *q = gm_queue_new();
    if (!q) fail("gm_queue_new: %s", gm_errmsg());
    if (strcmp(shape, "repro") == 0 || strcmp(shape, "freer") == 0) shape_repro(q, ms);
    else if (strcmp(shape, "many") == 0) shape_many(q, ms);
    else fail("unknown shape");
    if (use_freer) pthread_join(th, NULL);
    check_leaks(q);
    printf("stress %s: ok (seed %llu, %d ms, %d connections, %ld events, %ld MB, %ld timeouts, %ld discards, %ld cancels, "
           "%ld closes, %ld frees with held events, %ld freed by the freer thread)\n",
           shape, (unsigned long long)seed, ms, (int)opened, total_events, total_bytes >> 20, timeouts_seen, discards_seen, cancels,
           closes, frees_held, freed_by_freer);
    return 0;
}
