/*
 * unimplemented.c — issue 9, item 9: nothing accepted and ignored. Options
 * this build does not implement are refused by gm_open with GM_EOPTION and
 * a sentence naming them (no connection, no event, nothing on the wire);
 * http_opts.keepalive does what Gun's does, seen from the server's side.
 */
#define _GNU_SOURCE
#include <string.h>
#include <arpa/inet.h>

#include "util.h"

static const struct {
    const char *json, *names;
} refused[] = {
    {"{\"transport\":\"tls\",\"protocols\":[\"http\",\"raw\"]}", "option protocols = \"raw\": raw must be the only protocol"},
    {"{\"transport\":\"tls\",\"protocols\":[\"socks\",\"http2\"],\"socks_opts\":{\"host\":\"h\",\"port\":80}}", "option protocols = \"socks\": socks must be the only protocol"},
    {"{\"socks_opts\":{\"host\":\"h\",\"port\":80}}", "option socks_opts: given, but socks is not in protocols"},
    {"{\"supervise\":false}", "option supervise = false"},
    {"{\"tcp_opts\":{\"send_timeout_close\":false}}", "option tcp_opts.send_timeout_close = false: only with protocols [\"raw\"] over tcp"},
    {"{\"protocols\":[\"raw\"],\"transport\":\"tls\",\"tcp_opts\":{\"send_timeout_close\":false}}", "option tcp_opts.send_timeout_close = false: only with protocols [\"raw\"] over tcp"},
    {"{\"http2_opts\":{\"stream_window_data_threshold\":16384}}", "option http2_opts.stream_window_data_threshold = 16384"},
    {"{\"ws_opts\":{\"invalid_request_headers\":\"ignore\"}}", "option ws_opts.invalid_request_headers = \"ignore\""},
};

TEST(unimplemented_options_refused_at_open) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    int64_t live = gm__live_handles();
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        gm_conn *c = NULL;
        CHECK_FAILS(gm_open(q, "127.0.0.1", http_port(), refused[i].json, &c), GM_EOPTION);
        CHECK_PREFIX(gm_errmsg(), refused[i].names);
        CHECK(c == NULL);
        if (unix_path()) {
            CHECK_FAILS(gm_open_unix(q, unix_path(), refused[i].json, &c), GM_EOPTION);
            CHECK(c == NULL);
        }
    }
    CHECK_EQ(gm__live_handles(), live);
    CHECK_EQ(gm_queue_len(q), 0);
    /* gm_ws_upgrade's own ws_opts too. */
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    gm_ref ref = 0;
    CHECK_FAILS(gm_ws_upgrade(c, "/ws", NULL, 0, "{\"invalid_request_headers\":\"ignore\"}", &ref), GM_EOPTION);
    CHECK(strstr(gm_errmsg(), "invalid_request_headers") != NULL);
    CHECK(close_and_free(q, c));
    /* The values gunmetal does implement are accepted. */
    c = open_up_opts(q, "{\"supervise\":true,\"trace\":false,\"tcp_opts\":{\"send_timeout_close\":true},"
                        "\"http2_opts\":{\"stream_window_data_threshold\":0,\"max_stream_buffer_size\":1000,"
                        "\"enable_connect_protocol\":true},\"ws_opts\":{\"invalid_request_headers\":\"raise\"}}");
    CHECK(c != NULL);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}


/* Reads from fd into buf (appending at *n) until it holds want or
 * timeout_ms pass; 1 when found. */
static int read_until(int fd, char *buf, size_t cap, size_t *n, const char *want, int timeout_ms) {
    int64_t end = check_now_ms() + timeout_ms;
    for (;;) {
        buf[*n] = 0;
        if (memmem(buf, *n, want, strlen(want))) return 1;
        int64_t left = end - check_now_ms();
        if (left <= 0 || *n + 1 >= cap) return 0;
        if (fd_readable(fd, (int)left) != 1) return 0;
        ssize_t r = read(fd, buf + *n, cap - 1 - *n);
        if (r <= 0) return 0;
        *n += (size_t)r;
    }
}

TEST(http_keepalive_sends_empty_lines) {
    int port = 0;
    int ls = listen_local(&port);
    REQUIRE(ls >= 0);
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = NULL;
    REQUIRE_RC(gm_open(q, "127.0.0.1", port, "{\"http_opts\":{\"keepalive\":30}}", &c), GM_OK);
    CHECK_RC(gm_await_up(c, WAIT_MS, NULL), GM_OK);
    REQUIRE(fd_readable(ls, WAIT_MS) == 1);
    int fd = accept(ls, NULL, NULL);
    REQUIRE(fd >= 0);
    char buf[4096];
    size_t n = 0;
    /* Three keepalive periods' worth, and nothing but empty lines. */
    CHECK(read_until(fd, buf, sizeof buf, &n, "\r\n\r\n\r\n", WAIT_MS));
    for (size_t i = 0; i < n; i++) CHECK(buf[i] == '\r' || buf[i] == '\n');
    CHECK(close_and_free(q, c));
    close(fd);

    /* The default (infinity): not a byte. */
    REQUIRE_RC(gm_open(q, "127.0.0.1", port, NULL, &c), GM_OK);
    CHECK_RC(gm_await_up(c, WAIT_MS, NULL), GM_OK);
    REQUIRE(fd_readable(ls, WAIT_MS) == 1);
    fd = accept(ls, NULL, NULL);
    REQUIRE(fd >= 0);
    CHECK_EQ(fd_readable(fd, 300), 0); /* proving an absence */
    CHECK(close_and_free(q, c));
    close(fd);
    close(ls);
    gm_queue_free(q);
}

static const struct check_case cases[] = {
    CASE(unimplemented_options_refused_at_open),
    CASE(http_keepalive_sends_empty_lines),
};

int main(int argc, char **argv) { return check_main(argc, argv, cases, CHECK_N(cases)); }
