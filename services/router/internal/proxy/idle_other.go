//go:build !linux

package proxy

import (
	"net"
	"time"
)

const idleSupported = false

// sinceData is unknown without TCP_INFO: connections are never idle.
func sinceData(*net.TCPConn) (time.Duration, bool) { return 0, false }
