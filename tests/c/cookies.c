/*
 * cookies.c — a connection's cookie store exported (gm_cookies_get) and
 * seeded (gm_cookies_set), and gm_info's Gun keys.
 */
#include "util.h"

TEST(cookies_export_and_seed) {
    gm_queue *q = gm_queue_new();
    REQUIRE(q != NULL);
    gm_conn *c = open_up_opts(q, "{\"cookie_store\":true}");
    REQUIRE(c != NULL);
    char *body = NULL;
    size_t len = 0;
    CHECK_EQ(get_body(c, "/set-cookie?name=a&value=1&path=/", &body, &len), 200);
    free(body);
    gm_event *ev = NULL;
    REQUIRE_RC(gm_cookies_get(c, &ev), GM_OK);
    REQUIRE(ev != NULL && ev->data != NULL);
    CHECK_EQ(strlen((const char *)ev->data), ev->data_len);
    CHECK(strstr((const char *)ev->data, "\"name\":\"a\",\"value\":\"1\",\"domain\":\"127.0.0.1\",\"path\":\"/\"") != NULL);
    char *js = strndup((const char *)ev->data, ev->data_len);
    gm_event_free(ev);

    ev = NULL;
    REQUIRE_RC(gm_info(c, &ev), GM_OK);
    CHECK_STR(ev_header(ev, "cookie_store"), "true");
    CHECK_STR(ev_header(ev, "origin_scheme"), "http");
    CHECK_STR(ev_header(ev, "origin_host"), "127.0.0.1");
    gm_event_free(ev);

    /* Another connection, seeded with the export, sends the cookie. */
    gm_conn *c2 = open_up_opts(q, "{\"cookie_store\":true}");
    REQUIRE(c2 != NULL);
    CHECK_RC(gm_cookies_set(c2, js), GM_OK);
    free(js);
    body = NULL;
    CHECK_EQ(get_body(c2, "/headers", &body, &len), 200);
    CHECK(body && strstr(body, "\"cookie\":[\"a=1\"]") != NULL);
    if (body && !strstr(body, "\"cookie\":[\"a=1\"]")) fprintf(stderr, "    /headers: %s\n", body);
    free(body);
    /* Bad input: refused, naming the field; nothing taken. */
    CHECK_FAILS(gm_cookies_set(c2, "[{\"name\":\"x\",\"value\":\"y\"}]"), GM_EINVAL);
    CHECK(strstr(gm_errmsg(), "domain") != NULL);
    CHECK_FAILS(gm_cookies_set(c2, NULL), GM_EINVAL);
    CHECK_FAILS(gm_cookies_get(c2, NULL), GM_EINVAL);
    CHECK(close_and_free(q, c2));
    CHECK(close_and_free(q, c));

    /* Without the option: GM_EBADSTATE, and info says so. */
    c = open_up(q);
    REQUIRE(c != NULL);
    ev = NULL;
    CHECK_FAILS(gm_cookies_get(c, &ev), GM_EBADSTATE);
    CHECK(ev == NULL);
    CHECK_FAILS(gm_cookies_set(c, "[]"), GM_EBADSTATE);
    REQUIRE_RC(gm_info(c, &ev), GM_OK);
    CHECK_STR(ev_header(ev, "cookie_store"), "false");
    gm_event_free(ev);
    CHECK(close_and_free(q, c));
    gm_queue_free(q);
}

static const struct check_case cases[] = {
    CASE(cookies_export_and_seed),
};

int main(int argc, char **argv) { return check_main(argc, argv, cases, CHECK_N(cases)); }
