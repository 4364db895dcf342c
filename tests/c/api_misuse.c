/*
 * api_misuse.c — every exported function with NULL handles and pointers,
 * and every kind of bad input the header names: each is an error code and a
 * sentence, never a crash, and never a request on the wire.
 */
#include <limits.h>
#include <pthread.h>

#include "util.h"

/* ---------------------------------------------------------------- version, errors */

TEST(version_matches_header) {
    CHECK_STR(gm_version(), GM_VERSION_STRING);
    CHECK_EQ(gm_version_number(), GM_VERSION_NUMBER);
    char buf[64];
    snprintf(buf, sizeof buf, "%d.%d.%d", GM_VERSION_MAJOR, GM_VERSION_MINOR, GM_VERSION_PATCH);
    CHECK_STR(gm_version(), buf);
    CHECK_EQ(GM_VERSION_NUMBER, GM_VERSION_MAJOR * 10000 + GM_VERSION_MINOR * 100 + GM_VERSION_PATCH);
}

TEST(strerror_every_code) {
    static const int codes[] = {GM_OK,       GM_EINVAL,   GM_ENOMEM,       GM_ECLOSED, GM_ETIMEOUT,
                                GM_EOPTION,  GM_ENOSTREAM, GM_ENOTUP,      GM_EBADSTATE,
                                GM_EUNSUPPORTED, GM_ESTREAM, GM_EINTERNAL, GM_EQUEUE, GM_EAGAIN};
    int n = (int)(sizeof codes / sizeof codes[0]);
    for (int i = 0; i < n; i++) {
        const char *s = gm_strerror(codes[i]);
        CHECK(s != NULL);
        if (!s) continue;
        CHECK(s[0] != '\0');
        CHECK(strcmp(s, "unknown error") != 0);
        for (int j = 0; j < i; j++) {
            const char *t = gm_strerror(codes[j]);
            if (t && strcmp(s, t) == 0) {
                fprintf(stderr, "    codes %d and %d share the name \"%s\"\n", codes[i], codes[j], s);
                CHECK(0);
            }
        }
    }
    /* The values the header fixes (append-only enum). */
    CHECK_EQ(GM_OK, 0);
    CHECK_EQ(GM_EINVAL, -1);
    CHECK_EQ(GM_EQUEUE, -12);
    CHECK_EQ(GM_EAGAIN, -13);
    static const int unknown[] = {1, 2, -14, -100, 12345, INT_MIN, INT_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        CHECK_STR(gm_strerror(unknown[i]), "unknown error");
}

static void *errmsg_thread(void *arg) {
    const char **out = arg;
    /* A thread that made no failing call has "" (thread-local sentence). */
    static char first[1024];
    snprintf(first, sizeof first, "%s", gm_errmsg());
    out[0] = first;
    gm_queue_fd(NULL);
    static char second[1024];
    snprintf(second, sizeof second, "%s", gm_errmsg());
    out[1] = second;
    return NULL;
}

TEST(errmsg_is_thread_local) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = NULL;
    CHECK_RC(gm_open(q, "127.0.0.1", 0, NULL, &c), GM_EINVAL);
    char mine[1024];
    snprintf(mine, sizeof mine, "%s", gm_errmsg());
    CHECK(mine[0] != '\0');
    const char *theirs[2] = {NULL, NULL};
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, errmsg_thread, theirs) == 0);
    pthread_join(t, NULL);
    CHECK_STR(theirs[0], "");
    CHECK(theirs[1] && theirs[1][0] != '\0');
    /* The other thread's failure did not touch this thread's sentence. */
    CHECK_STR(gm_errmsg(), mine);
    /* Successful calls do not clear it. */
    CHECK(gm_queue_len(q) >= 0);
    CHECK_STR(gm_errmsg(), mine);
    gm_queue_free(q);
}

/* ---------------------------------------------------------------- NULL handles */

TEST(release_functions_accept_null) {
    gm_queue_free(NULL);
    gm_conn_free(NULL);
    gm_event_free(NULL);
    gm_events_free(NULL, 3);
    gm_event *evs[3] = {NULL, NULL, NULL};
    gm_events_free(evs, 3);
    gm_events_free(evs, 0);
    CHECK_RC(gm_close(NULL), GM_OK);
}

TEST(null_queue) {
    gm_event *ev = NULL;
    CHECK_FAILS(gm_queue_fd(NULL), GM_EINVAL);
    CHECK_FAILS(gm_queue_poll(NULL, &ev, 1, 0), GM_EINVAL);
    CHECK_FAILS(gm_queue_poll(NULL, &ev, 1, 100), GM_EINVAL);
    CHECK_FAILS(gm_queue_wake(NULL), GM_EINVAL);
    CHECK_FAILS(gm_queue_len(NULL), GM_EINVAL);
    CHECK(ev == NULL);
}

TEST(poll_bad_arguments) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_event *evs[2] = {NULL, NULL};
    CHECK_FAILS(gm_queue_poll(q, NULL, 1, 0), GM_EINVAL);
    CHECK_FAILS(gm_queue_poll(q, NULL, 4, 100), GM_EINVAL);
    CHECK_FAILS(gm_queue_poll(q, evs, 0, 0), GM_EINVAL);
    CHECK_FAILS(gm_queue_poll(q, evs, -1, 0), GM_EINVAL);
    CHECK(evs[0] == NULL && evs[1] == NULL);
    gm_queue_free(q);
}

TEST(null_open) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *sentinel = (gm_conn *)(uintptr_t)0x1234, *c = sentinel;
    int64_t live = gm__live_handles();
    CHECK_FAILS(gm_open(NULL, "127.0.0.1", http_port(), NULL, &c), GM_EINVAL);
    CHECK_FAILS(gm_open(q, NULL, http_port(), NULL, &c), GM_EINVAL);
    CHECK_FAILS(gm_open(q, "127.0.0.1", http_port(), NULL, NULL), GM_EINVAL);
    CHECK_FAILS(gm_open(NULL, NULL, 0, NULL, NULL), GM_EINVAL);
    CHECK_FAILS(gm_open_unix(NULL, "/tmp/x.sock", NULL, &c), GM_EINVAL);
    CHECK_FAILS(gm_open_unix(q, NULL, NULL, &c), GM_EINVAL);
    CHECK_FAILS(gm_open_unix(q, "/tmp/x.sock", NULL, NULL), GM_EINVAL);
    CHECK(c == sentinel); /* "On error *out is untouched." */
    CHECK_EQ(gm__live_handles(), live);
    CHECK_EQ(gm_queue_len(q), 0);
    gm_queue_free(q);
}

TEST(null_connection) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_event *ev = NULL;
    gm_ref ref = 0;
    const char *proto = NULL;
    gm_header h = {"x", "y", 1, 1};
    CHECK_RC(gm_close(NULL), GM_OK);
    CHECK_FAILS(gm_shutdown(NULL), GM_EINVAL);
    CHECK_FAILS(gm_set_owner(NULL, q), GM_EINVAL);
    CHECK_FAILS(gm_await_up(NULL, 0, &proto), GM_EINVAL);
    CHECK_FAILS(gm_await_up(NULL, 100, NULL), GM_EINVAL);
    CHECK_FAILS(gm_request(NULL, "GET", "/", NULL, 0, NULL, 0, 0, NULL, &ref), GM_EINVAL);
    CHECK_FAILS(gm_request(NULL, "GET", "/", &h, 1, "b", 1, 0, NULL, &ref), GM_EINVAL);
    CHECK_FAILS(gm_data(NULL, 1, "x", 1, 0), GM_EINVAL);
    CHECK_FAILS(gm_data(NULL, 1, NULL, 0, 1), GM_EINVAL);
    CHECK_FAILS(gm_cancel(NULL, 1), GM_EINVAL);
    CHECK_FAILS(gm_update_flow(NULL, 1, 1), GM_EINVAL);
    CHECK_FAILS(gm_await(NULL, 1, 0, &ev), GM_EINVAL);
    CHECK_FAILS(gm_await_body(NULL, 1, 0, &ev), GM_EINVAL);
    CHECK_FAILS(gm_info(NULL, &ev), GM_EINVAL);
    CHECK_FAILS(gm_stream_info(NULL, 1, &ev), GM_EINVAL);
    CHECK(ev == NULL);
    CHECK(ref == 0);
    CHECK(proto == NULL);
    gm_queue_free(q);
}

/* NULL out-pointers and arguments on a live connection. */
TEST(null_arguments_on_live_connection) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    gm_ref ref = 0;
    gm_header h = {"x-a", "b", SIZE_MAX, SIZE_MAX};
    CHECK_FAILS(gm_set_owner(c, NULL), GM_EINVAL);
    CHECK_FAILS(gm_request(c, NULL, "/", NULL, 0, NULL, 0, 0, NULL, &ref), GM_EINVAL);
    CHECK_FAILS(gm_request(c, "GET", NULL, NULL, 0, NULL, 0, 0, NULL, &ref), GM_EINVAL);
    CHECK_FAILS(gm_request(c, "GET", "/", NULL, 0, NULL, 0, 0, NULL, NULL), GM_EINVAL);
    CHECK_FAILS(gm_request(c, "GET", "/", NULL, 2, NULL, 0, 0, NULL, &ref), GM_EINVAL);
    CHECK_FAILS(gm_request(c, "POST", "/", &h, 1, NULL, 5, 0, NULL, &ref), GM_EINVAL);
    gm_header hn[2] = {{NULL, "v", 3, 1}, {"x", NULL, 1, 4}};
    CHECK_FAILS(gm_request(c, "GET", "/", &hn[0], 1, NULL, 0, 0, NULL, &ref), GM_EINVAL);
    CHECK_FAILS(gm_request(c, "GET", "/", &hn[1], 1, NULL, 0, 0, NULL, &ref), GM_EINVAL);
    gm_header hn2 = {NULL, "v", SIZE_MAX, SIZE_MAX};
    CHECK_FAILS(gm_request(c, "GET", "/", &hn2, 1, NULL, 0, 0, NULL, &ref), GM_EINVAL);
    CHECK(ref == 0);

    /* A real stream for the stream functions' out-pointers. */
    gm_ref good = 0;
    REQUIRE_RC(gm_request(c, "POST", "/echo", NULL, 0, NULL, 0, GM_REQ_STREAM, NULL, &good), GM_OK);
    CHECK(good != 0);
    CHECK_FAILS(gm_data(c, good, NULL, 3, 0), GM_EINVAL);
    CHECK_FAILS(gm_await(c, good, 0, NULL), GM_EINVAL);
    CHECK_FAILS(gm_await_body(c, good, 0, NULL), GM_EINVAL);
    CHECK_FAILS(gm_info(c, NULL), GM_EINVAL);
    CHECK_FAILS(gm_stream_info(c, good, NULL), GM_EINVAL);
    CHECK_FAILS(gm_update_flow(c, good, 0), GM_EINVAL);
    CHECK_FAILS(gm_update_flow(c, good, -5), GM_EINVAL);
    /* The stream still works after all that. */
    CHECK_RC(gm_data(c, good, "hi", 2, 1), GM_OK);
    gm_event *ev = NULL;
    CHECK_RC(gm_await_body(c, good, WAIT_MS, &ev), GM_OK);
    if (ev) {
        CHECK_EQ(ev->status, 200);
        CHECK_EQ(ev->data_len, 2);
        CHECK(ev->data && memcmp(ev->data, "hi", 2) == 0);
    }
    gm_event_free(ev);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

/* ---------------------------------------------------------------- bad open input */

TEST(open_bad_ports) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    int64_t live = gm__live_handles();
    static const int ports[] = {0, 65536, -1, 100000, INT_MIN, INT_MAX};
    for (size_t i = 0; i < sizeof ports / sizeof ports[0]; i++) {
        gm_conn *c = NULL;
        CHECK_FAILS(gm_open(q, "127.0.0.1", ports[i], NULL, &c), GM_EINVAL);
        CHECK(c == NULL);
    }
    /* The ends of the range are fine. */
    gm_conn *c1 = NULL, *c2 = NULL;
    CHECK_RC(gm_open(q, "127.0.0.1", 1, "{\"retry\":0}", &c1), GM_OK);
    CHECK_RC(gm_open(q, "127.0.0.1", 65535, "{\"retry\":0}", &c2), GM_OK);
    gm_conn_free(c1);
    gm_conn_free(c2);
    /* Their EXIT events are still queued and keep the handles alive... */
    CHECK_EQ(gm__live_handles(), live + 2);
    gm_queue_free(q);
    /* ...until the queue drops them. */
    CHECK_EQ(gm__live_handles(), live - 1);
}

TEST(open_bad_hosts) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    int64_t live = gm__live_handles();
    static const char *hosts[] = {"", "\xff\xfe", "exa\xc3\x28mple.com", "a b", "exa\r\nmple", "127.0.0.1\n"};
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
        gm_conn *c = NULL;
        CHECK_FAILS(gm_open(q, hosts[i], http_port(), NULL, &c), GM_EINVAL);
        CHECK(c == NULL);
    }
    gm_conn *c = NULL;
    CHECK_FAILS(gm_open_unix(q, "", NULL, &c), GM_EINVAL);
    CHECK_FAILS(gm_open_unix(q, "/tmp/\xff.sock", NULL, &c), GM_EINVAL);
    CHECK(c == NULL);
    CHECK_EQ(gm__live_handles(), live);
    CHECK_EQ(gm_queue_len(q), 0);
    gm_queue_free(q);
}

/* The option error names the key. */
static void check_bad_option(gm_queue *q, const char *json, int want, const char *key, int line) {
    gm_conn *c = NULL;
    int f0 = check_failed;
    CHECK_FAILS(gm_open(q, "127.0.0.1", http_port(), json, &c), want);
    if (key && !strstr(gm_errmsg(), key)) {
        check_failed++;
        char m[512];
        snprintf(m, sizeof m, "option error for %s does not name \"%s\"", json, key);
        check_report(__FILE__, line, m);
    }
    CHECK(c == NULL);
    c = NULL;
    CHECK_FAILS(gm_open_unix(q, "/nonexistent.sock", json, &c), want);
    if (key && !strstr(gm_errmsg(), key)) {
        check_failed++;
        check_report(__FILE__, line, "gm_open_unix's option error does not name the key");
    }
    CHECK(c == NULL);
    if (check_failed != f0) fprintf(stderr, "    (options: %s, line %d)\n", json, line);
}

TEST(open_bad_options) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    int64_t live = gm__live_handles();
    check_bad_option(q, "{\"bogus_key\":1}", GM_EOPTION, "bogus_key", __LINE__);
    check_bad_option(q, "{\"retry\":0,\"no_such_option\":true}", GM_EOPTION, "no_such_option", __LINE__);
    check_bad_option(q, "{\"retry\":\"five\"}", GM_EOPTION, "retry", __LINE__);
    check_bad_option(q, "{\"retry_timeout\":[1]}", GM_EOPTION, "retry_timeout", __LINE__);
    check_bad_option(q, "{\"transport\":7}", GM_EOPTION, "transport", __LINE__);
    check_bad_option(q, "{\"transport\":\"carrier-pigeon\"}", GM_EOPTION, "transport", __LINE__);
    check_bad_option(q, "{\"protocols\":\"http\"}", GM_EOPTION, "protocols", __LINE__);
    check_bad_option(q, "{\"connect_timeout\":\"soon\"}", GM_EOPTION, "connect_timeout", __LINE__);
    check_bad_option(q, "{\"http_opts\":{\"bogus_inner\":1}}", GM_EOPTION, "bogus_inner", __LINE__);
    check_bad_option(q, "{\"http_opts\":{\"keepalive\":\"x\"}}", GM_EOPTION, "keepalive", __LINE__);
    check_bad_option(q, "{\"tcp_opts\":{\"nodelay\":1}}", GM_EOPTION, "nodelay", __LINE__);
    check_bad_option(q, "{\"http_opts\":7}", GM_EOPTION, "http_opts", __LINE__);
    /* Not a JSON object at all. */
    check_bad_option(q, "{", GM_EOPTION, NULL, __LINE__);
    check_bad_option(q, "[1,2]", GM_EOPTION, NULL, __LINE__);
    check_bad_option(q, "42", GM_EOPTION, NULL, __LINE__);
    /* Invalid UTF-8 is GM_EINVAL, as for every input string. */
    check_bad_option(q, "{\"transport\":\"\xff\"}", GM_EINVAL, NULL, __LINE__);
    CHECK_EQ(gm__live_handles(), live);
    CHECK_EQ(gm_queue_len(q), 0);
    /* A good option object and an empty one open. */
    gm_conn *c = NULL;
    CHECK_RC(gm_open(q, "127.0.0.1", http_port(), "{}", &c), GM_OK);
    CHECK(close_and_free(q, c));
    c = NULL;
    CHECK_RC(gm_open(q, "127.0.0.1", http_port(), "{\"retry\":1,\"retry_timeout\":10,\"http_opts\":{\"keepalive\":5000}}", &c), GM_OK);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

/* ---------------------------------------------------------------- bad requests */

struct bad_req {
    const char *what;
    const char *method, *path;
    gm_header h;
    int n_headers;
    const void *body;
    size_t body_len;
    unsigned flags;
    int opts_size; /* -1: no opts */
};

#define HDR(n, v) {n, v, SIZE_MAX, SIZE_MAX}
#define HDRN(n, nl, v, vl) {n, v, nl, vl}

static const struct bad_req bad_reqs[] = {
    {"empty method", "", "/", HDR(NULL, NULL), 0, NULL, 0, 0, -1},
    {"method with space", "GE T", "/", HDR(NULL, NULL), 0, NULL, 0, 0, -1},
    {"method with CRLF", "GET\r\nX-Evil: 1\r\n\r\nGET", "/", HDR(NULL, NULL), 0, NULL, 0, 0, -1},
    {"method with LF", "GET\n", "/", HDR(NULL, NULL), 0, NULL, 0, 0, -1},
    {"method invalid UTF-8", "G\xff", "/", HDR(NULL, NULL), 0, NULL, 0, 0, -1},
    {"method not a token", "GET/", "/", HDR(NULL, NULL), 0, NULL, 0, 0, -1},
    {"path with space", "GET", "/a b", HDR(NULL, NULL), 0, NULL, 0, 0, -1},
    {"path with CR", "GET", "/a\rb", HDR(NULL, NULL), 0, NULL, 0, 0, -1},
    {"path with LF", "GET", "/a\nb", HDR(NULL, NULL), 0, NULL, 0, 0, -1},
    {"path with CRLF smuggling", "GET", "/ HTTP/1.1\r\nHost: x\r\n\r\nGET /count", HDR(NULL, NULL), 0, NULL, 0, 0, -1},
    {"path with tab", "GET", "/a\tb", HDR(NULL, NULL), 0, NULL, 0, 0, -1},
    {"path invalid UTF-8", "GET", "/\xc3\x28", HDR(NULL, NULL), 0, NULL, 0, 0, -1},
    {"header value with CR", "GET", "/count", HDR("x-a", "1\rX-Evil: 2"), 1, NULL, 0, 0, -1},
    {"header value with LF", "GET", "/count", HDR("x-a", "1\nX-Evil: 2"), 1, NULL, 0, 0, -1},
    {"header value with CRLF", "GET", "/count", HDR("x-a", "1\r\n\r\nGET /count HTTP/1.1"), 1, NULL, 0, 0, -1},
    {"header value with NUL", "GET", "/count", HDRN("x-a", 3, "ab\0cd", 5), 1, NULL, 0, 0, -1},
    {"header value invalid UTF-8", "GET", "/count", HDR("x-a", "\xe2\x28\xa1"), 1, NULL, 0, 0, -1},
    {"header value invalid UTF-8 (length)", "GET", "/count", HDRN("x-a", 3, "ok\xff", 3), 1, NULL, 0, 0, -1},
    {"header name with space", "GET", "/count", HDR("bad name", "1"), 1, NULL, 0, 0, -1},
    {"header name with colon", "GET", "/count", HDR("x:y", "1"), 1, NULL, 0, 0, -1},
    {"header name empty", "GET", "/count", HDRN("", 0, "1", 1), 1, NULL, 0, 0, -1},
    {"header name with NUL", "GET", "/count", HDRN("x-\0a", 4, "1", 1), 1, NULL, 0, 0, -1},
    {"header name with CRLF", "GET", "/count", HDR("x-a\r\nx-evil", "1"), 1, NULL, 0, 0, -1},
    {"header name invalid UTF-8", "GET", "/count", HDR("x-\xff", "1"), 1, NULL, 0, 0, -1},
    {"header name non-ASCII", "GET", "/count", HDR("x-\xc3\xa9", "1"), 1, NULL, 0, 0, -1},
    {"unknown request flag", "GET", "/count", HDR(NULL, NULL), 0, NULL, 0, 0x2u, -1},
    {"unknown high request flag", "GET", "/count", HDR(NULL, NULL), 0, NULL, 0, 0x80000000u, -1},
    {"GM_REQ_STREAM with a body", "POST", "/echo", HDR(NULL, NULL), 0, "body", 4, GM_REQ_STREAM, -1},
    {"gm_req_opts.size 0", "GET", "/count", HDR(NULL, NULL), 0, NULL, 0, 0, 0},
    {"gm_req_opts.size too small", "GET", "/count", HDR(NULL, NULL), 0, NULL, 0, 0, 4},
    {"gm_req_opts.size one short", "GET", "/count", HDR(NULL, NULL), 0, NULL, 0, 0, (int)sizeof(gm_req_opts) - 1},
};

TEST(bad_requests_never_reach_the_wire) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    long before = server_count(c);
    REQUIRE(before > 0);
    for (size_t i = 0; i < sizeof bad_reqs / sizeof bad_reqs[0]; i++) {
        const struct bad_req *b = &bad_reqs[i];
        gm_req_opts o;
        memset(&o, 0, sizeof o);
        o.size = b->opts_size < 0 ? 0 : (uint32_t)b->opts_size;
        gm_ref ref = 0;
        int f0 = check_failed;
        CHECK_FAILS(gm_request(c, b->method, b->path, b->n_headers ? &b->h : NULL, (size_t)b->n_headers,
                               b->body, b->body_len, b->flags, b->opts_size < 0 ? NULL : &o, &ref),
                    GM_EINVAL);
        if (check_failed != f0) fprintf(stderr, "    (bad request: %s)\n", b->what);
    }
    /* No ERROR or other event was made for them. */
    CHECK_EQ(gm_queue_len(c ? q : NULL), 0);
    long after = server_count(c);
    /* The server saw exactly one request since: the second /count. */
    CHECK_EQ(after, before + 1);

    /* The same headers done right do reach the server, as sent. */
    gm_header good[2] = {HDR("x-good", "caf\xc3\xa9 ok"), HDRN("x-len", 5, "12345678", 3)};
    gm_ref ref = 0;
    REQUIRE_RC(gm_request(c, "GET", "/headers", good, 2, NULL, 0, 0, NULL, &ref), GM_OK);
    gm_event *ev = NULL;
    REQUIRE_RC(gm_await_body(c, ref, WAIT_MS, &ev), GM_OK);
    CHECK_EQ(ev->status, 200);
    CHECK(ev->data && strstr((const char *)ev->data, "\"x-good\":[\"caf\xc3\xa9 ok\"]") != NULL);
    CHECK(ev->data && strstr((const char *)ev->data, "\"x-len\":[\"123\"]") != NULL);
    if (ev->data && !strstr((const char *)ev->data, "x-good")) fprintf(stderr, "    /headers: %s\n", ev->data);
    gm_event_free(ev);
    CHECK_EQ(server_count(c), before + 3);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

/* Bad input while the connection is not up yet (requests are queued then):
 * still refused at once, and only the good request goes out on UP. */
TEST(bad_requests_refused_while_connecting) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c0 = open_up(q);
    REQUIRE(c0 != NULL);
    long before = server_count(c0);
    gm_conn *c = NULL;
    REQUIRE_RC(gm_open(q, "127.0.0.1", http_port(), NULL, &c), GM_OK);
    gm_ref ref = 0;
    gm_header bad = HDR("x-a", "1\r\nx-evil: 1");
    CHECK_FAILS(gm_request(c, "GET", "/count", &bad, 1, NULL, 0, 0, NULL, &ref), GM_EINVAL);
    CHECK_FAILS(gm_request(c, "GET", "/a b", NULL, 0, NULL, 0, 0, NULL, &ref), GM_EINVAL);
    gm_ref good = 0;
    CHECK_RC(gm_request(c, "GET", "/count", NULL, 0, NULL, 0, 0, NULL, &good), GM_OK);
    gm_event *ev = NULL;
    CHECK_RC(gm_await_body(c, good, WAIT_MS, &ev), GM_OK);
    if (ev) {
        CHECK_EQ(ev->status, 200);
        CHECK_EQ(strtol((const char *)ev->data, NULL, 10), before + 1);
    }
    gm_event_free(ev);
    CHECK(close_and_free(q, c));
    CHECK(close_and_free(q, c0));
    gm_queue_free(q);
}

/* Stream functions with references that are not streams of theirs. */
TEST(stream_functions_bad_refs) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    gm_event *ev = NULL;
    CHECK_FAILS(gm_data(c, 0, "x", 1, 1), GM_ENOSTREAM);
    CHECK_FAILS(gm_data(c, 987654321, "x", 1, 1), GM_ENOSTREAM);
    CHECK_FAILS(gm_stream_info(c, 987654321, &ev), GM_ENOSTREAM);
    CHECK(ev == NULL);
    /* Cancel of an unknown stream is ignored, as in Gun. */
    CHECK_RC(gm_cancel(c, 987654321), GM_OK);
    CHECK_FAILS(gm_await(c, 987654321, 50, &ev), GM_ETIMEOUT);
    CHECK(ev == NULL);
    /* A request without GM_REQ_STREAM takes no data. */
    gm_ref ref = 0;
    REQUIRE_RC(gm_request(c, "GET", "/delay/100", NULL, 0, NULL, 0, 0, NULL, &ref), GM_OK);
    CHECK_FAILS(gm_data(c, ref, "x", 1, 1), GM_ENOSTREAM);
    CHECK_RC(gm_await_body(c, ref, WAIT_MS, &ev), GM_OK);
    gm_event_free(ev);
    /* A finished stream: no data, no stream_info. */
    ev = NULL;
    CHECK_FAILS(gm_stream_info(c, ref, &ev), GM_ENOSTREAM);
    CHECK_FAILS(gm_data(c, ref, "x", 1, 1), GM_ENOSTREAM);
    /* A streamed body after its fin takes no more data. */
    REQUIRE_RC(gm_request(c, "POST", "/echo", NULL, 0, NULL, 0, GM_REQ_STREAM, NULL, &ref), GM_OK);
    CHECK_RC(gm_data(c, ref, "abc", 3, 1), GM_OK);
    CHECK_FAILS(gm_data(c, ref, "more", 4, 1), GM_ENOSTREAM);
    CHECK_RC(gm_await_body(c, ref, WAIT_MS, &ev), GM_OK);
    if (ev) CHECK_EQ(ev->data_len, 3);
    gm_event_free(ev);
    CHECK_EQ(gm_queue_len(q), 0);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

/* "A released handle that is used anyway answers GM_EINVAL or GM_ECLOSED,
 * never a crash, as long as its address has not been reused." (No handle
 * is made between the release and the use here.) */
static int released_code(int rc) { return rc == GM_EINVAL || rc == GM_ECLOSED || rc == GM_EQUEUE; }

TEST(released_handles_answer_errors) {
    gm_queue *q = gm_queue_new(), *dead = gm_queue_new();
    REQUIRE(q != NULL && dead != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    gm_queue_free(dead);
    gm_event *ev = NULL;
    gm_conn *c2 = NULL;
    check_set_marker(0);
    CHECK(released_code(gm_queue_len(dead)));
    CHECK(released_code(gm_queue_fd(dead)));
    CHECK(released_code(gm_queue_wake(dead)));
    CHECK(released_code(gm_queue_poll(dead, &ev, 1, 0)));
    CHECK(released_code(gm_open(dead, "127.0.0.1", http_port(), NULL, &c2)));
    CHECK(released_code(gm_open_unix(dead, "/x.sock", NULL, &c2)));
    CHECK(released_code(gm_set_owner(c, dead)));
    gm_req_opts o = {.size = sizeof o, .reply_to = dead};
    gm_ref ref = 0;
    CHECK(released_code(gm_request(c, "GET", "/count", NULL, 0, NULL, 0, 0, &o, &ref)));
    CHECK_ERRMSG();
    CHECK(ev == NULL && c2 == NULL && ref == 0);
    /* The live connection is unharmed. */
    CHECK_EQ(get_body(c, "/bytes/1", NULL, NULL), 200);
    CHECK(close_and_free(q, c));
    /* A released connection. */
    check_set_marker(0);
    CHECK(released_code(gm_request(c, "GET", "/count", NULL, 0, NULL, 0, 0, NULL, &ref)));
    CHECK(released_code(gm_shutdown(c)));
    CHECK(released_code(gm_await_up(c, 0, NULL)));
    CHECK(released_code(gm_info(c, &ev)));
    CHECK(released_code(gm_set_owner(c, q)));
    CHECK_ERRMSG();
    CHECK(ev == NULL);
    gm_queue_free(q);
}

/* "No Go panic ever crosses into C: an internal failure returns
 * GM_EINTERNAL with the panic's text in gm_errmsg()." A fault inside Go
 * code (here: a bogus, non-NULL out-pointer, written by the Go side) must
 * become a recovered panic. This also checks run.sh's sanitizer set-up:
 * with ASAN_OPTIONS allow_user_segv_handler=0, ASan would keep Go from
 * installing its SIGSEGV handler and kill the process here instead. */
TEST(go_fault_is_einternal_not_a_crash) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    gm_ref *bogus = (gm_ref *)(uintptr_t)8;
    CHECK_FAILS(gm_request(c, "GET", "/bytes/1", NULL, 0, NULL, 0, 0, NULL, bogus), GM_EINTERNAL);
    CHECK(strstr(gm_errmsg(), "internal error") != NULL);
    /* The library goes on working. */
    CHECK_EQ(get_body(c, "/bytes/2", NULL, NULL), 200);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

static const struct check_case cases[] = {
    CASE(version_matches_header),
    CASE(strerror_every_code),
    CASE(errmsg_is_thread_local),
    CASE(release_functions_accept_null),
    CASE(null_queue),
    CASE(poll_bad_arguments),
    CASE(null_open),
    CASE(null_connection),
    CASE(null_arguments_on_live_connection),
    CASE(open_bad_ports),
    CASE(open_bad_hosts),
    CASE(open_bad_options),
    CASE(bad_requests_never_reach_the_wire),
    CASE(bad_requests_refused_while_connecting),
    CASE(stream_functions_bad_refs),
    CASE(released_handles_answer_errors),
    CASE(go_fault_is_einternal_not_a_crash),
};

int main(int argc, char **argv) { return check_main(argc, argv, cases, CHECK_N(cases)); }
