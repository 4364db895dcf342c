/*
 * queue.c — the event queue: its pollable fd (level-triggered), wake, batch
 * sizes and order, length, several threads on one queue.
 */
#define _GNU_SOURCE
#include <pthread.h>

#include "util.h"

TEST(empty_queue) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    int fd = gm_queue_fd(q);
    CHECK(fd >= 0);
    CHECK_EQ(gm_queue_fd(q), fd); /* the same fd every time */
    CHECK_EQ(gm_queue_len(q), 0);
    CHECK_EQ(fd_readable(fd, 0), 0);
    gm_event *evs[4] = {NULL};
    int64_t t0 = check_now_ms();
    CHECK_EQ(gm_queue_poll(q, evs, 4, 0), 0);
    CHECK(check_now_ms() - t0 < 50);
    t0 = check_now_ms();
    CHECK_EQ(gm_queue_poll(q, evs, 4, 100), 0);
    int64_t ms = check_now_ms() - t0;
    CHECK(ms >= 90);
    CHECK(ms < 1000);
    CHECK(evs[0] == NULL);
    CHECK_EQ(fd_readable(fd, 0), 0);
    gm_queue_free(q);
}

TEST(fd_readable_exactly_while_events_queued) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    int fd = gm_queue_fd(q);
    REQUIRE(fd >= 0);
    CHECK_EQ(fd_readable(fd, 0), 0);
    gm_conn *c = NULL;
    REQUIRE_RC(gm_open(q, "127.0.0.1", http_port(), NULL, &c), GM_OK);
    /* The UP arrives: readable, and it stays so (level-triggered). */
    CHECK_EQ(fd_readable(fd, WAIT_MS), 1);
    CHECK_EQ(gm_queue_len(q), 1);
    CHECK_EQ(fd_readable(fd, 0), 1);
    CHECK_EQ(fd_readable(fd, 0), 1);
    gm_event *ev = next_event(q, 0);
    CHECK(ev != NULL);
    gm_event_free(ev);
    CHECK_EQ(gm_queue_len(q), 0);
    CHECK_EQ(fd_readable(fd, 0), 0);

    /* Two responses: RESPONSE+DATA each. Readable until the last is taken. */
    gm_ref a = 0, b = 0;
    REQUIRE_RC(gm_request(c, "GET", "/bytes/1", NULL, 0, NULL, 0, 0, NULL, &a), GM_OK);
    REQUIRE_RC(gm_request(c, "GET", "/bytes/2", NULL, 0, NULL, 0, 0, NULL, &b), GM_OK);
    int taken = 0;
    int64_t end = check_now_ms() + WAIT_MS;
    while (taken < 4 && check_now_ms() < end) {
        if (fd_readable(fd, WAIT_MS) != 1) break;
        int len = gm_queue_len(q);
        CHECK(len >= 1);
        ev = next_event(q, 0);
        CHECK(ev != NULL);
        if (!ev) break;
        taken++;
        gm_event_free(ev);
        /* Readable now exactly when something is left. */
        CHECK_EQ(fd_readable(fd, 0), gm_queue_len(q) > 0);
    }
    CHECK_EQ(taken, 4);
    CHECK_EQ(fd_readable(fd, 0), 0);

    /* Selective receive (gm_await_body) emptying the queue clears it too. */
    REQUIRE_RC(gm_request(c, "GET", "/bytes/3", NULL, 0, NULL, 0, 0, NULL, &a), GM_OK);
    CHECK_EQ(fd_readable(fd, WAIT_MS), 1);
    ev = NULL;
    CHECK_RC(gm_await_body(c, a, WAIT_MS, &ev), GM_OK);
    gm_event_free(ev);
    CHECK_EQ(gm_queue_len(q), 0);
    CHECK_EQ(fd_readable(fd, 0), 0);

    /* Selective receive that leaves events: still readable. */
    REQUIRE_RC(gm_request(c, "GET", "/bytes/4", NULL, 0, NULL, 0, 0, NULL, &a), GM_OK);
    REQUIRE_RC(gm_request(c, "GET", "/bytes/5", NULL, 0, NULL, 0, 0, NULL, &b), GM_OK);
    ev = NULL;
    CHECK_RC(gm_await_body(c, b, WAIT_MS, &ev), GM_OK);
    gm_event_free(ev);
    CHECK_EQ(gm_queue_len(q), 2);
    CHECK_EQ(fd_readable(fd, 0), 1);
    CHECK_EQ(drain(q, 0), 2);
    CHECK_EQ(fd_readable(fd, 0), 0);
    CHECK(close_and_free(q, c));
    CHECK_EQ(fd_readable(fd, 0), 0);
    gm_queue_free(q);
}

struct poller {
    gm_queue *q;
    int timeout;
    int rc;
    volatile int done;
    int64_t ms;
    gm_event *evs[4];
};

static void *poll_thread(void *arg) {
    struct poller *p = arg;
    int64_t t0 = check_now_ms();
    p->rc = gm_queue_poll(p->q, p->evs, 4, p->timeout);
    p->ms = check_now_ms() - t0;
    __atomic_store_n(&p->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static int join_within(pthread_t t, int ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return pthread_timedjoin_np(t, NULL, &ts) == 0;
}

TEST(wake_unblocks_blocked_poll) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    struct poller p = {.q = q, .timeout = -1};
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, poll_thread, &p) == 0);
    /* It stays blocked while nothing happens. */
    msleep(150);
    CHECK_EQ(__atomic_load_n(&p.done, __ATOMIC_SEQ_CST), 0);
    CHECK_RC(gm_queue_wake(q), GM_OK);
    int joined = join_within(t, WAIT_MS);
    CHECK(joined);
    if (!joined) {
        /* Do not leave it blocked on a queue we free: wake until it goes. */
        for (int i = 0; i < 50 && !join_within(t, 100); i++) gm_queue_wake(q);
    }
    CHECK_EQ(p.rc, 0);
    CHECK(p.ms >= 140);
    gm_queue_free(q);
}

TEST(wake_makes_fd_readable_until_next_poll) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    int fd = gm_queue_fd(q);
    CHECK_EQ(fd_readable(fd, 0), 0);
    CHECK_RC(gm_queue_wake(q), GM_OK);
    CHECK_EQ(fd_readable(fd, 0), 1);
    CHECK_EQ(fd_readable(fd, 0), 1);
    CHECK_EQ(gm_queue_len(q), 0);
    /* A wake before the poll: the poll returns at once with nothing. */
    gm_event *ev = NULL;
    int64_t t0 = check_now_ms();
    CHECK_EQ(gm_queue_poll(q, &ev, 1, 2000), 0);
    CHECK(check_now_ms() - t0 < 500);
    CHECK(ev == NULL);
    CHECK_EQ(fd_readable(fd, 0), 0);
    /* The wake was consumed: the next poll waits its full timeout. */
    t0 = check_now_ms();
    CHECK_EQ(gm_queue_poll(q, &ev, 1, 100), 0);
    CHECK(check_now_ms() - t0 >= 90);
    /* Many wakes, one poll. */
    for (int i = 0; i < 10; i++) CHECK_RC(gm_queue_wake(q), GM_OK);
    CHECK_EQ(gm_queue_poll(q, &ev, 1, 2000), 0);
    CHECK_EQ(fd_readable(fd, 0), 0);
    gm_queue_free(q);
}

/* A thread blocked in gm_queue_poll(-1) gets an event that arrives. */
TEST(blocked_poll_gets_event) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    struct poller p = {.q = q, .timeout = -1};
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, poll_thread, &p) == 0);
    gm_conn *c = NULL;
    CHECK_RC(gm_open(q, "127.0.0.1", http_port(), NULL, &c), GM_OK);
    int joined = join_within(t, WAIT_MS);
    CHECK(joined);
    if (!joined)
        for (int i = 0; i < 50 && !join_within(t, 100); i++) gm_queue_wake(q);
    CHECK_EQ(p.rc, 1);
    if (p.rc == 1) {
        CHECK_EQ(p.evs[0]->kind, GM_EV_UP);
        CHECK(p.evs[0]->conn == c);
        gm_event_free(p.evs[0]);
    }
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

/* Two threads blocked in gm_queue_poll(-1) on one queue, one event: one
 * thread gets it, the other keeps waiting (the fd went readable for both:
 * the one that finds nothing waits again) until a wake. */
TEST(two_blocked_polls_one_event) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    struct poller a = {.q = q, .timeout = -1}, b = {.q = q, .timeout = -1};
    pthread_t ta, tb;
    REQUIRE(pthread_create(&ta, NULL, poll_thread, &a) == 0);
    REQUIRE(pthread_create(&tb, NULL, poll_thread, &b) == 0);
    msleep(100);
    gm_conn *c = NULL;
    CHECK_RC(gm_open(q, "127.0.0.1", http_port(), NULL, &c), GM_OK);
    for (int i = 0; i < WAIT_MS / 10; i++) {
        if (__atomic_load_n(&a.done, __ATOMIC_SEQ_CST) || __atomic_load_n(&b.done, __ATOMIC_SEQ_CST)) break;
        msleep(10);
    }
    msleep(150); /* the other one, had it returned, would have by now */
    int da = __atomic_load_n(&a.done, __ATOMIC_SEQ_CST), db = __atomic_load_n(&b.done, __ATOMIC_SEQ_CST);
    CHECK_EQ(da + db, 1);
    struct poller *got = da ? &a : &b;
    CHECK_EQ(got->rc, 1);
    if (got->rc == 1) {
        CHECK_EQ(got->evs[0]->kind, GM_EV_UP);
        gm_event_free(got->evs[0]);
    }
    CHECK_RC(gm_queue_wake(q), GM_OK);
    for (int i = 0; i < 50 && !join_within(da ? tb : ta, 100); i++) gm_queue_wake(q);
    join_within(da ? ta : tb, WAIT_MS);
    CHECK_EQ((da ? &b : &a)->rc, 0);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

/* Six events queued (three streams' RESPONSE and DATA): max=1 gives them
 * one at a time, in order; larger batches give up to max. */
TEST(poll_batch_sizes_and_order) {
    gm_queue *q = gm_queue_new(), *q2 = gm_queue_new();
    REQUIRE(q != NULL && q2 != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    gm_req_opts o = {.size = sizeof o, .reply_to = q2};
    for (int round = 0; round < 2; round++) {
        gm_ref refs[3] = {0}, barrier = 0;
        for (int i = 0; i < 3; i++) CHECK_RC(gm_request(c, "GET", "/bytes/1", NULL, 0, NULL, 0, 0, &o, &refs[i]), GM_OK);
        /* Answered after them on the same connection: once it is done, the
         * six events are in q2. */
        REQUIRE_RC(gm_request(c, "GET", "/bytes/1", NULL, 0, NULL, 0, 0, NULL, &barrier), GM_OK);
        gm_event *ev = NULL;
        REQUIRE_RC(gm_await_body(c, barrier, WAIT_MS, &ev), GM_OK);
        gm_event_free(ev);
        CHECK_EQ(gm_queue_len(q2), 6);
        gm_event *evs[8] = {NULL};
        if (round == 0) {
            for (int i = 0; i < 6; i++) {
                CHECK_EQ(gm_queue_poll(q2, evs, 1, 0), 1);
                CHECK_EQ(gm_queue_len(q2), 5 - i);
                CHECK(evs[1] == NULL); /* nothing written past max */
                CHECK_EQ(evs[0]->ref, refs[i / 2]);
                CHECK_EQ(evs[0]->kind, i % 2 == 0 ? GM_EV_RESPONSE : GM_EV_DATA);
                gm_event_free(evs[0]);
                evs[0] = NULL;
            }
        } else {
            CHECK_EQ(gm_queue_poll(q2, evs, 4, 0), 4);
            CHECK(evs[4] == NULL);
            CHECK_EQ(gm_queue_len(q2), 2);
            CHECK_EQ(gm_queue_poll(q2, evs + 4, 4, 0), 2);
            for (int i = 0; i < 6; i++) {
                CHECK_EQ(evs[i]->ref, refs[i / 2]);
                CHECK_EQ(evs[i]->kind, i % 2 == 0 ? GM_EV_RESPONSE : GM_EV_DATA);
            }
            gm_events_free(evs, 6);
        }
        CHECK_EQ(gm_queue_len(q2), 0);
        CHECK_EQ(gm_queue_poll(q2, evs, 8, 0), 0);
    }
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
    gm_queue_free(q2);
}

/* Big batches: 300 streams (600 events) taken with max 1000. */
TEST(poll_large_batches) {
    enum { N = 300 };
    gm_queue *q = gm_queue_new(), *q2 = gm_queue_new();
    REQUIRE(q != NULL && q2 != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    gm_req_opts o = {.size = sizeof o, .reply_to = q2};
    static gm_ref refs[N];
    for (int i = 0; i < N; i++) CHECK_RC(gm_request(c, "GET", "/bytes/1", NULL, 0, NULL, 0, 0, &o, &refs[i]), GM_OK);
    gm_ref barrier = 0;
    REQUIRE_RC(gm_request(c, "GET", "/bytes/1", NULL, 0, NULL, 0, 0, NULL, &barrier), GM_OK);
    gm_event *ev = NULL;
    REQUIRE_RC(gm_await_body(c, barrier, WAIT_MS, &ev), GM_OK);
    gm_event_free(ev);
    CHECK_EQ(gm_queue_len(q2), 2 * N);
    static gm_event *evs[1000];
    int total = 0, calls = 0, ordered = 1, k;
    while ((k = gm_queue_poll(q2, evs, 1000, 0)) > 0) {
        calls++;
        CHECK(k <= 1000);
        for (int i = 0; i < k; i++, total++)
            ordered &= total < 2 * N && evs[i]->ref == refs[total / 2] &&
                       evs[i]->kind == (total % 2 == 0 ? GM_EV_RESPONSE : GM_EV_DATA);
        gm_events_free(evs, k);
    }
    CHECK_EQ(k, 0);
    CHECK_EQ(total, 2 * N);
    CHECK(ordered);
    fprintf(stderr, "    %d events in %d polls\n", total, calls);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
    gm_queue_free(q2);
}

TEST(connections_share_a_queue) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c1 = NULL, *c2 = NULL;
    REQUIRE_RC(gm_open(q, "127.0.0.1", http_port(), NULL, &c1), GM_OK);
    REQUIRE_RC(gm_open(q, "127.0.0.1", http_port(), NULL, &c2), GM_OK);
    CHECK(c1 != c2);
    int up1 = 0, up2 = 0;
    for (int i = 0; i < 2; i++) {
        gm_event *ev = next_event(q, WAIT_MS);
        if (!ev) break;
        CHECK_EQ(ev->kind, GM_EV_UP);
        up1 += ev->conn == c1;
        up2 += ev->conn == c2;
        gm_event_free(ev);
    }
    CHECK_EQ(up1, 1);
    CHECK_EQ(up2, 1);
    gm_ref r1 = 0, r2 = 0;
    REQUIRE_RC(gm_request(c1, "GET", "/bytes/11", NULL, 0, NULL, 0, 0, NULL, &r1), GM_OK);
    REQUIRE_RC(gm_request(c2, "GET", "/bytes/12", NULL, 0, NULL, 0, 0, NULL, &r2), GM_OK);
    CHECK(r1 != r2);
    stream ss[2];
    stream_init(&ss[0], r1);
    stream_init(&ss[1], r2);
    CHECK(collect(q, ss, 2, WAIT_MS, NULL));
    CHECK_EQ(ss[0].body_len, 11);
    CHECK_EQ(ss[1].body_len, 12);
    stream_free(&ss[0]);
    stream_free(&ss[1]);
    CHECK(close_and_free(q, c1));
    CHECK(close_and_free(q, c2));
    gm_queue_free(q);
}

/* Four threads draining one queue while 100 streams answer: every event is
 * taken exactly once. */
struct drainer {
    gm_queue *q;
    pthread_mutex_t *mu;
    int *responses, *datas; /* per stream index */
    gm_ref first;
    int n;
    int *taken;
    int target;
    int bad;
};

static void *drain_thread(void *arg) {
    struct drainer *d = arg;
    gm_event *evs[8];
    int64_t end = check_now_ms() + WAIT_MS * 2;
    while (check_now_ms() < end) {
        pthread_mutex_lock(d->mu);
        int done = *d->taken >= d->target;
        pthread_mutex_unlock(d->mu);
        if (done) break;
        int k = gm_queue_poll(d->q, evs, 8, 50);
        if (k < 0) {
            d->bad++;
            break;
        }
        pthread_mutex_lock(d->mu);
        for (int i = 0; i < k; i++) {
            long idx = (long)(evs[i]->ref - d->first);
            if (idx < 0 || idx >= d->n)
                d->bad++;
            else if (evs[i]->kind == GM_EV_RESPONSE)
                d->responses[idx]++;
            else if (evs[i]->kind == GM_EV_DATA)
                d->datas[idx]++;
            else
                d->bad++;
        }
        *d->taken += k;
        pthread_mutex_unlock(d->mu);
        gm_events_free(evs, k);
    }
    return NULL;
}

TEST(threads_share_a_queue) {
    enum { N = 100, T = 4 };
    gm_queue *q = gm_queue_new(), *q2 = gm_queue_new();
    REQUIRE(q != NULL && q2 != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    static int responses[N], datas[N];
    int taken = 0;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    gm_req_opts o = {.size = sizeof o, .reply_to = q2};
    gm_ref refs[N];
    for (int i = 0; i < N; i++) CHECK_RC(gm_request(c, "GET", "/bytes/1", NULL, 0, NULL, 0, 0, &o, &refs[i]), GM_OK);
    /* Refs of one thread's consecutive requests are consecutive here only if
     * no other thread makes refs: check it rather than assume it. */
    int consecutive = 1;
    for (int i = 1; i < N; i++) consecutive &= refs[i] == refs[0] + (gm_ref)i;
    REQUIRE(consecutive);
    struct drainer d[T];
    pthread_t th[T];
    for (int i = 0; i < T; i++) {
        d[i] = (struct drainer){.q = q2, .mu = &mu, .responses = responses, .datas = datas,
                                .first = refs[0], .n = N, .taken = &taken, .target = 2 * N};
        REQUIRE(pthread_create(&th[i], NULL, drain_thread, &d[i]) == 0);
    }
    for (int i = 0; i < T; i++) pthread_join(th[i], NULL);
    int bad = 0, once = 1;
    for (int i = 0; i < T; i++) bad += d[i].bad;
    for (int i = 0; i < N; i++) once &= responses[i] == 1 && datas[i] == 1;
    CHECK_EQ(bad, 0);
    CHECK_EQ(taken, 2 * N);
    CHECK(once);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
    gm_queue_free(q2);
}

static const struct check_case cases[] = {
    CASE(empty_queue),
    CASE(fd_readable_exactly_while_events_queued),
    CASE(wake_unblocks_blocked_poll),
    CASE(wake_makes_fd_readable_until_next_poll),
    CASE(blocked_poll_gets_event),
    CASE(two_blocked_polls_one_event),
    CASE(poll_batch_sizes_and_order),
    CASE(poll_large_batches),
    CASE(connections_share_a_queue),
    CASE(threads_share_a_queue),
};

int main(int argc, char **argv) { return check_main(argc, argv, cases, CHECK_N(cases)); }
