package core

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"
)

// dial resolves, connects and (for tls) handshakes, honouring
// domain_lookup_timeout, connect_timeout and tls_handshake_timeout. It
// returns the connected socket and the protocol to speak on it: the ALPN
// choice on TLS, else the first of "protocols".
func dial(ctx context.Context, c *Conn) (net.Conn, string, error) {
	o := c.opts
	nc, err := dialTransport(ctx, c)
	if err != nil {
		return nil, "", err
	}
	name := o.Protocols[0]
	if o.Transport == "tls" {
		tc := tls.Client(nc, c.tlsConf)
		if c.trace&trmConnect != 0 {
			c.trace1(trTLSStart, 0, []Header{td("timeout", msOrInfinity(o.TLSHandshakeTimeout))})
		}
		hctx := ctx
		if o.TLSHandshakeTimeout > 0 {
			var cancel context.CancelFunc
			hctx, cancel = context.WithTimeout(ctx, o.TLSHandshakeTimeout)
			defer cancel()
		}
		if err := tc.HandshakeContext(hctx); err != nil {
			nc.Close()
			if c.trace&trmConnect != 0 {
				c.traceTLSEnd(tc, "", err)
			}
			return nil, "", err
		}
		switch tc.ConnectionState().NegotiatedProtocol {
		case "h2":
			name = "http2"
		case "http/1.1":
			name = "http"
		default: // no ALPN: HTTP/1.1 if we offered it (Gun does the same)
			if contains(o.Protocols, "http") {
				name = "http"
			}
		}
		if c.trace&trmConnect != 0 {
			c.traceTLSEnd(tc, name, nil)
		}
		nc = tc
	}
	if protocols[name] == nil && name != "socks" { // socks: serve's SOCKS5 handshake (tunnel.go)
		nc.Close()
		return nil, "", fmt.Errorf("protocol %s is not available in this build", name)
	}
	return nc, name, nil
}

func dialTransport(ctx context.Context, c *Conn) (net.Conn, error) {
	o := c.opts
	if nc := c.adopted; nc != nil { // OpenConn: connected by the host, once
		c.adopted = nil
		return nc, nil
	}
	d := net.Dialer{KeepAlive: -1}
	if o.TCP.KeepAlive {
		// As gen_tcp: what is not given keeps the OS default (negative).
		d.KeepAlive = 0
		d.KeepAliveConfig = net.KeepAliveConfig{Enable: true, Idle: -1, Interval: -1, Count: -1}
		if o.TCP.KeepIdle > 0 {
			d.KeepAliveConfig.Idle = time.Duration(o.TCP.KeepIdle) * time.Second
		}
		if o.TCP.KeepIntvl > 0 {
			d.KeepAliveConfig.Interval = time.Duration(o.TCP.KeepIntvl) * time.Second
		}
		if o.TCP.KeepCnt > 0 {
			d.KeepAliveConfig.Count = o.TCP.KeepCnt
		}
	}
	if c.unixPath != "" {
		if o.ConnectTimeout > 0 {
			d.Timeout = o.ConnectTimeout
		}
		if c.trace&trmConnect != 0 {
			c.trace1(trConnectStart, 0, []Header{td("unix_path", c.unixPath), td("timeout", msOrInfinity(o.ConnectTimeout))})
		}
		nc, err := d.DialContext(ctx, "unix", c.unixPath)
		if c.trace&trmConnect != 0 {
			c.traceConnected(nc, err)
		}
		return nc, err
	}
	if o.TCP.LocalIP != "" || o.TCP.LocalPort != 0 {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(o.TCP.LocalIP), Port: o.TCP.LocalPort}
	}
	d.Control = o.TCP.sockControl
	network := "tcp"
	if o.TCP.Inet4 {
		network = "tcp4"
	} else if o.TCP.Inet6 {
		network = "tcp6"
	}
	// Resolve first, under its own timeout, as Gun's domain_lookup does.
	var ips []net.IP
	if c.trace&trmConnect != 0 {
		c.trace1(trLookupStart, 0, []Header{td("host", c.host), td("port", strconv.Itoa(c.port)),
			td("timeout", msOrInfinity(o.DomainLookupTimeout))})
	}
	if ip := net.ParseIP(c.host); ip != nil {
		ips = []net.IP{ip}
	} else {
		lctx := ctx
		if o.DomainLookupTimeout > 0 {
			var cancel context.CancelFunc
			lctx, cancel = context.WithTimeout(ctx, o.DomainLookupTimeout)
			defer cancel()
		}
		addrs, err := net.DefaultResolver.LookupIPAddr(lctx, c.host)
		if err != nil {
			if c.trace&trmConnect != 0 {
				c.trace1(trLookupEnd, 0, []Header{td("host", c.host), td("port", strconv.Itoa(c.port)), td("error", reasonOf(err))})
			}
			return nil, err
		}
		for _, a := range addrs {
			// inet / inet6 choose one family, as gen_tcp's do.
			if (o.TCP.Inet4 && a.IP.To4() == nil) || (o.TCP.Inet6 && a.IP.To4() != nil) {
				continue
			}
			ips = append(ips, a.IP)
		}
		if len(ips) == 0 {
			err := &net.DNSError{Err: "no suitable address", Name: c.host, IsNotFound: true}
			if c.trace&trmConnect != 0 {
				c.trace1(trLookupEnd, 0, []Header{td("host", c.host), td("port", strconv.Itoa(c.port)), td("error", reasonOf(err))})
			}
			return nil, err
		}
	}
	if c.trace&trmConnect != 0 {
		c.traceLookedUp(ips, o.ConnectTimeout)
	}
	var last error
	for _, ip := range ips {
		cctx := ctx
		var cancel context.CancelFunc = func() {}
		if o.ConnectTimeout > 0 {
			cctx, cancel = context.WithTimeout(ctx, o.ConnectTimeout)
		}
		nc, err := d.DialContext(cctx, network, net.JoinHostPort(ip.String(), strconv.Itoa(c.port)))
		cancel()
		if err == nil {
			if tc, ok := nc.(*net.TCPConn); ok {
				tc.SetNoDelay(o.TCP.NoDelay)
				if o.TCP.SndBuf > 0 {
					tc.SetWriteBuffer(o.TCP.SndBuf)
				}
				if o.TCP.RecBuf > 0 {
					tc.SetReadBuffer(o.TCP.RecBuf)
				}
			}
			if c.trace&trmConnect != 0 {
				c.traceConnected(nc, nil)
			}
			return nc, nil
		}
		last = err
		if ctx.Err() != nil {
			break
		}
	}
	if c.trace&trmConnect != 0 {
		c.traceConnected(nil, last)
	}
	return nil, last
}

// sockControl sets tcp_opts' socket options on the socket before it
// connects (SO_BINDTODEVICE must precede connect to steer routing). A
// failure (eperm, enodev...) fails the connect attempt with that errno.
func (t *TCPOpts) sockControl(network, address string, rc syscall.RawConn) error {
	var serr error
	set := func(fd, level, opt, v int) {
		if serr == nil {
			serr = os.NewSyscallError("setsockopt", syscall.SetsockoptInt(fd, level, opt, v))
		}
	}
	err := rc.Control(func(p uintptr) {
		fd := int(p)
		v6 := network == "tcp6"
		if t.BindToDevice != "" {
			serr = os.NewSyscallError("setsockopt", syscall.BindToDevice(fd, t.BindToDevice))
		}
		if t.ReuseAddr {
			set(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
		}
		if t.Linger >= 0 {
			if serr == nil {
				serr = os.NewSyscallError("setsockopt", syscall.SetsockoptLinger(fd, syscall.SOL_SOCKET, syscall.SO_LINGER,
					&syscall.Linger{Onoff: 1, Linger: int32(t.Linger)}))
			}
		}
		if t.TOS >= 0 {
			if v6 {
				set(fd, syscall.IPPROTO_IPV6, syscall.IPV6_TCLASS, t.TOS)
			} else {
				set(fd, syscall.IPPROTO_IP, syscall.IP_TOS, t.TOS)
			}
		}
		// After tos: Linux sets the priority from IP_TOS.
		if t.Priority >= 0 {
			set(fd, syscall.SOL_SOCKET, syscall.SO_PRIORITY, t.Priority)
		}
		if t.V6Only >= 0 && v6 {
			set(fd, syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY, t.V6Only)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// isVerifyFailure: err is our verification of the server's certificate
// failing (expired, unknown authority, wrong host name...): not transient,
// a retry would fail the same way.
func isVerifyFailure(err error) bool {
	var certErr *tls.CertificateVerificationError
	return errors.As(err, &certErr)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// reasonOf turns an error into Gun's reason: the POSIX atom for socket
// errors (econnrefused, econnreset, ...), "timeout", "nxdomain", "closed"
// for a peer's close; else the error's text.
func reasonOf(err error) string {
	if err == nil {
		return "normal"
	}
	var errno syscall.Errno
	var dnsErr *net.DNSError
	var alert tls.AlertError
	var certErr *tls.CertificateVerificationError
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, io.ErrUnexpectedEOF):
		return "closed"
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return "nxdomain"
		}
		if dnsErr.IsTimeout {
			return "timeout"
		}
		return "nxdomain: " + dnsErr.Error()
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.As(err, &errno):
		if name := errnoNames[errno]; name != "" {
			return name
		}
		return "error: " + errno.Error()
	case errors.As(err, &certErr):
		return "tls_alert: " + certAlertName(certErr.Err) + ": " + certErr.Error()
	case errors.As(err, &alert):
		if name := alertNames[uint8(alert)]; name != "" {
			return "tls_alert: " + name + ": " + alert.Error()
		}
		return "tls_alert: " + alert.Error()
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return err.Error()
}

// certAlertName is the alert OTP's ssl reports for a certificate our side
// refused (Gun's {tls_alert, {Name, Text}}): unknown_ca for an unknown
// issuer (self-signed included), certificate_expired, handshake_failure
// for a host name mismatch (ssl's hostname_check_failed), else
// bad_certificate.
func certAlertName(err error) string {
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var host x509.HostnameError
	switch {
	case errors.As(err, &unknown):
		return "unknown_ca"
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return "certificate_expired"
	case errors.As(err, &host):
		return "handshake_failure"
	}
	return "bad_certificate"
}

// alertNames are the TLS alerts a peer sends, by code, spelled as OTP's
// ssl spells them.
var alertNames = map[uint8]string{
	0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 22: "record_overflow",
	40: "handshake_failure", 42: "bad_certificate", 43: "unsupported_certificate", 44: "certificate_revoked",
	45: "certificate_expired", 46: "certificate_unknown", 47: "illegal_parameter", 48: "unknown_ca",
	49: "access_denied", 50: "decode_error", 51: "decrypt_error", 70: "protocol_version",
	71: "insufficient_security", 80: "internal_error", 86: "inappropriate_fallback", 90: "user_canceled",
	100: "no_renegotiation", 109: "missing_extension", 110: "unsupported_extension", 112: "unrecognized_name",
	113: "bad_certificate_status_response", 115: "unknown_psk_identity", 116: "certificate_required",
	120: "no_application_protocol",
}

var errnoNames = map[syscall.Errno]string{
	syscall.ECONNREFUSED: "econnrefused", syscall.ECONNRESET: "econnreset", syscall.ECONNABORTED: "econnaborted",
	syscall.EPIPE: "epipe", syscall.ETIMEDOUT: "etimedout", syscall.EHOSTUNREACH: "ehostunreach",
	syscall.ENETUNREACH: "enetunreach", syscall.ENOENT: "enoent", syscall.EACCES: "eacces",
	syscall.EADDRINUSE: "eaddrinuse", syscall.EADDRNOTAVAIL: "eaddrnotavail", syscall.EAFNOSUPPORT: "eafnosupport",
	syscall.EPERM: "eperm", syscall.ENODEV: "enodev",
}
