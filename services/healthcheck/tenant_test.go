package healthcheck_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/libs/devkafka"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/fakenode"
)

// TestInstanceEventOfAnotherTenant: instance events whose tenant header is
// not the instance's tenant (per the payload or provisioning) are
// dead-lettered and leave the targets alone; the genuine event acts.
func TestInstanceEventOfAnotherTenant(t *testing.T) {
	ctx := context.Background()
	broker, err := devkafka.Start(ctx, devkafka.Config{Addr: "127.0.0.1:0", Partitions: 1}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(broker.Close)
	addr := broker.Addr()
	require.NoError(t, eventbus.EnsureTopics(ctx, []string{addr},
		eventbus.TopicSpec{Name: "canopy.instances.v1", Partitions: 1},
		eventbus.TopicSpec{Name: "canopy.instances.v1.dlq", Partitions: 1},
		eventbus.TopicSpec{Name: "canopy.health.v1", Partitions: 1},
		eventbus.TopicSpec{Name: "canopy.health.samples.v1", Partitions: 1}))
	node, err := fakenode.Listen(fakenode.RESP, "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { node.Close() })

	inst := map[string]any{"instance_id": "inst-t1", "tenant_id": "acme", "engine": "redis", "state": "ready",
		"nodes":   []map[string]string{{"id": "node-t1", "role": "primary", "address": node.Addr(), "state": "running"}},
		"monitor": map[string]string{"username": "canopy-monitor", "password": "pw-123456"}}
	verifier, err := tenancy.NewVerifier(tenancy.VerifierConfig{Audience: tenancy.AudienceProvisioning, Secrets: [][]byte{[]byte(secret)}})
	require.NoError(t, err)
	prov := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := verifier.Verify(r.Header, r.Method, r.URL.RequestURI(), tenancy.EmptyBodyHash); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/internal/v1/monitoring/instances":
			_ = json.NewEncoder(w).Encode(map[string]any{"instances": []any{inst}})
		case "/internal/v1/monitoring/instances/inst-t1":
			_ = json.NewEncoder(w).Encode(inst)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(prov.Close)

	var mu sync.Mutex
	var seen []seenEvent
	rep := startReplica(t, "replica-t", addr, prov.URL, &mu, &seen)
	admin := tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: "ops"}
	targets := func() int {
		var v adminView
		require.Equal(t, http.StatusOK, get(t, "http://"+rep.svc.Addr()+"/api/v1/health/targets", admin, &v))
		return len(v.Targets)
	}
	require.Eventually(t, func() bool { return targets() == 1 }, 30*time.Second, 50*time.Millisecond)

	pub, err := eventbus.NewPublisher(eventbus.PublisherConfig{Brokers: []string{addr}, Source: "/services/provisioning"}, slog.New(slog.DiscardHandler), nil)
	require.NoError(t, err)
	t.Cleanup(func() { pub.Close() })
	deleted := func(header, payload string) {
		ev, err := eventbus.NewEvent("provisioning.instance.deleted", "/services/provisioning", "inst-t1", map[string]any{"instance_id": "inst-t1", "tenant_id": payload})
		require.NoError(t, err)
		ev.Tenant = header
		require.NoError(t, pub.Publish(ctx, "canopy.instances.v1", ev))
	}
	deleted("evil", "evil") // consistent, but not the instance's tenant
	deleted("evil", "acme") // header and payload disagree

	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: "canopy.instances.v1.dlq", Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for i := 0; i < 2; i++ {
		m, err := r.ReadMessage(rctx)
		require.NoError(t, err, "dead letter %d", i)
		var reason, class string
		for _, h := range m.Headers {
			switch h.Key {
			case eventbus.HeaderDLQReason:
				reason = string(h.Value)
			case eventbus.HeaderDLQClass:
				class = string(h.Value)
			}
		}
		require.Equal(t, "poison", class)
		require.True(t, strings.Contains(reason, eventbus.ErrTenantMismatch.Error()), reason)
	}
	// Dead-lettered after the handler refused them: the target is still there.
	require.Equal(t, 1, targets())

	deleted("acme", "acme")
	require.Eventually(t, func() bool { return targets() == 0 }, 30*time.Second, 50*time.Millisecond)
}
