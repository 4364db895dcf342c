/*
 * w6.c — W6: how fast a C host drains a pile of queued events. It makes the
 * connections queue N events without taking any (HTTP/2: N/2 GETs of a
 * 100-byte body, a RESPONSE and a DATA fin each, 200 on each of N/400
 * connections: a stream's slot is given back when the host frees its last
 * event, so one connection holds at most its server's stream limit;
 * WebSocket: N 100-byte echoes on one connection), waits until all N are in the queue (gm_queue_len), then times
 * taking them with gm_queue_poll(BATCH) + gm_events_free. Repeats ROUNDS
 * times on the same connection and prints one line per round:
 * "EVENTS SECONDS CPU_SECONDS" (CPU: user + sys of the process over the drain).
 *
 *   w6 PORT h2|ws EVENTS BATCH [ROUNDS]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "gunmetal.h"
#include "../clients/measure.h"

static int die(const char *what, int rc) {
    fprintf(stderr, "w6: %s: %d (%s) %s\n", what, rc, gm_strerror(rc), gm_errmsg());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: w6 PORT h2|ws EVENTS BATCH [ROUNDS]\n");
        return 2;
    }
    int port = atoi(argv[1]);
    int ws = strcmp(argv[2], "ws") == 0;
    long n = atol(argv[3]);
    int batch = atoi(argv[4]);
    int rounds = argc > 5 ? atoi(argv[5]) : 3;
    if (n < 2 || batch < 1 || batch > 65536 || rounds < 1) return 2;
    if (!ws) n = (n + 399) / 400 * 400;
    int nconns = ws ? 1 : (int)(n / 400);

    gm_queue *q = gm_queue_new();
    if (!q) return die("gm_queue_new", -1);
    gm_conn **cs = calloc((size_t)nconns, sizeof *cs);
    int rc;
    for (int i = 0; i < nconns; i++) {
        rc = gm_open(q, "127.0.0.1", port, ws ? "{\"retry\":0}" : "{\"protocols\":[\"http2\"],\"retry\":0}", &cs[i]);
        if (rc) return die("gm_open", rc);
    }
    for (int i = 0; i < nconns; i++)
        if ((rc = gm_await_up(cs[i], 5000, NULL))) return die("gm_await_up", rc);
    {
        /* the UP events */
        gm_event *ev;
        for (int i = 0; i < nconns; i++)
            if (gm_queue_poll(q, &ev, 1, 0) == 1) gm_event_free(ev);
    }
    gm_conn *c = cs[0];
    gm_ref ref = 0;
    uint8_t payload[100];
    memset(payload, 'a', sizeof payload);
    gm_ws_frame fr[256];
    for (int i = 0; i < 256; i++) fr[i] = (gm_ws_frame){GM_WS_BINARY, 0, payload, sizeof payload};
    if (ws) {
        if ((rc = gm_ws_upgrade(c, "/ws", NULL, 0, NULL, &ref))) return die("gm_ws_upgrade", rc);
        gm_event *ev = NULL;
        if ((rc = gm_await(c, ref, 5000, &ev))) return die("gm_await", rc);
        if (ev->kind != GM_EV_UPGRADE) return die("upgrade refused", ev->status);
        gm_event_free(ev);
    }
    gm_event **evs = malloc(sizeof *evs * (size_t)batch);
    for (int r = 0; r < rounds; r++) {
        if (ws) {
            for (long i = 0; i < n; i += 256) {
                size_t k = n - i < 256 ? (size_t)(n - i) : 256;
                if ((rc = gm_ws_send(c, ref, fr, k))) return die("gm_ws_send", rc);
            }
        } else {
            for (long i = 0; i < n / 2; i++) {
                gm_ref r2;
                if ((rc = gm_request(cs[i % nconns], "GET", "/bytes/100", NULL, 0, NULL, 0, 0, NULL, &r2)))
                    return die("gm_request", rc);
            }
        }
        double wait0 = now();
        while (gm_queue_len(q) < n) {
            if (now() - wait0 > (getenv("W6_WAIT") ? atof(getenv("W6_WAIT")) : 60)) {
                fprintf(stderr, "w6: only %d of %ld events queued after 60 s\n", gm_queue_len(q), n);
                return 1;
            }
            usleep(2000);
        }
        long got = 0;
        double t0 = now(), c0 = cpu();
        while (got < n) {
            int k = gm_queue_poll(q, evs, batch, 0);
            if (k < 0) return die("gm_queue_poll", k);
            if (k == 0) {
                fprintf(stderr, "w6: queue empty after %ld of %ld events\n", got, n);
                return 1;
            }
            for (int i = 0; i < k; i++) {
                int kind = evs[i]->kind;
                if (kind != GM_EV_RESPONSE && kind != GM_EV_DATA && kind != GM_EV_WS) {
                    fprintf(stderr, "w6: unexpected event kind %d: %s\n", kind, evs[i]->reason ? evs[i]->reason : "-");
                    return 1;
                }
            }
            gm_events_free(evs, k);
            got += k;
        }
        double t1 = now(), c1 = cpu();
        printf("%ld %.6f %.6f\n", got, t1 - t0, c1 - c0);
        fflush(stdout);
    }
    for (int i = 0; i < nconns; i++) {
        gm_close(cs[i]);
        gm_conn_free(cs[i]);
    }
    gm_queue_free(q);
    free(cs);
    free(evs);
    return 0;
}
