package failover_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"net/http/httptest"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/devkafka"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/launch"
	"github.com/canopy-platform/canopy/libs/openapitest"
	"github.com/canopy-platform/canopy/libs/porttest"
	"github.com/canopy-platform/canopy/libs/store/storetest"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/failover"
)

const secret = "0123456789abcdef0123456789abcdef"

// TestConfigValidate names what is wrong.
func TestConfigValidate(t *testing.T) {
	cfg := failover.DefaultConfig()
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "internal_secret") {
		t.Fatalf("no secret: %v", err)
	}
	cfg.InternalSecret = secret
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults with a secret: %v", err)
	}
	cfg.LeaseTTL, cfg.Addr, cfg.Kafka.Brokers, cfg.Database = 0, "nope", nil, "bad-name"
	err := cfg.Validate()
	for _, want := range []string{"lease_ttl", "addr", "CANOPY_KAFKA_BROKERS", "bad-name"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("bad lease, addr, brokers and database: %v lacks %q", err, want)
		}
	}
	if _, err := failover.New(failover.DefaultConfig(), launch.Deps{}); err == nil {
		t.Fatal("New without a secret or deps succeeded")
	}
}

// TestServiceServesAndDrills starts the service on MariaDB, the embedded
// broker and a provisioning stand-in: its API answers through the signed
// identity, a kill-primary drill injects the fault on the primary through
// provisioning, and the service stops cleanly.
func TestServiceServesAndDrills(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logger := slog.New(slog.DiscardHandler)
	broker, err := devkafka.Start(ctx, devkafka.Config{Addr: "127.0.0.1:0", Partitions: 2}, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	brokers := []string{broker.Addr()}
	if err := eventbus.EnsureTopics(ctx, brokers, eventbus.TopicSpec{Name: events.TopicInstances, Partitions: 2},
		eventbus.TopicSpec{Name: events.TopicHealth, Partitions: 2}, eventbus.TopicSpec{Name: events.TopicFailover, Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var faults []string
	inst := map[string]any{"instance_id": "i1", "tenant_id": "acme", "engine": "mysql", "deployment_mode": "multi-az",
		"state": "ready", "semi_sync": true, "region": "eu", "admin": map[string]string{"username": "a", "password": "b"},
		"replication": map[string]string{"username": "r", "password": "s"},
		"nodes": []map[string]string{{"id": "n0", "role": "primary", "address": "127.0.0.1:1", "promotion_rule": "neutral"},
			{"id": "n1", "role": "replica", "address": "127.0.0.1:2", "promotion_rule": "neutral"}}}
	prov := httptest.NewServer(tenancy.Middleware(tenancy.AudienceProvisioning, []byte(secret))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, _ := tenancy.PrincipalFrom(r.Context()); p.Subject != "service:failover" {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		switch {
		case r.URL.Path == "/internal/v1/failover/instances":
			_ = json.NewEncoder(w).Encode(map[string]any{"instances": []any{inst}})
		case r.URL.Path == "/internal/v1/failover/instances/i1":
			_ = json.NewEncoder(w).Encode(inst)
		case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/internal/v1/failover/instances/i1/nodes/"):
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			faults = append(faults, r.URL.Path+" "+string(b))
			mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	})))
	t.Cleanup(prov.Close)

	cfg := failover.DefaultConfig()
	cfg.Addr = fmt.Sprintf("127.0.0.1:%d", porttest.Free(t))
	db := storetest.NewConfig(t, "failover_svc")
	cfg.MySQLDSN, cfg.Database = db.DSN, db.Database
	cfg.Kafka.Brokers = brokers
	cfg.ProvisioningURL = prov.URL
	cfg.InternalSecret = secret
	cfg.SessionTimeout = 6 * time.Second
	pub, err := eventbus.NewPublisher(cfg.Kafka, logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	svc, err := failover.New(cfg, launch.Deps{Logger: logger, Registry: prometheus.NewRegistry(), Publisher: pub})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx) }()
	defer func() {
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(40 * time.Second):
			t.Error("the service did not stop")
		}
	}()
	select {
	case <-svc.Ready():
	case err := <-done:
		t.Fatalf("service stopped before ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("not ready")
	}

	spec := openapitest.MustLoad(t)
	signer := tenancy.NewSigner([]byte(secret))
	call := func(p tenancy.Principal, method, path, body string, out any) int {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+svc.Addr()+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		signer.SignRequest(req, []byte(body), tenancy.AudienceFailover, p)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		check, _ := http.NewRequest(method, path, bytes.NewReader([]byte(body)))
		if err := spec.Check(check, resp.StatusCode, resp.Header, raw); err != nil {
			t.Error(err)
		}
		if out != nil {
			_ = json.Unmarshal(raw, out)
		}
		return resp.StatusCode
	}
	acme := tenancy.Principal{Tenant: "acme", Role: tenancy.RoleTenantMember, Subject: "apikey:1"}
	var list struct {
		Items []any `json:"items"`
	}
	if status := call(acme, "GET", "/api/v1/instances/i1/failovers", "", &list); status != 200 || list.Items == nil {
		t.Fatalf("history = %d %+v", status, list)
	}
	if status := call(tenancy.Principal{Tenant: "other", Role: tenancy.RoleTenantAdmin, Subject: "k"}, "GET", "/api/v1/instances/i1/failovers", "", nil); status != 404 {
		t.Fatalf("other tenant = %d, want 404", status)
	}
	var drill struct{ ID, State string }
	if status := call(acme, "POST", "/api/v1/instances/i1/drills", `{"kind":"kill-primary"}`, &drill); status != 202 || drill.State != "running" {
		t.Fatalf("drill = %d %+v", status, drill)
	}
	mu.Lock()
	got := strings.Join(faults, ";")
	mu.Unlock()
	if got != `/internal/v1/failover/instances/i1/nodes/n0/fault {"kind":"kill"}` {
		t.Fatalf("faults injected = %q", got)
	}
	var drills struct {
		Items []struct{ ID string } `json:"items"`
	}
	if status := call(acme, "GET", "/api/v1/drills", "", &drills); status != 200 || len(drills.Items) != 1 || drills.Items[0].ID != drill.ID {
		t.Fatalf("drills = %d %+v", status, drills)
	}

	// /metrics: the owned instance is watched and its (unreachable)
	// primary looked at, through the ports the service wired.
	want := []string{"canopy_failover_watched_instances 1", `canopy_failover_primary_checks_total{engine="mysql",result="unreachable"}`,
		"canopy_failover_lease_conflicts_total 0"}
	var metrics string
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := http.Get("http://" + svc.Addr() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		metrics = string(raw)
		missing := slices.DeleteFunc(slices.Clone(want), func(w string) bool { return strings.Contains(metrics, w) })
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics lacks %q:\n%s", missing, grep(metrics, "canopy_failover_"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// grep keeps the lines of s that contain sub.
func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
