/*
 * gunmetal_nif.c — the NIF under the Erlang module `gunmetal`.
 *
 * It loads libgunmetal.so (the Go engine) with dlopen from the same priv/
 * directory, turns Gun's calls into gm_* calls and turns the library's events
 * into Gun's message tuples, which it sends straight to the owner (or the
 * stream's reply_to) with enif_send.
 *
 * Moving parts
 *
 *   owner queues   One gm_queue per Erlang process that receives events (an
 *                  owner, or a reply_to of some request): queue <-> pid. The
 *                  pid is monitored (enif_monitor_process); when it dies its
 *                  queue is freed, which closes the connections it owns.
 *   dispatcher     One native thread: epoll over every queue's fd (they are
 *                  level-triggered eventfds), drains a ready queue in batches
 *                  of 256 with gm_queue_poll(timeout 0) and enif_sends each
 *                  event, as Gun's tuple, to the queue's pid. No scheduler
 *                  ever blocks on a queue.
 *   connections    A resource per connection, registered under the pid of its
 *                  light Erlang process (ConnPid, which is what Gun's API
 *                  takes) and under its gm_conn handle (what events carry).
 *                  ConnPid is monitored: when it dies the connection is closed
 *                  and the registry lets go; the destructor releases the
 *                  handle once (gm_conn_free).
 *   streams        A resource per stream. enif_make_resource of it is a real
 *                  Erlang reference (is_reference/1 is true), so StreamRef
 *                  behaves as Gun's make_ref(): matchable, comparable, usable
 *                  as a map key. Each connection maps gm_ref -> stream while
 *                  the stream lives, so events find their StreamRef.
 *   janitor        One native thread for teardown calls that may block
 *                  (gm_queue_free, gm_close, gm_conn_free: closing a TLS
 *                  socket can wait on a write): destructors and monitor
 *                  callbacks never call them directly.
 *
 * Loading the Go runtime: the library is dlopen'ed by path (never through the
 * dynamic linker at NIF load time) after the loading thread's CPU affinity is
 * widened to every CPU and asynchronous signals are blocked on it, so that a
 * BEAM started with scheduler binding (+sbt) does not pin the Go runtime to
 * one core, and the BEAM's signal handlers never run on Go threads. The
 * dispatcher and janitor threads are started in the same window. GOMAXPROCS
 * is Go's default (the CPU count, from the widened affinity) or the VM's
 * environment's: a Go c-shared library reads the environment the process
 * started with (the array after argv), so a setenv here would not reach it.
 * Neither library is ever unloaded (RTLD_NODELETE).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <erl_nif.h>

#include "gunmetal.h"

#define BATCH 256

/* ------------------------------------------------------------ the library */

static struct {
    __typeof__(gm_version) *version;
    __typeof__(gm_strerror) *strerror_;
    __typeof__(gm_errmsg) *errmsg;
    __typeof__(gm_event_free) *event_free;
    __typeof__(gm_events_free) *events_free;
    __typeof__(gm_queue_new) *queue_new;
    __typeof__(gm_queue_free) *queue_free;
    __typeof__(gm_queue_fd) *queue_fd;
    __typeof__(gm_queue_poll) *queue_poll;
    __typeof__(gm_open) *open;
    __typeof__(gm_open_unix) *open_unix;
    __typeof__(gm_close) *close;
    __typeof__(gm_shutdown) *shutdown;
    __typeof__(gm_conn_free) *conn_free;
    __typeof__(gm_set_owner) *set_owner;
    __typeof__(gm_request) *request;
    __typeof__(gm_data) *data;
    __typeof__(gm_cancel) *cancel;
    __typeof__(gm_update_flow) *update_flow;
    __typeof__(gm_info) *info;
    __typeof__(gm_stream_info) *stream_info;
    __typeof__(gm_tls_session_cache) *tls_session_cache;
    /* Optional: present once the WebSocket and HTTP/2 work lands. */
    void *ws_upgrade, *ws_send, *ws_send_nowait, *ping, *ping_tunnel;
    /* Optional: the cookie store's export and seed (gm_cookies_get/set). */
    void *cookies_get, *cookies_set;
    /* Issue 11: gm_data_v2 (the bytes of a call that went out) and gm_open_fd. */
    __typeof__(gm_data_v2) *data_v2;
    __typeof__(gm_open_fd) *open_fd;
    /* Optional: gm_connect (CONNECT tunnels). */
    void *connect;
} gm;

static void *gm_handle;

/* ------------------------------------------------------------ atoms */

static ERL_NIF_TERM A_ok, A_error, A_undefined, A_true, A_false, A_fin, A_nofin,
    A_gun_up, A_gun_down, A_gun_inform, A_gun_response, A_gun_data, A_gun_trailers,
    A_gun_push, A_gun_error, A_gun_upgrade, A_gun_ws, A_gun_notify, A_gun_tunnel_up,
    A_exit, A_noconn, A_queue, A_retry, A_unsupported, A_text, A_binary, A_close,
    A_ping, A_pong, A_infinity, A_ping_ack, A_nostream, A_stream_closed, A_conn_data,
    A_gun_sse, A_last_event_id, A_event_type, A_data;

static ERL_NIF_TERM mk_atom(ErlNifEnv *env, const char *s) {
    ERL_NIF_TERM a;
    if (enif_make_existing_atom(env, s, &a, ERL_NIF_LATIN1)) return a;
    return enif_make_atom(env, s);
}

static const char *code_name(int rc) {
    switch (rc) {
    case GM_EINVAL: return "einval";
    case GM_ENOMEM: return "enomem";
    case GM_ECLOSED: return "closed";
    case GM_ETIMEOUT: return "timeout";
    case GM_EOPTION: return "options";
    case GM_ENOSTREAM: return "nostream";
    case GM_ENOTUP: return "not_connected";
    case GM_EBADSTATE: return "badstate";
    case GM_EUNSUPPORTED: return "unsupported";
    case GM_ESTREAM: return "stream_error";
    case GM_EINTERNAL: return "internal";
    case GM_EQUEUE: return "closed";
    }
    return "unknown";
}

static ERL_NIF_TERM mk_bin(ErlNifEnv *env, const void *p, size_t n) {
    ERL_NIF_TERM t;
    unsigned char *d = enif_make_new_binary(env, n, &t);
    if (n) memcpy(d, p, n);
    return t;
}

/* The small payloads (DATA, WebSocket frames: 65 bytes to ARENA_PIECE) of
 * one batch of events share one buffer, a resource sized to what the batch
 * needs; each payload is a binary over its slice (enif_make_resource_binary)
 * and the buffer goes with the last of them. One allocation per batch
 * instead of one refc binary per event, made on the dispatcher thread and
 * freed on a scheduler's (delayed deallocation, the aux thread's work). As
 * with Gun, whose payloads are sub-binaries of what the socket read, a
 * payload kept keeps its batch's small payloads (never more than
 * ARENA_MAX) with it. At most 64 bytes: heap binaries, copied. */
#define ARENA_PIECE 1024
#define ARENA_MAX (64 << 10)
typedef struct {
    size_t cap, used;
    unsigned char data[];
} arena_t;

/* A payload as a binary: a slice of the batch's arena when it is one of
 * its small ones and there is room, else a binary of its own. */
static ERL_NIF_TERM payload_bin(ErlNifEnv *env, arena_t *a, const void *p, size_t n) {
    if (!a || !p || n <= 64 || n > ARENA_PIECE || a->cap - a->used < n) return mk_bin(env, p, n);
    unsigned char *d = a->data + a->used;
    memcpy(d, p, n);
    a->used += n;
    return enif_make_resource_binary(env, a, d, n);
}

static ERL_NIF_TERM mk_str(ErlNifEnv *env, const char *s) {
    return mk_bin(env, s ? s : "", s ? strlen(s) : 0);
}

/* {error, Code, Message} after a failing gm_* call on this thread. */
static ERL_NIF_TERM gm_err(ErlNifEnv *env, int rc) {
    const char *m = gm.errmsg ? gm.errmsg() : "";
    if (!m || !*m) m = gm.strerror_ ? gm.strerror_(rc) : "error";
    return enif_make_tuple3(env, A_error, mk_atom(env, code_name(rc)), mk_str(env, m));
}

/* ------------------------------------------------------------ u64 hash map */

typedef struct {
    uint64_t *keys; /* 0 = empty */
    void **vals;
    size_t cap, n;
} hmap;

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static void *hmap_get(hmap *m, uint64_t k) {
    if (!m->cap) return NULL;
    size_t mask = m->cap - 1, i = mix64(k) & mask;
    for (;;) {
        if (m->keys[i] == k) return m->vals[i];
        if (m->keys[i] == 0) return NULL;
        i = (i + 1) & mask;
    }
}

static int hmap_put(hmap *m, uint64_t k, void *v);

static int hmap_grow(hmap *m) {
    size_t ncap = m->cap ? m->cap * 2 : 16;
    hmap nm = {0};
    nm.keys = enif_alloc(ncap * sizeof *nm.keys);
    nm.vals = enif_alloc(ncap * sizeof *nm.vals);
    if (!nm.keys || !nm.vals) {
        if (nm.keys) enif_free(nm.keys);
        if (nm.vals) enif_free(nm.vals);
        return 0;
    }
    memset(nm.keys, 0, ncap * sizeof *nm.keys);
    nm.cap = ncap;
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i]) hmap_put(&nm, m->keys[i], m->vals[i]);
    if (m->keys) enif_free(m->keys);
    if (m->vals) enif_free(m->vals);
    *m = nm;
    return 1;
}

static int hmap_put(hmap *m, uint64_t k, void *v) {
    if ((m->n + 1) * 2 > m->cap && !hmap_grow(m)) return 0;
    size_t mask = m->cap - 1, i = mix64(k) & mask;
    while (m->keys[i] != 0 && m->keys[i] != k) i = (i + 1) & mask;
    if (m->keys[i] == 0) m->n++;
    m->keys[i] = k;
    m->vals[i] = v;
    return 1;
}

/* Removes k (backward-shift deletion); returns its value or NULL. */
static void *hmap_del(hmap *m, uint64_t k) {
    if (!m->cap) return NULL;
    size_t mask = m->cap - 1, i = mix64(k) & mask;
    while (m->keys[i] != k) {
        if (m->keys[i] == 0) return NULL;
        i = (i + 1) & mask;
    }
    void *v = m->vals[i];
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (m->keys[j] == 0) break;
        size_t home = mix64(m->keys[j]) & mask;
        /* can the entry at j move to the hole at i? */
        if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
            m->keys[i] = m->keys[j];
            m->vals[i] = m->vals[j];
            i = j;
        }
    }
    m->keys[i] = 0;
    m->vals[i] = NULL;
    m->n--;
    return v;
}

static void hmap_free(hmap *m) {
    if (m->keys) enif_free(m->keys);
    if (m->vals) enif_free(m->vals);
    memset(m, 0, sizeof *m);
}

/* ------------------------------------------------------------ objects */

typedef struct oq {
    gm_queue *q;
    ErlNifPid pid;
    ErlNifMutex *mu; /* drains, and any use of q, hold it */
    ErlNifMonitor mon;
    int fd;
    int dead;
    int null; /* the sink for events whose receiver is gone */
    struct oq *next_dead;
} oq_t;

typedef struct stream {
    uint64_t id;
    ErlNifPid reply_to;
    int has_reply_to;
    int pending; /* data chunks waiting in ConnPid (atomic) */
    int body_by_conn; /* request_big: ConnPid sends the whole body; data/4 may not */
    int ws; /* upgraded to WebSocket (under the conn's mu) */
    int tunnel; /* a CONNECT: its 2xx RESPONSE (fin) is followed by gun_tunnel_up */
    /* A stream made through a tunnel (req_opts/ws_opts tunnel): Gun's
     * StreamRef is the list [Tunnel..., Ref]. prefix holds the tunnel's
     * part (other streams' refs, never this one's: that would keep the
     * resource alive through its own env), in penv. */
    ErlNifEnv *penv;
    ERL_NIF_TERM prefix;
    /* A CONNECT's first gun_tunnel_up protocol ("http", "http2", "raw",
     * "socks"): what the next hop of a tunnel inside it is spoken to with
     * (stream_info's intermediaries). Written once by the dispatcher. */
    char tproto[16];
} stream_t;

typedef struct conn {
    gm_conn *h;
    ErlNifPid pid;   /* ConnPid */
    ErlNifPid owner; /* under mu */
    ErlNifMutex *mu; /* streams, killed, owner */
    /* Taken before mu by a stream event's delivery, from its lookup to its
     * send, and by cancel/2: once cancel/2 has dropped a stream nothing more
     * of it is sent. Apart from mu so that the request path (mu only,
     * briefly) never waits for a message to be built and sent. */
    ErlNifMutex *smu;
    ErlNifMonitor mon;
    hmap streams; /* gm_ref -> stream_t* (one reference each) */
    stream_t **killed; /* ended with ERROR "closed...": for DOWN's list */
    size_t nkilled, capkilled;
    int in_pid; /* in conns_by_pid: a reference, until ConnPid dies */
    int in_h;   /* in conns_by_h: a reference, until the handle is done */
    /* gm_request calls running without mu: an event for a stream that is
     * not in the map yet waits on cv for them, so the map is not locked
     * while a large body is copied into the library. Raised atomically
     * before the call (an event of the stream can only be taken after it),
     * lowered under mu, read under mu. */
    int inflight;
    ErlNifCond *cv;
    /* set_chain: the connection's content_handlers have a module of the
     * user's own, run by ConnPid; streams without req_opts content_handlers
     * reply to ConnPid (set once, before ConnPid is returned to anyone). */
    int chain;
    /* An HTTP/1.1 upgrade to raw whose request had a reply_to: the raw
     * stream's gun_data go there, as Gun starts gun_raw with the stream's
     * ReplyTo (under mu). */
    ErlNifPid raw_to;
    int has_raw_to;
} conn_t;

static ErlNifResourceType *RT_OQ, *RT_CONN, *RT_STREAM, *RT_ARENA;

static int arena_piece(const gm_event *ev) {
    return (ev->kind == GM_EV_DATA || ev->kind == GM_EV_WS) && ev->data && ev->data_len > 64 &&
           ev->data_len <= ARENA_PIECE;
}

/* The buffer for the small payloads of evs[0..n-1]; NULL when there are
 * none (or no memory: each payload then gets its own binary). */
static arena_t *arena_for(gm_event **evs, int n) {
    size_t need = 0;
    for (int i = 0; i < n && need < ARENA_MAX; i++)
        if (arena_piece(evs[i])) need += evs[i]->data_len;
    if (need == 0) return NULL;
    if (need > ARENA_MAX) need = ARENA_MAX;
    arena_t *a = enif_alloc_resource(RT_ARENA, sizeof *a + need);
    if (a) { a->cap = need; a->used = 0; }
    return a;
}

static ErlNifMutex *owners_mu;
static hmap owners; /* pid term -> oq_t* (a reference) */
static oq_t *null_oq;

/* Two indexes, each holding its own reference:
 *   conns_by_pid  ConnPid -> conn, for the API calls; until ConnPid dies.
 *   conns_by_h    gm_conn* -> conn, for events; until no event of the
 *                 connection can be marshalled any more: its EXIT was
 *                 taken from its owner's queue, or that queue was freed.
 * Only then is gm_conn_free called (by the destructor, via the janitor).
 * Freeing earlier is unsafe with libgunmetal 0.1.0: an event marshalled
 * after gm_conn_free takes a reference on the released handle, whose
 * address go-pointer may already have given to a newer connection (see
 * README, "library issues"). For the same reason every event of a
 * connection goes through its owner's queue (reply_to is routed here, not
 * by the library), and set_owner drains the old queue. */
static ErlNifRWLock *reg_lock;
static hmap conns_by_pid;
static hmap conns_by_h;

static int epfd = -1, wakefd = -1;
static ErlNifMutex *dead_mu;
static oq_t *dead_oqs; /* released by the dispatcher between batches */

static volatile long n_conns, n_streams, n_oqs; /* live objects, for leak tests */
static volatile long n_pending; /* data pieces waiting in a ConnPid, for leak tests */

/* ------------------------------------------------------------ janitor */

enum { J_QFREE, J_CLOSE, J_CONNFREE };
typedef struct job { int op; void *p; struct job *next; } job_t;
static ErlNifMutex *jmu;
static ErlNifCond *jcv;
static job_t *jhead, *jtail;

static void janitor_post(int op, void *p) {
    job_t *j = enif_alloc(sizeof *j);
    if (!j) { /* out of memory: do it here rather than leak */
        if (op == J_QFREE) gm.queue_free(p);
        else if (op == J_CLOSE) gm.close(p);
        else gm.conn_free(p);
        return;
    }
    j->op = op; j->p = p; j->next = NULL;
    enif_mutex_lock(jmu);
    if (jtail) jtail->next = j; else jhead = j;
    jtail = j;
    enif_cond_signal(jcv);
    enif_mutex_unlock(jmu);
}

static void *janitor(void *arg) {
    (void)arg;
    for (;;) {
        enif_mutex_lock(jmu);
        while (!jhead) enif_cond_wait(jcv, jmu);
        job_t *j = jhead;
        jhead = j->next;
        if (!jhead) jtail = NULL;
        enif_mutex_unlock(jmu);
        switch (j->op) {
        case J_QFREE: gm.queue_free(j->p); break;
        case J_CLOSE: gm.close(j->p); break;
        case J_CONNFREE: gm.conn_free(j->p); break;
        }
        enif_free(j);
    }
    return NULL;
}

/* ------------------------------------------------------------ resources */

static void oq_dtor(ErlNifEnv *env, void *obj) {
    (void)env;
    oq_t *o = obj;
    if (o->q) janitor_post(J_QFREE, o->q);
    if (o->mu) enif_mutex_destroy(o->mu);
    __atomic_sub_fetch(&n_oqs, 1, __ATOMIC_RELAXED);
}

static void wake_dispatcher(void) {
    uint64_t one = 1;
    ssize_t r = write(wakefd, &one, sizeof one);
    (void)r;
}

/* The receiving process died: free its queue (closing the connections it
 * owns, as Gun does when the owner dies), and let the dispatcher drop the
 * last reference once no batch can still point at it. */
static void oq_down(ErlNifEnv *env, void *obj, ErlNifPid *pid, ErlNifMonitor *mon) {
    (void)env; (void)pid; (void)mon;
    oq_t *o = obj;
    int owned = 0;
    enif_mutex_lock(owners_mu);
    if (hmap_get(&owners, (uint64_t)o->pid.pid) == o) {
        hmap_del(&owners, (uint64_t)o->pid.pid);
        owned = 1;
    }
    enif_mutex_unlock(owners_mu);
    gm_queue *q = NULL;
    enif_mutex_lock(o->mu);
    if (!o->dead) {
        o->dead = 1;
        epoll_ctl(epfd, EPOLL_CTL_DEL, o->fd, NULL);
        q = o->q;
        o->q = NULL;
    }
    enif_mutex_unlock(o->mu);
    if (q) {
        janitor_post(J_QFREE, q);
        /* Its connections' events (their EXIT included) are discarded with
         * the queue: their handles are done once J_QFREE has run, and the
         * janitor runs jobs in order. */
        conn_t **done = NULL;
        size_t nd = 0;
        enif_rwlock_rwlock(reg_lock);
        if (conns_by_h.n) done = enif_alloc(conns_by_h.n * sizeof *done);
        for (size_t i = 0; done && i < conns_by_h.cap; i++) {
            conn_t *c = conns_by_h.vals[i];
            if (!conns_by_h.keys[i]) continue;
            enif_mutex_lock(c->mu);
            int mine = enif_compare_pids(&c->owner, &o->pid) == 0;
            enif_mutex_unlock(c->mu);
            if (mine) done[nd++] = c;
        }
        for (size_t i = 0; i < nd; i++) {
            hmap_del(&conns_by_h, (uint64_t)(uintptr_t)done[i]->h);
            done[i]->in_h = 0;
        }
        enif_rwlock_rwunlock(reg_lock);
        for (size_t i = 0; i < nd; i++) enif_release_resource(done[i]);
        if (done) enif_free(done);
    }
    if (owned) {
        enif_mutex_lock(dead_mu);
        o->next_dead = dead_oqs;
        dead_oqs = o;
        enif_mutex_unlock(dead_mu);
        wake_dispatcher();
    }
}

static void stream_dtor(ErlNifEnv *env, void *obj) {
    (void)env;
    stream_t *s = obj;
    /* Pieces that died with their ConnPid (killed, or exited on the
     * connection's EXIT) are counted until the stream goes. */
    __atomic_sub_fetch(&n_pending, __atomic_load_n(&s->pending, __ATOMIC_ACQUIRE), __ATOMIC_RELAXED);
    __atomic_sub_fetch(&n_streams, 1, __ATOMIC_RELAXED);
    if (s->penv) enif_free_env(s->penv);
}

static void conn_clear_streams(conn_t *c) {
    for (size_t i = 0; i < c->streams.cap; i++)
        if (c->streams.keys[i]) enif_release_resource(c->streams.vals[i]);
    hmap_free(&c->streams);
    for (size_t i = 0; i < c->nkilled; i++) enif_release_resource(c->killed[i]);
    if (c->killed) enif_free(c->killed);
    c->killed = NULL;
    c->nkilled = c->capkilled = 0;
}

static void conn_dtor(ErlNifEnv *env, void *obj) {
    (void)env;
    conn_t *c = obj;
    conn_clear_streams(c);
    if (c->h) janitor_post(J_CONNFREE, c->h);
    if (c->mu) enif_mutex_destroy(c->mu);
    if (c->smu) enif_mutex_destroy(c->smu);
    if (c->cv) enif_cond_destroy(c->cv);
    __atomic_sub_fetch(&n_conns, 1, __ATOMIC_RELAXED);
}

/* ConnPid died (it exited after the EXIT event, or was killed): close the
 * connection and forget it. */
static void conn_down(ErlNifEnv *env, void *obj, ErlNifPid *pid, ErlNifMonitor *mon) {
    (void)env; (void)pid; (void)mon;
    conn_t *c = obj;
    int was = 0;
    enif_rwlock_rwlock(reg_lock);
    if (c->in_pid) {
        c->in_pid = 0;
        was = 1;
        hmap_del(&conns_by_pid, (uint64_t)c->pid.pid);
    }
    enif_rwlock_rwunlock(reg_lock);
    if (was) {
        janitor_post(J_CLOSE, c->h); /* before the destructor's J_CONNFREE: FIFO */
        enif_release_resource(c);
    }
}

/* ------------------------------------------------------------ lookups */

/* The process's queue, made on first use; a reference for the caller. For a
 * dead process: the null queue (its events are dropped). NULL when out of
 * memory. */
static oq_t *get_oq(ErlNifEnv *env, ErlNifPid *pid) {
    enif_mutex_lock(owners_mu);
    oq_t *o = hmap_get(&owners, (uint64_t)pid->pid);
    if (o) {
        enif_keep_resource(o);
        enif_mutex_unlock(owners_mu);
        return o;
    }
    o = enif_alloc_resource(RT_OQ, sizeof *o);
    if (!o) { enif_mutex_unlock(owners_mu); return NULL; }
    memset(o, 0, sizeof *o);
    __atomic_add_fetch(&n_oqs, 1, __ATOMIC_RELAXED);
    o->pid = *pid;
    o->mu = enif_mutex_create("gunmetal.oq");
    o->q = gm.queue_new();
    if (!o->mu || !o->q) {
        enif_mutex_unlock(owners_mu);
        enif_release_resource(o);
        return NULL;
    }
    o->fd = gm.queue_fd(o->q);
    if (enif_monitor_process(env, o, pid, &o->mon) != 0) {
        /* Not alive: nobody will ever read this queue. */
        enif_mutex_unlock(owners_mu);
        enif_release_resource(o); /* the destructor frees the queue */
        enif_keep_resource(null_oq);
        return null_oq;
    }
    struct epoll_event ee = {.events = EPOLLIN, .data.ptr = o};
    if (o->fd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, o->fd, &ee) != 0 ||
        !hmap_put(&owners, (uint64_t)pid->pid, o)) {
        enif_demonitor_process(env, o, &o->mon);
        enif_mutex_unlock(owners_mu);
        enif_release_resource(o);
        return NULL;
    }
    enif_keep_resource(o); /* the registry's, plus the caller's */
    enif_mutex_unlock(owners_mu);
    return o;
}

/* Takes o->mu for a call that passes o->q to the library. A queue found dead
 * under its lock is swapped for the null queue (locked instead). */
static oq_t *lock_live(oq_t *o) {
    enif_mutex_lock(o->mu);
    if (!o->dead && o->q) return o;
    enif_mutex_unlock(o->mu);
    enif_mutex_lock(null_oq->mu);
    return null_oq;
}

static conn_t *conn_by_pid(ErlNifEnv *env, ERL_NIF_TERM t) {
    ErlNifPid pid;
    if (!enif_get_local_pid(env, t, &pid)) return NULL;
    enif_rwlock_rlock(reg_lock);
    conn_t *c = hmap_get(&conns_by_pid, (uint64_t)pid.pid);
    if (c) enif_keep_resource(c);
    enif_rwlock_runlock(reg_lock);
    return c;
}

/* *alive: ConnPid is still there (Gun sends nothing once its process is
 * gone). */
static conn_t *conn_by_handle(gm_conn *h, int *alive) {
    enif_rwlock_rlock(reg_lock);
    conn_t *c = hmap_get(&conns_by_h, (uint64_t)(uintptr_t)h);
    if (c) {
        enif_keep_resource(c);
        *alive = c->in_pid;
    }
    enif_rwlock_runlock(reg_lock);
    return c;
}

/* The connection's handle is done (its EXIT was taken): drop the index. */
static void handle_done(conn_t *c) {
    int was = 0;
    enif_rwlock_rwlock(reg_lock);
    if (c->in_h) {
        c->in_h = 0;
        was = 1;
        hmap_del(&conns_by_h, (uint64_t)(uintptr_t)c->h);
    }
    enif_rwlock_rwunlock(reg_lock);
    if (was) enif_release_resource(c);
}

static stream_t *new_stream(uint64_t id, ErlNifPid *reply_to) {
    stream_t *s = enif_alloc_resource(RT_STREAM, sizeof *s);
    if (!s) return NULL;
    memset(s, 0, sizeof *s);
    __atomic_add_fetch(&n_streams, 1, __ATOMIC_RELAXED);
    s->id = id;
    if (reply_to) { s->reply_to = *reply_to; s->has_reply_to = 1; }
    return s;
}

/* The longest tunnel path a StreamRef list may have (tunnels in tunnels). */
#define MAX_TUNNEL_DEPTH 64

/* Gives s the tunnel part of its StreamRef (a proper list of references,
 * 1..MAX_TUNNEL_DEPTH long, checked by the caller). 0 when out of memory. */
static int stream_set_prefix(stream_t *s, ErlNifEnv *env, ERL_NIF_TERM prefix) {
    s->penv = enif_alloc_env();
    if (!s->penv) return 0;
    s->prefix = enif_make_copy(s->penv, prefix);
    return 1;
}

/* Gun's StreamRef of s: its reference, or [Tunnel..., Ref] inside a tunnel. */
static ERL_NIF_TERM stream_term(ErlNifEnv *env, stream_t *s) {
    ERL_NIF_TERM self = enif_make_resource(env, s);
    if (!s->penv) return self;
    ERL_NIF_TERM a[MAX_TUNNEL_DEPTH + 1], head, tail = enif_make_copy(env, s->prefix);
    unsigned n = 0;
    while (n < MAX_TUNNEL_DEPTH && enif_get_list_cell(env, tail, &head, &tail)) a[n++] = head;
    a[n++] = self;
    return enif_make_list_from_array(env, a, n);
}

/* ------------------------------------------------------------ terms */

static int is_ident(const char *s, size_t n) {
    if (n == 0 || n > 64) return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || ch == '_' || (i > 0 && ch >= '0' && ch <= '9'))) return 0;
    }
    return 1;
}

/* A reason string ("closed", "closed: econnreset", "protocol_error: ...")
 * as a term: the name is an atom (the library's names are a small fixed
 * set), the detail an atom when such an atom exists already (econnreset,
 * timeout...) and a binary otherwise: {closed, econnreset},
 * {protocol_error, <<"...">>}. */
static ERL_NIF_TERM reason_term(ErlNifEnv *env, const char *r) {
    if (!r || !*r) return A_undefined;
    const char *sep = strstr(r, ": ");
    size_t hn = sep ? (size_t)(sep - r) : strlen(r);
    ERL_NIF_TERM head;
    char buf[80];
    if (is_ident(r, hn)) {
        memcpy(buf, r, hn);
        buf[hn] = 0;
        head = enif_make_atom(env, buf);
    } else {
        return mk_str(env, r);
    }
    if (!sep) return head;
    const char *d = sep + 2;
    size_t dn = strlen(d);
    ERL_NIF_TERM detail;
    /* "tls_alert: unknown_ca: x509: ..." is OTP ssl's {tls_alert,
     * {unknown_ca, "..."}}: the alert's atom and a string. */
    const char *dsep = strstr(d, ": ");
    ERL_NIF_TERM alert;
    if (hn == 9 && memcmp(r, "tls_alert", 9) == 0 && dsep && is_ident(d, (size_t)(dsep - d)) &&
        enif_make_existing_atom_len(env, d, (size_t)(dsep - d), &alert, ERL_NIF_LATIN1))
        return enif_make_tuple2(env, head,
                                enif_make_tuple2(env, alert, enif_make_string(env, dsep + 2, ERL_NIF_LATIN1)));
    if (is_ident(d, dn) && enif_make_existing_atom_len(env, d, dn, &detail, ERL_NIF_LATIN1)) {
        /* detail is an existing atom */
    } else {
        detail = mk_bin(env, d, dn);
    }
    return enif_make_tuple2(env, head, detail);
}

static ERL_NIF_TERM headers_term(ErlNifEnv *env, const gm_header *hs, size_t n) {
    ERL_NIF_TERM list = enif_make_list(env, 0);
    for (size_t i = n; i-- > 0;) {
        ERL_NIF_TERM t = enif_make_tuple2(env, mk_bin(env, hs[i].name, hs[i].name_len),
                                          mk_bin(env, hs[i].value, hs[i].value_len));
        list = enif_make_list_cell(env, t, list);
    }
    return list;
}

static ERL_NIF_TERM proto_term(ErlNifEnv *env, const char *p) {
    if (!p || !*p) return A_undefined;
    if (is_ident(p, strlen(p))) return enif_make_atom(env, p);
    return mk_str(env, p);
}

/* Looks the stream up and takes a reference for the caller. how: 0 leave
 * it, 1 the stream ends (drop it from the map), 2 it was killed with the
 * connection (keep it aside for DOWN's list). Called with c->mu held. */
static stream_t *stream_take(conn_t *c, uint64_t id, int how) {
    stream_t *s = how ? hmap_del(&c->streams, id) : hmap_get(&c->streams, id);
    if (!s) {
        for (size_t i = 0; i < c->nkilled; i++)
            if (c->killed[i]->id == id) { enif_keep_resource(c->killed[i]); return c->killed[i]; }
        return NULL;
    }
    if (how == 0) { enif_keep_resource(s); return s; }
    if (how == 2) {
        if (c->nkilled == c->capkilled) {
            size_t nc = c->capkilled ? c->capkilled * 2 : 8;
            if (nc > 4096 && c->nkilled >= 4096) { /* bound it: forget the oldest */
                enif_release_resource(c->killed[0]);
                memmove(c->killed, c->killed + 1, (c->nkilled - 1) * sizeof *c->killed);
                c->nkilled--;
            } else {
                stream_t **k = enif_realloc(c->killed, nc * sizeof *k);
                if (!k) return s; /* the map's reference becomes the caller's */
                c->killed = k;
                c->capkilled = nc;
            }
        }
        c->killed[c->nkilled++] = s;
        enif_keep_resource(s);
    }
    return s; /* how == 1: the map's reference is now the caller's */
}

static int ends_stream(const gm_event *ev) {
    switch (ev->kind) {
    case GM_EV_RESPONSE: case GM_EV_DATA: case GM_EV_SSE: return ev->fin;
    case GM_EV_TRAILERS: case GM_EV_ERROR: return 1;
    case GM_EV_TUNNEL_UP: return ev->ref != 0; /* a CONNECT's last message */
    case GM_EV_NOTIFY: return ev->reason && strcmp(ev->reason, "ping_ack") == 0;
    }
    return 0;
}

static ERL_NIF_TERM ws_frame_term(ErlNifEnv *env, const gm_event *ev, arena_t *arena) {
    ERL_NIF_TERM data = payload_bin(env, arena, ev->data, ev->data ? ev->data_len : 0);
    switch (ev->ws_opcode) {
    case GM_WS_TEXT: return enif_make_tuple2(env, A_text, data);
    case GM_WS_BINARY: return enif_make_tuple2(env, A_binary, data);
    case GM_WS_PING: return enif_make_tuple2(env, A_ping, data);
    case GM_WS_PONG: return enif_make_tuple2(env, A_pong, data);
    case GM_WS_CLOSE:
        if (ev->status == 0 && (!ev->data || ev->data_len == 0)) return A_close;
        return enif_make_tuple3(env, A_close, enif_make_int(env, ev->status), data);
    }
    return enif_make_tuple2(env, enif_make_int(env, ev->ws_opcode), data);
}

static ERL_NIF_TERM settings_term(ErlNifEnv *env, const gm_event *ev) {
    ERL_NIF_TERM m = enif_make_new_map(env);
    for (size_t i = 0; i < ev->n_headers; i++) {
        const gm_header *h = &ev->headers[i];
        ERL_NIF_TERM k = is_ident(h->name, h->name_len) ? enif_make_atom_len(env, h->name, h->name_len)
                                                         : mk_bin(env, h->name, h->name_len);
        char *end;
        long long v = strtoll(h->value, &end, 10);
        ERL_NIF_TERM val;
        if (h->value_len && *end == 0) val = enif_make_int64(env, v);
        else if (strcmp(h->value, "infinity") == 0) val = A_infinity;
        else if (strcmp(h->value, "true") == 0) val = A_true;
        else if (strcmp(h->value, "false") == 0) val = A_false;
        else val = mk_bin(env, h->value, h->value_len);
        enif_make_map_put(env, m, k, val, &m);
    }
    return m;
}

/* A TRACE event (gun_event callback) as {'$gunmetal_trace', Name, StreamRef
 * | undefined, ReplyTo, TsNs, Status, Details, Headers, Data} to ConnPid,
 * which calls the event handler (gunmetal.erl). Details are the ":"-named
 * headers as [{Key, Value}], Key an atom (the library's fixed set of Gun's
 * keys). A stream no longer known (cancelled) is undefined. Called with
 * o->mu held. */
static void trace_to_connpid(ErlNifEnv *caller_env, oq_t *o, conn_t *c, const gm_event *ev, ErlNifEnv *env) {
    ERL_NIF_TERM ref = A_undefined, reply_to = enif_make_pid(env, &o->pid);
    if (ev->ref) {
        enif_mutex_lock(c->mu);
        stream_t *s = stream_take(c, ev->ref, 0);
        while (!s && __atomic_load_n(&c->inflight, __ATOMIC_SEQ_CST) > 0) { /* a request still on its way into the map */
            while (__atomic_load_n(&c->inflight, __ATOMIC_SEQ_CST) > 0) enif_cond_wait(c->cv, c->mu);
            s = stream_take(c, ev->ref, 0);
        }
        enif_mutex_unlock(c->mu);
        if (s) {
            ref = stream_term(env, s); /* Gun's events name a tunnel's streams by their list too */
            if (s->has_reply_to) reply_to = enif_make_pid(env, &s->reply_to);
            enif_release_resource(s);
        }
    }
    size_t nd = 0;
    while (nd < ev->n_headers && ev->headers[nd].name_len > 1 && ev->headers[nd].name[0] == ':') nd++;
    ERL_NIF_TERM details = enif_make_list(env, 0);
    for (size_t i = nd; i-- > 0;) {
        const gm_header *h = &ev->headers[i];
        ERL_NIF_TERM k = is_ident(h->name + 1, h->name_len - 1)
                             ? enif_make_atom_len(env, h->name + 1, h->name_len - 1)
                             : mk_bin(env, h->name + 1, h->name_len - 1);
        details = enif_make_list_cell(env, enif_make_tuple2(env, k, mk_bin(env, h->value, h->value_len)), details);
    }
    const char *name = ev->reason ? ev->reason : "";
    ERL_NIF_TERM t[9] = {enif_make_atom(env, "$gunmetal_trace"),
                         is_ident(name, strlen(name)) ? enif_make_atom(env, name) : mk_str(env, name),
                         ref,
                         reply_to,
                         enif_make_int64(env, ev->size > offsetof(gm_event, ts_ns) ? ev->ts_ns : 0),
                         enif_make_int(env, ev->status),
                         details,
                         headers_term(env, ev->headers + nd, ev->n_headers - nd),
                         mk_bin(env, ev->data, ev->data ? ev->data_len : 0)};
    enif_send(caller_env, &c->pid, env, enif_make_tuple_from_array(env, t, 9));
}

/* Turns one event into Gun's message and sends it: connection events to
 * the queue's pid (the owner when the event was made), stream events to the
 * stream's reply_to. Called with o->mu held; caller_env is the calling
 * process's env, or NULL on the dispatcher thread. */
static void deliver(ErlNifEnv *caller_env, oq_t *o, const gm_event *ev, ErlNifEnv *env, arena_t *arena) {
    if (!ev->conn) return;
    int alive = 0;
    conn_t *c = conn_by_handle(ev->conn, &alive);
    if (!c) return;
    if (o->null) {
        /* A connection given to an owner that was already dead (set_owner):
         * its events are dropped, as Gun's would be, but its EXIT still
         * ends the handle. */
        if (ev->kind == GM_EV_EXIT) {
            enif_mutex_lock(c->mu);
            conn_clear_streams(c);
            enif_mutex_unlock(c->mu);
            handle_done(c);
        }
        enif_release_resource(c);
        return;
    }
    if (ev->kind == GM_EV_EXIT) {
        /* The connection's last event: nothing of it can be marshalled
         * any more. */
        enif_mutex_lock(c->mu);
        conn_clear_streams(c);
        enif_mutex_unlock(c->mu);
        handle_done(c);
    }
    if (!alive) { /* ConnPid is gone: Gun sends nothing after that */
        enif_release_resource(c);
        return;
    }
    ERL_NIF_TERM cp = enif_make_pid(env, &c->pid);
    ERL_NIF_TERM msg = 0, ref = A_undefined;
    ErlNifPid *to = &o->pid;
    stream_t *s = NULL;

    if (ev->kind == GM_EV_TRACE) { /* for the event handler, which ConnPid runs */
        trace_to_connpid(caller_env, o, c, ev, env);
        enif_clear_env(env);
        enif_release_resource(c);
        return;
    }

    int streamy = ev->kind != GM_EV_UP && ev->kind != GM_EV_DOWN && ev->kind != GM_EV_EXIT &&
                  !(ev->kind == GM_EV_ERROR && ev->ref == 0) &&
                  !(ev->kind == GM_EV_NOTIFY && ev->ref == 0);
    /* For a stream event, c->smu is held from the lookup to the send: once
     * cancel/2 has dropped the stream, nothing more of it is sent. c->mu
     * only around the map. */
    int locked = 0;
    if (streamy && ev->ref != 0) {
        int how = 0;
        if (ends_stream(ev)) {
            how = 1;
            if (ev->kind == GM_EV_ERROR && ev->reason && strncmp(ev->reason, "closed", 6) == 0) how = 2;
        }
        enif_mutex_lock(c->smu);
        locked = 1;
        enif_mutex_lock(c->mu);
        if (how == 1 && ev->kind == GM_EV_ERROR) {
            /* A WebSocket that fails (max_message_size, ws_error...) on
             * HTTP/1.1 takes the connection with it and DOWN lists it, as
             * after a close handshake (Gun #265): keep it aside for that
             * list. Over HTTP/2 no DOWN names it; the next DOWN drops it. */
            stream_t *w = hmap_get(&c->streams, ev->ref);
            if (w && w->ws) how = 2;
        }
        if (how == 1 && ev->kind == GM_EV_TUNNEL_UP) {
            /* An HTTP/2 tunnel is a stream that lives on (its raw DATA,
             * its end, cancel/2 and stream_info/2, requests naming it);
             * a SOCKS5 proxy at the end of a tunnel is followed by a
             * second gun_tunnel_up with the origin's protocol; raw through
             * an HTTP/1.1 CONNECT is a byte stream on the CONNECT's ref
             * (Gun's). Any other HTTP/1.1 CONNECT is over: the library no
             * longer knows it. */
            gm_event *si = NULL;
            if ((ev->protocol && (strcmp(ev->protocol, "socks") == 0 || strcmp(ev->protocol, "raw") == 0)) ||
                gm.stream_info(ev->conn, ev->ref, &si) == GM_OK)
                how = 0;
            if (si) gm.event_free(si);
        }
        if (how == 1 && ev->kind == GM_EV_RESPONSE && ev->status >= 200 && ev->status < 300) {
            /* A CONNECT's 2xx: the stream lives on for its gun_tunnel_up. */
            stream_t *t = hmap_get(&c->streams, ev->ref);
            if (t && t->tunnel) how = 0;
        }
        s = stream_take(c, ev->ref, how);
        /* Maybe a request still on its way into the map (see inflight). */
        while (!s && __atomic_load_n(&c->inflight, __ATOMIC_SEQ_CST) > 0) {
            while (__atomic_load_n(&c->inflight, __ATOMIC_SEQ_CST) > 0) enif_cond_wait(c->cv, c->mu);
            s = stream_take(c, ev->ref, how);
        }
        enif_mutex_unlock(c->mu);
        if (!s) goto out; /* cancelled or unknown: Gun sends nothing more for it */
        ref = stream_term(env, s);
        if (s->has_reply_to) to = &s->reply_to;
    }

    if (ev->ref == 0 && (ev->kind == GM_EV_DATA || ev->kind == GM_EV_NOTIFY || ev->kind == GM_EV_UP)) {
        enif_mutex_lock(c->mu);
        if (ev->kind == GM_EV_UP) c->has_raw_to = 0; /* a new connection: not upgraded */
        else if (c->has_raw_to) to = &c->raw_to; /* held in c, which outlives the send */
        enif_mutex_unlock(c->mu);
    }

    switch (ev->kind) {
    case GM_EV_UP:
        msg = enif_make_tuple3(env, A_gun_up, cp, proto_term(env, ev->protocol));
        break;
    case GM_EV_DOWN: {
        ERL_NIF_TERM killed = enif_make_list(env, 0);
        enif_mutex_lock(c->mu);
        for (size_t i = ev->n_killed; i-- > 0;) {
            stream_t *k = stream_take(c, ev->killed[i], 1);
            if (!k) continue;
            killed = enif_make_list_cell(env, stream_term(env, k), killed);
            enif_release_resource(k);
        }
        for (size_t i = 0; i < c->nkilled; i++) enif_release_resource(c->killed[i]);
        c->nkilled = 0;
        enif_mutex_unlock(c->mu);
        msg = enif_make_tuple5(env, A_gun_down, cp, proto_term(env, ev->protocol),
                               reason_term(env, ev->reason), killed);
        break;
    }
    case GM_EV_EXIT: {
        ERL_NIF_TERM r;
        if (ev->reason && strcmp(ev->reason, "shutdown") == 0) r = enif_make_atom(env, "shutdown");
        else if (ev->reason && strcmp(ev->reason, "normal") == 0) r = enif_make_atom(env, "normal");
        else if (ev->reason && strncmp(ev->reason, "owner_down", 10) == 0) r = enif_make_atom(env, "owner_down");
        else r = enif_make_tuple2(env, enif_make_atom(env, "shutdown"), reason_term(env, ev->reason));
        msg = enif_make_tuple2(env, A_exit, r);
        to = &c->pid;
        break;
    }
    case GM_EV_INFORM:
        msg = enif_make_tuple5(env, A_gun_inform, cp, ref, enif_make_int(env, ev->status),
                               headers_term(env, ev->headers, ev->n_headers));
        break;
    case GM_EV_RESPONSE: {
        ERL_NIF_TERM t[6] = {A_gun_response, cp, ref, ev->fin ? A_fin : A_nofin,
                             enif_make_int(env, ev->status), headers_term(env, ev->headers, ev->n_headers)};
        msg = enif_make_tuple_from_array(env, t, 6);
        break;
    }
    case GM_EV_DATA:
        msg = enif_make_tuple5(env, A_gun_data, cp, ref, ev->fin ? A_fin : A_nofin,
                               payload_bin(env, arena, ev->data, ev->data ? ev->data_len : 0));
        break;
    case GM_EV_TRAILERS:
        msg = enif_make_tuple4(env, A_gun_trailers, cp, ref, headers_term(env, ev->headers, ev->n_headers));
        break;
    case GM_EV_PUSH: {
        ErlNifPid *rt = s && s->has_reply_to ? &s->reply_to : NULL;
        stream_t *ns = new_stream(ev->new_ref, rt);
        if (!ns) goto out;
        /* Pushed inside a tunnel: its StreamRef is in the same tunnel. */
        if (s && s->penv && !stream_set_prefix(ns, s->penv, s->prefix)) {
            enif_release_resource(ns);
            goto out;
        }
        enif_mutex_lock(c->mu);
        int put = hmap_put(&c->streams, ev->new_ref, ns);
        enif_mutex_unlock(c->mu);
        if (!put) {
            enif_release_resource(ns);
            goto out;
        }
        ERL_NIF_TERM t[7] = {A_gun_push, cp, ref, stream_term(env, ns), mk_str(env, ev->method),
                             mk_str(env, ev->uri), headers_term(env, ev->headers, ev->n_headers)};
        msg = enif_make_tuple_from_array(env, t, 7);
        break;
    }
    case GM_EV_ERROR:
        if (ev->ref == 0) msg = enif_make_tuple3(env, A_gun_error, cp, reason_term(env, ev->reason));
        else msg = enif_make_tuple4(env, A_gun_error, cp, ref, reason_term(env, ev->reason));
        break;
    case GM_EV_UPGRADE: {
        const char *pr = ev->protocol ? ev->protocol : "websocket";
        ERL_NIF_TERM protos;
        if (strcmp(pr, "websocket") == 0) {
            enif_mutex_lock(c->mu);
            if (s) s->ws = 1;
            enif_mutex_unlock(c->mu);
            protos = enif_make_list1(env, mk_str(env, pr));
        } else {
            /* An upgrade to raw: Gun's Protocols is the 101's upgrade
             * tokens, which the library joins with ", ". */
            ERL_NIF_TERM toks[64];
            unsigned nt = 0;
            for (const char *b = pr; *b && nt < 64;) {
                const char *e = strstr(b, ", ");
                size_t len = e ? (size_t)(e - b) : strlen(b);
                toks[nt++] = mk_bin(env, b, len);
                b += len + (e ? 2 : 0);
            }
            protos = enif_make_list_from_array(env, toks, nt);
            if (s && s->has_reply_to) {
                enif_mutex_lock(c->mu);
                c->raw_to = s->reply_to;
                c->has_raw_to = 1;
                enif_mutex_unlock(c->mu);
            }
        }
        msg = enif_make_tuple5(env, A_gun_upgrade, cp, ref, protos, headers_term(env, ev->headers, ev->n_headers));
        break;
    }
    case GM_EV_WS:
        msg = enif_make_tuple4(env, A_gun_ws, cp, ref, ws_frame_term(env, ev, arena));
        break;
    case GM_EV_NOTIFY:
        if (ev->reason && strcmp(ev->reason, "ping_ack") == 0)
            msg = enif_make_tuple4(env, A_gun_notify, cp, A_ping_ack, ref);
        else if (ev->reason && strcmp(ev->reason, "settings_changed") == 0)
            msg = enif_make_tuple4(env, A_gun_notify, cp, enif_make_atom(env, "settings_changed"),
                                   settings_term(env, ev));
        else
            msg = enif_make_tuple4(env, A_gun_notify, cp, reason_term(env, ev->reason),
                                   headers_term(env, ev->headers, ev->n_headers));
        break;
    case GM_EV_TUNNEL_UP:
        if (s && !s->tproto[0] && ev->protocol && strlen(ev->protocol) < sizeof s->tproto) {
            enif_mutex_lock(c->mu);
            memcpy(s->tproto, ev->protocol, strlen(ev->protocol));
            __atomic_thread_fence(__ATOMIC_RELEASE);
            enif_mutex_unlock(c->mu);
        }
        msg = enif_make_tuple4(env, A_gun_tunnel_up, cp, ref, proto_term(env, ev->protocol));
        break;
    case GM_EV_SSE: {
        /* Gun's gun_sse_h: {gun_sse, ConnPid, StreamRef, Event | fin}, Event
         * as cow_sse's map: #{last_event_id, event_type, data} or, for an id
         * without data, #{last_event_id} alone. A retry without data or id
         * is not a message of Gun's (nor is the retry key): not sent. */
        ERL_NIF_TERM evt;
        const gm_header *id = NULL, *type = NULL;
        for (size_t i = 0; i < ev->n_headers; i++) {
            const gm_header *h = &ev->headers[i];
            if (h->name_len == 13 && memcmp(h->name, "last_event_id", 13) == 0) id = h;
            else if (h->name_len == 10 && memcmp(h->name, "event_type", 10) == 0) type = h;
        }
        if (ev->fin && ev->n_headers == 0) {
            evt = A_fin;
        } else if (type && id) {
            ERL_NIF_TERM k[3] = {A_last_event_id, A_event_type, A_data};
            ERL_NIF_TERM v[3] = {mk_bin(env, id->value, id->value_len), mk_bin(env, type->value, type->value_len),
                                 mk_bin(env, ev->data, ev->data ? ev->data_len : 0)};
            if (!enif_make_map_from_arrays(env, k, v, 3, &evt)) goto out;
        } else if (id) {
            evt = enif_make_new_map(env);
            enif_make_map_put(env, evt, A_last_event_id, mk_bin(env, id->value, id->value_len), &evt);
        } else {
            goto out;
        }
        msg = enif_make_tuple4(env, A_gun_sse, cp, ref, evt);
        break;
    }
    default:
        goto out;
    }
    enif_send(caller_env, to, env, msg);
out:
    if (locked) enif_mutex_unlock(c->smu);
    enif_clear_env(env);
    if (s) enif_release_resource(s);
    enif_release_resource(c);
}

/* ------------------------------------------------------------ dispatcher */

static char wake_token;

static void *dispatcher(void *arg) {
    (void)arg;
    ErlNifEnv *env = enif_alloc_env();
    gm_event *evs[BATCH];
    struct epoll_event ee[64];
    for (;;) {
        /* Released here, between batches: no batch in hand can point at
         * them (they left the epoll set before they were put here). */
        enif_mutex_lock(dead_mu);
        oq_t *d = dead_oqs;
        dead_oqs = NULL;
        enif_mutex_unlock(dead_mu);
        while (d) {
            oq_t *next = d->next_dead;
            enif_release_resource(d);
            d = next;
        }
        int n = epoll_wait(epfd, ee, 64, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            usleep(1000);
            continue;
        }
        for (int i = 0; i < n; i++) {
            if (ee[i].data.ptr == &wake_token) {
                uint64_t v;
                ssize_t r = read(wakefd, &v, sizeof v);
                (void)r;
                continue;
            }
            oq_t *o = ee[i].data.ptr;
            enif_mutex_lock(o->mu);
            if (!o->dead && o->q) {
                int k = gm.queue_poll(o->q, evs, BATCH, 0);
                arena_t *arena = k > 0 ? arena_for(evs, k) : NULL;
                for (int j = 0; j < k; j++) deliver(NULL, o, evs[j], env, arena);
                if (arena) enif_release_resource(arena); /* the binaries hold it now */
                /* One crossing into Go for the batch, not one per event. */
                if (k > 0) gm.events_free(evs, k);
            }
            enif_mutex_unlock(o->mu);
        }
    }
    return NULL;
}

/* ------------------------------------------------------------ argument helpers */

/* iodata -> NUL-terminated copy (enif_alloc'ed). NULL if not iodata. */
static char *cstr_of(ErlNifEnv *env, ERL_NIF_TERM t) {
    ErlNifBinary b;
    if (!enif_inspect_iolist_as_binary(env, t, &b)) return NULL;
    char *s = enif_alloc(b.size + 1);
    if (!s) return NULL;
    memcpy(s, b.data, b.size);
    s[b.size] = 0;
    return s;
}

/* cstr_of into buf (n bytes) when it fits, else enif_alloc'ed; release
 * with cstr_done. The request path's method and path: a charlist or a
 * binary, copied without the temporary binary and the allocation that
 * cstr_of costs per call. NULL if not iodata. */
static char *cstr_in(ErlNifEnv *env, ERL_NIF_TERM t, char *buf, size_t n) {
    ErlNifBinary b;
    if (enif_inspect_binary(env, t, &b)) {
        if (b.size < n) {
            memcpy(buf, b.data, b.size);
            buf[b.size] = 0;
            return buf;
        }
        return cstr_of(env, t);
    }
    /* A flat charlist (Gun's examples' "/path") that fits. */
    if (enif_get_string(env, t, buf, (unsigned)n, ERL_NIF_LATIN1) > 0) return buf;
    return cstr_of(env, t);
}

static void cstr_done(char *p, const char *buf) {
    if (p && p != buf) enif_free(p);
}

typedef struct {
    gm_header *hs;
    size_t n;
    char **names; /* lower-cased copies */
} hdrs_t;

static void hdrs_free(hdrs_t *h) {
    for (size_t i = 0; i < h->n; i++) if (h->names && h->names[i]) enif_free(h->names[i]);
    if (h->names) enif_free(h->names);
    if (h->hs) enif_free(h->hs);
    memset(h, 0, sizeof *h);
}

static int add_header(ErlNifEnv *env, hdrs_t *h, size_t i, ERL_NIF_TERM name, ERL_NIF_TERM value) {
    ErlNifBinary nb, vb;
    char *nm;
    size_t nl;
    if (enif_is_atom(env, name)) {
        unsigned len;
        if (!enif_get_atom_length(env, name, &len, ERL_NIF_LATIN1)) return 0;
        nm = enif_alloc(len + 1);
        if (!nm || !enif_get_atom(env, name, nm, len + 1, ERL_NIF_LATIN1)) { if (nm) enif_free(nm); return 0; }
        nl = len;
    } else {
        if (!enif_inspect_iolist_as_binary(env, name, &nb)) return 0;
        nm = enif_alloc(nb.size + 1);
        if (!nm) return 0;
        memcpy(nm, nb.data, nb.size);
        nm[nb.size] = 0;
        nl = nb.size;
    }
    for (size_t k = 0; k < nl; k++) if (nm[k] >= 'A' && nm[k] <= 'Z') nm[k] += 'a' - 'A';
    h->names[i] = nm;
    if (!enif_inspect_iolist_as_binary(env, value, &vb)) return 0;
    h->hs[i].name = nm;
    h->hs[i].name_len = nl;
    h->hs[i].value = (const char *)vb.data;
    h->hs[i].value_len = vb.size;
    return 1;
}

/* Gun's req_headers(): a list of {Name, Value} or a map; names are binaries,
 * strings or atoms (lower-cased, as Gun does), values iodata. */
static int get_headers(ErlNifEnv *env, ERL_NIF_TERM t, hdrs_t *h) {
    memset(h, 0, sizeof *h);
    size_t n;
    if (enif_is_map(env, t)) {
        if (!enif_get_map_size(env, t, &n)) return 0;
    } else {
        unsigned len;
        if (!enif_get_list_length(env, t, &len)) return 0;
        n = len;
    }
    if (n == 0) return 1;
    h->hs = enif_alloc(n * sizeof *h->hs);
    h->names = enif_alloc(n * sizeof *h->names);
    if (!h->hs || !h->names) { hdrs_free(h); return 0; }
    memset(h->names, 0, n * sizeof *h->names);
    h->n = n;
    if (enif_is_map(env, t)) {
        ErlNifMapIterator it;
        if (!enif_map_iterator_create(env, t, &it, ERL_NIF_MAP_ITERATOR_FIRST)) { hdrs_free(h); return 0; }
        size_t i = 0;
        ERL_NIF_TERM k, v;
        while (enif_map_iterator_get_pair(env, &it, &k, &v)) {
            if (i >= n || !add_header(env, h, i, k, v)) { enif_map_iterator_destroy(env, &it); hdrs_free(h); return 0; }
            i++;
            enif_map_iterator_next(env, &it);
        }
        enif_map_iterator_destroy(env, &it);
        return 1;
    }
    ERL_NIF_TERM head, tail = t;
    for (size_t i = 0; enif_get_list_cell(env, tail, &head, &tail); i++) {
        const ERL_NIF_TERM *el;
        int arity;
        if (!enif_get_tuple(env, head, &arity, &el) || arity != 2 || !add_header(env, h, i, el[0], el[1])) {
            hdrs_free(h);
            return 0;
        }
    }
    return 1;
}

static int has_header(const hdrs_t *h, const char *name) {
    size_t n = strlen(name);
    for (size_t i = 0; i < h->n; i++)
        if (h->hs[i].name_len == n && memcmp(h->hs[i].name, name, n) == 0) return 1; /* names are lower-cased */
    return 0;
}

/* Appends name: value (static strings, or the caller's, alive past the call). */
static int append_header(hdrs_t *h, const char *name, const char *value) {
    gm_header *hs = h->hs ? enif_realloc(h->hs, (h->n + 1) * sizeof *hs) : enif_alloc(sizeof *hs);
    if (!hs) return 0;
    h->hs = hs;
    char **names = h->names ? enif_realloc(h->names, (h->n + 1) * sizeof *names) : enif_alloc(sizeof *names);
    if (!names) return 0;
    h->names = names;
    h->names[h->n] = NULL; /* not ours to free */
    h->hs[h->n].name = name;
    h->hs[h->n].name_len = strlen(name);
    h->hs[h->n].value = value;
    h->hs[h->n].value_len = strlen(value);
    h->n++;
    return 1;
}

/* A StreamRef argument: *s is our stream (or NULL for a reference that is
 * not one of ours, or for `undefined`, which is stream 0: raw's). 0 when the
 * term is neither. */
static int get_stream_arg(ErlNifEnv *env, ERL_NIF_TERM t, stream_t **s, uint64_t *id) {
    *s = NULL;
    *id = 0;
    /* [Tunnel..., Ref] (a stream inside a tunnel): the stream is the last. */
    ERL_NIF_TERM head, tail = t;
    unsigned n = 0;
    if (enif_is_list(env, t) && !enif_is_empty_list(env, t)) {
        while (enif_get_list_cell(env, tail, &head, &tail)) {
            if (++n > MAX_TUNNEL_DEPTH || !enif_is_ref(env, head)) return 0;
            t = head;
        }
        if (!enif_is_empty_list(env, tail)) return 0;
    }
    if (enif_get_resource(env, t, RT_STREAM, (void **)s)) { *id = (*s)->id; return 1; }
    if (enif_is_identical(t, A_undefined)) return 1;
    if (enif_is_ref(env, t)) return 2; /* someone else's reference: ignored, as Gun ignores unknown refs */
    return 0;
}

/* A Tunnel argument (Gun's req_opts/ws_opts tunnel, made a list by
 * gunmetal.erl): `undefined` for none (*tid 0), else a proper list of
 * references [Tunnel...] whose last is the CONNECT stream (*tid its gm_ref,
 * *ts the stream). 1 ok; 0 not such a term (badarg); 2 the last is no
 * stream of ours (Gun: the stream cannot be found). */
static int get_tunnel_arg(ErlNifEnv *env, ERL_NIF_TERM t, uint64_t *tid, stream_t **ts) {
    *tid = 0;
    *ts = NULL;
    if (enif_is_identical(t, A_undefined)) return 1;
    if (!enif_is_list(env, t)) return 0;
    ERL_NIF_TERM head, tail = t, last = 0;
    unsigned n = 0;
    while (enif_get_list_cell(env, tail, &head, &tail)) {
        if (++n >= MAX_TUNNEL_DEPTH || !enif_is_ref(env, head)) return 0;
        last = head;
    }
    if (n == 0 || !enif_is_empty_list(env, tail)) return 0;
    if (!enif_get_resource(env, last, RT_STREAM, (void **)ts)) return 2;
    *tid = (*ts)->id;
    return 1;
}

/* The library refused a tunnel (GM_ENOSTREAM): Gun's two cases, told apart
 * as Gun does: a stream we still have that is no tunnel (up) yet, or one
 * that cannot be found. c->mu held. */
static ERL_NIF_TERM tunnel_refused(ErlNifEnv *env, conn_t *c, uint64_t tid, stream_t *ts) {
    if (ts && hmap_get(&c->streams, tid) == ts) return mk_atom(env, "not_a_tunnel");
    return A_nostream;
}

/* ------------------------------------------------------------ NIFs */

/* open(ConnPid, Host, Port, OptsJson) -> ok | {error, Code, Msg} (dirty I/O)
 * is_unix: 0 gm_open, 1 gm_open_unix, 2 gm_open_fd on a duplicate of the
 * fd argv[1] (open_fd(ConnPid, Fd, OptsJson)): the caller's fd belongs to
 * an Erlang socket, which closes it; the library takes and closes the copy. */
static ERL_NIF_TERM do_open(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[], int is_unix) {
    ErlNifPid connpid, self;
    int port = 0, fd = -1;
    if (!enif_get_local_pid(env, argv[0], &connpid) || !enif_self(env, &self)) return enif_make_badarg(env);
    if (!is_unix && !enif_get_int(env, argv[2], &port)) return enif_make_badarg(env);
    if (is_unix == 2 && (!enif_get_int(env, argv[1], &fd) || fd < 0)) return enif_make_badarg(env);
    char *where = is_unix == 2 ? cstr_of(env, enif_make_string(env, "fd", ERL_NIF_LATIN1)) : cstr_of(env, argv[1]);
    char *json = cstr_of(env, argv[argc - 1]);
    if (!where || !json) {
        if (where) enif_free(where);
        if (json) enif_free(json);
        return enif_make_badarg(env);
    }
    ERL_NIF_TERM ret;
    oq_t *o = get_oq(env, &self);
    if (!o) { ret = enif_make_tuple3(env, A_error, enif_make_atom(env, "enomem"), mk_str(env, "no queue")); goto done; }
    oq_t *lo = lock_live(o);
    gm_conn *h = NULL;
    int rc;
    if (lo->null) rc = GM_EQUEUE;
    else if (is_unix == 2) {
        int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (d < 0) {
            char m[128];
            snprintf(m, sizeof m, "fd %d cannot be duplicated: %s", fd, strerror(errno));
            ret = enif_make_tuple3(env, A_error, enif_make_atom(env, "einval"), mk_str(env, m));
            enif_mutex_unlock(lo->mu);
            enif_release_resource(o);
            goto done;
        }
        if ((rc = gm.open_fd(lo->q, d, json, &h)) != GM_OK) close(d); /* still ours on error */
    } else rc = is_unix ? gm.open_unix(lo->q, where, json, &h) : gm.open(lo->q, where, port, json, &h);
    if (rc != GM_OK) {
        ret = gm_err(env, rc);
        enif_mutex_unlock(lo->mu);
        enif_release_resource(o);
        goto done;
    }
    conn_t *c = enif_alloc_resource(RT_CONN, sizeof *c);
    if (!c) { gm.conn_free(h); ret = enif_make_tuple3(env, A_error, enif_make_atom(env, "enomem"), mk_str(env, "")); goto unlock; }
    memset(c, 0, sizeof *c);
    __atomic_add_fetch(&n_conns, 1, __ATOMIC_RELAXED);
    c->h = h;
    c->pid = connpid;
    c->owner = self;
    c->mu = enif_mutex_create("gunmetal.conn");
    c->smu = enif_mutex_create("gunmetal.conn_send");
    c->cv = enif_cond_create("gunmetal.conn");
    /* The handle index first (the allocation's reference): from now on the
     * handle is freed only once the connection is done. */
    enif_rwlock_rwlock(reg_lock);
    int okh = hmap_put(&conns_by_h, (uint64_t)(uintptr_t)h, c);
    if (okh) c->in_h = 1;
    enif_rwlock_rwunlock(reg_lock);
    if (!okh || !c->mu || !c->smu || !c->cv) {
        if (okh) { gm.close(h); goto unlock_noconn; } /* released at its EXIT */
        enif_release_resource(c);                      /* nothing was queued yet: */
        ret = enif_make_tuple3(env, A_error, enif_make_atom(env, "enomem"), mk_str(env, ""));
        goto unlock;
    }
    if (enif_monitor_process(env, c, &connpid, &c->mon) != 0) {
        gm.close(h);
        goto unlock_noconn;
    }
    enif_rwlock_rwlock(reg_lock);
    int okp = hmap_put(&conns_by_pid, (uint64_t)connpid.pid, c);
    if (okp) { c->in_pid = 1; enif_keep_resource(c); }
    enif_rwlock_rwunlock(reg_lock);
    if (!okp) {
        enif_demonitor_process(env, c, &c->mon);
        gm.close(h);
        goto unlock_noconn;
    }
    ret = A_ok;
    goto unlock;
unlock_noconn:
    ret = enif_make_tuple3(env, A_error, enif_make_atom(env, "noproc"), mk_str(env, "the connection process is not alive"));
unlock:
    enif_mutex_unlock(lo->mu);
    enif_release_resource(o);
done:
    enif_free(where);
    enif_free(json);
    return ret;
}

static ERL_NIF_TERM nif_open(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    return do_open(env, argc, argv, 0);
}

static ERL_NIF_TERM nif_open_unix(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    return do_open(env, argc, argv, 1);
}

static ERL_NIF_TERM nif_open_fd(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    return do_open(env, argc, argv, 2);
}

static void pending_inc(stream_t *s) {
    __atomic_add_fetch(&s->pending, 1, __ATOMIC_ACQ_REL);
    __atomic_add_fetch(&n_pending, 1, __ATOMIC_RELAXED);
}

static void pending_dec(stream_t *s) {
    __atomic_sub_fetch(&s->pending, 1, __ATOMIC_ACQ_REL);
    __atomic_sub_fetch(&n_pending, 1, __ATOMIC_RELAXED);
}

/* request(ConnPid, Method, Path, Headers, Body, IsStream, ReplyTo, Flow, Tunnel)
 *   -> StreamRef | noconn | nostream | not_a_tunnel | {error, Code, Msg}
 * Tunnel: undefined or [TunnelRef...] (see get_tunnel_arg); the StreamRef
 * is then Tunnel ++ [Ref], as Gun's.
 * ReplyTo is the process the stream's messages go to (Gun's default is the
 * caller). Flow: 0 for none.
 *
 * Bodies over 64 KiB go through request_big/8 (below) instead: flattening
 * an iolist and the library's copy of the body take about a millisecond
 * per 1-5 MB, far too long for a normal scheduler, and a 100 MB copy into
 * fresh Go memory stalled the VM's schedulers for 100-300 ms. gm_request
 * runs without c->mu held (see inflight). */
static ERL_NIF_TERM do_request(ErlNifEnv *env, const ERL_NIF_TERM argv[], int big) {
    ErlNifPid reply_to;
    int flow;
    ErlNifUInt64 big_size = 0;
    /* Flow, or {Flow, ContentHandlersJSON} (req_opts content_handlers,
     * checked and encoded by gunmetal.erl). */
    ERL_NIF_TERM flow_t = argv[7];
    ErlNifBinary chj = {0};
    int arity = 0;
    const ERL_NIF_TERM *tup;
    if (enif_get_tuple(env, argv[7], &arity, &tup)) {
        if (arity != 2 || !enif_inspect_binary(env, tup[1], &chj) || chj.size == 0 ||
            memchr(chj.data, 0, chj.size))
            return enif_make_badarg(env);
        flow_t = tup[0];
    }
    uint64_t tid;
    stream_t *ts;
    int tk = get_tunnel_arg(env, argv[8], &tid, &ts);
    if (!enif_is_pid(env, argv[0]) || !enif_get_local_pid(env, argv[6], &reply_to) ||
        !enif_get_int(env, flow_t, &flow) || flow < 0 || (big && !enif_get_uint64(env, argv[5], &big_size)) || !tk)
        return enif_make_badarg(env);
    if (tk == 2) return A_nostream;
    char *handlers = NULL;
    if (chj.size) {
        handlers = enif_alloc(chj.size + 1);
        if (!handlers) return enif_make_badarg(env);
        memcpy(handlers, chj.data, chj.size);
        handlers[chj.size] = 0;
    }
    int stream = big || enif_is_identical(argv[5], A_true);
    char method_buf[32], path_buf[512];
    char *method = cstr_in(env, argv[1], method_buf, sizeof method_buf);
    char *path = cstr_in(env, argv[2], path_buf, sizeof path_buf);
    ErlNifBinary body = {0};
    hdrs_t hs = {0};
    ERL_NIF_TERM ret;
    int got_body = stream ? 1 : enif_inspect_iolist_as_binary(env, argv[4], &body);
    if (!method || !path || !got_body || !get_headers(env, argv[3], &hs)) {
        ret = enif_make_badarg(env);
        goto out;
    }
    char cl_value[24];
    if (big && !has_header(&hs, "content-length")) {
        /* Sent as a streamed body: the content-length the library would
         * have added for it. */
        snprintf(cl_value, sizeof cl_value, "%llu", (unsigned long long)big_size);
        if (!append_header(&hs, "content-length", cl_value)) { ret = enif_make_badarg(env); goto out; }
    }
    conn_t *c = conn_by_pid(env, argv[0]);
    if (!c) { ret = A_noconn; goto out; }

    /* The connection's own content handler chain (set_chain) runs in
     * ConnPid: the stream's messages go there; the caller learns it from
     * {chain, StreamRef} and tells ConnPid the real reply_to. */
    int via_conn = c->chain && !chj.size;
    if (via_conn) reply_to = c->pid;
    /* reply_to is routed by the dispatcher (see conns_by_h), not given to
     * the library: every event of the connection stays in its owner's queue. */
    gm_req_opts ro = {.size = sizeof ro, .timeout_ms = 0, .flow = flow, .reply_to = NULL,
                      .content_handlers_json = handlers, .tunnel = tid};
    gm_ref id = 0;
    stream_t *body_for = NULL;
    __atomic_add_fetch(&c->inflight, 1, __ATOMIC_SEQ_CST);
    int rc = gm.request(c->h, method, path, hs.hs, hs.n, stream ? NULL : body.data, stream ? 0 : body.size,
                        stream ? GM_REQ_STREAM : 0, &ro, &id);
    enif_mutex_lock(c->mu);
    if (rc == GM_OK) {
        stream_t *s = new_stream(id, &reply_to);
        if (s && (!tid || stream_set_prefix(s, env, argv[8])) && hmap_put(&c->streams, id, s)) {
            ret = stream_term(env, s);
            if (via_conn) ret = enif_make_tuple2(env, enif_make_atom(env, "chain"), ret);
            if (big) {
                /* ConnPid sends the body, in pieces (see data_chunked), as
                 * Gun's process would: the call returns at once and the
                 * library never holds a copy of the whole body. Sent from
                 * here, so that the body goes even if the caller dies now. */
                s->body_by_conn = 1;
                pending_inc(s);
                body_for = s; /* sent below, once c->mu is released */
            }
        } else {
            if (s) enif_release_resource(s);
            gm.cancel(c->h, id);
            ret = enif_make_tuple3(env, A_error, enif_make_atom(env, "enomem"), mk_str(env, "out of memory"));
        }
    } else if (rc == GM_ENOSTREAM && tid) {
        ret = tunnel_refused(env, c, tid, ts);
    } else {
        ret = gm_err(env, rc);
    }
    if (__atomic_sub_fetch(&c->inflight, 1, __ATOMIC_SEQ_CST) == 0) enif_cond_broadcast(c->cv);
    enif_mutex_unlock(c->mu);
    if (body_for) {
        /* Copying the message (a deep iolist's cells) is not done under
         * c->mu; ret keeps the stream alive. */
        ERL_NIF_TERM m[4] = {A_conn_data, via_conn ? enif_make_resource(env, body_for) : ret, A_fin, argv[4]};
        if (!enif_send(env, &c->pid, NULL, enif_make_tuple_from_array(env, m, 4))) pending_dec(body_for);
    }
    enif_release_resource(c);
out:
    cstr_done(method, method_buf);
    cstr_done(path, path_buf);
    if (handlers) enif_free(handlers);
    hdrs_free(&hs);
    return ret;
}

static ERL_NIF_TERM nif_request(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    return do_request(env, argv, 0);
}

/* request_big(ConnPid, Method, Path, Headers, Body, Size, ReplyTo, Flow, Tunnel)
 * (dirty I/O): a body larger than gunmetal.erl's DIRTY_BODY. */
static ERL_NIF_TERM nif_request_big(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    return do_request(env, argv, 1);
}

/* connect(ConnPid, DestJson, Headers, ReplyTo, Flow, Tunnel)
 *   -> StreamRef | noconn | nostream | not_a_tunnel | {error, Code, Msg} | {error, unsupported}
 * Gun's gun:connect: a CONNECT to the destination (gunmetal.erl encodes
 * Gun's destination map as the JSON gm_connect takes). */
static ERL_NIF_TERM nif_connect(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    ErlNifPid reply_to;
    int flow;
    if (!gm.connect) return enif_make_tuple2(env, A_error, A_unsupported);
    uint64_t tid;
    stream_t *ts;
    int tk = get_tunnel_arg(env, argv[5], &tid, &ts);
    if (!enif_is_pid(env, argv[0]) || !enif_get_local_pid(env, argv[3], &reply_to) ||
        !enif_get_int(env, argv[4], &flow) || flow < 0 || !tk)
        return enif_make_badarg(env);
    if (tk == 2) return A_nostream;
    char *json = cstr_of(env, argv[1]);
    hdrs_t hs = {0};
    ERL_NIF_TERM ret;
    if (!json || !get_headers(env, argv[2], &hs)) { ret = enif_make_badarg(env); goto out; }
    conn_t *c = conn_by_pid(env, argv[0]);
    if (!c) { ret = A_noconn; goto out; }
    gm_req_opts ro = {.size = sizeof ro, .flow = flow, .tunnel = tid};
    gm_ref id = 0;
    /* Under mu: the stream is in the map before its first event is sent. */
    enif_mutex_lock(c->mu);
    int rc = ((__typeof__(gm_connect) *)gm.connect)(c->h, json, hs.hs, hs.n, &ro, &id);
    if (rc == GM_OK) {
        stream_t *s = new_stream(id, &reply_to);
        if (s && (!tid || stream_set_prefix(s, env, argv[5])) && hmap_put(&c->streams, id, s)) {
            s->tunnel = 1;
            ret = stream_term(env, s);
        } else {
            if (s) enif_release_resource(s);
            gm.cancel(c->h, id);
            ret = enif_make_tuple3(env, A_error, enif_make_atom(env, "enomem"), mk_str(env, "out of memory"));
        }
    } else if (rc == GM_ENOSTREAM && tid) ret = tunnel_refused(env, c, tid, ts);
    else ret = gm_err(env, rc);
    enif_mutex_unlock(c->mu);
    enif_release_resource(c);
out:
    if (json) enif_free(json);
    hdrs_free(&hs);
    return ret;
}

/* gm_data in pieces of DATA_CHUNK: the library copies what it is given and
 * then waits for the socket to drain, so a 100 MB piece would be a 100 MB
 * copy; this way its buffer stays small. GM_ENOTUP can only come first
 * (nothing was sent); later, the connection going down is GM_ECLOSED. */
#define DATA_CHUNK (1 << 20)
/* The bytes of the current data/5 call that went out (gm_data_v2's count,
 * summed over the pieces): raw's send timeout reports it (gen_tcp's
 * {timeout, RestData}). data/5 runs on one dirty scheduler thread. */
static __thread size_t data_bytes;
static int data_chunked(gm_conn *h, gm_ref id, const unsigned char *p, size_t n, int fin, int *sent) {
    size_t off = 0;
    do {
        size_t k = n - off > DATA_CHUNK ? DATA_CHUNK : n - off;
        int last = off + k == n;
        size_t went = 0;
        int rc = gm.data_v2(h, id, p + off, k, last ? fin : 0, &went);
        data_bytes += went;
        if (rc != GM_OK) return rc == GM_ENOTUP && *sent ? GM_ECLOSED : rc;
        if (k) *sent = 1;
        off += k;
    } while (off < n);
    return GM_OK;
}

/* Sends Data, any iodata (gunmetal.erl checked it with iolist_size/1), on a
 * dirty scheduler, without flattening it: large binaries are read where they
 * are, runs of small pieces are gathered into a 64 KiB buffer. The walk
 * keeps its own stack, so no nesting depth can overflow the C stack.
 * NOT_IOVEC for a term that is not iodata (what was before it went out). */
#define NOT_IOVEC (-10000)
#define GATHER (64 << 10)

typedef struct {
    gm_conn *h;
    gm_ref id;
    unsigned char *buf; /* GATHER bytes */
    size_t n;
    const unsigned char *big; /* a large binary not sent yet: it may be the last */
    size_t big_n;
    int sent, rc;
} sender_t;

static void snd_big_out(sender_t *S) {
    if (S->big && S->rc == GM_OK) S->rc = data_chunked(S->h, S->id, S->big, S->big_n, 0, &S->sent);
    S->big = NULL;
}

static void snd_buf_out(sender_t *S, int fin) {
    if (S->rc == GM_OK) S->rc = data_chunked(S->h, S->id, S->buf, S->n, fin, &S->sent);
    S->n = 0;
}

static void snd_bytes(sender_t *S, const unsigned char *p, size_t len) {
    if (S->rc != GM_OK || len == 0) return;
    if (len >= GATHER) {
        snd_big_out(S);
        if (S->n) snd_buf_out(S, 0);
        S->big = p;
        S->big_n = len;
        return;
    }
    snd_big_out(S);
    if (S->n + len > GATHER) snd_buf_out(S, 0);
    memcpy(S->buf + S->n, p, len);
    S->n += len;
}

static int data_term(ErlNifEnv *env, gm_conn *h, gm_ref id, ERL_NIF_TERM t, int fin) {
    ErlNifBinary b;
    int sent = 0;
    data_bytes = 0;
    if (enif_inspect_binary(env, t, &b)) return data_chunked(h, id, b.data, b.size, fin, &sent);
    sender_t S = {.h = h, .id = id, .rc = GM_OK};
    S.buf = enif_alloc(GATHER);
    size_t cap = 64, top = 0;
    ERL_NIF_TERM *stack = enif_alloc(cap * sizeof *stack);
    if (!S.buf || !stack) {
        if (S.buf) enif_free(S.buf);
        if (stack) enif_free(stack);
        return GM_ENOMEM;
    }
    stack[top++] = t;
    int bad = 0;
    while (top && S.rc == GM_OK) {
        ERL_NIF_TERM x = stack[--top], head, tail;
        unsigned char byte;
        int v;
        if (enif_inspect_binary(env, x, &b)) {
            snd_bytes(&S, b.data, b.size);
        } else if (enif_get_list_cell(env, x, &head, &tail)) {
            if (top + 2 > cap) {
                ERL_NIF_TERM *ns = enif_realloc(stack, cap * 2 * sizeof *stack);
                if (!ns) { S.rc = GM_ENOMEM; break; }
                stack = ns;
                cap *= 2;
            }
            stack[top++] = tail;
            if (enif_get_int(env, head, &v)) { /* a byte: only valid as a list element */
                if (v < 0 || v > 255) { bad = 1; break; }
                byte = (unsigned char)v;
                snd_bytes(&S, &byte, 1); /* < GATHER: copied into buf at once */
            } else {
                stack[top++] = head;
            }
        } else if (!enif_is_empty_list(env, x)) {
            bad = 1;
            break;
        }
    }
    if (!bad && S.rc == GM_OK) {
        if (S.n) {
            snd_big_out(&S);
            snd_buf_out(&S, fin);
        } else if (S.big) {
            const unsigned char *p = S.big;
            S.big = NULL;
            S.rc = data_chunked(h, id, p, S.big_n, fin, &S.sent);
        } else if (fin) {
            S.rc = data_chunked(h, id, NULL, 0, fin, &S.sent);
        }
    }
    enif_free(S.buf);
    enif_free(stack);
    if (bad) return S.sent ? GM_EINVAL : NOT_IOVEC;
    return S.rc;
}

/* data(ConnPid, StreamRef, IsFin, Data, FromConnPid) -> ok | queue | retry |
 * noconn | {error, Code, Msg}  (dirty I/O: gm_data blocks on a slow socket)
 *
 * A body sent before the connection is up (Gun postpones it) cannot go out
 * yet: the first such piece answers `queue` and the caller hands it to
 * ConnPid, which retries (FromConnPid = true) until it goes out (`retry`
 * while still not up). Pieces that follow a queued one are queued behind it,
 * so the body stays in order. */
static ERL_NIF_TERM nif_data(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    stream_t *s;
    uint64_t id;
    int k = get_stream_arg(env, argv[1], &s, &id);
    if (!enif_is_pid(env, argv[0]) || !k || !(enif_is_binary(env, argv[3]) || enif_is_list(env, argv[3])) ||
        !(enif_is_identical(argv[2], A_fin) || enif_is_identical(argv[2], A_nofin)))
        return enif_make_badarg(env);
    if (k == 2) return A_nostream; /* not one of ours: Gun cannot find it either */
    int fin = enif_is_identical(argv[2], A_fin);
    int from_conn = enif_is_identical(argv[4], A_true);
    conn_t *c = conn_by_pid(env, argv[0]);
    if (!c) return A_noconn;
    ERL_NIF_TERM ret;
    int live = 1;
    if (s && !from_conn) {
        /* A stream whose last message was sent (or that was cancelled) takes
         * no more body from the caller: Gun's "already been closed". What
         * ConnPid holds was accepted before, and the library says whether it
         * still wants it (an HTTP/1.1 connection needs the rest of a body
         * whose response came early, as Gun had sent it all at once). */
        enif_mutex_lock(c->mu);
        live = hmap_get(&c->streams, id) == s;
        enif_mutex_unlock(c->mu);
    }
    /* s is NULL for `undefined` (raw's byte stream, ref 0). */
    if (!live || (s && !from_conn && s->body_by_conn)) {
        if (from_conn) pending_dec(s);
        ret = A_stream_closed;
    } else if (!from_conn && s && __atomic_load_n(&s->pending, __ATOMIC_ACQUIRE) > 0) {
        pending_inc(s);
        ret = A_queue;
    } else {
        int rc = data_term(env, c->h, id, argv[3], fin);
        if (rc == NOT_IOVEC) {
            if (from_conn && s) pending_dec(s);
            enif_release_resource(c);
            return enif_make_badarg(env);
        }
        if (rc == GM_ENOTUP) {
            if (from_conn) ret = A_retry;
            else {
                if (s) pending_inc(s);
                ret = A_queue;
            }
        } else {
            if (from_conn && s) pending_dec(s);
            if (rc == GM_ETIMEOUT && !s) /* raw's send timeout: how much went out */
                ret = enif_make_tuple4(env, A_error, enif_make_atom(env, "timeout"),
                                       enif_make_uint64(env, data_bytes), mk_str(env, gm.errmsg()));
            else
                ret = rc == GM_OK ? A_ok : rc == GM_ENOSTREAM ? A_stream_closed : gm_err(env, rc);
        }
    }
    enif_release_resource(c);
    return ret;
}

/* A piece ConnPid gave up on (the connection closed): keep the count right. */
static ERL_NIF_TERM nif_data_dropped(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    stream_t *s;
    if (enif_get_resource(env, argv[0], RT_STREAM, (void **)&s)) pending_dec(s);
    return A_ok;
}

static ERL_NIF_TERM nif_cancel(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    stream_t *s;
    uint64_t id;
    int k = get_stream_arg(env, argv[1], &s, &id);
    if (!enif_is_pid(env, argv[0]) || !k) return enif_make_badarg(env);
    if (k == 2) return A_nostream; /* not one of ours: Gun cannot find it */
    if (!s) return A_ok;
    conn_t *c = conn_by_pid(env, argv[0]);
    if (!c) return A_ok;
    enif_mutex_lock(c->smu); /* a message of it being sent now goes first */
    enif_mutex_lock(c->mu);
    stream_t *old = hmap_get(&c->streams, id) == s ? hmap_del(&c->streams, id) : NULL;
    enif_mutex_unlock(c->mu);
    enif_mutex_unlock(c->smu);
    /* Not in the map: its last message was sent, or it was cancelled. */
    if (old) gm.cancel(c->h, id);
    if (old) enif_release_resource(old);
    enif_release_resource(c);
    return old ? A_ok : A_nostream;
}

static ERL_NIF_TERM nif_update_flow(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    stream_t *s;
    uint64_t id;
    int n;
    int k = get_stream_arg(env, argv[1], &s, &id);
    if (!enif_is_pid(env, argv[0]) || !k || !enif_get_int(env, argv[2], &n) || n <= 0) return enif_make_badarg(env);
    /* `undefined` (s NULL, id 0) is raw's byte stream: its flow is
     * gen_tcp's {active, N}. */
    if (k == 2) return A_ok;
    conn_t *c = conn_by_pid(env, argv[0]);
    if (!c) return A_ok;
    gm.update_flow(c->h, id, n);
    enif_release_resource(c);
    return A_ok;
}

/* close(ConnPid) / shutdown(ConnPid) -> ok | noconn  (dirty I/O) */
static ERL_NIF_TERM nif_close(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    if (!enif_is_pid(env, argv[0])) return enif_make_badarg(env);
    conn_t *c = conn_by_pid(env, argv[0]);
    if (!c) return A_noconn;
    gm.close(c->h);
    enif_release_resource(c);
    return A_ok;
}

static ERL_NIF_TERM nif_shutdown(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    if (!enif_is_pid(env, argv[0])) return enif_make_badarg(env);
    conn_t *c = conn_by_pid(env, argv[0]);
    if (!c) return A_noconn;
    gm.shutdown(c->h);
    enif_release_resource(c);
    return A_ok;
}

/* Delivers every event waiting in o (held locked by the caller). */
static void drain_locked(ErlNifEnv *caller_env, oq_t *o) {
    if (o->dead || !o->q) return;
    ErlNifEnv *menv = enif_alloc_env();
    gm_event *evs[BATCH];
    int k;
    while (menv && (k = gm.queue_poll(o->q, evs, BATCH, 0)) > 0) {
        arena_t *arena = arena_for(evs, k);
        for (int j = 0; j < k; j++) deliver(caller_env, o, evs[j], menv, arena);
        if (arena) enif_release_resource(arena);
        gm.events_free(evs, k);
        if (k < BATCH) break;
    }
    if (menv) enif_free_env(menv);
}

/* set_owner(ConnPid, Caller, NewOwner) -> ok | not_owner | noconn | {error, Code, Msg}
 *
 * The events already in the old owner's queue are delivered (to the old
 * owner, as Gun had sent them) before this returns: after it, the
 * connection's events only ever go to the new owner's queue. */
static ERL_NIF_TERM nif_set_owner(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    ErlNifPid caller, nowner;
    if (!enif_is_pid(env, argv[0]) || !enif_get_local_pid(env, argv[1], &caller) ||
        !enif_get_local_pid(env, argv[2], &nowner))
        return enif_make_badarg(env);
    conn_t *c = conn_by_pid(env, argv[0]);
    if (!c) return A_noconn;
    ERL_NIF_TERM ret;
    enif_mutex_lock(c->mu);
    int is_owner = enif_compare_pids(&caller, &c->owner) == 0;
    enif_mutex_unlock(c->mu);
    if (!is_owner) { enif_release_resource(c); return enif_make_atom(env, "not_owner"); }
    if (enif_compare_pids(&caller, &nowner) == 0) { enif_release_resource(c); return A_ok; }
    oq_t *old = get_oq(env, &caller); /* the caller owns it: it exists */
    oq_t *o = get_oq(env, &nowner);
    if (!o || !old) {
        if (o) enif_release_resource(o);
        if (old) enif_release_resource(old);
        enif_release_resource(c);
        return enif_make_tuple3(env, A_error, enif_make_atom(env, "enomem"), mk_str(env, ""));
    }
    /* The queue locks (old, new, and the null queue, which stands for a dead
     * new owner), each once, in address order. */
    oq_t *ls[3] = {old, o, null_oq};
    for (int i = 0; i < 3; i++)
        for (int j = i + 1; j < 3; j++)
            if (ls[j] < ls[i]) { oq_t *t = ls[i]; ls[i] = ls[j]; ls[j] = t; }
    for (int i = 0; i < 3; i++)
        if (i == 0 || ls[i] != ls[i - 1]) enif_mutex_lock(ls[i]->mu);
    /* A dead new owner (dead before the call, or since): Gun's connection
     * takes it, sees its 'DOWN' (noproc) and exits {shutdown, {owner_down,
     * noproc}}. Here the connection goes to the null queue (its events are
     * dropped) and ConnPid, monitoring the new owner, does the rest. */
    int to_null = o->null || o->dead || !o->q;
    int rc = gm.set_owner(c->h, to_null ? null_oq->q : o->q);
    if (rc == GM_OK) {
        enif_mutex_lock(c->mu);
        c->owner = nowner;
        enif_mutex_unlock(c->mu);
        ret = A_ok;
    } else {
        ret = gm_err(env, rc);
    }
    drain_locked(env, old);
    for (int i = 2; i >= 0; i--)
        if (i == 0 || ls[i] != ls[i - 1]) enif_mutex_unlock(ls[i]->mu);
    enif_release_resource(o);
    enif_release_resource(old);
    enif_release_resource(c);
    return ret;
}

/* owner(ConnPid) -> Pid | undefined */
static ERL_NIF_TERM nif_owner(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    conn_t *c = conn_by_pid(env, argv[0]);
    if (!c) return A_undefined;
    enif_mutex_lock(c->mu);
    ErlNifPid o = c->owner;
    enif_mutex_unlock(c->mu);
    enif_release_resource(c);
    return enif_make_pid(env, &o);
}

static ERL_NIF_TERM kv_list(ErlNifEnv *env, const gm_event *ev) {
    return headers_term(env, ev->headers, ev->n_headers);
}

/* info(ConnPid) -> {ok, [{Key, Value}]} | noconn | {error, Code, Msg} */
static ERL_NIF_TERM nif_info(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    if (!enif_is_pid(env, argv[0])) return enif_make_badarg(env);
    conn_t *c = conn_by_pid(env, argv[0]);
    if (!c) return A_noconn;
    gm_event *ev = NULL;
    int rc = gm.info(c->h, &ev);
    ERL_NIF_TERM ret = rc == GM_OK ? enif_make_tuple2(env, A_ok, kv_list(env, ev)) : gm_err(env, rc);
    if (ev) gm.event_free(ev);
    enif_release_resource(c);
    return ret;
}

/* set_chain(ConnPid) -> ok | noconn: see conn_t's chain. */
static ERL_NIF_TERM nif_set_chain(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    if (!enif_is_pid(env, argv[0])) return enif_make_badarg(env);
    conn_t *c = conn_by_pid(env, argv[0]);
    if (!c) return A_noconn;
    enif_mutex_lock(c->mu);
    c->chain = 1;
    enif_mutex_unlock(c->mu);
    enif_release_resource(c);
    return A_ok;
}

/* cookies_get(ConnPid) -> {ok, Json} | noconn | {error, Code, Msg}: the
 * cookie store as gm_cookies_get's JSON array (gunmetal.erl decodes it). */
static ERL_NIF_TERM nif_cookies_get(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    if (!enif_is_pid(env, argv[0])) return enif_make_badarg(env);
    if (!gm.cookies_get) return enif_make_tuple2(env, A_error, A_unsupported);
    conn_t *c = conn_by_pid(env, argv[0]);
    if (!c) return A_noconn;
    gm_event *ev = NULL;
    int rc = ((__typeof__(gm_cookies_get) *)gm.cookies_get)(c->h, &ev);
    ERL_NIF_TERM ret = rc == GM_OK
        ? enif_make_tuple2(env, A_ok, mk_bin(env, ev->data, ev->data ? ev->data_len : 0))
        : gm_err(env, rc);
    if (ev) gm.event_free(ev);
    enif_release_resource(c);
    return ret;
}

/* cookies_set(ConnPid, Json) -> ok | noconn | {error, Code, Msg}: seeds the
 * store (gm_cookies_set); Json is a binary, NUL-free. */
static ERL_NIF_TERM nif_cookies_set(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    ErlNifBinary b;
    if (!enif_is_pid(env, argv[0]) || !enif_inspect_binary(env, argv[1], &b)) return enif_make_badarg(env);
    if (memchr(b.data, 0, b.size)) return enif_make_badarg(env);
    if (!gm.cookies_set) return enif_make_tuple2(env, A_error, A_unsupported);
    char *json = enif_alloc(b.size + 1);
    if (!json) return enif_raise_exception(env, enif_make_atom(env, "enomem"));
    memcpy(json, b.data, b.size);
    json[b.size] = 0;
    conn_t *c = conn_by_pid(env, argv[0]);
    ERL_NIF_TERM ret = A_noconn;
    if (c) {
        int rc = ((__typeof__(gm_cookies_set) *)gm.cookies_set)(c->h, json);
        ret = rc == GM_OK ? A_ok : gm_err(env, rc);
        enif_release_resource(c);
    }
    enif_free(json);
    return ret;
}

/* stream_info(ConnPid, StreamRef) -> {ok, [{Key, Value}], ReplyTo} | nostream | noconn | {error, ...} */
static ERL_NIF_TERM nif_stream_info(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    stream_t *s;
    uint64_t id;
    int k = get_stream_arg(env, argv[1], &s, &id);
    if (!enif_is_pid(env, argv[0]) || !k) return enif_make_badarg(env);
    if (k == 2 || !s) return A_nostream;
    conn_t *c = conn_by_pid(env, argv[0]);
    if (!c) return A_noconn;
    gm_event *ev = NULL;
    int rc = gm.stream_info(c->h, id, &ev);
    ERL_NIF_TERM ret;
    if (rc == GM_OK)
        ret = enif_make_tuple3(env, A_ok, kv_list(env, ev),
                               s->has_reply_to ? enif_make_pid(env, &s->reply_to) : A_undefined);
    else if (rc == GM_ENOSTREAM)
        ret = A_nostream;
    else
        ret = gm_err(env, rc);
    if (ev) gm.event_free(ev);
    enif_release_resource(c);
    return ret;
}

/* tunnel_protocol(StreamRef) -> Protocol | undefined: the first
 * gun_tunnel_up protocol of a CONNECT stream (stream_info's intermediaries). */
static ERL_NIF_TERM nif_tunnel_protocol(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    stream_t *s;
    uint64_t id;
    int k = get_stream_arg(env, argv[0], &s, &id);
    if (!k) return enif_make_badarg(env);
    if (k != 1 || !s) return A_undefined;
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    char p[sizeof s->tproto];
    memcpy(p, s->tproto, sizeof p);
    p[sizeof p - 1] = 0;
    return p[0] && is_ident(p, strlen(p)) ? mk_atom(env, p) : A_undefined;
}

/* ---- WebSocket and ping: wired only when the library has them. ---- */

#ifdef GM_WIRE_WS
/* Built against a header that declares gm_ws_upgrade/gm_ws_send/gm_ping
 * (the Makefile compiles this file with -DGM_WIRE_WS first, and drops the
 * flag if that fails); used only when the loaded library has them. */
static ERL_NIF_TERM nif_ws_upgrade(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    ErlNifPid reply_to;
    if (!gm.ws_upgrade) return enif_make_tuple2(env, A_error, A_unsupported);
    uint64_t tid;
    stream_t *ts;
    int tk = get_tunnel_arg(env, argv[5], &tid, &ts);
    if (!enif_is_pid(env, argv[0]) || !enif_get_local_pid(env, argv[4], &reply_to) || !tk)
        return enif_make_badarg(env);
    if (tk == 2) return A_nostream;
    char *path = cstr_of(env, argv[1]);
    char *json = cstr_of(env, argv[3]);
    hdrs_t hs = {0};
    ERL_NIF_TERM ret;
    if (!path || !json || !get_headers(env, argv[2], &hs)) { ret = enif_make_badarg(env); goto out; }
    if (tid) {
        /* The library takes the tunnel in the upgrade's ws_opts JSON
         * (gunmetal.erl gives an object when there is a tunnel). */
        size_t jl = strlen(json);
        char *tj = jl >= 2 && json[0] == '{' ? enif_alloc(jl + 48) : NULL;
        if (!tj) { ret = enif_make_badarg(env); goto out; }
        snprintf(tj, jl + 48, "{\"tunnel\":%llu%s%s", (unsigned long long)tid,
                 json[1] == '}' ? "" : ",", json + 1);
        enif_free(json);
        json = tj;
    }
    conn_t *c = conn_by_pid(env, argv[0]);
    if (!c) { ret = A_noconn; goto out; }
    gm_ref id = 0;
    enif_mutex_lock(c->mu);
    int rc = ((__typeof__(gm_ws_upgrade) *)gm.ws_upgrade)(c->h, path, hs.hs, hs.n, *json ? json : NULL, &id);
    if (rc == GM_OK) {
        stream_t *s = new_stream(id, &reply_to);
        if (s && (!tid || stream_set_prefix(s, env, argv[5])) && hmap_put(&c->streams, id, s))
            ret = stream_term(env, s);
        else { if (s) enif_release_resource(s); ret = enif_make_tuple3(env, A_error, enif_make_atom(env, "enomem"), mk_str(env, "")); }
    } else if (rc == GM_ENOSTREAM && tid) ret = tunnel_refused(env, c, tid, ts);
    else ret = gm_err(env, rc);
    enif_mutex_unlock(c->mu);
    enif_release_resource(c);
out:
    if (path) enif_free(path);
    if (json) enif_free(json);
    hdrs_free(&hs);
    return ret;
}

/* ws_send(ConnPid, StreamRef, Frames) runs on a normal scheduler: small
 * frames go out through gm_ws_send_nowait, which never blocks; only when
 * the connection's output is past its bound (GM_EAGAIN, nothing sent) or
 * the frames are large (compressing them could take long) is the call
 * rescheduled as a dirty I/O NIF that waits in gm_ws_send. A dirty trip
 * per message cost most of W4's CPU (issue 16). */
#define WS_NOWAIT_MAX (64 * 1024)
static ERL_NIF_TERM ws_send_call(ErlNifEnv *env, const ERL_NIF_TERM argv[], int nowait);

static ERL_NIF_TERM nif_ws_send_dirty(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    return ws_send_call(env, argv, 0);
}

static ERL_NIF_TERM nif_ws_send(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    if (!gm.ws_send_nowait) return enif_schedule_nif(env, "ws_send", ERL_NIF_DIRTY_JOB_IO_BOUND, nif_ws_send_dirty, argc, argv);
    return ws_send_call(env, argv, 1);
}

static ERL_NIF_TERM ws_send_call(ErlNifEnv *env, const ERL_NIF_TERM argv[], int nowait) {
    stream_t *s;
    uint64_t id;
    unsigned n;
    if (!gm.ws_send) return enif_make_tuple2(env, A_error, A_unsupported);
    int k = get_stream_arg(env, argv[1], &s, &id);
    if (!enif_is_pid(env, argv[0]) || !k || !enif_get_list_length(env, argv[2], &n) || n > 65536)
        return enif_make_badarg(env);
    if (k == 2) return A_ok;
    /* On a normal scheduler only a little work: few frames, binaries (an
     * iolist is flattened by copying), at most WS_NOWAIT_MAX bytes. */
    if (nowait && n > 64) return enif_schedule_nif(env, "ws_send", ERL_NIF_DIRTY_JOB_IO_BOUND, nif_ws_send_dirty, 3, argv);
    size_t total = 0;
    gm_ws_frame *fs = enif_alloc((n ? n : 1) * sizeof *fs);
    if (!fs) return enif_make_badarg(env);
    memset(fs, 0, (n ? n : 1) * sizeof *fs);
    ERL_NIF_TERM head, tail = argv[2];
    for (unsigned i = 0; enif_get_list_cell(env, tail, &head, &tail); i++) {
        /* {Opcode, Code, Payload} as normalised by gunmetal.erl */
        const ERL_NIF_TERM *el;
        int ar, op, code;
        ErlNifBinary b;
        if (!enif_get_tuple(env, head, &ar, &el) || ar != 3 || !enif_get_int(env, el[0], &op) ||
            !enif_get_int(env, el[1], &code)) {
            enif_free(fs);
            return enif_make_badarg(env);
        }
        if (nowait && !enif_is_binary(env, el[2])) {
            enif_free(fs);
            return enif_schedule_nif(env, "ws_send", ERL_NIF_DIRTY_JOB_IO_BOUND, nif_ws_send_dirty, 3, argv);
        }
        if (!enif_inspect_iolist_as_binary(env, el[2], &b)) {
            enif_free(fs);
            return enif_make_badarg(env);
        }
        fs[i].op = (uint32_t)op;
        fs[i].code = (uint32_t)code;
        fs[i].data = b.data;
        fs[i].len = b.size;
        total += b.size;
    }
    if (nowait && total > WS_NOWAIT_MAX) {
        enif_free(fs);
        return enif_schedule_nif(env, "ws_send", ERL_NIF_DIRTY_JOB_IO_BOUND, nif_ws_send_dirty, 3, argv);
    }
    conn_t *c = conn_by_pid(env, argv[0]);
    ERL_NIF_TERM ret = A_noconn;
    if (c) {
        int rc = nowait ? ((__typeof__(gm_ws_send) *)gm.ws_send_nowait)(c->h, id, fs, n)
                        : ((__typeof__(gm_ws_send) *)gm.ws_send)(c->h, id, fs, n);
        enif_release_resource(c);
        if (nowait && rc == GM_EAGAIN) {
            enif_free(fs);
            return enif_schedule_nif(env, "ws_send", ERL_NIF_DIRTY_JOB_IO_BOUND, nif_ws_send_dirty, 3, argv);
        }
        ret = rc == GM_OK ? A_ok : gm_err(env, rc);
    }
    enif_free(fs);
    return ret;
}

/* ping(ConnPid, ReplyTo, Tunnel): Gun's ping/2; a tunnel pings the HTTP/2
 * server at its end (gm_ping_tunnel). The ping's ref is a plain reference
 * either way, as Gun's make_ref(). */
static ERL_NIF_TERM nif_ping(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    ErlNifPid reply_to;
    if (!gm.ping) return enif_make_tuple2(env, A_error, A_unsupported);
    uint64_t tid;
    stream_t *ts;
    int tk = get_tunnel_arg(env, argv[2], &tid, &ts);
    if (!enif_is_pid(env, argv[0]) || !enif_get_local_pid(env, argv[1], &reply_to) || !tk)
        return enif_make_badarg(env);
    if (tk == 2) return A_nostream;
    if (tid && !gm.ping_tunnel) return enif_make_tuple2(env, A_error, A_unsupported);
    conn_t *c = conn_by_pid(env, argv[0]);
    if (!c) return A_noconn;
    gm_ref id = 0;
    ERL_NIF_TERM ret;
    enif_mutex_lock(c->mu);
    int rc = tid ? ((int (*)(gm_conn *, gm_ref, gm_ref *))gm.ping_tunnel)(c->h, tid, &id)
                 : ((__typeof__(gm_ping) *)gm.ping)(c->h, &id);
    if (rc == GM_OK) {
        stream_t *s = new_stream(id, &reply_to);
        if (s && hmap_put(&c->streams, id, s)) ret = enif_make_resource(env, s);
        else { if (s) enif_release_resource(s); ret = enif_make_tuple3(env, A_error, enif_make_atom(env, "enomem"), mk_str(env, "")); }
    } else if (rc == GM_ENOSTREAM && tid) ret = tunnel_refused(env, c, tid, ts);
    else ret = gm_err(env, rc);
    enif_mutex_unlock(c->mu);
    enif_release_resource(c);
    return ret;
}
#else
static ERL_NIF_TERM nif_ws_upgrade(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc; (void)argv;
    return enif_make_tuple2(env, A_error, A_unsupported);
}
static ERL_NIF_TERM nif_ws_send(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc; (void)argv;
    return enif_make_tuple2(env, A_error, A_unsupported);
}
static ERL_NIF_TERM nif_ping(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc; (void)argv;
    return enif_make_tuple2(env, A_error, A_unsupported);
}
#endif

/* features() -> [atom()]: what the loaded library can do. */
static ERL_NIF_TERM nif_features(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc; (void)argv;
    ERL_NIF_TERM l = enif_make_list(env, 0);
#ifdef GM_WIRE_WS
    if (gm.ws_upgrade && gm.ws_send) l = enif_make_list_cell(env, enif_make_atom(env, "ws"), l);
    if (gm.ping) l = enif_make_list_cell(env, enif_make_atom(env, "ping"), l);
#endif
    return l;
}

/* tls_session_cache(Max, LifetimeMs): the process-wide TLS session cache's
 * bounds; gunmetal_nif:init/0 passes the ssl application's
 * session_cache_client_max and session_lifetime (seconds) at load. */
static ERL_NIF_TERM nif_tls_session_cache(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    int max;
    ErlNifSInt64 ms;
    if (!enif_get_int(env, argv[0], &max) || !enif_get_int64(env, argv[1], &ms)) return enif_make_badarg(env);
    int rc = gm.tls_session_cache(max, (int64_t)ms);
    return rc == GM_OK ? A_ok : gm_err(env, rc);
}

static ERL_NIF_TERM nif_version(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc; (void)argv;
    return mk_str(env, gm.version());
}

/* ---- exit reasons of connection processes that are gone ----
 *
 * ConnPid can exit before its caller monitors it (a refused connect with
 * retry => 0 fails in well under a millisecond), and a monitor set then
 * says only noproc. ConnPid notes its reason here as it exits, and await*
 * looks it up when its monitor says noproc. A ring of the last EXITS_MAX
 * exits: bounded whatever the number of connections. */
#define EXITS_MAX 1024
static struct {
    ErlNifPid pid;
    int used;
    ErlNifEnv *env;
    ERL_NIF_TERM reason;
} exits[EXITS_MAX];
static size_t exits_next;
static ErlNifMutex *exits_mu;

/* exit_note(Reason) -> ok, by ConnPid as it exits. */
static ERL_NIF_TERM nif_exit_note(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    ErlNifPid self;
    if (!enif_self(env, &self)) return enif_make_badarg(env);
    enif_mutex_lock(exits_mu);
    size_t i = exits_next;
    exits_next = (exits_next + 1) % EXITS_MAX;
    if (!exits[i].env) exits[i].env = enif_alloc_env();
    else enif_clear_env(exits[i].env);
    if (exits[i].env) {
        exits[i].pid = self;
        exits[i].used = 1;
        exits[i].reason = enif_make_copy(exits[i].env, argv[0]);
    } else {
        exits[i].used = 0;
    }
    enif_mutex_unlock(exits_mu);
    return A_ok;
}

/* exit_reason(Pid) -> {ok, Reason} | error */
static ERL_NIF_TERM nif_exit_reason(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc;
    ErlNifPid pid;
    if (!enif_get_local_pid(env, argv[0], &pid)) return enif_make_badarg(env);
    ERL_NIF_TERM ret = A_error;
    enif_mutex_lock(exits_mu);
    for (size_t i = 0; i < EXITS_MAX; i++)
        if (exits[i].used && enif_compare_pids(&exits[i].pid, &pid) == 0) {
            ret = enif_make_tuple2(env, A_ok, enif_make_copy(env, exits[i].reason));
            break;
        }
    enif_mutex_unlock(exits_mu);
    return ret;
}

/* stats() -> #{conns, streams, queues, registered, owners, handles, pending}:
 * live objects (leak tests). queues does not count the null queue. */
static ERL_NIF_TERM nif_stats(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) {
    (void)argc; (void)argv;
    enif_rwlock_rlock(reg_lock);
    size_t reg = conns_by_pid.n, handles = conns_by_h.n;
    enif_rwlock_runlock(reg_lock);
    enif_mutex_lock(owners_mu);
    size_t own = owners.n;
    enif_mutex_unlock(owners_mu);
    ERL_NIF_TERM m = enif_make_new_map(env);
    enif_make_map_put(env, m, enif_make_atom(env, "conns"), enif_make_long(env, __atomic_load_n(&n_conns, __ATOMIC_RELAXED)), &m);
    enif_make_map_put(env, m, enif_make_atom(env, "streams"), enif_make_long(env, __atomic_load_n(&n_streams, __ATOMIC_RELAXED)), &m);
    enif_make_map_put(env, m, enif_make_atom(env, "queues"), enif_make_long(env, __atomic_load_n(&n_oqs, __ATOMIC_RELAXED) - 1), &m);
    enif_make_map_put(env, m, enif_make_atom(env, "handles"), enif_make_uint64(env, handles), &m);
    enif_make_map_put(env, m, enif_make_atom(env, "pending"), enif_make_long(env, __atomic_load_n(&n_pending, __ATOMIC_RELAXED)), &m);
    enif_make_map_put(env, m, enif_make_atom(env, "registered"), enif_make_uint64(env, reg), &m);
    enif_make_map_put(env, m, enif_make_atom(env, "owners"), enif_make_uint64(env, own), &m);
    return m;
}

/* ------------------------------------------------------------ loading */

static int load_library(char *err, size_t errlen) {
    Dl_info self;
    if (!dladdr((void *)&load_library, &self) || !self.dli_fname) {
        snprintf(err, errlen, "dladdr failed");
        return 0;
    }
    /* Pin this NIF library: the dispatcher and janitor threads run its code
     * for the life of the VM. */
    dlopen(self.dli_fname, RTLD_NOW | RTLD_NODELETE | RTLD_NOLOAD);

    char path[4096];
    const char *over = getenv("GUNMETAL_LIBRARY");
    if (over && *over) {
        snprintf(path, sizeof path, "%s", over);
    } else {
        snprintf(path, sizeof path, "%s", self.dli_fname);
        char *slash = strrchr(path, '/');
        if (slash) slash[1] = 0; else path[0] = 0;
        strncat(path, "libgunmetal.so", sizeof path - strlen(path) - 1);
    }

    /* Widen this thread's CPU affinity and block asynchronous signals:
     * the Go runtime's threads (and ours) inherit both. */
    cpu_set_t old_aff, all;
    int have_old = sched_getaffinity(0, sizeof old_aff, &old_aff) == 0;
    CPU_ZERO(&all);
    long ncpu = sysconf(_SC_NPROCESSORS_CONF);
    if (ncpu < 1 || ncpu > CPU_SETSIZE) ncpu = CPU_SETSIZE;
    for (long i = 0; i < ncpu; i++) CPU_SET(i, &all);
    sched_setaffinity(0, sizeof all, &all);

    sigset_t block, old_mask;
    sigfillset(&block);
    /* synchronous signals, and the ones the Go runtime itself relies on */
    int keep[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGURG, SIGPIPE, SIGPROF};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) sigdelset(&block, keep[i]);
    pthread_sigmask(SIG_BLOCK, &block, &old_mask);

    int ok = 0;
    gm_handle = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!gm_handle) {
        snprintf(err, errlen, "dlopen %s: %s", path, dlerror());
        goto restore;
    }
#define SYM(field, name)                                                          \
    do {                                                                          \
        *(void **)(&gm.field) = dlsym(gm_handle, name);                           \
        if (!gm.field) { snprintf(err, errlen, "%s lacks %s", path, name); goto restore; } \
    } while (0)
    SYM(version, "gm_version");
    SYM(strerror_, "gm_strerror");
    SYM(errmsg, "gm_errmsg");
    SYM(event_free, "gm_event_free");
    SYM(events_free, "gm_events_free");
    SYM(queue_new, "gm_queue_new");
    SYM(queue_free, "gm_queue_free");
    SYM(queue_fd, "gm_queue_fd");
    SYM(queue_poll, "gm_queue_poll");
    SYM(open, "gm_open");
    SYM(open_unix, "gm_open_unix");
    SYM(close, "gm_close");
    SYM(shutdown, "gm_shutdown");
    SYM(conn_free, "gm_conn_free");
    SYM(set_owner, "gm_set_owner");
    SYM(request, "gm_request");
    SYM(data, "gm_data");
    SYM(cancel, "gm_cancel");
    SYM(update_flow, "gm_update_flow");
    SYM(tls_session_cache, "gm_tls_session_cache");
    SYM(info, "gm_info");
    SYM(stream_info, "gm_stream_info");
    SYM(data_v2, "gm_data_v2");
    SYM(open_fd, "gm_open_fd");
#undef SYM
    gm.ws_upgrade = dlsym(gm_handle, "gm_ws_upgrade");
    gm.ws_send = dlsym(gm_handle, "gm_ws_send");
    gm.ws_send_nowait = dlsym(gm_handle, "gm_ws_send_nowait");
    gm.ping = dlsym(gm_handle, "gm_ping");
    gm.ping_tunnel = dlsym(gm_handle, "gm_ping_tunnel");
    gm.cookies_get = dlsym(gm_handle, "gm_cookies_get");
    gm.cookies_set = dlsym(gm_handle, "gm_cookies_set");
    gm.connect = dlsym(gm_handle, "gm_connect");

    /* The first Go call waits for the runtime to be up (with the wide
     * affinity and the blocked signals it was started with). */
    null_oq = enif_alloc_resource(RT_OQ, sizeof *null_oq);
    if (!null_oq) { snprintf(err, errlen, "out of memory"); goto restore; }
    memset(null_oq, 0, sizeof *null_oq);
    __atomic_add_fetch(&n_oqs, 1, __ATOMIC_RELAXED);
    null_oq->null = 1;
    null_oq->mu = enif_mutex_create("gunmetal.null");
    null_oq->q = gm.queue_new();
    if (!null_oq->q) { snprintf(err, errlen, "gm_queue_new: %s", gm.errmsg()); goto restore; }
    null_oq->fd = gm.queue_fd(null_oq->q);

    epfd = epoll_create1(EPOLL_CLOEXEC);
    wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (epfd < 0 || wakefd < 0) { snprintf(err, errlen, "epoll/eventfd: %s", strerror(errno)); goto restore; }
    struct epoll_event we = {.events = EPOLLIN, .data.ptr = &wake_token};
    struct epoll_event ne = {.events = EPOLLIN, .data.ptr = null_oq};
    epoll_ctl(epfd, EPOLL_CTL_ADD, wakefd, &we);
    epoll_ctl(epfd, EPOLL_CTL_ADD, null_oq->fd, &ne);

    ErlNifTid t1, t2;
    ErlNifThreadOpts *topts = enif_thread_opts_create("gunmetal");
    if (topts) topts->suggested_stack_size = 256; /* KiB */
    if (enif_thread_create("gunmetal_dispatcher", &t1, dispatcher, NULL, topts) != 0 ||
        enif_thread_create("gunmetal_janitor", &t2, janitor, NULL, topts) != 0) {
        if (topts) enif_thread_opts_destroy(topts);
        snprintf(err, errlen, "cannot start threads");
        goto restore;
    }
    if (topts) enif_thread_opts_destroy(topts);
    ok = 1;

restore:
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    if (have_old) sched_setaffinity(0, sizeof old_aff, &old_aff);
    return ok;
}

static int on_load(ErlNifEnv *env, void **priv, ERL_NIF_TERM info) {
    (void)priv; (void)info;
#define ATOM(v, s) v = enif_make_atom(env, s)
    ATOM(A_ok, "ok"); ATOM(A_error, "error"); ATOM(A_undefined, "undefined");
    ATOM(A_true, "true"); ATOM(A_false, "false"); ATOM(A_fin, "fin"); ATOM(A_nofin, "nofin");
    ATOM(A_gun_up, "gun_up"); ATOM(A_gun_down, "gun_down"); ATOM(A_gun_inform, "gun_inform");
    ATOM(A_gun_response, "gun_response"); ATOM(A_gun_data, "gun_data"); ATOM(A_gun_trailers, "gun_trailers");
    ATOM(A_gun_push, "gun_push"); ATOM(A_gun_error, "gun_error"); ATOM(A_gun_upgrade, "gun_upgrade");
    ATOM(A_gun_ws, "gun_ws"); ATOM(A_gun_notify, "gun_notify"); ATOM(A_gun_tunnel_up, "gun_tunnel_up");
    ATOM(A_exit, "$gunmetal_exit"); ATOM(A_noconn, "noconn"); ATOM(A_queue, "queue"); ATOM(A_retry, "retry");
    ATOM(A_unsupported, "unsupported"); ATOM(A_text, "text"); ATOM(A_binary, "binary"); ATOM(A_close, "close");
    ATOM(A_ping, "ping"); ATOM(A_pong, "pong"); ATOM(A_infinity, "infinity"); ATOM(A_ping_ack, "ping_ack");
    ATOM(A_nostream, "nostream"); ATOM(A_stream_closed, "stream_closed");
    ATOM(A_conn_data, "$gunmetal_data");
    ATOM(A_gun_sse, "gun_sse"); ATOM(A_last_event_id, "last_event_id"); ATOM(A_event_type, "event_type");
    ATOM(A_data, "data");
    /* Names the library uses in reasons, so that details find them. */
    const char *names[] = {"closed", "normal", "shutdown", "econnrefused", "econnreset", "nxdomain", "timeout",
                           "closing", "owner_down", "protocol_error", "stream_error", "too_many_pending",
                           "too_many_streams", "badstate", "ehostunreach", "enetunreach", "etimedout", "epipe",
                           "eof", "tls_alert", "connection_error", "settings_timeout", "preface_timeout",
                           "goaway", "cancel", "http", "http2", "raw", "socks", "ws", "limit_reached",
                           /* OTP ssl's TLS alert names (core's reasonOf gives them) */
                           "close_notify", "unexpected_message", "bad_record_mac", "record_overflow",
                           "handshake_failure", "bad_certificate", "unsupported_certificate",
                           "certificate_revoked", "certificate_expired", "certificate_unknown",
                           "illegal_parameter", "unknown_ca", "access_denied", "decode_error", "decrypt_error",
                           "protocol_version", "insufficient_security", "internal_error",
                           "inappropriate_fallback", "user_canceled", "no_renegotiation", "missing_extension",
                           "unsupported_extension", "unrecognized_name", "bad_certificate_status_response",
                           "unknown_psk_identity", "certificate_required", "no_application_protocol", NULL};
    for (int i = 0; names[i]; i++) enif_make_atom(env, names[i]);
#undef ATOM

    ErlNifResourceTypeInit oq_init = {.dtor = oq_dtor, .stop = NULL, .down = oq_down};
    ErlNifResourceTypeInit conn_init = {.dtor = conn_dtor, .stop = NULL, .down = conn_down};
    ErlNifResourceTypeInit stream_init = {.dtor = stream_dtor, .stop = NULL, .down = NULL};
    ErlNifResourceTypeInit arena_init = {.dtor = NULL, .stop = NULL, .down = NULL};
    RT_OQ = enif_open_resource_type_x(env, "gunmetal_queue", &oq_init, ERL_NIF_RT_CREATE, NULL);
    RT_CONN = enif_open_resource_type_x(env, "gunmetal_conn", &conn_init, ERL_NIF_RT_CREATE, NULL);
    RT_STREAM = enif_open_resource_type_x(env, "gunmetal_stream", &stream_init, ERL_NIF_RT_CREATE, NULL);
    RT_ARENA = enif_open_resource_type_x(env, "gunmetal_arena", &arena_init, ERL_NIF_RT_CREATE, NULL);
    if (!RT_OQ || !RT_CONN || !RT_STREAM || !RT_ARENA) return 1;

    owners_mu = enif_mutex_create("gunmetal.owners");
    dead_mu = enif_mutex_create("gunmetal.dead");
    jmu = enif_mutex_create("gunmetal.janitor");
    jcv = enif_cond_create("gunmetal.janitor");
    reg_lock = enif_rwlock_create("gunmetal.registry");
    exits_mu = enif_mutex_create("gunmetal.exits");
    if (!owners_mu || !dead_mu || !jmu || !jcv || !reg_lock || !exits_mu) return 1;

    char err[512] = "";
    if (!load_library(err, sizeof err)) {
        fprintf(stderr, "gunmetal_nif: %s\r\n", err);
        return 1;
    }
    return 0;
}

static int on_upgrade(ErlNifEnv *env, void **priv, void **old_priv, ERL_NIF_TERM info) {
    (void)env; (void)priv; (void)old_priv; (void)info;
    return 1; /* one Go runtime per process: reloading is not supported */
}

static ErlNifFunc funcs[] = {
    {"open", 4, nif_open, ERL_NIF_DIRTY_JOB_IO_BOUND},
    {"open_unix", 3, nif_open_unix, ERL_NIF_DIRTY_JOB_IO_BOUND},
    {"open_fd", 3, nif_open_fd, ERL_NIF_DIRTY_JOB_IO_BOUND},
    {"request", 9, nif_request, 0},
    {"request_big", 9, nif_request_big, ERL_NIF_DIRTY_JOB_IO_BOUND},
    {"connect", 6, nif_connect, 0},
    {"data", 5, nif_data, ERL_NIF_DIRTY_JOB_IO_BOUND},
    {"data_dropped", 1, nif_data_dropped, 0},
    {"cancel", 2, nif_cancel, 0},
    {"update_flow", 3, nif_update_flow, 0},
    {"close", 1, nif_close, ERL_NIF_DIRTY_JOB_IO_BOUND},
    {"shutdown", 1, nif_shutdown, ERL_NIF_DIRTY_JOB_IO_BOUND},
    {"set_owner", 3, nif_set_owner, 0},
    {"owner", 1, nif_owner, 0},
    {"info", 1, nif_info, 0},
    {"cookies_get", 1, nif_cookies_get, 0},
    {"set_chain", 1, nif_set_chain, 0},
    {"cookies_set", 2, nif_cookies_set, 0},
    {"stream_info", 2, nif_stream_info, 0},
    {"tunnel_protocol", 1, nif_tunnel_protocol, 0},
    {"ws_upgrade", 6, nif_ws_upgrade, 0},
    {"ws_send", 3, nif_ws_send, 0},
    {"ping", 3, nif_ping, 0},
    {"features", 0, nif_features, 0},
    {"version", 0, nif_version, 0},
    {"tls_session_cache", 2, nif_tls_session_cache, 0},
    {"stats", 0, nif_stats, 0},
    {"exit_note", 1, nif_exit_note, 0},
    {"exit_reason", 1, nif_exit_reason, 0},
};

ERL_NIF_INIT(gunmetal_nif, funcs, on_load, NULL, on_upgrade, NULL)
