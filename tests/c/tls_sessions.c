/*
 * tls_sessions.c — the process-wide TLS client session cache: a second
 * gm_open to the same server resumes (gm_info's tls_resumed), and
 * gm_tls_session_cache bounds it. Each case runs in a process of its own,
 * so each starts with an empty cache.
 */
#include "util.h"

/* Opens a TLS connection to the test server (as host), reads a response
 * (the TLS 1.3 ticket comes after the handshake) and returns whether it
 * resumed: 1, 0, or -1 on failure. */
static int tls_open_resumed(gm_queue *q, const char *host, const char *extra, gm_conn **out) {
    char opts[1024];
    snprintf(opts, sizeof opts, "{\"transport\":\"tls\",\"protocols\":[\"http\"],\"retry\":0,"
             "\"tls_opts\":{\"cacertfile\":\"%s\"%s}}", getenv("GM_TEST_CA"), extra);
    gm_conn *c = NULL;
    int rc = gm_open(q, host, https_port(), opts, &c);
    CHECK_RC(rc, GM_OK);
    if (rc != GM_OK) return -1;
    *out = c;
    const char *proto = NULL;
    rc = gm_await_up(c, WAIT_MS, &proto);
    CHECK_RC(rc, GM_OK);
    if (rc != GM_OK) return -1;
    char *body = NULL;
    size_t len = 0;
    CHECK_EQ(get_body(c, "/bytes/10", &body, &len), 200);
    free(body);
    gm_event *ev = NULL;
    CHECK_RC(gm_info(c, &ev), GM_OK);
    if (!ev) return -1;
    CHECK_STR(ev_header(ev, "alpn"), "http/1.1");
    CHECK_PREFIX(ev_header(ev, "tls_version"), "TLS 1.");
    CHECK(ev_header(ev, "tls_cipher") != NULL);
    const char *r = ev_header(ev, "tls_resumed");
    int res = r && strcmp(r, "true") == 0 ? 1 : r && strcmp(r, "false") == 0 ? 0 : -1;
    gm_event_free(ev);
    return res;
}

TEST(second_open_resumes) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c[4] = {NULL};
    CHECK_EQ(tls_open_resumed(q, "localhost", "", &c[0]), 0);
    CHECK_EQ(tls_open_resumed(q, "localhost", "", &c[1]), 1);
    /* tls_opts sizing a cache: the connection's own, empty at first. */
    CHECK_EQ(tls_open_resumed(q, "localhost", ",\"session_cache_client_max\":3", &c[2]), 0);
    CHECK_EQ(tls_open_resumed(q, "localhost", ",\"reuse_sessions\":false", &c[3]), 0);
    for (int i = 0; i < 4; i++) CHECK(close_and_free(q, c[i]));
    gm_queue_free(q);
}

TEST(session_cache_bound) {
    CHECK_FAILS(gm_tls_session_cache(0, 1000), GM_EINVAL);
    CHECK_FAILS(gm_tls_session_cache(10, -1), GM_EINVAL);
    CHECK_RC(gm_tls_session_cache(1, 0), GM_OK);
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c[4] = {NULL};
    CHECK_EQ(tls_open_resumed(q, "localhost", "", &c[0]), 0);
    CHECK_EQ(tls_open_resumed(q, "127.0.0.1", "", &c[1]), 0); /* evicts localhost's */
    CHECK_EQ(tls_open_resumed(q, "localhost", "", &c[2]), 0);
    CHECK_EQ(tls_open_resumed(q, "localhost", "", &c[3]), 1);
    for (int i = 0; i < 4; i++) CHECK(close_and_free(q, c[i]));
    gm_queue_free(q);
}

static const struct check_case cases[] = {
    CASE(second_open_resumes),
    CASE(session_cache_bound),
};

int main(int argc, char **argv) { return check_main(argc, argv, cases, CHECK_N(cases)); }
