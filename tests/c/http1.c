/*
 * http1.c — HTTP/1.1 against the test server: concurrency, pipelining,
 * await, streamed bodies, 1xx, bodiless responses, cancel, flow, reply_to,
 * per-request timeouts, a connection lost mid-response.
 */
#include <pthread.h>

#include "util.h"

static gm_ref get(gm_conn *c, const char *path) {
    gm_ref ref = 0;
    CHECK_RC(gm_request(c, "GET", path, NULL, 0, NULL, 0, 0, NULL, &ref), GM_OK);
    CHECK(ref != 0);
    return ref;
}

TEST(three_concurrent_requests) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    stream ss[3];
    stream_init(&ss[0], get(c, "/bytes/100"));
    stream_init(&ss[1], get(c, "/chunked/200?chunk=50"));
    stream_init(&ss[2], get(c, "/delay/100"));
    CHECK(ss[0].ref != ss[1].ref && ss[1].ref != ss[2].ref && ss[0].ref != ss[2].ref);
    int stray = 0;
    CHECK(collect(q, ss, 3, WAIT_MS, &stray));
    CHECK_EQ(stray, 0);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(ss[i].status, 200);
        CHECK_EQ(ss[i].responses, 1);
        CHECK_EQ(ss[i].errors, 0);
        CHECK_EQ(ss[i].order_bad, 0);
    }
    CHECK_EQ(ss[0].body_len, 100);
    CHECK(is_pattern(ss[0].body, ss[0].body_len, 0));
    CHECK_EQ(ss[1].body_len, 200);
    CHECK(is_pattern(ss[1].body, ss[1].body_len, 0));
    CHECK(ss[1].datas >= 1);
    CHECK_EQ(ss[2].body_len, 2);
    CHECK(ss[2].body && memcmp(ss[2].body, "ok", 2) == 0);
    for (int i = 0; i < 3; i++) stream_free(&ss[i]);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

TEST(pipelined_100_answered_in_order) {
    enum { N = 100 };
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    gm_event *info = NULL;
    REQUIRE_RC(gm_info(c, &info), GM_OK);
    char local[64];
    snprintf(local, sizeof local, "%s", ev_header(info, "local") ? ev_header(info, "local") : "?");
    gm_event_free(info);
    long before = server_count(c);
    static stream ss[N];
    char path[32];
    for (int i = 0; i < N; i++) {
        snprintf(path, sizeof path, "/bytes/%d", i + 1);
        stream_init(&ss[i], get(c, path));
    }
    gm_ref log[N];
    int log_n = 0, stray = 0;
    CHECK(collect_log(q, ss, N, WAIT_MS * 2, &stray, log, &log_n, N));
    CHECK_EQ(stray, 0);
    CHECK_EQ(log_n, N);
    int in_order = 1, bodies = 1;
    for (int i = 0; i < log_n; i++) in_order &= log[i] == ss[i].ref;
    for (int i = 0; i < N; i++) {
        bodies &= ss[i].status == 200 && ss[i].body_len == (size_t)(i + 1) &&
                  is_pattern(ss[i].body, ss[i].body_len, 0) && ss[i].errors == 0;
        stream_free(&ss[i]);
    }
    CHECK(in_order);
    CHECK(bodies);
    /* All on the one connection: 100 requests and a /count since. */
    CHECK_EQ(server_count(c), before + N + 1);
    info = NULL;
    REQUIRE_RC(gm_info(c, &info), GM_OK);
    const char *local2 = ev_header(info, "local");
    if (local2) CHECK_STR(local2, local);
    gm_event_free(info);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

TEST(await_then_await_body) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    gm_ref ref = get(c, "/bytes/1000");
    gm_event *ev = NULL;
    REQUIRE_RC(gm_await(c, ref, WAIT_MS, &ev), GM_OK);
    CHECK_EQ(ev->kind, GM_EV_RESPONSE);
    CHECK_EQ(ev->ref, ref);
    CHECK(ev->conn == c);
    CHECK_EQ(ev->status, 200);
    CHECK_EQ(ev->fin, 0);
    CHECK_STR(ev_header(ev, "content-length"), "1000");
    CHECK_STR(ev_header(ev, "content-type"), "application/octet-stream");
    /* "Fields that do not apply to a kind are 0/NULL." */
    CHECK_EQ(ev->size, sizeof(gm_event));
    CHECK(ev->data == NULL && ev->data_len == 0);
    CHECK(ev->protocol == NULL && ev->reason == NULL && ev->method == NULL && ev->uri == NULL);
    CHECK(ev->killed == NULL && ev->n_killed == 0);
    CHECK_EQ(ev->new_ref, 0);
    for (size_t i = 0; i < ev->n_headers; i++) {
        /* lower-case names, lengths matching the NUL-terminated strings */
        for (const char *p = ev->headers[i].name; *p; p++) CHECK(!(*p >= 'A' && *p <= 'Z'));
        CHECK_EQ(strlen(ev->headers[i].name), ev->headers[i].name_len);
        CHECK_EQ(strlen(ev->headers[i].value), ev->headers[i].value_len);
    }
    gm_event_free(ev);
    /* A DATA event. */
    gm_ref r2 = get(c, "/bytes/7");
    ev = NULL;
    REQUIRE_RC(gm_await(c, r2, WAIT_MS, &ev), GM_OK);
    gm_event_free(ev);
    ev = NULL;
    REQUIRE_RC(gm_await(c, r2, WAIT_MS, &ev), GM_OK);
    CHECK_EQ(ev->kind, GM_EV_DATA);
    CHECK_EQ(ev->fin, 1);
    CHECK_EQ(ev->data_len, 7);
    CHECK(ev->data && ev->data[7] == 0);
    CHECK_EQ(ev->status, 0);
    CHECK(ev->headers == NULL && ev->n_headers == 0);
    CHECK(ev->protocol == NULL && ev->reason == NULL);
    gm_event_free(ev);
    ev = NULL;
    /* The RESPONSE was taken: status 0, the whole body. */
    REQUIRE_RC(gm_await_body(c, ref, WAIT_MS, &ev), GM_OK);
    CHECK_EQ(ev->kind, GM_EV_DATA);
    CHECK_EQ(ev->status, 0);
    CHECK_EQ(ev->fin, 1);
    CHECK_EQ(ev->data_len, 1000);
    CHECK(ev->data && is_pattern(ev->data, ev->data_len, 0));
    CHECK(ev->data && ev->data[ev->data_len] == 0); /* NUL-terminated */
    CHECK_EQ(ev->n_headers, 0);
    gm_event_free(ev);
    /* gm_await_body with the RESPONSE still queued gives its status. */
    ref = get(c, "/status/201");
    ev = NULL;
    REQUIRE_RC(gm_await_body(c, ref, WAIT_MS, &ev), GM_OK);
    CHECK_EQ(ev->status, 201);
    CHECK_EQ(ev->data_len, 0);
    gm_event_free(ev);
    /* Another stream's events stay in place for their own await. */
    gm_ref a = get(c, "/bytes/3"), b = get(c, "/bytes/4");
    ev = NULL;
    REQUIRE_RC(gm_await_body(c, b, WAIT_MS, &ev), GM_OK);
    CHECK_EQ(ev->data_len, 4);
    gm_event_free(ev);
    CHECK_EQ(gm_queue_len(q), 2); /* a's RESPONSE and DATA */
    ev = NULL;
    REQUIRE_RC(gm_await_body(c, a, WAIT_MS, &ev), GM_OK);
    CHECK_EQ(ev->data_len, 3);
    CHECK_EQ(ev->status, 200);
    gm_event_free(ev);
    CHECK_EQ(gm_queue_len(q), 0);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

TEST(await_body_trailers) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    gm_header te = {"te", "trailers", SIZE_MAX, SIZE_MAX};
    gm_ref ref = 0;
    REQUIRE_RC(gm_request(c, "GET", "/trailers", &te, 1, NULL, 0, 0, NULL, &ref), GM_OK);
    gm_event *ev = NULL;
    REQUIRE_RC(gm_await_body(c, ref, WAIT_MS, &ev), GM_OK);
    CHECK_EQ(ev->kind, GM_EV_DATA);
    CHECK_EQ(ev->status, 200);
    CHECK_EQ(ev->data_len, strlen("hello trailers"));
    CHECK(ev->data && strcmp((const char *)ev->data, "hello trailers") == 0);
    CHECK_STR(ev_header(ev, "x-checksum"), "abc123");
    CHECK_STR(ev_header(ev, "x-trailer-two"), "2");
    CHECK_EQ(ev->n_headers, 2);
    gm_event_free(ev);
    /* The same through the events: ... DATA nofin ..., then TRAILERS. */
    ref = 0;
    REQUIRE_RC(gm_request(c, "GET", "/trailers", &te, 1, NULL, 0, 0, NULL, &ref), GM_OK);
    int datas = 0, fin_data = 0, trailers = 0;
    for (;;) {
        ev = NULL;
        if (gm_await(c, ref, WAIT_MS, &ev) != GM_OK) {
            CHECK(0);
            break;
        }
        if (ev->kind == GM_EV_DATA) {
            datas++;
            fin_data += ev->fin;
        }
        if (ev->kind == GM_EV_TRAILERS) {
            trailers++;
            CHECK_STR(ev_header(ev, "x-checksum"), "abc123");
            CHECK_STR(ev_header(ev, "x-trailer-two"), "2");
        }
        int kind = ev->kind;
        gm_event_free(ev);
        if (kind == GM_EV_TRAILERS || kind == GM_EV_ERROR) break;
    }
    CHECK(datas >= 1);
    CHECK_EQ(fin_data, 0);
    CHECK_EQ(trailers, 1);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

/* gm_await for the RESPONSE of a streamed echo, then the rest. */
static void check_echo(gm_conn *c, gm_ref ref, const char *want_te, const char *want_cl, const char *body,
                       size_t len) {
    gm_event *ev = NULL;
    CHECK_RC(gm_await(c, ref, WAIT_MS, &ev), GM_OK);
    if (!ev) return;
    CHECK_EQ(ev->kind, GM_EV_RESPONSE);
    CHECK_EQ(ev->status, 200);
    CHECK_STR(ev_header(ev, "x-method"), "POST");
    CHECK_STR(ev_header(ev, "x-transfer-encoding"), want_te);
    CHECK_STR(ev_header(ev, "x-content-length"), want_cl);
    int fin = ev->fin;
    gm_event_free(ev);
    if (fin) {
        CHECK_EQ(len, 0);
        return;
    }
    ev = NULL;
    CHECK_RC(gm_await_body(c, ref, WAIT_MS, &ev), GM_OK);
    if (!ev) return;
    CHECK_EQ(ev->data_len, len);
    CHECK(ev->data && ev->data_len == len && memcmp(ev->data, body, len) == 0);
    gm_event_free(ev);
}

TEST(streamed_body_chunked) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    gm_ref ref = 0;
    REQUIRE_RC(gm_request(c, "POST", "/echo", NULL, 0, NULL, 0, GM_REQ_STREAM, NULL, &ref), GM_OK);
    CHECK_RC(gm_data(c, ref, "hello ", 6, 0), GM_OK);
    CHECK_RC(gm_data(c, ref, "", 0, 0), GM_OK); /* ignored: would end a chunked body */
    CHECK_RC(gm_data(c, ref, NULL, 0, 0), GM_OK);
    CHECK_RC(gm_data(c, ref, "world", 5, 0), GM_OK);
    CHECK_RC(gm_data(c, ref, "!", 1, 1), GM_OK);
    check_echo(c, ref, "chunked", "-1", "hello world!", 12);
    /* An empty fin ends it too. */
    ref = 0;
    REQUIRE_RC(gm_request(c, "POST", "/echo", NULL, 0, NULL, 0, GM_REQ_STREAM, NULL, &ref), GM_OK);
    CHECK_RC(gm_data(c, ref, "abc", 3, 0), GM_OK);
    CHECK_RC(gm_data(c, ref, NULL, 0, 1), GM_OK);
    check_echo(c, ref, "chunked", "-1", "abc", 3);
    /* A request made while a body is being streamed waits behind it. */
    gm_ref s = 0;
    REQUIRE_RC(gm_request(c, "POST", "/echo", NULL, 0, NULL, 0, GM_REQ_STREAM, NULL, &s), GM_OK);
    gm_ref g = get(c, "/bytes/5");
    CHECK_RC(gm_data(c, s, "first", 5, 1), GM_OK);
    check_echo(c, s, "chunked", "-1", "first", 5);
    gm_event *ev = NULL;
    CHECK_RC(gm_await_body(c, g, WAIT_MS, &ev), GM_OK);
    if (ev) CHECK_EQ(ev->data_len, 5);
    gm_event_free(ev);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

TEST(streamed_body_content_length) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    gm_header cl = {"content-length", "11", SIZE_MAX, SIZE_MAX};
    gm_ref ref = 0;
    REQUIRE_RC(gm_request(c, "POST", "/echo", &cl, 1, NULL, 0, GM_REQ_STREAM, NULL, &ref), GM_OK);
    CHECK_RC(gm_data(c, ref, "hello", 5, 0), GM_OK);
    CHECK_RC(gm_data(c, ref, " world", 6, 1), GM_OK);
    check_echo(c, ref, "", "11", "hello world", 11);

    /* 1 MiB in 64 KiB pieces. */
    enum { SZ = 1 << 20, PIECE = 64 << 10 };
    uint8_t *big = malloc(SZ);
    REQUIRE(big != NULL);
    for (size_t i = 0; i < SZ; i++) big[i] = (uint8_t)('a' + i % 26);
    gm_header cl2 = {"content-length", "1048576", SIZE_MAX, SIZE_MAX};
    ref = 0;
    CHECK_RC(gm_request(c, "POST", "/echo", &cl2, 1, NULL, 0, GM_REQ_STREAM, NULL, &ref), GM_OK);
    for (size_t off = 0; off < SZ; off += PIECE) CHECK_RC(gm_data(c, ref, big + off, PIECE, off + PIECE == SZ), GM_OK);
    gm_event *ev = NULL;
    CHECK_RC(gm_await_body(c, ref, WAIT_MS, &ev), GM_OK);
    if (ev) {
        CHECK_EQ(ev->status, 200);
        CHECK_EQ(ev->data_len, SZ);
        CHECK(ev->data_len == SZ && memcmp(ev->data, big, SZ) == 0);
    }
    gm_event_free(ev);
    free(big);

    /* A plain body: content-length added. */
    ref = 0;
    REQUIRE_RC(gm_request(c, "POST", "/echo", NULL, 0, "payload", 7, 0, NULL, &ref), GM_OK);
    check_echo(c, ref, "", "7", "payload", 7);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

TEST(inform_1xx_then_response) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    stream s;
    stream_init(&s, get(c, "/inform/3"));
    int stray = 0;
    CHECK(collect(q, &s, 1, WAIT_MS, &stray));
    CHECK_EQ(s.informs, 3);
    CHECK_EQ(s.inform_status, 103);
    CHECK_EQ(s.responses, 1);
    CHECK_EQ(s.status, 200);
    CHECK_EQ(s.order_bad, 0);
    CHECK(s.body && strcmp((const char *)s.body, "ok") == 0);
    CHECK_EQ(stray, 0);
    stream_free(&s);
    /* The INFORM event itself. */
    gm_ref ref = get(c, "/early-hints");
    gm_event *ev = NULL;
    REQUIRE_RC(gm_await(c, ref, WAIT_MS, &ev), GM_OK);
    CHECK_EQ(ev->kind, GM_EV_INFORM);
    CHECK_EQ(ev->status, 103);
    CHECK_EQ(ev->fin, 0);
    CHECK_STR(ev_header(ev, "link"), "</style.css>; rel=preload");
    gm_event_free(ev);
    ev = NULL;
    REQUIRE_RC(gm_await_body(c, ref, WAIT_MS, &ev), GM_OK);
    CHECK_EQ(ev->status, 200);
    CHECK_EQ(ev->data_len, 2);
    gm_event_free(ev);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

/* HEAD, 204 and 304: RESPONSE with fin, no DATA, and the connection's
 * framing stays right for the request pipelined behind them. */
TEST(head_204_304_have_no_body) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    stream ss[4];
    gm_ref h = 0;
    REQUIRE_RC(gm_request(c, "HEAD", "/bytes/100", NULL, 0, NULL, 0, 0, NULL, &h), GM_OK);
    stream_init(&ss[0], h);
    stream_init(&ss[1], get(c, "/status/204"));
    stream_init(&ss[2], get(c, "/status/304"));
    stream_init(&ss[3], get(c, "/bytes/3"));
    int stray = 0;
    CHECK(collect(q, ss, 4, WAIT_MS, &stray));
    CHECK_EQ(stray, 0);
    CHECK_EQ(ss[0].status, 200);
    CHECK_EQ(ss[1].status, 204);
    CHECK_EQ(ss[2].status, 304);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(ss[i].responses, 1);
        CHECK_EQ(ss[i].datas, 0);
        CHECK_EQ(ss[i].errors, 0);
    }
    CHECK_EQ(ss[3].status, 200);
    CHECK_EQ(ss[3].body_len, 3);
    for (int i = 0; i < 4; i++) stream_free(&ss[i]);
    /* No late DATA for them either. */
    gm_event *ev = next_event(q, 100);
    CHECK(ev == NULL);
    gm_event_free(ev);
    /* The RESPONSE event of a HEAD has fin set. */
    h = 0;
    REQUIRE_RC(gm_request(c, "HEAD", "/bytes/10", NULL, 0, NULL, 0, 0, NULL, &h), GM_OK);
    ev = NULL;
    REQUIRE_RC(gm_await(c, h, WAIT_MS, &ev), GM_OK);
    CHECK_EQ(ev->kind, GM_EV_RESPONSE);
    CHECK_EQ(ev->fin, 1);
    CHECK_STR(ev_header(ev, "content-length"), "10");
    gm_event_free(ev);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

TEST(cancel_silences_stream) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    gm_ref slow = get(c, "/slow?chunks=3&delay=200&size=10");
    gm_event *ev = NULL;
    REQUIRE_RC(gm_await(c, slow, WAIT_MS, &ev), GM_OK);
    CHECK_EQ(ev->kind, GM_EV_RESPONSE);
    gm_event_free(ev);
    /* The first chunk comes with the head: take it, so that nothing of the
     * stream is queued when it is cancelled (as in Gun, cancel does not
     * flush what is already in the mailbox). The next chunk is 200 ms away. */
    ev = NULL;
    REQUIRE_RC(gm_await(c, slow, WAIT_MS, &ev), GM_OK);
    CHECK_EQ(ev->kind, GM_EV_DATA);
    CHECK_EQ(ev->fin, 0);
    gm_event_free(ev);
    CHECK_EQ(gm_queue_len(q), 0);
    CHECK_RC(gm_cancel(c, slow), GM_OK);
    CHECK_RC(gm_cancel(c, slow), GM_OK); /* twice: fine */
    /* Cancelled before any answer. */
    gm_ref early = get(c, "/delay/50");
    CHECK_RC(gm_cancel(c, early), GM_OK);
    /* The next request on the connection still works, and nothing more
     * comes for the cancelled ones. */
    stream s;
    stream_init(&s, get(c, "/bytes/10"));
    int stray = 0;
    CHECK(collect(q, &s, 1, WAIT_MS, &stray));
    CHECK_EQ(s.status, 200);
    CHECK_EQ(s.body_len, 10);
    CHECK_EQ(stray, 0);
    stream_free(&s);
    ev = next_event(q, 100);
    CHECK(ev == NULL);
    gm_event_free(ev);
    /* A finished stream: cancel is ignored. */
    CHECK_RC(gm_cancel(c, s.ref), GM_OK);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

/* Gun's flow: flow 1 lets one DATA through, then the stream waits for
 * gm_update_flow. */
TEST(flow_control) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    gm_req_opts o = {.size = sizeof o, .flow = 1};
    gm_ref ref = 0;
    REQUIRE_RC(gm_request(c, "GET", "/slow?chunks=5&delay=20&size=10", NULL, 0, NULL, 0, 0, &o, &ref), GM_OK);
    stream s;
    stream_init(&s, ref);
    /* RESPONSE, then exactly one DATA... */
    gm_event *ev = NULL;
    int64_t end = check_now_ms() + WAIT_MS;
    while (s.datas < 1 && check_now_ms() < end) {
        ev = next_event(q, WAIT_MS);
        if (!ev) break;
        if (ev->ref == ref) stream_add(&s, ev);
        gm_event_free(ev);
    }
    CHECK_EQ(s.responses, 1);
    CHECK_EQ(s.datas, 1);
    CHECK_EQ(s.done, 0);
    size_t first = s.body_len;
    CHECK(first >= 10);
    /* ...and nothing more for 300 ms (the body takes 80 ms to come). */
    ev = next_event(q, 300);
    CHECK(ev == NULL);
    if (ev) fprintf(stderr, "    unexpected event kind %d ref %" PRIu64 " len %zu\n", ev->kind, ev->ref, ev->data_len);
    gm_event_free(ev);
    ev = NULL;
    REQUIRE_RC(gm_stream_info(c, ref, &ev), GM_OK);
    CHECK_STR(ev_header(ev, "flow"), "0");
    gm_event_free(ev);
    /* More flow: the rest comes. */
    CHECK_RC(gm_update_flow(c, ref, 10), GM_OK);
    int stray = 0;
    CHECK(collect(q, &s, 1, WAIT_MS, &stray));
    CHECK_EQ(stray, 0);
    CHECK_EQ(s.body_len, 50);
    CHECK(is_pattern(s.body, s.body_len, 0));
    CHECK(s.datas >= 2 && s.datas <= 11);
    CHECK_EQ(s.errors, 0);
    stream_free(&s);
    /* The connection goes on normally. */
    CHECK_EQ(get_body(c, "/bytes/5", NULL, NULL), 200);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

TEST(reply_to_queue) {
    gm_queue *q = gm_queue_new(), *q2 = gm_queue_new();
    REQUIRE(q != NULL && q2 != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    gm_req_opts o = {.size = sizeof o, .reply_to = q2};
    gm_ref ref = 0;
    REQUIRE_RC(gm_request(c, "GET", "/bytes/10", NULL, 0, NULL, 0, 0, &o, &ref), GM_OK);
    stream s;
    stream_init(&s, ref);
    int stray = 0;
    CHECK(collect(q2, &s, 1, WAIT_MS, &stray));
    CHECK_EQ(s.status, 200);
    CHECK_EQ(s.body_len, 10);
    CHECK_EQ(stray, 0);
    stream_free(&s);
    /* The owner got none of it. */
    gm_event *ev = next_event(q, 200);
    CHECK(ev == NULL);
    gm_event_free(ev);
    /* The owner still gets the connection's own events and other streams. */
    CHECK_EQ(get_body(c, "/bytes/3", NULL, NULL), 200);
    CHECK_EQ(gm_queue_len(q2), 0);
    /* reply_to set to the owner itself is the same as none. */
    o.reply_to = q;
    ref = 0;
    REQUIRE_RC(gm_request(c, "GET", "/bytes/4", NULL, 0, NULL, 0, 0, &o, &ref), GM_OK);
    ev = NULL;
    CHECK_RC(gm_await_body(c, ref, WAIT_MS, &ev), GM_OK);
    gm_event_free(ev);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
    gm_queue_free(q2);
}

/* gm_await / gm_await_body look in the stream's reply_to queue: "the next
 * event of stream ref in the queue it goes to (its reply_to, else the
 * owner)" — also when the whole response is already there. */
TEST(reply_to_await) {
    gm_queue *q = gm_queue_new(), *q2 = gm_queue_new();
    REQUIRE(q != NULL && q2 != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    gm_req_opts o = {.size = sizeof o, .reply_to = q2};
    gm_ref ref = 0;
    /* Awaited while it is in flight. */
    REQUIRE_RC(gm_request(c, "GET", "/delay/100", NULL, 0, NULL, 0, 0, &o, &ref), GM_OK);
    gm_event *ev = NULL;
    CHECK_RC(gm_await_body(c, ref, 2000, &ev), GM_OK);
    if (ev) {
        CHECK_EQ(ev->status, 200);
        CHECK_EQ(ev->data_len, 2);
    }
    gm_event_free(ev);
    drain(q2, 0);
    /* Awaited once the whole response has arrived. */
    gm_ref a = 0, barrier = 0;
    REQUIRE_RC(gm_request(c, "GET", "/bytes/6", NULL, 0, NULL, 0, 0, &o, &a), GM_OK);
    REQUIRE_RC(gm_request(c, "GET", "/bytes/1", NULL, 0, NULL, 0, 0, NULL, &barrier), GM_OK);
    ev = NULL;
    CHECK_RC(gm_await_body(c, barrier, WAIT_MS, &ev), GM_OK); /* a's answer came before */
    gm_event_free(ev);
    CHECK_EQ(gm_queue_len(q2), 2);
    ev = NULL;
    CHECK_RC(gm_await(c, a, 1000, &ev), GM_OK);
    if (ev) CHECK_EQ(ev->kind, GM_EV_RESPONSE);
    gm_event_free(ev);
    ev = NULL;
    CHECK_RC(gm_await_body(c, a, 1000, &ev), GM_OK);
    if (ev) CHECK_EQ(ev->data_len, 6);
    gm_event_free(ev);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
    gm_queue_free(q2);
}

TEST(request_timeout) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    gm_req_opts o = {.size = sizeof o, .timeout_ms = 200};
    gm_ref ref = 0;
    int64_t t0 = check_now_ms();
    REQUIRE_RC(gm_request(c, "GET", "/delay/2000", NULL, 0, NULL, 0, 0, &o, &ref), GM_OK);
    gm_event *ev = NULL;
    REQUIRE_RC(gm_await(c, ref, WAIT_MS, &ev), GM_OK);
    int64_t ms = check_now_ms() - t0;
    CHECK_EQ(ev->kind, GM_EV_ERROR);
    CHECK_EQ(ev->ref, ref);
    CHECK_PREFIX(ev->reason, "timeout");
    CHECK(ev->conn == c);
    CHECK(ev->data == NULL && ev->headers == NULL && ev->protocol == NULL);
    CHECK_EQ(ev->status, 0);
    gm_event_free(ev);
    CHECK(ms >= 190);
    CHECK(ms < 1500);
    /* It was cancelled: the late answer is dropped, the next request
     * (pipelined behind it) is answered. */
    stream s;
    stream_init(&s, get(c, "/bytes/5"));
    int stray = 0;
    CHECK(collect(q, &s, 1, WAIT_MS, &stray));
    CHECK_EQ(s.status, 200);
    CHECK_EQ(stray, 0);
    stream_free(&s);
    /* A timeout that does not fire: no ERROR. */
    o.timeout_ms = 2000;
    stream_init(&s, 0);
    REQUIRE_RC(gm_request(c, "GET", "/bytes/5", NULL, 0, NULL, 0, 0, &o, &s.ref), GM_OK);
    CHECK(collect(q, &s, 1, WAIT_MS, &stray));
    CHECK_EQ(s.errors, 0);
    CHECK_EQ(s.status, 200);
    stream_free(&s);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

/* The server cuts the connection mid-response with two requests pipelined
 * behind: ERROR closed for each in-flight stream, one DOWN listing them,
 * then UP again. */
TEST(drop_kills_inflight_then_reconnects) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    stream ss[3];
    stream_init(&ss[0], get(c, "/drop?after=100"));
    stream_init(&ss[1], get(c, "/bytes/10"));
    stream_init(&ss[2], get(c, "/bytes/20"));
    int stray = 0;
    CHECK(collect(q, ss, 3, WAIT_MS, &stray));
    CHECK_EQ(stray, 0);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(ss[i].errors, 1);
        CHECK_PREFIX(ss[i].reason, "closed");
    }
    CHECK(ss[0].body_len <= 100);
    CHECK_EQ(ss[1].responses + ss[1].datas, 0);
    CHECK_EQ(ss[2].responses + ss[2].datas, 0);
    /* Then DOWN. */
    gm_event *ev = next_event(q, WAIT_MS);
    REQUIRE(ev != NULL);
    CHECK_EQ(ev->kind, GM_EV_DOWN);
    CHECK(ev->conn == c);
    CHECK_STR(ev->protocol, "http");
    CHECK(ev->reason && ev->reason[0]);
    CHECK_EQ(ev->n_killed, 3);
    int found = 0;
    for (size_t k = 0; k < ev->n_killed; k++)
        for (int i = 0; i < 3; i++) found += ev->killed[k] == ss[i].ref;
    CHECK_EQ(found, 3);
    fprintf(stderr, "    DOWN reason \"%s\", %zu killed\n", ev->reason ? ev->reason : "(null)", ev->n_killed);
    gm_event_free(ev);
    for (int i = 0; i < 3; i++) stream_free(&ss[i]);
    /* Then UP again (the first retry is immediate). */
    const char *proto = NULL;
    ev = next_event(q, WAIT_MS);
    REQUIRE(ev != NULL);
    CHECK_EQ(ev->kind, GM_EV_UP);
    CHECK_STR(ev->protocol, "http");
    gm_event_free(ev);
    (void)proto;
    /* In-flight requests are not retried; new ones work. */
    char *body = NULL;
    size_t len = 0;
    CHECK_EQ(get_body(c, "/bytes/30", &body, &len), 200);
    CHECK_EQ(len, 30);
    free(body);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

/* A response with connection: close completes (it is not killed): DOWN
 * "normal" with no streams, then UP. */
TEST(connection_close_response) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    stream s;
    stream_init(&s, get(c, "/close"));
    int stray = 0;
    CHECK(collect(q, &s, 1, WAIT_MS, &stray));
    CHECK_EQ(s.status, 200);
    CHECK_EQ(s.errors, 0);
    CHECK(s.body && strcmp((const char *)s.body, "bye") == 0);
    stream_free(&s);
    gm_event *ev = next_event(q, WAIT_MS);
    REQUIRE(ev != NULL);
    CHECK_EQ(ev->kind, GM_EV_DOWN);
    CHECK_PREFIX(ev->reason, "normal");
    CHECK_EQ(ev->n_killed, 0);
    gm_event_free(ev);
    ev = next_event(q, WAIT_MS);
    REQUIRE(ev != NULL);
    CHECK_EQ(ev->kind, GM_EV_UP);
    gm_event_free(ev);
    CHECK_EQ(get_body(c, "/bytes/1", NULL, NULL), 200);
    /* A request sent with connection: close: answered, then reconnect. */
    gm_header h = {"connection", "close", SIZE_MAX, SIZE_MAX};
    stream_init(&s, 0);
    REQUIRE_RC(gm_request(c, "GET", "/bytes/2", &h, 1, NULL, 0, 0, NULL, &s.ref), GM_OK);
    CHECK(collect(q, &s, 1, WAIT_MS, &stray));
    CHECK_EQ(s.status, 200);
    CHECK_EQ(s.body_len, 2);
    stream_free(&s);
    CHECK_RC(gm_await_up(c, WAIT_MS, NULL), GM_OK);
    CHECK_EQ(get_body(c, "/bytes/1", NULL, NULL), 200);
    CHECK_EQ(stray, 0);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

TEST(large_and_unusual_bodies) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    stream ss[3];
    stream_init(&ss[0], get(c, "/bytes/1000000"));
    stream_init(&ss[1], get(c, "/chunked/100000?chunk=1000"));
    stream_init(&ss[2], get(c, "/big-headers?n=20000"));
    int stray = 0;
    CHECK(collect(q, ss, 3, WAIT_MS * 2, &stray));
    CHECK_EQ(stray, 0);
    CHECK_EQ(ss[0].body_len, 1000000);
    CHECK(is_pattern(ss[0].body, ss[0].body_len, 0));
    CHECK_EQ(ss[1].body_len, 100000);
    CHECK(is_pattern(ss[1].body, ss[1].body_len, 0));
    CHECK_EQ(ss[2].status, 200);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(ss[i].errors, 0);
        stream_free(&ss[i]);
    }
    /* A close-delimited body, and an HTTP/1.0 answer. */
    char *body = NULL;
    size_t len = 0;
    CHECK_EQ(get_body(c, "/nolength?size=5000", &body, &len), 200);
    CHECK_EQ(len, 5000);
    CHECK(body && is_pattern((const uint8_t *)body, len, 0));
    free(body);
    CHECK_RC(gm_await_up(c, WAIT_MS, NULL), GM_OK);
    body = NULL;
    CHECK_EQ(get_body(c, "/http10", &body, &len), 200);
    CHECK(body && strcmp(body, "ok") == 0);
    free(body);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

/* gm_await_body reports a stream that ended with an ERROR: GM_ESTREAM and
 * the reason in gm_errmsg. */
TEST(await_body_stream_error) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    gm_req_opts o = {.size = sizeof o, .timeout_ms = 100};
    gm_ref ref = 0;
    REQUIRE_RC(gm_request(c, "GET", "/delay/500", NULL, 0, NULL, 0, 0, &o, &ref), GM_OK);
    gm_event *ev = NULL;
    CHECK_FAILS(gm_await_body(c, ref, WAIT_MS, &ev), GM_ESTREAM);
    CHECK(strstr(gm_errmsg(), "timeout") != NULL);
    CHECK(ev == NULL);
    /* A connection lost mid-body. */
    ref = get(c, "/drop?after=10");
    CHECK_FAILS(gm_await_body(c, ref, WAIT_MS, &ev), GM_ESTREAM);
    CHECK(strstr(gm_errmsg(), "closed") != NULL);
    CHECK(ev == NULL);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

/* What reaches the server: a host header added, content-length for a body,
 * the caller's headers as given. */
TEST(request_as_the_server_sees_it) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    gm_header h[2] = {{"x-one", "1", SIZE_MAX, SIZE_MAX}, {"X-Two", "two words", SIZE_MAX, SIZE_MAX}};
    gm_ref ref = 0;
    REQUIRE_RC(gm_request(c, "PUT", "/headers?a=b", h, 2, "12345", 5, 0, NULL, &ref), GM_OK);
    gm_event *ev = NULL;
    REQUIRE_RC(gm_await_body(c, ref, WAIT_MS, &ev), GM_OK);
    const char *j = (const char *)ev->data;
    char host[64];
    snprintf(host, sizeof host, "\"host\":\"127.0.0.1:%d\"", http_port());
    CHECK(j && strstr(j, "\"method\":\"PUT\""));
    CHECK(j && strstr(j, "\"path\":\"/headers\""));
    CHECK(j && strstr(j, "\"query\":\"a=b\""));
    CHECK(j && strstr(j, host));
    CHECK(j && strstr(j, "\"proto\":\"HTTP/1.1\""));
    CHECK(j && strstr(j, "\"x-one\":[\"1\"]"));
    CHECK(j && strstr(j, "\"x-two\":[\"two words\"]"));
    CHECK(j && strstr(j, "\"content_length\":5"));
    CHECK(j && strstr(j, "\"body_len\":5"));
    if (j && !strstr(j, host)) fprintf(stderr, "    /headers: %s\n", j);
    gm_event_free(ev);
    CHECK(close_and_free(q, c));

    /* http_opts.version HTTP/1.0 */
    c = open_up_opts(q, "{\"http_opts\":{\"version\":\"HTTP/1.0\"}}");
    REQUIRE(c != NULL);
    ev = NULL;
    ref = get(c, "/headers");
    REQUIRE_RC(gm_await_body(c, ref, WAIT_MS, &ev), GM_OK);
    CHECK(ev->data && strstr((const char *)ev->data, "\"proto\":\"HTTP/1.0\""));
    gm_event_free(ev);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

/* "The library copies what it keeps": the caller's buffers are freed right
 * after each call (ASan would see any later use), with the request queued
 * while the connection is not up yet. */
TEST(caller_buffers_reusable) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = NULL;
    REQUIRE_RC(gm_open(q, "127.0.0.1", http_port(), NULL, &c), GM_OK);
    char *method = strdup("POST"), *path = strdup("/echo"), *hn = strdup("x-tmp"), *hv = strdup("v");
    char *body = strdup("the body");
    gm_header *h = malloc(sizeof *h);
    REQUIRE(method && path && hn && hv && body && h);
    *h = (gm_header){hn, hv, SIZE_MAX, SIZE_MAX};
    gm_req_opts *o = malloc(sizeof *o);
    REQUIRE(o != NULL);
    *o = (gm_req_opts){.size = sizeof *o};
    gm_ref ref = 0;
    CHECK_RC(gm_request(c, method, path, h, 1, body, 8, 0, o, &ref), GM_OK);
    memset(method, 'X', 4);
    memset(path, 'X', 5);
    memset(body, 'X', 8);
    free(method);
    free(path);
    free(hn);
    free(hv);
    free(body);
    free(h);
    free(o);
    gm_event *ev = NULL;
    CHECK_RC(gm_await_body(c, ref, WAIT_MS, &ev), GM_OK);
    if (ev) {
        CHECK_EQ(ev->status, 200);
        CHECK(ev->data && strcmp((const char *)ev->data, "the body") == 0);
    }
    gm_event_free(ev);
    /* gm_data pieces freed at once. */
    ref = 0;
    REQUIRE_RC(gm_request(c, "POST", "/echo", NULL, 0, NULL, 0, GM_REQ_STREAM, NULL, &ref), GM_OK);
    size_t total = 0;
    for (int i = 0; i < 20; i++) {
        size_t n = 1000 + (size_t)i * 100;
        uint8_t *p = malloc(n);
        for (size_t k = 0; k < n; k++) p[k] = (uint8_t)('a' + (total + k) % 26);
        CHECK_RC(gm_data(c, ref, p, n, i == 19), GM_OK);
        memset(p, 0, n);
        free(p);
        total += n;
    }
    ev = NULL;
    CHECK_RC(gm_await_body(c, ref, WAIT_MS, &ev), GM_OK);
    if (ev) {
        CHECK_EQ(ev->data_len, total);
        CHECK(is_pattern(ev->data, ev->data_len, 0));
    }
    gm_event_free(ev);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

/* Several threads making requests on one connection and awaiting their own
 * streams in the one queue at the same time (selective receive). */
struct worker {
    gm_conn *c;
    int id, ok, bad;
};

static void *worker_thread(void *arg) {
    struct worker *w = arg;
    char path[64];
    for (int i = 0; i < 25; i++) {
        int n = 1 + w->id * 100 + i;
        snprintf(path, sizeof path, "/bytes/%d", n);
        gm_ref ref = 0;
        if (gm_request(w->c, "GET", path, NULL, 0, NULL, 0, 0, NULL, &ref) != GM_OK) {
            w->bad++;
            continue;
        }
        gm_event *ev = NULL;
        if (gm_await_body(w->c, ref, WAIT_MS, &ev) != GM_OK) {
            w->bad++;
            continue;
        }
        if (ev->status == 200 && ev->data_len == (size_t)n && is_pattern(ev->data, ev->data_len, 0))
            w->ok++;
        else
            w->bad++;
        gm_event_free(ev);
    }
    return NULL;
}

TEST(requests_from_many_threads) {
    enum { T = 4 };
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    struct worker w[T];
    pthread_t th[T];
    for (int i = 0; i < T; i++) {
        w[i] = (struct worker){.c = c, .id = i};
        REQUIRE(pthread_create(&th[i], NULL, worker_thread, &w[i]) == 0);
    }
    int ok = 0, bad = 0;
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        ok += w[i].ok;
        bad += w[i].bad;
    }
    CHECK_EQ(ok, T * 25);
    CHECK_EQ(bad, 0);
    CHECK_EQ(gm_queue_len(q), 0);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

static const struct check_case cases[] = {
    CASE(three_concurrent_requests),
    CASE(pipelined_100_answered_in_order),
    CASE(await_then_await_body),
    CASE(await_body_trailers),
    CASE(streamed_body_chunked),
    CASE(streamed_body_content_length),
    CASE(inform_1xx_then_response),
    CASE(head_204_304_have_no_body),
    CASE(cancel_silences_stream),
    CASE(flow_control),
    CASE(reply_to_queue),
    CASE(reply_to_await),
    CASE(request_timeout),
    CASE(drop_kills_inflight_then_reconnects),
    CASE(connection_close_response),
    CASE(large_and_unusual_bodies),
    CASE(await_body_stream_error),
    CASE(request_as_the_server_sees_it),
    CASE(caller_buffers_reusable),
    CASE(requests_from_many_threads),
};

int main(int argc, char **argv) { return check_main(argc, argv, cases, CHECK_N(cases)); }
