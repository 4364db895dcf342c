package core

import (
	"net"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// An idle connection holds no read buffer (issue 16, W5: 64 KiB each was
// most of an idle connection's memory). On a plain socket the reader waits
// for readability without one and takes a pooled buffer to read; TLS and
// tunnels, which buffer inside, keep theirs.
const readBufSize = 64 << 10

var readBufs = sync.Pool{New: func() any { return new([readBufSize]byte) }}

// idleWaitable is nc's raw socket when nc is a plain TCP or Unix socket.
func idleWaitable(nc net.Conn) syscall.RawConn {
	switch nc.(type) {
	case *net.TCPConn, *net.UnixConn:
		if rc, err := nc.(syscall.Conn).SyscallConn(); err == nil {
			return rc
		}
	}
	return nil
}

// waitReadable blocks until rc has bytes (or EOF, or an error) to read. It
// peeks rather than trusting the poller alone: readiness that came before
// the wait began must not be missed.
func waitReadable(rc syscall.RawConn) error {
	var b [1]byte
	return rc.Read(func(fd uintptr) bool {
		_, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		return err != unix.EAGAIN
	})
}
