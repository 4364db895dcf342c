/*
 * sockopts.c — issue 11, socket options: tcp_opts that gen_tcp has either
 * reach the socket or are refused with GM_EOPTION naming them. (Each
 * option's value on the socket is read back with getsockopt in
 * core/sockopts_test.go; here: the C ABI's view.)
 */
#define _GNU_SOURCE
#include <string.h>

#include "util.h"

static void check_refused(gm_queue *q, const char *opts, const char *name, int line) {
    gm_conn *c = NULL;
    int rc = gm_open(q, "127.0.0.1", http_port(), opts, &c);
    if (rc != GM_EOPTION || c != NULL || !strstr(gm_errmsg(), name)) {
        check_failed++;
        check_report(__FILE__, line, opts);
        fprintf(stderr, "  rc %d, errmsg \"%s\", want GM_EOPTION naming %s\n", rc, gm_errmsg(), name);
    } else {
        check_passed++;
    }
}

TEST(refused_options_are_named) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    check_refused(q, "{\"tcp_opts\":{\"buffer\":4096}}", "tcp_opts.buffer", __LINE__);
    check_refused(q, "{\"tcp_opts\":{\"keepidle\":30}}", "tcp_opts.keepidle", __LINE__);
    check_refused(q, "{\"tcp_opts\":{\"tos\":256}}", "tcp_opts.tos", __LINE__);
    check_refused(q, "{\"tcp_opts\":{\"linger\":true}}", "tcp_opts.linger", __LINE__);
    check_refused(q, "{\"tcp_opts\":{\"inet\":true,\"ipv6_v6only\":true}}", "tcp_opts.ipv6_v6only", __LINE__);
    gm_queue_free(q);
}

/* Every option at once on a real connection: it comes up and serves. */
TEST(options_set_connection_works) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up_opts(q, "{\"tcp_opts\":{\"bind_to_device\":\"lo\",\"keepalive\":true,"
                                 "\"keepidle\":60,\"keepintvl\":5,\"keepcnt\":3,\"linger\":2,\"tos\":16,"
                                 "\"priority\":1,\"reuseaddr\":true,\"inet\":true}}");
    REQUIRE(c != NULL);
    char *body = NULL;
    size_t len = 0;
    CHECK(get_body(c, "/", &body, &len));
    free(body);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

/* Failures at connect: a device that does not exist (enodev), and inet6
 * (IPv6 only, as gen_tcp) to an IPv4 address. Both end in EXIT. */
static void check_exit(const char *opts, const char *reason, int line) {
    gm_queue *q = gm_queue_new();
    gm_conn *c = NULL;
    if (!q || gm_open(q, "127.0.0.1", http_port(), opts, &c) != GM_OK) {
        check_failed++;
        check_report(__FILE__, line, "gm_open failed");
        if (q) gm_queue_free(q);
        return;
    }
    gm_event *ev = next_event(q, WAIT_MS);
    if (!ev || ev->kind != GM_EV_EXIT || ev->conn != c || !ev->reason ||
        (reason && strncmp(ev->reason, reason, strlen(reason)) != 0)) {
        check_failed++;
        check_report(__FILE__, line, opts);
        fprintf(stderr, "  event kind %d reason \"%s\", want EXIT %s\n", ev ? ev->kind : -1,
                ev && ev->reason ? ev->reason : "", reason ? reason : "");
    } else {
        check_passed++;
    }
    if (ev) gm_event_free(ev);
    gm_conn_free(c);
    gm_queue_free(q);
}

TEST(connect_failures_exit) {
    check_exit("{\"retry\":0,\"tcp_opts\":{\"bind_to_device\":\"nosuchdev0\"}}", "enodev", __LINE__);
    check_exit("{\"retry\":0,\"tcp_opts\":{\"inet6\":true}}", NULL, __LINE__);
}

static const struct check_case cases[] = {
    CASE(refused_options_are_named),
    CASE(options_set_connection_works),
    CASE(connect_failures_exit),
};

int main(int argc, char **argv) { return check_main(argc, argv, cases, CHECK_N(cases)); }
