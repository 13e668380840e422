package alertstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
	"github.com/canopy-platform/canopy/services/alerting/internal/alertstore"
	"github.com/canopy-platform/canopy/services/alerting/internal/dispatch"
)

func logEntry(receiver, groupKey string, sent, expires time.Time, firing ...alert.Fingerprint) dispatch.LogEntry {
	return dispatch.LogEntry{Receiver: receiver, GroupKey: groupKey, Firing: firing, SentAt: sent, ExpiresAt: expires}
}

// deliveryIDs returns the ids of ds.
func deliveryIDs(ds []alertstore.Delivery) []int64 {
	out := make([]int64, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

func TestNotificationLog(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	longKey := `{}/{tenant="t1"}:{alertname="` + strings.Repeat("x", 2000) + `"}`
	big := alert.Fingerprint(1<<64 - 1) // the top bit survives
	e1 := logEntry("r1", longKey, t0, t0.Add(4*time.Hour), 1, 2, big)
	e1.Resolved = []alert.Fingerprint{7}
	e2 := logEntry("r1", `{}/{}:{alertname="B"}`, t0, t0.Add(time.Hour))
	e3 := logEntry("r2", longKey, t0, t0.Add(4*time.Hour), 3)
	require.NoError(t, s.StoreNotifications(ctx, nil, []dispatch.LogEntry{e1, e2, e3}))

	got, err := s.NotificationLog(ctx, t0.Add(2*time.Hour))
	require.NoError(t, err)
	require.ElementsMatch(t, []dispatch.LogEntry{e1, e3}, got, "expired entries are left out")

	// A new notification of the same group replaces its entry.
	e1b := logEntry("r1", longKey, t0.Add(time.Hour), t0.Add(5*time.Hour), 2)
	require.NoError(t, s.StoreNotifications(ctx, nil, []dispatch.LogEntry{e1b}))
	got, err = s.NotificationLog(ctx, t0.Add(2*time.Hour))
	require.NoError(t, err)
	require.ElementsMatch(t, []dispatch.LogEntry{e1b, e3}, got)

	n, err := s.PruneNotificationLog(ctx, t0.Add(4*time.Hour))
	require.NoError(t, err)
	require.EqualValues(t, 2, n, "e2 and e3 expired")
	got, err = s.NotificationLog(ctx, t0)
	require.NoError(t, err)
	require.Equal(t, []dispatch.LogEntry{e1b}, got)
}

// A notification is queued with its log entry or not at all.
func TestStoreNotificationsIsAtomic(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	ctx := context.Background()
	bad := logEntry(strings.Repeat("r", 65), "g", t0, t0.Add(time.Hour)) // receiver too long for its column
	err := s.StoreNotifications(ctx, []alertstore.Delivery{{Receiver: "r1", GroupKey: "g", Payload: []byte(`{}`)}},
		[]dispatch.LogEntry{logEntry("r1", "g", t0, t0.Add(time.Hour)), bad})
	require.Error(t, err)
	require.Equal(t, 0, count(t, db, "SELECT COUNT(*) FROM deliveries"))
	require.Equal(t, 0, count(t, db, "SELECT COUNT(*) FROM nflog"))
}

func TestStoreNotificationsManyAndLarge(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	ctx := context.Background()
	payload := []byte(`{"version":"4","alerts":[` + strings.Repeat(`{"status":"firing"},`, 40000) + `{}]}`) // ~800 KB
	var ds []alertstore.Delivery
	var log []dispatch.LogEntry
	for i := range 1200 {
		d := alertstore.Delivery{Receiver: "r1", Owner: "t1", GroupKey: fmt.Sprintf("g%d", i), Payload: []byte(`{"version":"4"}`)}
		if i%100 == 0 {
			d.Payload = payload // several statements' worth of bytes
		}
		ds = append(ds, d)
		log = append(log, logEntry("r1", d.GroupKey, t0, t0.Add(time.Hour), alert.Fingerprint(i)))
	}
	require.NoError(t, s.StoreNotifications(ctx, ds, log))
	require.Equal(t, 1200, count(t, db, "SELECT COUNT(*) FROM deliveries"))
	require.Equal(t, 12, count(t, db, "SELECT COUNT(*) FROM deliveries WHERE LENGTH(payload) = ?", len(payload)))
	require.Equal(t, 1200, count(t, db, "SELECT COUNT(*) FROM nflog"))
}

func TestDeliveryQueue(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	ctx := context.Background()
	s.SetClaimLease(time.Minute)
	var ds []alertstore.Delivery
	for i := range 5 {
		ds = append(ds, alertstore.Delivery{Receiver: "r1", Owner: "t1", GroupKey: fmt.Sprintf("g%d", i),
			Payload: []byte(fmt.Sprintf(`{"n":%d}`, i)), NextAt: t0.Add(time.Duration(i) * time.Second), CreatedAt: t0})
	}
	ds = append(ds, alertstore.Delivery{Receiver: "r2", Owner: "t2", GroupKey: "other", Payload: []byte(`{}`), NextAt: t0})
	require.NoError(t, s.StoreNotifications(ctx, ds, nil))

	none, err := s.DueDeliveries(ctx, t0.Add(-time.Second), 10)
	require.NoError(t, err)
	require.Empty(t, none, "nothing due before its time")

	first, err := s.DueDeliveries(ctx, t0.Add(2*time.Second), 2)
	require.NoError(t, err)
	require.Len(t, first, 2, "limit")
	require.Equal(t, "g0", first[0].GroupKey, "oldest first")
	require.Equal(t, []byte(`{"n":0}`), first[0].Payload)
	require.Equal(t, "t1", first[0].Owner)
	require.True(t, first[0].CreatedAt.Equal(t0))
	require.Zero(t, first[0].Attempts)

	rest, err := s.DueDeliveries(ctx, t0.Add(2*time.Second), 10)
	require.NoError(t, err)
	require.Len(t, rest, 2, "claimed deliveries are not handed out twice")
	require.NotContains(t, deliveryIDs(rest), first[0].ID)
	require.NotContains(t, deliveryIDs(rest), first[1].ID)

	// The claim lapses: a crash between claim and outcome delays, never loses.
	again, err := s.DueDeliveries(ctx, t0.Add(2*time.Second+time.Minute), 10)
	require.NoError(t, err)
	require.Len(t, again, 6)
	require.NoError(t, s.ReleaseClaims(ctx))
	again, err = s.DueDeliveries(ctx, t0.Add(2*time.Second+time.Minute), 10)
	require.NoError(t, err)
	require.Len(t, again, 6, "released claims are due at once")
	require.NoError(t, s.ReleaseClaims(ctx))

	// g0 delivered, g1 failed with a retry later, g2 dead.
	byKey := map[string]alertstore.Delivery{}
	for _, d := range again {
		byKey[d.GroupKey] = d
	}
	require.NoError(t, s.Delivered(ctx, []int64{byKey["g0"].ID, byKey["other"].ID}, t0.Add(3*time.Second)))
	require.NoError(t, s.Failed(ctx, byKey["g1"].ID, 1, t0.Add(10*time.Minute), "HTTP 503", false))
	require.NoError(t, s.Failed(ctx, byKey["g2"].ID, 12, t0.Add(10*time.Minute), "HTTP 400: bad hook", true))

	due, err := s.DueDeliveries(ctx, t0.Add(5*time.Minute), 10)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"g3", "g4"}, keys(due), "delivered, retrying-later and dead ones are not due")
	require.NoError(t, s.ReleaseClaims(ctx))
	due, err = s.DueDeliveries(ctx, t0.Add(10*time.Minute), 10)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"g1", "g3", "g4"}, keys(due))
	for _, d := range due {
		if d.GroupKey == "g1" {
			require.Equal(t, 1, d.Attempts)
			require.Equal(t, "HTTP 503", d.LastError)
			require.True(t, d.NextAt.Equal(t0.Add(10*time.Minute)))
		}
	}
	require.NoError(t, s.Delivered(ctx, deliveryIDs(due), t0.Add(11*time.Minute)))

	// Failed on a delivery already dead or delivered changes nothing.
	require.NoError(t, s.Failed(ctx, byKey["g0"].ID, 5, t0, "late", true))
	require.Equal(t, 5, count(t, db, "SELECT COUNT(*) FROM deliveries WHERE delivered_at IS NOT NULL AND dead_at IS NULL"))

	dead, err := s.DeadLetters(ctx, "t1", false, 0)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Equal(t, "g2", dead[0].GroupKey)
	require.Equal(t, 12, dead[0].Attempts)
	require.Equal(t, "HTTP 400: bad hook", dead[0].LastError)
	require.False(t, dead[0].DeadAt.IsZero())
	other, err := s.DeadLetters(ctx, "t2", false, 0)
	require.NoError(t, err)
	require.Empty(t, other, "dead letters are per tenant")

	require.ErrorIs(t, s.RetryDeadLetter(ctx, "t2", false, dead[0].ID, t0), alertstore.ErrNotFound)
	require.ErrorIs(t, s.RetryDeadLetter(ctx, "t1", false, byKey["g0"].ID, t0), alertstore.ErrNotFound, "not a dead letter")
	// The receiver must exist to retry.
	_, err = db.SQL().ExecContext(ctx, "INSERT INTO receivers (id, tenant, name, url, matchers, group_by, group_wait_ms,"+
		" group_interval_ms, repeat_interval_ms, send_resolved, continue_flag, position, created_at, updated_at)"+
		" VALUES ('r1', 't1', 'r1', 'http://x', 'null', 'null', 0, 0, 0, TRUE, FALSE, 1, NOW(6), NOW(6))")
	require.NoError(t, err)
	require.NoError(t, s.RetryDeadLetter(ctx, "t1", false, dead[0].ID, t0.Add(20*time.Minute)))
	dead, err = s.DeadLetters(ctx, "", true, 0)
	require.NoError(t, err)
	require.Empty(t, dead)
	due, err = s.DueDeliveries(ctx, t0.Add(20*time.Minute), 10)
	require.NoError(t, err)
	require.Len(t, due, 1)
	require.Equal(t, "g2", due[0].GroupKey)
	require.Zero(t, due[0].Attempts, "attempts reset")

	n, err := s.PruneDeliveries(ctx, t0.Add(10*time.Minute))
	require.NoError(t, err)
	require.EqualValues(t, 2, n, "g0 and other were delivered before")
	require.Equal(t, 4, count(t, db, "SELECT COUNT(*) FROM deliveries"))
}

func keys(ds []alertstore.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.GroupKey
	}
	return out
}

// A new Store on the same database (the service restarted) sees all state:
// alerts, silences, receivers, rules, settings, the log and the queue.
func TestRestartSeesEverything(t *testing.T) {
	t.Parallel()
	s, db := newAlertStore(t)
	ctx := context.Background()
	a := firing(t0, "alertname", "NodeDown", "tenant", "t1")
	require.NoError(t, s.UpsertAlerts(ctx, []*alert.Alert{a}, nil))
	sil, err := s.CreateSilence(ctx, alert.Silence{Tenant: "t1", Matchers: alert.Matchers{matcher(t, alert.MatchEqual, "tenant", "t1")},
		StartsAt: t0, EndsAt: t0.Add(time.Hour), CreatedBy: "a", Comment: "c"})
	require.NoError(t, err)
	rcv, err := s.CreateReceiver(ctx, alertstore.Receiver{Tenant: "t1", Name: "n", URL: "http://x", Secret: "k"})
	require.NoError(t, err)
	_, err = s.CreateRule(ctx, ruleFor("t1"))
	require.NoError(t, err)
	require.NoError(t, s.SetRemediation(ctx, "t1", true))
	entry := logEntry(rcv.ID, "g", t0, t0.Add(time.Hour), a.Fingerprint())
	require.NoError(t, s.StoreNotifications(ctx, []alertstore.Delivery{{Receiver: rcv.ID, Owner: "t1", GroupKey: "g",
		Payload: []byte(`{"version":"4"}`), NextAt: t0}}, []dispatch.LogEntry{entry}))
	claimed, err := s.DueDeliveries(ctx, t0, 10)
	require.NoError(t, err)
	require.Len(t, claimed, 1) // claimed, then the process dies

	s2, err := alertstore.New(db)
	require.NoError(t, err)
	live, err := s2.LiveAlerts(ctx, t0)
	require.NoError(t, err)
	require.Len(t, live, 1)
	require.Equal(t, a.Labels, live[0].Labels)
	sils, err := s2.UnexpiredSilences(ctx, t0)
	require.NoError(t, err)
	require.Equal(t, sil.ID, sils[0].ID)
	rcvs, err := s2.ListReceivers(ctx, "", true)
	require.NoError(t, err)
	require.Equal(t, "k", rcvs[0].Secret)
	rs, err := s2.ListRules(ctx, "t1", false)
	require.NoError(t, err)
	require.Len(t, rs, 1)
	on, err := s2.Remediation(ctx, "t1")
	require.NoError(t, err)
	require.True(t, on)
	log, err := s2.NotificationLog(ctx, t0)
	require.NoError(t, err)
	require.Equal(t, []dispatch.LogEntry{entry}, log)
	require.NoError(t, s2.ReleaseClaims(ctx))
	due, err := s2.DueDeliveries(ctx, t0, 10)
	require.NoError(t, err)
	require.Equal(t, deliveryIDs(claimed), deliveryIDs(due), "the queued delivery resumes")
}
