package engine_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/devkafka/devkafkatest"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
	"github.com/canopy-platform/canopy/services/alerting/internal/dispatch"
	"github.com/canopy-platform/canopy/services/alerting/internal/engine"
	"github.com/canopy-platform/canopy/services/alerting/internal/webhook"
)

// A pushed alert reaches the webhook once group_wait has passed, with the
// Alertmanager v4 payload, and its resolution follows; both transitions
// are in the outbox for canopy.alerts.v1.
func TestPushNotifiesAfterGroupWaitAndResolves(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	h := newHook(t)
	env.receiver("oncall", "", h)
	e := env.start(engine.Config{ExternalURL: "http://canopy.test"})

	pushed := time.Now()
	require.NoError(t, e.Push(context.Background(), []*alert.Alert{firing("alertname", "DiskFull", "instance", "i-1", "severity", "critical")}))
	m := h.message(t, "DiskFull", "firing")
	took := time.Since(pushed)
	assert.GreaterOrEqual(t, took, groupWait-20*time.Millisecond, "notified before group_wait")
	assert.Less(t, took, groupWait+time.Second, "notified long after group_wait")
	assert.Equal(t, "4", m.Version)
	assert.Equal(t, "firing", m.Status)
	assert.Equal(t, "oncall", m.Receiver)
	assert.Equal(t, "http://canopy.test", m.ExternalURL)
	assert.Equal(t, map[string]string{"alertname": "DiskFull", "instance": "i-1"}, m.GroupLabels)
	require.Len(t, m.Alerts, 1)
	assert.Equal(t, alert.LabelSet{"alertname": "DiskFull", "instance": "i-1", "severity": "critical"}.Fingerprint().String(), m.Alerts[0].Fingerprint)

	require.NoError(t, e.Push(context.Background(), []*alert.Alert{resolved("alertname", "DiskFull", "instance", "i-1", "severity", "critical")}))
	m = h.message(t, "DiskFull", "resolved")
	assert.Equal(t, "resolved", m.Status)
	assert.Equal(t, 1, h.count("DiskFull", "firing"), "firing notified once")

	assert.Equal(t, 1, env.queryInt("SELECT COUNT(*) FROM outbox WHERE topic = ? AND headers LIKE ?", events.TopicAlerts, "%"+events.TypeAlertFiring+"%"))
	assert.Equal(t, 1, env.queryInt("SELECT COUNT(*) FROM outbox WHERE topic = ? AND headers LIKE ?", events.TopicAlerts, "%"+events.TypeAlertResolved+"%"))
}

// A tenant's receiver gets only its tenant's alerts; a platform receiver
// without a tenant matcher only platform alerts.
func TestReceiversSeeOnlyTheirOwnersAlerts(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	platform, acme := newHook(t), newHook(t)
	env.receiver("platform", "", platform)
	env.receiver("acme-oncall", "acme", acme)
	e := env.start(engine.Config{})

	require.NoError(t, e.Push(context.Background(), []*alert.Alert{
		firing("alertname", "PlatformAlert", "instance", "p-1"),
		firing("alertname", "TenantAlert", "instance", "i-1", "tenant", "acme"),
	}))
	platform.message(t, "PlatformAlert", "firing")
	acme.message(t, "TenantAlert", "firing")
	assert.Zero(t, platform.count("TenantAlert", "firing"), "platform receiver saw a tenant alert")
	assert.Zero(t, acme.count("PlatformAlert", "firing"), "tenant receiver saw a platform alert")
}

// A silenced alert is left out of its group's notification and Muting
// names the silence.
func TestSilenceMutes(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	h := newHook(t)
	env.receiver("oncall", "", h, "instance")
	e := env.start(engine.Config{})

	m, err := alert.NewMatcher(alert.MatchEqual, "alertname", "Quiet")
	require.NoError(t, err)
	sil, err := env.st.CreateSilence(context.Background(), alert.Silence{
		Matchers: alert.Matchers{m}, StartsAt: time.Now().Add(-time.Minute), EndsAt: time.Now().Add(time.Hour),
		CreatedBy: "test", Comment: "maintenance",
	})
	require.NoError(t, err)
	require.NoError(t, e.Reload(context.Background(), engine.ReloadSilences))

	quiet := firing("alertname", "Quiet", "instance", "i-9")
	require.NoError(t, e.Push(context.Background(), []*alert.Alert{quiet, firing("alertname", "Loud", "instance", "i-9")}))
	got := h.message(t, "Loud", "firing")
	require.Len(t, got.Alerts, 1, "the silenced alert was notified")

	silencedBy, inhibitedBy := e.Muting(quiet.Labels.Fingerprint())
	assert.Equal(t, []string{sil.ID}, silencedBy)
	assert.Empty(t, inhibitedBy)
}

// A node-down event on Kafka fires the node-down rule's alert and the
// node-up event resolves it, both notified to the tenant's receiver.
func TestNodeDownEventFiresAndNodeUpResolves(t *testing.T) {
	t.Parallel()
	brokers := devkafkatest.Start(t) // no topics yet: the engine creates the ones it consumes
	env := newEnv(t)
	h := newHook(t)
	env.receiver("acme-oncall", "acme", h)
	env.start(engine.Config{Brokers: brokers, GroupID: "alerting-" + t.Name()})

	pub, err := eventbus.NewPublisher(eventbus.PublisherConfig{Brokers: brokers, Source: events.SourceHealthcheck}, testLogger(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close() })
	publish := func(typ, status, prev string) {
		tr := events.NodeTransition{InstanceID: "i-1", TenantID: "acme", NodeID: "n-1", Address: "127.0.0.1:3307",
			Engine: "mysql", Role: "replica", Status: status, PreviousStatus: prev, Reason: "refused", Streak: 3,
			Policy: events.Policy{IntervalMS: 1000, TimeoutMS: 500, Fall: 3, Rise: 2}, ProbedAt: time.Now().UTC(), Replica: "hc-0"}
		ev, err := eventbus.NewEvent(typ, events.SourceHealthcheck, tr.InstanceID, tr)
		require.NoError(t, err)
		ev.Tenant = "acme"
		require.NoError(t, pub.Publish(context.Background(), events.TopicHealth, ev))
	}

	publish(events.TypeNodeDown, "down", "up")
	m := waitRuleMessage(t, h, "node-down", "firing")
	require.Len(t, m.Alerts, 1)
	a := m.Alerts[0]
	assert.Equal(t, "i-1", a.Labels["instance"])
	assert.Equal(t, "n-1", a.Labels["node"])
	assert.Equal(t, "acme", a.Labels["tenant"])

	publish(events.TypeNodeUp, "up", "down")
	waitRuleMessage(t, h, "node-down", "resolved")
}

// waitRuleMessage waits for a message with an alert of rule in status.
func waitRuleMessage(t *testing.T, h *hook, rule, status string) (got webhook.Message) {
	t.Helper()
	waitFor(t, rule+" "+status, func() bool {
		for _, m := range h.messages() {
			for _, a := range m.Alerts {
				if a.Labels["rule"] == rule && a.Status == status {
					got = m
					return true
				}
			}
		}
		return false
	})
	return got
}

// A new engine on the same database sends nothing already sent, and
// delivers what the previous one queued but could not deliver.
func TestRestartResendsNothingAndDeliversQueued(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	h := newHook(t)
	env.receiver("oncall", "", h)
	first := env.start(engine.Config{})

	require.NoError(t, first.Push(context.Background(), []*alert.Alert{firing("alertname", "Sent", "instance", "i-1")}))
	h.message(t, "Sent", "firing")

	h.fail.Store(503)
	require.NoError(t, first.Push(context.Background(), []*alert.Alert{firing("alertname", "Queued", "instance", "i-2")}))
	waitFor(t, "a failed attempt recorded", func() bool {
		return env.queryInt("SELECT COUNT(*) FROM deliveries WHERE attempts >= 1 AND delivered_at IS NULL AND dead_at IS NULL") == 1
	})
	first.stop()
	h.fail.Store(0)

	second := env.start(engine.Config{})
	h.message(t, "Queued", "firing")
	// A group created after the restored ones flushes after them: once it
	// is notified, the restored groups have had their chance to resend.
	require.NoError(t, second.Push(context.Background(), []*alert.Alert{firing("alertname", "After", "instance", "i-3")}))
	h.message(t, "After", "firing")
	assert.Equal(t, 1, h.count("Sent", "firing"), "resent after restart")
	assert.Equal(t, 1, h.count("Queued", "firing"), "queued notification sent twice")
	assert.Equal(t, 3, env.queryInt("SELECT COUNT(*) FROM deliveries"), "notifications stored")
}

// A receiver that is down and comes back gets every notification (retried
// with backoff).
func TestReceiverDownThenUpGetsEverything(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	h := newHook(t)
	env.receiver("oncall", "", h)
	h.fail.Store(500)
	e := env.start(engine.Config{})

	const n = 5
	for i := range n {
		require.NoError(t, e.Push(context.Background(), []*alert.Alert{firing("alertname", fmt.Sprintf("Down%d", i), "instance", "i-1")}))
	}
	waitFor(t, "every group attempted", func() bool { return h.calls.Load() >= n })
	h.fail.Store(0)
	for i := range n {
		h.message(t, fmt.Sprintf("Down%d", i), "firing")
	}
	waitFor(t, "every delivery marked delivered", func() bool {
		return env.queryInt("SELECT COUNT(*) FROM deliveries WHERE delivered_at IS NULL") == 0
	})
}

// A receiver that never recovers ends with dead letters: at once when it
// refuses (4xx), after MaxAttempts when it keeps failing (5xx).
func TestNeverRecoveringReceiverDeadLetters(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	refusing, failing := newHook(t), newHook(t)
	refusing.fail.Store(400)
	failing.fail.Store(500)
	env.receiverMatching("refusing", refusing, `alertname="Refused"`)
	env.receiverMatching("failing", failing, `alertname="Failing"`)
	e := env.start(engine.Config{MaxAttempts: 2})

	require.NoError(t, e.Push(context.Background(), []*alert.Alert{
		firing("alertname", "Refused", "instance", "i-1"), firing("alertname", "Failing", "instance", "i-1"),
	}))
	waitFor(t, "two dead letters", func() bool {
		dls, err := env.st.DeadLetters(context.Background(), "", true, 10)
		require.NoError(t, err)
		return len(dls) == 2
	})
	assert.Equal(t, int64(1), refusing.calls.Load(), "a refused notification was retried")
	assert.Equal(t, int64(2), failing.calls.Load(), "attempts before the dead letter")
}

// Only one engine runs per database: a second waits for the lock and takes
// over when the first stops.
func TestSecondEngineWaitsForTheLock(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	first := env.start(engine.Config{})
	second := env.run(env.build(engine.Config{}))
	select {
	case <-second.Ready():
		t.Fatal("second engine ready while the first holds the lock")
	case <-time.After(1500 * time.Millisecond): // more than one lock retry
	}
	assert.ErrorIs(t, second.Push(context.Background(), []*alert.Alert{firing("alertname", "X")}), engine.ErrStopped)
	first.stop()
	select {
	case <-second.Ready():
	case <-time.After(deadline):
		t.Fatal("second engine did not take over")
	}
}

// Concurrent pushes are group-committed: each returns once stored, and
// every alert is notified.
func TestConcurrentPushesAreAllStoredAndNotified(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	h := newHook(t)
	env.receiver("oncall", "", h, "alertname")
	e := env.start(engine.Config{})

	const pushers, per = 20, 50
	var wg sync.WaitGroup
	errs := make(chan error, pushers)
	for p := range pushers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				if err := e.Push(context.Background(), []*alert.Alert{
					firing("alertname", fmt.Sprintf("Bulk%d", p), "instance", fmt.Sprintf("i-%d", i)),
				}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.Equal(t, pushers*per, env.queryInt("SELECT COUNT(*) FROM alerts"))
	waitFor(t, "every alert notified", func() bool {
		seen := map[string]bool{}
		for _, m := range h.messages() {
			for _, a := range m.Alerts {
				seen[a.Fingerprint] = true
			}
		}
		return len(seen) == pushers*per
	})
}

// A node-down alert inhibits the same node's other alerts (the default
// inhibit rules), and Muting names the inhibiting alert.
func TestNodeDownInhibitsTheNodesOtherAlerts(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	h := newHook(t)
	env.receiver("oncall", "", h, "instance")
	e := env.start(engine.Config{})

	down := firing("alertname", "NodeDown", "instance", "i-1", "node", "n-1", "severity", "critical")
	lag := firing("alertname", "ReplicaLag", "instance", "i-1", "node", "n-1", "severity", "warning")
	other := firing("alertname", "ReplicaLag", "instance", "i-1", "node", "n-2", "severity", "warning")
	require.NoError(t, e.Push(context.Background(), []*alert.Alert{down, lag, other}))
	m := h.message(t, "NodeDown", "firing")
	var got []string
	for _, a := range m.Alerts {
		got = append(got, a.Labels["alertname"]+"/"+a.Labels["node"])
	}
	assert.ElementsMatch(t, []string{"NodeDown/n-1", "ReplicaLag/n-2"}, got)

	_, inhibitedBy := e.Muting(lag.Labels.Fingerprint())
	assert.Equal(t, []string{down.Labels.Fingerprint().String()}, inhibitedBy)
	_, inhibitedBy = e.Muting(other.Labels.Fingerprint())
	assert.Empty(t, inhibitedBy)
}

// A pushed alert whose EndsAt passes without a new push resolves by itself
// (as Alertmanager's resolve timeout) and the resolution is notified.
func TestPushedAlertResolvesWhenItsEndPasses(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	h := newHook(t)
	env.receiver("oncall", "", h)
	e := env.start(engine.Config{})

	a := firing("alertname", "Flapping", "instance", "i-1")
	a.EndsAt = time.Now().Add(700 * time.Millisecond)
	require.NoError(t, e.Push(context.Background(), []*alert.Alert{a}))
	h.message(t, "Flapping", "firing")
	h.message(t, "Flapping", "resolved")
	waitFor(t, "the alert stored resolved", func() bool {
		return env.queryInt("SELECT COUNT(*) FROM alerts WHERE state = 'resolved'") == 1
	})
}

// Alerts pushed before any receiver matches them are notified once a
// receiver is created and the engine reloads receivers.
func TestReloadReceiversRoutesHeldAlerts(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	e := env.start(engine.Config{})
	require.NoError(t, e.Push(context.Background(), []*alert.Alert{firing("alertname", "Early", "instance", "i-1")}))

	h := newHook(t)
	env.receiver("late", "", h)
	require.NoError(t, e.Reload(context.Background(), engine.ReloadReceivers))
	h.message(t, "Early", "firing")
}

// An unreachable broker does not hold the engine up: pushes are notified
// while the consumer keeps retrying, and the engine still stops cleanly.
func TestEngineWorksWhileKafkaIsUnreachable(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	h := newHook(t)
	env.receiver("oncall", "", h)
	e := env.start(engine.Config{Brokers: []string{"127.0.0.1:1"}})
	require.NoError(t, e.Push(context.Background(), []*alert.Alert{firing("alertname", "NoKafka", "instance", "i-1")}))
	h.message(t, "NoKafka", "firing")
	e.stop()
}

// Groups lists the live aggregation groups with their owner, receiver and
// labels; a standby engine has none to list.
func TestGroupsListsTheLiveGroups(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	h := newHook(t)
	env.receiver("acme-oncall", "acme", h, "alertname")
	e := env.start(engine.Config{})
	require.NoError(t, e.Push(context.Background(), []*alert.Alert{firing("alertname", "DiskFull", "tenant", "acme", "instance", "i-1")}))
	var gs []dispatch.GroupInfo
	waitFor(t, "the alert's group", func() bool {
		var err error
		gs, err = e.Groups(context.Background())
		require.NoError(t, err)
		return len(gs) == 1
	})
	require.Equal(t, "acme", gs[0].Owner)
	require.Equal(t, "acme-oncall", gs[0].ReceiverName)
	require.Equal(t, "DiskFull", gs[0].Labels["alertname"])
	require.Equal(t, 1, gs[0].Alerts)

	standby := env.build(engine.Config{})
	_, err := standby.Groups(context.Background())
	require.ErrorIs(t, err, engine.ErrStopped)
}
