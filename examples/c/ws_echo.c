/*
 * ws_echo.c — a WebSocket on a gunmetal connection: upgrade, send a text
 * message, print the echo, close; every event printed one per line in the
 * shape of Gun's messages (gun_up, gun_upgrade, gun_ws, gun_down).
 *
 *   ./ws_echo 127.0.0.1 PORT        (the project's test server: /ws echoes)
 *
 * Build it like get.c:
 *
 *   cc -Wall -Wextra -o ws_echo examples/c/ws_echo.c \
 *      $(PKG_CONFIG_PATH=build pkg-config --cflags --libs gunmetal) -Wl,-rpath,$PWD/build
 *
 * Exit status: 0 when the echo and the close came back, 1 otherwise.
 */
#include <gunmetal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAIT_MS 5000

static gm_event *next(gm_queue *q) {
    gm_event *ev = NULL;
    if (gm_queue_poll(q, &ev, 1, WAIT_MS) != 1) {
        fprintf(stderr, "no event within %d ms\n", WAIT_MS);
        exit(1);
    }
    return ev;
}

static void print(const gm_event *ev) {
    switch (ev->kind) {
    case GM_EV_UP:
        printf("gun_up %s\n", ev->protocol);
        break;
    case GM_EV_UPGRADE: {
        const char *proto = NULL;
        for (size_t i = 0; i < ev->n_headers; i++)
            if (strcmp(ev->headers[i].name, "sec-websocket-protocol") == 0) proto = ev->headers[i].value;
        printf("gun_upgrade #1 [<<\"%s\">>] (subprotocol %s)\n", ev->protocol, proto ? proto : "none");
        break;
    }
    case GM_EV_WS:
        if (ev->ws_opcode == GM_WS_CLOSE)
            printf("gun_ws #1 {close, %d, <<\"%.*s\">>}\n", ev->status, (int)ev->data_len, (const char *)ev->data);
        else
            printf("gun_ws #1 {%s, <<\"%.*s\">>}\n", ev->ws_opcode == GM_WS_TEXT ? "text" : "binary",
                   (int)ev->data_len, (const char *)ev->data);
        break;
    case GM_EV_DOWN:
        printf("gun_down %s %s killed %zu stream(s)\n", ev->protocol, ev->reason, ev->n_killed);
        break;
    case GM_EV_RESPONSE:
        printf("gun_response #1 %s %d (the server refused the upgrade)\n", ev->fin ? "fin" : "nofin", ev->status);
        break;
    case GM_EV_ERROR:
        printf("gun_error #1 %s\n", ev->reason);
        break;
    default:
        printf("event %d\n", ev->kind);
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s HOST PORT\n", argv[0]);
        return 2;
    }
    gm_queue *q = gm_queue_new();
    gm_conn *c = NULL;
    /* retry 0: when the WebSocket closes, the connection ends (no reconnect). */
    if (!q || gm_open(q, argv[1], atoi(argv[2]), "{\"retry\":0}", &c) != GM_OK) {
        fprintf(stderr, "open: %s\n", gm_errmsg());
        return 1;
    }
    gm_event *ev = next(q);
    print(ev);
    gm_event_free(ev);

    gm_ref ref = 0;
    if (gm_ws_upgrade(c, "/ws", NULL, 0, "{\"protocols\":[\"chat\"]}", &ref) != GM_OK) {
        fprintf(stderr, "ws_upgrade: %s\n", gm_errmsg());
        return 1;
    }
    int ok = 0;
    ev = next(q);
    print(ev);
    int upgraded = ev->kind == GM_EV_UPGRADE;
    gm_event_free(ev);
    if (upgraded) {
        gm_ws_frame hello[] = {{GM_WS_TEXT, 0, "hello from C", 12}};
        gm_ws_send(c, ref, hello, 1);
        ev = next(q);
        print(ev);
        ok = ev->kind == GM_EV_WS && ev->data_len == 12;
        gm_event_free(ev);

        gm_ws_frame bye[] = {{GM_WS_CLOSE, 1000, "bye", 3}};
        gm_ws_send(c, ref, bye, 1);
        ev = next(q); /* the server's close frame */
        print(ev);
        ok = ok && ev->kind == GM_EV_WS && ev->ws_opcode == GM_WS_CLOSE;
        gm_event_free(ev);
        ev = next(q); /* the connection went with it */
        print(ev);
        gm_event_free(ev);
    }
    gm_close(c);
    gm_conn_free(c);
    gm_queue_free(q);
    return ok ? 0 : 1;
}
