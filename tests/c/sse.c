/*
 * sse.c — server-sent events (content_handlers gun_sse_h): GM_EV_SSE from
 * the test server's /sse over HTTP/1.1 and HTTP/2 (h2c), per connection
 * and per request (gm_req_opts.content_handlers_json), the older
 * gm_req_opts size, a bad list, gm_await_body on an event stream.
 */
#include <stddef.h>

#include "util.h"

/* What /sse sends (tests/testserver SSEStream), as events. */
static void check_sse_stream(gm_queue *q, gm_ref ref) {
    gm_event *ev = wait_kind(q, NULL, GM_EV_RESPONSE, WAIT_MS, NULL);
    REQUIRE(ev != NULL);
    CHECK_EQ(ev->ref, ref);
    CHECK_EQ(ev->status, 200);
    CHECK_EQ(ev->fin, 0);
    gm_event_free(ev);

    struct {
        const char *id, *type, *data, *retry;
    } want[] = {
        {NULL, NULL, NULL, "1500"},          /* retry alone */
        {"", "message", "first\nsecond", NULL}, /* two data lines */
        {"7", "tick", "x", NULL},           /* typed, with an id (CR line ends) */
        {"8", NULL, NULL, NULL},            /* an id alone */
        {"8", "message", "after", NULL},    /* the last id persists */
    };
    for (int i = 0; i < CHECK_N(want); i++) {
        ev = next_event(q, WAIT_MS);
        REQUIRE(ev != NULL);
        CHECK_EQ(ev->kind, GM_EV_SSE);
        CHECK_EQ(ev->ref, ref);
        CHECK_EQ(ev->fin, 0);
        const char *id = ev_header(ev, "last_event_id"), *type = ev_header(ev, "event_type"),
                   *retry = ev_header(ev, "retry");
        if (want[i].id) {
            CHECK(id != NULL);
            if (id) CHECK_STR(id, want[i].id);
        } else {
            CHECK(id == NULL);
        }
        if (want[i].type) {
            CHECK(type != NULL);
            if (type) CHECK_STR(type, want[i].type);
            CHECK_EQ(ev->data_len, strlen(want[i].data));
            CHECK(ev->data && memcmp(ev->data, want[i].data, ev->data_len) == 0);
        } else {
            CHECK(type == NULL);
            CHECK_EQ(ev->data_len, 0);
        }
        if (want[i].retry) {
            CHECK(retry != NULL);
            if (retry) CHECK_STR(retry, want[i].retry);
        } else {
            CHECK(retry == NULL);
        }
        gm_event_free(ev);
    }
    /* Gun's fin: no headers, no data. The pending "data: lost" is dropped. */
    ev = next_event(q, WAIT_MS);
    REQUIRE(ev != NULL);
    CHECK_EQ(ev->kind, GM_EV_SSE);
    CHECK_EQ(ev->fin, 1);
    CHECK_EQ(ev->n_headers, 0);
    CHECK_EQ(ev->data_len, 0);
    gm_event_free(ev);
}

static void sse_over(const char *opts) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up_opts(q, opts);
    REQUIRE(c != NULL);
    gm_ref ref = 0;
    gm_header accept = {"accept", "text/event-stream", 6, 17};
    REQUIRE_RC(gm_request(c, "GET", "/sse", &accept, 1, NULL, 0, 0, NULL, &ref), GM_OK);
    check_sse_stream(q, ref);
    /* Another body type stays DATA (gun_data_h). */
    char *body = NULL;
    size_t len = 0;
    CHECK_EQ(get_body(c, "/sse?ct=text/plain", &body, &len), 200);
    CHECK(len > 10 && body && memcmp(body, "\xEF\xBB\xBF: hello", 10) == 0);
    free(body);
    /* gm_await_body cannot gather events. */
    REQUIRE_RC(gm_request(c, "GET", "/sse", NULL, 0, NULL, 0, 0, NULL, &ref), GM_OK);
    gm_event *out = NULL;
    CHECK_RC(gm_await_body(c, ref, WAIT_MS, &out), GM_ESTREAM);
    CHECK(strstr(gm_errmsg(), "SSE") != NULL);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

TEST(sse_http1) { sse_over("{\"http_opts\": {\"content_handlers\": [\"gun_sse_h\", \"gun_data_h\"]}}"); }

TEST(sse_http2) {
    sse_over("{\"protocols\": [\"http2\"], \"http2_opts\": {\"content_handlers\": [\"gun_sse_h\", \"gun_data_h\"]}}");
}

TEST(sse_per_request) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    gm_req_opts o = {0};
    o.size = sizeof o;
    o.content_handlers_json = "[[\"gun_sse_h\", {\"max_event_size\": 100}], \"gun_data_h\"]";
    gm_ref ref = 0;
    REQUIRE_RC(gm_request(c, "GET", "/sse", NULL, 0, NULL, 0, 0, &o, &ref), GM_OK);
    check_sse_stream(q, ref);

    /* A caller built against the header before content_handlers_json. */
    o.size = offsetof(gm_req_opts, content_handlers_json);
    REQUIRE_RC(gm_request(c, "GET", "/sse", NULL, 0, NULL, 0, 0, &o, &ref), GM_OK);
    gm_event *ev = wait_kind(q, c, GM_EV_DATA, WAIT_MS, NULL); /* the connection's: DATA */
    REQUIRE(ev != NULL);
    CHECK_EQ(ev->ref, ref);
    gm_event_free(ev);
    o.size = offsetof(gm_req_opts, content_handlers_json) - 1;
    CHECK_FAILS(gm_request(c, "GET", "/sse", NULL, 0, NULL, 0, 0, &o, &ref), GM_EINVAL);

    /* A bad list is refused, naming it; nothing is sent. */
    o.size = sizeof o;
    const char *bad[] = {"[]", "[\"my_handler\"]", "[[\"gun_sse_h\", {\"max_event_size\": \"infinity\"}]]", "{", "[1]"};
    for (int i = 0; i < CHECK_N(bad); i++) {
        o.content_handlers_json = bad[i];
        CHECK_FAILS(gm_request(c, "GET", "/sse", NULL, 0, NULL, 0, 0, &o, &ref), GM_EOPTION);
        CHECK(strstr(gm_errmsg(), "req_opts.content_handlers") != NULL);
    }
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

static const struct check_case cases[] = {
    CASE(sse_http1),
    CASE(sse_http2),
    CASE(sse_per_request),
};

int main(int argc, char **argv) { return check_main(argc, argv, cases, CHECK_N(cases)); }
