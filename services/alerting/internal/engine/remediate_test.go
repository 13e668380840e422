package engine_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/devkafka/devkafkatest"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/alerting/internal/alertstore"
	"github.com/canopy-platform/canopy/services/alerting/internal/engine"
	"github.com/canopy-platform/canopy/services/alerting/internal/remediation"
	"github.com/canopy-platform/canopy/services/alerting/internal/rules"
)

// A tenant rule with an enabled action restarts the node it fires for,
// through provisioning with the alerting service's signed identity, once
// the tenant switched remediation on; the same rule of a tenant that did
// not is recorded as skipped and calls nothing.
func TestRemediationRunsTheRulesAction(t *testing.T) {
	t.Parallel()
	secret := []byte("engine-remediation-secret-0123456789")
	var mu sync.Mutex
	var restarts []string
	prov := httptest.NewServer(tenancy.Middleware(tenancy.AudienceProvisioning, secret)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := tenancy.PrincipalFrom(r.Context())
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		restarts = append(restarts, p.Subject+" "+r.URL.Path+" "+string(body))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})))
	t.Cleanup(prov.Close)

	brokers := devkafkatest.Start(t)
	env := newEnv(t)
	ctx := context.Background()
	for _, tenant := range []string{"acme", "globex"} {
		_, err := env.st.CreateRule(ctx, rules.Rule{ID: "restart-on-down", Tenant: tenant, Name: "NodeDownRestart", Kind: rules.KindEvent,
			On: []string{events.TypeNodeDown}, ResolveOn: []string{events.TypeNodeUp}, Labels: map[string]string{"severity": "critical"},
			Action: remediation.ActionRestartNode, ActionEnabled: true})
		require.NoError(t, err)
	}
	require.NoError(t, env.st.SetRemediation(ctx, "acme", true))
	act, err := remediation.New(remediation.Config{FailoverURL: "http://127.0.0.1:1", ProvisioningURL: prov.URL, Secret: secret}, env.st)
	require.NoError(t, err)
	r := env.run(env.buildWith(engine.Config{Brokers: brokers, GroupID: "alerting-" + t.Name()}, act))
	select {
	case <-r.Ready():
	case <-time.After(deadline):
		t.Fatal("engine not ready")
	}

	pub, err := eventbus.NewPublisher(eventbus.PublisherConfig{Brokers: brokers, Source: events.SourceHealthcheck}, testLogger(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close() })
	for _, tenant := range []string{"acme", "globex"} {
		tr := events.NodeTransition{InstanceID: tenant + "-i1", TenantID: tenant, NodeID: tenant + "-n1", Address: "127.0.0.1:3307",
			Engine: "mysql", Role: "replica", Status: "down", PreviousStatus: "up", Reason: "refused", Streak: 3,
			Policy: events.Policy{IntervalMS: 1000, TimeoutMS: 500, Fall: 3, Rise: 2}, ProbedAt: time.Now().UTC(), Replica: "hc-0"}
		ev, err := eventbus.NewEvent(events.TypeNodeDown, events.SourceHealthcheck, tr.InstanceID, tr)
		require.NoError(t, err)
		ev.Tenant = tenant
		require.NoError(t, pub.Publish(ctx, events.TopicHealth, ev))
	}

	runs := map[string]alertstore.ActionRun{}
	waitFor(t, "a remediation run recorded for each tenant", func() bool {
		all, err := env.st.ListActions(ctx, "", true, 10)
		require.NoError(t, err)
		for _, run := range all {
			runs[run.Tenant] = run
		}
		return len(runs) == 2
	})
	require.Equal(t, remediation.StatusSucceeded, runs["acme"].Status, runs["acme"].Detail)
	require.Equal(t, "acme-i1", runs["acme"].InstanceID)
	require.Equal(t, "acme-n1", runs["acme"].NodeID)
	require.Equal(t, remediation.StatusSkipped, runs["globex"].Status)
	require.Contains(t, runs["globex"].Detail, "remediation is off for tenant globex")
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []string{"service:alerting /internal/v1/failover/instances/acme-i1/nodes/acme-n1/fault {\"kind\":\"stop\"}"}, restarts)
}
