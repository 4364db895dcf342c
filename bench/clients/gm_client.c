/*
 * gm_client.c — gunmetal from C for bench/harness (W1, W2, W3, W5): HTTP/2
 * GETs through the C ABI, events taken with gm_queue_poll in batches of
 * 256 and freed with gm_events_free.
 *
 *   gm_client multi PORT TLS PATH N M WARMUP   one connection, M streams in
 *                                              flight, N GETs (after WARMUP)
 *   gm_client conns PORT TLS PATH N            N connections at once, one
 *                                              GET each (W3)
 *   gm_client idle  PORT TLS PATH N IDLE_S     N connections, one GET each,
 *                                              then IDLE_S seconds idle (W5)
 *
 * TLS is 0 (h2c, prior knowledge) or 1 (TLS, ALPN h2, verify_none: the
 * benchmark's self-signed server). Prints "RESULT n=.. s=.. cpu=.. bytes=.."
 * (cpu: user + sys seconds of the process over the measured part), and for
 * idle also "rss_before_kb=.. rss_after_kb=..". Any error: a message on
 * stderr and exit 1.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "gunmetal.h"
#include "measure.h"

static void die(const char *what, int rc) {
    fprintf(stderr, "gm_client: %s: %d (%s) %s\n", what, rc, gm_strerror(rc), gm_errmsg());
    exit(1);
}

static const char *opts(int tls) {
    return tls ? "{\"protocols\":[\"http2\"],\"retry\":0,\"transport\":\"tls\",\"tls_opts\":{\"verify\":\"verify_none\"}}"
               : "{\"protocols\":[\"http2\"],\"retry\":0}";
}

/* Takes events until `streams` streams have ended; counts body bytes. Each
 * ended stream calls more() (may issue the next request). */
static long long bytes_seen;

static void check(gm_event *ev) {
    switch (ev->kind) {
    case GM_EV_UP:
    case GM_EV_RESPONSE:
        if (ev->kind == GM_EV_RESPONSE && ev->status != 200) {
            fprintf(stderr, "gm_client: status %d\n", ev->status);
            exit(1);
        }
        return;
    case GM_EV_DATA:
    case GM_EV_TRAILERS:
        bytes_seen += (long long)ev->data_len;
        return;
    default:
        fprintf(stderr, "gm_client: event kind %d: %s\n", ev->kind, ev->reason ? ev->reason : "-");
        exit(1);
    }
}

static int ends(const gm_event *ev) {
    return (ev->kind == GM_EV_DATA && ev->fin) || ev->kind == GM_EV_TRAILERS ||
           (ev->kind == GM_EV_RESPONSE && ev->fin);
}

static void multi(gm_queue *q, gm_conn *c, const char *path, long n, int m) {
    long issued = 0, done = 0;
    gm_ref ref;
    int rc;
    for (; issued < n && issued < m; issued++)
        if ((rc = gm_request(c, "GET", path, NULL, 0, NULL, 0, 0, NULL, &ref))) die("gm_request", rc);
    gm_event *evs[256];
    while (done < n) {
        int k = gm_queue_poll(q, evs, 256, 10000);
        if (k <= 0) die("gm_queue_poll (nothing for 10 s)", k);
        for (int i = 0; i < k; i++) {
            check(evs[i]);
            if (!ends(evs[i])) continue;
            done++;
            if (issued < n) {
                if ((rc = gm_request(c, "GET", path, NULL, 0, NULL, 0, 0, NULL, &ref))) die("gm_request", rc);
                issued++;
            }
        }
        gm_events_free(evs, k);
    }
}

/* n connections opened at once, one GET each (sent as soon as each is
 * opened: gunmetal queues it until the connection is up). */
static gm_conn **fan_out(gm_queue *q, int port, int tls, const char *path, long n) {
    gm_conn **cs = calloc((size_t)n, sizeof *cs);
    int rc;
    for (long i = 0; i < n; i++) {
        if ((rc = gm_open(q, "127.0.0.1", port, opts(tls), &cs[i]))) die("gm_open", rc);
        gm_ref ref;
        if ((rc = gm_request(cs[i], "GET", path, NULL, 0, NULL, 0, 0, NULL, &ref))) die("gm_request", rc);
    }
    long done = 0;
    gm_event *evs[256];
    while (done < n) {
        int k = gm_queue_poll(q, evs, 256, 30000);
        if (k <= 0) die("gm_queue_poll (nothing for 30 s)", k);
        for (int i = 0; i < k; i++) {
            check(evs[i]);
            done += ends(evs[i]);
        }
        gm_events_free(evs, k);
    }
    return cs;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: gm_client multi|conns|idle PORT TLS PATH N [M WARMUP | IDLE_S]\n");
        return 2;
    }
    const char *mode = argv[1];
    int port = atoi(argv[2]), tls = atoi(argv[3]);
    const char *path = argv[4];
    long n = atol(argv[5]);
    gm_queue *q = gm_queue_new();
    if (!q) die("gm_queue_new", 0);
    int rc;
    if (strcmp(mode, "multi") == 0) {
        int m = argc > 6 ? atoi(argv[6]) : 100;
        long warm = argc > 7 ? atol(argv[7]) : 1000;
        gm_conn *c = NULL;
        if ((rc = gm_open(q, "127.0.0.1", port, opts(tls), &c))) die("gm_open", rc);
        if ((rc = gm_await_up(c, 10000, NULL))) die("gm_await_up", rc);
        if (warm > 0) multi(q, c, path, warm, m);
        bytes_seen = 0;
        double t0 = now(), c0 = cpu();
        multi(q, c, path, n, m);
        double t1 = now(), c1 = cpu();
        printf("RESULT n=%ld s=%.6f cpu=%.6f bytes=%lld\n", n, t1 - t0, c1 - c0, bytes_seen);
        gm_conn_free(c);
    } else if (strcmp(mode, "conns") == 0) {
        double t0 = now(), c0 = cpu();
        gm_conn **cs = fan_out(q, port, tls, path, n);
        double t1 = now(), c1 = cpu();
        printf("RESULT n=%ld s=%.6f cpu=%.6f bytes=%lld\n", n, t1 - t0, c1 - c0, bytes_seen);
        for (long i = 0; i < n; i++) gm_conn_free(cs[i]);
        free(cs);
    } else if (strcmp(mode, "idle") == 0) {
        int idle = argc > 6 ? atoi(argv[6]) : 2;
        /* The runtime's start-up is not the connections': one connection
         * made and freed first. */
        gm_conn **w = fan_out(q, port, tls, path, 1);
        gm_conn_free(w[0]);
        free(w);
        gm_event *evs[256];
        int k;
        while ((k = gm_queue_poll(q, evs, 256, 0)) > 0) gm_events_free(evs, k);
        long before = rss_kb();
        bytes_seen = 0;
        double t0 = now(), c0 = cpu();
        gm_conn **cs = fan_out(q, port, tls, path, n);
        double t1 = now(), c1 = cpu();
        sleep((unsigned)idle);
        long after = rss_kb();
        printf("RESULT n=%ld s=%.6f cpu=%.6f bytes=%lld rss_before_kb=%ld rss_after_kb=%ld\n", n, t1 - t0, c1 - c0,
               bytes_seen, before, after);
        fflush(stdout);
        for (long i = 0; i < n; i++) gm_conn_free(cs[i]);
        free(cs);
    } else {
        fprintf(stderr, "gm_client: unknown mode %s\n", mode);
        return 2;
    }
    gm_queue_free(q);
    return 0;
}
