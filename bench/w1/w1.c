/*
 * w1.c — W1 for gunmetal from C: one HTTP/2 connection (h2c, prior
 * knowledge), a fixed number of GET streams in flight, each answered with a
 * small body. Events are taken in batches (gm_queue_poll, 256 at a time);
 * each finished stream is replaced by a new request at once. Prints one
 * line: "REQUESTS SECONDS ERRORS".
 *
 *   w1 PORT PATH REQUESTS [CONCURRENCY [WARMUP]]     (100 1000)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gunmetal.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int die(const char *what, int rc) {
    fprintf(stderr, "w1: %s: %d (%s) %s\n", what, rc, gm_strerror(rc), gm_errmsg());
    return 1;
}

/* Runs n requests with conc in flight; returns the errors, or -1. */
static long run(gm_conn *c, gm_queue *q, const char *path, long n, int conc) {
    long issued = 0, done = 0, errors = 0;
    gm_ref ref;
    for (; issued < n && issued < conc; issued++) {
        int rc = gm_request(c, "GET", path, NULL, 0, NULL, 0, 0, NULL, &ref);
        if (rc != GM_OK) return die("gm_request", rc), -1;
    }
    gm_event *evs[256];
    while (done < n) {
        int k = gm_queue_poll(q, evs, 256, 10000);
        if (k <= 0) return die("gm_queue_poll (nothing for 10 s)", k), -1;
        for (int i = 0; i < k; i++) {
            gm_event *ev = evs[i];
            int end = 0;
            switch (ev->kind) {
            case GM_EV_RESPONSE:
            case GM_EV_DATA:
                end = ev->fin;
                break;
            case GM_EV_TRAILERS:
                end = 1;
                break;
            case GM_EV_ERROR:
                end = 1;
                errors++;
                if (errors < 5) fprintf(stderr, "w1: error: %s\n", ev->reason);
                break;
            case GM_EV_DOWN:
            case GM_EV_EXIT:
                fprintf(stderr, "w1: connection lost: %s\n", ev->reason);
                return -1;
            }
            if (end) {
                done++;
                if (issued < n) {
                    int rc = gm_request(c, "GET", path, NULL, 0, NULL, 0, 0, NULL, &ref);
                    if (rc != GM_OK) return die("gm_request", rc), -1;
                    issued++;
                }
            }
        }
        gm_events_free(evs, k);
    }
    return errors;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: w1 PORT PATH REQUESTS [CONCURRENCY [WARMUP]]\n");
        return 2;
    }
    int port = atoi(argv[1]);
    const char *path = argv[2];
    long n = atol(argv[3]);
    int conc = argc > 4 ? atoi(argv[4]) : 100;
    long warmup = argc > 5 ? atol(argv[5]) : 1000;

    gm_queue *q = gm_queue_new();
    if (!q) return die("gm_queue_new", 0);
    gm_conn *c = NULL;
    int rc = gm_open(q, "127.0.0.1", port, "{\"protocols\":[\"http2\"],\"retry\":0}", &c);
    if (rc != GM_OK) return die("gm_open", rc);
    if ((rc = gm_await_up(c, 10000, NULL)) != GM_OK) return die("gm_await_up", rc);

    if (warmup > 0 && run(c, q, path, warmup, conc) < 0) return 1;
    double t0 = now();
    long errors = run(c, q, path, n, conc);
    double t1 = now();
    if (errors < 0) return 1;
    printf("%ld %.6f %ld\n", n, t1 - t0, errors);

    gm_close(c);
    gm_event *ev;
    while (gm_queue_poll(q, &ev, 1, 5000) == 1) {
        int exit = ev->kind == GM_EV_EXIT;
        gm_event_free(ev);
        if (exit) break;
    }
    gm_conn_free(c);
    gm_queue_free(q);
    return 0;
}
