/*
 * curl_client.c — libcurl's multi interface for bench/harness (W1, W2, W3,
 * W5), with the same command line and output as gm_client.c:
 *
 *   curl_client multi PORT TLS PATH N M WARMUP  one connection, HTTP/2
 *                                               multiplexing (CURLPIPE_MULTIPLEX,
 *                                               PIPEWAIT, one host connection),
 *                                               M transfers in flight
 *   curl_client conns PORT TLS PATH N           N connections at once (FRESH_CONNECT)
 *   curl_client idle  PORT TLS PATH N IDLE_S    N connections, then idle
 *
 * h2c is HTTP/2 with prior knowledge; TLS is ALPN h2 without verification.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include "measure.h"

static long long bytes_seen;

static size_t sink(char *p, size_t size, size_t n, void *ud) {
    (void)p;
    (void)ud;
    bytes_seen += (long long)(size * n);
    return size * n;
}

static char url[256];
static int tls;

static CURL *easy(int fresh) {
    CURL *e = curl_easy_init();
    if (!e) {
        fprintf(stderr, "curl_client: curl_easy_init failed\n");
        exit(1);
    }
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, tls ? CURL_HTTP_VERSION_2TLS : CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, fresh ? 0L : 1L);
    if (fresh) curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
    return e;
}

/* Runs until `n` transfers have finished, keeping up to m in flight (a
 * new handle for each). */
static void run(CURLM *multi, long n, int m, int fresh) {
    long issued = 0, done = 0;
    for (int i = 0; i < m && issued < n; i++, issued++) curl_multi_add_handle(multi, easy(fresh));
    while (done < n) {
        int running = 0;
        curl_multi_perform(multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(multi, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            CURL *e = msg->easy_handle;
            long code = 0, ver = 0;
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
            curl_easy_getinfo(e, CURLINFO_HTTP_VERSION, &ver);
            if (msg->data.result != CURLE_OK || code != 200 || ver != CURL_HTTP_VERSION_2_0) {
                fprintf(stderr, "curl_client: %s, status %ld, version %ld\n", curl_easy_strerror(msg->data.result), code,
                        ver);
                exit(1);
            }
            curl_multi_remove_handle(multi, e);
            curl_easy_cleanup(e); /* the connection stays in the multi's cache */
            done++;
            if (issued < n) {
                curl_multi_add_handle(multi, easy(fresh));
                issued++;
            }
        }
        if (done < n) curl_multi_poll(multi, NULL, 0, 1000, NULL);
    }
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: curl_client multi|conns|idle PORT TLS PATH N [M WARMUP | IDLE_S]\n");
        return 2;
    }
    const char *mode = argv[1];
    int port = atoi(argv[2]);
    tls = atoi(argv[3]);
    long n = atol(argv[5]);
    snprintf(url, sizeof url, "%s://127.0.0.1:%d%s", tls ? "https" : "http", port, argv[4]);
    curl_global_init(CURL_GLOBAL_ALL);
    CURLM *multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    if (strcmp(mode, "multi") == 0 && !tls && curl_version_info(CURLVERSION_NOW)->version_num < 0x080000) {
        /* curl/curl#10634 (fixed in 8.0.0 by #10643): a reused h2c
         * prior-knowledge connection fails with "Error in the HTTP2
         * framing layer". One request per connection (conns, idle) works. */
        printf("NA libcurl %s cannot reuse an h2c prior-knowledge connection (curl/curl#10634, fixed in 8.0.0)\n",
               curl_version_info(CURLVERSION_NOW)->version);
        return 0;
    }
    if (strcmp(mode, "multi") == 0) {
        int m = argc > 6 ? atoi(argv[6]) : 100;
        long warm = argc > 7 ? atol(argv[7]) : 1000;
        curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, 1L);
        curl_multi_setopt(multi, CURLMOPT_MAX_CONCURRENT_STREAMS, (long)m);
        if (warm > 0) run(multi, warm, m, 0);
        bytes_seen = 0;
        double t0 = now(), c0 = cpu();
        run(multi, n, m, 0);
        double t1 = now(), c1 = cpu();
        printf("RESULT n=%ld s=%.6f cpu=%.6f bytes=%lld\n", n, t1 - t0, c1 - c0, bytes_seen);
    } else if (strcmp(mode, "conns") == 0 || strcmp(mode, "idle") == 0) {
        int idle = strcmp(mode, "idle") == 0;
        curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, n + 16);
        if (idle) /* start-up (TLS/HTTP/2 libraries, first connection) is not the connections' */
            run(multi, 1, 1, 1);
        long before = rss_kb();
        bytes_seen = 0;
        double t0 = now(), c0 = cpu();
        run(multi, n, (int)n, 1);
        double t1 = now(), c1 = cpu();
        if (idle) {
            sleep((unsigned)(argc > 6 ? atoi(argv[6]) : 2));
            printf("RESULT n=%ld s=%.6f cpu=%.6f bytes=%lld rss_before_kb=%ld rss_after_kb=%ld\n", n, t1 - t0, c1 - c0,
                   bytes_seen, before, rss_kb());
        } else {
            printf("RESULT n=%ld s=%.6f cpu=%.6f bytes=%lld\n", n, t1 - t0, c1 - c0, bytes_seen);
        }
    } else {
        fprintf(stderr, "curl_client: unknown mode %s\n", mode);
        return 2;
    }
    return 0;
}
