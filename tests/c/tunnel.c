/*
 * tunnel.c — issue 12 through the C ABI: gm_connect (Gun's gun:connect)
 * through tinyproxy to the test server over http and https, Basic
 * proxy-authorization (tinyproxy's 407 without it), a refused CONNECT as an
 * ordinary response, nested proxies, SOCKS5 through microsocks (protocols
 * ["socks"] + socks_opts; with and without username/password), gm_info's
 * intermediary entries and origin_*, bad input (nothing on the wire), and
 * GM_EUNSUPPORTED on a raw connection; through nghttpx (an HTTP/2 forward
 * proxy, tinyproxy behind it) gm_req_opts.tunnel and ws_opts tunnel.
 *
 * Each case starts the proxies it needs (Debian's tinyproxy, microsocks and nghttpx,
 * installed by make deps) on 127.0.0.1, on a port it picks, and kills them
 * when it ends; the child dies with the test process too (PR_SET_PDEATHSIG).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "util.h"

/* ---------------------------------------------------------------- proxies */

typedef struct proxy {
    pid_t pid;
    int port;
    char dir[64];
} proxy;

/* Starts argv (argv[0] looked up on PATH) and waits until something accepts
 * on 127.0.0.1:port. 1 on success. */
static int proxy_spawn(proxy *p, char *const argv[]) {
    p->pid = fork();
    if (p->pid < 0) return 0;
    if (p->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
            if (!getenv("GM_TEST_PROXY_LOG")) dup2(null, 2);
        }
        execvp(argv[0], argv);
        fprintf(stderr, "cannot run %s (make deps installs it)\n", argv[0]);
        _exit(127);
    }
    for (int64_t end = check_now_ms() + 10000; check_now_ms() < end;) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons((uint16_t)p->port);
        int ok = s >= 0 && connect(s, (struct sockaddr *)&a, sizeof a) == 0;
        if (s >= 0) close(s);
        if (ok) return 1;
        int st;
        if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
            fprintf(stderr, "%s exited before listening on %d\n", argv[0], p->port);
            p->pid = 0;
            return 0;
        }
        msleep(20);
    }
    fprintf(stderr, "%s did not listen on %d\n", argv[0], p->port);
    return 0;
}

static void proxy_stop(proxy *p) {
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        p->pid = 0;
    }
    if (p->dir[0]) {
        char path[128];
        snprintf(path, sizeof path, "%s/tinyproxy.conf", p->dir);
        unlink(path);
        snprintf(path, sizeof path, "%s/pid", p->dir);
        unlink(path);
        rmdir(p->dir);
        p->dir[0] = 0;
    }
}

/* tinyproxy -d -c conf (as tests/proxies/proxies.go); with user, Basic
 * proxy-authorization is required. */
static int tinyproxy(proxy *p, const char *user, const char *pass) {
    memset(p, 0, sizeof *p);
    snprintf(p->dir, sizeof p->dir, "/tmp/gm-tinyproxy.XXXXXX");
    if (!mkdtemp(p->dir)) return 0;
    p->port = refused_port();
    char conf[128], text[512];
    snprintf(conf, sizeof conf, "%s/tinyproxy.conf", p->dir);
    int n = snprintf(text, sizeof text,
                     "Port %d\nListen 127.0.0.1\nTimeout 60\nMaxClients 100\nAllow 127.0.0.1\nLogLevel Info\n",
                     p->port);
    if (user) snprintf(text + n, sizeof text - (size_t)n, "BasicAuth %s %s\n", user, pass);
    FILE *f = fopen(conf, "w");
    if (!f) return 0;
    fputs(text, f);
    fclose(f);
    char *argv[] = {"tinyproxy", "-d", "-c", conf, NULL};
    return proxy_spawn(p, argv);
}

/* microsocks -i 127.0.0.1 -p PORT [-u user -P pass]. */
static int microsocks(proxy *p, const char *user, const char *pass) {
    memset(p, 0, sizeof *p);
    p->port = refused_port();
    char port[16];
    snprintf(port, sizeof port, "%d", p->port);
    char *argv[] = {"microsocks", "-i", "127.0.0.1", "-p", port, NULL, NULL, NULL, NULL, NULL};
    if (user) {
        argv[5] = "-u";
        argv[6] = (char *)user;
        argv[7] = "-P";
        argv[8] = (char *)pass;
    }
    return proxy_spawn(p, argv);
}

/* nghttpx as an HTTP/2 forward proxy (Debian's nghttp2-proxy), h2c on the
 * front, handing CONNECTs to the tinyproxy at backend_port behind it (its
 * documented setup; tests/proxies/proxies.go starts it the same way). */
static int nghttpx(proxy *p, int backend_port) {
    memset(p, 0, sizeof *p);
    snprintf(p->dir, sizeof p->dir, "/tmp/gm-nghttpx.XXXXXX");
    if (!mkdtemp(p->dir)) return 0;
    p->port = refused_port();
    char front[64], back[64], pid[128];
    snprintf(front, sizeof front, "127.0.0.1,%d;no-tls", p->port);
    snprintf(back, sizeof back, "127.0.0.1,%d", backend_port);
    snprintf(pid, sizeof pid, "--pid-file=%s/pid", p->dir);
    char *argv[] = {"nghttpx", "--http2-proxy", "--workers=1", "--conf=/dev/null", pid,
                    "--errorlog-file=/dev/stderr", "--accesslog-file=/dev/null", "-f", front, "-b", back, NULL};
    return proxy_spawn(p, argv);
}

/* ---------------------------------------------------------------- helpers */

/* Opens a connection to the proxy at port and waits for UP "http". */
static gm_conn *open_proxy(gm_queue *q, int port) {
    gm_conn *c = NULL;
    if (gm_open(q, "127.0.0.1", port, "{\"retry\":0}", &c) != GM_OK) return NULL;
    const char *proto = NULL;
    if (gm_await_up(c, WAIT_MS, &proto) != GM_OK || !proto || strcmp(proto, "http") != 0) {
        gm_conn_free(c);
        return NULL;
    }
    return c;
}

/* The next event of c (others are printed and freed). */
static gm_event *next_of(gm_queue *q, gm_conn *c) {
    for (;;) {
        gm_event *ev = next_event(q, WAIT_MS);
        if (!ev || ev->conn == c) return ev;
        gm_event_free(ev);
    }
}

/* The next event of c is kind on ref (and, when proto is not NULL, with that
 * protocol). Prints what came instead. */
static int expect_ev(gm_queue *q, gm_conn *c, int kind, gm_ref ref, const char *proto, int status) {
    gm_event *ev = next_of(q, c);
    int ok = ev && ev->kind == kind && ev->ref == ref &&
             (!proto || (ev->protocol && strcmp(ev->protocol, proto) == 0)) &&
             (!status || ev->status == status);
    if (!ok) {
        if (ev)
            fprintf(stderr, "    got kind %d ref %" PRIu64 " status %d protocol %s reason %s fin %d; wanted kind %d ref %" PRIu64 " %s %d\n",
                    ev->kind, ev->ref, ev->status, ev->protocol ? ev->protocol : "-", ev->reason ? ev->reason : "-",
                    ev->fin, kind, ref, proto ? proto : "", status);
        else
            fprintf(stderr, "    no event; wanted kind %d ref %" PRIu64 "\n", kind, ref);
    }
    if (ok && kind == GM_EV_RESPONSE && !ev->fin) {
        fprintf(stderr, "    a 2xx CONNECT answer must be fin\n");
        ok = 0;
    }
    gm_event_free(ev);
    return ok;
}

/* gm_connect to dest_json, then RESPONSE 200 fin and TUNNEL_UP proto on
 * its ref. 1 on success. */
static int tunnel_to_ref(gm_queue *q, gm_conn *c, const char *dest_json, const char *proto, gm_ref *out) {
    gm_ref ref = 0;
    int rc = gm_connect(c, dest_json, NULL, 0, NULL, &ref);
    CHECK_RC(rc, GM_OK);
    if (rc != GM_OK) return 0;
    if (out) *out = ref;
    return expect_ev(q, c, GM_EV_RESPONSE, ref, NULL, 200) && expect_ev(q, c, GM_EV_TUNNEL_UP, ref, proto, 0);
}

static int tunnel_to(gm_queue *q, gm_conn *c, const char *dest_json, const char *proto) {
    return tunnel_to_ref(q, c, dest_json, proto, NULL);
}

/* GET /headers on c: the origin's view of the request (malloc'ed), or NULL. */
static char *origin_headers(gm_conn *c) {
    char *body = NULL;
    int st = get_body(c, "/headers", &body, NULL);
    if (st != 200) {
        fprintf(stderr, "    GET /headers: %d %s\n", st, body ? body : gm_errmsg());
        free(body);
        return NULL;
    }
    return body;
}

/* The values of key in c's gm_info, joined with '|' (into buf). */
static const char *info_all(gm_conn *c, const char *key, char *buf, size_t cap) {
    gm_event *ev = NULL;
    buf[0] = 0;
    if (gm_info(c, &ev) != GM_OK) return "(gm_info failed)";
    size_t n = 0;
    for (size_t i = 0; i < ev->n_headers; i++) {
        if (strcmp(ev->headers[i].name, key) != 0) continue;
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? "|" : "", ev->headers[i].value);
        if (n >= cap) break;
    }
    gm_event_free(ev);
    return buf;
}

static void tls_dest(char *buf, size_t cap, const char *extra) {
    snprintf(buf, cap,
             "{\"host\":\"localhost\",\"port\":%d,\"transport\":\"tls\",\"tls_opts\":{\"cacertfile\":\"%s\"}%s}",
             https_port(), getenv("GM_TEST_CA"), extra);
}

/* ---------------------------------------------------------------- CONNECT */

/* Gun's connect_http: RESPONSE 200 fin, TUNNEL_UP "http" on the CONNECT's
 * ref; a request without any tunnel option then reaches the origin, with
 * the origin's authority as Host; gm_info names the proxy. */
TEST(connect_http_origin) {
    proxy p;
    REQUIRE(tinyproxy(&p, NULL, NULL));
    gm_queue *q = gm_queue_new();
    gm_conn *c = open_proxy(q, p.port);
    CHECK(c != NULL);
    if (c) {
        char dest[128], want[128], buf[512];
        snprintf(dest, sizeof dest, "{\"host\":\"127.0.0.1\",\"port\":%d}", http_port());
        CHECK(tunnel_to(q, c, dest, "http"));
        char *h = origin_headers(c);
        snprintf(want, sizeof want, "\"host\":\"127.0.0.1:%d\"", http_port());
        CHECK(h && strstr(h, want) && strstr(h, "\"proto\":\"HTTP/1.1\""));
        free(h);
        snprintf(want, sizeof want, "connect 127.0.0.1 %d tcp http", p.port);
        CHECK_STR(info_all(c, "intermediary", buf, sizeof buf), want);
        CHECK_STR(info_all(c, "origin_host", buf, sizeof buf), "127.0.0.1");
        snprintf(want, sizeof want, "%d", http_port());
        CHECK_STR(info_all(c, "origin_port", buf, sizeof buf), want);
        CHECK_STR(info_all(c, "origin_scheme", buf, sizeof buf), "http");
        CHECK_STR(info_all(c, "protocol", buf, sizeof buf), "http");
        /* host/port stay the proxy's, as Gun's */
        snprintf(want, sizeof want, "%d", p.port);
        CHECK_STR(info_all(c, "port", buf, sizeof buf), want);
        CHECK(close_and_free(q, c));
    }
    gm_queue_free(q);
    proxy_stop(&p);
}

/* Gun's connect_h2 over TLS: TLS to the origin inside the tunnel, ALPN
 * picks HTTP/2 (the default protocols on tls), origin_scheme https. */
TEST(connect_https_origin) {
    proxy p;
    REQUIRE(tinyproxy(&p, NULL, NULL));
    gm_queue *q = gm_queue_new();
    gm_conn *c = open_proxy(q, p.port);
    CHECK(c != NULL);
    if (c) {
        char dest[512], want[128], buf[512];
        tls_dest(dest, sizeof dest, "");
        CHECK(tunnel_to(q, c, dest, "http2"));
        char *h = origin_headers(c);
        snprintf(want, sizeof want, "\"host\":\"localhost:%d\"", https_port());
        CHECK(h && strstr(h, want) && strstr(h, "\"proto\":\"HTTP/2.0\""));
        free(h);
        snprintf(want, sizeof want, "connect 127.0.0.1 %d tcp http", p.port);
        CHECK_STR(info_all(c, "intermediary", buf, sizeof buf), want);
        CHECK_STR(info_all(c, "origin_scheme", buf, sizeof buf), "https");
        CHECK_STR(info_all(c, "origin_host", buf, sizeof buf), "localhost");
        CHECK_STR(info_all(c, "transport", buf, sizeof buf), "tls");
        CHECK_STR(info_all(c, "alpn", buf, sizeof buf), "h2");
        CHECK_STR(info_all(c, "protocol", buf, sizeof buf), "http2");
        CHECK(close_and_free(q, c));
    }
    gm_queue_free(q);
    proxy_stop(&p);
}

/* Without credentials tinyproxy's 407 is an ordinary response (and no
 * tunnel); username/password become Basic proxy-authorization, which the
 * origin does not see. */
TEST(connect_basic_auth) {
    proxy p;
    REQUIRE(tinyproxy(&p, "alice", "s3cret"));
    gm_queue *q = gm_queue_new();
    char dest[256], buf[512];
    gm_conn *c = open_proxy(q, p.port);
    CHECK(c != NULL);
    if (c) {
        snprintf(dest, sizeof dest, "{\"host\":\"127.0.0.1\",\"port\":%d}", http_port());
        gm_ref ref = 0;
        CHECK_RC(gm_connect(c, dest, NULL, 0, NULL, &ref), GM_OK);
        gm_event *ev = NULL;
        CHECK_RC(gm_await_body(c, ref, WAIT_MS, &ev), GM_OK);
        CHECK(ev && ev->status == 407);
        gm_event_free(ev);
        CHECK_STR(info_all(c, "intermediary", buf, sizeof buf), "");
        CHECK(close_and_free(q, c));
    }
    c = open_proxy(q, p.port);
    CHECK(c != NULL);
    if (c) {
        snprintf(dest, sizeof dest,
                 "{\"host\":\"127.0.0.1\",\"port\":%d,\"username\":\"alice\",\"password\":\"s3cret\"}",
                 http_port());
        CHECK(tunnel_to(q, c, dest, "http"));
        char *h = origin_headers(c);
        CHECK(h && !strstr(h, "proxy-authorization"));
        free(h);
        CHECK(close_and_free(q, c));
    }
    gm_queue_free(q);
    proxy_stop(&p);
}

/* Gun's do_connect_failure: a proxy that cannot reach the origin answers
 * an error status: an ordinary RESPONSE (+ DATA), no TUNNEL_UP, and the
 * connection stays the proxy's (origin_port is the proxy's). */
TEST(connect_refused_status) {
    proxy p;
    REQUIRE(tinyproxy(&p, NULL, NULL));
    gm_queue *q = gm_queue_new();
    gm_conn *c = open_proxy(q, p.port);
    CHECK(c != NULL);
    if (c) {
        char dest[128], buf[512], want[32];
        snprintf(dest, sizeof dest, "{\"host\":\"127.0.0.1\",\"port\":%d}", refused_port());
        gm_ref ref = 0;
        CHECK_RC(gm_connect(c, dest, NULL, 0, NULL, &ref), GM_OK);
        stream s;
        stream_init(&s, ref);
        CHECK(collect(q, &s, 1, WAIT_MS, NULL));
        CHECK(s.status >= 400 && s.status < 600);
        CHECK_EQ(s.errors + s.others, 0);
        stream_free(&s);
        CHECK_STR(info_all(c, "intermediary", buf, sizeof buf), "");
        snprintf(want, sizeof want, "%d", p.port);
        CHECK_STR(info_all(c, "origin_port", buf, sizeof buf), want);
        CHECK(close_and_free(q, c));
    }
    gm_queue_free(q);
    proxy_stop(&p);
}

/* Gun's connect_through_multiple_proxies: a CONNECT through the tunnel of
 * another, then TLS to the origin inside both; two intermediaries, in
 * order. */
TEST(connect_nested) {
    proxy p1, p2;
    REQUIRE(tinyproxy(&p1, NULL, NULL));
    if (!tinyproxy(&p2, NULL, NULL)) {
        proxy_stop(&p1);
        REQUIRE(0);
    }
    gm_queue *q = gm_queue_new();
    gm_conn *c = open_proxy(q, p1.port);
    CHECK(c != NULL);
    if (c) {
        char dest[512], want[256], buf[512];
        snprintf(dest, sizeof dest, "{\"host\":\"127.0.0.1\",\"port\":%d}", p2.port);
        CHECK(tunnel_to(q, c, dest, "http"));
        tls_dest(dest, sizeof dest, ",\"protocols\":[\"http\"]");
        CHECK(tunnel_to(q, c, dest, "http"));
        char *h = origin_headers(c);
        snprintf(want, sizeof want, "\"host\":\"localhost:%d\"", https_port());
        CHECK(h && strstr(h, want));
        free(h);
        snprintf(want, sizeof want, "connect 127.0.0.1 %d tcp http|connect 127.0.0.1 %d tcp http", p1.port,
                 p2.port);
        CHECK_STR(info_all(c, "intermediary", buf, sizeof buf), want);
        CHECK_STR(info_all(c, "origin_scheme", buf, sizeof buf), "https");
        CHECK(close_and_free(q, c));
    }
    gm_queue_free(q);
    proxy_stop(&p1);
    proxy_stop(&p2);
}

/* A raw byte stream to an origin of ours through the tunnel: gm_data on
 * ref 0, DATA on ref 0. */
TEST(connect_raw_origin) {
    proxy p;
    REQUIRE(tinyproxy(&p, NULL, NULL));
    int oport = 0;
    int ls = listen_local(&oport);
    gm_queue *q = gm_queue_new();
    gm_conn *c = open_proxy(q, p.port);
    CHECK(c != NULL && ls >= 0);
    if (c && ls >= 0) {
        char dest[128];
        snprintf(dest, sizeof dest, "{\"host\":\"127.0.0.1\",\"port\":%d,\"protocols\":[\"raw\"]}", oport);
        gm_ref tref = 0;
        CHECK(tunnel_to_ref(q, c, dest, "raw", &tref));
        int fd = fd_readable(ls, WAIT_MS) == 1 ? accept(ls, NULL, NULL) : -1;
        CHECK(fd >= 0);
        if (fd >= 0) {
            /* As Gun's do_connect_raw: the byte stream is the CONNECT's ref. */
            CHECK_RC(gm_data(c, tref, "through", 7, 0), GM_OK);
            char buf[16] = {0};
            size_t have = 0;
            while (have < 7 && fd_readable(fd, WAIT_MS) == 1) {
                ssize_t r = read(fd, buf + have, 7 - have);
                if (r <= 0) break;
                have += (size_t)r;
            }
            CHECK(have == 7 && memcmp(buf, "through", 7) == 0);
            CHECK(write(fd, "back", 4) == 4);
            gm_event *ev = next_of(q, c);
            CHECK(ev && ev->kind == GM_EV_DATA && ev->ref == tref && ev->data_len == 4 &&
                  memcmp(ev->data, "back", 4) == 0);
            gm_event_free(ev);
            close(fd);
        }
        CHECK(close_and_free(q, c));
    }
    if (ls >= 0) close(ls);
    gm_queue_free(q);
    proxy_stop(&p);
}

/* ---------------------------------------------------------------- SOCKS5 */

/* Gun's socks_SUITE: UP "socks", then TUNNEL_UP ref 0 (Gun's undefined)
 * with the origin's protocol; the intermediary is socks5. */
TEST(socks_no_auth_http_origin) {
    proxy p;
    REQUIRE(microsocks(&p, NULL, NULL));
    gm_queue *q = gm_queue_new();
    char opts[256], want[128], buf[512];
    snprintf(opts, sizeof opts,
             "{\"retry\":0,\"protocols\":[\"socks\"],\"socks_opts\":{\"host\":\"127.0.0.1\",\"port\":%d}}",
             http_port());
    gm_conn *c = NULL;
    CHECK_RC(gm_open(q, "127.0.0.1", p.port, opts, &c), GM_OK);
    if (c) {
        CHECK(expect_ev(q, c, GM_EV_UP, 0, "socks", 0));
        CHECK(expect_ev(q, c, GM_EV_TUNNEL_UP, 0, "http", 0));
        char *h = origin_headers(c);
        snprintf(want, sizeof want, "\"host\":\"127.0.0.1:%d\"", http_port());
        CHECK(h && strstr(h, want));
        free(h);
        snprintf(want, sizeof want, "socks5 127.0.0.1 %d tcp socks", p.port);
        CHECK_STR(info_all(c, "intermediary", buf, sizeof buf), want);
        snprintf(want, sizeof want, "%d", http_port());
        CHECK_STR(info_all(c, "origin_port", buf, sizeof buf), want);
        CHECK(close_and_free(q, c));
    }
    gm_queue_free(q);
    proxy_stop(&p);
}

/* Username/password (RFC 1929) and TLS to the origin through the SOCKS
 * tunnel: TUNNEL_UP "http2" by ALPN. */
TEST(socks_auth_https_origin) {
    proxy p;
    REQUIRE(microsocks(&p, "bob", "hunter22"));
    gm_queue *q = gm_queue_new();
    char opts[512], want[128], buf[512];
    snprintf(opts, sizeof opts,
             "{\"retry\":0,\"protocols\":[\"socks\"],\"socks_opts\":{\"host\":\"localhost\",\"port\":%d,"
             "\"auth\":[[\"username_password\",\"bob\",\"hunter22\"]],\"transport\":\"tls\","
             "\"tls_opts\":{\"cacertfile\":\"%s\"}}}",
             https_port(), getenv("GM_TEST_CA"));
    gm_conn *c = NULL;
    CHECK_RC(gm_open(q, "127.0.0.1", p.port, opts, &c), GM_OK);
    if (c) {
        CHECK(expect_ev(q, c, GM_EV_UP, 0, "socks", 0));
        CHECK(expect_ev(q, c, GM_EV_TUNNEL_UP, 0, "http2", 0));
        char *h = origin_headers(c);
        CHECK(h && strstr(h, "\"proto\":\"HTTP/2.0\""));
        free(h);
        snprintf(want, sizeof want, "socks5 127.0.0.1 %d tcp socks", p.port);
        CHECK_STR(info_all(c, "intermediary", buf, sizeof buf), want);
        CHECK_STR(info_all(c, "origin_scheme", buf, sizeof buf), "https");
        CHECK(close_and_free(q, c));
    }
    gm_queue_free(q);
    proxy_stop(&p);
}

/* Wrong credentials: DOWN "socks" with the proxy's refusal, then EXIT. */
TEST(socks_auth_refused) {
    proxy p;
    REQUIRE(microsocks(&p, "bob", "hunter22"));
    gm_queue *q = gm_queue_new();
    char opts[256];
    snprintf(opts, sizeof opts,
             "{\"retry\":0,\"protocols\":[\"socks\"],\"socks_opts\":{\"host\":\"127.0.0.1\",\"port\":%d,"
             "\"auth\":[[\"username_password\",\"bob\",\"wrong\"]]}}",
             http_port());
    gm_conn *c = NULL;
    CHECK_RC(gm_open(q, "127.0.0.1", p.port, opts, &c), GM_OK);
    if (c) {
        CHECK(expect_ev(q, c, GM_EV_UP, 0, "socks", 0));
        gm_event *ev = next_of(q, c);
        CHECK(ev && ev->kind == GM_EV_DOWN && ev->protocol && strcmp(ev->protocol, "socks") == 0);
        CHECK(ev && ev->reason && strncmp(ev->reason, "socks: ", 7) == 0);
        gm_event_free(ev);
        ev = next_of(q, c);
        CHECK(ev && ev->kind == GM_EV_EXIT);
        gm_event_free(ev);
        gm_conn_free(c);
    }
    gm_queue_free(q);
    proxy_stop(&p);
}

/* ---------------------------------------------------------------- HTTP/2 proxy */

/* A connection to nghttpx (h2c) with tinyproxy behind it. */
typedef struct h2proxy {
    proxy tiny, ng;
    gm_queue *q;
    gm_conn *c;
} h2proxy;

static int h2proxy_open(h2proxy *h) {
    memset(h, 0, sizeof *h);
    if (!tinyproxy(&h->tiny, NULL, NULL)) return 0;
    if (!nghttpx(&h->ng, h->tiny.port)) return 0;
    h->q = gm_queue_new();
    if (gm_open(h->q, "127.0.0.1", h->ng.port, "{\"protocols\":[\"http2\"],\"retry\":0}", &h->c) != GM_OK) return 0;
    const char *proto = NULL;
    return gm_await_up(h->c, WAIT_MS, &proto) == GM_OK && proto && strcmp(proto, "http2") == 0;
}

static void h2proxy_close(h2proxy *h) {
    if (h->c) CHECK(close_and_free(h->q, h->c));
    if (h->q) gm_queue_free(h->q);
    proxy_stop(&h->ng);
    proxy_stop(&h->tiny);
}

/* A request named by gm_req_opts.tunnel; its status, and its body in *body
 * (malloc'ed) when body is not NULL. -1 when the call or the wait failed. */
static int request_via(gm_conn *c, gm_ref tunnel, const char *method, const char *path, const char *req_body,
                       char **body, gm_ref *out_ref) {
    gm_req_opts o = {.size = sizeof o, .tunnel = tunnel};
    gm_ref ref = 0;
    size_t blen = req_body ? strlen(req_body) : 0;
    int rc = gm_request(c, method, path, NULL, 0, req_body, blen, 0, &o, &ref);
    if (rc != GM_OK) {
        fprintf(stderr, "    gm_request %s %s via tunnel %" PRIu64 ": %s (%s)\n", method, path, tunnel, gm_strerror(rc),
                gm_errmsg());
        return -1;
    }
    if (out_ref) *out_ref = ref;
    gm_event *ev = NULL;
    rc = gm_await(c, ref, WAIT_MS, &ev);
    if (rc != GM_OK || ev->kind != GM_EV_RESPONSE) {
        fprintf(stderr, "    %s %s: no RESPONSE (%s, kind %d, %s)\n", method, path, gm_strerror(rc), ev ? ev->kind : 0,
                ev && ev->reason ? ev->reason : gm_errmsg());
        gm_event_free(ev);
        return -1;
    }
    int status = ev->status, fin = ev->fin;
    gm_event_free(ev);
    if (!fin) {
        rc = gm_await_body(c, ref, WAIT_MS, &ev);
        if (rc != GM_OK) {
            fprintf(stderr, "    %s %s: body: %s (%s)\n", method, path, gm_strerror(rc), gm_errmsg());
            return -1;
        }
        if (body) *body = strndup((const char *)ev->data, ev->data_len);
        gm_event_free(ev);
    } else if (body) {
        *body = strdup("");
    }
    return status;
}

/* Gun's connect_h2c_through_h2_proxy / gm_req_opts.tunnel: CONNECT is one
 * stream of the HTTP/2 connection to nghttpx; requests naming it reach the
 * origin (GET and a POST with a body, several in flight), their
 * gm_stream_info names the tunnel, and a request without it goes to the
 * proxy itself (Gun 2.0's rule), an ordinary response. */
TEST(h2_proxy_req_opts_tunnel) {
    h2proxy h;
    int ok = h2proxy_open(&h);
    CHECK(ok);
    if (ok) {
        gm_queue *q = h.q;
        gm_conn *c = h.c;
        char dest[128], want[128];
        snprintf(dest, sizeof dest, "{\"host\":\"127.0.0.1\",\"port\":%d}", http_port());
        gm_ref tref = 0;
        CHECK(tunnel_to_ref(q, c, dest, "http", &tref));
        char *b = NULL;
        gm_ref ref = 0;
        CHECK_EQ(request_via(c, tref, "GET", "/headers", NULL, &b, &ref), 200);
        snprintf(want, sizeof want, "\"host\":\"127.0.0.1:%d\"", http_port());
        CHECK(b && strstr(b, want) && strstr(b, "\"proto\":\"HTTP/1.1\""));
        free(b), b = NULL;
        CHECK_EQ(request_via(c, tref, "POST", "/echo", "through two proxies", &b, NULL), 200);
        CHECK_STR(b ? b : "", "through two proxies");
        free(b), b = NULL;

        /* Several in flight through the tunnel, answered in order (HTTP/1.1 origin). */
        gm_req_opts o = {.size = sizeof o, .tunnel = tref};
        gm_ref refs[3];
        for (int i = 0; i < 3; i++) CHECK_RC(gm_request(c, "GET", "/bytes/1000", NULL, 0, NULL, 0, 0, &o, &refs[i]), GM_OK);
        for (int i = 0; i < 3; i++) {
            gm_event *ev = NULL;
            CHECK_RC(gm_await_body(c, refs[i], WAIT_MS, &ev), GM_OK);
            CHECK(ev && ev->status == 200 && ev->data_len == 1000);
            gm_event_free(ev);
        }

        /* gm_stream_info: the tunnel's stream describes its tunnel; a
         * stream inside is found by its own ref (the origin's protocol). */
        gm_event *si = NULL;
        CHECK_RC(gm_stream_info(c, tref, &si), GM_OK);
        char pbuf[16];
        snprintf(pbuf, sizeof pbuf, "%d", http_port());
        CHECK_STR(si ? ev_header(si, "tunnel_origin_port") : NULL, pbuf);
        CHECK_STR(si ? ev_header(si, "tunnel_protocol") : NULL, "http");
        CHECK_STR(si ? ev_header(si, "tunnel_transport") : NULL, "tcp");
        CHECK_STR(si ? ev_header(si, "protocol") : NULL, "http2");
        gm_event_free(si), si = NULL;
        CHECK_RC(gm_request(c, "GET", "/delay/300", NULL, 0, NULL, 0, 0, &o, &ref), GM_OK);
        CHECK_RC(gm_stream_info(c, ref, &si), GM_OK);
        CHECK_STR(si ? ev_header(si, "state") : NULL, "running");
        CHECK_STR(si ? ev_header(si, "path") : NULL, "/delay/300");
        CHECK_STR(si ? ev_header(si, "protocol") : NULL, "http");
        gm_event_free(si);
        gm_event *ev = NULL;
        CHECK_RC(gm_await_body(c, ref, WAIT_MS, &ev), GM_OK);
        gm_event_free(ev);

        /* Without the tunnel: the proxy itself answers (nghttpx, in proxy
         * mode, refuses a request for itself: some 4xx/5xx). */
        int st = request_via(c, 0, "GET", "/headers", NULL, NULL, NULL);
        CHECK(st >= 400 && st < 600);
        /* An unknown tunnel: GM_ENOSTREAM, nothing sent. */
        o.tunnel = tref + 1000;
        CHECK_FAILS(gm_request(c, "GET", "/", NULL, 0, NULL, 0, 0, &o, &ref), GM_ENOSTREAM);
        /* And the tunnel still works. */
        CHECK_EQ(request_via(c, tref, "GET", "/bytes/10", NULL, NULL, NULL), 200);
    }
    h2proxy_close(&h);
}

/* Gun's ping through a tunnel (gun:ping(ConnPid, #{tunnel => Ref})): an h2c
 * origin inside the tunnel acks; the ack is NOTIFY ping_ack with the ping's
 * ref. A tunnel to an HTTP/1.1 origin has no ping; an unknown tunnel is
 * GM_ENOSTREAM. */
TEST(h2_proxy_ping_tunnel) {
    h2proxy h;
    int ok = h2proxy_open(&h);
    CHECK(ok);
    if (ok) {
        gm_queue *q = h.q;
        gm_conn *c = h.c;
        char dest[160];
        snprintf(dest, sizeof dest, "{\"host\":\"127.0.0.1\",\"port\":%d,\"protocols\":[\"http2\"]}", http_port());
        gm_ref t2 = 0, t1 = 0, ping = 0;
        CHECK(tunnel_to_ref(q, c, dest, "http2", &t2));
        CHECK_RC(gm_ping_tunnel(c, t2, &ping), GM_OK);
        gm_event *ev = next_of(q, c);
        CHECK(ev && ev->kind == GM_EV_NOTIFY && ev->reason && strcmp(ev->reason, "ping_ack") == 0 && ev->ref == ping);
        gm_event_free(ev);
        snprintf(dest, sizeof dest, "{\"host\":\"127.0.0.1\",\"port\":%d,\"protocols\":[\"http\"]}", http_port());
        CHECK(tunnel_to_ref(q, c, dest, "http", &t1));
        CHECK_FAILS(gm_ping_tunnel(c, t1, &ping), GM_EUNSUPPORTED);
        CHECK_FAILS(gm_ping_tunnel(c, t2 + t1 + 1000, &ping), GM_ENOSTREAM);
        CHECK_FAILS(gm_ping_tunnel(c, t2, NULL), GM_EINVAL);
        CHECK_FAILS(gm_ping_tunnel(NULL, t2, &ping), GM_EINVAL);
        /* tunnel 0: the proxy's own HTTP/2 connection. */
        CHECK_RC(gm_ping_tunnel(c, 0, &ping), GM_OK);
        ev = next_of(q, c);
        CHECK(ev && ev->kind == GM_EV_NOTIFY && ev->ref == ping);
        gm_event_free(ev);
    }
    h2proxy_close(&h);
}

/* A TLS origin (h2 by ALPN) inside an HTTP/2 tunnel, and a WebSocket over
 * HTTP/1.1 to the origin inside another: ws_opts {"tunnel": ref}. */
TEST(h2_proxy_tls_origin_and_ws) {
    h2proxy h;
    int ok = h2proxy_open(&h);
    CHECK(ok);
    if (ok) {
        gm_queue *q = h.q;
        gm_conn *c = h.c;
        char dest[512];
        tls_dest(dest, sizeof dest, "");
        gm_ref tls_ref = 0;
        CHECK(tunnel_to_ref(q, c, dest, "http2", &tls_ref));
        char *b = NULL;
        CHECK_EQ(request_via(c, tls_ref, "GET", "/headers", NULL, &b, NULL), 200);
        CHECK(b && strstr(b, "\"proto\":\"HTTP/2.0\"")); /* the https port speaks only TLS */
        free(b);

        snprintf(dest, sizeof dest, "{\"host\":\"127.0.0.1\",\"port\":%d,\"protocols\":[\"http\"]}", http_port());
        gm_ref ws_tunnel = 0;
        CHECK(tunnel_to_ref(q, c, dest, "http", &ws_tunnel));
        char wo[64];
        snprintf(wo, sizeof wo, "{\"tunnel\":%" PRIu64 "}", ws_tunnel);
        gm_ref ws = 0;
        CHECK_RC(gm_ws_upgrade(c, "/ws", NULL, 0, wo, &ws), GM_OK);
        gm_event *ev = NULL;
        CHECK_RC(gm_await(c, ws, WAIT_MS, &ev), GM_OK);
        CHECK(ev && ev->kind == GM_EV_UPGRADE);
        gm_event_free(ev), ev = NULL;
        gm_ws_frame f = {.op = GM_WS_TEXT, .data = (const uint8_t *)"hello tunnel", .len = 12};
        CHECK_RC(gm_ws_send(c, ws, &f, 1), GM_OK);
        CHECK_RC(gm_await(c, ws, WAIT_MS, &ev), GM_OK);
        CHECK(ev && ev->kind == GM_EV_WS && ev->ws_opcode == GM_WS_TEXT && ev->data_len == 12 &&
              memcmp(ev->data, "hello tunnel", 12) == 0);
        gm_event_free(ev);
    }
    h2proxy_close(&h);
}

/* ---------------------------------------------------------------- refusals */

/* Bad input: an error code and a sentence, nothing on the wire: the first
 * bytes the peer (a listener of ours) receives are the valid request sent
 * afterwards. */
TEST(connect_bad_input_nothing_sent) {
    int port = 0;
    int ls = listen_local(&port);
    REQUIRE(ls >= 0);
    gm_queue *q = gm_queue_new();
    gm_conn *c = NULL;
    CHECK_RC(gm_open(q, "127.0.0.1", port, "{\"retry\":0}", &c), GM_OK);
    CHECK_RC(gm_await_up(c, WAIT_MS, NULL), GM_OK);
    int fd = fd_readable(ls, WAIT_MS) == 1 ? accept(ls, NULL, NULL) : -1;
    CHECK(fd >= 0);
    gm_ref ref = 0;
    gm_header cl = {"content-length", "0", SIZE_MAX, SIZE_MAX}, te = {"transfer-encoding", "chunked", SIZE_MAX, SIZE_MAX},
              bad = {"x-bad", "a\r\nb", SIZE_MAX, SIZE_MAX};
    const char *ok = "{\"host\":\"127.0.0.1\",\"port\":8080}";
    CHECK_FAILS(gm_connect(c, NULL, NULL, 0, NULL, &ref), GM_EINVAL);
    CHECK_FAILS(gm_connect(c, ok, NULL, 0, NULL, NULL), GM_EINVAL);
    CHECK_FAILS(gm_connect(NULL, ok, NULL, 0, NULL, &ref), GM_EINVAL);
    CHECK_FAILS(gm_connect(c, "{\"host\":", NULL, 0, NULL, &ref), GM_EOPTION);
    CHECK_FAILS(gm_connect(c, "[1]", NULL, 0, NULL, &ref), GM_EOPTION);
    CHECK_FAILS(gm_connect(c, "{\"host\":\"127.0.0.1\",\"port\":8080,\"bogus\":1}", NULL, 0, NULL, &ref),
                GM_EOPTION);
    CHECK(strstr(gm_errmsg(), "bogus") != NULL);
    CHECK_FAILS(gm_connect(c, "{\"host\":\"127.0.0.1\"}", NULL, 0, NULL, &ref), GM_EOPTION);
    CHECK(strstr(gm_errmsg(), "port") != NULL);
    CHECK_FAILS(gm_connect(c, "{\"host\":\"127.0.0.1\",\"port\":70000}", NULL, 0, NULL, &ref), GM_EOPTION);
    CHECK_FAILS(gm_connect(c, "{\"host\":\"127.0.0.1\",\"port\":1,\"username\":\"u\"}", NULL, 0, NULL, &ref),
                GM_EOPTION);
    CHECK_FAILS(gm_connect(c, "{\"host\":\"127.0.0.1\",\"port\":1,\"transport\":\"quic\"}", NULL, 0, NULL, &ref),
                GM_EOPTION);
    CHECK_FAILS(gm_connect(c, "{\"host\":\"127.0.0.1\",\"port\":1,\"protocols\":[\"socks\"]}", NULL, 0, NULL, &ref),
                GM_EOPTION);
    CHECK_FAILS(gm_connect(c, ok, &cl, 1, NULL, &ref), GM_EINVAL);
    CHECK(strstr(gm_errmsg(), "content-length") != NULL);
    CHECK_FAILS(gm_connect(c, ok, &te, 1, NULL, &ref), GM_EINVAL);
    CHECK_FAILS(gm_connect(c, ok, &bad, 1, NULL, &ref), GM_EINVAL);
    gm_req_opts o = {.size = sizeof o, .timeout_ms = -1};
    CHECK_FAILS(gm_connect(c, ok, NULL, 0, &o, &ref), GM_EINVAL);
    CHECK_EQ(ref, 0);

    /* Then a valid request: it is the first thing on the wire. */
    CHECK_RC(gm_request(c, "GET", "/first", NULL, 0, NULL, 0, 0, NULL, &ref), GM_OK);
    char buf[16] = {0};
    size_t have = 0;
    while (fd >= 0 && have < 10 && fd_readable(fd, WAIT_MS) == 1) {
        ssize_t r = read(fd, buf + have, 10 - have);
        if (r <= 0) break;
        have += (size_t)r;
    }
    CHECK(have == 10 && memcmp(buf, "GET /first", 10) == 0);
    if (fd >= 0) close(fd);
    close(ls);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

/* CONNECT needs an HTTP connection to the proxy (HTTP/1.1, or HTTP/2 where
 * the tunnel is a stream): on a raw connection GM_EUNSUPPORTED with a
 * sentence, the connection untouched. */
TEST(connect_on_raw_unsupported) {
    gm_queue *q = gm_queue_new();
    gm_conn *c = open_up_opts(q, "{\"protocols\":[\"raw\"],\"retry\":0}");
    REQUIRE(c != NULL);
    gm_ref ref = 0;
    char dest[128];
    snprintf(dest, sizeof dest, "{\"host\":\"127.0.0.1\",\"port\":%d}", http_port());
    CHECK_FAILS(gm_connect(c, dest, NULL, 0, NULL, &ref), GM_EUNSUPPORTED);
    CHECK(strstr(gm_errmsg(), "HTTP connection") != NULL);
    CHECK_EQ(ref, 0);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

static const struct check_case cases[] = {
    CASE(connect_http_origin),
    CASE(connect_https_origin),
    CASE(connect_basic_auth),
    CASE(connect_refused_status),
    CASE(connect_nested),
    CASE(connect_raw_origin),
    CASE(socks_no_auth_http_origin),
    CASE(socks_auth_https_origin),
    CASE(socks_auth_refused),
    CASE(h2_proxy_req_opts_tunnel),
    CASE(h2_proxy_tls_origin_and_ws),
    CASE(h2_proxy_ping_tunnel),
    CASE(connect_bad_input_nothing_sent),
    CASE(connect_on_raw_unsupported),
};

int main(int argc, char **argv) { return check_main(argc, argv, cases, CHECK_N(cases)); }
