/*
 * trace.c — a request's timeline: the "trace" option turns on Gun's
 * gun_event callbacks as GM_EV_TRACE events, and this prints them (with the
 * messages among them, in the order they happened) as milliseconds since
 * the connection was opened.
 *
 *   cc -Wall -Wextra -o trace examples/c/trace.c \
 *      $(PKG_CONFIG_PATH=build pkg-config --cflags --libs gunmetal) -Wl,-rpath,$PWD/build
 *   ./trace 127.0.0.1 PORT [PATH [OPTIONS_JSON]]
 *
 * e.g. ./trace localhost TLS_PORT /bytes/100 '{"transport":"tls","tls_opts":{"cacertfile":"ca.pem"}}'
 * OPTIONS_JSON is merged with "trace": true (so it must be an object and
 * must not set "trace" itself).
 *
 * Each TRACE event carries its name in `reason`, its stream in `ref`, a
 * CLOCK_MONOTONIC timestamp in `ts_ns`, the HTTP status (if any) in
 * `status`, and Gun's event map in `headers`: first the details, named
 * ":" + Gun's key, then the message's own header fields (not printed here).
 *
 * Exit status: 0 when the response arrived in full, 1 otherwise.
 */
#include <gunmetal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WAIT_MS 5000
#define BATCH 64

static int64_t t0;

static int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void print_trace(const gm_event *ev) {
    printf("%9.3f ms  %-20s", (double)(ev->ts_ns - t0) / 1e6, ev->reason);
    if (ev->ref) printf(" #%llu", (unsigned long long)ev->ref);
    if (ev->status) printf(" %d", (int)ev->status);
    for (size_t i = 0; i < ev->n_headers; i++) {
        const gm_header *h = &ev->headers[i];
        if (h->name[0] != ':') break; /* the details come first */
        printf(" %s=%.60s", h->name + 1, h->value);
    }
    if (ev->data_len) printf(" payload=%zu bytes", ev->data_len);
    printf("\n");
}

/* A message (not a trace event): the queue has no timestamp for it; it sits
 * between the trace events of its moment. */
static void print_message(const gm_event *ev) {
    static const char *names[] = {"", "gun_up", "gun_down", "exit", "gun_inform", "gun_response", "gun_data",
                                  "gun_trailers", "gun_push", "gun_error", "gun_upgrade", "gun_ws",
                                  "gun_notify", "gun_tunnel_up"};
    const char *name = ev->kind < sizeof names / sizeof names[0] ? names[ev->kind] : "?";
    printf("              -> %s", name);
    if (ev->ref) printf(" #%llu", (unsigned long long)ev->ref);
    if (ev->kind == GM_EV_RESPONSE) printf(" %d", (int)ev->status);
    if (ev->kind == GM_EV_DATA) printf(" %zu bytes%s", ev->data_len, ev->fin ? " fin" : "");
    if (ev->reason) printf(" %s", ev->reason);
    if (ev->protocol) printf(" %s", ev->protocol);
    printf("\n");
}

static int fail(const char *what, int rc) {
    fprintf(stderr, "trace: %s: %s (%s)\n", what, gm_errmsg(), gm_strerror(rc));
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 5) {
        fprintf(stderr, "usage: %s HOST PORT [PATH [OPTIONS_JSON]]\n", argv[0]);
        return 2;
    }
    const char *path = argc >= 4 ? argv[3] : "/";
    char opts[4096] = "{\"trace\":true}";
    if (argc == 5) {
        const char *o = strchr(argv[4], '{');
        if (!o) {
            fprintf(stderr, "trace: OPTIONS_JSON must be an object\n");
            return 2;
        }
        int empty = strspn(o + 1, " \t\r\n") == strlen(o + 1) - 1;
        snprintf(opts, sizeof opts, "{\"trace\":true%s%s", empty ? "}" : ",", empty ? "" : o + 1);
    }
    gm_queue *q = gm_queue_new();
    if (!q) return fail("gm_queue_new", GM_ENOMEM);
    gm_conn *c = NULL;
    gm_ref ref = 0;
    int rc, status = 1, done = 0, exited = 0;
    t0 = mono_ns();
    if ((rc = gm_open(q, argv[1], atoi(argv[2]), opts, &c)) != GM_OK) {
        fail("gm_open", rc);
        goto out;
    }
    /* Asked at once: the request waits for the connection, as in Gun. */
    if ((rc = gm_request(c, "GET", path, NULL, 0, NULL, 0, 0, NULL, &ref)) != GM_OK) {
        fail("gm_request", rc);
        goto out;
    }
    gm_event *evs[BATCH];
    /* Until the response's last message (or the stream's error), then
     * close: terminate and exit follow. */
    while (!exited) {
        int n = gm_queue_poll(q, evs, BATCH, WAIT_MS);
        if (n <= 0) {
            if (n < 0) fail("gm_queue_poll", n);
            else fprintf(stderr, "trace: no event for %d ms\n", WAIT_MS);
            goto out;
        }
        for (int i = 0; i < n; i++) {
            gm_event *ev = evs[i];
            if (ev->kind == GM_EV_TRACE) {
                print_trace(ev);
                continue;
            }
            print_message(ev);
            if (ev->ref == ref && (((ev->kind == GM_EV_DATA || ev->kind == GM_EV_RESPONSE) && ev->fin) ||
                                   ev->kind == GM_EV_TRAILERS))
                done = 1;
            if ((ev->kind == GM_EV_ERROR && ev->ref == ref) || ev->kind == GM_EV_EXIT) exited = 1;
        }
        gm_events_free(evs, n);
        if (done && !exited) {
            status = 0;
            gm_close(c); /* then terminate and exit come */
            done = 0;
        }
    }
out:
    if (c) gm_conn_free(c);
    gm_queue_free(q);
    return status;
}
