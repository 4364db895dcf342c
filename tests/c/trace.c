/*
 * trace.c — issue 14, trace events: the "trace" option gives GM_EV_TRACE
 * events (Gun's gun_event callbacks) in Gun's order, each with its name in
 * `reason`, its stream in `ref`, a CLOCK_MONOTONIC `ts_ns` and the details
 * as ":"-named headers; a list enables only its names; off, none at all.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <string.h>

#include "util.h"

static int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Takes c's events until one named `until` (a trace name or a message's:
 * the first gun_data ends a short /bytes/N) and writes their names,
 * space-separated, into out. The events are freed; the trace events'
 * timestamps must not go back and must lie within [*t_lo, now]; *t_lo
 * becomes the last one. 0 on timeout. */
static int take_names(gm_queue *q, gm_conn *c, const char *until, char *out, size_t cap, int64_t *t_lo,
                      gm_ref *ref_of_last) {
    out[0] = 0;
    for (;;) {
        gm_event *ev = next_event(q, WAIT_MS);
        if (!ev) return 0;
        CHECK(ev->conn == c);
        char name[64];
        if (ev->kind == GM_EV_TRACE) {
            CHECK(ev->size >= offsetof(gm_event, ts_ns) + sizeof ev->ts_ns);
            CHECK(ev->reason != NULL);
            snprintf(name, sizeof name, "%s", ev->reason ? ev->reason : "?");
            int64_t now = mono_ns();
            CHECK(ev->ts_ns >= *t_lo && ev->ts_ns <= now);
            *t_lo = ev->ts_ns;
        } else {
            static const char *kinds[] = {"", "gun_up", "gun_down", "exit", "gun_inform", "gun_response",
                                          "gun_data", "gun_trailers", "gun_push", "gun_error",
                                          "gun_upgrade", "gun_ws", "gun_notify", "gun_tunnel_up"};
            CHECK_EQ(ev->ts_ns, 0);
            snprintf(name, sizeof name, "%s", ev->kind < 14 ? kinds[ev->kind] : "?");
        }
        size_t len = strlen(out);
        snprintf(out + len, cap - len, "%s%s", len ? " " : "", name);
        int stop = strcmp(name, until) == 0;
        if (ref_of_last) *ref_of_last = ev->ref;
        gm_event_free(ev);
        if (stop) return 1;
    }
}

TEST(trace_http1_request_in_gun_order) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    int64_t t0 = mono_ns();
    gm_conn *c = NULL;
    REQUIRE_RC(gm_open(q, "127.0.0.1", http_port(), "{\"trace\":true}", &c), GM_OK);
    char seq[1024];
    CHECK(take_names(q, c, "gun_up", seq, sizeof seq, &t0, NULL));
    CHECK_STR(seq, "init domain_lookup_start domain_lookup_end connect_start connect_end gun_up");

    gm_ref ref = 0, last = 0;
    gm_header h[] = {{"x-trace", "1", 7, 1}};
    REQUIRE_RC(gm_request(c, "GET", "/bytes/10", h, 1, NULL, 0, 0, NULL, &ref), GM_OK);
    CHECK(take_names(q, c, "gun_data", seq, sizeof seq, &t0, &last));
    CHECK_STR(seq, "request_start request_headers request_end response_start response_headers "
                   "gun_response response_end gun_data");
    CHECK_EQ(last, ref);

    /* The details: request_start's method and path, then the request's headers. */
    gm_ref ref2 = 0;
    REQUIRE_RC(gm_request(c, "GET", "/bytes/3", h, 1, NULL, 0, 0, NULL, &ref2), GM_OK);
    gm_event *ev = next_event(q, WAIT_MS);
    REQUIRE(ev != NULL);
    CHECK_EQ(ev->kind, GM_EV_TRACE);
    CHECK_STR(ev->reason, "request_start");
    CHECK_EQ(ev->ref, ref2);
    CHECK_STR(ev_header(ev, ":method"), "GET");
    CHECK_STR(ev_header(ev, ":path"), "/bytes/3");
    CHECK_STR(ev_header(ev, ":function"), "request");
    CHECK_STR(ev_header(ev, "x-trace"), "1");
    gm_event_free(ev);
    CHECK(take_names(q, c, "gun_data", seq, sizeof seq, &t0, NULL));

    gm_close(c);
    CHECK(take_names(q, c, "exit", seq, sizeof seq, &t0, NULL));
    CHECK_STR(seq, "terminate exit");
    gm_conn_free(c);
    gm_queue_free(q);
}

TEST(trace_tls_handshake_details) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    char opts[4096];
    snprintf(opts, sizeof opts,
             "{\"transport\":\"tls\",\"tls_opts\":{\"cacertfile\":\"%s\"},\"trace\":[\"tls_handshake_end\"]}",
             getenv("GM_TEST_CA"));
    gm_conn *c = NULL;
    REQUIRE_RC(gm_open(q, "localhost", https_port(), opts, &c), GM_OK);
    gm_event *ev = next_event(q, WAIT_MS);
    REQUIRE(ev != NULL);
    CHECK_EQ(ev->kind, GM_EV_TRACE);
    CHECK_STR(ev->reason, "tls_handshake_end");
    CHECK_STR(ev_header(ev, ":tls_version"), "tlsv1.3");
    CHECK_STR(ev_header(ev, ":alpn"), "h2");
    CHECK_STR(ev_header(ev, ":resumed"), "false");
    CHECK_STR(ev_header(ev, ":protocol"), "http2");
    CHECK(ev_header(ev, ":cipher") != NULL);
    gm_event_free(ev);
    ev = next_event(q, WAIT_MS);
    REQUIRE(ev != NULL);
    CHECK_EQ(ev->kind, GM_EV_UP);
    gm_event_free(ev);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

TEST(trace_list_filters_and_off_gives_none) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    int64_t t0 = mono_ns();
    char seq[1024];
    gm_conn *c = NULL;
    REQUIRE_RC(gm_open(q, "127.0.0.1", http_port(), "{\"trace\":[\"response_end\",\"connect_end\"]}", &c), GM_OK);
    gm_ref ref = 0;
    REQUIRE_RC(gm_request(c, "GET", "/bytes/10", NULL, 0, NULL, 0, 0, NULL, &ref), GM_OK);
    CHECK(take_names(q, c, "gun_data", seq, sizeof seq, &t0, NULL));
    CHECK_STR(seq, "connect_end gun_up gun_response response_end gun_data");
    CHECK(close_and_free(q, c));

    const char *off[] = {NULL, "{\"trace\":false}", "{\"trace\":[]}"};
    for (int i = 0; i < 3; i++) {
        REQUIRE_RC(gm_open(q, "127.0.0.1", http_port(), off[i], &c), GM_OK);
        REQUIRE_RC(gm_request(c, "GET", "/bytes/10", NULL, 0, NULL, 0, 0, NULL, &ref), GM_OK);
        CHECK(take_names(q, c, "gun_data", seq, sizeof seq, &t0, NULL));
        CHECK_STR(seq, "gun_up gun_response gun_data");
        gm_close(c);
        CHECK(take_names(q, c, "exit", seq, sizeof seq, &t0, NULL));
        CHECK_STR(seq, "exit");
        gm_conn_free(c);
    }
    /* Unknown names are refused, naming the option and the name. */
    CHECK_FAILS(gm_open(q, "127.0.0.1", http_port(), "{\"trace\":[\"response_end\",\"bogus\"]}", &c), GM_EOPTION);
    CHECK(strstr(gm_errmsg(), "trace") && strstr(gm_errmsg(), "bogus"));
    /* Gun's tunnel events are names like the others (emitted when a tunnel comes up). */
    CHECK_RC(gm_open(q, "127.0.0.1", http_port(), "{\"trace\":[\"origin_changed\",\"transport_changed\"],\"retry\":0}", &c), GM_OK);
    gm_close(c);
    CHECK(take_names(q, c, "exit", seq, sizeof seq, &t0, NULL));
    gm_conn_free(c);
    CHECK_EQ(gm_queue_len(q), 0);
    gm_queue_free(q);
}

static const struct check_case cases[] = {
    CASE(trace_http1_request_in_gun_order),
    CASE(trace_tls_handshake_details),
    CASE(trace_list_filters_and_off_gives_none),
};

int main(int argc, char **argv) { return check_main(argc, argv, cases, CHECK_N(cases)); }
