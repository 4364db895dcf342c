package core

import (
	"testing"
)

// TestCookieStore: with cookie_store, Set-Cookie goes into the jar and
// later requests carry the cookies that match their path; without it,
// nothing is sent.
func TestCookieStore(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{"cookie_store":true}`)
	ok200(t, q, get(t, c, "/set-cookie?name=a&value=1&path=/"))
	ok200(t, q, get(t, c, "/set-cookie?name=b&value=2&path=/only/here"))
	h := headersReply(t, ok200(t, q, get(t, c, "/headers")))
	if got := h.Headers["cookie"]; len(got) != 1 || got[0] != "a=1" {
		t.Fatalf("cookie %q, want a=1", got)
	}
	// A request's own cookie header wins.
	h = headersReply(t, ok200(t, q, get(t, c, "/headers", Header{Name: "cookie", Value: "mine=x"})))
	if got := h.Headers["cookie"]; len(got) != 1 || got[0] != "mine=x" {
		t.Fatalf("cookie %q, want mine=x", got)
	}

	q2 := newQueue(t)
	c2 := up(t, q2, `{}`)
	ok200(t, q2, get(t, c2, "/set-cookie?name=a&value=1&path=/"))
	if h := headersReply(t, ok200(t, q2, get(t, c2, "/headers"))); len(h.Headers["cookie"]) != 0 {
		t.Fatalf("cookie sent without a cookie store: %q", h.Headers["cookie"])
	}
}
