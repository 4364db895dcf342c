/*
 * proxy.c — a request to an origin through an HTTP/1.1 proxy (Gun's
 * gun:connect): open the connection to the proxy, gm_connect to the origin,
 * wait for the proxy's 2xx and GM_EV_TUNNEL_UP, then request as usual: the
 * connection is the origin's now. gm_info names the proxy.
 *
 *   cc -Wall -Wextra -o proxy examples/c/proxy.c \
 *      $(PKG_CONFIG_PATH=build pkg-config --cflags --libs gunmetal) -Wl,-rpath,$PWD/build
 *   ./proxy PROXY_PORT ORIGIN_HOST ORIGIN_PORT [USER PASSWORD]
 *
 * The proxy is on 127.0.0.1 (tinyproxy, say); USER and PASSWORD become
 * Basic proxy-authorization. Exit status: 0 when the origin answered.
 */
#include <gunmetal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 4 && argc != 6) {
        fprintf(stderr, "usage: %s PROXY_PORT ORIGIN_HOST ORIGIN_PORT [USER PASSWORD]\n", argv[0]);
        return 2;
    }
    gm_queue *q = gm_queue_new();
    gm_conn *c = NULL;
    if (gm_open(q, "127.0.0.1", atoi(argv[1]), "{\"retry\":0}", &c) != GM_OK ||
        gm_await_up(c, 5000, NULL) != GM_OK) {
        fprintf(stderr, "proxy: %s\n", gm_errmsg());
        return 1;
    }
    /* Gun's destination map; a real program would JSON-escape the strings. */
    char dest[512];
    if (argc == 6)
        snprintf(dest, sizeof dest, "{\"host\":\"%s\",\"port\":%s,\"username\":\"%s\",\"password\":\"%s\"}",
                 argv[2], argv[3], argv[4], argv[5]);
    else
        snprintf(dest, sizeof dest, "{\"host\":\"%s\",\"port\":%s}", argv[2], argv[3]);
    gm_ref tunnel;
    gm_event *ev = NULL;
    if (gm_connect(c, dest, NULL, 0, NULL, &tunnel) != GM_OK ||
        gm_await(c, tunnel, 5000, &ev) != GM_OK) {
        fprintf(stderr, "connect: %s\n", gm_errmsg());
        return 1;
    }
    int status = ev->status;          /* the proxy's answer: RESPONSE */
    gm_event_free(ev);
    if (status / 100 != 2) {          /* an ordinary response, e.g. 407 */
        fprintf(stderr, "the proxy answered %d\n", status);
        return 1;
    }
    if (gm_await(c, tunnel, 5000, &ev) != GM_OK || ev->kind != GM_EV_TUNNEL_UP) return 1;
    printf("tunnel up: %s\n", ev->protocol);   /* the protocol spoken to the origin */
    gm_event_free(ev);

    gm_ref ref;                        /* no tunnel option: goes to the origin */
    gm_request(c, "GET", "/", NULL, 0, NULL, 0, 0, NULL, &ref);
    if (gm_await_body(c, ref, 5000, &ev) != GM_OK) return 1;
    printf("origin answered %d, %zu bytes\n", ev->status, ev->data_len);
    gm_event_free(ev);

    gm_info(c, &ev);
    for (size_t i = 0; i < ev->n_headers; i++)
        if (!strcmp(ev->headers[i].name, "intermediary"))
            printf("through: %s\n", ev->headers[i].value);   /* "connect 127.0.0.1 PORT tcp http" */
    gm_event_free(ev);
    gm_close(c);
    gm_conn_free(c);
    gm_queue_free(q);
    return 0;
}
