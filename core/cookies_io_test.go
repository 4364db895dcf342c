package core

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// A store is exported and seeded: what one connection learnt, another
// sends (Gun's store modules allow both).
func TestCookiesExportAndSeed(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, `{"cookie_store":true}`)
	ok200(t, q, get(t, c, "/set-cookie?name=a&value=1&path=/"))
	ok200(t, q, get(t, c, "/set-cookie?name=b&value=2&path=/only/here"))
	ok200(t, q, get(t, c, "/set-cookie?name=a&value=3&path=/")) // replaces a=1
	cks, err := c.Cookies()
	if err != nil {
		t.Fatal(err)
	}
	if len(cks) != 2 || cks[0].Name != "a" || cks[0].Value != "3" || cks[0].Path != "/" ||
		cks[0].Domain != "127.0.0.1" || !cks[0].HostOnly || cks[0].ExpiryTime != "" ||
		cks[1].Name != "b" || cks[1].Path != "/only/here" {
		t.Fatalf("exported %+v", cks)
	}
	js, err := c.CookiesJSON()
	if err != nil {
		t.Fatal(err)
	}
	if !c.Info().CookieStore {
		t.Fatal("info: cookie_store off")
	}

	c2 := up(t, q, `{"cookie_store":true}`)
	if err := c2.SetCookies(js); err != nil {
		t.Fatal(err)
	}
	h := headersReply(t, ok200(t, q, get(t, c2, "/headers")))
	if got := h.Headers["cookie"]; len(got) != 1 || got[0] != "a=3" {
		t.Fatalf("seeded connection sent cookie %q, want a=3", got)
	}

	// An expiry in the past removes; a future one is kept and exported.
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	seed := `[{"name":"a","value":"3","domain":"127.0.0.1","path":"/","host_only":true,"expiry_time":"2001-01-01T00:00:00Z"},
		{"name":"p","value":"v","domain":"127.0.0.1","host_only":true,"expiry_time":"` + future + `","same_site":"lax"}]`
	if err := c2.SetCookies([]byte(seed)); err != nil {
		t.Fatal(err)
	}
	cks, _ = c2.Cookies()
	var names []string
	for _, k := range cks {
		names = append(names, k.Name+"="+k.Value)
	}
	if strings.Join(names, ",") != "p=v,b=2" || cks[0].ExpiryTime != future || cks[0].SameSite != "lax" {
		t.Fatalf("after the seed: %+v", cks)
	}
	var back []Cookie
	if err := json.Unmarshal(js, &back); err != nil || len(back) != 2 {
		t.Fatalf("export JSON %s: %v", js, err)
	}
}

func TestCookiesRefused(t *testing.T) {
	q := newQueue(t)
	c := up(t, q, "")
	if _, err := c.Cookies(); !errors.Is(err, ErrBadState) || !strings.Contains(err.Error(), "cookie_store") {
		t.Fatalf("without a store: %v", err)
	}
	if err := c.SetCookies([]byte(`[]`)); !errors.Is(err, ErrBadState) {
		t.Fatalf("seeding without a store: %v", err)
	}
	c2 := up(t, q, `{"cookie_store":true}`)
	for _, bad := range []string{`{}`, `[{"name":"","value":"x","domain":"a.test"}]`, `[{"name":"x","value":"x"}]`,
		`[{"name":"x","value":"a;b","domain":"a.test"}]`, `[{"name":"x","value":"x","domain":"a.test","path":"rel"}]`,
		`[{"name":"x","value":"x","domain":"a.test","colour":"red"}]`, `[{"name":"x","value":"x","domain":"a.test","expiry_time":"soon"}]`,
		`[{"name":"x","value":"x","domain":"a.test","same_site":"maybe"}]`, `[] []`, `not json`} {
		if err := c2.SetCookies([]byte(bad)); !errors.Is(err, ErrBadArg) {
			t.Errorf("%s: %v", bad, err)
		}
	}
	if cks, err := c2.Cookies(); err != nil || len(cks) != 0 {
		t.Fatalf("after refused seeds: %+v, %v", cks, err)
	}
}
