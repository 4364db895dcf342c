/*
 * scenarios.c — the C runner of the scenario suite (tests/scenarios).
 *
 * It reads the scenarios in the flattened line format that
 * `tests/scenarios/server -flatten` writes (file in GM_SCEN_FILE; the format
 * is described in tests/scenarios/scenserver/flatten.go) and the scripted
 * server's address line in GM_SCEN_INFO, and plays one scenario per process
 * through the C ABI, comparing events by the rules of
 * tests/scenarios/README.md (the Go runner's, scenarios_test.go).
 *
 *   scenarios --list      the scenario names (tests/c/run.sh runs each)
 *   scenarios NAME        plays NAME; last line "1 passed, 0 failed",
 *                         "0 passed, 1 failed", or "n/a: why" when the
 *                         scenario says C cannot express it
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gunmetal.h"

#define WAIT_MS 10000 /* each expect block: generous, loaded machine */
#define MAXF 128

/* ------------------------------------------------------------ records */

typedef struct {
    char *k;
    char *v; /* decoded, NUL-terminated */
    size_t n;
} field;

typedef struct {
    char type[8];
    int nf;
    field f[MAXF];
} rec;

static int unhex(int c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; }

/* Decodes %XX in place; returns the length. */
static size_t pdecode(char *s) {
    char *w = s;
    for (char *r = s; *r; r++) {
        if (*r == '%' && r[1] && r[2]) {
            *w++ = (char)(unhex(r[1]) << 4 | unhex(r[2]));
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = 0;
    return (size_t)(w - s);
}

/* Splits one line (modified in place) into a record. */
static void parse_line(char *line, rec *r) {
    memset(r, 0, sizeof *r);
    char *save = NULL;
    char *tok = strtok_r(line, "\t", &save);
    snprintf(r->type, sizeof r->type, "%s", tok ? tok : "");
    while ((tok = strtok_r(NULL, "\t", &save)) && r->nf < MAXF) {
        field *f = &r->f[r->nf++];
        char *eq = strchr(tok, '=');
        if (eq) {
            *eq = 0;
            f->k = tok;
            f->v = eq + 1;
        } else { /* positional (S, server, na, O) */
            f->k = "";
            f->v = tok;
        }
        f->n = pdecode(f->v);
    }
}

static const char *get(const rec *r, const char *k) {
    for (int i = 0; i < r->nf; i++)
        if (strcmp(r->f[i].k, k) == 0) return r->f[i].v;
    return NULL;
}
static const field *getf(const rec *r, const char *k) {
    for (int i = 0; i < r->nf; i++)
        if (strcmp(r->f[i].k, k) == 0) return &r->f[i];
    return NULL;
}
static int geti(const rec *r, const char *k, int def) {
    const char *v = get(r, k);
    return v ? atoi(v) : def;
}

/* ------------------------------------------------------------ sha-256 */

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) ((x) >> (n) | (x) << (32 - (n)))

static void sha256_block(uint32_t h[8], const uint8_t *p) {
    uint32_t w[64], a, b, c, d, e, f, g, k;
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = k + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i];
        uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += k;
}

static void sha256_hex(const uint8_t *data, size_t n, char out[65]) {
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    size_t i = 0;
    for (; i + 64 <= n; i += 64) sha256_block(h, data + i);
    uint8_t tail[128] = {0};
    size_t r = n - i;
    memcpy(tail, data + i, r);
    tail[r] = 0x80;
    size_t tl = r + 9 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)n * 8;
    for (int j = 0; j < 8; j++) tail[tl - 1 - j] = (uint8_t)(bits >> (8 * j));
    sha256_block(h, tail);
    if (tl == 128) sha256_block(h, tail + 64);
    for (int j = 0; j < 8; j++) sprintf(out + 8 * j, "%08x", h[j]);
}

/* ------------------------------------------------------------ state */

typedef struct {
    char name[64];
    gm_ref id;
} refname;
typedef struct {
    char name[64];
    gm_conn *c;
} connname;
typedef struct {
    char name[64];
    gm_queue *q;
} queuename;

static refname refs[256];
static int nrefs;
static connname conns[16];
static int nconns;
static queuename queues[16];
static int nqueues;
static char authority[64];

static const char *scen_name;
static const char *scen_server;
static const char *scen_options;

static void bind_ref(const char *name, gm_ref id) {
    if (nrefs < 256) {
        snprintf(refs[nrefs].name, sizeof refs[nrefs].name, "%s", name);
        refs[nrefs++].id = id;
    }
}
static int ref_of(const char *name, gm_ref *id) {
    for (int i = 0; i < nrefs; i++)
        if (strcmp(refs[i].name, name) == 0) return *id = refs[i].id, 1;
    return 0;
}
static const char *name_of(gm_ref id, char *buf, size_t n) {
    if (id == 0) return "-";
    for (int i = 0; i < nrefs; i++)
        if (refs[i].id == id) return refs[i].name;
    snprintf(buf, n, "#%" PRIu64, id);
    return buf;
}

static gm_queue *queue_of(const char *name) {
    if (!name || !*name) name = "main";
    for (int i = 0; i < nqueues; i++)
        if (strcmp(queues[i].name, name) == 0) return queues[i].q;
    if (nqueues == 16) return NULL;
    snprintf(queues[nqueues].name, sizeof queues[nqueues].name, "%s", name);
    queues[nqueues].q = gm_queue_new();
    return queues[nqueues++].q;
}
static gm_conn *conn_of(const char *name) {
    if (!name || !*name) name = "c";
    for (int i = 0; i < nconns; i++)
        if (strcmp(conns[i].name, name) == 0) return conns[i].c;
    return NULL;
}

static int fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    return 0;
}

static const char *err_class(int rc) {
    switch (rc) {
    case GM_OK: return "ok";
    case GM_EINVAL: return "einval";
    case GM_EOPTION: return "eoption";
    case GM_ECLOSED: return "eclosed";
    case GM_ENOSTREAM: return "enostream";
    case GM_ENOTUP: return "enotup";
    case GM_EBADSTATE: return "ebadstate";
    case GM_EUNSUPPORTED: return "eunsupported";
    case GM_ETIMEOUT: return "etimeout";
    }
    return "other";
}

/* A port from GM_SCEN_INFO: "http" or the scenario's script. */
static int info_port(const char *key, int in_scripts) {
    const char *info = getenv("GM_SCEN_INFO");
    if (!info) return 0;
    const char *from = info;
    if (in_scripts) {
        from = strstr(info, "\"scripts\"");
        if (!from) return 0;
    }
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(from, pat);
    return p ? atoi(p + strlen(pat)) : 0;
}

static int scenario_port(void) {
    if (strcmp(scen_server, "http") == 0) return info_port("http", 0);
    if (strcmp(scen_server, "https") == 0) return info_port("https", 0);
    if (strcmp(scen_server, "script") == 0) return info_port(scen_name, 1);
    if (strcmp(scen_server, "closed") == 0) { /* a port nothing listens on */
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t l = sizeof a;
        if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 || getsockname(s, (struct sockaddr *)&a, &l) != 0) {
            if (s >= 0) close(s);
            return 0;
        }
        close(s);
        return ntohs(a.sin_port);
    }
    return 0;
}

/* The options with every "{ca}" replaced by the test CA's path (GM_SCEN_INFO's
 * "ca"); the caller frees the result. */
static char *with_ca(const char *opts) {
    const char *info = getenv("GM_SCEN_INFO"), *p = info ? strstr(info, "\"ca\":\"") : NULL;
    char ca[512] = "";
    if (p) {
        p += strlen("\"ca\":\"");
        size_t n = strcspn(p, "\"");
        snprintf(ca, sizeof ca, "%.*s", (int)n, p);
    }
    size_t cap = strlen(opts) + 1, o = 0;
    for (const char *q = opts; (q = strstr(q, "{ca}")); q += 4) cap += strlen(ca);
    char *out = malloc(cap);
    for (const char *q = opts; *q;) {
        if (strncmp(q, "{ca}", 4) == 0) {
            memcpy(out + o, ca, strlen(ca));
            o += strlen(ca);
            q += 4;
        } else {
            out[o++] = *q++;
        }
    }
    out[o] = 0;
    return out;
}

/* ------------------------------------------------------------ calls */

static int collect_headers(const rec *r, gm_header *hs, int max) {
    int n = 0;
    for (int i = 0; i < r->nf && n < max; i++) {
        if (strcmp(r->f[i].k, "hn") == 0 && i + 1 < r->nf && strcmp(r->f[i + 1].k, "hv") == 0) {
            hs[n].name = r->f[i].v;
            hs[n].name_len = r->f[i].n;
            hs[n].value = r->f[i + 1].v;
            hs[n].value_len = r->f[i + 1].n;
            n++;
        }
    }
    return n;
}

static int ws_op(const char *s) {
    if (!s) return 0;
    if (!strcmp(s, "text")) return GM_WS_TEXT;
    if (!strcmp(s, "binary")) return GM_WS_BINARY;
    if (!strcmp(s, "close")) return GM_WS_CLOSE;
    if (!strcmp(s, "ping")) return GM_WS_PING;
    if (!strcmp(s, "pong")) return GM_WS_PONG;
    return 0;
}

/* Runs one call; returns its status code, or 1 for a scenario error. */
static int do_call(const rec *r) {
    const char *call = get(r, "call");
    const char *ref = get(r, "ref");
    gm_conn *c = conn_of(get(r, "conn"));
    gm_header hs[32];
    int nh = collect_headers(r, hs, 32);
    gm_ref id = 0;
    int rc;
    if (!call) return 1;
    if (strcmp(call, "open") == 0) {
        const char *opts = get(r, "options");
        int port = scenario_port();
        if (port == 0) return fail("no port for server %s", scen_server), 1;
        snprintf(authority, sizeof authority, "127.0.0.1:%d", port);
        gm_conn *nc = NULL;
        char *o = with_ca(opts ? opts : scen_options);
        rc = gm_open(queue_of(get(r, "queue")), "127.0.0.1", port, o, &nc);
        free(o);
        if (rc == GM_OK && nconns < 16) {
            const char *n = get(r, "conn");
            snprintf(conns[nconns].name, sizeof conns[nconns].name, "%s", n ? n : "c");
            conns[nconns++].c = nc;
        }
        return rc;
    }
    if (!c) return fail("no connection opened"), 1;
    if (strcmp(call, "request") == 0) {
        const field *body = getf(r, "body");
        gm_req_opts o = {.size = sizeof o, .timeout_ms = geti(r, "timeout_ms", 0), .flow = geti(r, "flow", 0)};
        if (get(r, "reply_to")) o.reply_to = queue_of(get(r, "reply_to"));
        const char *m = get(r, "method");
        rc = gm_request(c, m ? m : "GET", get(r, "path") ? get(r, "path") : "", hs, (size_t)nh, body ? body->v : NULL,
                        body ? body->n : 0, geti(r, "stream", 0) ? GM_REQ_STREAM : 0, &o, &id);
        if (rc == GM_OK && ref) bind_ref(ref, id);
        return rc;
    }
    if (strcmp(call, "ws_upgrade") == 0) {
        gm_queue *to = get(r, "reply_to") ? queue_of(get(r, "reply_to")) : NULL;
        rc = gm_ws_upgrade_to(c, get(r, "path") ? get(r, "path") : "", hs, (size_t)nh, NULL, to, &id);
        if (rc == GM_OK && ref) bind_ref(ref, id);
        return rc;
    }
    if (strcmp(call, "ping") == 0) {
        rc = gm_ping(c, &id);
        if (rc == GM_OK && ref) bind_ref(ref, id);
        return rc;
    }
    if (strcmp(call, "set_owner") == 0) return gm_set_owner(c, queue_of(get(r, "queue")));
    if (strcmp(call, "shutdown") == 0) return gm_shutdown(c);
    if (strcmp(call, "close") == 0) return gm_close(c);
    if (strcmp(call, "flush") == 0) { /* a stream's events, or else the connection's */
        if (ref && !ref_of(ref, &id)) return fail("ref %s is not bound", ref), 1;
        rc = gm_flush(queue_of(get(r, "queue")), ref ? NULL : c, id);
        if (rc < 0) return rc;
        if (get(r, "dropped") && rc != geti(r, "dropped", 0))
            return fail("flush dropped %d events, want %d", rc, geti(r, "dropped", 0)), 1;
        return GM_OK;
    }
    if (ref && strcmp(ref, "-") == 0) id = 0; /* the raw protocol's stream */
    else if (!ref || !ref_of(ref, &id)) return fail("ref %s is not bound", ref ? ref : "(none)"), 1;
    if (strcmp(call, "data") == 0) {
        const field *d = getf(r, "data");
        return gm_data(c, id, d ? d->v : "", d ? d->n : 0, geti(r, "fin", 0));
    }
    if (strcmp(call, "cancel") == 0) return gm_cancel(c, id);
    if (strcmp(call, "update_flow") == 0) return gm_update_flow(c, id, geti(r, "n", 0));
    if (strcmp(call, "ws_send") == 0) {
        gm_ws_frame fs[16];
        int n = 0;
        for (int i = 0; i + 2 < r->nf && n < 16; i++) {
            if (strcmp(r->f[i].k, "fo") != 0) continue;
            fs[n] = (gm_ws_frame){.op = (uint32_t)ws_op(r->f[i].v), .data = r->f[i + 1].v, .len = r->f[i + 1].n,
                                  .code = (uint32_t)atoi(r->f[i + 2].v)};
            n++;
        }
        return gm_ws_send(c, id, fs, (size_t)n);
    }
    return fail("unknown call %s", call), 1;
}

/* ------------------------------------------------------------ events */

static const char *kind_names[] = {"", "up", "down", "exit", "inform", "response", "data", "trailers",
                                   "push", "error", "upgrade", "ws", "notify", "tunnel_up", "trace", "sse"};

typedef struct {
    const char *kind;
    gm_conn *conn;
    gm_ref ref, new_ref;
    int fin, status, code;
    char *protocol, *reason, *method, *uri;
    const char *op;
    int nh;
    char **hn, **hv;
    uint8_t *data;
    size_t len;
    int nk;
    gm_ref *killed;
} unit;

static char *dup0(const char *s) { return strdup(s ? s : ""); }

static unit *unit_of(const gm_event *ev) {
    unit *u = calloc(1, sizeof *u);
    u->kind = ev->kind <= GM_EV_SSE ? kind_names[ev->kind] : "?";
    u->conn = ev->conn;
    u->ref = ev->ref;
    u->new_ref = ev->new_ref;
    u->fin = ev->fin;
    u->status = ev->kind == GM_EV_WS ? 0 : ev->status;
    u->protocol = dup0(ev->protocol);
    u->reason = dup0(ev->reason);
    u->method = dup0(ev->method);
    u->uri = dup0(ev->uri);
    u->op = "";
    if (ev->kind == GM_EV_WS) {
        static const char *ops[] = {"", "text", "binary", "", "", "", "", "", "close", "ping", "pong"};
        u->op = ev->ws_opcode <= 10 ? ops[ev->ws_opcode] : "?";
        u->code = ev->ws_opcode == GM_WS_CLOSE ? ev->status : 0;
    }
    u->nh = (int)ev->n_headers;
    u->hn = calloc(ev->n_headers + 1, sizeof(char *));
    u->hv = calloc(ev->n_headers + 1, sizeof(char *));
    for (size_t i = 0; i < ev->n_headers; i++) {
        u->hn[i] = strndup(ev->headers[i].name, ev->headers[i].name_len);
        u->hv[i] = strndup(ev->headers[i].value, ev->headers[i].value_len);
    }
    u->len = ev->data_len;
    u->data = malloc(ev->data_len + 1);
    if (ev->data_len) memcpy(u->data, ev->data, ev->data_len);
    u->nk = (int)ev->n_killed;
    u->killed = calloc(ev->n_killed + 1, sizeof(gm_ref));
    for (size_t i = 0; i < ev->n_killed; i++) u->killed[i] = ev->killed[i];
    return u;
}

static void unit_free(unit *u) {
    if (!u) return;
    free(u->protocol), free(u->reason), free(u->method), free(u->uri);
    for (int i = 0; i < u->nh; i++) free(u->hn[i]), free(u->hv[i]);
    free(u->hn), free(u->hv), free(u->data), free(u->killed), free(u);
}

/* One expect block's group: a ref's events in an any_order block, or all. */
typedef struct {
    gm_ref key;
    int ne;
    const rec *exp[64];
    int nu;
    unit *units[64];
} group;

static int closed_at(const group *g, int i) {
    const unit *u = g->units[i];
    if (strcmp(u->kind, "data") != 0 || u->fin || i < g->nu - 1) return 1;
    if (i < g->ne) {
        const char *fin = get(g->exp[i], "fin"), *size = get(g->exp[i], "size");
        return fin && size && atoi(fin) == 0 && u->len >= (size_t)atoll(size);
    }
    return 0;
}

static void group_add(group *g, unit *u) {
    if (g->nu > 0 && strcmp(u->kind, "data") == 0) {
        unit *last = g->units[g->nu - 1];
        if (strcmp(last->kind, "data") == 0 && last->ref == u->ref && !closed_at(g, g->nu - 1)) {
            last->data = realloc(last->data, last->len + u->len + 1);
            memcpy(last->data + last->len, u->data, u->len);
            last->len += u->len;
            last->fin = u->fin;
            unit_free(u);
            return;
        }
    }
    if (g->nu < 64) g->units[g->nu++] = u;
    else unit_free(u);
}

static int group_complete(const group *g) {
    return g->nu > g->ne || (g->nu == g->ne && (g->nu == 0 || closed_at(g, g->nu - 1)));
}

static int match_ref(const char *name, gm_ref id) {
    gm_ref bound;
    char buf[32];
    if (!name) return 1;
    if (strcmp(name, "-") == 0) return id == 0;
    if (ref_of(name, &bound)) return bound == id;
    if (id == 0 || name_of(id, buf, sizeof buf) != buf) return 0; /* 0 or taken */
    bind_ref(name, id); /* a ref the server made (push) */
    return 1;
}

static int match(const rec *e, const unit *u) {
    const char *v;
    if (strcmp(get(e, "ev") ? get(e, "ev") : "", u->kind) != 0) return 0;
    if ((v = get(e, "name")) && (strcmp(u->kind, "trace") != 0 || strcmp(v, u->reason) != 0)) return 0;
    if (!match_ref(get(e, "ref"), u->ref) || !match_ref(get(e, "new_ref"), u->new_ref)) return 0;
    if ((v = get(e, "conn")) && conn_of(v) != u->conn) return 0;
    if ((v = get(e, "fin")) && atoi(v) != u->fin) return 0;
    if ((v = get(e, "status")) && atoi(v) != u->status) return 0;
    if ((v = get(e, "protocol")) && strcmp(v, u->protocol) != 0) return 0;
    if ((v = get(e, "reason")) && strncmp(u->reason, v, strlen(v)) != 0) return 0;
    if ((v = get(e, "method")) && strcmp(v, u->method) != 0) return 0;
    if ((v = get(e, "uri"))) {
        char want[512];
        const char *a = strstr(v, "{authority}");
        if (a) snprintf(want, sizeof want, "%.*s%s%s", (int)(a - v), v, authority, a + strlen("{authority}"));
        else snprintf(want, sizeof want, "%s", v);
        if (strcmp(want, u->uri) != 0) return 0;
    }
    if ((v = get(e, "op")) && strcmp(v, u->op) != 0) return 0;
    if ((v = get(e, "code")) && atoi(v) != u->code) return 0;
    for (int i = 0; i + 1 < e->nf; i++) {
        if (strcmp(e->f[i].k, "hn") != 0) continue;
        int found = 0;
        for (int j = 0; j < u->nh; j++)
            found |= strcmp(u->hn[j], e->f[i].v) == 0 && strcmp(u->hv[j], e->f[i + 1].v) == 0;
        if (!found) return 0;
    }
    if ((v = get(e, "size")) && (size_t)atoll(v) != u->len) return 0;
    const field *b = getf(e, "body");
    if (b && (b->n != u->len || memcmp(b->v, u->data, u->len) != 0)) return 0;
    if ((v = get(e, "sha256"))) {
        char hex[65];
        sha256_hex(u->data, u->len, hex);
        if (strcmp(hex, v) != 0) return 0;
    }
    if (get(e, "killed")) {
        int want = 0;
        for (int i = 0; i < e->nf; i++) {
            if (strcmp(e->f[i].k, "k") != 0) continue;
            gm_ref id;
            int found = 0;
            want++;
            if (ref_of(e->f[i].v, &id))
                for (int j = 0; j < u->nk; j++) found |= u->killed[j] == id;
            if (!found) return 0;
        }
        if (want != u->nk) return 0;
    }
    return 1;
}

static void render_exp(const rec *e, char *out, size_t n) {
    size_t o = 0;
    out[0] = 0;
    for (int i = 0; i < e->nf && o < n; i++) {
        const field *f = &e->f[i];
        if (strcmp(f->k, "ev") == 0) o += (size_t)snprintf(out + o, n - o, "%s", f->v);
        else if (strcmp(f->k, "fin") == 0) o += (size_t)snprintf(out + o, n - o, " %s", atoi(f->v) ? "fin" : "nofin");
        else if (strcmp(f->k, "hv") == 0 || strcmp(f->k, "killed") == 0) continue;
        else if (strcmp(f->k, "hn") == 0 && i + 1 < e->nf)
            o += (size_t)snprintf(out + o, n - o, " %s=%s", f->v, e->f[i + 1].v);
        else o += (size_t)snprintf(out + o, n - o, " %s=%.40s", f->k, f->v);
    }
}

static void render_unit(const unit *u, char *out, size_t n) {
    char b1[32], b2[32];
    size_t o = (size_t)snprintf(out, n, "%s", u->kind);
    if (u->ref && o < n) o += (size_t)snprintf(out + o, n - o, " %s", name_of(u->ref, b1, sizeof b1));
    if (u->new_ref && o < n) o += (size_t)snprintf(out + o, n - o, " new=%s", name_of(u->new_ref, b2, sizeof b2));
    if (o < n && (!strcmp(u->kind, "response") || !strcmp(u->kind, "data") || !strcmp(u->kind, "inform") ||
                  !strcmp(u->kind, "trailers") || !strcmp(u->kind, "sse")))
        o += (size_t)snprintf(out + o, n - o, " %s", u->fin ? "fin" : "nofin");
    if (u->status && o < n) o += (size_t)snprintf(out + o, n - o, " %d", u->status);
    if (*u->protocol && o < n) o += (size_t)snprintf(out + o, n - o, " %s", u->protocol);
    if (*u->op && o < n) o += (size_t)snprintf(out + o, n - o, " %s", u->op);
    if (!strcmp(u->op, "close") && o < n) o += (size_t)snprintf(out + o, n - o, " code=%d", u->code);
    if (*u->reason && o < n) o += (size_t)snprintf(out + o, n - o, " reason=\"%s\"", u->reason);
    if (*u->method && o < n) o += (size_t)snprintf(out + o, n - o, " %s %s", u->method, u->uri);
    if (!strcmp(u->kind, "down") && o < n) {
        o += (size_t)snprintf(out + o, n - o, " killed=[");
        for (int i = 0; i < u->nk && o < n; i++)
            o += (size_t)snprintf(out + o, n - o, "%s%s", i ? "," : "", name_of(u->killed[i], b1, sizeof b1));
        if (o < n) o += (size_t)snprintf(out + o, n - o, "]");
    }
    for (int i = 0; i < u->nh && o < n; i++)
        if (strncmp(u->hn[i], "date", 4) != 0) o += (size_t)snprintf(out + o, n - o, " %s=%s", u->hn[i], u->hv[i]);
    if ((!strcmp(u->kind, "data") || !strcmp(u->kind, "ws") || !strcmp(u->kind, "sse")) && o < n) {
        char hex[65];
        sha256_hex(u->data, u->len, hex);
        hex[12] = 0;
        o += (size_t)snprintf(out + o, n - o, " size=%zu \"%.*s%s\" sha256=%s", u->len, (int)(u->len > 32 ? 32 : u->len),
                              (const char *)u->data, u->len > 32 ? "..." : "", hex);
    }
}

/* Runs one expect block (E record r, events es[0..n-1]); 1 on a match. */
static int do_expect(int step, const rec *r, const rec *es, int n) {
    gm_queue *q = queue_of(get(r, "queue"));
    int any = geti(r, "any", 0);
    group *gs = calloc(64, sizeof *gs);
    int ng = 0, ok = 1, timed_out = 0;
    if (!any) {
        ng = 1;
        for (int i = 0; i < n && i < 64; i++) gs[0].exp[gs[0].ne++] = &es[i];
    } else {
        for (int i = 0; i < n; i++) {
            gm_ref id = 0;
            const char *rn = get(&es[i], "ref");
            if (rn && !ref_of(rn, &id)) {
                fail("step %d: ref %s of an any_order block is not bound", step, rn);
                free(gs);
                return 0;
            }
            int g = 0;
            while (g < ng && gs[g].key != id) g++;
            if (g == ng && ng < 64) gs[ng++].key = id;
            if (gs[g].ne < 64) gs[g].exp[gs[g].ne++] = &es[i];
        }
    }
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        int done = 1;
        for (int g = 0; g < ng; g++) done &= group_complete(&gs[g]);
        if (done) break;
        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        long left = WAIT_MS - ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
        gm_event *ev = NULL;
        if (left <= 0 || gm_queue_poll(q, &ev, 1, (int)left) != 1) {
            timed_out = 1;
            break;
        }
        unit *u = unit_of(ev);
        gm_event_free(ev);
        gm_ref key = any ? u->ref : 0;
        int g = 0;
        while (g < ng && gs[g].key != key) g++;
        if (g == ng) {
            if (ng == 64) {
                unit_free(u);
                continue;
            }
            gs[ng++].key = key; /* a ref this block does not expect */
        }
        group_add(&gs[g], u);
    }
    char lines[64][1200];
    int nl = 0;
    for (int g = 0; g < ng; g++) {
        char b[32];
        if (any && nl < 64) snprintf(lines[nl++], sizeof lines[0], "  ref %s:", name_of(gs[g].key, b, sizeof b));
        int m = gs[g].ne > gs[g].nu ? gs[g].ne : gs[g].nu;
        for (int i = 0; i < m; i++) {
            char e[512] = "(nothing)", a[600] = "(nothing)";
            int same = i < gs[g].ne && i < gs[g].nu && match(gs[g].exp[i], gs[g].units[i]);
            if (i < gs[g].ne) render_exp(gs[g].exp[i], e, sizeof e);
            if (i < gs[g].nu) render_unit(gs[g].units[i], a, sizeof a);
            ok &= same;
            if (nl < 64) snprintf(lines[nl++], sizeof lines[0], "  %sexpected %-50s got %s", same ? "  " : "! ", e, a);
        }
    }
    if (timed_out) ok = 0;
    if (!ok) {
        printf("step %d: expect block: %s (! marks a difference)\n", step, timed_out ? "incomplete after 10 s" : "mismatch");
        for (int i = 0; i < nl; i++) printf("%s\n", lines[i]);
    }
    for (int g = 0; g < ng; g++)
        for (int i = 0; i < gs[g].nu; i++) unit_free(gs[g].units[i]);
    free(gs);
    return ok;
}

/* ------------------------------------------------------------ main */

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (fread(b, 1, (size_t)n, f) != (size_t)n) n = 0;
    b[n] = 0;
    fclose(f);
    return b;
}

static void cleanup(void) {
    for (int i = 0; i < nconns; i++) gm_close(conns[i].c);
    for (int i = 0; i < nqueues; i++) {
        gm_event *evs[16];
        int n;
        while ((n = gm_queue_poll(queues[i].q, evs, 16, 0)) > 0) gm_events_free(evs, n);
    }
    for (int i = 0; i < nconns; i++) gm_conn_free(conns[i].c);
    for (int i = 0; i < nqueues; i++) gm_queue_free(queues[i].q);
    nconns = nqueues = 0;
}

int main(int argc, char **argv) {
    const char *path = getenv("GM_SCEN_FILE");
    char *text = path ? read_file(path) : NULL;
    if (!text) {
        fprintf(stderr, "scenarios: GM_SCEN_FILE (the flattened scenarios) is not set or unreadable\n");
        return 2;
    }
    int list = argc > 1 && strcmp(argv[1], "--list") == 0;
    const char *want = argc > 1 && !list ? argv[1] : NULL;
    if (!list && !want) {
        fprintf(stderr, "usage: scenarios --list | NAME\n");
        free(text);
        return 2;
    }
    /* Split into lines; collect the chosen scenario's records. */
    int cap = 256, nr = 0, in = 0, found = 0;
    rec *rs = malloc((size_t)cap * sizeof *rs);
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "S\t", 2) == 0) {
            char *name = line + 2;
            if (list) printf("%s\n", name);
            in = want && strcmp(name, want) == 0;
            found |= in;
            scen_name = in ? name : scen_name;
            continue;
        }
        if (!in) continue;
        if (nr == cap) rs = realloc(rs, (size_t)(cap *= 2) * sizeof *rs);
        parse_line(line, &rs[nr++]);
        if (strcmp(rs[nr - 1].type, "X") == 0) in = 0;
    }
    if (list || !found) {
        if (!found && !list) printf("no scenario %s\n0 passed, 1 failed\n", want);
        free(rs);
        free(text);
        return list ? 0 : 1;
    }
    int ok = 1, step = 0;
    const char *na = NULL;
    for (int i = 0; i < nr; i++) {
        rec *r = &rs[i];
        if (!strcmp(r->type, "server")) scen_server = r->f[0].v;
        else if (!strcmp(r->type, "O")) scen_options = r->f[0].v;
        else if (!strcmp(r->type, "na") && r->nf >= 2 && !strcmp(r->f[0].v, "c")) na = r->f[1].v;
    }
    if (na) {
        printf("scenario %s: n/a: %s\nn/a\n", scen_name, na);
        free(rs);
        free(text);
        return 0;
    }
    for (int i = 0; ok && i < nr; i++, step++) {
        rec *r = &rs[i];
        if ((!strcmp(r->type, "C") || !strcmp(r->type, "E")) && get(r, "na_c")) {
            printf("step %d: n/a: %s\n", step, get(r, "na_c"));
            if (!strcmp(r->type, "E")) i += geti(r, "n", 0);
            continue;
        }
        if (!strcmp(r->type, "C")) {
            int rc = do_call(r);
            const char *want_err = get(r, "error") ? get(r, "error") : "ok";
            if (rc == 1 || strcmp(err_class(rc), want_err) != 0) {
                printf("step %d (%s): got %s (%s), want %s\n", step, get(r, "call"), rc == 1 ? "a scenario error" : err_class(rc),
                       gm_errmsg(), want_err);
                ok = 0;
            }
        } else if (!strcmp(r->type, "E")) {
            int n = geti(r, "n", 0);
            if (i + n >= nr) {
                printf("truncated expect block\n");
                ok = 0;
                break;
            }
            ok = do_expect(step, r, &rs[i + 1], n);
            i += n;
        } else {
            step--; /* header records are not steps */
        }
    }
    /* Every event must have been expected. */
    for (int i = 0; ok && i < nqueues; i++) {
        gm_event *ev = NULL;
        while (gm_queue_poll(queues[i].q, &ev, 1, 0) == 1) {
            unit *u = unit_of(ev);
            char a[600];
            render_unit(u, a, sizeof a);
            printf("queue %s: unexpected event after the last expect: %s\n", queues[i].name, a);
            unit_free(u);
            gm_event_free(ev);
            ok = 0;
        }
    }
    printf("scenario %s: %s\n", scen_name, ok ? "passed" : "FAILED");
    cleanup();
    free(rs);
    free(text);
    printf("%d passed, %d failed\n", ok, !ok);
    return ok ? 0 : 1;
}
