package core

import (
	"net"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// An idle connection holds no read buffer (issue 16, W5: 64 KiB each was
// most of an idle connection's memory). On a plain socket the reader waits
// for readability without one and takes a spare buffer to read; TLS and
// tunnels, which buffer inside, keep theirs. A connection starts with small
// buffers (W3: a thousand connections opening at once each read a SETTINGS
// frame and a response, not 64 KiB), and takes big ones once a read fills
// a small one.
const (
	readBufSmall = 4 << 10
	readBufBig   = 64 << 10
)

// The spare buffers: at most 64 of each size for the whole process (4.25
// MiB); more, after a burst of connections reading at once, go to the GC (a
// sync.Pool would keep them all until two GC cycles pass, and an idle
// process has none). Buffers grown past readBufBig are never kept.
var (
	readBufsSmall = make(chan *[readBufSmall]byte, 64)
	readBufsBig   = make(chan *[readBufBig]byte, 64)
)

func getReadBuf(big bool) []byte {
	if big {
		select {
		case b := <-readBufsBig:
			return b[:]
		default:
			return new([readBufBig]byte)[:]
		}
	}
	select {
	case b := <-readBufsSmall:
		return b[:]
	default:
		return new([readBufSmall]byte)[:]
	}
}

func putReadBuf(b []byte) {
	switch len(b) {
	case readBufBig:
		select {
		case readBufsBig <- (*[readBufBig]byte)(b):
		default:
		}
	case readBufSmall:
		select {
		case readBufsSmall <- (*[readBufSmall]byte)(b):
		default:
		}
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
// the wait began must not be missed. A peek that fails takes the socket's
// pending error (SO_ERROR: a reset, say) with it, so the next read would
// see a clean EOF: that error is returned, to be the read's. Other
// failures (the socket closed, a deadline) are left to the read to report.
//
// The peek is a bare recvfrom(2): unix.Recvfrom allocates a sockaddr (and
// converts it) on every call, garbage that made an idle process's heap, and
// so its RSS, grow (issue 16, W5).
// readableNow says, without waiting, whether rc has bytes (or EOF, or an
// error) to read.
func readableNow(rc syscall.RawConn) bool {
	ready := true
	rc.Control(func(fd uintptr) {
		var b [1]byte
		_, _, errno := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
			unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
		ready = errno != unix.EAGAIN
	})
	return ready
}

func waitReadable(rc syscall.RawConn) error {
	var sockErr error
	rc.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, errno := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
			unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case unix.EAGAIN:
			return false
		case 0, unix.EINTR:
		default:
			sockErr = os.NewSyscallError("read", errno)
		}
		return true
	})
	return sockErr
}
