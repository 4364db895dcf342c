/*
 * raw.c — issue 11, first slice: Gun's raw protocol through the C ABI.
 * The test is its own server (a socket it listens on, on 127.0.0.1): bytes
 * both ways with gm_data on ref 0 (Gun's undefined) and GM_EV_DATA events,
 * half-close with fin, raw_opts.flow as gen_tcp's {active, N} (NOTIFY
 * "passive", gm_update_flow), the peer's close as DOWN/EXIT, and
 * raw_opts.packet framing (gen_tcp's {packet, 2}) with packet_size.
 */
#define _GNU_SOURCE
#include <string.h>
#include <arpa/inet.h>

#include "util.h"


/* Opens a raw connection to port, waits for UP "raw" and accepts it: the
 * server side's fd, or -1. */
static int raw_open(gm_queue *q, int ls, int port, const char *opts, gm_conn **c) {
    *c = NULL;
    if (gm_open(q, "127.0.0.1", port, opts, c) != GM_OK) return -1;
    const char *proto = NULL;
    if (gm_await_up(*c, WAIT_MS, &proto) != GM_OK || !proto || strcmp(proto, "raw") != 0) return -1;
    if (fd_readable(ls, WAIT_MS) != 1) return -1;
    return accept(ls, NULL, NULL);
}

/* Reads exactly n bytes from fd (within WAIT_MS): 1 when it did. */
static int read_n(int fd, char *buf, size_t n) {
    size_t have = 0;
    while (have < n) {
        if (fd_readable(fd, WAIT_MS) != 1) return 0;
        ssize_t r = read(fd, buf + have, n - have);
        if (r <= 0) return 0;
        have += (size_t)r;
    }
    return 1;
}

/* Takes DATA events of c on ref 0 until n bytes came into buf: 1 when they
 * did, 0 on any other event or timeout. */
static int data_n(gm_queue *q, gm_conn *c, char *buf, size_t n) {
    size_t have = 0;
    while (have < n) {
        gm_event *ev = next_event(q, WAIT_MS);
        if (!ev) return 0;
        int ok = ev->conn == c && ev->kind == GM_EV_DATA && ev->ref == 0 && !ev->fin &&
                 have + ev->data_len <= n;
        if (ok) {
            memcpy(buf + have, ev->data, ev->data_len);
            have += ev->data_len;
        } else {
            fprintf(stderr, "unexpected event kind %d ref %llu reason %s\n", ev->kind,
                    (unsigned long long)ev->ref, ev->reason ? ev->reason : "");
        }
        gm_event_free(ev);
        if (!ok) return 0;
    }
    return 1;
}

TEST(raw_round_trip_half_close_and_peer_close) {
    int port = 0;
    int ls = listen_local(&port);
    REQUIRE(ls >= 0);
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = NULL;
    int fd = raw_open(q, ls, port, "{\"protocols\":[\"raw\"],\"retry\":0}", &c);
    REQUIRE(fd >= 0);

    /* Client to server. */
    CHECK_RC(gm_data(c, 0, "ping", 4, 0), GM_OK);
    char buf[64] = {0};
    CHECK(read_n(fd, buf, 4) && memcmp(buf, "ping", 4) == 0);
    /* Server to client: DATA events on ref 0. */
    REQUIRE(write(fd, "pong!", 5) == 5);
    memset(buf, 0, sizeof buf);
    CHECK(data_n(q, c, buf, 5) && memcmp(buf, "pong!", 5) == 0);

    /* Not a request connection; the byte stream is ref 0. */
    gm_ref ref = 0;
    CHECK_FAILS(gm_request(c, "GET", "/", NULL, 0, NULL, 0, 0, NULL, &ref), GM_EUNSUPPORTED);
    CHECK_FAILS(gm_data(c, 42, "x", 1, 0), GM_ENOSTREAM);
    CHECK_FAILS(gm_update_flow(c, 0, 1), GM_EBADSTATE); /* no raw_opts.flow */

    /* Half-close: the server reads the bytes then EOF; the client still
     * reads the answer. */
    CHECK_RC(gm_data(c, 0, "end", 3, 1), GM_OK);
    memset(buf, 0, sizeof buf);
    CHECK(read_n(fd, buf, 3) && memcmp(buf, "end", 3) == 0);
    CHECK_EQ(fd_readable(fd, WAIT_MS), 1);
    CHECK_EQ(read(fd, buf, sizeof buf), 0); /* EOF */
    CHECK_FAILS(gm_data(c, 0, "late", 4, 0), GM_EBADSTATE);
    REQUIRE(write(fd, "after-eof", 9) == 9);
    memset(buf, 0, sizeof buf);
    CHECK(data_n(q, c, buf, 9) && memcmp(buf, "after-eof", 9) == 0);

    /* The peer's close: DOWN raw closed, then (retry 0) EXIT closed. */
    close(fd);
    gm_event *ev = next_event(q, WAIT_MS);
    REQUIRE(ev != NULL);
    CHECK_EQ(ev->kind, GM_EV_DOWN);
    CHECK_STR(ev->protocol, "raw");
    CHECK_STR(ev->reason, "closed");
    CHECK_EQ(ev->n_killed, 0);
    gm_event_free(ev);
    ev = next_event(q, WAIT_MS);
    REQUIRE(ev != NULL);
    CHECK_EQ(ev->kind, GM_EV_EXIT);
    CHECK_STR(ev->reason, "closed");
    gm_event_free(ev);
    gm_conn_free(c);
    close(ls);
    gm_queue_free(q);
}

TEST(raw_flow_is_active_n) {
    int port = 0;
    int ls = listen_local(&port);
    REQUIRE(ls >= 0);
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = NULL;
    int fd = raw_open(q, ls, port, "{\"protocols\":[\"raw\"],\"retry\":0,\"raw_opts\":{\"flow\":1}}", &c);
    REQUIRE(fd >= 0);
    char buf[16] = {0};
    REQUIRE(write(fd, "a", 1) == 1);
    CHECK(data_n(q, c, buf, 1) && buf[0] == 'a');
    /* After the one DATA: NOTIFY passive, and nothing more is read. */
    gm_event *ev = next_event(q, WAIT_MS);
    REQUIRE(ev != NULL);
    CHECK_EQ(ev->kind, GM_EV_NOTIFY);
    CHECK_EQ(ev->ref, 0);
    CHECK_STR(ev->reason, "passive");
    gm_event_free(ev);
    REQUIRE(write(fd, "b", 1) == 1);
    CHECK(next_event(q, 300) == NULL); /* proving an absence: passive */
    CHECK_RC(gm_update_flow(c, 0, 1), GM_OK);
    CHECK(data_n(q, c, buf, 1) && buf[0] == 'b');
    ev = next_event(q, WAIT_MS);
    REQUIRE(ev != NULL);
    CHECK_EQ(ev->kind, GM_EV_NOTIFY);
    gm_event_free(ev);
    CHECK(close_and_free(q, c));
    close(fd);
    close(ls);
    gm_queue_free(q);
}

/* One DATA event that must be exactly the message m (len n). */
static int message_is(gm_queue *q, gm_conn *c, const char *m, size_t n) {
    gm_event *ev = next_event(q, WAIT_MS);
    if (!ev) return 0;
    int ok = ev->conn == c && ev->kind == GM_EV_DATA && ev->ref == 0 && ev->data_len == n &&
             (n == 0 || memcmp(ev->data, m, n) == 0);
    if (!ok)
        fprintf(stderr, "unexpected event kind %d len %zu reason %s\n", ev->kind, ev->data_len,
                ev->reason ? ev->reason : "");
    gm_event_free(ev);
    return ok;
}

TEST(raw_packet_2_framing_and_packet_size) {
    int port = 0;
    int ls = listen_local(&port);
    REQUIRE(ls >= 0);
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = NULL;
    int fd = raw_open(q, ls, port,
                      "{\"protocols\":[\"raw\"],\"retry\":0,\"raw_opts\":{\"packet\":2,\"packet_size\":100}}", &c);
    REQUIRE(fd >= 0);

    /* gm_data sends one message with its 2-byte big-endian prefix. */
    CHECK_RC(gm_data(c, 0, "hi", 2, 0), GM_OK);
    char buf[8] = {0};
    CHECK(read_n(fd, buf, 4) && memcmp(buf, "\0\2hi", 4) == 0);
    /* Too long for the prefix: GM_EINVAL naming it, nothing sent. */
    static char big[70000];
    CHECK_FAILS(gm_data(c, 0, big, sizeof big, 0), GM_EINVAL);
    CHECK(strstr(gm_errmsg(), "raw_opts.packet") != NULL);
    CHECK_EQ(fd_readable(fd, 200), 0);

    /* Messages written byte by byte, then coalesced: one DATA each. */
    static const char slow[] = "\0\3abc\0\0";
    for (size_t i = 0; i < sizeof slow - 1; i++) REQUIRE(write(fd, slow + i, 1) == 1);
    CHECK(message_is(q, c, "abc", 3));
    CHECK(message_is(q, c, "", 0));
    REQUIRE(write(fd, "\0\1x\0\2yz", 7) == 7);
    CHECK(message_is(q, c, "x", 1));
    CHECK(message_is(q, c, "yz", 2));

    /* A message announced over packet_size: DOWN emsgsize naming it. */
    REQUIRE(write(fd, "\0\x65", 2) == 2);
    gm_event *ev = next_event(q, WAIT_MS);
    REQUIRE(ev != NULL);
    CHECK_EQ(ev->kind, GM_EV_DOWN);
    CHECK(ev->reason && strncmp(ev->reason, "emsgsize: ", 10) == 0 &&
          strstr(ev->reason, "raw_opts.packet_size") != NULL);
    gm_event_free(ev);
    ev = next_event(q, WAIT_MS);
    REQUIRE(ev != NULL);
    CHECK_EQ(ev->kind, GM_EV_EXIT);
    gm_event_free(ev);
    gm_conn_free(c);
    close(fd);
    close(ls);
    gm_queue_free(q);
}

/* tcp_opts.send_timeout on raw, as gen_tcp's: the server accepts and does
 * not read, so a large gm_data_v2 cannot complete: GM_ETIMEOUT, *sent says
 * how many bytes of the call went out, gm_errmsg says it too. With
 * send_timeout_close false the connection stays up: the server then reads
 * exactly *sent bytes of it followed by the next call's bytes. With the
 * default (true) the connection goes DOWN naming tcp_opts.send_timeout. */
TEST(raw_send_timeout_reports_bytes_sent) {
    const size_t big = 16 << 20;
    unsigned char *p = malloc(big);
    REQUIRE(p != NULL);
    for (size_t i = 0; i < big; i++) p[i] = (unsigned char)(i * 31 + (i >> 11));
    for (int keep = 1; keep >= 0; keep--) {
        int port = 0;
        int ls = listen_local(&port);
        REQUIRE(ls >= 0);
        gm_queue *q = gm_queue_new();
        REQUIRE(q != NULL);
        gm_conn *c = NULL;
        int fd = raw_open(q, ls, port,
                          keep ? "{\"protocols\":[\"raw\"],\"retry\":0,\"tcp_opts\":{\"send_timeout\":1500,"
                                 "\"send_timeout_close\":false,\"sndbuf\":4096}}"
                               : "{\"protocols\":[\"raw\"],\"retry\":0,\"tcp_opts\":{\"send_timeout\":300,\"sndbuf\":4096}}",
                          &c);
        REQUIRE(fd >= 0);
        size_t sent = 12345;
        CHECK_FAILS(gm_data_v2(c, 0, p, big, 0, &sent), GM_ETIMEOUT);
        CHECK(sent > 0 && sent < big);
        char want[128];
        snprintf(want, sizeof want, "timeout: %zu of %zu bytes went out within tcp_opts.send_timeout", sent, big);
        CHECK_PREFIX(gm_errmsg(), want);
        if (keep) {
            CHECK(strstr(gm_errmsg(), "stays up") != NULL);
            /* The peer reads again: exactly p[0..sent), then "tail". */
            size_t n2 = 0;
            CHECK_RC(gm_data_v2(c, 0, "tail", 4, 1, &n2), GM_OK);
            CHECK_EQ(n2, 4);
            unsigned char *got = malloc(sent + 4);
            REQUIRE(got != NULL);
            CHECK(read_n(fd, (char *)got, sent + 4));
            CHECK(memcmp(got, p, sent) == 0 && memcmp(got + sent, "tail", 4) == 0);
            char one;
            CHECK_EQ(fd_readable(fd, WAIT_MS), 1);
            CHECK_EQ(read(fd, &one, 1), 0); /* the fin, nothing else */
            free(got);
            CHECK(close_and_free(q, c));
        } else {
            CHECK(strstr(gm_errmsg(), "the connection closes") != NULL);
            gm_event *ev = next_event(q, WAIT_MS);
            REQUIRE(ev != NULL);
            CHECK_EQ(ev->kind, GM_EV_DOWN);
            CHECK(ev->reason && strstr(ev->reason, "tcp_opts.send_timeout") != NULL);
            gm_event_free(ev);
            ev = next_event(q, WAIT_MS);
            REQUIRE(ev != NULL);
            CHECK_EQ(ev->kind, GM_EV_EXIT);
            gm_event_free(ev);
            gm_conn_free(c);
        }
        close(fd);
        close(ls);
        gm_queue_free(q);
    }
    free(p);
}

/* HTTP/1.1 Upgrade to raw (Gun's http11_upgrade_raw_tcp): a GET with
 * connection: upgrade, upgrade: custom/1.0 answered by 101 makes the
 * connection raw: GM_EV_UPGRADE names the protocol, the bytes after the
 * 101 and the rest of the stream are GM_EV_DATA on ref 0, gm_data on ref 0
 * sends, gm_info says raw. The events go to the request's reply_to. */
TEST(raw_http11_upgrade) {
    int port = 0;
    int ls = listen_local(&port);
    REQUIRE(ls >= 0);
    gm_queue *q = gm_queue_new(), *rq = gm_queue_new();
    REQUIRE(q != NULL && rq != NULL);
    gm_conn *c = NULL;
    REQUIRE_RC(gm_open(q, "127.0.0.1", port, "{\"retry\":0}", &c), GM_OK);
    const char *proto = NULL;
    REQUIRE_RC(gm_await_up(c, WAIT_MS, &proto), GM_OK);
    CHECK_STR(proto, "http");
    REQUIRE(fd_readable(ls, WAIT_MS) == 1);
    int fd = accept(ls, NULL, NULL);
    REQUIRE(fd >= 0);
    gm_header hs[] = {{"connection", "upgrade", 10, 7}, {"upgrade", "custom/1.0", 7, 10}};
    gm_req_opts ro;
    memset(&ro, 0, sizeof ro);
    ro.size = sizeof ro;
    ro.reply_to = rq;
    gm_ref ref = 0;
    REQUIRE_RC(gm_request(c, "GET", "/", hs, 2, NULL, 0, 0, &ro, &ref), GM_OK);
    char buf[4096] = {0};
    size_t n = 0;
    while (!memmem(buf, n, "\r\n\r\n", 4)) {
        REQUIRE(fd_readable(fd, WAIT_MS) == 1);
        ssize_t r = read(fd, buf + n, sizeof buf - 1 - n);
        REQUIRE(r > 0);
        n += (size_t)r;
    }
    CHECK(strcasestr(buf, "upgrade: custom/1.0\r\n") != NULL);
    const char *resp = "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: custom/1.0\r\n\r\nearly";
    REQUIRE(write(fd, resp, strlen(resp)) == (ssize_t)strlen(resp));
    gm_event *ev = next_event(rq, WAIT_MS);
    REQUIRE(ev != NULL);
    CHECK_EQ(ev->kind, GM_EV_UPGRADE);
    CHECK_EQ(ev->ref, ref);
    CHECK_STR(ev->protocol, "custom/1.0");
    gm_event_free(ev);
    memset(buf, 0, sizeof buf);
    CHECK(data_n(rq, c, buf, 5) && memcmp(buf, "early", 5) == 0);
    CHECK_RC(gm_data(c, 0, "Hello world!", 12, 0), GM_OK);
    memset(buf, 0, sizeof buf);
    CHECK(read_n(fd, buf, 12) && memcmp(buf, "Hello world!", 12) == 0);
    REQUIRE(write(fd, "back", 4) == 4);
    memset(buf, 0, sizeof buf);
    CHECK(data_n(rq, c, buf, 4) && memcmp(buf, "back", 4) == 0);
    gm_event *info = NULL;
    REQUIRE_RC(gm_info(c, &info), GM_OK);
    int saw = 0;
    for (size_t i = 0; i < info->n_headers; i++)
        if (strcmp(info->headers[i].name, "protocol") == 0) saw = strcmp(info->headers[i].value, "raw") == 0 ? 1 : -1;
    CHECK_EQ(saw, 1);
    gm_event_free(info);
    CHECK_EQ(gm_queue_len(q), 0);
    CHECK(close_and_free(q, c));
    close(fd);
    close(ls);
    gm_queue_free(rq);
    gm_queue_free(q);
}

static const struct check_case cases[] = {
    CASE(raw_round_trip_half_close_and_peer_close),
    CASE(raw_flow_is_active_n),
    CASE(raw_packet_2_framing_and_packet_size),
    CASE(raw_send_timeout_reports_bytes_sent),
    CASE(raw_http11_upgrade),
};

int main(int argc, char **argv) { return check_main(argc, argv, cases, CHECK_N(cases)); }
