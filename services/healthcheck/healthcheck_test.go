package healthcheck_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/api/events/eventstest"
	"github.com/canopy-platform/canopy/libs/devkafka"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/obs"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/healthcheck"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/fakenode"
)

const secret = "0123456789abcdef-test-secret"

// tap forwards to the real publisher and remembers every health event,
// checking each published payload against its schema.
type tap struct {
	t       testing.TB
	schemas *eventstest.Validator
	pub     *eventbus.Publisher
	replica string
	mu      *sync.Mutex
	seen    *[]seenEvent
}

type seenEvent struct {
	replica, typ, node, tenant string
}

func (t *tap) Publish(ctx context.Context, topic string, evs ...eventbus.Event) error {
	checkEvents(t.t, t.schemas, topic, evs)
	if err := t.pub.Publish(ctx, topic, evs...); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range evs {
		if !strings.HasPrefix(e.Type, "health.node.") || e.Type == "health.node.sampled" {
			continue
		}
		var d struct {
			NodeID string `json:"node_id"`
		}
		_ = json.Unmarshal(e.Data, &d)
		*t.seen = append(*t.seen, seenEvent{replica: t.replica, typ: e.Type, node: d.NodeID, tenant: e.Tenant})
	}
	return nil
}

type replica struct {
	svc    *healthcheck.Service
	cancel context.CancelFunc
	done   chan struct{}
}

func startReplica(t *testing.T, name, broker, provURL string, mu *sync.Mutex, seen *[]seenEvent) *replica {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv("HC_DEBUG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	pub, err := eventbus.NewPublisher(eventbus.PublisherConfig{Brokers: []string{broker}, Source: "/services/healthcheck"}, logger, nil)
	require.NoError(t, err)
	cfg := healthcheck.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Replica = name
	cfg.Brokers = []string{broker}
	cfg.ProvisioningURL = provURL
	cfg.InternalSecret = secret
	cfg.Interval, cfg.Timeout = 200*time.Millisecond, 150*time.Millisecond
	cfg.SampleInterval = time.Second
	cfg.SessionTimeout = 3 * time.Second
	cfg.Workers = 16
	svc, err := healthcheck.New(cfg, healthcheck.Deps{Logger: logger, Registry: obs.NewRegistry(),
		Publisher: &tap{t: t, schemas: eventstest.MustNew(t), pub: pub, replica: name, mu: mu, seen: seen}})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{svc: svc, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(r.done); _ = svc.Run(ctx); pub.Close() }()
	t.Cleanup(r.stop)
	select {
	case <-svc.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("replica not ready")
	}
	return r
}

func (r *replica) stop() {
	r.cancel()
	<-r.done
}

func get(t *testing.T, url string, p tenancy.Principal, dst any) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	tenancy.NewSigner([]byte(secret)).SignRequest(req, nil, tenancy.AudienceHealthcheck, p)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	checkResponse(t, req, resp.StatusCode, resp.Header, body)
	if dst != nil && resp.StatusCode == http.StatusOK {
		require.NoError(t, json.Unmarshal(body, dst))
	}
	return resp.StatusCode
}

type adminView struct {
	Replica    string `json:"replica"`
	Partitions []int  `json:"partitions"`
	Targets    []struct {
		ID         string `json:"id"`
		InstanceID string `json:"instance_id"`
		Status     string `json:"status"`
	} `json:"targets"`
}

// TestTwoReplicasShareAndHandOver runs two replicas on the embedded broker:
// they split the instances by partition, and when one stops the other takes
// its targets without publishing a duplicate or false transition.
func TestTwoReplicasShareAndHandOver(t *testing.T) {
	ctx := context.Background()
	broker, err := devkafka.Start(ctx, devkafka.Config{Addr: "127.0.0.1:0", Partitions: 6}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(broker.Close)
	addr := broker.Addr()
	require.NoError(t, eventbus.EnsureTopics(ctx, []string{addr},
		eventbus.TopicSpec{Name: "canopy.instances.v1", Partitions: 6},
		eventbus.TopicSpec{Name: "canopy.health.v1", Partitions: 6},
		eventbus.TopicSpec{Name: "canopy.health.samples.v1", Partitions: 12}))

	node, err := fakenode.Listen(fakenode.RESP, "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { node.Close() })

	// Provisioning's internal API, as the healthcheck expects it.
	const instances = 12
	type provInstance = map[string]any
	var list []provInstance
	for i := 0; i < instances; i++ {
		list = append(list, provInstance{"instance_id": fmt.Sprintf("inst-%02d", i), "tenant_id": "acme", "engine": "redis",
			"state": "ready", "nodes": []map[string]string{{"id": fmt.Sprintf("node-%02d", i), "role": "primary", "address": node.Addr(), "state": "running"}},
			"monitor": map[string]string{"username": "canopy-monitor", "password": "pw-123456"}})
	}
	prov := httptest.NewServer(tenancy.Middleware(tenancy.AudienceProvisioning, []byte(secret))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, _ := tenancy.PrincipalFrom(r.Context()); p.Subject != "service:healthcheck" {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		if r.URL.Path == "/internal/v1/monitoring/instances" {
			_ = json.NewEncoder(w).Encode(map[string]any{"instances": list})
			return
		}
		for _, in := range list {
			if r.URL.Path == "/internal/v1/monitoring/instances/"+in["instance_id"].(string) {
				_ = json.NewEncoder(w).Encode(in)
				return
			}
		}
		w.WriteHeader(http.StatusNotFound)
	})))
	t.Cleanup(prov.Close)

	// The lifecycle events, as provisioning publishes them.
	pub, err := eventbus.NewPublisher(eventbus.PublisherConfig{Brokers: []string{addr}, Source: "/services/provisioning"}, slog.New(slog.DiscardHandler), nil)
	require.NoError(t, err)
	defer pub.Close()
	for _, in := range list {
		id := in["instance_id"].(string)
		ev, err := eventbus.NewEvent("provisioning.instance.ready", "/services/provisioning", id, in)
		require.NoError(t, err)
		ev.Tenant = "acme"
		require.NoError(t, pub.Publish(ctx, "canopy.instances.v1", ev))
	}
	// A poison event goes to the DLQ without stopping the partition.
	bad, err := eventbus.NewEvent("provisioning.instance.ready", "/services/provisioning", "inst-00", map[string]any{"instance_id": 42})
	require.NoError(t, err)
	bad.Tenant = "acme"
	require.NoError(t, pub.Publish(ctx, "canopy.instances.v1", bad))

	var mu sync.Mutex
	var seen []seenEvent
	a := startReplica(t, "replica-a", addr, prov.URL, &mu, &seen)
	b := startReplica(t, "replica-b", addr, prov.URL, &mu, &seen)

	admin := tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: "ops"}
	view := func(r *replica) adminView {
		var v adminView
		require.Equal(t, http.StatusOK, get(t, "http://"+r.svc.Addr()+"/api/v1/health/targets", admin, &v))
		return v
	}
	ups := func() map[string][]string {
		mu.Lock()
		defer mu.Unlock()
		out := map[string][]string{}
		for _, e := range seen {
			out[e.node] = append(out[e.node], e.typ+"@"+e.replica)
		}
		return out
	}

	// Both replicas hold a share; together every node, each exactly once.
	require.Eventually(t, func() bool {
		va, vb := view(a), view(b)
		if len(va.Targets) == 0 || len(vb.Targets) == 0 || len(va.Targets)+len(vb.Targets) != instances {
			return false
		}
		return len(ups()) == instances
	}, 60*time.Second, 100*time.Millisecond, "shares: %+v / %+v; events %v", view(a), view(b), ups())
	va, vb := view(a), view(b)
	t.Logf("replica-a partitions %v (%d targets), replica-b partitions %v (%d targets)", va.Partitions, len(va.Targets), vb.Partitions, len(vb.Targets))
	for _, p := range va.Partitions {
		require.NotContains(t, vb.Partitions, p)
	}

	// A tenant sees its instance's health; another tenant does not.
	var owner *replica = a
	if len(va.Targets) == 0 || va.Targets[0].InstanceID == "" {
		owner = b
	}
	inst := view(owner).Targets[0].InstanceID
	var health struct {
		InstanceID string `json:"instance_id"`
		Nodes      []struct {
			ID, Status string
		} `json:"nodes"`
	}
	require.Eventually(t, func() bool {
		return get(t, "http://"+owner.svc.Addr()+"/api/v1/instances/"+inst+"/health",
			tenancy.Principal{Tenant: "acme", Role: tenancy.RoleTenantViewer, Subject: "u"}, &health) == http.StatusOK &&
			len(health.Nodes) == 1 && health.Nodes[0].Status == "up"
	}, 10*time.Second, 50*time.Millisecond, "%+v", health)
	require.Equal(t, http.StatusNotFound, get(t, "http://"+owner.svc.Addr()+"/api/v1/instances/"+inst+"/health",
		tenancy.Principal{Tenant: "other", Role: tenancy.RoleTenantAdmin, Subject: "u"}, nil))

	// Replica a stops (leaves the group): b takes every target.
	a.stop()
	require.Eventually(t, func() bool { return len(view(b).Targets) == instances }, 30*time.Second, 100*time.Millisecond)
	// Give the taken-over targets time to reach their verdict (rise = 2).
	require.Eventually(t, func() bool {
		for _, tg := range view(b).Targets {
			if tg.Status != "up" {
				return false
			}
		}
		return true
	}, 10*time.Second, 50*time.Millisecond)
	require.Never(t, func() bool {
		for _, evs := range ups() {
			if len(evs) > 1 {
				return true
			}
		}
		return false
	}, 500*time.Millisecond, 20*time.Millisecond, "a duplicate transition surfaced: %v", ups())
	for node, evs := range ups() {
		require.Equal(t, 1, len(evs), "node %s: exactly one transition across both replicas, got %v", node, evs)
		require.True(t, strings.HasPrefix(evs[0], "health.node.up@"), "node %s: %v", node, evs)
	}
}
