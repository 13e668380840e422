package nettune

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDialerFields(t *testing.T) {
	s := DialerSettings{
		ConnectTimeout: 1500 * time.Millisecond,
		KeepAlive:      KeepAlive{Idle: 30 * time.Second, Interval: 10 * time.Second, Count: 4},
		UserTimeout:    70 * time.Second,
	}
	d := s.Dialer()
	assert.Equal(t, 1500*time.Millisecond, d.Timeout)
	assert.Equal(t, net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 10 * time.Second, Count: 4}, d.KeepAliveConfig)
	assert.Equal(t, UserTimeoutSupported(), d.Control != nil)

	s.UserTimeout = 0
	assert.Nil(t, s.Dialer().Control, "no user timeout, no control hook")
}

// TestDialContextHonoursContext: a cancelled context fails the dial at once,
// with no hidden retry.
func TestDialContextHonoursContext(t *testing.T) {
	p, err := Default(SingleAZ)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	_, err = p.Dialer.DialContext(ctx, "tcp", "127.0.0.1:1")
	require.Error(t, err)
	assert.Less(t, time.Since(start), time.Second)
}
