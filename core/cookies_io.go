package core

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Seeding and exporting a connection's cookie_store (Gun's store modules
// let one do both). net/http/cookiejar matches cookies but cannot list
// them, so the connection also records what went into its jar (a shadow
// keyed as the jar keys: domain, path, name); an export lists the recorded
// cookies the jar still sends (those expired or replaced are left out).

// Cookie is one cookie of a store, with Gun's gun_cookies field names.
type Cookie struct {
	Name       string `json:"name"`
	Value      string `json:"value"`
	Domain     string `json:"domain"`      // lower case, without a leading dot
	Path       string `json:"path"`        // "/" when not given
	HostOnly   bool   `json:"host_only"`   // sent to Domain only, not its subdomains
	SecureOnly bool   `json:"secure_only"` // sent over TLS only
	HTTPOnly   bool   `json:"http_only"`
	SameSite   string `json:"same_site,omitempty"` // "strict", "lax", "none" or ""
	// ExpiryTime is RFC 3339 in UTC; "" for a session cookie (Gun's
	// persistent false), which lives as long as the connection.
	ExpiryTime string `json:"expiry_time,omitempty"`
}

func (k *Cookie) key() string { return k.Domain + ";" + k.Path + ";" + k.Name }

// cookieURL for a recorded cookie: where the jar would send it.
func (k *Cookie) url() *url.URL {
	scheme := "http"
	if k.SecureOnly {
		scheme = "https"
	}
	return &url.URL{Scheme: scheme, Host: k.Domain, Path: k.Path}
}

// record notes cookies the jar was given from u. Called with c.mu held.
func (j *cookieJar) record(u *url.URL, cks []*http.Cookie) {
	if j.seen == nil {
		j.seen = map[string]*Cookie{}
	}
	now := time.Now()
	for _, ck := range cks {
		k := &Cookie{Name: ck.Name, Value: ck.Value, Path: ck.Path, SecureOnly: ck.Secure, HTTPOnly: ck.HttpOnly}
		if k.Path == "" || k.Path[0] != '/' {
			k.Path = defaultCookiePath(u.Path)
		}
		if ck.Domain == "" {
			k.Domain, k.HostOnly = strings.ToLower(u.Hostname()), true
		} else {
			k.Domain = strings.ToLower(strings.TrimPrefix(ck.Domain, "."))
		}
		switch ck.SameSite {
		case http.SameSiteStrictMode:
			k.SameSite = "strict"
		case http.SameSiteLaxMode:
			k.SameSite = "lax"
		case http.SameSiteNoneMode:
			k.SameSite = "none"
		}
		switch {
		case ck.MaxAge < 0:
			delete(j.seen, k.key())
			continue
		case ck.MaxAge > 0:
			k.ExpiryTime = now.Add(time.Duration(ck.MaxAge) * time.Second).UTC().Format(time.RFC3339)
		case !ck.Expires.IsZero():
			k.ExpiryTime = ck.Expires.UTC().Format(time.RFC3339)
		}
		j.seen[k.key()] = k
	}
}

// defaultCookiePath is RFC 6265's default-path of a request path.
func defaultCookiePath(p string) string {
	if p == "" || p[0] != '/' {
		return "/"
	}
	if i := strings.LastIndexByte(p, '/'); i > 0 {
		return p[:i]
	}
	return "/"
}

var errNoCookieStore = fmt.Errorf("%w: the connection has no cookie_store (open it with \"cookie_store\": true)", ErrBadState)

// Cookies exports the connection's cookie store: every cookie it would
// still send somewhere, sorted by domain, path and name.
func (c *Conn) Cookies() ([]Cookie, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cookies == nil {
		return nil, errNoCookieStore
	}
	out := []Cookie{}
	for key, k := range c.cookies.seen {
		alive := false
		for _, ck := range c.cookies.jar.Cookies(k.url()) {
			if ck.Name == k.Name && ck.Value == k.Value {
				alive = true
				break
			}
		}
		if !alive {
			delete(c.cookies.seen, key) // expired, deleted or refused by the jar
			continue
		}
		out = append(out, *k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key() < out[j].key() })
	return out, nil
}

// CookiesJSON is Cookies as a JSON array.
func (c *Conn) CookiesJSON() ([]byte, error) {
	cks, err := c.Cookies()
	if err != nil {
		return nil, err
	}
	return json.Marshal(cks)
}

// SetCookies seeds the store with cookies (a JSON array as CookiesJSON
// gives, or one made by hand: name, value and domain are required). The
// jar's rules apply (public suffixes are refused as domains); a cookie
// whose expiry_time has passed removes the stored one. Invalid input is
// refused whole, naming the cookie and field.
func (c *Conn) SetCookies(js []byte) error {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	var cks []Cookie
	if err := dec.Decode(&cks); err != nil {
		return fmt.Errorf("%w: cookies: %v", ErrBadArg, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: cookies: data after the JSON array", ErrBadArg)
	}
	hcs := make([]*http.Cookie, len(cks))
	for i := range cks {
		k := &cks[i]
		hc, err := k.httpCookie()
		if err != nil {
			return fmt.Errorf("%w: cookies[%d]: %v", ErrBadArg, i, err)
		}
		hcs[i] = hc
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cookies == nil {
		return errNoCookieStore
	}
	for i := range cks {
		u := cks[i].url()
		c.cookies.jar.SetCookies(u, hcs[i:i+1])
		c.cookies.record(u, hcs[i:i+1])
	}
	return nil
}

func (k *Cookie) httpCookie() (*http.Cookie, error) {
	if k.Name == "" || strings.ContainsAny(k.Name, "=; \t\r\n\x00") {
		return nil, fmt.Errorf("name %q: must be a non-empty token", k.Name)
	}
	if strings.ContainsAny(k.Value, ";\r\n\x00") {
		return nil, fmt.Errorf("value of %q: no ';', CR, LF or NUL", k.Name)
	}
	k.Domain = strings.ToLower(strings.TrimPrefix(k.Domain, "."))
	if k.Domain == "" || strings.ContainsAny(k.Domain, "/:; \t\r\n\x00") {
		return nil, fmt.Errorf("domain %q of %q: must be a host name", k.Domain, k.Name)
	}
	if k.Path == "" {
		k.Path = "/"
	}
	if k.Path[0] != '/' || strings.ContainsAny(k.Path, "; \t\r\n\x00") {
		return nil, fmt.Errorf("path %q of %q: must start with '/'", k.Path, k.Name)
	}
	hc := &http.Cookie{Name: k.Name, Value: k.Value, Path: k.Path, Secure: k.SecureOnly, HttpOnly: k.HTTPOnly}
	if !k.HostOnly {
		hc.Domain = k.Domain
	}
	switch k.SameSite {
	case "":
	case "strict":
		hc.SameSite = http.SameSiteStrictMode
	case "lax":
		hc.SameSite = http.SameSiteLaxMode
	case "none":
		hc.SameSite = http.SameSiteNoneMode
	default:
		return nil, fmt.Errorf("same_site %q of %q: strict, lax, none or absent", k.SameSite, k.Name)
	}
	if k.ExpiryTime != "" {
		t, err := time.Parse(time.RFC3339, k.ExpiryTime)
		if err != nil {
			return nil, fmt.Errorf("expiry_time %q of %q: not RFC 3339", k.ExpiryTime, k.Name)
		}
		if !t.After(time.Now()) {
			hc.MaxAge = -1 // past: removes the stored one, as an expired Set-Cookie does
		} else {
			hc.Expires = t
		}
	}
	return hc, nil
}
