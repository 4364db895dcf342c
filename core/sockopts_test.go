package core

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// sockoptsDial connects with tcp_opts opts to a listener of its own on
// host (127.0.0.1 or ::1) and returns the client socket.
func sockoptsDial(t *testing.T, host, connectHost, opts string) (net.Conn, error) {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("listen %s: %v", host, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			s, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { s.Close() })
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	o, err := ParseOptions([]byte(`{"tcp_opts":`+opts+`}`), port)
	if err != nil {
		t.Fatalf("ParseOptions(%s): %v", opts, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := dialTransport(ctx, &Conn{opts: o, host: connectHost, port: port})
	if nc != nil {
		t.Cleanup(func() { nc.Close() })
	}
	return nc, err
}

func sockoptGet(t *testing.T, nc net.Conn, level, opt int) int {
	t.Helper()
	rc, err := nc.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := rc.Control(func(fd uintptr) { v, gerr = syscall.GetsockoptInt(int(fd), level, opt) }); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatalf("getsockopt %d/%d: %v", level, opt, gerr)
	}
	return v
}

// TestTCPSockOptsApplied: each tcp_opts socket option is on the client
// socket, as getsockopt reads it back.
func TestTCPSockOptsApplied(t *testing.T) {
	nc, err := sockoptsDial(t, "127.0.0.1", "127.0.0.1", `{"keepalive":true,"keepidle":77,"keepintvl":11,"keepcnt":5,
		"linger":7,"tos":40,"priority":3,"reuseaddr":true,"bind_to_device":"lo"}`)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	checks := []struct {
		name       string
		level, opt int
		want       int
	}{
		{"keepalive", syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
		{"keepidle", syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, 77},
		{"keepintvl", syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, 11},
		{"keepcnt", syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, 5},
		{"tos", syscall.IPPROTO_IP, syscall.IP_TOS, 40},
		{"priority", syscall.SOL_SOCKET, syscall.SO_PRIORITY, 3},
		{"reuseaddr", syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1},
	}
	for _, c := range checks {
		if got := sockoptGet(t, nc, c.level, c.opt); got != c.want {
			t.Errorf("%s: getsockopt = %d, want %d", c.name, got, c.want)
		}
	}
	rc, _ := nc.(*net.TCPConn).SyscallConn()
	rc.Control(func(fd uintptr) {
		l, err := unix.GetsockoptLinger(int(fd), unix.SOL_SOCKET, unix.SO_LINGER)
		if err != nil || l.Onoff == 0 || l.Linger != 7 {
			t.Errorf("linger: %+v %v, want on, 7 s", l, err)
		}
		dev, err := unix.GetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE)
		if err != nil || strings.TrimRight(dev, "\x00") != "lo" {
			t.Errorf("bind_to_device: %q %v, want lo", dev, err)
		}
	})

	// Defaults: keepalive off, no linger, nothing bound.
	nc, err = sockoptsDial(t, "127.0.0.1", "127.0.0.1", `{}`)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if got := sockoptGet(t, nc, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE); got != 0 {
		t.Errorf("default keepalive = %d, want 0", got)
	}
}

// TestTCPSockOptsV6: tos is IPV6_TCLASS and ipv6_v6only IPV6_V6ONLY on an
// IPv6 socket.
func TestTCPSockOptsV6(t *testing.T) {
	if ln, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		t.Fatalf("this test needs ::1 on lo: %v", err)
	} else {
		ln.Close()
	}
	for _, v := range []int{0, 1} {
		nc, err := sockoptsDial(t, "::1", "::1", `{"tos":32,"ipv6_v6only":`+strconv.FormatBool(v == 1)+`}`)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		if got := sockoptGet(t, nc, syscall.IPPROTO_IPV6, syscall.IPV6_TCLASS); got != 32 {
			t.Errorf("tos on IPv6: IPV6_TCLASS = %d, want 32", got)
		}
		if got := sockoptGet(t, nc, syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY); got != v {
			t.Errorf("ipv6_v6only: IPV6_V6ONLY = %d, want %d", got, v)
		}
	}
}

// TestTCPInetFamilyStrict: inet and inet6 each allow one address family
// only, as gen_tcp's do (Gun's gun_tcp looks up with the family's module),
// for literals and for names: "localhost" is 127.0.0.1 only here.
func TestTCPInetFamilyStrict(t *testing.T) {
	nc, err := sockoptsDial(t, "127.0.0.1", "localhost", `{"inet":true}`)
	if err != nil || nc.RemoteAddr().(*net.TCPAddr).IP.To4() == nil {
		t.Fatalf("inet to localhost: %v %v, want an IPv4 connection", nc, err)
	}
	if _, err = sockoptsDial(t, "127.0.0.1", "localhost", `{"inet6":true}`); reasonOf(err) != "nxdomain" {
		t.Fatalf("inet6 to localhost (IPv4 only): %v (%s), want nxdomain", err, reasonOf(err))
	}
	if _, err = sockoptsDial(t, "127.0.0.1", "127.0.0.1", `{"inet6":true}`); err == nil {
		t.Fatal("inet6 to 127.0.0.1 connected")
	}
	if _, err = sockoptsDial(t, "::1", "::1", `{"inet":true}`); err == nil {
		t.Fatal("inet to ::1 connected")
	}
	nc, err = sockoptsDial(t, "::1", "::1", `{"inet6":true}`)
	if err != nil {
		t.Fatalf("inet6 to ::1: %v", err)
	}
}

// TestTCPSockOptsRefused: bad values and options gunmetal does not have
// are refused naming them.
func TestTCPSockOptsRefused(t *testing.T) {
	for js, key := range map[string]string{
		`{"buffer":4096}`:                        "buffer",
		`{"keepidle":10}`:                        "keepidle",
		`{"keepalive":false,"keepcnt":3}`:        "keepcnt",
		`{"keepalive":true,"keepintvl":0}`:       "keepintvl",
		`{"linger":true}`:                        "linger",
		`{"linger":-1}`:                          "linger",
		`{"tos":256}`:                            "tos",
		`{"priority":-1}`:                        "priority",
		`{"reuseaddr":1}`:                        "reuseaddr",
		`{"bind_to_device":""}`:                  "bind_to_device",
		`{"bind_to_device":"a-very-long-name0"}`: "bind_to_device",
		`{"inet":true,"ipv6_v6only":true}`:       "ipv6_v6only",
	} {
		_, err := ParseOptions([]byte(`{"tcp_opts":`+js+`}`), 80)
		var oe *OptionError
		if !errors.As(err, &oe) || oe.Key != key || oe.Proto != "tcp_opts" {
			t.Errorf("%s: %v, want an OptionError naming tcp_opts.%s", js, err, key)
		}
	}
	// A device that does not exist fails the connect with enodev.
	_, err := sockoptsDial(t, "127.0.0.1", "127.0.0.1", `{"bind_to_device":"nosuchdev0"}`)
	if reasonOf(err) != "enodev" {
		t.Fatalf("bind_to_device nosuchdev0: %v (%s), want enodev", err, reasonOf(err))
	}
}
