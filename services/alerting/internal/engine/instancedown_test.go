package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/devkafka/devkafkatest"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/services/alerting/internal/engine"
)

// When every node of an instance is down, InstanceDown fires once for the
// instance (not while only some are); when one node answers again it
// resolves, while the other node's NodeDown stays firing.
func TestInstanceDownWhenAllItsNodesAre(t *testing.T) {
	t.Parallel()
	brokers := devkafkatest.Start(t)
	env := newEnv(t)
	h := newHook(t)
	env.receiver("acme-oncall", "acme", h, "alertname", "instance")
	env.start(engine.Config{Brokers: brokers, GroupID: "alerting-" + t.Name()})
	ctx := context.Background()

	pub, err := eventbus.NewPublisher(eventbus.PublisherConfig{Brokers: brokers, Source: events.SourceHealthcheck}, testLogger(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close() })
	in := events.Instance{InstanceID: "i-1", TenantID: "acme", Name: "orders", Engine: "mysql", State: "ready",
		Nodes:      []events.Node{{ID: "n-1", Role: "primary", Address: "127.0.0.1:3307"}, {ID: "n-2", Role: "replica", Address: "127.0.0.1:3308"}},
		OccurredAt: time.Now().UTC()}
	ev, err := eventbus.NewEvent(events.TypeInstanceReady, events.SourceProvisioning, in.InstanceID, in)
	require.NoError(t, err)
	ev.Tenant = "acme"
	require.NoError(t, pub.Publish(ctx, events.TopicInstances, ev))
	transition := func(typ, node, status string) {
		tr := events.NodeTransition{InstanceID: "i-1", TenantID: "acme", NodeID: node, Address: "127.0.0.1:3307",
			Engine: "mysql", Role: "replica", Status: status, Reason: "refused", Streak: 3,
			Policy: events.Policy{IntervalMS: 1000, TimeoutMS: 500, Fall: 3, Rise: 2}, ProbedAt: time.Now().UTC(), Replica: "hc-0"}
		ev, err := eventbus.NewEvent(typ, events.SourceHealthcheck, tr.InstanceID, tr)
		require.NoError(t, err)
		ev.Tenant = "acme"
		require.NoError(t, pub.Publish(ctx, events.TopicHealth, ev))
	}

	transition(events.TypeNodeDown, "n-1", "down")
	h.message(t, "NodeDown", "firing")
	require.Zero(t, h.count("InstanceDown", "firing"), "one node of two down is no instance down")

	transition(events.TypeNodeDown, "n-2", "down")
	m := h.message(t, "InstanceDown", "firing")
	require.Equal(t, "i-1", m.Alerts[0].Labels["instance"])
	require.Equal(t, "acme", m.Alerts[0].Labels["tenant"])
	require.Equal(t, "critical", m.Alerts[0].Labels["severity"])
	require.Contains(t, m.Alerts[0].Annotations["summary"], "All 2 nodes of instance i-1 are down")

	transition(events.TypeNodeUp, "n-2", "up")
	h.message(t, "InstanceDown", "resolved")
	require.Equal(t, 1, h.count("InstanceDown", "firing"), "fired once")
}
