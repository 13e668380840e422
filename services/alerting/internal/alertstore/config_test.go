package alertstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
	"github.com/canopy-platform/canopy/services/alerting/internal/alertstore"
	"github.com/canopy-platform/canopy/services/alerting/internal/dispatch"
	"github.com/canopy-platform/canopy/services/alerting/internal/rules"
)

func TestSilences(t *testing.T) {
	t.Parallel()
	s, _ := newAlertStore(t)
	ctx := context.Background()
	sil := alert.Silence{
		Tenant:    "t1",
		Matchers:  alert.Matchers{matcher(t, alert.MatchEqual, "tenant", "t1"), matcher(t, alert.MatchRegexp, "instance", "i-(1|2)")},
		StartsAt:  t0,
		EndsAt:    t0.Add(2 * time.Hour),
		CreatedBy: "ann@example.com",
		Comment:   "maintenance",
	}
	created, err := s.CreateSilence(ctx, sil)
	require.NoError(t, err)
	require.Len(t, created.ID, 36)
	require.False(t, created.UpdatedAt.IsZero())
	future, err := s.CreateSilence(ctx, alert.Silence{Tenant: "t1", Matchers: alert.Matchers{matcher(t, alert.MatchNotEqual, "severity", "info")},
		StartsAt: t0.Add(time.Hour), EndsAt: t0.Add(3 * time.Hour), CreatedBy: "ann", Comment: "later"})
	require.NoError(t, err)
	other, err := s.CreateSilence(ctx, alert.Silence{Tenant: "t2", Matchers: alert.Matchers{matcher(t, alert.MatchNotRegexp, "node", "n-.*")},
		StartsAt: t0, EndsAt: t0.Add(time.Hour), CreatedBy: "bob", Comment: "t2"})
	require.NoError(t, err)

	got, err := s.GetSilence(ctx, "t1", false, created.ID)
	require.NoError(t, err)
	require.Equal(t, created.ID, got.ID)
	require.Equal(t, "t1", got.Tenant)
	require.True(t, got.StartsAt.Equal(t0) && got.EndsAt.Equal(t0.Add(2*time.Hour)))
	require.Equal(t, "ann@example.com", got.CreatedBy)
	require.Equal(t, "maintenance", got.Comment)
	require.Len(t, got.Matchers, 2)
	for i, m := range got.Matchers {
		require.Equal(t, []any{sil.Matchers[i].Type, sil.Matchers[i].Name, sil.Matchers[i].Value}, []any{m.Type, m.Name, m.Value})
	}
	require.True(t, got.Matchers.Matches(alert.LabelSet{"tenant": "t1", "instance": "i-2"}), "regexp matcher works after reading")
	require.False(t, got.Matchers.Matches(alert.LabelSet{"tenant": "t1", "instance": "i-3"}))

	_, err = s.GetSilence(ctx, "t2", false, created.ID)
	require.ErrorIs(t, err, alertstore.ErrNotFound, "another tenant's silence is invisible")
	_, err = s.GetSilence(ctx, "", true, created.ID)
	require.NoError(t, err)

	list, err := s.ListSilences(ctx, "t1", false)
	require.NoError(t, err)
	require.Len(t, list, 2)
	all, err := s.ListSilences(ctx, "", true)
	require.NoError(t, err)
	require.Len(t, all, 3)

	require.ErrorIs(t, s.ExpireSilence(ctx, "t2", false, created.ID, t0.Add(time.Minute)), alertstore.ErrNotFound)
	require.ErrorIs(t, s.ExpireSilence(ctx, "t1", false, "no-such-id", t0), alertstore.ErrNotFound)
	require.NoError(t, s.ExpireSilence(ctx, "t1", false, created.ID, t0.Add(time.Minute)))
	require.NoError(t, s.ExpireSilence(ctx, "", true, future.ID, t0.Add(time.Minute)))
	require.NoError(t, s.ExpireSilence(ctx, "t1", false, created.ID, t0.Add(time.Hour)), "expiring again is harmless")

	got, err = s.GetSilence(ctx, "t1", false, created.ID)
	require.NoError(t, err)
	require.True(t, got.EndsAt.Equal(t0.Add(time.Minute)), "ended at the first expiry: %v", got.EndsAt)
	require.True(t, got.StartsAt.Equal(t0))
	got, err = s.GetSilence(ctx, "t1", false, future.ID)
	require.NoError(t, err)
	require.True(t, got.StartsAt.Equal(t0.Add(time.Minute)) && got.EndsAt.Equal(t0.Add(time.Minute)),
		"a pending silence ends before it starts")

	list, err = s.ListSilences(ctx, "t1", false)
	require.NoError(t, err)
	require.Len(t, list, 2, "expired silences are kept for audit")

	unexpired, err := s.UnexpiredSilences(ctx, t0.Add(2*time.Minute))
	require.NoError(t, err)
	require.Len(t, unexpired, 1)
	require.Equal(t, other.ID, unexpired[0].ID)
	unexpired, err = s.UnexpiredSilences(ctx, t0.Add(time.Hour))
	require.NoError(t, err)
	require.Empty(t, unexpired)
}

func TestReceivers(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	ctx := context.Background()
	base := alertstore.Receiver{Tenant: "t1", Name: "oncall", URL: "https://hooks.example.com/a", Secret: "s3cret",
		Matchers: []string{`severity=~"critical|warning"`}, GroupBy: []string{"alertname", "instance"},
		GroupWait: 30 * time.Second, GroupInterval: 5 * time.Minute, RepeatInterval: 4 * time.Hour, SendResolved: true}
	a, err := s.CreateReceiver(ctx, base)
	require.NoError(t, err)
	require.Len(t, a.ID, 36)
	require.True(t, a.HasSecret)
	require.EqualValues(t, 1, a.Position)

	second := base
	second.Name, second.Secret, second.GroupBy, second.Matchers, second.Continue = "chat", "", []string{}, nil, true
	b, err := s.CreateReceiver(ctx, second)
	require.NoError(t, err)
	require.EqualValues(t, 2, b.Position, "appended after the owner's routes")

	_, err = s.CreateReceiver(ctx, base)
	require.ErrorIs(t, err, alertstore.ErrConflict, "a name is unique per tenant")
	elsewhere := base
	elsewhere.Tenant = "t2"
	c, err := s.CreateReceiver(ctx, elsewhere)
	require.NoError(t, err, "the same name in another tenant is fine")
	require.EqualValues(t, 1, c.Position, "positions count per owner")

	got, err := s.GetReceiver(ctx, "t1", false, a.ID)
	require.NoError(t, err)
	require.Equal(t, "s3cret", got.Secret)
	require.True(t, got.HasSecret)
	require.Equal(t, base.Matchers, got.Matchers)
	require.Equal(t, base.GroupBy, got.GroupBy)
	require.Equal(t, 30*time.Second, got.GroupWait)
	require.Equal(t, 5*time.Minute, got.GroupInterval)
	require.Equal(t, 4*time.Hour, got.RepeatInterval)
	require.True(t, got.SendResolved)
	require.False(t, got.Continue)
	require.True(t, got.CreatedAt.Equal(a.CreatedAt))

	gb, err := s.GetReceiver(ctx, "t1", false, b.ID)
	require.NoError(t, err)
	require.NotNil(t, gb.GroupBy, "an empty group_by (one group) is not confused with unset")
	require.Empty(t, gb.GroupBy)
	require.Nil(t, gb.Matchers)
	require.False(t, gb.HasSecret)
	require.True(t, gb.Continue)

	_, err = s.GetReceiver(ctx, "t2", false, a.ID)
	require.ErrorIs(t, err, alertstore.ErrNotFound)
	_, err = s.GetReceiver(ctx, "", true, a.ID)
	require.NoError(t, err)

	list, err := s.ListReceivers(ctx, "t1", false)
	require.NoError(t, err)
	require.Equal(t, []string{"oncall", "chat"}, []string{list[0].Name, list[1].Name}, "route order")
	list, err = s.ListReceivers(ctx, "", true)
	require.NoError(t, err)
	require.Len(t, list, 3)
	list, err = s.ListReceivers(ctx, "", false)
	require.NoError(t, err)
	require.Empty(t, list, "no platform receivers")

	upd := got
	upd.URL, upd.GroupWait, upd.Secret, upd.Position = "https://hooks.example.com/b", time.Second, "", 0
	updated, err := s.UpdateReceiver(ctx, upd)
	require.NoError(t, err)
	require.False(t, updated.HasSecret)
	got, err = s.GetReceiver(ctx, "t1", false, a.ID)
	require.NoError(t, err)
	require.Equal(t, "https://hooks.example.com/b", got.URL)
	require.Equal(t, time.Second, got.GroupWait)
	require.Empty(t, got.Secret)
	require.EqualValues(t, 1, got.Position, "position kept")
	require.True(t, got.CreatedAt.Equal(a.CreatedAt))
	require.False(t, got.UpdatedAt.Before(a.UpdatedAt))

	rename := got
	rename.Name = "chat"
	_, err = s.UpdateReceiver(ctx, rename)
	require.ErrorIs(t, err, alertstore.ErrConflict)
	stolen := got
	stolen.Tenant = "t2"
	_, err = s.UpdateReceiver(ctx, stolen)
	require.ErrorIs(t, err, alertstore.ErrNotFound, "another tenant cannot update it")

	// Deleting dead-letters what is queued for it, keeps what was delivered
	// and drops its notification log.
	require.NoError(t, s.StoreNotifications(ctx,
		[]alertstore.Delivery{{Receiver: a.ID, Owner: "t1", GroupKey: "g1", Payload: []byte(`{}`)},
			{Receiver: a.ID, Owner: "t1", GroupKey: "g2", Payload: []byte(`{}`)},
			{Receiver: b.ID, Owner: "t1", GroupKey: "g1", Payload: []byte(`{}`)}},
		nil))
	due, err := s.DueDeliveries(ctx, time.Now(), 10)
	require.NoError(t, err)
	require.Len(t, due, 3)
	require.NoError(t, s.Delivered(ctx, []int64{due[0].ID}, time.Now()))
	require.NoError(t, s.StoreNotifications(ctx, nil, []dispatch.LogEntry{logEntry(a.ID, "g1", t0, time.Now().Add(time.Hour))}))

	require.ErrorIs(t, s.DeleteReceiver(ctx, "t2", false, a.ID), alertstore.ErrNotFound)
	require.NoError(t, s.DeleteReceiver(ctx, "t1", false, a.ID))
	_, err = s.GetReceiver(ctx, "", true, a.ID)
	require.ErrorIs(t, err, alertstore.ErrNotFound)
	require.ErrorIs(t, s.DeleteReceiver(ctx, "t1", false, a.ID), alertstore.ErrNotFound)

	dead, err := s.DeadLetters(ctx, "t1", false, 10)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Equal(t, a.ID, dead[0].Receiver)
	require.Equal(t, "receiver deleted", dead[0].LastError)
	require.Equal(t, 1, count(t, db, "SELECT COUNT(*) FROM deliveries WHERE receiver = ? AND delivered_at IS NOT NULL", a.ID))
	log, err := s.NotificationLog(ctx, time.Now())
	require.NoError(t, err)
	require.Empty(t, log)
	require.ErrorIs(t, s.RetryDeadLetter(ctx, "t1", false, dead[0].ID, time.Now()), alertstore.ErrConflict,
		"a dead letter of a deleted receiver cannot be retried")
}

func TestRules(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	r := rules.Rule{ID: "disk-high", Tenant: "t1", Name: "DiskHigh", Kind: rules.KindSample, Expr: "disk_used / disk_size > 0.9",
		For: 5 * time.Minute, Labels: map[string]string{"severity": "warning"}, Annotations: map[string]string{"summary": "{{ $labels.instance }}"}}
	_, err := s.CreateRule(ctx, r)
	require.NoError(t, err)
	_, err = s.CreateRule(ctx, r)
	require.ErrorIs(t, err, alertstore.ErrConflict)
	override := rules.Rule{ID: "node-down", Tenant: "t1", Disabled: true}
	_, err = s.CreateRule(ctx, override)
	require.NoError(t, err)
	sameID := r
	sameID.Tenant = "t2"
	_, err = s.CreateRule(ctx, sameID)
	require.NoError(t, err, "ids are per tenant")

	list, err := s.ListRules(ctx, "t1", false)
	require.NoError(t, err)
	require.Equal(t, []rules.Rule{r, override}, list)
	all, err := s.ListRules(ctx, "", true)
	require.NoError(t, err)
	require.Len(t, all, 3)

	r.For, r.Disabled = time.Minute, true
	_, err = s.UpdateRule(ctx, r)
	require.NoError(t, err)
	missing := r
	missing.ID = "nope"
	_, err = s.UpdateRule(ctx, missing)
	require.ErrorIs(t, err, alertstore.ErrNotFound)
	list, err = s.ListRules(ctx, "t1", false)
	require.NoError(t, err)
	require.Equal(t, r, list[0])

	require.NoError(t, s.DeleteRule(ctx, "t1", "disk-high"))
	require.ErrorIs(t, s.DeleteRule(ctx, "t1", "disk-high"), alertstore.ErrNotFound)
	list, err = s.ListRules(ctx, "t2", false)
	require.NoError(t, err)
	require.Len(t, list, 1, "t2's rule of the same id stays")
}

func TestRemediationSetting(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	on, err := s.Remediation(ctx, "t1")
	require.NoError(t, err)
	require.False(t, on, "off unless set")
	require.NoError(t, s.SetRemediation(ctx, "t1", true))
	require.NoError(t, s.SetRemediation(ctx, "t1", true))
	on, err = s.Remediation(ctx, "t1")
	require.NoError(t, err)
	require.True(t, on)
	on, err = s.Remediation(ctx, "t2")
	require.NoError(t, err)
	require.False(t, on, "per tenant")
	require.NoError(t, s.SetRemediation(ctx, "t1", false))
	on, err = s.Remediation(ctx, "t1")
	require.NoError(t, err)
	require.False(t, on)
}

func TestActions(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	runs := []alertstore.ActionRun{
		{Fingerprint: "00000000000000aa", Tenant: "t1", InstanceID: "i-1", NodeID: "n-1", Action: "switchover", Status: "succeeded", At: t0},
		{Fingerprint: "00000000000000aa", Tenant: "t1", InstanceID: "i-1", Action: "switchover", Status: "skipped", Detail: "rate limited", At: t0.Add(time.Minute)},
		{Fingerprint: "00000000000000bb", Tenant: "t1", InstanceID: "i-1", Action: "restart-node", Status: "failed", At: t0.Add(2 * time.Minute)},
		{Fingerprint: "00000000000000cc", Tenant: "t2", InstanceID: "i-2", Action: "rebuild-replica", Status: "succeeded", At: t0.Add(3 * time.Minute)},
	}
	for i, r := range runs {
		got, err := s.RecordAction(ctx, r)
		require.NoError(t, err)
		require.NotZero(t, got.ID)
		runs[i] = got
	}
	n, err := s.ActionsSince(ctx, "i-1", t0)
	require.NoError(t, err)
	require.Equal(t, 2, n, "skipped runs do not count")
	n, err = s.ActionsSince(ctx, "i-1", t0.Add(90*time.Second))
	require.NoError(t, err)
	require.Equal(t, 1, n)

	list, err := s.ListActions(ctx, "t1", false, 0)
	require.NoError(t, err)
	require.Equal(t, []alertstore.ActionRun{runs[2], runs[1], runs[0]}, list, "newest first, tenant's only")
	list, err = s.ListActions(ctx, "", true, 2)
	require.NoError(t, err)
	require.Equal(t, []alertstore.ActionRun{runs[3], runs[2]}, list)
}

func ruleFor(tenant string) rules.Rule {
	return rules.Rule{ID: "r", Tenant: tenant, Name: "R", Kind: rules.KindEvent, On: []string{"health.node.down"}}
}
