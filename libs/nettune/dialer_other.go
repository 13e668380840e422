//go:build !linux

package nettune

import (
	"syscall"
	"time"
)

const userTimeoutSupported = false

// userTimeoutControl returns nil: TCP_USER_TIMEOUT is set on Linux only, where
// Canopy's nodes and services run; elsewhere keepalive alone applies.
func userTimeoutControl(time.Duration) func(network, address string, c syscall.RawConn) error {
	return nil
}
