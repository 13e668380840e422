package alertstore_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/paging"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
	"github.com/canopy-platform/canopy/services/alerting/internal/alertstore"
	"github.com/canopy-platform/canopy/services/alerting/migrations"
)

func TestMigrateTwiceIsANoop(t *testing.T) {
	t.Parallel()
	_, db := newStore(t)
	require.NoError(t, db.Migrate(context.Background(), store.OutboxMigrations(), migrations.FS))
}

func TestUpsertAlertsRoundTrip(t *testing.T) {
	t.Parallel()
	s, _ := newAlertStore(t)
	ctx := context.Background()
	a := &alert.Alert{
		Labels:       alert.LabelSet{"alertname": "RedisMemoryHigh", "tenant": "t1", "instance": "i-1", "node": "n-1"},
		Annotations:  alert.LabelSet{"summary": "memory at 91%"},
		StartsAt:     t0.Add(123456789 * time.Nanosecond),
		GeneratorURL: "http://127.0.0.1:8080/api/v1/alert-rules/redis-memory-high",
		UpdatedAt:    t0.Add(time.Second),
		State:        alert.StateFiring,
		Rule:         "redis-memory-high",
		Value:        0.91,
		Action:       "switchover",
	}
	noValue := firing(t0, "alertname", "NoValue")
	noValue.Value = math.NaN()
	resolved := firing(t0, "alertname", "Gone")
	resolved.EndsAt, resolved.State = t0.Add(time.Minute), alert.StateResolved
	require.NoError(t, s.UpsertAlerts(ctx, []*alert.Alert{a, noValue, resolved}, nil))

	got, err := s.GetAlert(ctx, "t1", false, a.Fingerprint())
	require.NoError(t, err)
	require.Equal(t, a.Fingerprint(), got.Fingerprint)
	require.Equal(t, a.Labels, got.Labels)
	require.Equal(t, a.Annotations, got.Annotations)
	require.True(t, got.StartsAt.Equal(t0.Add(123456*time.Microsecond)), "microsecond precision: %v", got.StartsAt)
	require.True(t, got.EndsAt.IsZero(), "no end while firing")
	require.True(t, got.UpdatedAt.Equal(a.UpdatedAt))
	require.Equal(t, alert.StateFiring, got.State)
	require.Equal(t, "redis-memory-high", got.Rule)
	require.Equal(t, 0.91, got.Value)
	require.Equal(t, "switchover", got.Action)
	require.Equal(t, a.GeneratorURL, got.GeneratorURL)

	nv, err := s.GetAlert(ctx, "", false, noValue.Fingerprint())
	require.NoError(t, err)
	require.True(t, math.IsNaN(nv.Value), "NaN survives as NULL")

	r, err := s.GetAlert(ctx, "", true, resolved.Fingerprint())
	require.NoError(t, err)
	require.Equal(t, alert.StateResolved, r.State)
	require.True(t, r.EndsAt.Equal(t0.Add(time.Minute)))
}

// The store keeps an earlier StartsAt of an alert that has not ended (the
// rule alert.Merge applies) and otherwise writes what it is given.
func TestUpsertAlertsStartsAt(t *testing.T) {
	t.Parallel()
	s, _ := newAlertStore(t)
	ctx := context.Background()
	cases := []struct {
		name      string
		stored    func(a *alert.Alert)
		report    func(a *alert.Alert)
		wantStart time.Time
	}{
		{"continuation keeps the first start",
			func(a *alert.Alert) {},
			func(a *alert.Alert) { a.StartsAt, a.UpdatedAt = t0.Add(time.Minute), t0.Add(time.Minute) },
			t0},
		{"continuation resolving keeps the first start",
			func(a *alert.Alert) {},
			func(a *alert.Alert) {
				a.StartsAt, a.UpdatedAt, a.EndsAt, a.State = t0.Add(time.Minute), t0.Add(time.Minute), t0.Add(time.Minute), alert.StateResolved
			},
			t0},
		{"pending to firing keeps the pending start",
			func(a *alert.Alert) { a.State = alert.StatePending },
			func(a *alert.Alert) { a.StartsAt, a.UpdatedAt = t0.Add(5*time.Minute), t0.Add(5*time.Minute) },
			t0},
		{"an earlier start wins",
			func(a *alert.Alert) {},
			func(a *alert.Alert) { a.StartsAt, a.UpdatedAt = t0.Add(-time.Minute), t0.Add(time.Minute) },
			t0.Add(-time.Minute)},
		{"refiring after resolved starts anew",
			func(a *alert.Alert) { a.EndsAt, a.State = t0.Add(time.Minute), alert.StateResolved },
			func(a *alert.Alert) { a.StartsAt, a.UpdatedAt = t0.Add(time.Hour), t0.Add(time.Hour) },
			t0.Add(time.Hour)},
		{"refiring after a push's end timed out starts anew",
			func(a *alert.Alert) { a.EndsAt = t0.Add(5 * time.Minute) },
			func(a *alert.Alert) { a.StartsAt, a.UpdatedAt = t0.Add(time.Hour), t0.Add(time.Hour) },
			t0.Add(time.Hour)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := firing(t0, "alertname", "StartsAt", "case", tc.name)
			tc.stored(a)
			require.NoError(t, s.UpsertAlerts(ctx, []*alert.Alert{a}, nil))
			b := firing(t0, "alertname", "StartsAt", "case", tc.name)
			tc.report(b)
			require.NoError(t, s.UpsertAlerts(ctx, []*alert.Alert{b}, nil))
			got, err := s.GetAlert(ctx, "", true, b.Fingerprint())
			require.NoError(t, err)
			require.True(t, got.StartsAt.Equal(tc.wantStart), "starts_at %v, want %v", got.StartsAt, tc.wantStart)
			require.Equal(t, b.State, got.State, "the rest is the new report's")
			require.True(t, got.UpdatedAt.Equal(b.UpdatedAt))
		})
	}
}

func TestUpsertAlertsEmitsInTheSameTransaction(t *testing.T) {
	t.Parallel()
	s, db := newAlertStore(t)
	ctx := context.Background()
	a := firing(t0, "alertname", "NodeDown", "tenant", "t1")
	ev := eventbus.Event{Type: events.TypeAlertFiring, Source: events.SourceAlerting, Key: a.Fingerprint().String(),
		Data: []byte(`{"fingerprint":"` + a.Fingerprint().String() + `","status":"firing"}`)}
	require.NoError(t, s.UpsertAlerts(ctx, []*alert.Alert{a}, []eventbus.Event{ev}))
	require.Equal(t, 1, count(t, db, "SELECT COUNT(*) FROM outbox WHERE topic = ? AND msg_key = ?", events.TopicAlerts, ev.Key))

	// An event the outbox refuses rolls the alerts back with it.
	b := firing(t0, "alertname", "NodeDown", "tenant", "t2")
	bad := eventbus.Event{Key: b.Fingerprint().String()} // no type
	err := s.UpsertAlerts(ctx, []*alert.Alert{b}, []eventbus.Event{ev, bad})
	require.ErrorIs(t, err, store.ErrInvalidEvent)
	_, err = s.GetAlert(ctx, "", true, b.Fingerprint())
	require.ErrorIs(t, err, alertstore.ErrNotFound)
	require.Equal(t, 1, count(t, db, "SELECT COUNT(*) FROM outbox"))
}

func TestUpsertAlertsManyInOneCall(t *testing.T) {
	t.Parallel()
	s, db := newAlertStore(t)
	ctx := context.Background()
	batch := manyAlerts(1234, "t1", t0) // more than one statement's rows
	dup := firing(t0, "alertname", "Load", "instance", "i-00007", "tenant", "t1", "severity", "warning")
	dup.Annotations = alert.LabelSet{"summary": "the later report"}
	batch = append(batch, dup)
	require.NoError(t, s.UpsertAlerts(ctx, batch, nil))
	require.Equal(t, 1234, count(t, db, "SELECT COUNT(*) FROM alerts"))
	got, err := s.GetAlert(ctx, "t1", false, dup.Fingerprint())
	require.NoError(t, err)
	require.Equal(t, "the later report", got.Annotations["summary"], "of duplicates in a batch the later wins")
}

func TestLiveAlerts(t *testing.T) {
	t.Parallel()
	s, _ := newAlertStore(t)
	ctx := context.Background()
	pending := firing(t0, "alertname", "Pending")
	pending.State = alert.StatePending
	fire := firing(t0, "alertname", "Firing")
	recent := firing(t0, "alertname", "RecentlyResolved")
	recent.State, recent.EndsAt = alert.StateResolved, t0.Add(2*time.Hour)
	old := firing(t0, "alertname", "LongResolved")
	old.State, old.EndsAt = alert.StateResolved, t0.Add(time.Minute)
	require.NoError(t, s.UpsertAlerts(ctx, []*alert.Alert{pending, fire, recent, old}, nil))

	live, err := s.LiveAlerts(ctx, t0.Add(time.Hour))
	require.NoError(t, err)
	var got []string
	for _, a := range live {
		got = append(got, a.Labels["alertname"])
	}
	require.ElementsMatch(t, []string{"Pending", "Firing", "RecentlyResolved"}, got)
}

func TestListAlerts(t *testing.T) {
	t.Parallel()
	s, _ := newAlertStore(t)
	ctx := context.Background()
	var batch []*alert.Alert
	for _, tenant := range []string{"t1", "t2"} {
		for _, sev := range []string{"critical", "warning", "critical", "warning", "critical", "warning", "critical"} {
			a := firing(t0, "alertname", tenant+"-"+sev+"-"+string(rune('a'+len(batch))), "tenant", tenant, "severity", sev)
			batch = append(batch, a)
		}
	}
	platform := firing(t0, "alertname", "platform")
	gone := firing(t0, "alertname", "t1-gone", "tenant", "t1", "severity", "critical")
	gone.State, gone.EndsAt = alert.StateResolved, t0.Add(time.Minute)
	batch = append(batch, platform, gone)
	require.NoError(t, s.UpsertAlerts(ctx, batch, nil))

	// pageAll follows the cursor, checking each page's size.
	pageAll := func(f alertstore.AlertFilter) []alertstore.StoredAlert {
		t.Helper()
		var all []alertstore.StoredAlert
		for i := 0; ; i++ {
			require.Less(t, i, 20, "cursor loops")
			items, next, err := s.ListAlerts(ctx, f)
			require.NoError(t, err)
			require.LessOrEqual(t, len(items), f.Limit)
			all = append(all, items...)
			if next == "" {
				return all
			}
			require.Len(t, items, f.Limit, "a page before the last is full")
			f.After = next
		}
	}
	checkSorted := func(items []alertstore.StoredAlert) {
		t.Helper()
		for i := 1; i < len(items); i++ {
			require.Less(t, items[i-1].Fingerprint, items[i].Fingerprint)
		}
	}

	t1 := pageAll(alertstore.AlertFilter{Tenant: "t1", Limit: 3})
	require.Len(t, t1, 8)
	checkSorted(t1)
	for _, a := range t1 {
		require.Equal(t, "t1", a.Labels["tenant"], "a tenant sees only its alerts")
	}

	firingT1 := pageAll(alertstore.AlertFilter{Tenant: "t1", States: []alert.State{alert.StateFiring}, Limit: 2})
	require.Len(t, firingT1, 7)

	crit := pageAll(alertstore.AlertFilter{Tenant: "t2", Limit: 2, States: []alert.State{alert.StateFiring},
		Matchers: alert.Matchers{matcher(t, alert.MatchRegexp, "severity", "crit.*")}})
	require.Len(t, crit, 4)
	checkSorted(crit)
	for _, a := range crit {
		require.Equal(t, "critical", a.Labels["severity"])
	}

	plat := pageAll(alertstore.AlertFilter{Tenant: "", Limit: 10})
	require.Equal(t, []string{"platform"}, names(plat), "tenant \"\" without all: platform alerts only")

	everything := pageAll(alertstore.AlertFilter{All: true, Limit: 4})
	require.Len(t, everything, 16)
	checkSorted(everything)

	items, next, err := s.ListAlerts(ctx, alertstore.AlertFilter{All: true})
	require.NoError(t, err)
	require.Len(t, items, 16, "default limit covers them")
	require.Empty(t, next)

	_, _, err = s.ListAlerts(ctx, alertstore.AlertFilter{All: true, After: "not-hex"})
	require.ErrorIs(t, err, paging.ErrInvalid)
}

func TestGetAlertTenantChecks(t *testing.T) {
	t.Parallel()
	s, _ := newAlertStore(t)
	ctx := context.Background()
	a := firing(t0, "alertname", "NodeDown", "tenant", "t1", "instance", "i-1")
	p := firing(t0, "alertname", "NodeDown", "instance", "i-9")
	require.NoError(t, s.UpsertAlerts(ctx, []*alert.Alert{a, p}, nil))

	cases := []struct {
		name   string
		tenant string
		all    bool
		fp     alert.Fingerprint
		found  bool
	}{
		{"own tenant", "t1", false, a.Fingerprint(), true},
		{"other tenant", "t2", false, a.Fingerprint(), false},
		{"platform caller without all", "", false, a.Fingerprint(), false},
		{"platform-admin", "", true, a.Fingerprint(), true},
		{"platform alert, platform caller", "", false, p.Fingerprint(), true},
		{"platform alert, tenant", "t1", false, p.Fingerprint(), false},
		{"unknown", "", true, alert.Fingerprint(42), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.GetAlert(ctx, tc.tenant, tc.all, tc.fp)
			if !tc.found {
				require.ErrorIs(t, err, alertstore.ErrNotFound)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.fp, got.Fingerprint)
		})
	}
}

func TestAlertsCarryTheirActionRuns(t *testing.T) {
	t.Parallel()
	s, _ := newAlertStore(t)
	ctx := context.Background()
	a := firing(t0, "alertname", "ReplicaLag", "tenant", "t1", "instance", "i-1")
	other := firing(t0, "alertname", "Other", "tenant", "t1")
	require.NoError(t, s.UpsertAlerts(ctx, []*alert.Alert{a, other}, nil))
	for _, st := range []string{"skipped", "succeeded"} {
		_, err := s.RecordAction(ctx, alertstore.ActionRun{Fingerprint: a.Fingerprint().String(), Tenant: "t1",
			InstanceID: "i-1", Action: "rebuild-replica", Status: st, At: t0})
		require.NoError(t, err)
	}
	got, err := s.GetAlert(ctx, "t1", false, a.Fingerprint())
	require.NoError(t, err)
	require.Len(t, got.ActionRuns, 2)
	require.Equal(t, "skipped", got.ActionRuns[0].Status)
	require.Equal(t, "succeeded", got.ActionRuns[1].Status)

	items, _, err := s.ListAlerts(ctx, alertstore.AlertFilter{Tenant: "t1"})
	require.NoError(t, err)
	for _, it := range items {
		if it.Fingerprint == a.Fingerprint() {
			require.Len(t, it.ActionRuns, 2)
		} else {
			require.Empty(t, it.ActionRuns)
		}
	}
}

func TestPruneAlerts(t *testing.T) {
	t.Parallel()
	s, _ := newAlertStore(t)
	ctx := context.Background()
	old := firing(t0, "alertname", "Old")
	old.State, old.EndsAt = alert.StateResolved, t0.Add(time.Minute)
	young := firing(t0, "alertname", "Young")
	young.State, young.EndsAt = alert.StateResolved, t0.Add(3*time.Hour)
	fire := firing(t0, "alertname", "Firing")
	require.NoError(t, s.UpsertAlerts(ctx, []*alert.Alert{old, young, fire}, nil))

	n, err := s.PruneAlerts(ctx, t0.Add(time.Hour))
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	_, err = s.GetAlert(ctx, "", true, old.Fingerprint())
	require.True(t, errors.Is(err, alertstore.ErrNotFound))
	for _, a := range []*alert.Alert{young, fire} {
		_, err = s.GetAlert(ctx, "", true, a.Fingerprint())
		require.NoError(t, err)
	}
}

// One odd pushed alert (a huge tenant label, Prometheus' long
// generatorURL with its encoded expression) does not fail its batch.
func TestUpsertAlertsOddValues(t *testing.T) {
	t.Parallel()
	s, _ := newAlertStore(t)
	ctx := context.Background()
	odd := firing(t0, "alertname", "Odd", "tenant", strings.Repeat("é", 300))
	odd.GeneratorURL = "http://prometheus:9090/graph?g0.expr=" + strings.Repeat("rate%28x%5B5m%5D%29+%2B+", 400)
	normal := firing(t0, "alertname", "Normal", "tenant", "t1")
	require.NoError(t, s.UpsertAlerts(ctx, []*alert.Alert{odd, normal}, nil))

	got, err := s.GetAlert(ctx, "", true, odd.Fingerprint())
	require.NoError(t, err)
	require.Equal(t, odd.Labels, got.Labels, "labels are kept whole")
	require.Equal(t, odd.GeneratorURL, got.GeneratorURL)
	_, err = s.GetAlert(ctx, "t1", false, normal.Fingerprint())
	require.NoError(t, err)
}

// A batch larger than the server's packet limit (16 MiB) is split by size.
func TestUpsertAlertsLargeBatchBytes(t *testing.T) {
	t.Parallel()
	s, db := newAlertStore(t)
	ctx := context.Background()
	batch := manyAlerts(600, "t1", t0)
	long := strings.Repeat("d", 40<<10)
	for _, a := range batch {
		a.Annotations = alert.LabelSet{"description": long} // 600 × 40 KiB ≈ 24 MiB
	}
	require.NoError(t, s.UpsertAlerts(ctx, batch, nil))
	require.Equal(t, 600, count(t, db, "SELECT COUNT(*) FROM alerts WHERE LENGTH(annotations) > ?", len(long)))
}
