package gateway_test

import (
	"context"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/store/storetest"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/gateway"
)

// openShared opens another handle on cfg's database, as a second gateway
// process would.
func openShared(t *testing.T, cfg store.Config) *store.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := store.Open(ctx, cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// within polls cond until it holds and returns how long that took; it
// fails the test when bound passes first.
func within(t *testing.T, what string, bound time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(bound)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("%s: not within %s", what, bound)
		}
	}
	return time.Since(start)
}

// Two gateway replicas on one database and one Redis (docs/gateway.md,
// "Several replicas"): a key revoked through one is refused by the other
// within the key cache TTL, a tenant's new rate limit applies on the other
// within the same TTL, and a quota change is read at once (not cached).
func TestReplicasAgreeWithinTheKeyCacheTTL(t *testing.T) {
	const ttl = time.Second
	// slack covers the request round trips and a loaded machine.
	const slack = time.Second
	cfg := storetest.NewConfig(t, "gw_replicas")
	prefix := randomPrefix()
	shared := func(c *gateway.Config) { c.KeyCacheTTL, c.RateLimitPrefix = ttl, prefix }
	a := newEnvOn(t, openShared(t, cfg), shared)
	b := newEnvOn(t, openShared(t, cfg), shared)

	keys := a.tenantWithKeys("acme")
	created := a.do("POST", "/api/v1/tenants/acme/api-keys", a.adminKey, map[string]any{"name": "ci", "role": string(tenancy.RoleTenantViewer)})
	require.Equal(t, http.StatusCreated, created.StatusCode, "%s", created.Body)
	id, key := created.json(t)["id"].(string), created.json(t)["key"].(string)

	const probe = "/api/v1/tenants/acme/rate-limit"
	for _, e := range []*env{a, b} { // both replicas cache the key
		require.Equal(t, http.StatusOK, e.do("GET", probe, key, nil).StatusCode)
	}

	t.Run("revoked key", func(t *testing.T) {
		require.Equal(t, http.StatusNoContent, a.do("DELETE", "/api/v1/tenants/acme/api-keys/"+id, a.adminKey, nil).StatusCode)
		require.Equal(t, http.StatusUnauthorized, a.do("GET", probe, key, nil).StatusCode, "the revoking replica refuses at once")
		took := within(t, "the other replica refuses the revoked key", ttl+slack, func() bool {
			return b.do("GET", probe, key, nil).StatusCode == http.StatusUnauthorized
		})
		t.Logf("revocation reached the other replica after %s (key cache TTL %s)", took.Round(time.Millisecond), ttl)
	})

	t.Run("changed rate limit", func(t *testing.T) {
		viewer := keys[tenancy.RoleTenantViewer]
		require.Equal(t, "1000", b.do("GET", probe, viewer, nil).Header.Get("RateLimit-Limit"), "the default burst first")
		r := a.do("PUT", probe, a.adminKey, map[string]any{"requests_per_second": 500, "burst": 700})
		require.Equal(t, http.StatusOK, r.StatusCode, "%s", r.Body)
		took := within(t, "the other replica applies the new limit", ttl+slack, func() bool {
			return b.do("GET", probe, viewer, nil).Header.Get("RateLimit-Limit") == "700"
		})
		t.Logf("new rate limit applied on the other replica after %s", took.Round(time.Millisecond))
	})

	t.Run("changed quota", func(t *testing.T) {
		const path = "/internal/v1/tenants/acme/quota"
		quota := map[string]any{"max_instances": 7, "max_vcpu": 8, "max_memory_mb": 16384, "max_storage_gb": 200}
		r := a.do("PUT", "/api/v1/tenants/acme/quota", a.adminKey, quota)
		require.Equal(t, http.StatusOK, r.StatusCode, "%s", r.Body)
		got := b.doAt(b.internal, "GET", path, "", nil, signedHeaders(testSecret, tenancy.AudienceGateway, "GET", path, provisioningIdentity)...)
		require.Equal(t, http.StatusOK, got.StatusCode, "%s", got.Body)
		require.Equal(t, float64(7), got.json(t)["max_instances"], "quotas are read from the database on every ask")
	})
}
