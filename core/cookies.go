package core

import (
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// Cookies: with the "cookie_store" option a connection keeps an in-memory
// jar (net/http/cookiejar with the public suffix list, as Gun's
// gun_cookies_list with gun_public_suffix): Set-Cookie headers of responses
// (and of 1xx informs, unless cookie_ignore_informational) go in, and
// requests without a cookie header of their own get the matching cookies.
// The jar outlives reconnects, as Gun's store outlives its connection.

type cookieJar struct {
	jar   *cookiejar.Jar
	paths map[uint64]string  // stream → request path, until its response
	seen  map[string]*Cookie // what went into jar, for export (cookies_io.go)
}

func newCookieJar() *cookieJar {
	j, _ := cookiejar.New(&cookiejar.Options{PublicSuffixList: publicsuffix.List}) // never fails
	return &cookieJar{jar: j, paths: map[uint64]string{}}
}

func (c *Conn) cookieURL(path string) *url.URL {
	scheme := "http"
	if c.opts.Transport == "tls" {
		scheme = "https"
	}
	u, err := url.Parse(scheme + "://" + c.authority() + path)
	if err != nil {
		return &url.URL{Scheme: scheme, Host: c.authority(), Path: "/"}
	}
	return u
}

// addCookies gives the request the jar's cookies (called with c.mu held,
// before the request is written or queued).
func (c *Conn) addCookies(r *Request) {
	if c.cookies == nil {
		return
	}
	c.cookies.paths[r.ref] = r.Path
	if _, ok := hasHeader(r.Headers, "cookie"); ok {
		return
	}
	var b strings.Builder
	for _, ck := range c.cookies.jar.Cookies(c.cookieURL(r.Path)) {
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString(ck.Name + "=" + ck.Value)
	}
	if b.Len() > 0 {
		r.Headers = append(r.Headers[:len(r.Headers):len(r.Headers)], Header{Name: "cookie", Value: b.String()})
	}
}

// storeCookies takes the Set-Cookie headers of a response or inform
// (called with c.mu held, as the event is emitted).
func (c *Conn) storeCookies(ev *Event) {
	if c.cookies == nil || ev.Ref == 0 {
		return
	}
	path, ok := c.cookies.paths[ev.Ref]
	if !ok {
		return
	}
	switch ev.Kind {
	case EvInform:
		if c.ignoreInformCookies() {
			return
		}
	case EvResponse:
		delete(c.cookies.paths, ev.Ref)
	case EvError:
		delete(c.cookies.paths, ev.Ref)
		return
	default:
		return
	}
	h := http.Header{}
	for _, x := range ev.Headers {
		if strings.EqualFold(x.Name, "set-cookie") {
			h.Add("Set-Cookie", x.Value)
		}
	}
	if len(h) > 0 {
		u, cks := c.cookieURL(path), (&http.Response{Header: h}).Cookies()
		c.cookies.jar.SetCookies(u, cks)
		c.cookies.record(u, cks)
	}
}

func (c *Conn) ignoreInformCookies() bool {
	if c.protoNm == "http2" {
		return c.opts.HTTP2.CookieIgnoreInformational
	}
	return c.opts.HTTP.CookieIgnoreInformational
}
