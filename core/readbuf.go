package core

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// An idle connection holds no read buffer (issue 16, W5: 64 KiB each was
// most of an idle connection's memory). On a plain socket the reader waits
// for readability without one and takes a pooled buffer to read; TLS and
// tunnels, which buffer inside, keep theirs.
const readBufSize = 64 << 10

// readBufs keeps at most 64 spare buffers (4 MiB) for the whole process;
// more, after a burst of many connections reading at once, go to the GC
// (a sync.Pool would keep them all until two GC cycles pass, and an idle
// process has none).
var readBufs = make(chan *[readBufSize]byte, 64)

func getReadBuf() []byte {
	select {
	case b := <-readBufs:
		return b[:]
	default:
		return new([readBufSize]byte)[:]
	}
}

func putReadBuf(b []byte) {
	select {
	case readBufs <- (*[readBufSize]byte)(b):
	default:
	}
}

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
