/*
 * batch.c — the events of one gm_queue_poll share C memory (issue 16: one
 * malloc per batch instead of one per event). Each event must still live
 * exactly until it is freed, whatever the order and whichever thread frees
 * it: events kept after their batch-mates are freed stay intact (ASan sees
 * a use after free otherwise), and nothing leaks or is freed twice (LSan,
 * ASan).
 */
#include <pthread.h>

#include "util.h"

enum { N_MSGS = 600, N_THREADS = 4 };

/* WebSocket messages i = 0..n-1 echoed by the test server, each "msg i"
 * padded to size(i) bytes with 'a' + i % 26. */
static size_t msg_size(int i) { return i % 7 == 3 ? 9000 : 20 + (size_t)(i % 50); }

static void fill_msg(uint8_t *b, int i) {
    size_t n = msg_size(i);
    memset(b, 'a' + i % 26, n);
    snprintf((char *)b, 16, "msg %d", i);
}

static int msg_ok(const gm_event *ev, int i) {
    uint8_t want[9000];
    fill_msg(want, i);
    return ev->kind == GM_EV_WS && ev->data_len == msg_size(i) && memcmp(ev->data, want, msg_size(i)) == 0 &&
           ev->data[ev->data_len] == 0;
}

/* Takes the N_MSGS echoes in batches of up to 256 into evs (in order). */
static int take_echoes(gm_queue *q, gm_conn **cp, gm_event **evs) {
    gm_conn *c = open_up(q);
    if (!c) return 0;
    *cp = c;
    gm_ref ref = 0;
    CHECK_RC(gm_ws_upgrade(c, "/ws", NULL, 0, NULL, &ref), GM_OK);
    gm_event *up = NULL;
    CHECK_RC(gm_await(c, ref, WAIT_MS, &up), GM_OK);
    if (!up) return 0;
    CHECK_EQ(up->kind, GM_EV_UPGRADE);
    gm_event_free(up);
    static uint8_t bufs[N_MSGS][9000];
    static gm_ws_frame frames[N_MSGS];
    for (int i = 0; i < N_MSGS; i++) {
        fill_msg(bufs[i], i);
        frames[i] = (gm_ws_frame){GM_WS_BINARY, 0, bufs[i], msg_size(i)};
    }
    for (int i = 0; i < N_MSGS; i += 100) CHECK_RC(gm_ws_send(c, ref, frames + i, 100), GM_OK);
    /* All of them queued first, so that the polls return full batches. */
    int64_t end = check_now_ms() + 4 * WAIT_MS;
    while (gm_queue_len(q) < N_MSGS && check_now_ms() < end) msleep(5);
    CHECK_EQ(gm_queue_len(q), N_MSGS);
    int got = 0;
    while (got < N_MSGS) {
        int n = gm_queue_poll(q, evs + got, N_MSGS - got < 256 ? N_MSGS - got : 256, WAIT_MS);
        CHECK(n > 0);
        if (n <= 0) break;
        got += n;
    }
    for (int i = 0; i < got; i++) CHECK(msg_ok(evs[i], i));
    return got;
}

struct freer {
    gm_event **evs;
    int n, stride, first;
};

static void *free_some(void *arg) {
    struct freer *f = arg;
    for (int i = f->first; i < f->n; i += f->stride) gm_event_free(f->evs[i]);
    return NULL;
}

/* Odd events freed one by one from N_THREADS threads at once; the even ones
 * are still intact afterwards, then go back in reverse order, in one
 * gm_events_free with NULLs between them. */
TEST(batch_events_freed_singly_across_threads) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = NULL;
    static gm_event *evs[N_MSGS];
    int got = take_echoes(q, &c, evs);
    REQUIRE(got == N_MSGS);
    static gm_event *odd[N_MSGS / 2];
    for (int i = 0; i < N_MSGS / 2; i++) odd[i] = evs[2 * i + 1];
    pthread_t th[N_THREADS];
    struct freer fs[N_THREADS];
    for (int t = 0; t < N_THREADS; t++) {
        fs[t] = (struct freer){odd, N_MSGS / 2, N_THREADS, t};
        REQUIRE(pthread_create(&th[t], NULL, free_some, &fs[t]) == 0);
    }
    for (int t = 0; t < N_THREADS; t++) pthread_join(th[t], NULL);
    static gm_event *rest[N_MSGS];
    int k = 0;
    for (int i = N_MSGS - 2; i >= 0; i -= 2) {
        CHECK(msg_ok(evs[i], i));
        rest[k++] = evs[i];
        rest[k++] = NULL;
    }
    gm_events_free(rest, k);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

/* A batch freed in one call except for a few events, kept past the
 * connection's close and freed last. */
TEST(batch_event_kept_past_its_batch) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = NULL;
    static gm_event *evs[N_MSGS];
    int got = take_echoes(q, &c, evs);
    REQUIRE(got == N_MSGS);
    int keep[] = {0, 3, 255, 256, 599};
    gm_event *kept[5];
    for (int i = 0; i < 5; i++) {
        kept[i] = evs[keep[i]];
        evs[keep[i]] = NULL;
    }
    gm_events_free(evs, N_MSGS);
    REQUIRE_RC(gm_close(c), GM_OK);
    for (int i = 0; i < 5; i++) CHECK(msg_ok(kept[i], keep[i]));
    gm_events_free(kept, 5);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

static const struct check_case cases[] = {
    CASE(batch_events_freed_singly_across_threads),
    CASE(batch_event_kept_past_its_batch),
};

int main(int argc, char **argv) { return check_main(argc, argv, cases, CHECK_N(cases)); }
