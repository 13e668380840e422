package gateway_test

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/services/gateway"
)

func basic(user, pass string) []string {
	return []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}
}

// TestOSBRateLimitedAndAudited: /v2/* is rate limited per broker username,
// its mutating calls are audited as osb:<username>, and calls without usable
// Basic credentials or refused by the catalog count as failed
// authentications of the client address, which is then refused with 429
// without reaching the catalog.
func TestOSBRateLimitedAndAudited(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) {
		c.RateLimitRPS, c.RateLimitBurst = 1, 3
		c.AuthFailures = 4
	})
	path := "/v2/service_instances/osb-guard-1?accepts_incomplete=true"

	for i := range 3 {
		r := e.do("PUT", path, "", map[string]any{}, basic("osb-aaaa", "pw")...)
		require.Equal(t, http.StatusOK, r.StatusCode, "call %d: %s", i+1, r.Body)
	}
	r := e.do("PUT", path, "", map[string]any{}, basic("osb-aaaa", "pw")...)
	require.Equal(t, http.StatusTooManyRequests, r.StatusCode, "%s", r.Body)
	require.NotEmpty(t, r.Header.Get("Retry-After"))
	require.Equal(t, "TooManyRequests", r.json(t)["error"], "OSB error format")
	require.Equal(t, http.StatusOK, e.do("PUT", path, "", map[string]any{}, basic("osb-bbbb", "pw")...).StatusCode,
		"another broker credential has its own bucket")
	require.Equal(t, int64(4), e.catalog.calls.Load(), "the refused call did not reach the catalog")

	audit := e.do("GET", "/api/v1/audit", e.adminKey, nil)
	require.Equal(t, http.StatusOK, audit.StatusCode, "%s", audit.Body)
	subjects := map[string]int{}
	for _, it := range audit.json(t)["items"].([]any) {
		entry := it.(map[string]any)
		if entry["path"] != "/v2/service_instances/osb-guard-1" {
			continue
		}
		require.Equal(t, "PUT", entry["method"])
		require.Equal(t, "tenant-member", entry["role"])
		require.Nil(t, entry["tenant_id"])
		require.Equal(t, float64(http.StatusOK), entry["status"])
		subjects[entry["key_id"].(string)]++
	}
	require.Equal(t, map[string]int{"osb:osb-aaaa": 3, "osb:osb-bbbb": 1}, subjects)

	// Failed authentications: none, malformed, and one the catalog refuses.
	calls := e.catalog.calls.Load()
	for _, hdr := range [][]string{nil, {"Authorization", "Basic !!!"}, {"Authorization", "Bearer cnp_x"}} {
		r := e.do("GET", "/v2/catalog", "", nil, hdr...)
		require.Equal(t, http.StatusUnauthorized, r.StatusCode, "%v: %s", hdr, r.Body)
		require.Equal(t, "Unauthorized", r.json(t)["error"])
		require.Contains(t, r.Header.Get("WWW-Authenticate"), "Basic")
	}
	require.Equal(t, calls, e.catalog.calls.Load(), "unusable credentials do not reach the catalog")
	require.Equal(t, http.StatusUnauthorized, e.do("GET", "/v2/catalog", "", nil, basic("osb-cccc", "wrong")...).StatusCode)
	require.Equal(t, calls+1, e.catalog.calls.Load())

	// Four failures: the address is refused, even with a good credential,
	// and even for the API.
	for _, hdr := range [][]string{basic("osb-aaaa", "pw"), basic("osb-dddd", "wrong")} {
		r := e.do("GET", "/v2/catalog", "", nil, hdr...)
		require.Equal(t, http.StatusTooManyRequests, r.StatusCode, "%s", r.Body)
		ra, err := strconv.Atoi(r.Header.Get("Retry-After"))
		require.NoError(t, err)
		require.True(t, ra >= 1 && ra <= 60, "Retry-After %d", ra)
	}
	require.Equal(t, calls+1, e.catalog.calls.Load(), "a throttled address does not reach the catalog")
	r = e.do("GET", "/api/v1/tenants", "cnp_made_up", nil)
	require.Equal(t, http.StatusTooManyRequests, r.StatusCode, "%s", r.Body)
	require.Equal(t, "https://canopy.dev/problems/too-many-failed-authentications", r.json(t)["type"])
}
