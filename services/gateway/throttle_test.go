package gateway_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/services/gateway"
)

// TestAuthThrottleBehindTrustedProxy: behind a trusted proxy the failures
// count against the client in X-Forwarded-For, so one client guessing keys
// does not lock out the others behind the same proxy; without trust the
// header is ignored and cannot be used to dodge the throttle.
func TestAuthThrottleBehindTrustedProxy(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) {
		c.AuthFailures = 3
		c.TrustedProxies = []string{"127.0.0.0/8", "::1"}
	})
	guesser := []string{"X-Forwarded-For", "198.51.100.1"}
	for range 3 {
		require.Equal(t, http.StatusUnauthorized, e.do("GET", "/api/v1/tenants", "cnp_made_up", nil, guesser...).StatusCode)
	}
	r := e.do("GET", "/api/v1/tenants", "cnp_made_up", nil, guesser...)
	require.Equal(t, http.StatusTooManyRequests, r.StatusCode, "%s", r.Body)
	require.NotEmpty(t, r.Header.Get("Retry-After"))
	require.Equal(t, http.StatusOK, e.do("GET", "/api/v1/tenants", e.adminKey, nil, "X-Forwarded-For", "198.51.100.2").StatusCode,
		"another client behind the same proxy is served")

	direct := newEnv(t, func(c *gateway.Config) { c.AuthFailures = 3 })
	for i := range 3 {
		spoofed := []string{"X-Forwarded-For", "203.0.113." + string(rune('1'+i))}
		require.Equal(t, http.StatusUnauthorized, direct.do("GET", "/api/v1/tenants", "cnp_made_up", nil, spoofed...).StatusCode)
	}
	require.Equal(t, http.StatusTooManyRequests, direct.do("GET", "/api/v1/tenants", "cnp_made_up", nil, "X-Forwarded-For", "203.0.113.9").StatusCode,
		"an untrusted peer's X-Forwarded-For does not change its address")
}
