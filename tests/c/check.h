/*
 * check.h — a tiny test harness for gunmetal's C tests.
 *
 * A test case is a `static void name(void)` function registered in the
 * file's test table:
 *
 *     TEST(opens) { gm_queue *q = gm_queue_new(); REQUIRE(q != NULL); ... }
 *     static const struct check_case cases[] = { CASE(opens), ... };
 *     int main(int argc, char **argv) { return check_main(argc, argv, cases, CHECK_N(cases)); }
 *
 * CHECK(cond) counts a passed or failed check and goes on; REQUIRE(cond)
 * returns from the test case when it fails. A failure prints file:line,
 * the expression, the values where the macro knows them, and gm_errmsg().
 *
 * A test case passes when none of its checks failed and, once it returned,
 * gm__live_handles() is back to its value from before the case (every queue,
 * connection and event released).
 *
 * The binary runs every case (no argument), the named ones (arguments), or
 * prints the case names (--list). tests/c/run.sh runs each case in its own
 * process so that a crash or a sanitizer report is pinned to one case. The
 * last line printed is "N passed, N failed" (test cases).
 */
#ifndef GM_CHECK_H
#define GM_CHECK_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gunmetal.h"

/* Test-only export of the library: handles not yet released. */
extern int64_t gm__live_handles(void);

static int check_passed, check_failed; /* checks of the current case */

static inline void check_report(const char *file, int line, const char *what) {
    const char *m = gm_errmsg();
    fprintf(stderr, "%s:%d: FAILED: %s\n    gm_errmsg: \"%s\"\n", file, line, what, m ? m : "(null)");
}

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (cond) {                                                        \
            check_passed++;                                                \
        } else {                                                           \
            check_failed++;                                                \
            check_report(__FILE__, __LINE__, "CHECK(" #cond ")");        \
        }                                                                  \
    } while (0)

/* Like CHECK, returning from the test case on failure. */
#define REQUIRE(cond)                                                      \
    do {                                                                   \
        if (cond) {                                                        \
            check_passed++;                                                \
        } else {                                                           \
            check_failed++;                                                \
            check_report(__FILE__, __LINE__, "REQUIRE(" #cond ")");      \
            return;                                                        \
        }                                                                  \
    } while (0)

/* Integer equality, printing both values. */
#define CHECK_EQ(a, b)                                                     \
    do {                                                                   \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);    \
        if (check_a_ == check_b_) {                                        \
            check_passed++;                                                \
        } else {                                                           \
            char check_m_[512];                                            \
            snprintf(check_m_, sizeof check_m_,                            \
                     "CHECK_EQ(%s, %s): %lld != %lld", #a, #b, check_a_,   \
                     check_b_);                                            \
            check_failed++;                                                \
            check_report(__FILE__, __LINE__, check_m_);                    \
        }                                                                  \
    } while (0)

/* A status code, printed with gm_strerror. */
#define CHECK_RC(expr, want)                                               \
    do {                                                                   \
        int check_rc_ = (int)(expr), check_w_ = (int)(want);               \
        if (check_rc_ == check_w_) {                                       \
            check_passed++;                                                \
        } else {                                                           \
            char check_m_[512];                                            \
            snprintf(check_m_, sizeof check_m_,                            \
                     "%s returned %d (%s), wanted %d (%s)", #expr,         \
                     check_rc_, gm_strerror(check_rc_), check_w_,          \
                     gm_strerror(check_w_));                               \
            check_failed++;                                                \
            check_report(__FILE__, __LINE__, check_m_);                    \
        }                                                                  \
    } while (0)

#define REQUIRE_RC(expr, want)                                             \
    do {                                                                   \
        int check_f0_ = check_failed;                                      \
        CHECK_RC(expr, want);                                              \
        if (check_failed != check_f0_) return;                             \
    } while (0)

/* String equality (NULL-safe). */
#define CHECK_STR(a, b)                                                    \
    do {                                                                   \
        const char *check_a_ = (a), *check_b_ = (b);                       \
        if (check_a_ && check_b_ && strcmp(check_a_, check_b_) == 0) {     \
            check_passed++;                                                \
        } else {                                                           \
            char check_m_[768];                                            \
            snprintf(check_m_, sizeof check_m_,                            \
                     "CHECK_STR(%s, %s): \"%.300s\" != \"%.300s\"", #a, #b,\
                     check_a_ ? check_a_ : "(null)",                       \
                     check_b_ ? check_b_ : "(null)");                      \
            check_failed++;                                                \
            check_report(__FILE__, __LINE__, check_m_);                    \
        }                                                                  \
    } while (0)

/* a starts with prefix b (NULL-safe). */
#define CHECK_PREFIX(a, b)                                                 \
    do {                                                                   \
        const char *check_a_ = (a), *check_b_ = (b);                       \
        if (check_a_ && check_b_ &&                                        \
            strncmp(check_a_, check_b_, strlen(check_b_)) == 0) {          \
            check_passed++;                                                \
        } else {                                                           \
            char check_m_[768];                                            \
            snprintf(check_m_, sizeof check_m_,                            \
                     "CHECK_PREFIX(%s, %s): \"%.300s\" does not start "    \
                     "with \"%.300s\"", #a, #b,                            \
                     check_a_ ? check_a_ : "(null)",                       \
                     check_b_ ? check_b_ : "(null)");                      \
            check_failed++;                                                \
            check_report(__FILE__, __LINE__, check_m_);                    \
        }                                                                  \
    } while (0)

/* The last failing call left a non-empty sentence. */
#define CHECK_ERRMSG()                                                     \
    do {                                                                   \
        const char *check_e_ = gm_errmsg();                                \
        CHECK(check_e_ != NULL && check_e_[0] != '\0' &&                   \
              strcmp(check_e_, " ") != 0);                                 \
    } while (0)

/* expr returns want and leaves a non-empty gm_errmsg() of its own. The
 * sentence is first set to a known one by another failing call, so a stale
 * sentence from an earlier call does not count; when expr's sentence equals
 * that marker, expr runs again (failing calls have no effect) after a
 * different marker. */
#define CHECK_FAILS(expr, want)                                            \
    do {                                                                   \
        check_set_marker(0);                                               \
        CHECK_RC(expr, want);                                              \
        if (strcmp(gm_errmsg(), check_marker_msg) == 0) {                  \
            check_set_marker(1);                                           \
            (void)(expr);                                                  \
        }                                                                  \
        CHECK_ERRMSG();                                                    \
        if (strcmp(gm_errmsg(), check_marker_msg) == 0) {                  \
            check_failed++;                                                \
            check_report(__FILE__, __LINE__, #expr " left gm_errmsg() unchanged"); \
        }                                                                  \
    } while (0)

static char check_marker_msg[1024];

/* Sets gm_errmsg() to a known sentence, remembered in check_marker_msg. */
static inline void check_set_marker(int which) {
    if (which == 0)
        gm_queue_len(NULL);
    else
        gm_cancel(NULL, 0);
    snprintf(check_marker_msg, sizeof check_marker_msg, "%s", gm_errmsg());
}

/* ---------------------------------------------------------------- cases */

struct check_case {
    const char *name;
    void (*fn)(void);
};

#define TEST(name) static void name(void)
#define CASE(name) { #name, name }
#define CHECK_N(arr) ((int)(sizeof(arr) / sizeof((arr)[0])))

static inline int64_t check_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int check_run_case(const struct check_case *c) {
    int64_t live0 = gm__live_handles();
    int64_t t0 = check_now_ms();
    check_passed = check_failed = 0;
    printf("-- %s\n", c->name);
    c->fn();
    int64_t live1 = gm__live_handles();
    if (live1 != live0) {
        char m[256];
        snprintf(m, sizeof m, "%s: gm__live_handles() is %" PRId64 " after the case, %" PRId64 " before",
                 c->name, live1, live0);
        check_failed++;
        check_report(__FILE__, __LINE__, m);
    }
    int ok = check_failed == 0;
    printf("%s %s (%d checks, %" PRId64 " ms)\n", ok ? "ok  " : "FAIL", c->name,
           check_passed + check_failed, check_now_ms() - t0);
    return ok;
}

static inline int check_main(int argc, char **argv, const struct check_case *cases, int n) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    setvbuf(stderr, NULL, _IONBF, 0);
    if (argc > 1 && strcmp(argv[1], "--list") == 0) {
        for (int i = 0; i < n; i++) printf("%s\n", cases[i].name);
        return 0;
    }
    int passed = 0, failed = 0;
    for (int i = 0; i < n; i++) {
        int selected = argc <= 1;
        for (int a = 1; a < argc && !selected; a++)
            selected = strcmp(argv[a], cases[i].name) == 0;
        if (!selected) continue;
        if (check_run_case(&cases[i]))
            passed++;
        else
            failed++;
    }
    if (passed + failed == 0) {
        fprintf(stderr, "no such test case\n");
        failed = 1;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

#endif /* GM_CHECK_H */
