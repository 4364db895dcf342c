/*
 * held.c — gm_data before UP: the body of a request that waits for the
 * connection is held and goes out on UP, after the request, in order.
 * The server is a socket this test binds, and only listens on once the
 * pieces are held (until then connecting is refused and retried).
 */
#include "util.h"

static int bound_socket(int *port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || getsockname(s, (struct sockaddr *)&a, &len) != 0) {
        close(s);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return s;
}

TEST(data_held_until_up) {
    int port = 0;
    int ls = bound_socket(&port);
    REQUIRE(ls >= 0);
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = NULL;
    REQUIRE_RC(gm_open(q, "127.0.0.1", port, "{\"retry\":1000,\"retry_timeout\":20}", &c), GM_OK);
    gm_header hs[] = {{"content-length", "6", 14, 1}};
    gm_ref ref = 0;
    REQUIRE_RC(gm_request(c, "PUT", "/up", hs, 1, NULL, 0, GM_REQ_STREAM, NULL, &ref), GM_OK);
    CHECK_RC(gm_data(c, ref, "abc", 3, 0), GM_OK);
    CHECK_RC(gm_data(c, ref, "def", 3, 1), GM_OK);
    CHECK_FAILS(gm_data(c, ref, "x", 1, 0), GM_EBADSTATE); /* after fin */
    REQUIRE(listen(ls, 4) == 0);
    REQUIRE(fd_readable(ls, WAIT_MS) == 1);
    int s = accept(ls, NULL, NULL);
    REQUIRE(s >= 0);
    char buf[4096];
    size_t n = 0;
    int64_t end = check_now_ms() + WAIT_MS;
    while (n < sizeof buf - 1 && check_now_ms() < end) {
        buf[n] = 0;
        char *h = strstr(buf, "\r\n\r\n");
        if (h && strlen(h + 4) >= 6) break;
        if (fd_readable(s, WAIT_MS) != 1) break;
        ssize_t k = read(s, buf + n, sizeof buf - 1 - n);
        if (k <= 0) break;
        n += (size_t)k;
    }
    buf[n] = 0;
    CHECK(strncmp(buf, "PUT /up HTTP/1.1\r\n", 18) == 0);
    char *h = strstr(buf, "\r\n\r\n");
    CHECK(h != NULL);
    if (h) CHECK_STR(h + 4, "abcdef");
    const char resp[] = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    CHECK(write(s, resp, sizeof resp - 1) == (ssize_t)(sizeof resp - 1));
    gm_event *ev = NULL;
    CHECK_RC(gm_await_body(c, ref, WAIT_MS, &ev), GM_OK);
    if (ev) {
        CHECK_EQ(ev->status, 200);
        CHECK_EQ(ev->data_len, 2);
    }
    gm_event_free(ev);
    CHECK(close_and_free(q, c));
    close(s);
    close(ls);
    gm_queue_free(q);
}

static const struct check_case cases[] = {
    CASE(data_held_until_up),
};

int main(int argc, char **argv) { return check_main(argc, argv, cases, CHECK_N(cases)); }
