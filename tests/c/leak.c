/*
 * leak.c — handles are released exactly when the header says: the test-only
 * export gm__live_handles() counts queues and connections not yet released
 * (a connection handle stays while an event pins it). After everything is
 * freed it is back to 0. LeakSanitizer checks the C side at exit.
 */
#include "util.h"

TEST(starts_at_zero) {
    /* run.sh runs each case in a fresh process. */
    CHECK_EQ(gm__live_handles(), 0);
}

TEST(handles_counted_and_released) {
    int64_t l0 = gm__live_handles();
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    CHECK_EQ(gm__live_handles(), l0 + 1);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    CHECK_EQ(gm__live_handles(), l0 + 2);
    /* gm_close does not release the handle; gm_conn_free does. */
    CHECK_RC(gm_close(c), GM_OK);
    gm_event *ev = wait_kind(q, c, GM_EV_EXIT, WAIT_MS, NULL);
    CHECK(ev != NULL);
    CHECK_EQ(gm__live_handles(), l0 + 2);
    gm_event_free(ev);
    CHECK_EQ(gm__live_handles(), l0 + 2);
    gm_conn_free(c);
    CHECK_EQ(gm__live_handles(), l0 + 1);
    gm_queue_free(q);
    CHECK_EQ(gm__live_handles(), l0);
}

/* An event taken before gm_conn_free pins the handle until it is freed. */
TEST(event_pins_connection_handle) {
    int64_t l0 = gm__live_handles();
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = NULL;
    REQUIRE_RC(gm_open(q, "127.0.0.1", http_port(), NULL, &c), GM_OK);
    gm_event *up = next_event(q, WAIT_MS);
    REQUIRE(up != NULL);
    CHECK_EQ(up->kind, GM_EV_UP);
    gm_event *info = NULL;
    CHECK_RC(gm_info(c, &info), GM_OK);
    gm_conn_free(c);
    CHECK_EQ(gm__live_handles(), l0 + 2); /* pinned by two events */
    CHECK(up->conn == c && info && info->conn == c);
    /* Released, but still a handle that answers. */
    gm_event *x = NULL;
    CHECK_FAILS(gm_info(up->conn, &x), GM_ECLOSED);
    CHECK(x == NULL);
    gm_ref ref = 0;
    CHECK_FAILS(gm_request(up->conn, "GET", "/", NULL, 0, NULL, 0, 0, NULL, &ref), GM_ECLOSED);
    int rc = gm_close(up->conn);
    CHECK(rc == GM_OK || rc == GM_ECLOSED);
    gm_event_free(up);
    CHECK_EQ(gm__live_handles(), l0 + 2);
    gm_event_free(info);
    CHECK_EQ(gm__live_handles(), l0 + 2); /* the EXIT, still queued, pins it too */
    drain(q, 200);
    CHECK_EQ(gm__live_handles(), l0 + 1);
    gm_queue_free(q);
    CHECK_EQ(gm__live_handles(), l0);
}

/* Every way of ending, many times over; back to zero. */
TEST(churn_back_to_zero) {
    int64_t l0 = gm__live_handles();
    for (int round = 0; round < 10; round++) {
        gm_queue *q = gm_queue_new(), *q2 = gm_queue_new();
        REQUIRE(q != NULL && q2 != NULL);
        gm_conn *c[5] = {NULL};
        for (int i = 0; i < 5; i++) CHECK_RC(gm_open(q, "127.0.0.1", http_port(), NULL, &c[i]), GM_OK);
        for (int i = 0; i < 5; i++) {
            gm_ref ref = 0;
            gm_req_opts o = {.size = sizeof o, .reply_to = i == 4 ? q2 : NULL};
            CHECK_RC(gm_request(c[i], "GET", "/bytes/100", NULL, 0, NULL, 0, 0, &o, &ref), GM_OK);
        }
        CHECK_RC(gm_await_up(c[0], WAIT_MS, NULL), GM_OK);
        /* 0: closed and freed after its EXIT */
        CHECK(close_and_free(q, c[0]));
        /* 1: freed without close, events left in the queue */
        gm_conn_free(c[1]);
        /* 2: shut down */
        CHECK_RC(gm_shutdown(c[2]), GM_OK);
        /* 3, 4: left open; the queue's free closes them */
        gm_event *evs[32];
        int k = gm_queue_poll(q, evs, 32, 100);
        if (k > 0) gm_events_free(evs, k);
        k = gm_queue_poll(q2, evs, 32, 100);
        if (k > 0) gm_events_free(evs, k);
        gm_queue_free(q);
        gm_queue_free(q2);
        for (int i = 2; i < 5; i++) gm_conn_free(c[i]);
        CHECK_EQ(gm__live_handles(), l0);
    }
    CHECK_EQ(gm__live_handles(), l0);
}

/* Events held past the free of their queue and connection. */
TEST(events_outlive_queue_and_connection) {
    int64_t l0 = gm__live_handles();
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    gm_ref ref = 0;
    REQUIRE_RC(gm_request(c, "GET", "/trailers", NULL, 0, NULL, 0, 0, NULL, &ref), GM_OK);
    gm_event *evs[8];
    int n = 0;
    stream s;
    stream_init(&s, ref);
    while (!s.done && n < 8) {
        gm_event *ev = NULL;
        if (gm_await(c, ref, WAIT_MS, &ev) != GM_OK) break;
        stream_add(&s, ev);
        evs[n++] = ev;
    }
    CHECK(s.done);
    stream_free(&s);
    gm_queue_free(q);
    gm_conn_free(c);
    /* Queue gone; the connection handle is pinned by the events. */
    CHECK_EQ(gm__live_handles(), l0 + 1);
    int bytes = 0;
    for (int i = 0; i < n; i++) {
        CHECK(evs[i]->conn == c);
        bytes += (int)evs[i]->data_len;
        for (size_t h = 0; h < evs[i]->n_headers; h++)
            bytes += (int)(strlen(evs[i]->headers[h].name) + strlen(evs[i]->headers[h].value));
    }
    CHECK(bytes > 0);
    gm_events_free(evs, n);
    CHECK_EQ(gm__live_handles(), l0);
}

static const struct check_case cases[] = {
    CASE(starts_at_zero),
    CASE(handles_counted_and_released),
    CASE(event_pins_connection_handle),
    CASE(churn_back_to_zero),
    CASE(events_outlive_queue_and_connection),
};

int main(int argc, char **argv) { return check_main(argc, argv, cases, CHECK_N(cases)); }
