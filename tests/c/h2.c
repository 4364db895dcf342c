/*
 * h2.c — HTTP/2 through the C ABI against the test server (h2c with prior
 * knowledge on its cleartext port, h2 by ALPN on its TLS port): push, ping,
 * cancel, GOAWAY, flow control and streamed bodies.
 */
#include "util.h"

static const char *H2C = "{\"protocols\":[\"http2\"]}";

/* The protocol in use, from gm_info (1 when it is want). lifecycle.c
 * checks gm_await_up's protocol out-parameter; these tests pass NULL. */
static int protocol_is(gm_conn *c, const char *want) {
    gm_event *info = NULL;
    if (gm_info(c, &info) != GM_OK) return 0;
    const char *p = ev_header(info, "protocol");
    int ok = p && strcmp(p, want) == 0;
    if (!ok) fprintf(stderr, "    protocol %s, want %s\n", p ? p : "(none)", want);
    gm_event_free(info);
    return ok;
}

static gm_conn *open_h2c(gm_queue *q, const char *opts) {
    gm_conn *c = NULL;
    int rc = gm_open(q, "127.0.0.1", http_port(), opts ? opts : H2C, &c);
    CHECK_RC(rc, GM_OK);
    if (rc != GM_OK) return NULL;
    rc = gm_await_up(c, WAIT_MS, NULL);
    CHECK_RC(rc, GM_OK);
    if (rc != GM_OK) {
        gm_conn_free(c);
        return NULL;
    }
    CHECK(protocol_is(c, "http2"));
    return c;
}

static gm_ref get_opts(gm_conn *c, const char *path, const gm_req_opts *o) {
    gm_ref ref = 0;
    CHECK_RC(gm_request(c, "GET", path, NULL, 0, NULL, 0, 0, o, &ref), GM_OK);
    CHECK(ref != 0);
    return ref;
}

static gm_ref get(gm_conn *c, const char *path) { return get_opts(c, path, NULL); }

TEST(tls_alpn_h2) {
    const char *ca = getenv("GM_TEST_CA");
    REQUIRE(ca != NULL && *ca);
    char opts[1024];
    snprintf(opts, sizeof opts, "{\"transport\":\"tls\",\"tls_opts\":{\"cacertfile\":\"%s\"}}", ca);
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = NULL;
    REQUIRE_RC(gm_open(q, "localhost", https_port(), opts, &c), GM_OK);
    CHECK_RC(gm_await_up(c, WAIT_MS, NULL), GM_OK);
    CHECK(protocol_is(c, "http2"));
    char *body = NULL;
    size_t len = 0;
    CHECK_EQ(get_body(c, "/bytes/100000", &body, &len), 200);
    CHECK_EQ(len, 100000);
    CHECK(body && is_pattern((const uint8_t *)body, len, 0));
    free(body);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

TEST(push) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_h2c(q, NULL);
    REQUIRE(c != NULL);
    gm_ref ref = get(c, "/push");
    gm_ref pushed[2] = {0, 0};
    int npush = 0, parent_response = 0, push_after_response = 0;
    stream ss[3];
    stream_init(&ss[0], ref);
    int done = 0;
    int64_t end = check_now_ms() + WAIT_MS;
    while (done < 3 && check_now_ms() < end) {
        gm_event *ev = next_event(q, (int)(end - check_now_ms()));
        if (!ev) break;
        if (ev->kind == GM_EV_PUSH) {
            CHECK_EQ(ev->ref, ref);
            CHECK(ev->new_ref != 0 && ev->new_ref != ref);
            CHECK_STR(ev->method, "GET");
            CHECK(ev->uri && strncmp(ev->uri, "http://127.0.0.1:", 17) == 0);
            if (parent_response) push_after_response++;
            if (npush < 2) {
                pushed[npush] = ev->new_ref;
                stream_init(&ss[1 + npush], ev->new_ref);
            }
            npush++;
        } else {
            int found = 0;
            for (int i = 0; i < 1 + (npush < 2 ? npush : 2); i++) {
                if (ss[i].ref == ev->ref) {
                    int was = ss[i].done;
                    stream_add(&ss[i], ev);
                    if (!was && ss[i].done) done++;
                    found = 1;
                }
            }
            if (ev->kind == GM_EV_RESPONSE && ev->ref == ref) parent_response = 1;
            CHECK(found);
        }
        gm_event_free(ev);
    }
    CHECK_EQ(npush, 2);
    CHECK_EQ(push_after_response, 0);
    CHECK_EQ(done, 3);
    CHECK_EQ(ss[0].status, 200);
    CHECK(ss[0].body_len == 4 && memcmp(ss[0].body, "main", 4) == 0);
    size_t total = 0;
    for (int i = 1; i < 3 && i <= npush; i++) {
        CHECK_EQ(ss[i].status, 200);
        CHECK_EQ(ss[i].errors, 0);
        total += ss[i].body_len;
    }
    CHECK_EQ(total, 10 + 6); /* /bytes/10 and "pushed" */
    (void)pushed;
    for (int i = 0; i < 1 + (npush < 2 ? npush : 2); i++) stream_free(&ss[i]);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

TEST(ping) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_h2c(q, NULL);
    REQUIRE(c != NULL);
    gm_ref a = 0, b = 0;
    REQUIRE_RC(gm_ping(c, &a), GM_OK);
    REQUIRE_RC(gm_ping(c, &b), GM_OK);
    CHECK(a != 0 && b != 0 && a != b);
    int acked = 0;
    for (int i = 0; i < 2; i++) {
        gm_event *ev = next_event(q, WAIT_MS);
        REQUIRE(ev != NULL);
        CHECK_EQ(ev->kind, GM_EV_NOTIFY);
        CHECK_STR(ev->reason, "ping_ack");
        CHECK(ev->conn == c);
        if (ev->ref == a || ev->ref == b) acked++;
        gm_event_free(ev);
    }
    CHECK_EQ(acked, 2);
    CHECK_FAILS(gm_ping(c, NULL), GM_EINVAL);
    CHECK_FAILS(gm_ping(NULL, &a), GM_EINVAL);
    CHECK(close_and_free(q, c));

    /* HTTP/1.1 has no ping. */
    gm_conn *c1 = open_up(q);
    REQUIRE(c1 != NULL);
    CHECK_FAILS(gm_ping(c1, &a), GM_EUNSUPPORTED);
    CHECK(close_and_free(q, c1));
    gm_queue_free(q);
}

TEST(cancel) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_h2c(q, NULL);
    REQUIRE(c != NULL);
    gm_ref ref = get(c, "/infinite");
    gm_event *ev = wait_kind(q, c, GM_EV_RESPONSE, WAIT_MS, NULL);
    REQUIRE(ev != NULL);
    CHECK_EQ(ev->ref, ref);
    gm_event_free(ev);
    CHECK_RC(gm_cancel(c, ref), GM_OK);
    gm_event *info = NULL;
    CHECK_RC(gm_stream_info(c, ref, &info), GM_ENOSTREAM);
    /* Whatever was queued before the cancel is DATA of that stream; then
     * nothing more comes for it. */
    gm_event *evs[64];
    int k, bad = 0;
    while ((k = gm_queue_poll(q, evs, 64, 200)) > 0) {
        for (int i = 0; i < k; i++) bad += evs[i]->ref != ref || evs[i]->kind != GM_EV_DATA;
        gm_events_free(evs, k);
    }
    CHECK_EQ(bad, 0);
    char *body = NULL;
    CHECK_EQ(get_body(c, "/bytes/10", &body, NULL), 200);
    CHECK_STR(body, "abcdefghij");
    free(body);
    CHECK_RC(gm_cancel(c, ref), GM_OK); /* unknown now: ignored */
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

/* The test server answers /close over HTTP/2 with a GOAWAY: the stream in
 * flight finishes, the connection goes DOWN and comes back UP. */
TEST(goaway) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_h2c(q, "{\"protocols\":[\"http2\"],\"retry\":1}");
    REQUIRE(c != NULL);
    gm_ref ref = get(c, "/close");
    stream s;
    stream_init(&s, ref);
    int stray = 0;
    CHECK(collect(q, &s, 1, WAIT_MS, &stray));
    CHECK_EQ(s.status, 200);
    CHECK(s.body_len == 3 && memcmp(s.body, "bye", 3) == 0);
    stream_free(&s);
    gm_event *down = wait_kind(q, c, GM_EV_DOWN, WAIT_MS, NULL);
    REQUIRE(down != NULL);
    CHECK_STR(down->protocol, "http2");
    CHECK(down->reason && (strcmp(down->reason, "normal") == 0 || strcmp(down->reason, "closed") == 0));
    CHECK_EQ(down->n_killed, 0);
    gm_event_free(down);
    CHECK_RC(gm_await_up(c, WAIT_MS, NULL), GM_OK);
    CHECK(protocol_is(c, "http2"));
    char *body = NULL;
    CHECK_EQ(get_body(c, "/bytes/10", &body, NULL), 200);
    free(body);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

/* Gun's flow on HTTP/2: with a small stream window, a stream whose flow
 * ran out stops at the window; gm_update_flow lets the rest come. */
TEST(flow) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_h2c(q, "{\"protocols\":[\"http2\"],\"http2_opts\":{\"initial_stream_window_size\":65535}}");
    REQUIRE(c != NULL);
    gm_req_opts o = {.size = sizeof o, .flow = 1};
    gm_ref ref = get_opts(c, "/bytes/1000000", &o);
    size_t got = 0;
    int fin = 0;
    gm_event *evs[64];
    int64_t quiet_since = check_now_ms();
    /* Take everything that comes until 300 ms pass without an event. */
    while (check_now_ms() - quiet_since < 300) {
        int k = gm_queue_poll(q, evs, 64, 100);
        REQUIRE(k >= 0);
        for (int i = 0; i < k; i++) {
            CHECK_EQ(evs[i]->ref, ref);
            got += evs[i]->data_len;
            fin |= evs[i]->kind == GM_EV_DATA && evs[i]->fin;
        }
        if (k > 0) quiet_since = check_now_ms();
        gm_events_free(evs, k);
    }
    CHECK(!fin);
    CHECK(got > 0 && got <= 65535 + 65535);
    gm_event *info = NULL;
    REQUIRE_RC(gm_stream_info(c, ref, &info), GM_OK);
    CHECK_STR(ev_header(info, "flow"), "0");
    gm_event_free(info);
    CHECK_RC(gm_update_flow(c, ref, 1000), GM_OK);
    int64_t end = check_now_ms() + WAIT_MS;
    while (!fin && check_now_ms() < end) {
        int k = gm_queue_poll(q, evs, 64, (int)(end - check_now_ms()));
        REQUIRE(k >= 0);
        for (int i = 0; i < k; i++) {
            got += evs[i]->data_len;
            fin |= evs[i]->kind == GM_EV_DATA && evs[i]->fin;
        }
        gm_events_free(evs, k);
    }
    CHECK(fin);
    CHECK_EQ(got, 1000000);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

/* A streamed body through gm_data, with small windows on our side. */
TEST(streamed_body) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_h2c(q, NULL);
    REQUIRE(c != NULL);
    gm_ref ref = 0;
    REQUIRE_RC(gm_request(c, "POST", "/echo", NULL, 0, NULL, 0, GM_REQ_STREAM, NULL, &ref), GM_OK);
    static uint8_t piece[100000];
    for (size_t i = 0; i < sizeof piece; i++) piece[i] = (uint8_t)('a' + i % 26);
    /* 26 pieces of 100000 keep the pattern aligned (100000 % 26 = 4: no),
     * so send pieces of 26 * 3846 bytes instead. */
    size_t plen = 26 * 3846, total = 0;
    for (int i = 0; i < 20; i++) {
        CHECK_RC(gm_data(c, ref, piece, plen, i == 19), GM_OK);
        total += plen;
    }
    gm_event *ev = NULL;
    REQUIRE_RC(gm_await_body(c, ref, WAIT_MS, &ev), GM_OK);
    CHECK_EQ(ev->status, 200);
    CHECK_EQ(ev->data_len, total);
    CHECK(is_pattern(ev->data, ev->data_len, 0));
    gm_event_free(ev);
    /* Connection-specific headers are refused before anything is sent. */
    gm_header bad = {"connection", "close", SIZE_MAX, SIZE_MAX};
    CHECK_FAILS(gm_request(c, "GET", "/", &bad, 1, NULL, 0, 0, NULL, &ref), GM_EINVAL);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

/* Eight 1 MiB bodies at once, taken with gm_queue_poll in small batches and
 * each DATA event kept while the next batches arrive (the last 48): every
 * event's bytes are the body's at its offset when taken and still when
 * freed. Big DATA events come from recycled memory on both sides (a pooled
 * Go buffer copied out at poll, a C block given back at free): an event
 * whose memory was reused while held, or copied after reuse, fails here. */
TEST(bodies_polled_and_held) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_h2c(q, NULL);
    REQUIRE(c != NULL);
    enum { N = 8, KEEP = 48 };
    gm_ref refs[N];
    size_t off[N] = {0};
    int done = 0, bad = 0;
    for (int i = 0; i < N; i++) refs[i] = get(c, "/bytes/1048576");
    struct { gm_event *ev; size_t off; } kept[KEEP];
    int nk = 0;
    int64_t end = check_now_ms() + 8 * WAIT_MS;
    while (done < N && check_now_ms() < end) {
        gm_event *evs[7];
        int k = gm_queue_poll(q, evs, 7, 100);
        CHECK(k >= 0);
        for (int e = 0; e < k; e++) {
            gm_event *ev = evs[e];
            int i = 0;
            while (i < N && refs[i] != ev->ref) i++;
            if (i == N || (ev->kind != GM_EV_RESPONSE && ev->kind != GM_EV_DATA)) {
                bad++;
                gm_event_free(ev);
                continue;
            }
            if (ev->kind == GM_EV_DATA) {
                if (!is_pattern(ev->data, ev->data_len, off[i])) bad++;
                size_t at = off[i];
                off[i] += ev->data_len;
                if (ev->fin) done++;
                if (nk == KEEP) {
                    if (!is_pattern(kept[0].ev->data, kept[0].ev->data_len, kept[0].off)) bad++;
                    gm_event_free(kept[0].ev);
                    memmove(kept, kept + 1, (KEEP - 1) * sizeof kept[0]);
                    nk--;
                }
                kept[nk].ev = ev;
                kept[nk].off = at;
                nk++;
            } else {
                CHECK_EQ(ev->status, 200);
                gm_event_free(ev);
            }
        }
    }
    for (int j = 0; j < nk; j++) {
        if (!is_pattern(kept[j].ev->data, kept[j].ev->data_len, kept[j].off)) bad++;
        gm_event_free(kept[j].ev);
    }
    CHECK_EQ(done, N);
    CHECK_EQ(bad, 0);
    for (int i = 0; i < N; i++) CHECK_EQ(off[i], 1048576);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

static const struct check_case cases[] = {
    CASE(tls_alpn_h2), CASE(push), CASE(ping), CASE(cancel), CASE(goaway), CASE(flow), CASE(streamed_body),
    CASE(bodies_polled_and_held),
};

int main(int argc, char **argv) { return check_main(argc, argv, cases, CHECK_N(cases)); }
