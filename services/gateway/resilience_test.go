package gateway_test

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/gateway"
)

func TestRateLimitPerTenant(t *testing.T) {
	e := newEnv(t)
	r := e.do("POST", "/api/v1/tenants", e.adminKey, map[string]any{"id": "slow", "name": "Slow",
		"rate_limit": map[string]any{"requests_per_second": 1, "burst": 5}})
	require.Equal(t, http.StatusCreated, r.StatusCode, "%s", r.Body)
	slow := e.do("POST", "/api/v1/tenants/slow/api-keys", e.adminKey, map[string]any{"name": "k", "role": "tenant-viewer"}).json(t)["key"].(string)
	fast := e.tenantWithKeys("fast")[tenancy.RoleTenantViewer]

	var codes []int
	var limited response
	for range 12 {
		r := e.do("GET", "/api/v1/catalog/services", slow, nil)
		codes = append(codes, r.StatusCode)
		if r.StatusCode == http.StatusTooManyRequests && limited.Response == nil {
			limited = r
		}
	}
	ok := 0
	for _, c := range codes {
		if c == http.StatusOK {
			ok++
		}
	}
	// Burst 5 plus at most one refill during the loop.
	require.GreaterOrEqual(t, ok, 5, "codes %v", codes)
	require.LessOrEqual(t, ok, 6, "codes %v", codes)
	require.NotNil(t, limited.Response, "codes %v", codes)
	require.Equal(t, "application/problem+json", limited.Header.Get("Content-Type"))
	ra, err := strconv.Atoi(limited.Header.Get("Retry-After"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, ra, 1)
	require.Equal(t, "5", limited.Header.Get("RateLimit-Limit"))
	require.Equal(t, "0", limited.Header.Get("RateLimit-Remaining"))
	require.NotEmpty(t, limited.Header.Get("RateLimit-Reset"))
	require.Equal(t, float64(429), limited.json(t)["status"])

	// The gateway's own routes share the tenant's bucket.
	r = e.do("GET", "/api/v1/tenants/slow/quota", slow, nil)
	require.Equal(t, http.StatusTooManyRequests, r.StatusCode)
	validate(t, r)

	// Another tenant is unaffected.
	for range 20 {
		r := e.do("GET", "/api/v1/catalog/services", fast, nil)
		require.Equal(t, http.StatusOK, r.StatusCode)
		require.NotEmpty(t, r.Header.Get("RateLimit-Remaining"))
	}
}

// restartable is an upstream that can be stopped and started on the same address.
type restartable struct {
	addr string
	srv  *http.Server
}

func (u *restartable) start(t *testing.T) {
	t.Helper()
	var ln net.Listener
	require.Eventually(t, func() bool {
		var err error
		ln, err = net.Listen("tcp", u.addr)
		return err == nil
	}, 5*time.Second, 20*time.Millisecond)
	u.addr = ln.Addr().String()
	u.srv = &http.Server{Handler: tenancy.Middleware(tenancy.AudienceCatalog, []byte(testSecret))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"items":[]}`))
	}))}
	go func() { _ = u.srv.Serve(ln) }()
}

func (u *restartable) stop() { _ = u.srv.Close() }

func TestBreakerOpensAndRecovers(t *testing.T) {
	up := &restartable{addr: "127.0.0.1:0"}
	up.start(t)
	t.Cleanup(up.stop)
	e := newEnv(t, func(c *gateway.Config) {
		c.CatalogURL = "http://" + up.addr
		c.BreakerFailures = 3
		c.BreakerOpenFor = 300 * time.Millisecond
		c.UpstreamRetries = 1
	})
	key := e.tenantWithKeys("acme")[tenancy.RoleTenantViewer]
	require.Equal(t, http.StatusOK, e.do("GET", "/api/v1/catalog/services", key, nil).StatusCode)

	up.stop()
	// Connection refused answers 503 at once; after 3 failures the breaker is
	// open and answers without trying the upstream.
	for i := range 5 {
		start := time.Now()
		r := e.do("GET", "/api/v1/catalog/services", key, nil)
		require.Equal(t, http.StatusServiceUnavailable, r.StatusCode, "attempt %d: %s", i, r.Body)
		require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"))
		require.NotEmpty(t, r.Header.Get("Retry-After"))
		require.Less(t, time.Since(start), time.Second, "503 must be quick")
	}
	// Other upstreams' breakers are independent: scheduling still points at the echo upstream.
	require.Equal(t, http.StatusOK, e.do("GET", "/api/v1/placements", key, nil).StatusCode)

	up.start(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := e.do("GET", "/api/v1/catalog/services", key, nil)
		if r.StatusCode == http.StatusOK {
			break
		}
		require.Equal(t, http.StatusServiceUnavailable, r.StatusCode)
		require.True(t, time.Now().Before(deadline), "gateway did not recover after the upstream returned")
		time.Sleep(50 * time.Millisecond)
	}
}

func TestUpstreamTimeoutIsGatewayTimeout(t *testing.T) {
	release := make(chan struct{})
	slow := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = slow.Serve(ln) }()
	t.Cleanup(func() { close(release); _ = slow.Shutdown(context.Background()) })
	e := newEnv(t, func(c *gateway.Config) {
		c.SchedulingURL = "http://" + ln.Addr().String()
		c.UpstreamTimeout = 200 * time.Millisecond
	})
	key := e.tenantWithKeys("acme")[tenancy.RoleTenantViewer]
	start := time.Now()
	r := e.do("POST", "/api/v1/placements", key, map[string]any{})
	require.Equal(t, http.StatusGatewayTimeout, r.StatusCode, "%s", r.Body)
	require.Less(t, time.Since(start), 2*time.Second)
}

// TestRequestIDReachesUpstream: the id the gateway answers with is the one
// the service saw, so a user quoting it finds both log lines.
func TestRequestIDReachesUpstream(t *testing.T) {
	e := newEnv(t)
	for _, sent := range []string{"", "client-chosen-id-1"} {
		var hdr []string
		if sent != "" {
			hdr = []string{"X-Request-Id", sent}
		}
		r := e.do("GET", "/api/v1/catalog/services", e.adminKey, nil, hdr...)
		require.Equal(t, http.StatusOK, r.StatusCode, string(r.Body))
		got := r.Header.Get("X-Request-Id")
		require.NotEmpty(t, got)
		require.Equal(t, got, r.Header.Get("X-Seen-Request-Id"))
		if sent != "" {
			require.Equal(t, sent, got)
		}
	}
}
