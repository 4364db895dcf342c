/*
 * progress.c — a certificate that fails verification ends the connection at
 * once, with the reason in gm_await_up's message (issue 9, item 3); a thread
 * blocked in gm_data on HTTP/1.1 is released by gm_cancel, the request's
 * timeout_ms and gm_close (item 5).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>

#include "util.h"

/* Default retry (5, 5 s): before a verification failure exited at once,
 * gm_await_up saw no EXIT for over 20 s. */
static void verify_fails(const char *opts, const char *why) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = NULL;
    REQUIRE_RC(gm_open(q, "127.0.0.1", https_port(), opts, &c), GM_OK);
    int rc = gm_await_up(c, 10000, NULL);
    const char *m = gm_errmsg();
    fprintf(stderr, "    gm_await_up: %d \"%s\"\n", rc, m ? m : "(null)");
    CHECK_EQ(rc, GM_ECLOSED);
    CHECK(m != NULL && strstr(m, why) != NULL);
    gm_event *ev = next_event(q, WAIT_MS);
    REQUIRE(ev != NULL);
    CHECK_EQ(ev->kind, GM_EV_EXIT);
    CHECK(ev->reason != NULL && strstr(ev->reason, why) != NULL);
    gm_event_free(ev);
    gm_conn_free(c);
    gm_queue_free(q);
}

TEST(tls_unknown_ca_exits_at_once) {
    verify_fails("{\"transport\":\"tls\",\"protocols\":[\"http\"]}", "x509: certificate signed by unknown authority");
}

TEST(tls_wrong_host_exits_at_once) {
    const char *ca = getenv("GM_TEST_CA");
    REQUIRE(ca != NULL && *ca);
    char opts[1024];
    snprintf(opts, sizeof opts, "{\"transport\":\"tls\",\"protocols\":[\"http\"],"
             "\"tls_opts\":{\"cacertfile\":\"%s\",\"server_name_indication\":\"wrong.example\"}}", ca);
    verify_fails(opts, "x509: certificate is valid for");
}

/* ---- a thread blocked in gm_data ---- */

/* A listening socket on 127.0.0.1 that never accepts: the kernel completes
 * the connection, nobody reads, a request body fills the buffers. */
static int stalled_listener(int *port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 8) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &len) != 0) {
        close(s);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return s;
}

struct sender {
    gm_conn *c;
    gm_ref ref;
    atomic_long pieces; /* gm_data calls that returned GM_OK */
    atomic_int done;
    int rc;
    char msg[512];
};

static void *send_body(void *arg) {
    struct sender *s = arg;
    static char piece[1 << 20];
    memset(piece, 'x', sizeof piece);
    for (;;) {
        int rc = gm_data(s->c, s->ref, piece, sizeof piece, 0);
        if (rc != GM_OK) {
            const char *m = gm_errmsg();
            s->rc = rc;
            snprintf(s->msg, sizeof s->msg, "%s", m ? m : "");
            atomic_store(&s->done, 1);
            return NULL;
        }
        atomic_fetch_add(&s->pieces, 1);
    }
}

/* 1 once the sender has returned, within ms. */
static int sender_returns(struct sender *s, int ms) {
    int64_t end = check_now_ms() + ms;
    while (!atomic_load(&s->done)) {
        if (check_now_ms() > end) return 0;
        msleep(10);
    }
    return 1;
}

enum release { BY_CANCEL, BY_TIMEOUT, BY_CLOSE };

static void release_blocked_data(enum release how) {
    int port = 0;
    int ls = stalled_listener(&port);
    REQUIRE(ls >= 0);
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = NULL;
    /* No send timeout: only what the test does can release the sender. */
    REQUIRE_RC(gm_open(q, "127.0.0.1", port, "{\"retry\":0,\"tcp_opts\":{\"send_timeout\":\"infinity\"}}", &c), GM_OK);
    REQUIRE_RC(gm_await_up(c, WAIT_MS, NULL), GM_OK);
    gm_req_opts ro = {.size = sizeof ro, .timeout_ms = how == BY_TIMEOUT ? 500 : 0};
    struct sender s = {.c = c};
    REQUIRE_RC(gm_request(c, "POST", "/upload", NULL, 0, NULL, 0, GM_REQ_STREAM, &ro, &s.ref), GM_OK);
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, send_body, &s) == 0);
    if (how != BY_TIMEOUT) {
        /* Blocked: no gm_data call returned for 300 ms (an absence). */
        long last = -1;
        for (int i = 0; i < 100; i++) {
            msleep(300);
            long n = atomic_load(&s.pieces);
            if (n == last && n > 0) break;
            last = n;
        }
        CHECK(!atomic_load(&s.done));
        if (how == BY_CANCEL) CHECK_RC(gm_cancel(c, s.ref), GM_OK);
        else CHECK_RC(gm_close(c), GM_OK);
    }
    int released = sender_returns(&s, 10000);
    CHECK(released);
    if (!released) gm_close(c); /* only so the test can end */
    pthread_join(th, NULL);
    fprintf(stderr, "    gm_data: %d \"%s\" after %ld MB\n", s.rc, s.msg, atomic_load(&s.pieces));
    CHECK_EQ(s.rc, GM_ECLOSED);
    if (how == BY_CANCEL || how == BY_TIMEOUT) CHECK(strstr(s.msg, "cancelled") != NULL);
    if (how == BY_TIMEOUT) {
        gm_event *ev = wait_kind(q, c, GM_EV_ERROR, WAIT_MS, NULL);
        CHECK(ev != NULL && ev->ref == s.ref && ev->reason && strcmp(ev->reason, "timeout") == 0);
        gm_event_free(ev);
    }
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
    close(ls);
}

TEST(gm_data_released_by_cancel) { release_blocked_data(BY_CANCEL); }
TEST(gm_data_released_by_timeout) { release_blocked_data(BY_TIMEOUT); }
TEST(gm_data_released_by_close) { release_blocked_data(BY_CLOSE); }

static const struct check_case cases[] = {
    CASE(tls_unknown_ca_exits_at_once),
    CASE(tls_wrong_host_exits_at_once),
    CASE(gm_data_released_by_cancel),
    CASE(gm_data_released_by_timeout),
    CASE(gm_data_released_by_close),
};

int main(int argc, char **argv) { return check_main(argc, argv, cases, CHECK_N(cases)); }
