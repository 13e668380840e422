//go:build unix

package proxy

import (
	"errors"
	"syscall"
)

// alive reports whether an idle upstream connection is still open: a
// non-blocking peek sees the upstream's FIN (a read of 0) or stray bytes
// without consuming anything or waiting.
func alive(c *upConn) bool {
	if c.br.Buffered() > 0 {
		return false // bytes nobody asked for: the stream is out of step
	}
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	ok = true
	var b [1]byte
	err = raw.Read(func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// Only "would block" means open and quiet; a read of 0 (closed), of
		// stray bytes or a reset all mean the connection is not reusable.
		ok = errors.Is(rerr, syscall.EAGAIN) || errors.Is(rerr, syscall.EINTR)
		return true
	})
	return ok && err == nil
}
