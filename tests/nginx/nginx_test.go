package nginx

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"
)

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return b
}

func get(t *testing.T, c *http.Client, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return resp, body
}

func TestNginx(t *testing.T) {
	n := Start(t)
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	t.Run("http1", func(t *testing.T) {
		c := &http.Client{Timeout: 30 * time.Second, CheckRedirect: noRedirect}
		for _, size := range []int{0, 100, 100000, 10 << 20} {
			resp, body := get(t, c, n.URL("/bytes/"+strconv.Itoa(size)))
			if resp.StatusCode != 200 || resp.ProtoMajor != 1 || resp.ContentLength != int64(size) {
				t.Fatalf("/bytes/%d: %s %s content-length %d", size, resp.Proto, resp.Status, resp.ContentLength)
			}
			if string(body) != string(pattern(size)) {
				t.Fatalf("/bytes/%d: wrong body (%d bytes)", size, len(body))
			}
		}
		resp, body := get(t, c, n.URL("/chunked.shtml"))
		if resp.StatusCode != 200 || resp.ContentLength != -1 || len(resp.TransferEncoding) != 1 ||
			resp.TransferEncoding[0] != "chunked" || string(body) != "chunked ok\n" {
			t.Fatalf("/chunked.shtml: %s %v %q", resp.Status, resp.TransferEncoding, body)
		}
		if resp, _ := get(t, c, n.URL("/status204")); resp.StatusCode != 204 {
			t.Fatalf("/status204: %s", resp.Status)
		}
		if resp, _ := get(t, c, n.URL("/redirect")); resp.StatusCode != 301 || resp.Header.Get("Location") == "" {
			t.Fatalf("/redirect: %s location %q", resp.Status, resp.Header.Get("Location"))
		}
		if resp, _ := get(t, c, n.URL("/missing")); resp.StatusCode != 404 {
			t.Fatalf("/missing: %s", resp.Status)
		}
	})

	t.Run("http2-tls", func(t *testing.T) {
		pem, err := os.ReadFile(n.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			t.Fatalf("no certificate in %s", n.CAFile)
		}
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
		for _, size := range []int{100, 10 << 20} {
			resp, body := get(t, c, n.TLSURL("/bytes/"+strconv.Itoa(size)))
			if resp.StatusCode != 200 || resp.ProtoMajor != 2 || string(body) != string(pattern(size)) {
				t.Fatalf("/bytes/%d: %s %s, %d bytes", size, resp.Proto, resp.Status, len(body))
			}
		}
		if resp, _ := get(t, c, n.TLSURL("/status204")); resp.StatusCode != 204 || resp.ProtoMajor != 2 {
			t.Fatalf("/status204: %s %s", resp.Proto, resp.Status)
		}
	})
}

func TestStopTwice(t *testing.T) {
	n := Start(t)
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(n.URL("/bytes/0")); err == nil {
		t.Fatal("nginx still answers after Stop")
	}
	// Start's cleanup stops it again: must be a no-op.
}
