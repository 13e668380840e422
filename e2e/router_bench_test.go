package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/e2e/drill"
	"github.com/canopy-platform/canopy/e2e/loadpeer"
)

// BenchmarkRouter is issue 12's data-path benchmark on the platform as it
// runs: the all-in-one binary, a single-AZ Redis and a single-AZ MySQL
// ordered through the API, and the same load (BenchmarkRouterPeers'
// workloads) straight to each instance's node ("direct"), through HAProxy
// in front of that node, and through the router's read-write endpoint from
// the binding's credentials; printed with ops/s, p99 and the
// router/haproxy ratios (goal ≥ 0.90× throughput, added p99 ≤ HAProxy's).
// The nodes keep their data on this machine's disk, so inserts are paced
// by it for every leg alike. The client-seen RTO through the endpoint
// during kill-primary drills is BenchmarkFailover's (its "through the
// router's rw endpoint" line).
func BenchmarkRouter(b *testing.B) {
	var rw struct{ redis, mysql string }
	benchRouterPeers(b, func(b *testing.B) peerBackends {
		return startPlatformBackends(b, &rw.redis, &rw.mysql)
	}, func(b *testing.B, be peerBackends) []loadpeer.Target {
		return []loadpeer.Target{{Name: "router", RedisAddr: rw.redis, RedisUser: be.RedisUser, RedisPassword: be.RedisPassword,
			MySQLDSN: be.MySQLDSN(rw.mysql)}}
	})
}

// startPlatformBackends starts a platform, orders a single-AZ Redis and
// MySQL, binds them and returns their nodes as the backends; redisRW and
// mysqlRW get the bindings' read-write endpoints.
func startPlatformBackends(b *testing.B, redisRW, mysqlRW *string) peerBackends {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	root, err := filepath.Abs("..")
	if err != nil {
		b.Fatal(err)
	}
	p, err := startPlatform(root)
	if err != nil {
		b.Fatalf("start the platform: %v", err)
	}
	b.Cleanup(func() {
		if err := p.stop(); err != nil {
			b.Errorf("stop the platform: %v", err)
		}
		if !b.Failed() {
			_ = os.RemoveAll(p.dir)
		}
	})
	admin := &drill.API{Base: p.URL, Key: p.AdminKey, HTTP: &http.Client{Timeout: 10 * time.Second}}
	tenantID := "rbench-" + randHex(3)
	if err := admin.Do(ctx, http.MethodPost, "/api/v1/tenants", map[string]any{"id": tenantID, "name": "Router bench"}, nil, http.StatusCreated); err != nil {
		b.Fatal(err)
	}
	var k tenantKey
	if err := admin.Do(ctx, http.MethodPost, "/api/v1/tenants/"+tenantID+"/api-keys", map[string]any{"name": "bench", "role": "tenant-admin"}, &k, http.StatusCreated); err != nil {
		b.Fatal(err)
	}
	api := &drill.API{Base: p.URL, Key: k.Key, HTTP: &http.Client{Timeout: 10 * time.Second}}
	var cat catalogServices
	if err := api.Do(ctx, http.MethodGet, "/api/v1/catalog/services", nil, &cat, http.StatusOK); err != nil {
		b.Fatal(err)
	}
	plans := map[string]string{}
	for _, s := range cat.Items {
		for _, pl := range s.Plans {
			plans[pl.Name] = pl.ID
		}
	}
	order := func(engine string) (instance, binding) {
		var acc instanceAccepted
		if err := api.Do(ctx, http.MethodPost, "/api/v1/instances", map[string]any{"name": "rbench-" + engine, "plan_id": plans[engine+"-dev-single-az"]},
			&acc, http.StatusAccepted); err != nil {
			b.Fatal(err)
		}
		id := acc.Instance.ID
		b.Cleanup(func() { benchDelete(b, api, id) })
		if err := benchWaitOperation(ctx, api, acc.OperationID, readyTimeout); err != nil {
			b.Fatal(err)
		}
		var inst instance
		if err := api.Do(ctx, http.MethodGet, "/api/v1/instances/"+id, nil, &inst, http.StatusOK); err != nil {
			b.Fatal(err)
		}
		var bd binding
		if err := api.Do(ctx, http.MethodPost, "/api/v1/instances/"+id+"/bindings", map[string]any{"name": "bench"}, &bd, http.StatusCreated); err != nil {
			b.Fatal(err)
		}
		if bd.Credentials.Endpoints.RW == "" {
			b.Fatalf("the %s binding has no rw endpoint: %+v", engine, bd.Credentials)
		}
		return inst, bd
	}
	ri, rb := order("redis")
	mi, mb := order("mysql")
	*redisRW, *mysqlRW = rb.Credentials.Endpoints.RW, mb.Credentials.Endpoints.RW
	fmt.Printf("\nrouter bench: platform up in %.1fs; redis node %s (rw %s), mysql node %s (rw %s)\n",
		p.Started.Seconds(), ri.Endpoints.Primary, *redisRW, mi.Endpoints.Primary, *mysqlRW)
	return peerBackends{RedisAddr: ri.Endpoints.Primary, RedisUser: rb.Credentials.Username, RedisPassword: rb.Credentials.Password,
		MySQLAddr: mi.Endpoints.Primary, MySQLUser: mb.Credentials.Username, MySQLPassword: mb.Credentials.Password,
		MySQLDatabase: mb.Credentials.Database}
}
