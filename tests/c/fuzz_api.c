/*
 * fuzz_api.c — random sequences of C API calls against the test server,
 * under AddressSanitizer/UBSan/LSan (run.sh): NULLs, closed and released
 * handles, huge and negative sizes, random bytes in every string, random
 * options, frames, flows and timeouts (issue 9, "Build and prove").
 *
 * What must hold, whatever the sequence: no crash, no sanitizer report, no
 * Go fatal error; every call answers GM_OK or one of the header's GM_E*
 * codes (counts for poll/len/fd), with a sentence in gm_errmsg() when it
 * fails; nothing leaks (every handle and event released at the end, checked
 * by the harness); and a fresh connection works afterwards.
 *
 * The caller-side rules of the header are kept (that is the contract under
 * test, not C's undefined behaviour): pointers are NULL or point to real
 * memory at least as long as the length passed with them, except lengths
 * past the documented GM_MAX_* limits, which the library must refuse before
 * reading; arrays hold as many elements as their count says, except counts
 * past GM_MAX_HEADERS / GM_MAX_WS_FRAMES; no timeout of -1 (it would wait
 * for ever, as documented).
 *
 * Seeded and reproducible: GM_FUZZ_SEED (default below) fixes the call
 * sequence; GM_FUZZ_SECONDS (default 20, at most 30) and GM_FUZZ_OPS
 * (default 1000000) bound it. The seed and the number of calls made are
 * printed; a failure is replayed with the same seed and GM_FUZZ_OPS.
 * (Event arrival depends on the network, so a replay is close, not exact.)
 */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "util.h"

/* ---------------------------------------------------------------- PRNG */

static uint64_t rng_state;

static uint64_t rnd(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}
static uint32_t rn(uint32_t n) { return n ? (uint32_t)(rnd() % n) : 0; }
static int chance(int percent) { return (int)rn(100) < percent; }

/* ---------------------------------------------------------------- pools */

enum { NQ = 4, NC = 8, NREF = 32, NEV = 64, NDEAD = 16 };

static gm_queue *queues[NQ];
static gm_conn *conns[NC];
static gm_ref refs[NREF];
static gm_event *held[NEV];
static void *dead_queues[NDEAD], *dead_conns[NDEAD]; /* released: never dereferenced by us */
static int ndq, ndc;

static long violations;
static _Atomic long ops;
static const char *_Atomic current_op; /* for the watchdog */
/* What the run reached, printed at the end (a fuzzer that only ever hits
 * the argument checks proves little). */
static long n_ok, n_fail, n_events[16];

static void violation(const char *call, int rc) {
    violations++;
    if (violations <= 10)
        fprintf(stderr, "    op %ld: %s returned %d (%s), errmsg \"%s\"\n", ops, call, rc, gm_strerror(rc), gm_errmsg());
}

/* rc must be GM_OK or a known code; a failure leaves a sentence. */
static void check_rc(const char *call, int rc) {
    if (rc == GM_OK) n_ok++;
    else n_fail++;
    if (rc > 0 || rc < GM_EAGAIN || rc == GM_EINTERNAL) {
        violation(call, rc);
        return;
    }
    if (rc < 0) {
        const char *m = gm_errmsg();
        if (!m || !m[0]) violation(call, rc);
    }
}

static void check_count(const char *call, int rc) {
    if (rc < 0) check_rc(call, rc);
}

static gm_queue *any_queue(void) {
    int r = (int)rn(10);
    if (r == 0) return NULL;
    if (r == 1 && ndq) return (gm_queue *)dead_queues[rn((uint32_t)ndq)];
    return queues[rn(NQ)];
}

static gm_conn *any_conn(void) {
    int r = (int)rn(12);
    if (r == 0) return NULL;
    if (r == 1 && ndc) return (gm_conn *)dead_conns[rn((uint32_t)ndc)];
    return conns[rn(NC)];
}

static gm_ref any_ref(void) {
    if (chance(10)) return rn(3) == 0 ? 0 : rnd();
    return refs[rn(NREF)];
}

static void keep_ref(gm_ref r) { refs[rn(NREF)] = r; }

static void keep_event(gm_event *ev) {
    if (!ev) return;
    int i = (int)rn(NEV);
    gm_event_free(held[i]);
    held[i] = ev;
}

/* ---------------------------------------------------------------- inputs */

static char sbuf[8][512]; /* random strings, NUL-terminated */

static const char *pick(const char *const *list, size_t n) { return list[rn((uint32_t)n)]; }
#define PICK(list) pick(list, sizeof list / sizeof list[0])

/* Random bytes (any value but NUL, as the string is NUL-terminated). */
static const char *random_string(int slot) {
    size_t n = rn(chance(20) ? 500 : 24);
    char *s = sbuf[slot];
    for (size_t i = 0; i < n; i++) {
        char c = (char)(rn(255) + 1);
        if (chance(60)) c = (char)('a' + rn(26));
        s[i] = c;
    }
    s[n] = 0;
    return s;
}

static const char *const methods[] = {"GET", "POST", "PUT", "HEAD", "OPTIONS", "DELETE", "CONNECT", "", "G ET",
                                      "GET\r\n", "M\xff", "PATCH"};
static const char *const paths[] = {"/", "/count", "/bytes/100", "/chunked/3", "/echo", "/headers", "/slow",
                                    "/infinite", "/delay/20", "/close", "/drop", "/status/500", "/nolength",
                                    "/inform/3", "/trailers", "/push", "/ws", "/ws-reject", "/big-headers", "*",
                                    "http://127.0.0.1/count", "x", "", "/a b", "/\r\n", "/\xc3\x28"};
static const char *const opts[] = {
    NULL, "{}", "null", "", "{", "[]", "{\"retry\":0}", "{\"retry\":1,\"retry_timeout\":10}",
    "{\"protocols\":[\"http2\"],\"retry\":0}", "{\"protocols\":[\"http\"],\"http_opts\":{\"keepalive\":20}}",
    "{\"protocols\":[\"raw\"]}", "{\"supervise\":false}", "{\"trace\":true}", "{\"bogus\":1}",
    "{\"http_opts\":{\"flow\":1}}", "{\"http2_opts\":{\"flow\":2,\"keepalive\":30}}",
    "{\"ws_opts\":{\"compress\":true,\"flow\":1}}", "{\"max_pending_requests\":0}",
    "{\"transport\":\"tls\",\"tls_opts\":{\"verify\":\"verify_none\"}}",
    "{\"transport\":\"tls\",\"protocols\":[\"http2\",\"http\"],\"tls_opts\":{\"verify\":\"verify_none\"},\"retry\":0}",
    "{\"connect_timeout\":0}", "{\"retry\":-1}", "{\"retry\":1e999}", "{\"cookie_store\":true}",
    "{\"http2_opts\":{\"stream_window_data_threshold\":5}}", "{\"\xff\":1}",
};
static const char *const ws_opts[] = {NULL, "{}", "{\"compress\":true}", "{\"protocols\":[\"chat\"]}",
                                      "{\"flow\":1}", "{\"max_frame_size\":10}", "{", "{\"bogus\":true}",
                                      "{\"silence_pings\":false}", "{\"invalid_request_headers\":\"ignore\"}"};
static const char *const hnames[] = {"x-a", "content-length", "transfer-encoding", "connection", "te",
                                     "host", "upgrade", "x:y", "", "bad name", "cookie", "expect"};
static const char *const hvalues[] = {"1", "chunked", "close", "trailers", "0", "100-continue", "a\tb",
                                      "a\x01" "b", "a\x7f", "caf\xc3\xa9", "\xff", "", "5", "-1", "keep-alive"};

/* A length that the library must refuse before reading (past every limit). */
static size_t bogus_len(void) {
    static const size_t l[] = {(size_t)1 << 31, ((size_t)1 << 32) + 3, (size_t)-2, (size_t)-4096,
                               (size_t)PTRDIFF_MAX + 1, ((size_t)1 << 40)};
    return l[rn(sizeof l / sizeof l[0])];
}

/* gm_data's and a ws frame's limit is GM_MAX_DATA (PTRDIFF_MAX): a length
 * under it is the caller's promise that the bytes are there (as for
 * write(2)), so only lengths past it are bogus for those calls. */
static size_t bogus_data_len(void) {
    static const size_t l[] = {(size_t)-2, (size_t)-4096, (size_t)PTRDIFF_MAX + 1};
    return l[rn(sizeof l / sizeof l[0])];
}

static uint8_t databuf[4096];

static gm_header hdrs[8];
static char hstore[8][2][64];

/* Up to 8 headers; *n may be a bogus count past GM_MAX_HEADERS. */
static gm_header *random_headers(size_t *n) {
    if (chance(30)) {
        *n = chance(10) ? (size_t)1 + rn(3) : 0; /* NULL with n > 0 sometimes */
        return NULL;
    }
    size_t k = rn(9);
    for (size_t i = 0; i < k; i++) {
        for (int j = 0; j < 2; j++) {
            const char *src = j == 0 ? PICK(hnames) : PICK(hvalues);
            if (chance(15)) src = random_string(6 + j);
            snprintf(hstore[i][j], sizeof hstore[i][j], "%s", src);
        }
        hdrs[i].name = hstore[i][0];
        hdrs[i].value = hstore[i][1];
        size_t ln = strlen(hstore[i][0]), lv = strlen(hstore[i][1]);
        hdrs[i].name_len = chance(50) ? SIZE_MAX : ln;
        hdrs[i].value_len = chance(50) ? SIZE_MAX : lv;
        if (chance(5)) hdrs[i].value_len = bogus_len();
        if (chance(3)) hdrs[i].name_len = bogus_len();
        if (chance(5) && lv > 0) hdrs[i].value_len = rn((uint32_t)lv + 1); /* a prefix, embedded bytes */
        if (chance(3)) hdrs[i].value = NULL;
        if (chance(2)) hdrs[i].name = NULL;
    }
    *n = chance(3) ? (size_t)GM_MAX_HEADERS + 1 + rn(10) : k;
    if (chance(2)) *n = (size_t)-1;
    return hdrs;
}

static int random_timeout(void) {
    static const int t[] = {0, 0, 0, 1, 5, 20, -2, -100, INT_MIN};
    return t[rn(sizeof t / sizeof t[0])];
}

static void random_bytes(uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)rnd();
}

/* ---------------------------------------------------------------- the ops */

static void op_open(void) {
    int i = (int)rn(NC);
    gm_conn *c = NULL;
    const char *o = chance(10) ? random_string(0) : PICK(opts);
    int rc;
    if (chance(15) && unix_path()) {
        rc = gm_open_unix(any_queue(), chance(85) ? unix_path() : random_string(1), o, chance(5) ? NULL : &c);
        check_rc("gm_open_unix", rc);
    } else {
        static const char *const hosts[] = {"127.0.0.1", "127.0.0.1", "localhost", "::1", "[::1]", "", "a b",
                                            "256.1.1.1", "-", "127.0.0.1\r\n"};
        const char *host = chance(8) ? random_string(1) : PICK(hosts);
        int port;
        switch (rn(8)) {
        case 0: port = https_port(); break;
        case 1: port = refused_port(); break;
        case 2: port = (int)rnd(); break;
        case 3: port = chance(50) ? 0 : 70000; break;
        default: port = http_port();
        }
        rc = gm_open(any_queue(), host, port, o, chance(5) ? NULL : &c);
        check_rc("gm_open", rc);
    }
    if (rc == GM_OK && c) {
        if (conns[i]) { /* make room: release the old one */
            gm_conn_free(conns[i]);
            if (ndc < NDEAD) dead_conns[ndc++] = conns[i];
            else dead_conns[rn(NDEAD)] = conns[i];
        }
        conns[i] = c;
    }
}

static void op_request(void) {
    gm_conn *c = any_conn();
    size_t nh = 0;
    gm_header *hs = random_headers(&nh);
    const char *m = chance(10) ? random_string(2) : PICK(methods);
    const char *p = chance(10) ? random_string(3) : PICK(paths);
    if (chance(2)) m = NULL;
    if (chance(2)) p = NULL;
    size_t blen = 0;
    const void *body = NULL;
    unsigned flags = chance(20) ? GM_REQ_STREAM : 0;
    if (chance(5)) flags |= (unsigned)rnd();
    if (chance(30)) {
        blen = rn(sizeof databuf);
        body = chance(95) ? databuf : NULL;
        random_bytes(databuf, blen);
    }
    if (chance(4)) blen = bogus_len(), body = databuf;
    gm_req_opts ro;
    memset(&ro, 0, sizeof ro);
    ro.size = chance(90) ? (uint32_t)sizeof ro : rn(64);
    ro.timeout_ms = chance(70) ? 0 : (int32_t)rn(50) - (chance(10) ? 60 : 0);
    ro.flow = chance(80) ? 0 : (int32_t)rn(4) - 1;
    ro.reply_to = chance(80) ? NULL : any_queue();
    gm_ref ref = 0;
    int rc = gm_request(c, m, p, hs, nh, body, blen, flags, chance(40) ? &ro : NULL, chance(3) ? NULL : &ref);
    check_rc("gm_request", rc);
    if (rc == GM_OK) keep_ref(ref);
}

static void op_data(void) {
    size_t n = rn(chance(80) ? 64 : sizeof databuf);
    random_bytes(databuf, n);
    const void *d = databuf;
    if (chance(5)) n = bogus_data_len();
    if (chance(3)) d = NULL;
    check_rc("gm_data", gm_data(any_conn(), any_ref(), d, n, (int)rn(3) - (chance(5) ? 5 : 0)));
}

static void op_ws_upgrade(void) {
    size_t nh = 0;
    gm_header *hs = random_headers(&nh);
    const char *o = chance(10) ? random_string(4) : PICK(ws_opts);
    gm_ref ref = 0;
    int rc = gm_ws_upgrade(any_conn(), chance(70) ? "/ws" : (chance(50) ? PICK(paths) : random_string(5)), hs, nh,
                           o, chance(3) ? NULL : &ref);
    check_rc("gm_ws_upgrade", rc);
    if (rc == GM_OK) keep_ref(ref);
}

static void op_ws_send(void) {
    gm_ws_frame fr[6];
    size_t k = rn(7);
    for (size_t i = 0; i < k; i++) {
        static const uint32_t ops_[] = {GM_WS_TEXT, GM_WS_BINARY, GM_WS_PING, GM_WS_PONG, GM_WS_CLOSE, 0, 3, 300,
                                        UINT32_MAX};
        fr[i].op = ops_[rn(sizeof ops_ / sizeof ops_[0])];
        fr[i].code = chance(50) ? 1000 + rn(20) : (uint32_t)rnd();
        fr[i].len = rn(chance(80) ? 32 : 200);
        random_bytes(databuf, fr[i].len);
        if (chance(50)) memset(databuf, 'a', fr[i].len);
        fr[i].data = chance(95) ? databuf : NULL;
        if (chance(4)) fr[i].len = bogus_data_len();
    }
    size_t n = k;
    if (chance(3)) n = (size_t)GM_MAX_WS_FRAMES + 1 + rn(5);
    if (chance(2)) n = (size_t)-1;
    if (chance(2)) check_rc("gm_ws_send_nowait", gm_ws_send_nowait(any_conn(), any_ref(), chance(3) ? NULL : fr, n));
    else check_rc("gm_ws_send", gm_ws_send(any_conn(), any_ref(), chance(3) ? NULL : fr, n));
}

static void op_poll(void) {
    gm_event *evs[64];
    memset(evs, 0, sizeof evs);
    int max = chance(5) ? -(int)rn(3) : (int)rn(64) + 1;
    int n = gm_queue_poll(any_queue(), chance(3) ? NULL : evs, max, random_timeout());
    check_count("gm_queue_poll", n);
    if (n >= 0 && (n > max || n > GM_POLL_MAX)) violation("gm_queue_poll (count)", n);
    for (int i = 0; i < n && i < 64; i++) {
        gm_event *ev = evs[i];
        if (!ev || ev->size < sizeof(gm_event) || ev->kind == 0) {
            violation("gm_queue_poll (event)", n);
            continue;
        }
        n_events[ev->kind < 16 ? ev->kind : 0]++;
        if (ev->ref && chance(50)) keep_ref(ev->ref);
        if (ev->kind == GM_EV_PUSH && ev->new_ref) keep_ref(ev->new_ref);
        /* Read what it points to: ASan checks the library's allocation. */
        volatile size_t sum = 0;
        for (size_t j = 0; j < ev->n_headers; j++) sum += strlen(ev->headers[j].name) + strlen(ev->headers[j].value);
        for (size_t j = 0; j < ev->data_len; j++) sum += ev->data[j];
        for (size_t j = 0; j < ev->n_killed; j++) sum += (size_t)ev->killed[j];
        if (ev->reason) sum += strlen(ev->reason);
        (void)sum;
        if (chance(20)) {
            keep_event(ev);
            evs[i] = NULL;
        }
    }
    if (n > 0) {
        if (chance(50)) gm_events_free(evs, n);
        else
            for (int i = 0; i < n; i++) gm_event_free(evs[i]);
    }
}

static void op_await(void) {
    gm_event *ev = NULL;
    gm_conn *c = any_conn();
    int rc;
    switch (rn(4)) {
    case 0: rc = gm_await(c, any_ref(), random_timeout(), chance(3) ? NULL : &ev); check_rc("gm_await", rc); break;
    case 1:
        rc = gm_await_body(c, any_ref(), random_timeout(), chance(3) ? NULL : &ev);
        check_rc("gm_await_body", rc);
        if (rc == GM_OK && ev && ev->data[ev->data_len] != 0) violation("gm_await_body (NUL)", rc);
        break;
    case 2: rc = gm_info(c, chance(3) ? NULL : &ev); check_rc("gm_info", rc); break;
    default: rc = gm_stream_info(c, any_ref(), chance(3) ? NULL : &ev); check_rc("gm_stream_info", rc);
    }
    if (rc == GM_OK) keep_event(ev);
    else if (ev) violation("an event with a failure", rc);
}

static void op_misc(void) {
    gm_conn *c = any_conn();
    gm_ref ref = 0;
    const char *proto = NULL;
    switch (rn(12)) {
    case 0: check_rc("gm_close", gm_close(c)); break;
    case 1: check_rc("gm_shutdown", gm_shutdown(c)); break;
    case 2: check_rc("gm_cancel", gm_cancel(c, any_ref())); break;
    case 3: {
        static const int f[] = {1, 5, 0, -1, INT_MAX, INT_MIN};
        check_rc("gm_update_flow", gm_update_flow(c, any_ref(), f[rn(6)]));
        break;
    }
    case 4:
        check_rc("gm_ping", gm_ping(c, chance(5) ? NULL : &ref));
        if (ref) keep_ref(ref);
        break;
    case 5: check_rc("gm_set_owner", gm_set_owner(c, any_queue())); break;
    case 6: check_rc("gm_await_up", gm_await_up(c, random_timeout(), chance(50) ? &proto : NULL)); break;
    case 7: check_count("gm_queue_len", gm_queue_len(any_queue())); break;
    case 8: check_count("gm_queue_fd", gm_queue_fd(any_queue())); break;
    case 9: check_rc("gm_queue_wake", gm_queue_wake(any_queue())); break;
    case 10: {
        const char *s = gm_strerror((int)rnd());
        if (!s) violation("gm_strerror", 0);
        break;
    }
    default: { /* release a connection, keep its address as a dead one */
        int i = (int)rn(NC);
        if (conns[i]) {
            gm_conn_free(conns[i]);
            if (ndc < NDEAD) dead_conns[ndc++] = conns[i];
            else dead_conns[rn(NDEAD)] = conns[i];
            conns[i] = NULL;
        }
    }
    }
    if (proto && !proto[0]) violation("gm_await_up (protocol)", 0);
}

static void op_queue_cycle(void) {
    int i = (int)rn(NQ);
    if (queues[i] && chance(50)) {
        gm_queue_free(queues[i]); /* its connections' EXITs go with it; handles stay ours */
        if (ndq < NDEAD) dead_queues[ndq++] = queues[i];
        else dead_queues[rn(NDEAD)] = queues[i];
        queues[i] = NULL;
    } else if (!queues[i]) {
        queues[i] = gm_queue_new();
        if (!queues[i]) violation("gm_queue_new", 0);
    }
}

static void op_free_held(void) {
    int i = (int)rn(NEV);
    gm_event_free(held[i]);
    held[i] = NULL;
}

/* A call that does not return is a hang (every wait here is bounded by a
 * timeout of at most 20 ms): after 15 s without progress the watchdog says
 * which call, dumps the goroutines' stacks and fails the case. */
static void *watchdog(void *arg) {
    (void)arg;
    long last = -1;
    int still = 0;
    for (;;) {
        sleep(1);
        long now = atomic_load(&ops);
        still = now == last ? still + 1 : 0;
        last = now;
        if (still >= 15) {
            fprintf(stderr, "    HANG: op %ld (%s) has not returned for 15 s; the goroutines:\n", now,
                    atomic_load(&current_op));
            gm__dump_goroutines();
            usleep(300 * 1000); /* a second look: a spinning goroutine moves */
            fprintf(stderr, "    HANG: 300 ms later:\n");
            gm__dump_goroutines();
            _exit(3);
        }
    }
    return NULL;
}

#define RUN(f) (atomic_store(&current_op, #f), f())

TEST(random_api_calls) {
    const char *s = getenv("GM_FUZZ_SEED");
    uint64_t seed = s && *s ? strtoull(s, NULL, 0) : 0x5eed0f9a11ULL;
    rng_state = seed ? seed : 1;
    const char *t = getenv("GM_FUZZ_SECONDS");
    int secs = t && *t ? atoi(t) : 20;
    if (secs < 1) secs = 1;
    if (secs > 30) secs = 30;
    const char *o = getenv("GM_FUZZ_OPS");
    long max_ops = o && *o ? atol(o) : 1000000;
    fprintf(stderr, "    GM_FUZZ_SEED=0x%llx, at most %d s and %ld calls\n", (unsigned long long)seed, secs, max_ops);
    for (int i = 0; i < NQ; i++) queues[i] = gm_queue_new();
    pthread_t wd;
    REQUIRE(pthread_create(&wd, NULL, watchdog, NULL) == 0);
    pthread_detach(wd);
    int64_t end = check_now_ms() + (int64_t)secs * 1000;
    for (ops = 0; ops < max_ops && check_now_ms() < end; ops++) {
        uint32_t r = rn(100);
        if (r < 10) RUN(op_open);
        else if (r < 32) RUN(op_request);
        else if (r < 38) RUN(op_data);
        else if (r < 43) RUN(op_ws_upgrade);
        else if (r < 50) RUN(op_ws_send);
        else if (r < 68) RUN(op_poll);
        else if (r < 78) RUN(op_await);
        else if (r < 94) RUN(op_misc);
        else if (r < 96) RUN(op_queue_cycle);
        else RUN(op_free_held);
    }
    atomic_store(&current_op, "the final release");
    fprintf(stderr, "    %ld calls (GM_FUZZ_OPS=%ld replays them), %ld violations\n", ops, ops, violations);
    fprintf(stderr, "    %ld GM_OK, %ld failures; events polled: up %ld, down %ld, exit %ld, response %ld, data %ld, "
                    "error %ld, upgrade %ld, ws %ld, push %ld\n",
            n_ok, n_fail, n_events[GM_EV_UP], n_events[GM_EV_DOWN], n_events[GM_EV_EXIT], n_events[GM_EV_RESPONSE],
            n_events[GM_EV_DATA], n_events[GM_EV_ERROR], n_events[GM_EV_UPGRADE], n_events[GM_EV_WS],
            n_events[GM_EV_PUSH]);
    /* The sequence went past the argument checks into real traffic. */
    CHECK(n_events[GM_EV_UP] > 0 && n_events[GM_EV_RESPONSE] > 0 && n_events[GM_EV_DATA] > 0);
    CHECK_EQ(violations, 0);
    /* Release everything: the harness then checks gm__live_handles(). */
    for (int i = 0; i < NEV; i++) gm_event_free(held[i]), held[i] = NULL;
    for (int i = 0; i < NC; i++) gm_conn_free(conns[i]), conns[i] = NULL;
    for (int i = 0; i < NQ; i++) gm_queue_free(queues[i]), queues[i] = NULL;
    /* Still healthy: a fresh connection works. */
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up(q);
    REQUIRE(c != NULL);
    CHECK_EQ(get_body(c, "/bytes/10", NULL, NULL), 200);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

static const struct check_case cases[] = {
    CASE(random_api_calls),
};

int main(int argc, char **argv) { return check_main(argc, argv, cases, CHECK_N(cases)); }
