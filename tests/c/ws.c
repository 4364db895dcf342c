/*
 * ws.c — WebSocket through the C ABI (gm_ws_upgrade, gm_ws_send,
 * GM_EV_UPGRADE, GM_EV_WS) against the test server's /ws echo (subprotocols
 * "echo" and "chat"; ?close=CODE makes it close with CODE and reason "bye")
 * and /ws-reject (403 "no").
 */
#include "util.h"

/* Opens a connection with retry 1 (so a close shows DOWN then UP), upgrades
 * it on path with ws_opts, and checks the UPGRADE. *ref gets the stream.
 * The UPGRADE event is returned (the caller frees it), NULL on failure. */
static gm_event *upgrade(gm_queue *q, gm_conn **c, const char *path, const char *ws_opts, gm_ref *ref) {
    *c = open_up_opts(q, "{\"retry\":1}");
    if (!*c) return NULL;
    int rc = gm_ws_upgrade(*c, path, NULL, 0, ws_opts, ref);
    CHECK_RC(rc, GM_OK);
    if (rc != GM_OK) return NULL;
    CHECK(*ref != 0);
    gm_event *ev = next_event(q, WAIT_MS);
    CHECK(ev != NULL);
    if (!ev) return NULL;
    CHECK_EQ(ev->kind, GM_EV_UPGRADE);
    CHECK_EQ(ev->ref, *ref);
    CHECK_STR(ev->protocol, "websocket");
    CHECK(ev_header(ev, "sec-websocket-accept") != NULL);
    if (ev->kind != GM_EV_UPGRADE) {
        gm_event_free(ev);
        return NULL;
    }
    return ev;
}

/* The next event, which must be GM_EV_WS op of ref; NULL otherwise. */
static gm_event *expect_ws(gm_queue *q, gm_ref ref, int op) {
    gm_event *ev = next_event(q, WAIT_MS);
    CHECK(ev != NULL);
    if (!ev) return NULL;
    CHECK_EQ(ev->kind, GM_EV_WS);
    CHECK_EQ(ev->ref, ref);
    CHECK_EQ(ev->ws_opcode, op);
    if (ev->kind != GM_EV_WS || ev->ws_opcode != op) {
        fprintf(stderr, "    got kind %d op %d reason %s\n", ev->kind, ev->ws_opcode, ev->reason ? ev->reason : "-");
        gm_event_free(ev);
        return NULL;
    }
    return ev;
}

/* DOWN (protocol ws, reason normal, killed [ref]) then UP (http). */
static void expect_down_up(gm_queue *q, gm_ref ref) {
    gm_event *ev = next_event(q, WAIT_MS);
    REQUIRE(ev != NULL);
    CHECK_EQ(ev->kind, GM_EV_DOWN);
    CHECK_STR(ev->protocol, "ws");
    CHECK_STR(ev->reason, "normal");
    CHECK_EQ(ev->n_killed, 1);
    if (ev->n_killed == 1) CHECK_EQ(ev->killed[0], ref);
    gm_event_free(ev);
    ev = next_event(q, WAIT_MS);
    REQUIRE(ev != NULL);
    CHECK_EQ(ev->kind, GM_EV_UP);
    CHECK_STR(ev->protocol, "http");
    gm_event_free(ev);
}

TEST(ws_echo_and_close) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = NULL;
    gm_ref ref = 0;
    gm_event *up = upgrade(q, &c, "/ws", "{\"protocols\":[\"mqtt\",\"chat\"]}", &ref);
    if (up) {
        CHECK_STR(ev_header(up, "sec-websocket-protocol"), "chat");
        gm_event_free(up);
        static const uint8_t bin[] = {0, 1, 2, 255};
        gm_ws_frame frames[] = {
            {GM_WS_TEXT, 0, "hello", 5},
            {GM_WS_BINARY, 0, bin, sizeof bin},
            {GM_WS_TEXT, 0, NULL, 0},
        };
        CHECK_RC(gm_ws_send(c, ref, frames, 3), GM_OK);
        gm_event *ev = expect_ws(q, ref, GM_WS_TEXT);
        if (ev) {
            CHECK_EQ(ev->data_len, 5);
            CHECK(ev->data && memcmp(ev->data, "hello", 5) == 0);
            gm_event_free(ev);
        }
        ev = expect_ws(q, ref, GM_WS_BINARY);
        if (ev) {
            CHECK_EQ(ev->data_len, sizeof bin);
            CHECK(ev->data && memcmp(ev->data, bin, sizeof bin) == 0);
            gm_event_free(ev);
        }
        ev = expect_ws(q, ref, GM_WS_TEXT);
        if (ev) {
            CHECK_EQ(ev->data_len, 0);
            gm_event_free(ev);
        }
        /* The connection info says ws now. */
        gm_event *info = NULL;
        CHECK_RC(gm_info(c, &info), GM_OK);
        if (info) CHECK_STR(ev_header(info, "protocol"), "ws");
        gm_event_free(info);
        /* Close code and reason round-trip (the server echoes them). */
        gm_ws_frame cl = {GM_WS_CLOSE, 4123, "bye now", 7};
        CHECK_RC(gm_ws_send(c, ref, &cl, 1), GM_OK);
        ev = expect_ws(q, ref, GM_WS_CLOSE);
        if (ev) {
            CHECK_EQ(ev->status, 4123);
            CHECK_EQ(ev->data_len, 7);
            CHECK(ev->data && memcmp(ev->data, "bye now", 7) == 0);
            gm_event_free(ev);
        }
        expect_down_up(q, ref);
        /* The stream is gone; the connection is HTTP again. */
        gm_ws_frame t = {GM_WS_TEXT, 0, "x", 1};
        CHECK_FAILS(gm_ws_send(c, ref, &t, 1), GM_ENOSTREAM);
        CHECK_EQ(get_body(c, "/bytes/3", NULL, NULL), 200);
    }
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

TEST(ws_many_messages_in_order) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = NULL;
    gm_ref ref = 0;
    gm_event *up = upgrade(q, &c, "/ws", NULL, &ref);
    gm_event_free(up);
    if (up) {
        enum { N = 2000, BATCH = 100 };
        static char text[BATCH][16];
        gm_ws_frame frames[BATCH];
        int got = 0, bad = 0;
        for (int i = 0; i < N; i += BATCH) {
            for (int j = 0; j < BATCH; j++) {
                int len = snprintf(text[j], sizeof text[j], "m%d", i + j);
                frames[j] = (gm_ws_frame){GM_WS_TEXT, 0, text[j], (size_t)len};
            }
            CHECK_RC(gm_ws_send(c, ref, frames, BATCH), GM_OK);
            /* Take what has arrived, in batches. */
            gm_event *evs[256];
            int k;
            while ((k = gm_queue_poll(q, evs, 256, 0)) > 0) {
                for (int e = 0; e < k; e++) {
                    char want[16];
                    int wl = snprintf(want, sizeof want, "m%d", got);
                    if (evs[e]->kind != GM_EV_WS || evs[e]->data_len != (size_t)wl ||
                        memcmp(evs[e]->data, want, (size_t)wl) != 0)
                        bad++;
                    got++;
                }
                gm_events_free(evs, k);
            }
        }
        int64_t end = check_now_ms() + 4 * WAIT_MS;
        while (got < N && check_now_ms() < end) {
            gm_event *evs[256];
            int k = gm_queue_poll(q, evs, 256, 100);
            for (int e = 0; e < k; e++) {
                char want[16];
                int wl = snprintf(want, sizeof want, "m%d", got);
                if (evs[e]->kind != GM_EV_WS || evs[e]->data_len != (size_t)wl ||
                    memcmp(evs[e]->data, want, (size_t)wl) != 0)
                    bad++;
                got++;
            }
            if (k > 0) gm_events_free(evs, k);
        }
        CHECK_EQ(got, N);
        CHECK_EQ(bad, 0);
    }
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

/* gm_ws_send_nowait with nothing taken from the queue (so the echo server
 * blocks writing and stops reading): it never blocks, answers GM_EAGAIN once
 * the output is past its bound, and every frame it took, none it refused,
 * comes back once the queue is drained. */
TEST(ws_send_nowait) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = NULL;
    gm_ref ref = 0;
    gm_event *up = upgrade(q, &c, "/ws", NULL, &ref);
    gm_event_free(up);
    if (up) {
        static char buf[64 << 10];
        memset(buf, '.', sizeof buf);
        int sent = 0, rc = GM_OK;
        for (; sent < 4096; sent++) {
            char tag[16];
            snprintf(tag, sizeof tag, "%08u", (unsigned)sent);
            memcpy(buf, tag, 8);
            gm_ws_frame f = {GM_WS_BINARY, 0, buf, sizeof buf};
            if ((rc = gm_ws_send_nowait(c, ref, &f, 1)) != GM_OK) break;
        }
        CHECK_RC(rc, GM_EAGAIN);
        CHECK(strstr(gm_errmsg(), "nothing was sent") != NULL);
        CHECK_STR(gm_strerror(GM_EAGAIN), "would block");
        int got = 0, bad = 0;
        int64_t end = check_now_ms() + 8 * WAIT_MS;
        while (got < sent && check_now_ms() < end) {
            gm_event *evs[256];
            int k = gm_queue_poll(q, evs, 256, 100);
            for (int e = 0; e < k; e++) {
                char want[16];
                snprintf(want, sizeof want, "%08u", (unsigned)got);
                if (evs[e]->kind != GM_EV_WS || evs[e]->data_len != sizeof buf || memcmp(evs[e]->data, want, 8) != 0)
                    bad++;
                got++;
            }
            if (k > 0) gm_events_free(evs, k);
        }
        CHECK_EQ(got, sent);
        CHECK_EQ(bad, 0);
        gm_event *extra = next_event(q, 200);
        CHECK(extra == NULL); /* the refused frame was not sent */
        if (extra) gm_event_free(extra);
        gm_ws_frame f = {GM_WS_TEXT, 0, "after", 5};
        CHECK_RC(gm_ws_send_nowait(c, ref, &f, 1), GM_OK);
        gm_event *ev = expect_ws(q, ref, GM_WS_TEXT);
        if (ev) {
            CHECK(ev->data_len == 5 && memcmp(ev->data, "after", 5) == 0);
            gm_event_free(ev);
        }
    }
    CHECK_RC(gm_ws_send_nowait(NULL, 1, NULL, 0), GM_EINVAL);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

TEST(ws_server_close) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = NULL;
    gm_ref ref = 0;
    gm_event *up = upgrade(q, &c, "/ws?close=4001", NULL, &ref);
    gm_event_free(up);
    if (up) {
        gm_event *ev = expect_ws(q, ref, GM_WS_CLOSE);
        if (ev) {
            CHECK_EQ(ev->status, 4001);
            CHECK_EQ(ev->data_len, 3);
            CHECK(ev->data && memcmp(ev->data, "bye", 3) == 0);
            gm_event_free(ev);
        }
        expect_down_up(q, ref);
    }
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

TEST(ws_rejected_is_a_response) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    gm_ref ref = 0;
    REQUIRE_RC(gm_ws_upgrade(c, "/ws-reject", NULL, 0, NULL, &ref), GM_OK);
    stream s;
    stream_init(&s, ref);
    CHECK(collect(q, &s, 1, WAIT_MS, NULL));
    CHECK_EQ(s.status, 403);
    CHECK_EQ(s.errors, 0);
    CHECK(s.body && strcmp((char *)s.body, "no\n") == 0);
    stream_free(&s);
    CHECK_EQ(get_body(c, "/bytes/2", NULL, NULL), 200);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

TEST(ws_request_after_upgrade_is_a_connection_error) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = NULL;
    gm_ref ref = 0;
    gm_event *up = upgrade(q, &c, "/ws", NULL, &ref);
    gm_event_free(up);
    if (up) {
        gm_ref r = 0;
        CHECK_RC(gm_request(c, "GET", "/", NULL, 0, NULL, 0, 0, NULL, &r), GM_OK);
        gm_event *ev = next_event(q, WAIT_MS);
        CHECK(ev != NULL);
        if (ev) {
            CHECK_EQ(ev->kind, GM_EV_ERROR);
            CHECK_EQ(ev->ref, 0);
            CHECK_PREFIX(ev->reason, "badstate");
            gm_event_free(ev);
        }
    }
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

TEST(ws_over_http10_is_badstate) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up_opts(q, "{\"http_opts\":{\"version\":\"HTTP/1.0\"}}");
    REQUIRE(c != NULL);
    gm_ref ref = 0;
    CHECK_RC(gm_ws_upgrade(c, "/ws", NULL, 0, NULL, &ref), GM_OK);
    gm_event *ev = next_event(q, WAIT_MS);
    CHECK(ev != NULL);
    if (ev) {
        CHECK_EQ(ev->kind, GM_EV_ERROR);
        CHECK_EQ(ev->ref, ref);
        CHECK_PREFIX(ev->reason, "badstate: Websocket cannot be used over an HTTP/1.0 connection");
        gm_event_free(ev);
    }
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

TEST(ws_pings_when_not_silenced) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = NULL;
    gm_ref ref = 0;
    gm_event *up = upgrade(q, &c, "/ws", "{\"silence_pings\":false}", &ref);
    gm_event_free(up);
    if (up) {
        /* {ping, Payload}: the server's pong carries the caller's payload. */
        gm_ws_frame ping = {GM_WS_PING, 0, "mine", 4};
        CHECK_RC(gm_ws_send(c, ref, &ping, 1), GM_OK);
        gm_event *ev = expect_ws(q, ref, GM_WS_PONG);
        if (ev) CHECK(ev->data_len == 4 && memcmp(ev->data, "mine", 4) == 0);
        gm_event_free(ev);
        /* An unsolicited pong is sent and gets no answer; the next ping's
         * pong is the next event. */
        gm_ws_frame frames[] = {{GM_WS_PONG, 0, "u", 1}, {GM_WS_PING, 0, NULL, 0}};
        CHECK_RC(gm_ws_send(c, ref, frames, 2), GM_OK);
        ev = expect_ws(q, ref, GM_WS_PONG);
        if (ev) CHECK(ev->data_len == 0);
        gm_event_free(ev);
    }
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

TEST(ws_bad_input) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_ref ref = 0;
    gm_ws_frame t = {GM_WS_TEXT, 0, "x", 1};
    /* Before any connection. */
    CHECK_FAILS(gm_ws_upgrade(NULL, "/ws", NULL, 0, NULL, &ref), GM_EINVAL);
    CHECK_FAILS(gm_ws_send(NULL, 1, &t, 1), GM_EINVAL);

    gm_conn *c = NULL;
    gm_event *up = upgrade(q, &c, "/ws", NULL, &ref);
    gm_event_free(up);
    if (up) {
        gm_ref r2 = 0;
        CHECK_FAILS(gm_ws_upgrade(c, NULL, NULL, 0, NULL, &r2), GM_EINVAL);
        CHECK_FAILS(gm_ws_upgrade(c, "/ws", NULL, 0, NULL, NULL), GM_EINVAL);
        CHECK_FAILS(gm_ws_upgrade(c, "/w s", NULL, 0, NULL, &r2), GM_EINVAL);
        CHECK_FAILS(gm_ws_upgrade(c, "/ws", NULL, 2, NULL, &r2), GM_EINVAL);
        gm_header bad = {"x", "a\r\nb", SIZE_MAX, SIZE_MAX};
        CHECK_FAILS(gm_ws_upgrade(c, "/ws", &bad, 1, NULL, &r2), GM_EINVAL);
        CHECK_FAILS(gm_ws_upgrade(c, "/ws", NULL, 0, "{\"compress\":3}", &r2), GM_EOPTION);
        CHECK_PREFIX(strstr(gm_errmsg(), "compress"), "compress");
        CHECK_FAILS(gm_ws_upgrade(c, "/ws", NULL, 0, "{\"nope\":1}", &r2), GM_EOPTION);
        CHECK_FAILS(gm_ws_upgrade(c, "/ws", NULL, 0, "not json", &r2), GM_EOPTION);

        CHECK_FAILS(gm_ws_send(c, ref, NULL, 1), GM_EINVAL);
        gm_ws_frame nodata = {GM_WS_BINARY, 0, NULL, 3};
        CHECK_FAILS(gm_ws_send(c, ref, &nodata, 1), GM_EINVAL);
        gm_ws_frame badop = {3, 0, NULL, 0};
        CHECK_FAILS(gm_ws_send(c, ref, &badop, 1), GM_EINVAL);
        gm_ws_frame hugeop = {0x10009, 0, NULL, 0};
        CHECK_FAILS(gm_ws_send(c, ref, &hugeop, 1), GM_EINVAL);
        static const uint8_t big[126] = {0};
        gm_ws_frame pong = {GM_WS_PONG, 0, big, sizeof big}; /* control frames: 125 bytes at most */
        CHECK_FAILS(gm_ws_send(c, ref, &pong, 1), GM_EINVAL);
        gm_ws_frame ping = {GM_WS_PING, 0, big, sizeof big};
        CHECK_FAILS(gm_ws_send(c, ref, &ping, 1), GM_EINVAL);
        gm_ws_frame badcode = {GM_WS_CLOSE, 999, NULL, 0};
        CHECK_FAILS(gm_ws_send(c, ref, &badcode, 1), GM_EINVAL);
        gm_ws_frame hugecode = {GM_WS_CLOSE, 0x10000 + 1000, NULL, 0};
        CHECK_FAILS(gm_ws_send(c, ref, &hugecode, 1), GM_EINVAL);
        static const uint8_t notutf8[] = {0xff, 0xfe};
        gm_ws_frame badtext = {GM_WS_TEXT, 0, notutf8, 2};
        CHECK_FAILS(gm_ws_send(c, ref, &badtext, 1), GM_EINVAL);
        gm_ws_frame closefirst[] = {{GM_WS_CLOSE, 1000, NULL, 0}, {GM_WS_TEXT, 0, "x", 1}};
        CHECK_FAILS(gm_ws_send(c, ref, closefirst, 2), GM_EINVAL);
        CHECK_FAILS(gm_ws_send(c, ref + 1000, &t, 1), GM_ENOSTREAM);
        /* n = 0 sends nothing and succeeds. */
        CHECK_RC(gm_ws_send(c, ref, NULL, 0), GM_OK);
        /* None of the refused calls sent anything: the first echo is ours. */
        CHECK_RC(gm_ws_send(c, ref, &t, 1), GM_OK);
        gm_event *ev = expect_ws(q, ref, GM_WS_TEXT);
        if (ev) CHECK(ev->data_len == 1 && ev->data[0] == 'x');
        gm_event_free(ev);
        CHECK(next_event(q, 100) == NULL);
    }
    CHECK(close_and_free(q, c));
    /* After close. */
    gm_queue_free(q);
}

/* Gun's ws_opts reply_to: gm_ws_upgrade_to sends the stream's events to
 * another queue; DOWN stays with the owner. */
TEST(ws_reply_to) {
    gm_queue *q = gm_queue_new(), *other = gm_queue_new();
    REQUIRE(q != NULL && other != NULL);
    gm_conn *c = open_up_opts(q, "{\"retry\":0}");
    REQUIRE(c != NULL);
    gm_ref ref = 0;
    CHECK_FAILS(gm_ws_upgrade_to(c, "/ws", NULL, 0, NULL, (gm_queue *)&ref, &ref), GM_EINVAL);
    CHECK_RC(gm_ws_upgrade_to(c, "/ws", NULL, 0, "{\"silence_pings\":false}", other, &ref), GM_OK);
    gm_event *ev = next_event(other, WAIT_MS);
    REQUIRE(ev != NULL);
    CHECK_EQ(ev->kind, GM_EV_UPGRADE);
    CHECK_EQ(ev->ref, ref);
    gm_event_free(ev);
    gm_ws_frame frames[] = {{GM_WS_TEXT, 0, "there", 5}, {GM_WS_CLOSE, 1000, NULL, 0}};
    CHECK_RC(gm_ws_send(c, ref, frames, 2), GM_OK);
    ev = expect_ws(other, ref, GM_WS_TEXT);
    if (ev) CHECK(ev->data_len == 5 && memcmp(ev->data, "there", 5) == 0);
    gm_event_free(ev);
    ev = expect_ws(other, ref, GM_WS_CLOSE);
    if (ev) CHECK_EQ(ev->status, 1000);
    gm_event_free(ev);
    ev = next_event(q, WAIT_MS);
    REQUIRE(ev != NULL);
    CHECK_EQ(ev->kind, GM_EV_DOWN);
    CHECK_STR(ev->reason, "normal");
    gm_event_free(ev);
    CHECK(next_event(other, 100) == NULL);
    CHECK(close_and_free(q, c));
    gm_queue_free(other);
    gm_queue_free(q);
}

static const struct check_case cases[] = {
    CASE(ws_echo_and_close),
    CASE(ws_many_messages_in_order),
    CASE(ws_send_nowait),
    CASE(ws_server_close),
    CASE(ws_rejected_is_a_response),
    CASE(ws_request_after_upgrade_is_a_connection_error),
    CASE(ws_over_http10_is_badstate),
    CASE(ws_pings_when_not_silenced),
    CASE(ws_bad_input),
    CASE(ws_reply_to),
};

int main(int argc, char **argv) { return check_main(argc, argv, cases, CHECK_N(cases)); }
