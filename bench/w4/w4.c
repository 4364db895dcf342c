/*
 * w4.c — W4 for gunmetal from C: one WebSocket connection (gm_ws_upgrade),
 * 100-byte binary messages echoed by the server, a fixed number in flight.
 * Events are taken in batches (gm_queue_poll, 256 at a time) and each batch
 * of echoes is answered with one gm_ws_send of as many frames. Prints one
 * line: "MSGS SECONDS CPU_SECONDS" (CPU: user + sys of the whole process
 * over the measured window).
 *
 *   w4 PORT [SECONDS [INFLIGHT [SIZE [WARMUP]]]]    (5 100 100 1)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "gunmetal.h"
#include "../clients/measure.h"

/* CPU seconds (user + sys) of this process so far: the engine's threads
 * included, which is what a host pays per message. */
static int die(const char *what, int rc) {
    fprintf(stderr, "w4: %s: %d (%s) %s\n", what, rc, gm_strerror(rc), gm_errmsg());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s PORT [SECONDS [INFLIGHT [SIZE [WARMUP]]]]\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    double seconds = argc > 2 ? atof(argv[2]) : 5;
    int inflight = argc > 3 ? atoi(argv[3]) : 100;
    size_t size = argc > 4 ? (size_t)atol(argv[4]) : 100;
    double warmup = argc > 5 ? atof(argv[5]) : 1;
    if (inflight < 1 || inflight > 100000 || size > (1u << 20)) return 2;

    gm_queue *q = gm_queue_new();
    if (!q) return die("gm_queue_new", -1);
    gm_conn *c = NULL;
    int rc = gm_open(q, "127.0.0.1", port, "{\"retry\":0}", &c);
    if (rc) return die("gm_open", rc);
    if ((rc = gm_await_up(c, 5000, NULL))) return die("gm_await_up", rc);
    gm_ref ref = 0;
    if ((rc = gm_ws_upgrade(c, "/ws", NULL, 0, NULL, &ref))) return die("gm_ws_upgrade", rc);
    gm_event *ev = NULL;
    if ((rc = gm_await(c, ref, 5000, &ev))) return die("gm_await", rc);
    if (ev->kind != GM_EV_UPGRADE) {
        fprintf(stderr, "w4: expected an UPGRADE, got event kind %d (status %d)\n", ev->kind, ev->status);
        return 1;
    }
    gm_event_free(ev);

    uint8_t *payload = malloc(size ? size : 1);
    for (size_t i = 0; i < size; i++) payload[i] = (uint8_t)('a' + i % 26);
    enum { BATCH = 256 };
    int cap = inflight > BATCH ? inflight : BATCH;
    gm_ws_frame *frames = malloc(sizeof *frames * (size_t)cap);
    for (int i = 0; i < cap; i++) frames[i] = (gm_ws_frame){GM_WS_BINARY, 0, payload, size};

    if ((rc = gm_ws_send(c, ref, frames, (size_t)inflight))) return die("gm_ws_send", rc);
    long long got = 0, base = 0;
    double start = now(), t0 = 0, el = 0, c0 = 0;
    int measuring = 0, stopping = 0, outstanding = inflight;
    gm_event *evs[BATCH];
    while (outstanding > 0) {
        int n = gm_queue_poll(q, evs, BATCH, 5000);
        if (n < 0) return die("gm_queue_poll", n);
        if (n == 0) {
            fprintf(stderr, "w4: no event for 5 s (%d in flight)\n", outstanding);
            return 1;
        }
        int echoes = 0;
        for (int i = 0; i < n; i++) {
            if (evs[i]->kind != GM_EV_WS || evs[i]->ws_opcode != GM_WS_BINARY || evs[i]->data_len != size) {
                fprintf(stderr, "w4: unexpected event kind %d op %d reason %s\n", evs[i]->kind,
                        evs[i]->ws_opcode, evs[i]->reason ? evs[i]->reason : "-");
                return 1;
            }
            echoes++;
        }
        gm_events_free(evs, n);
        got += echoes;
        outstanding -= echoes;
        double t = now();
        if (!measuring && t - start >= warmup) {
            measuring = 1;
            t0 = t;
            c0 = cpu();
            base = got;
        }
        if (measuring && !stopping && t - t0 >= seconds) {
            stopping = 1;
            el = t - t0;
            printf("%lld %.6f %.6f\n", got - base, el, cpu() - c0);
            fflush(stdout);
        }
        if (!stopping && echoes > 0) {
            if ((rc = gm_ws_send(c, ref, frames, (size_t)echoes))) return die("gm_ws_send", rc);
            outstanding += echoes;
        }
    }
    gm_close(c);
    gm_conn_free(c);
    gm_queue_free(q);
    free(frames);
    free(payload);
    return 0;
}
