/*
 * lifecycle.c — a connection's life: open, UP, close/shutdown, EXIT, retries,
 * owners, handles released with events still around, info.
 */
#include "util.h"

/* Takes every event of q until c's EXIT (within timeout_ms) and returns the
 * EXIT; kinds seen before it are counted in kinds[kind] (kinds has room for
 * 16) when kinds is not NULL. */
static gm_event *until_exit(gm_queue *q, gm_conn *c, int timeout_ms, int *kinds) {
    int64_t end = check_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = end - check_now_ms();
        if (left < 0) return NULL;
        gm_event *ev = next_event(q, (int)left);
        if (!ev) return NULL;
        if (ev->kind == GM_EV_EXIT && ev->conn == c) return ev;
        if (kinds && ev->kind < 16) kinds[ev->kind]++;
        gm_event_free(ev);
    }
}

TEST(open_then_await_up_gives_protocol) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = NULL;
    REQUIRE_RC(gm_open(q, "127.0.0.1", http_port(), NULL, &c), GM_OK);
    REQUIRE(c != NULL);
    const char *proto = NULL;
    CHECK_RC(gm_await_up(c, WAIT_MS, &proto), GM_OK);
    CHECK_STR(proto, "http");
    /* await_up took the UP: nothing else is queued. */
    CHECK_EQ(gm_queue_len(q), 0);
    CHECK_EQ(get_body(c, "/bytes/10", NULL, NULL), 200);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

/* The UP event itself, taken with gm_queue_poll. */
TEST(up_event_fields) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = NULL;
    REQUIRE_RC(gm_open(q, "localhost", http_port(), NULL, &c), GM_OK);
    gm_event *ev = next_event(q, WAIT_MS);
    REQUIRE(ev != NULL);
    CHECK_EQ(ev->kind, GM_EV_UP);
    CHECK_EQ(ev->size, sizeof(gm_event));
    CHECK(ev->conn == c);
    CHECK_EQ(ev->ref, 0);
    CHECK_STR(ev->protocol, "http");
    CHECK(ev->reason == NULL);
    CHECK(ev->data == NULL && ev->data_len == 0);
    CHECK(ev->killed == NULL && ev->n_killed == 0);
    gm_event_free(ev);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

/* Requests made before UP wait and go out on UP, after the UP event. */
TEST(request_before_up_is_sent_on_up) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = NULL;
    REQUIRE_RC(gm_open(q, "127.0.0.1", http_port(), NULL, &c), GM_OK);
    gm_ref ref = 0;
    REQUIRE_RC(gm_request(c, "GET", "/bytes/20", NULL, 0, NULL, 0, 0, NULL, &ref), GM_OK);
    CHECK(ref != 0);
    gm_event *ev = next_event(q, WAIT_MS);
    REQUIRE(ev != NULL);
    CHECK_EQ(ev->kind, GM_EV_UP);
    gm_event_free(ev);
    stream s;
    stream_init(&s, ref);
    CHECK(collect(q, &s, 1, WAIT_MS, NULL));
    CHECK_EQ(s.status, 200);
    CHECK_EQ(s.body_len, 20);
    stream_free(&s);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

TEST(close_twice_one_exit) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    CHECK_RC(gm_close(c), GM_OK);
    CHECK_RC(gm_close(c), GM_OK);
    int kinds[16] = {0};
    gm_event *ev = until_exit(q, c, WAIT_MS, kinds);
    REQUIRE(ev != NULL);
    CHECK_STR(ev->reason, "shutdown");
    CHECK_EQ(ev->ref, 0);
    CHECK(ev->conn == c);
    CHECK(ev->protocol == NULL && ev->data == NULL && ev->headers == NULL && ev->killed == NULL);
    gm_event_free(ev);
    CHECK_EQ(kinds[GM_EV_DOWN], 0); /* close gives no DOWN */
    CHECK_RC(gm_close(c), GM_OK);   /* after EXIT too */
    /* EXIT was the last event: nothing more comes. */
    ev = next_event(q, 200);
    CHECK(ev == NULL);
    gm_event_free(ev);
    gm_conn_free(c);
    gm_queue_free(q);
}

static void check_closed_calls(gm_queue *q2, gm_conn *c, gm_ref ref) {
    gm_ref r = 0;
    CHECK_FAILS(gm_request(c, "GET", "/count", NULL, 0, NULL, 0, 0, NULL, &r), GM_ECLOSED);
    CHECK(r == 0);
    CHECK_FAILS(gm_data(c, ref, "x", 1, 1), GM_ECLOSED);
    CHECK_FAILS(gm_cancel(c, ref), GM_ECLOSED);
    CHECK_FAILS(gm_update_flow(c, ref, 1), GM_ECLOSED);
    CHECK_FAILS(gm_set_owner(c, q2), GM_ECLOSED);
    CHECK_FAILS(gm_shutdown(c), GM_ECLOSED);
    CHECK_RC(gm_close(c), GM_OK);
}

TEST(use_after_close) {
    gm_queue *q = gm_queue_new(), *q2 = gm_queue_new();
    REQUIRE(q != NULL && q2 != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    gm_ref ref = 0;
    REQUIRE_RC(gm_request(c, "POST", "/echo", NULL, 0, NULL, 0, GM_REQ_STREAM, NULL, &ref), GM_OK);
    CHECK_RC(gm_data(c, ref, "abc", 3, 0), GM_OK);
    CHECK_RC(gm_close(c), GM_OK);
    /* Right after gm_close, before the EXIT is taken. */
    check_closed_calls(q2, c, ref);
    /* gm_await_up / gm_await answer GM_ECLOSED and leave the EXIT queued. */
    CHECK_FAILS(gm_await_up(c, WAIT_MS, NULL), GM_ECLOSED);
    gm_event *ev = NULL;
    CHECK_FAILS(gm_await(c, ref, WAIT_MS, &ev), GM_ECLOSED);
    CHECK(ev == NULL);
    CHECK_FAILS(gm_await_body(c, ref, WAIT_MS, &ev), GM_ECLOSED);
    CHECK(ev == NULL);
    /* gm_info still answers, gm_stream_info has no stream to show. */
    CHECK_RC(gm_info(c, &ev), GM_OK);
    gm_event_free(ev);
    ev = NULL;
    int rc = gm_stream_info(c, ref, &ev);
    CHECK(rc == GM_ECLOSED || rc == GM_ENOSTREAM);
    gm_event_free(ev);
    int kinds[16] = {0};
    ev = until_exit(q, c, WAIT_MS, kinds);
    REQUIRE(ev != NULL);
    CHECK_STR(ev->reason, "shutdown");
    gm_event_free(ev);
    CHECK_EQ(kinds[GM_EV_DOWN] + kinds[GM_EV_RESPONSE] + kinds[GM_EV_DATA], 0);
    /* And after the EXIT was taken. */
    check_closed_calls(q2, c, ref);
    /* "GM_ECLOSED when the connection exited", also once its EXIT was
     * taken: an UP or a stream event can never come any more. */
    CHECK_FAILS(gm_await_up(c, 100, NULL), GM_ECLOSED);
    ev = NULL;
    CHECK_FAILS(gm_await(c, ref, 100, &ev), GM_ECLOSED);
    CHECK(ev == NULL);
    CHECK_FAILS(gm_await_body(c, ref, 100, &ev), GM_ECLOSED);
    CHECK(ev == NULL);
    ev = NULL;
    CHECK_RC(gm_info(c, &ev), GM_OK);
    CHECK_STR(ev_header(ev, "state"), "closed");
    gm_event_free(ev);
    CHECK_EQ(gm_queue_len(q2), 0);
    gm_conn_free(c);
    gm_queue_free(q);
    gm_queue_free(q2);
}

/* The EXIT came from retries running out, not from gm_close. */
TEST(use_after_exit) {
    gm_queue *q = gm_queue_new(), *q2 = gm_queue_new();
    REQUIRE(q != NULL && q2 != NULL);
    gm_conn *c = NULL;
    REQUIRE_RC(gm_open(q, "127.0.0.1", refused_port(), "{\"retry\":0}", &c), GM_OK);
    gm_event *ev = until_exit(q, c, WAIT_MS, NULL);
    REQUIRE(ev != NULL);
    gm_event_free(ev);
    check_closed_calls(q2, c, 1);
    gm_conn_free(c);
    gm_queue_free(q);
    gm_queue_free(q2);
}

TEST(refused_no_retry_exits_econnrefused) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = NULL;
    int64_t t0 = check_now_ms();
    REQUIRE_RC(gm_open(q, "127.0.0.1", refused_port(), "{\"retry\":0}", &c), GM_OK);
    /* await_up sees the EXIT, answers GM_ECLOSED and leaves it queued. */
    CHECK_FAILS(gm_await_up(c, WAIT_MS, NULL), GM_ECLOSED);
    gm_event *ev = next_event(q, WAIT_MS);
    REQUIRE(ev != NULL);
    CHECK_EQ(ev->kind, GM_EV_EXIT); /* never up: no UP, no DOWN, only EXIT */
    CHECK(ev->conn == c);
    CHECK_PREFIX(ev->reason, "econnrefused");
    gm_event_free(ev);
    CHECK(check_now_ms() - t0 < 2000);
    ev = next_event(q, 100);
    CHECK(ev == NULL);
    gm_event_free(ev);
    gm_conn_free(c);
    gm_queue_free(q);
}

/* retry 2 is 3 attempts: the first retry at once, the second after
 * retry_timeout; then EXIT with the last failure. */
TEST(refused_retries_then_exit) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = NULL;
    int64_t t0 = check_now_ms();
    REQUIRE_RC(gm_open(q, "127.0.0.1", refused_port(), "{\"retry\":2,\"retry_timeout\":200}", &c), GM_OK);
    int kinds[16] = {0};
    gm_event *ev = until_exit(q, c, WAIT_MS, kinds);
    int64_t ms = check_now_ms() - t0;
    REQUIRE(ev != NULL);
    CHECK_PREFIX(ev->reason, "econnrefused");
    gm_event_free(ev);
    for (int k = 0; k < 16; k++) CHECK_EQ(kinds[k], 0);
    /* One wait of 200 ms (the first retry is immediate), not two. */
    fprintf(stderr, "    retry 2 / retry_timeout 200: EXIT after %" PRId64 " ms\n", ms);
    CHECK(ms >= 190);
    CHECK(ms < 390);
    gm_conn_free(c);

    /* retry 0: no wait at all. */
    t0 = check_now_ms();
    REQUIRE_RC(gm_open(q, "127.0.0.1", refused_port(), "{\"retry\":0,\"retry_timeout\":200}", &c), GM_OK);
    ev = until_exit(q, c, WAIT_MS, NULL);
    ms = check_now_ms() - t0;
    REQUIRE(ev != NULL);
    gm_event_free(ev);
    CHECK(ms < 190);
    gm_conn_free(c);
    gm_queue_free(q);
}

/* While waiting to retry, the connection is not up: await_up times out. */
TEST(await_up_timeout) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    /* An up connection has no second UP coming. */
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    int64_t t0 = check_now_ms();
    CHECK_FAILS(gm_await_up(c, 150, NULL), GM_ETIMEOUT);
    CHECK(check_now_ms() - t0 >= 140);
    CHECK_FAILS(gm_await_up(c, 0, NULL), GM_ETIMEOUT);
    CHECK(close_and_free(q, c));

    /* A refused connection waiting 5 s before its second retry. */
    c = NULL;
    REQUIRE_RC(gm_open(q, "127.0.0.1", refused_port(), "{\"retry\":2,\"retry_timeout\":5000}", &c), GM_OK);
    t0 = check_now_ms();
    CHECK_FAILS(gm_await_up(c, 300, NULL), GM_ETIMEOUT);
    CHECK(check_now_ms() - t0 >= 290);
    gm_event *ev = NULL;
    CHECK_RC(gm_info(c, &ev), GM_OK);
    CHECK_STR(ev_header(ev, "state"), "not_connected");
    gm_event_free(ev);
    CHECK_EQ(gm_queue_len(q), 0);
    /* gm_close interrupts the wait: EXIT "shutdown" at once. */
    t0 = check_now_ms();
    CHECK_RC(gm_close(c), GM_OK);
    ev = until_exit(q, c, WAIT_MS, NULL);
    CHECK(ev != NULL);
    if (ev) CHECK_STR(ev->reason, "shutdown");
    gm_event_free(ev);
    CHECK(check_now_ms() - t0 < 1000);
    gm_conn_free(c);
    gm_queue_free(q);
}

/* gm_conn_free while events are still queued: the events still carry the
 * handle, comparable with the host's, until they are freed. */
TEST(conn_free_with_events_queued) {
    gm_queue *q = gm_queue_new(), *q2 = gm_queue_new();
    REQUIRE(q != NULL && q2 != NULL);
    int64_t live0 = gm__live_handles();
    gm_conn *c = NULL;
    REQUIRE_RC(gm_open(q, "127.0.0.1", http_port(), NULL, &c), GM_OK);
    CHECK_EQ(gm__live_handles(), live0 + 1);
    gm_ref a = 0, b = 0;
    REQUIRE_RC(gm_request(c, "GET", "/bytes/10", NULL, 0, NULL, 0, 0, NULL, &a), GM_OK);
    /* b's answer comes after a's: once b is done, a's events are in q. */
    gm_req_opts o = {.size = sizeof o, .reply_to = q2};
    REQUIRE_RC(gm_request(c, "GET", "/bytes/1", NULL, 0, NULL, 0, 0, &o, &b), GM_OK);
    stream sb;
    stream_init(&sb, b);
    CHECK(collect(q2, &sb, 1, WAIT_MS, NULL));
    stream_free(&sb);
    CHECK(gm_queue_len(q) >= 3); /* UP, RESPONSE, DATA */

    gm_conn_free(c);
    gm_event *evs[16];
    int n = 0, k, got_up = 0, got_exit = 0, got_data = 0;
    int64_t end = check_now_ms() + WAIT_MS;
    while (!got_exit && n < 16 && check_now_ms() < end && (k = gm_queue_poll(q, evs + n, 16 - n, 1000)) > 0) {
        for (int i = n; i < n + k; i++) {
            CHECK(evs[i]->conn == c);
            got_up += evs[i]->kind == GM_EV_UP;
            got_data += evs[i]->kind == GM_EV_DATA && evs[i]->ref == a;
            got_exit += evs[i]->kind == GM_EV_EXIT;
        }
        n += k;
    }
    CHECK_EQ(got_up, 1);
    CHECK_EQ(got_data, 1);
    CHECK_EQ(got_exit, 1);
    /* The events pin the handle: it is not released yet... */
    CHECK_EQ(gm__live_handles(), live0 + 1);
    /* ...and using it answers an error, not a crash. */
    gm_event *info = NULL;
    int rc = gm_info(evs[0]->conn, &info);
    CHECK(rc == GM_ECLOSED || rc == GM_EINVAL);
    gm_event_free(info);
    rc = gm_request(evs[0]->conn, "GET", "/", NULL, 0, NULL, 0, 0, NULL, &a);
    CHECK(rc == GM_ECLOSED || rc == GM_EINVAL);
    /* Freeing them one by one; the last one releases the handle. */
    for (int i = 0; i < n; i++) gm_event_free(evs[i]);
    CHECK_EQ(gm__live_handles(), live0);
    gm_queue_free(q);
    gm_queue_free(q2);
}

/* gm_conn_free of an up connection with an empty queue: its EXIT still
 * comes, and that event's conn is the (pinned) handle. */
TEST(conn_free_then_exit_event_pins_handle) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    int64_t live0 = gm__live_handles();
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    CHECK_EQ(gm_queue_len(q), 0);
    gm_conn_free(c);
    gm_event *ev = next_event(q, WAIT_MS);
    REQUIRE(ev != NULL);
    CHECK_EQ(ev->kind, GM_EV_EXIT);
    CHECK(ev->conn == c);
    CHECK_STR(ev->reason, "shutdown");
    /* The event holds a reference: the handle is not released while it lives. */
    CHECK_EQ(gm__live_handles(), live0 + 1);
    gm_event_free(ev);
    CHECK_EQ(gm__live_handles(), live0);
    gm_queue_free(q);
}

TEST(queue_free_with_connections_open) {
    gm_queue *q = gm_queue_new(), *other = gm_queue_new();
    REQUIRE(q != NULL && other != NULL);
    int64_t live0 = gm__live_handles();
    gm_conn *c1 = open_up(q), *c2 = open_up(q), *c3 = open_up(q);
    REQUIRE(c1 && c2 && c3);
    gm_ref ref = 0;
    CHECK_RC(gm_request(c1, "GET", "/delay/1000", NULL, 0, NULL, 0, 0, NULL, &ref), GM_OK);
    CHECK_RC(gm_request(c2, "GET", "/bytes/10", NULL, 0, NULL, 0, 0, NULL, &ref), GM_OK);
    /* c3 moves away first: freeing q leaves it alone. */
    CHECK_RC(gm_set_owner(c3, other), GM_OK);
    gm_queue_free(q);
    /* c1 and c2 are closed; their handles stay valid until gm_conn_free. */
    CHECK_FAILS(gm_request(c1, "GET", "/count", NULL, 0, NULL, 0, 0, NULL, &ref), GM_ECLOSED);
    CHECK_FAILS(gm_request(c2, "GET", "/count", NULL, 0, NULL, 0, 0, NULL, &ref), GM_ECLOSED);
    CHECK_FAILS(gm_shutdown(c1), GM_ECLOSED);
    gm_event *ev = NULL;
    CHECK_RC(gm_info(c1, &ev), GM_OK);
    gm_event_free(ev);
    CHECK_EQ(get_body(c3, "/bytes/5", NULL, NULL), 200);
    CHECK_EQ(gm__live_handles(), live0 + 3 - 1); /* three connections, one queue less */
    gm_conn_free(c1);
    gm_conn_free(c2);
    CHECK(close_and_free(other, c3));
    CHECK_EQ(gm__live_handles(), live0 - 1);
    gm_queue_free(other);
}

TEST(shutdown_lets_inflight_finish) {
    gm_queue *q = gm_queue_new(), *q2 = gm_queue_new();
    REQUIRE(q != NULL && q2 != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    gm_ref a = 0, b = 0;
    REQUIRE_RC(gm_request(c, "GET", "/delay/300", NULL, 0, NULL, 0, 0, NULL, &a), GM_OK);
    CHECK_RC(gm_shutdown(c), GM_OK);
    /* While shutting down the owner cannot change. */
    CHECK_FAILS(gm_set_owner(c, q2), GM_EBADSTATE);
    /* A request made now gets a ref whose only event is ERROR "closing". */
    CHECK_RC(gm_request(c, "GET", "/bytes/10", NULL, 0, NULL, 0, 0, NULL, &b), GM_OK);
    CHECK(b != 0 && b != a);
    stream ss[2];
    stream_init(&ss[0], a);
    stream_init(&ss[1], b);
    int stray = 0;
    CHECK(collect(q, ss, 2, WAIT_MS, &stray));
    CHECK_EQ(ss[0].status, 200);
    CHECK_EQ(ss[0].errors, 0);
    CHECK(ss[0].body && strcmp((const char *)ss[0].body, "ok") == 0);
    CHECK_EQ(ss[1].errors, 1);
    CHECK_EQ(ss[1].responses + ss[1].datas, 0);
    CHECK_PREFIX(ss[1].reason, "closing");
    CHECK_EQ(stray, 0);
    int kinds[16] = {0};
    gm_event *ev = until_exit(q, c, WAIT_MS, kinds);
    REQUIRE(ev != NULL);
    CHECK_STR(ev->reason, "shutdown");
    gm_event_free(ev);
    CHECK_EQ(kinds[GM_EV_DOWN], 0);
    CHECK_EQ(kinds[GM_EV_UP], 0); /* never reconnects */
    ev = next_event(q, 200);
    CHECK(ev == NULL);
    gm_event_free(ev);
    CHECK_FAILS(gm_shutdown(c), GM_ECLOSED);
    stream_free(&ss[0]);
    stream_free(&ss[1]);
    gm_conn_free(c);
    gm_queue_free(q);
    gm_queue_free(q2);
}

TEST(shutdown_idle_connection) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    int64_t t0 = check_now_ms();
    CHECK_RC(gm_shutdown(c), GM_OK);
    int kinds[16] = {0};
    gm_event *ev = until_exit(q, c, WAIT_MS, kinds);
    REQUIRE(ev != NULL);
    CHECK_STR(ev->reason, "shutdown");
    gm_event_free(ev);
    CHECK(check_now_ms() - t0 < 1000);
    CHECK_EQ(kinds[GM_EV_DOWN] + kinds[GM_EV_UP], 0);
    gm_conn_free(c);
    gm_queue_free(q);
}

TEST(set_owner_moves_events) {
    gm_queue *q1 = gm_queue_new(), *q2 = gm_queue_new();
    REQUIRE(q1 != NULL && q2 != NULL);
    gm_conn *c = NULL;
    REQUIRE_RC(gm_open(q1, "127.0.0.1", http_port(), NULL, &c), GM_OK);
    /* Wait for the UP without taking it. */
    CHECK_EQ(fd_readable(gm_queue_fd(q1), WAIT_MS), 1);
    CHECK_EQ(gm_queue_len(q1), 1);
    CHECK_RC(gm_set_owner(c, q2), GM_OK);
    CHECK_RC(gm_set_owner(c, q2), GM_OK); /* to the same owner: fine */
    /* Events already queued stay where they are. */
    CHECK_EQ(gm_queue_len(q1), 1);
    CHECK_EQ(gm_queue_len(q2), 0);
    gm_ref ref = 0;
    REQUIRE_RC(gm_request(c, "GET", "/bytes/5", NULL, 0, NULL, 0, 0, NULL, &ref), GM_OK);
    stream s;
    stream_init(&s, ref);
    int stray = 0;
    CHECK(collect(q2, &s, 1, WAIT_MS, &stray));
    CHECK_EQ(s.status, 200);
    CHECK_EQ(s.body_len, 5);
    CHECK_EQ(stray, 0);
    stream_free(&s);
    gm_event *ev = next_event(q1, 0);
    REQUIRE(ev != NULL);
    CHECK_EQ(ev->kind, GM_EV_UP);
    CHECK(ev->conn == c);
    gm_event_free(ev);
    /* gm_await_body follows the owner. */
    CHECK_EQ(get_body(c, "/bytes/7", NULL, NULL), 200);
    /* The old owner's death does not touch the connection. */
    gm_queue_free(q1);
    CHECK_EQ(get_body(c, "/bytes/8", NULL, NULL), 200);
    CHECK(close_and_free(q2, c));
    gm_queue_free(q2);
}

TEST(open_unix_socket) {
    const char *path = unix_path();
    REQUIRE(path != NULL);
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = NULL;
    REQUIRE_RC(gm_open_unix(q, path, NULL, &c), GM_OK);
    gm_event *ev = next_event(q, WAIT_MS);
    REQUIRE(ev != NULL);
    CHECK_EQ(ev->kind, GM_EV_UP);
    CHECK_STR(ev->protocol, "http");
    gm_event_free(ev);
    char *body = NULL;
    size_t len = 0;
    CHECK_EQ(get_body(c, "/bytes/100", &body, &len), 200);
    CHECK_EQ(len, 100);
    CHECK(body && is_pattern((const uint8_t *)body, len, 0));
    free(body);
    ev = NULL;
    CHECK_RC(gm_info(c, &ev), GM_OK);
    CHECK_STR(ev_header(ev, "state"), "connected");
    CHECK_STR(ev_header(ev, "peer"), path);
    gm_event_free(ev);
    CHECK(close_and_free(q, c));

    /* A socket path where nothing listens: EXIT, never UP. */
    c = NULL;
    REQUIRE_RC(gm_open_unix(q, "/nonexistent/gunmetal.sock", "{\"retry\":0}", &c), GM_OK);
    ev = next_event(q, WAIT_MS);
    REQUIRE(ev != NULL);
    CHECK_EQ(ev->kind, GM_EV_EXIT);
    CHECK(ev->reason && ev->reason[0]);
    fprintf(stderr, "    unix socket missing: EXIT \"%s\"\n", ev->reason ? ev->reason : "(null)");
    gm_event_free(ev);
    gm_conn_free(c);
    gm_queue_free(q);
}

TEST(info_keys) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    gm_event *ev = NULL;
    REQUIRE_RC(gm_info(c, &ev), GM_OK);
    char port[16], origin[64];
    snprintf(port, sizeof port, "%d", http_port());
    snprintf(origin, sizeof origin, "http://127.0.0.1:%d", http_port());
    CHECK_EQ(ev->kind, GM_EV_INFO);
    CHECK_EQ(ev->size, sizeof(gm_event));
    CHECK(ev->conn == c);
    CHECK_STR(ev_header(ev, "state"), "connected");
    CHECK_STR(ev_header(ev, "protocol"), "http");
    CHECK_STR(ev_header(ev, "transport"), "tcp");
    CHECK_STR(ev_header(ev, "host"), "127.0.0.1");
    CHECK_STR(ev_header(ev, "port"), port);
    CHECK_STR(ev_header(ev, "origin"), origin);
    /* "when connected, sock_ip/sock_port (local) and peer" */
    CHECK_STR(ev_header(ev, "sock_ip"), "127.0.0.1");
    const char *sp = ev_header(ev, "sock_port");
    CHECK(sp != NULL && atoi(sp) > 0 && atoi(sp) < 65536 && atoi(sp) != http_port());
    const char *peer = ev_header(ev, "peer");
    CHECK(peer != NULL && strstr(peer, "127.0.0.1") != NULL);
    for (size_t i = 0; i < ev->n_headers; i++) {
        CHECK(ev->headers[i].name && ev->headers[i].value);
        CHECK_EQ(strlen(ev->headers[i].name), ev->headers[i].name_len);
        CHECK_EQ(strlen(ev->headers[i].value), ev->headers[i].value_len);
        fprintf(stderr, "    info %s = %s\n", ev->headers[i].name, ev->headers[i].value);
    }
    gm_event_free(ev);
    /* The info record is not an event of the queue. */
    CHECK_EQ(gm_queue_len(q), 0);
    CHECK_RC(gm_close(c), GM_OK);
    gm_event *exit_ev = until_exit(q, c, WAIT_MS, NULL);
    CHECK(exit_ev != NULL);
    gm_event_free(exit_ev);
    ev = NULL;
    REQUIRE_RC(gm_info(c, &ev), GM_OK);
    CHECK_STR(ev_header(ev, "state"), "closed");
    CHECK(ev_header(ev, "sock_ip") == NULL);
    gm_event_free(ev);
    gm_conn_free(c);
    gm_queue_free(q);
}

TEST(stream_info_keys) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    gm_ref ref = 0;
    REQUIRE_RC(gm_request(c, "GET", "/delay/300?x=1", NULL, 0, NULL, 0, 0, NULL, &ref), GM_OK);
    gm_event *ev = NULL;
    REQUIRE_RC(gm_stream_info(c, ref, &ev), GM_OK);
    char refs[32];
    snprintf(refs, sizeof refs, "%" PRIu64, ref);
    CHECK_EQ(ev->kind, GM_EV_INFO);
    CHECK(ev->conn == c);
    CHECK_EQ(ev->ref, ref);
    CHECK_STR(ev_header(ev, "ref"), refs);
    CHECK_STR(ev_header(ev, "state"), "running");
    CHECK_STR(ev_header(ev, "method"), "GET");
    CHECK_STR(ev_header(ev, "path"), "/delay/300?x=1");
    CHECK_STR(ev_header(ev, "protocol"), "http");
    CHECK_STR(ev_header(ev, "flow"), "-1");
    gm_event_free(ev);
    /* With a flow. */
    gm_ref ref2 = 0;
    gm_req_opts o = {.size = sizeof o, .flow = 3};
    REQUIRE_RC(gm_request(c, "HEAD", "/bytes/1", NULL, 0, NULL, 0, 0, &o, &ref2), GM_OK);
    ev = NULL;
    REQUIRE_RC(gm_stream_info(c, ref2, &ev), GM_OK);
    CHECK_STR(ev_header(ev, "flow"), "3");
    CHECK_STR(ev_header(ev, "method"), "HEAD");
    gm_event_free(ev);
    /* Cancelled: stopping. */
    CHECK_RC(gm_cancel(c, ref), GM_OK);
    ev = NULL;
    REQUIRE_RC(gm_stream_info(c, ref, &ev), GM_OK);
    CHECK_STR(ev_header(ev, "state"), "stopping");
    gm_event_free(ev);
    ev = NULL;
    CHECK_RC(gm_await_body(c, ref2, WAIT_MS, &ev), GM_OK);
    gm_event_free(ev);
    /* Finished: no such stream. */
    ev = NULL;
    CHECK_FAILS(gm_stream_info(c, ref2, &ev), GM_ENOSTREAM);
    CHECK(ev == NULL);
    CHECK(close_and_free(q, c));

    /* A request waiting for a connection that is not up: queued. */
    c = NULL;
    REQUIRE_RC(gm_open(q, "127.0.0.1", refused_port(), "{\"retry\":2,\"retry_timeout\":5000}", &c), GM_OK);
    REQUIRE_RC(gm_request(c, "DELETE", "/x", NULL, 0, NULL, 0, 0, NULL, &ref), GM_OK);
    ev = NULL;
    REQUIRE_RC(gm_stream_info(c, ref, &ev), GM_OK);
    CHECK_STR(ev_header(ev, "state"), "queued");
    CHECK_STR(ev_header(ev, "method"), "DELETE");
    CHECK_STR(ev_header(ev, "path"), "/x");
    gm_event_free(ev);
    /* gm_data on a request still waiting for the connection: held for UP
     * (held.c sends it); on one that streams no body: GM_ENOSTREAM. */
    gm_ref sref = 0;
    REQUIRE_RC(gm_request(c, "PUT", "/echo", NULL, 0, NULL, 0, GM_REQ_STREAM, NULL, &sref), GM_OK);
    CHECK_RC(gm_data(c, sref, "x", 1, 0), GM_OK);
    CHECK_FAILS(gm_data(c, ref, "x", 1, 0), GM_ENOSTREAM);
    /* Closing: the queued requests get an ERROR before the EXIT. */
    CHECK_RC(gm_close(c), GM_OK);
    int kinds[16] = {0};
    ev = until_exit(q, c, WAIT_MS, kinds);
    CHECK(ev != NULL);
    gm_event_free(ev);
    fprintf(stderr, "    close while requests queued: %d ERROR events\n", kinds[GM_EV_ERROR]);
    gm_conn_free(c);
    gm_queue_free(q);
}

/* Requests wait for the connection up to max_pending_requests; past it they
 * fail at once with an ERROR naming the bound. */
TEST(max_pending_requests) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = NULL;
    REQUIRE_RC(gm_open(q, "127.0.0.1", refused_port(),
                       "{\"retry\":2,\"retry_timeout\":5000,\"max_pending_requests\":2}", &c), GM_OK);
    gm_ref r[3] = {0};
    for (int i = 0; i < 3; i++) CHECK_RC(gm_request(c, "GET", "/bytes/1", NULL, 0, NULL, 0, 0, NULL, &r[i]), GM_OK);
    gm_event *ev = NULL;
    CHECK_RC(gm_await(c, r[2], 1000, &ev), GM_OK);
    if (ev) {
        CHECK_EQ(ev->kind, GM_EV_ERROR);
        CHECK(ev->reason && strstr(ev->reason, "max_pending_requests") != NULL);
        fprintf(stderr, "    third request: ERROR \"%s\"\n", ev->reason ? ev->reason : "(null)");
    }
    gm_event_free(ev);
    /* The first two still wait. */
    ev = NULL;
    CHECK_RC(gm_await(c, r[0], 100, &ev), GM_ETIMEOUT);
    CHECK_RC(gm_stream_info(c, r[1], &ev), GM_OK);
    if (ev) CHECK_STR(ev_header(ev, "state"), "queued");
    gm_event_free(ev);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

/* TLS with the test server's CA (HTTP/1.1 only: ALPN offers http/1.1). */
TEST(tls_connection) {
    const char *ca = getenv("GM_TEST_CA");
    REQUIRE(ca != NULL && *ca);
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    char opts[1024];
    snprintf(opts, sizeof opts, "{\"transport\":\"tls\",\"protocols\":[\"http\"],\"retry\":0,"
             "\"tls_opts\":{\"cacertfile\":\"%s\",\"server_name_indication\":\"localhost\"}}", ca);
    gm_conn *c = NULL;
    REQUIRE_RC(gm_open(q, "127.0.0.1", https_port(), opts, &c), GM_OK);
    gm_event *ev = next_event(q, WAIT_MS);
    REQUIRE(ev != NULL);
    CHECK_EQ(ev->kind, GM_EV_UP);
    CHECK_STR(ev->protocol, "http");
    if (ev->kind == GM_EV_EXIT) fprintf(stderr, "    EXIT \"%s\"\n", ev->reason ? ev->reason : "");
    gm_event_free(ev);
    char *body = NULL;
    size_t len = 0;
    CHECK_EQ(get_body(c, "/bytes/1000", &body, &len), 200);
    CHECK_EQ(len, 1000);
    CHECK(body && is_pattern((const uint8_t *)body, len, 0));
    free(body);
    ev = NULL;
    CHECK_RC(gm_info(c, &ev), GM_OK);
    CHECK_STR(ev_header(ev, "transport"), "tls");
    CHECK_PREFIX(ev_header(ev, "origin"), "https://");
    gm_event_free(ev);
    CHECK(close_and_free(q, c));

    /* Without the CA the peer is not trusted: EXIT, never UP. */
    c = NULL;
    REQUIRE_RC(gm_open(q, "127.0.0.1", https_port(), "{\"transport\":\"tls\",\"protocols\":[\"http\"],\"retry\":0}", &c), GM_OK);
    ev = next_event(q, WAIT_MS);
    REQUIRE(ev != NULL);
    CHECK_EQ(ev->kind, GM_EV_EXIT);
    fprintf(stderr, "    untrusted certificate: EXIT \"%s\"\n", ev->reason ? ev->reason : "(null)");
    gm_event_free(ev);
    gm_conn_free(c);
    /* Unless verification is turned off explicitly. */
    c = NULL;
    REQUIRE_RC(gm_open(q, "127.0.0.1", https_port(),
                       "{\"transport\":\"tls\",\"protocols\":[\"http\"],\"tls_opts\":{\"verify\":\"verify_none\"}}", &c), GM_OK);
    CHECK_RC(gm_await_up(c, WAIT_MS, NULL), GM_OK);
    CHECK_EQ(get_body(c, "/bytes/10", NULL, NULL), 200);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

static const struct check_case cases[] = {
    CASE(open_then_await_up_gives_protocol),
    CASE(up_event_fields),
    CASE(request_before_up_is_sent_on_up),
    CASE(close_twice_one_exit),
    CASE(use_after_close),
    CASE(use_after_exit),
    CASE(refused_no_retry_exits_econnrefused),
    CASE(refused_retries_then_exit),
    CASE(await_up_timeout),
    CASE(conn_free_with_events_queued),
    CASE(conn_free_then_exit_event_pins_handle),
    CASE(queue_free_with_connections_open),
    CASE(shutdown_lets_inflight_finish),
    CASE(shutdown_idle_connection),
    CASE(set_owner_moves_events),
    CASE(open_unix_socket),
    CASE(info_keys),
    CASE(stream_info_keys),
    CASE(max_pending_requests),
    CASE(tls_connection),
};

int main(int argc, char **argv) { return check_main(argc, argv, cases, CHECK_N(cases)); }
