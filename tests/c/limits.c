/*
 * limits.c — issue 9, items 8 and 10: every length the caller passes is
 * checked against the header's GM_MAX_* before anything is read or copied
 * (a wrong one is GM_EINVAL, never an abort, a truncation or a huge copy),
 * header values and request targets follow RFC 9110, and the header's
 * promises about timeouts, gm_info after close and gm_queue_poll's batch
 * hold. The buffers handed over are small on purpose: were the library to
 * read as far as a bogus length says, AddressSanitizer would report it.
 */
#include <sys/resource.h>

#include "util.h"

#define HDR(n, v) {n, v, SIZE_MAX, SIZE_MAX}

static long rss_max_kb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* Bogus lengths: past 2^31 (C.int overflow), past 2^32 (truncation),
 * negative values cast to size_t. SIZE_MAX itself means "strlen". */
static const size_t bogus_lens[] = {
    (size_t)1 << 31, ((size_t)1 << 31) + 7, ((size_t)1 << 32) - 1, ((size_t)1 << 32) + 3,
    (size_t)-2, (size_t)-5, (size_t)INT32_MAX + 1, GM_MAX_HEADER_BYTES + 1,
};

TEST(bogus_lengths_refused_not_truncated) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    long before = server_count(c);
    REQUIRE(before > 0);
    char small[8] = "abcdefg";
    gm_ref ref = 0;
    for (size_t i = 0; i < sizeof bogus_lens / sizeof bogus_lens[0]; i++) {
        size_t n = bogus_lens[i];
        gm_header hv = {"x-a", small, 3, n};
        CHECK_FAILS(gm_request(c, "GET", "/count", &hv, 1, NULL, 0, 0, NULL, &ref), GM_EINVAL);
        CHECK(strstr(gm_errmsg(), "GM_MAX_HEADER_BYTES") != NULL);
        gm_header hn = {small, "1", n, 1};
        CHECK_FAILS(gm_request(c, "GET", "/count", &hn, 1, NULL, 0, 0, NULL, &ref), GM_EINVAL);
        CHECK_FAILS(gm_ws_upgrade(c, "/ws", &hv, 1, NULL, &ref), GM_EINVAL);
        size_t bn = n > GM_MAX_BODY ? n : (size_t)GM_MAX_BODY + 1;
        CHECK_FAILS(gm_request(c, "POST", "/count", NULL, 0, small, bn, 0, NULL, &ref), GM_EINVAL);
        CHECK(strstr(gm_errmsg(), "GM_MAX_BODY") != NULL);
        /* n_headers past GM_MAX_HEADERS: refused before the array is read. */
        gm_header one = {"x-a", "1", 3, 1};
        CHECK_FAILS(gm_request(c, "GET", "/count", &one, n, NULL, 0, 0, NULL, &ref), GM_EINVAL);
        CHECK_FAILS(gm_ws_upgrade(c, "/ws", &one, n, NULL, &ref), GM_EINVAL);
    }
    /* gm_data and gm_ws_send take views: a negative length cast to size_t
     * is refused before anything is looked at. */
    gm_ref sref = 0;
    REQUIRE_RC(gm_request(c, "POST", "/echo", NULL, 0, NULL, 0, GM_REQ_STREAM, NULL, &sref), GM_OK);
    CHECK_FAILS(gm_data(c, sref, small, (size_t)-1, 0), GM_EINVAL);
    CHECK_FAILS(gm_data(c, sref, small, (size_t)-4096, 1), GM_EINVAL);
    gm_ws_frame f = {GM_WS_BINARY, 0, small, (size_t)-1};
    CHECK_FAILS(gm_ws_send(c, 1, &f, 1), GM_EINVAL);
    CHECK_FAILS(gm_ws_send(c, 1, &f, (size_t)-1), GM_EINVAL);
    /* The streamed request still works: nothing of the refused pieces went out. */
    CHECK_RC(gm_data(c, sref, "hello", 5, 1), GM_OK);
    gm_event *ev = NULL;
    CHECK_RC(gm_await_body(c, sref, WAIT_MS, &ev), GM_OK);
    if (ev) {
        CHECK_EQ(ev->data_len, 5);
        gm_event_free(ev);
    }
    CHECK_EQ(gm_queue_len(q), 0);
    /* Only the /echo and this /count reached the server. */
    CHECK_EQ(server_count(c), before + 2);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

/* The strings without a length: longer than their limit is refused without
 * being read past it, and without being copied. */
TEST(long_strings_refused) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    long before = server_count(c);
    size_t n = GM_MAX_HEADER_BYTES + 2;
    char *s = malloc(n + 1);
    REQUIRE(s != NULL);
    memset(s, 'a', n);
    s[n] = 0;
    s[0] = '/';
    gm_ref ref = 0;
    gm_header h = HDR("x-a", s); /* SIZE_MAX lengths: strlen */
    CHECK_FAILS(gm_request(c, "GET", "/count", &h, 1, NULL, 0, 0, NULL, &ref), GM_EINVAL);
    CHECK(strstr(gm_errmsg(), "limit") != NULL);
    s[GM_MAX_STRING + 2] = 0; /* s: GM_MAX_STRING + 2 bytes, s + 1: one past the limit */
    CHECK_FAILS(gm_request(c, "GET", s, NULL, 0, NULL, 0, 0, NULL, &ref), GM_EINVAL);
    CHECK_FAILS(gm_request(c, s + 1, "/count", NULL, 0, NULL, 0, 0, NULL, &ref), GM_EINVAL);
    CHECK_FAILS(gm_ws_upgrade(c, s, NULL, 0, NULL, &ref), GM_EINVAL);
    gm_conn *c2 = NULL;
    CHECK_FAILS(gm_open(q, s + 1, 80, NULL, &c2), GM_EINVAL);
    CHECK_FAILS(gm_open_unix(q, s, NULL, &c2), GM_EINVAL);
    CHECK(c2 == NULL);
    /* A path of exactly GM_MAX_STRING bytes is accepted (and answered 404). */
    s[GM_MAX_STRING] = 0;
    CHECK_RC(gm_request(c, "GET", s, NULL, 0, NULL, 0, 0, NULL, &ref), GM_OK);
    gm_event *ev = NULL;
    CHECK_RC(gm_await_body(c, ref, WAIT_MS, &ev), GM_OK);
    gm_event_free(ev);
    /* opts_json past GM_MAX_OPTS_JSON (valid JSON up to the limit). */
    char *js = malloc(GM_MAX_OPTS_JSON + 64);
    REQUIRE(js != NULL);
    size_t k = 0;
    js[k++] = '{';
    while (k < GM_MAX_OPTS_JSON) js[k++] = ' ';
    strcpy(js + k, "\"retry\": 0}");
    CHECK_FAILS(gm_open(q, "127.0.0.1", http_port(), js, &c2), GM_EINVAL);
    CHECK(strstr(gm_errmsg(), "opts_json") != NULL);
    gm_ref wref = 0;
    CHECK_FAILS(gm_ws_upgrade(c, "/ws", NULL, 0, js, &wref), GM_EINVAL);
    free(js);
    free(s);
    CHECK_EQ(gm_queue_len(q), 0);
    CHECK_EQ(server_count(c), before + 2);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

/* The 100 MB header value: refused by the documented limit, not
 * copied (the host's RSS does not grow by hundreds of MB). */
TEST(huge_header_value_refused_without_copy) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    size_t n = 100u << 20;
    char *v = malloc(n); /* left untouched: not even the host pays for it */
    REQUIRE(v != NULL);
    long rss0 = rss_max_kb();
    gm_ref ref = 0;
    gm_header h = {"x-big", v, 5, n};
    for (int i = 0; i < 5; i++)
        CHECK_FAILS(gm_request(c, "GET", "/count", &h, 1, NULL, 0, 0, NULL, &ref), GM_EINVAL);
    long grew = rss_max_kb() - rss0;
    fprintf(stderr, "    peak RSS grew by %ld kB\n", grew);
    CHECK(grew < 64 * 1024);
    free(v);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

/* RFC 9110 5.5: control characters other than HTAB are refused in header
 * values; HTAB reaches the server. */
TEST(header_value_controls_refused) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    long before = server_count(c);
    static const char *bad[] = {"a\x01" "b", "a\x7f" "b", "\x1b[0m", "a\x0b" "b", "a\x0c" "b", "\x1f"};
    gm_ref ref = 0;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gm_header h = HDR("x-a", bad[i]);
        CHECK_FAILS(gm_request(c, "GET", "/count", &h, 1, NULL, 0, 0, NULL, &ref), GM_EINVAL);
        CHECK(strstr(gm_errmsg(), "control character") != NULL);
        CHECK_FAILS(gm_ws_upgrade(c, "/ws", &h, 1, NULL, &ref), GM_EINVAL);
    }
    CHECK_EQ(server_count(c), before + 1);
    gm_header tab = HDR("x-tab", "a\tb");
    REQUIRE_RC(gm_request(c, "GET", "/headers", &tab, 1, NULL, 0, 0, NULL, &ref), GM_OK);
    gm_event *ev = NULL;
    REQUIRE_RC(gm_await_body(c, ref, WAIT_MS, &ev), GM_OK);
    CHECK(ev->data && strstr((const char *)ev->data, "\"x-tab\":[\"a\\tb\"]") != NULL);
    if (ev->data && !strstr((const char *)ev->data, "x-tab")) fprintf(stderr, "    /headers: %s\n", ev->data);
    gm_event_free(ev);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

/* Request targets (RFC 9112 3.2): origin-form, "*" for OPTIONS, and
 * absolute-form on HTTP/1.1; nothing else. */
TEST(request_target_forms) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    long before = server_count(c);
    static const struct { const char *method, *path; } bad[] = {
        {"GET", "count"}, {"GET", "?a=1"}, {"GET", "*"}, {"DELETE", "*"},
        {"CONNECT", "example.com:443"}, {"GET", "http:///x"}, {"GET", "ftp://example.com/"},
        {"GET", "#frag"},
    };
    gm_ref ref = 0;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_FAILS(gm_request(c, bad[i].method, bad[i].path, NULL, 0, NULL, 0, 0, NULL, &ref), GM_EINVAL);
        if (strcmp(bad[i].path, "*") != 0) CHECK(strstr(gm_errmsg(), "must start with \"/\"") != NULL);
    }
    CHECK_FAILS(gm_ws_upgrade(c, "ws", NULL, 0, NULL, &ref), GM_EINVAL);
    CHECK_EQ(gm_queue_len(q), 0);
    CHECK_EQ(server_count(c), before + 1);
    /* OPTIONS * is answered (Go's server answers it itself). */
    REQUIRE_RC(gm_request(c, "OPTIONS", "*", NULL, 0, NULL, 0, 0, NULL, &ref), GM_OK);
    gm_event *ev = NULL;
    REQUIRE_RC(gm_await_body(c, ref, WAIT_MS, &ev), GM_OK);
    CHECK_EQ(ev->status, 200);
    gm_event_free(ev);
    /* Absolute-form on HTTP/1.1 (what a forward proxy takes). */
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/count", http_port());
    long n0 = server_count(c);
    REQUIRE_RC(gm_request(c, "GET", url, NULL, 0, NULL, 0, 0, NULL, &ref), GM_OK);
    REQUIRE_RC(gm_await_body(c, ref, WAIT_MS, &ev), GM_OK);
    CHECK_EQ(ev->status, 200);
    CHECK_EQ(strtol((const char *)ev->data, NULL, 10), n0 + 1);
    gm_event_free(ev);
    CHECK(close_and_free(q, c));
    /* Where HTTP/2 may be spoken, absolute-form is refused (:path). */
    gm_conn *h2 = NULL;
    REQUIRE_RC(gm_open(q, "127.0.0.1", http_port(), "{\"protocols\":[\"http2\"]}", &h2), GM_OK);
    CHECK_FAILS(gm_request(h2, "GET", url, NULL, 0, NULL, 0, 0, NULL, &ref), GM_EINVAL);
    CHECK(strstr(gm_errmsg(), "absolute-form") != NULL);
    CHECK(close_and_free(q, h2));
    gm_queue_free(q);
}

/* Item 10: the header's promises. */
TEST(timeouts_below_minus_one_refused) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    gm_event *ev = NULL;
    static const int bad[] = {-2, -100, INT32_MIN};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        /* Before the fix each of these waited for ever. */
        CHECK_FAILS(gm_queue_poll(q, &ev, 1, bad[i]), GM_EINVAL);
        CHECK_FAILS(gm_await_up(c, bad[i], NULL), GM_EINVAL);
        CHECK_FAILS(gm_await(c, 12345, bad[i], &ev), GM_EINVAL);
        CHECK_FAILS(gm_await_body(c, 12345, bad[i], &ev), GM_EINVAL);
    }
    CHECK(ev == NULL);
    CHECK_RC(gm_queue_poll(q, &ev, 1, 0), 0);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

/* gm_info after close answers GM_OK with state "closed", as the header
 * now says (gm_close's "later calls answer GM_ECLOSED" excepts it); also
 * for a connection that exited on its own. */
TEST(info_after_close_says_closed) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    gm_event *ev = NULL;
    REQUIRE_RC(gm_info(c, &ev), GM_OK);
    CHECK_STR(ev_header(ev, "state"), "connected");
    gm_event_free(ev);
    ev = NULL;
    CHECK_RC(gm_close(c), GM_OK);
    gm_event *exit_ev = wait_kind(q, c, GM_EV_EXIT, WAIT_MS, NULL);
    CHECK(exit_ev != NULL);
    gm_event_free(exit_ev);
    REQUIRE_RC(gm_info(c, &ev), GM_OK);
    CHECK_STR(ev_header(ev, "state"), "closed");
    gm_event_free(ev);
    ev = NULL;
    gm_conn_free(c);
    REQUIRE_RC(gm_open(q, "127.0.0.1", refused_port(), "{\"retry\":0}", &c), GM_OK);
    exit_ev = wait_kind(q, c, GM_EV_EXIT, WAIT_MS, NULL);
    CHECK(exit_ev != NULL);
    gm_event_free(exit_ev);
    REQUIRE_RC(gm_info(c, &ev), GM_OK);
    CHECK_STR(ev_header(ev, "state"), "closed");
    gm_event_free(ev);
    gm_conn_free(c);
    gm_queue_free(q);
}

/* gm_queue_poll hands over at most GM_POLL_MAX events per call, whatever
 * max says, and the rest stay queued in order. */
TEST(poll_batch_is_at_most_gm_poll_max) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = NULL;
    /* Never up, no request may wait: each request is one ERROR at once. */
    REQUIRE_RC(gm_open(q, "127.0.0.1", refused_port(),
                       "{\"retry\":1000,\"retry_timeout\":600000,\"max_pending_requests\":0}", &c), GM_OK);
    enum { N = GM_POLL_MAX + 44 };
    for (int i = 0; i < N; i++) {
        gm_ref ref = 0;
        REQUIRE_RC(gm_request(c, "GET", "/", NULL, 0, NULL, 0, 0, NULL, &ref), GM_OK);
    }
    static gm_event *evs[1000];
    int total = 0, first = -1;
    int64_t end = check_now_ms() + WAIT_MS;
    while (total < N && check_now_ms() < end) {
        int n = gm_queue_poll(q, evs, 1000, 100);
        REQUIRE(n >= 0);
        CHECK(n <= GM_POLL_MAX);
        if (first < 0 && n > 0) first = n;
        for (int i = 0; i < n; i++) {
            if (evs[i]->kind == GM_EV_ERROR) total++;
        }
        gm_events_free(evs, n);
    }
    CHECK_EQ(total, N);
    CHECK_EQ(first, GM_POLL_MAX);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

/* gm_open on a released queue: GM_EINVAL, as the header now says (its
 * address may have been reused; GM_EQUEUE is for a queue freed during the
 * call). */
TEST(open_on_released_queue_is_einval) {
    gm_queue *dead = gm_queue_new();
    REQUIRE(dead != NULL);
    gm_queue_free(dead);
    gm_conn *c = NULL;
    CHECK_FAILS(gm_open(dead, "127.0.0.1", http_port(), NULL, &c), GM_EINVAL);
    CHECK(c == NULL);
}

static const struct check_case cases[] = {
    CASE(bogus_lengths_refused_not_truncated),
    CASE(long_strings_refused),
    CASE(huge_header_value_refused_without_copy),
    CASE(header_value_controls_refused),
    CASE(request_target_forms),
    CASE(timeouts_below_minus_one_refused),
    CASE(info_after_close_says_closed),
    CASE(poll_batch_is_at_most_gm_poll_max),
    CASE(open_on_released_queue_is_einval),
};

int main(int argc, char **argv) { return check_main(argc, argv, cases, CHECK_N(cases)); }
