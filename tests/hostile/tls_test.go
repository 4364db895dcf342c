package hostile

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"gunmetal/core"
	"gunmetal/tests/h2server"
)

// pki is a CA the client trusts and what it signs.
type pki struct {
	caFile string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hostile test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	f := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &pki{caFile: f, ca: ca, caKey: key}
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// leaf makes a server certificate for names and ips, valid from
// notBefore to notAfter, signed by the CA (or by itself).
func (p *pki) leaf(t *testing.T, selfSigned bool, notBefore, notAfter time.Time, names []string, ips ...net.IP) tls.Certificate {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "hostile server"},
		NotBefore: notBefore, NotAfter: notAfter, DNSNames: names, IPAddresses: ips,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	parent, signer := p.ca, p.caKey
	if selfSigned {
		parent, signer = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TLS servers whose certificate the client must refuse, or that do not
// speak TLS, on every connection. The connection exits with a reason that
// names the problem: at once for a certificate the client refuses (not
// transient), after the retries for a server that does not speak TLS.
func TestTLS(t *testing.T) {
	p := newPKI(t)
	now := time.Now()
	localhost := net.ParseIP("127.0.0.1")
	cases := []struct {
		name string
		cert func() tls.Certificate // nil: the server does not speak TLS
		want []string               // in the EXIT reason
	}{
		{
			name: "expired certificate",
			cert: func() tls.Certificate {
				return p.leaf(t, false, now.Add(-48*time.Hour), now.Add(-24*time.Hour), nil, localhost)
			},
			want: []string{"x509: certificate has expired or is not yet valid"},
		},
		{
			name: "certificate not yet valid",
			cert: func() tls.Certificate {
				return p.leaf(t, false, now.Add(24*time.Hour), now.Add(48*time.Hour), nil, localhost)
			},
			want: []string{"x509: certificate has expired or is not yet valid"},
		},
		{
			name: "self-signed certificate",
			cert: func() tls.Certificate {
				return p.leaf(t, true, now.Add(-time.Hour), now.Add(time.Hour), nil, localhost)
			},
			want: []string{"x509: certificate signed by unknown authority"},
		},
		{
			name: "certificate for another host",
			cert: func() tls.Certificate {
				return p.leaf(t, false, now.Add(-time.Hour), now.Add(time.Hour), []string{"other.example"}, net.ParseIP("127.0.0.2"))
			},
			want: []string{"x509: certificate is valid for 127.0.0.2, not 127.0.0.1"},
		},
		{
			name: "not a TLS server",
			want: []string{"first record does not look like a TLS handshake"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var cfg *tls.Config
			serve := func(nc net.Conn) {
				defer nc.Close()
				nc.SetDeadline(time.Now().Add(wait))
				if tc.cert == nil {
					io.WriteString(nc, "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
					return
				}
				nc.(*tls.Conn).Handshake() // fails: the client refuses the certificate
			}
			if tc.cert != nil {
				cfg = &tls.Config{Certificates: []tls.Certificate{tc.cert()}, NextProtos: []string{"h2", "http/1.1"}}
			}
			srv := startRaw(t, cfg, serve)
			opts := fmt.Sprintf(`{"transport":"tls","tls_opts":{"cacertfile":%q},%s}`, p.caFile, retryOpts)
			h, _ := newHost(t, srv.port(), opts)
			h.awaitExit(srv.count, tc.want...)
			h.finish(8, srv.count)
			if n := srv.count(); tc.cert != nil && n != 1 {
				t.Errorf("%d handshakes; a certificate the client refuses is not retried", n)
			}
		})
	}
}

// HTTP/2 over TLS (ALPN h2) with a flood on every connection: the bounds
// hold on TLS too, and the retries run out.
func TestTLSHTTP2SettingsFlood(t *testing.T) {
	p := newPKI(t)
	cert := p.leaf(t, false, time.Now().Add(-time.Hour), time.Now().Add(time.Hour), nil, net.ParseIP("127.0.0.1"))
	srv := startRaw(t, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}}, func(nc net.Conn) {
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(wait))
		preface := make([]byte, len(http2.ClientPreface))
		if _, err := io.ReadFull(nc, preface); err != nil || string(preface) != http2.ClientPreface {
			return // the test fails on the missing DOWN
		}
		nc.Write(h2server.Frame(http2.FrameSettings, 0, 0, bytes.Repeat(setting(http2.SettingMaxConcurrentStreams, 100), 2000)))
		holdOpen(nc)
	})
	opts := fmt.Sprintf(`{"transport":"tls","tls_opts":{"cacertfile":%q},"protocols":["http2"],%s}`, p.caFile, retryOpts)
	h, refs := newHost(t, srv.port(), opts, get("/hostile"))
	want := []string{"connection_error: ENHANCE_YOUR_CALM", "more than max_settings_entries (64)"}
	down := h.awaitReason(core.EvDown, want...)
	if len(down.Killed) != 1 || down.Killed[0] != refs[0] {
		t.Errorf("DOWN killed %v, want the request %d", down.Killed, refs[0])
	}
	h.awaitExit(srv.count, want...)
	h.finish(64, srv.count)
}

// A TLS server whose every connection completes the client's handshake and
// then sends a fatal alert: TLS 1.3 with a client certificate required, so
// the client is up before the server's certificate_required alert arrives.
// Each connection dies before any response: the retries run out.
func TestTLSAlertAfterHandshake(t *testing.T) {
	p := newPKI(t)
	cert := p.leaf(t, false, time.Now().Add(-time.Hour), time.Now().Add(time.Hour), nil, net.ParseIP("127.0.0.1"))
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13, ClientAuth: tls.RequireAnyClientCert}
	srv := startRaw(t, cfg, func(nc net.Conn) {
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(wait))
		if nc.(*tls.Conn).Handshake() == nil {
			holdOpen(nc) // not reached: the client has no certificate
		}
	})
	opts := fmt.Sprintf(`{"transport":"tls","tls_opts":{"cacertfile":%q,"versions":["tlsv1.3"]},"protocols":["http"],%s}`, p.caFile, retryOpts)
	h, refs := newHost(t, srv.port(), opts, get("/hostile"))
	want := "remote error: tls: certificate required"
	h.await("UP (the client's handshake completes)", func(ev *core.Event) bool { return ev.Kind == core.EvUp })
	// The request dies with the connection: in the DOWN's killed list, or
	// with an ERROR of its own first.
	failed := false
	down := h.await(fmt.Sprintf("DOWN naming %q", want), func(ev *core.Event) bool {
		if ev.Kind == core.EvError && ev.Ref == refs[0] && strings.Contains(ev.Reason, want) {
			failed = true
		}
		return ev.Kind == core.EvDown && strings.Contains(ev.Reason, want)
	})
	if !failed && (len(down.Killed) != 1 || down.Killed[0] != refs[0]) {
		t.Errorf("the request %d neither got an ERROR nor was killed by the DOWN (killed %v)", refs[0], down.Killed)
	}
	h.awaitExit(srv.count, want)
	h.finish(16, srv.count)
}
