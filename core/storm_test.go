package core

// Reconnect storms (a server that fails every connection at once must not
// be reconnected to in a loop) and certificate verification failures (not
// transient: EXIT at once with the verifier's reason). Issue 9, items 2, 3.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// stormPKI is a CA (its PEM in caFile) that signs leaves on demand.
type stormPKI struct {
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caFile string
}

func newPKI(t testing.TB) *stormPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gunmetal storm test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return &stormPKI{ca: ca, caKey: key, caFile: file}
}

// leaf makes a server certificate for hosts (DNS names or IPs), valid from
// notBefore to notAfter.
func (p *stormPKI) leaf(t testing.TB, hosts []string, notBefore, notAfter time.Time) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: hosts[0]},
		NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// holdOpen keeps a server connection until the client closes it.
func holdOpen(nc net.Conn) {
	nc.SetReadDeadline(time.Now().Add(waitFor))
	io.Copy(io.Discard, nc)
	nc.Close()
}

// stormShape is a server that accepts and fails every connection at once.
type stormShape struct {
	name   string
	opts   string // the client's options, without the braces, retry keys apart
	reason string // the DOWN/EXIT reason's prefix
	handle func(net.Conn)
}

func stormShapes(t *testing.T) []stormShape {
	pki := newPKI(t)
	cert := pki.leaf(t, []string{"127.0.0.1"}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	// TLS 1.3 with a client certificate required: the client's handshake
	// completes, then the server's alert (certificate_required) arrives.
	alertConf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13,
		ClientAuth: tls.RequireAnyClientCert}
	return []stormShape{
		{"h2_preface_answered_with_http1", `"protocols":["http2"]`,
			"connection_error: PROTOCOL_ERROR: Invalid connection preface received. Appears to be an HTTP/1 response?",
			func(nc net.Conn) {
				nc.Write([]byte("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n"))
				holdOpen(nc)
			}},
		{"response_before_request", `"protocols":["http"]`,
			"protocol_error: ",
			func(nc net.Conn) {
				nc.Write([]byte("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"))
				holdOpen(nc)
			}},
		{"tls_alert_after_handshake",
			`"transport":"tls","protocols":["http"],"tls_opts":{"cacertfile":"` + pki.caFile + `","versions":["tlsv1.3"]}`,
			"remote error: tls: certificate required",
			func(nc net.Conn) {
				tc := tls.Server(nc, alertConf)
				tc.SetDeadline(time.Now().Add(waitFor))
				if tc.Handshake() == nil {
					holdOpen(tc)
				}
				nc.Close()
			}},
	}
}

// TestNoReconnectStorm: with the default retry (5, 5 s) a server that fails
// every connection at once gets the attempt and its immediate retry, then
// waits: not hundreds of connections a second.
func TestNoReconnectStorm(t *testing.T) {
	for _, sh := range stormShapes(t) {
		t.Run(sh.name, func(t *testing.T) {
			rs := startRaw(t, sh.handle)
			q := newQueue(t)
			c := openTo(t, q, rs.port(), "{"+sh.opts+"}")
			// Both attempts show up (UP, DOWN each), then nothing for 1 s.
			for i := 0; i < 2; i++ {
				if ev := nextOf(t, q, c); ev.Kind != EvUp {
					t.Fatalf("attempt %d: %s, want UP", i+1, evString(ev))
				}
				if ev := nextOf(t, q, c); ev.Kind != EvDown || !hasReason(ev, sh.reason) {
					t.Fatalf("attempt %d: %s, want DOWN %q...", i+1, evString(ev), sh.reason)
				}
			}
			time.Sleep(time.Second) // prove an absence: no third attempt yet
			if n := len(rs.acceptTimes()); n > 3 {
				t.Fatalf("%d connections within about 1 s (retry_timeout is 5 s): a reconnect storm", n)
			}
			if got := c.LastFailure(); !strings.HasPrefix(got, sh.reason) {
				t.Fatalf("LastFailure %q, want %q...", got, sh.reason)
			}
		})
	}
}

// TestStormRetriesRunOut: connections that die before doing anything count
// as failed attempts, so retry runs out and EXIT says why; with a fixed
// delay and with an exponential retry_fun.
func TestStormRetriesRunOut(t *testing.T) {
	for _, sh := range stormShapes(t) {
		for _, retry := range []string{
			`"retry":3,"retry_timeout":30`,
			`"retry":3,"retry_timeout":5000,"retry_fun":{"backoff":"exponential","initial":20,"factor":2}`,
		} {
			t.Run(sh.name, func(t *testing.T) {
				rs := startRaw(t, sh.handle)
				q := newQueue(t)
				c := openTo(t, q, rs.port(), "{"+sh.opts+","+retry+"}")
				evs := boundedExit(t, q, c, 40)
				ups := 0
				for _, ev := range evs {
					if ev.Kind == EvUp {
						ups++
					}
				}
				if ex := evs[len(evs)-1]; !hasReason(ex, sh.reason) {
					t.Fatalf("EXIT %s, want %q...", evString(ex), sh.reason)
				}
				time.Sleep(100 * time.Millisecond) // prove no attempt after EXIT
				if n := len(rs.acceptTimes()); n != 4 || ups != 4 {
					t.Fatalf("%d connections, %d UPs; retry 3 means 4 attempts", n, ups)
				}
				if _, err := c.AwaitUp(waitFor); !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), sh.reason) {
					t.Fatalf("AwaitUp after EXIT: %v", err)
				}
			})
		}
	}
}

// boundedExit is waitExit for a connection that might never exit: it fails
// past max events (a reconnect storm brings UP, DOWN forever) or waitFor.
func boundedExit(t *testing.T, q *Queue, c *Conn, max int) []*Event {
	t.Helper()
	var evs []*Event
	for deadline := time.Now().Add(waitFor); ; {
		var out [1]*Event
		n, _ := q.Poll(out[:], 100*time.Millisecond)
		if n == 1 && out[0].Conn == c {
			evs = append(evs, out[0])
			if out[0].Kind == EvExit {
				return evs
			}
		}
		if len(evs) > max || time.Now().After(deadline) {
			t.Fatalf("no EXIT after %d events (%d connections so far): a reconnect storm", len(evs), len(evs)/2)
		}
	}
}

// TestReconnectAfterRealDropImmediate: Gun's rule stands for a connection
// that was really up: after a completed response (or a long enough life)
// the drop is followed by an immediate reconnect, every time.
func TestReconnectAfterRealDropImmediate(t *testing.T) {
	// One response, then the server hangs up.
	rs := startRaw(t, func(nc net.Conn) {
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(waitFor))
		if _, err := readRequest(nc); err != nil {
			return
		}
		nc.Write([]byte("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"))
	})
	q := newQueue(t)
	// retry_timeout 60 s: an UP within waitFor is the immediate retry.
	c := openTo(t, q, rs.port(), `{"retry":1,"retry_timeout":60000}`)
	for i := 0; i < 4; i++ {
		if ev := nextOf(t, q, c); ev.Kind != EvUp {
			t.Fatalf("round %d: %s, want UP", i, evString(ev))
		}
		ref := get(t, c, "/")
		if b := ok200(t, q, ref); string(b) != "ok" {
			t.Fatalf("body %q", b)
		}
		if ev := nextOf(t, q, c); ev.Kind != EvDown || ev.Reason != "closed" {
			t.Fatalf("round %d: %s, want DOWN closed", i, evString(ev))
		}
	}

	// Up for longer than usefulUptime without any response: a real drop too.
	rs2 := startRaw(t, func(nc net.Conn) {
		time.Sleep(usefulUptime + 300*time.Millisecond)
		nc.Close()
	})
	q = newQueue(t)
	c2 := openTo(t, q, rs2.port(), `{"retry":1,"retry_timeout":60000}`)
	for i := 0; i < 2; i++ {
		if ev := nextOf(t, q, c2); ev.Kind != EvUp {
			t.Fatalf("idle round %d: %s, want UP", i, evString(ev))
		}
		var ev *Event
		for deadline := time.Now().Add(waitFor); ev == nil && time.Now().Before(deadline); {
			var out [1]*Event
			if n, _ := q.Poll(out[:], time.Second); n == 1 {
				ev = out[0]
			}
		}
		if ev == nil || ev.Conn != c2 || ev.Kind != EvDown {
			t.Fatalf("idle round %d: no DOWN (%v)", i, ev)
		}
	}
	if ev := nextOf(t, q, c2); ev.Kind != EvUp {
		t.Fatalf("after two idle drops: %s, want UP", evString(ev))
	}
}

// verifyCase is a server certificate our verification refuses.
type verifyCase struct {
	name   string
	cert   tls.Certificate
	tlsOpt string // tls_opts members
	reason string // in the EXIT reason
}

func verifyCases(t *testing.T) []verifyCase {
	pki := newPKI(t)
	now := time.Now()
	good := pki.leaf(t, []string{"127.0.0.1"}, now.Add(-time.Hour), now.Add(time.Hour))
	expired := pki.leaf(t, []string{"127.0.0.1"}, now.Add(-2*time.Hour), now.Add(-time.Hour))
	other := pki.leaf(t, []string{"10.9.9.9"}, now.Add(-time.Hour), now.Add(time.Hour))
	ca := `"cacertfile":"` + pki.caFile + `"`
	return []verifyCase{
		{"expired", expired, ca, "x509: certificate has expired or is not yet valid"},
		{"expired_no_sni", expired, ca + `,"server_name_indication":"disable"`, "x509: certificate has expired or is not yet valid"},
		{"unknown_ca", good, `"versions":["tlsv1.2","tlsv1.3"]`, "x509: certificate signed by unknown authority"},
		{"wrong_host", other, ca, "x509: certificate is valid for 10.9.9.9, not 127.0.0.1"},
	}
}

func verifyServer(t *testing.T, cert tls.Certificate) *rawServer {
	conf := &tls.Config{Certificates: []tls.Certificate{cert}}
	return startRaw(t, func(nc net.Conn) {
		tc := tls.Server(nc, conf)
		tc.SetDeadline(time.Now().Add(waitFor))
		if tc.Handshake() == nil {
			holdOpen(tc)
		}
		nc.Close()
	})
}

// TestTLSVerifyFailureExits: a certificate that fails verification ends
// the connection at the first attempt, with the verifier's reason in the
// EXIT and in AwaitUp's error.
func TestTLSVerifyFailureExits(t *testing.T) {
	for _, vc := range verifyCases(t) {
		t.Run(vc.name, func(t *testing.T) {
			rs := verifyServer(t, vc.cert)
			q := newQueue(t)
			c := openTo(t, q, rs.port(), `{"transport":"tls","protocols":["http"],"retry":5,"retry_timeout":30,"tls_opts":{`+vc.tlsOpt+`}}`)
			_, err := c.AwaitUp(waitFor)
			if !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), vc.reason) {
				t.Fatalf("AwaitUp: %v, want ErrClosed saying %q", err, vc.reason)
			}
			evs := boundedExit(t, q, c, 10)
			if len(evs) != 1 || !strings.Contains(evs[0].Reason, vc.reason) {
				t.Fatalf("events %v, want only EXIT saying %q", evs, vc.reason)
			}
			time.Sleep(100 * time.Millisecond) // prove no retry
			if n := len(rs.acceptTimes()); n != 1 {
				t.Fatalf("%d connections, want 1: a verification failure is not retried", n)
			}
		})
	}
}

// TestTLSVerifyFailureRetryOption: retry_on_tls_verify_failure true
// retries it like any failure.
func TestTLSVerifyFailureRetryOption(t *testing.T) {
	vc := verifyCases(t)[0]
	rs := verifyServer(t, vc.cert)
	q := newQueue(t)
	c := openTo(t, q, rs.port(), `{"transport":"tls","protocols":["http"],"retry":2,"retry_timeout":30,`+
		`"retry_on_tls_verify_failure":true,"tls_opts":{`+vc.tlsOpt+`}}`)
	evs := waitExit(t, q, c)
	if len(evs) != 1 || !strings.Contains(evs[0].Reason, vc.reason) {
		t.Fatalf("events %v, want only EXIT saying %q", evs, vc.reason)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(rs.acceptTimes()); n != 3 {
		t.Fatalf("%d connections, want 3 (retry 2)", n)
	}
	if _, err := ParseOptions([]byte(`{"retry_on_tls_verify_failure":"yes"}`), 443); err == nil ||
		!strings.Contains(err.Error(), "retry_on_tls_verify_failure") {
		t.Fatalf("a non-boolean: %v", err)
	}
}
