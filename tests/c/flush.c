/*
 * flush.c — gm_flush (Gun's flush/1): dropping a stream's or a connection's
 * waiting events releases them (the connection reads on, its handle
 * settles), keeps the EXIT, and refuses bad arguments.
 */
#include "util.h"

/* A body twice the read budget, flushed as it comes: the pipelined request
 * behind it completes (without the release the connection stops reading). */
TEST(flush_stream_releases_read_budget) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    gm_ref a = 0, b = 0;
    REQUIRE_RC(gm_request(c, "GET", "/bytes/33554432", NULL, 0, NULL, 0, 0, NULL, &a), GM_OK);
    REQUIRE_RC(gm_request(c, "GET", "/bytes/10", NULL, 0, NULL, 0, 0, NULL, &b), GM_OK);
    long dropped = 0;
    gm_event *ev = NULL;
    int64_t end = check_now_ms() + 8 * WAIT_MS;
    for (;;) {
        int n = gm_flush(q, NULL, a);
        CHECK(n >= 0);
        if (n > 0) dropped += n;
        int rc = gm_await(c, b, 20, &ev);
        if (rc == GM_OK) break;
        CHECK_RC(rc, GM_ETIMEOUT);
        if (rc != GM_ETIMEOUT || check_now_ms() > end) {
            fprintf(stderr, "    stream b never came; %ld events of a dropped\n", dropped);
            break;
        }
    }
    REQUIRE(ev != NULL);
    CHECK_EQ(ev->kind, GM_EV_RESPONSE);
    CHECK_EQ(ev->status, 200);
    gm_event_free(ev);
    CHECK(dropped >= 2);
    CHECK(gm_flush(q, NULL, a) >= 0); /* the rest of a, queued ahead of b's response */
    ev = NULL;
    CHECK_RC(gm_await_body(c, b, WAIT_MS, &ev), GM_OK);
    if (ev) CHECK_EQ(ev->data_len, 10);
    gm_event_free(ev);
    CHECK_EQ(gm_queue_len(q), 0);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

/* Flushing a connection drops its events, not another's; its EXIT stays,
 * and its handle is released once that EXIT is freed (the harness checks
 * the live handle count after the case). */
TEST(flush_conn_keeps_exit) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c1 = NULL;
    REQUIRE_RC(gm_open(q, "127.0.0.1", http_port(), NULL, &c1), GM_OK);
    gm_ref r1 = 0;
    REQUIRE_RC(gm_request(c1, "GET", "/bytes/100", NULL, 0, NULL, 0, 0, NULL, &r1), GM_OK);
    gm_conn *c2 = open_up(q);
    REQUIRE(c2 != NULL);
    /* Once r1 has ended, c1's UP, RESPONSE and DATA are in the queue. */
    int64_t end = check_now_ms() + WAIT_MS;
    gm_event *info = NULL;
    int rc;
    while ((rc = gm_stream_info(c1, r1, &info)) == GM_OK && check_now_ms() < end) {
        gm_event_free(info);
        info = NULL;
        msleep(5);
    }
    CHECK_RC(rc, GM_ENOSTREAM);
    int n = gm_flush(q, c1, 0);
    CHECK(n >= 3);
    CHECK_EQ(gm_queue_len(q), 0);
    CHECK_EQ(fd_readable(gm_queue_fd(q), 0), 0);
    /* c2 is untouched and works. */
    gm_ref r2 = 0;
    REQUIRE_RC(gm_request(c2, "GET", "/bytes/7", NULL, 0, NULL, 0, 0, NULL, &r2), GM_OK);
    gm_event *ev = NULL;
    CHECK_RC(gm_await_body(c2, r2, WAIT_MS, &ev), GM_OK);
    gm_event_free(ev);
    gm_conn_free(c1); /* closes it and waits for its EXIT */
    CHECK_EQ(gm_flush(q, c1, 0), GM_ECLOSED);  /* a released handle */
    CHECK_RC(gm_flush(q, NULL, 0), GM_EINVAL); /* neither a connection nor a ref */
    CHECK_RC(gm_flush(NULL, c2, 0), GM_EINVAL);
    ev = next_event(q, WAIT_MS);
    REQUIRE(ev != NULL);
    CHECK_EQ(ev->kind, GM_EV_EXIT); /* flush kept it */
    gm_event_free(ev);
    CHECK(close_and_free(q, c2));
    gm_queue_free(q);
}

static const struct check_case cases[] = {
    CASE(flush_stream_releases_read_budget),
    CASE(flush_conn_keeps_exit),
};

int main(int argc, char **argv) { return check_main(argc, argv, cases, CHECK_N(cases)); }
