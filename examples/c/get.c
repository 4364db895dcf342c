/*
 * get.c — gunmetal's first example: three concurrent GET requests on one
 * connection, every event printed one per line in the shape of Gun's
 * messages (gun_up, gun_response, gun_data, gun_trailers, ...).
 *
 *   make demo             builds everything, starts the test server, runs this
 *
 * or by hand, against build/ (see the README):
 *
 *   cc -Wall -Wextra -o get examples/c/get.c \
 *      $(PKG_CONFIG_PATH=build pkg-config --cflags --libs gunmetal) -Wl,-rpath,$PWD/build
 *   ./get 127.0.0.1 PORT
 *
 * The paths are endpoints of the project's test server (tests/server): a
 * 100-byte body with content-length, a chunked body in three chunks, and a
 * body followed by trailers. Stream references are printed #1..#3, in the
 * order the requests were made.
 *
 * Exit status: 0 when all three responses arrived in full, 1 otherwise.
 */
#include <gunmetal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NREQ 3
#define BATCH 64          /* events taken per gm_queue_poll call */
#define WAIT_MS 5000      /* the longest we wait for any one event */

static const char *paths[NREQ] = {"/bytes/100", "/chunked/300?chunk=100", "/trailers"};
static gm_ref refs[NREQ];
static int done[NREQ];    /* 1 once the stream has had its last event */
static int failed;        /* a stream ended with gun_error */

/* The local number (1..NREQ) of a stream reference, 0 if it is not ours. */
static int stream_no(gm_ref ref) {
    for (int i = 0; i < NREQ; i++)
        if (refs[i] == ref) return i + 1;
    return 0;
}

static void print_ref(gm_ref ref) {
    int n = stream_no(ref);
    if (n) printf("#%d", n);
    else printf("#ref%llu", (unsigned long long)ref);
}

/* Headers in Gun's list shape, compact: [{name,value},...], at most three;
 * a value with a space or a comma is quoted, a long one cut at 40 bytes. */
static void print_headers(const gm_header *h, size_t n) {
    printf("[");
    for (size_t i = 0; i < n && i < 3; i++) {
        const char *q = strpbrk(h[i].value, " ,") ? "\"" : "";
        printf("%s{%s,%s%.40s%s}", i ? "," : "", h[i].name, q, h[i].value, q);
    }
    if (n > 3) printf(",...");
    printf("]");
}

static const char *fin(const gm_event *ev) { return ev->fin ? "fin" : "nofin"; }

static void finish(gm_ref ref) {
    int n = stream_no(ref);
    if (n) done[n - 1] = 1;
}

/* Prints one event; marks the streams that it ends. */
static void print_event(const gm_event *ev) {
    switch (ev->kind) {
    case GM_EV_UP:
        printf("gun_up %s\n", ev->protocol);
        break;
    case GM_EV_INFORM:
        printf("gun_inform ");
        print_ref(ev->ref);
        printf(" %d ", (int)ev->status);
        print_headers(ev->headers, ev->n_headers);
        printf("\n");
        break;
    case GM_EV_RESPONSE:
        printf("gun_response ");
        print_ref(ev->ref);
        printf(" %s %d ", fin(ev), (int)ev->status);
        print_headers(ev->headers, ev->n_headers);
        printf("\n");
        if (ev->fin) finish(ev->ref);
        break;
    case GM_EV_DATA:
        printf("gun_data ");
        print_ref(ev->ref);
        printf(" %s %zu bytes\n", fin(ev), ev->data_len);
        if (ev->fin) finish(ev->ref);
        break;
    case GM_EV_TRAILERS:  /* trailers always end the stream */
        printf("gun_trailers ");
        print_ref(ev->ref);
        printf(" ");
        print_headers(ev->headers, ev->n_headers);
        printf("\n");
        finish(ev->ref);
        break;
    case GM_EV_ERROR:
        if (ev->ref == 0) {  /* about the whole connection */
            printf("gun_error %s\n", ev->reason);
            break;
        }
        printf("gun_error ");
        print_ref(ev->ref);
        printf(" %s\n", ev->reason);
        finish(ev->ref);
        failed = 1;
        break;
    case GM_EV_DOWN:
        printf("gun_down %s %s [", ev->protocol, ev->reason);
        for (size_t i = 0; i < ev->n_killed; i++) {
            if (i) printf(",");
            print_ref(ev->killed[i]);
        }
        printf("]\n");
        break;
    case GM_EV_EXIT:
        printf("exit %s\n", ev->reason);
        break;
    default:
        printf("event kind %d\n", (int)ev->kind);
        break;
    }
}

static int all_done(void) {
    for (int i = 0; i < NREQ; i++)
        if (!done[i]) return 0;
    return 1;
}

/* Reports a failed call with the library's sentence. */
static int fail(const char *what, int rc) {
    fprintf(stderr, "get: %s: %s (%s)\n", what, gm_errmsg(), gm_strerror(rc));
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: %s HOST PORT [OPTIONS_JSON]\n", argv[0]);
        return 2;
    }
    const char *host = argv[1];
    int port = atoi(argv[2]);
    /* Gun's options as JSON, e.g. {"transport":"tls","tls_opts":{"cacertfile":"ca.pem"}} */
    const char *opts = argc == 4 ? argv[3] : NULL;
    int status = 1, rc, exited = 0;
    gm_conn *conn = NULL;
    gm_event *evs[BATCH];

    /* The queue is the owner's mailbox: every event of the connection goes there. */
    gm_queue *q = gm_queue_new();
    if (!q) return fail("gm_queue_new", GM_ENOMEM);

    /* Connects in the background; NULL options: Gun's defaults (tcp, http on
     * any port but 443). */
    if ((rc = gm_open(q, host, port, opts, &conn)) != GM_OK) {
        fail("gm_open", rc);
        goto out;
    }
    const char *protocol = NULL;
    if ((rc = gm_await_up(conn, WAIT_MS, &protocol)) != GM_OK) {
        fail("gm_await_up", rc);
        goto out;
    }
    printf("gun_up %s\n", protocol);

    /* Three requests at once: they are written without waiting for answers. */
    gm_header hdrs[] = {{"user-agent", "gunmetal-example", SIZE_MAX, SIZE_MAX}};
    for (int i = 0; i < NREQ; i++) {
        rc = gm_request(conn, "GET", paths[i], hdrs, 1, NULL, 0, 0, NULL, &refs[i]);
        if (rc != GM_OK) {
            fail("gm_request", rc);
            goto out;
        }
    }

    /* Drain the queue in batches until every stream has ended. */
    while (!all_done() && !exited) {
        int n = gm_queue_poll(q, evs, BATCH, WAIT_MS);
        if (n < 0) {
            fail("gm_queue_poll", n);
            goto out;
        }
        if (n == 0) {
            fprintf(stderr, "get: no event for %d ms\n", WAIT_MS);
            goto out;
        }
        for (int i = 0; i < n; i++) {
            print_event(evs[i]);
            if (evs[i]->kind == GM_EV_EXIT) exited = 1;  /* retries ran out */
        }
        gm_events_free(evs, n);
    }
    if (exited) {
        fprintf(stderr, "get: the connection exited before the responses were complete\n");
        goto out;
    }

    /* Close, then wait for the connection's last event: EXIT "shutdown". */
    if ((rc = gm_close(conn)) != GM_OK) {
        fail("gm_close", rc);
        goto out;
    }
    while (!exited) {
        int n = gm_queue_poll(q, evs, BATCH, WAIT_MS);
        if (n <= 0) {
            if (n < 0) fail("gm_queue_poll", n);
            else fprintf(stderr, "get: no exit event within %d ms\n", WAIT_MS);
            goto out;
        }
        for (int i = 0; i < n; i++) {
            print_event(evs[i]);
            if (evs[i]->kind == GM_EV_EXIT && evs[i]->conn == conn) exited = 1;
        }
        gm_events_free(evs, n);
    }
    status = failed ? 1 : 0;

out:
    gm_conn_free(conn);  /* NULL is a no-op */
    gm_queue_free(q);
    return status;
}
