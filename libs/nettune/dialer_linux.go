//go:build linux

package nettune

import (
	"fmt"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const userTimeoutSupported = true

// userTimeoutControl returns a net.Dialer Control function that sets
// TCP_USER_TIMEOUT (milliseconds) on TCP sockets before connect.
func userTimeoutControl(d time.Duration) func(network, address string, c syscall.RawConn) error {
	ms := int(d.Milliseconds())
	return func(network, _ string, c syscall.RawConn) error {
		if !strings.HasPrefix(network, "tcp") {
			return nil
		}
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, ms)
		}); err != nil {
			return fmt.Errorf("nettune: raw conn control: %w", err)
		}
		if serr != nil {
			return fmt.Errorf("nettune: set TCP_USER_TIMEOUT=%dms: %w", ms, serr)
		}
		return nil
	}
}
