/*
 * open_fd.c — issue 11, adopting a connected socket (gen_tcp's {fd, Fd}):
 * gm_open_fd on a TCP socket this test connected itself to the test server
 * (a GET works, the fd number is closed: ownership passed), on a socketpair
 * end (raw bytes both ways, the peer's close ends in DOWN then EXIT), and
 * on what is not a connected stream socket (GM_EINVAL, the fd left open),
 * with the options that cannot apply refused (GM_EOPTION).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <arpa/inet.h>

#include "util.h"

static int connect_local(int port) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
        if (s >= 0) close(s);
        return -1;
    }
    return s;
}

static int fd_open(int fd) { return fcntl(fd, F_GETFD) != -1; }

TEST(open_fd_tcp_get) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    int s = connect_local(http_port());
    REQUIRE(s >= 0);
    gm_conn *c = NULL;
    REQUIRE_RC(gm_open_fd(q, s, "{\"protocols\":[\"http\"]}", &c), GM_OK);
    CHECK(!fd_open(s)); /* gunmetal's now: the host's number is closed */
    const char *proto = NULL;
    REQUIRE_RC(gm_await_up(c, WAIT_MS, &proto), GM_OK);
    CHECK_STR(proto, "http");
    CHECK_EQ(get_body(c, "/bytes/1", NULL, NULL), 200);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

TEST(open_fd_socketpair_raw) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    gm_conn *c = NULL;
    REQUIRE_RC(gm_open_fd(q, sv[0], "{\"protocols\":[\"raw\"]}", &c), GM_OK);
    const char *proto = NULL;
    REQUIRE_RC(gm_await_up(c, WAIT_MS, &proto), GM_OK);
    CHECK_STR(proto, "raw");
    CHECK_RC(gm_data(c, 0, "ping", 4, 0), GM_OK);
    char buf[8] = {0};
    REQUIRE(fd_readable(sv[1], WAIT_MS) == 1);
    CHECK(read(sv[1], buf, 4) == 4 && memcmp(buf, "ping", 4) == 0);
    REQUIRE(write(sv[1], "pong", 4) == 4);
    gm_event *ev = next_event(q, WAIT_MS);
    REQUIRE(ev != NULL);
    CHECK_EQ(ev->kind, GM_EV_DATA);
    CHECK(ev->data_len == 4 && memcmp(ev->data, "pong", 4) == 0);
    gm_event_free(ev);
    close(sv[1]);
    ev = next_event(q, WAIT_MS);
    REQUIRE(ev != NULL);
    CHECK_EQ(ev->kind, GM_EV_DOWN);
    gm_event_free(ev);
    ev = next_event(q, WAIT_MS);
    REQUIRE(ev != NULL);
    CHECK_EQ(ev->kind, GM_EV_EXIT); /* no reconnect */
    gm_event_free(ev);
    gm_conn_free(c);
    gm_queue_free(q);
}

TEST(open_fd_refuses_what_is_not_a_connected_socket) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = NULL;
    CHECK_FAILS(gm_open_fd(q, -1, NULL, &c), GM_EINVAL);

    char path[] = "/tmp/gm_open_fd_XXXXXX";
    int file = mkstemp(path);
    REQUIRE(file >= 0);
    unlink(path);
    CHECK_FAILS(gm_open_fd(q, file, NULL, &c), GM_EINVAL);
    CHECK(fd_open(file));

    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(ls >= 0 && bind(ls, (struct sockaddr *)&a, sizeof a) == 0 && listen(ls, 1) == 0);
    CHECK_FAILS(gm_open_fd(q, ls, NULL, &c), GM_EINVAL);
    CHECK(fd_open(ls));

    int un = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(un >= 0);
    CHECK_FAILS(gm_open_fd(q, un, NULL, &c), GM_EINVAL);
    CHECK(fd_open(un));

    /* A connected socket with options that cannot apply: the fd stays. */
    int s = connect_local(http_port());
    REQUIRE(s >= 0);
    CHECK_FAILS(gm_open_fd(q, s, "{\"retry\":1}", &c), GM_EOPTION);
    CHECK(strstr(gm_errmsg(), "retry") != NULL);
    CHECK_FAILS(gm_open_fd(q, s, "{\"transport\":\"tls\"}", &c), GM_EOPTION);
    CHECK(fd_open(s));
    CHECK(c == NULL);
    close(s);
    close(un);
    close(ls);
    close(file);
    gm_queue_free(q);
}

static const struct check_case cases[] = {
    CASE(open_fd_tcp_get),
    CASE(open_fd_socketpair_raw),
    CASE(open_fd_refuses_what_is_not_a_connected_socket),
};

int main(int argc, char **argv) { return check_main(argc, argv, cases, CHECK_N(cases)); }
