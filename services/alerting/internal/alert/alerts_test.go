package alert

import (
	"testing"
	"time"
)

func TestResolved(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name   string
		endsAt time.Time
		want   bool
	}{
		{"no end fires", time.Time{}, false},
		{"end in the future fires", now.Add(time.Second), false},
		{"end now is resolved", now, true},
		{"end in the past is resolved", now.Add(-time.Second), true},
	}
	for _, c := range cases {
		a := &Alert{EndsAt: c.endsAt}
		if got := a.Resolved(now); got != c.want {
			t.Errorf("%s: Resolved = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestAlertTenantAndFingerprint(t *testing.T) {
	t.Parallel()
	a := &Alert{Labels: LabelSet{"alertname": "x", LabelTenant: "t1"}}
	if a.Tenant() != "t1" {
		t.Fatalf("Tenant() = %q", a.Tenant())
	}
	if a.Fingerprint() != a.Labels.Fingerprint() {
		t.Fatalf("alert fingerprint differs from its labels'")
	}
	if (&Alert{Labels: LabelSet{"alertname": "x"}}).Tenant() != "" {
		t.Fatalf("platform alert has a tenant")
	}
}

func TestMerge(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return now.Add(d) }
	var zero time.Time
	ann := func(s string) LabelSet { return LabelSet{"summary": s} }
	cases := []struct {
		name      string
		a, b      *Alert
		wantStart time.Time
		wantEnd   time.Time
		wantAnn   string
		wantState State
	}{
		{
			name:      "both open: earliest start, younger annotations",
			a:         &Alert{StartsAt: at(-2 * time.Minute), UpdatedAt: now, Annotations: ann("old")},
			b:         &Alert{StartsAt: at(-time.Minute), UpdatedAt: at(time.Minute), Annotations: ann("new")},
			wantStart: at(-2 * time.Minute), wantEnd: zero, wantAnn: "new", wantState: StateFiring,
		},
		{
			name:      "open then explicit end: explicit end from the younger",
			a:         &Alert{StartsAt: at(-time.Minute), UpdatedAt: now},
			b:         &Alert{StartsAt: now, EndsAt: at(2 * time.Minute), UpdatedAt: at(time.Minute)},
			wantStart: at(-time.Minute), wantEnd: at(2 * time.Minute), wantState: StateFiring,
		},
		{
			name:      "explicit later end of the older wins over the younger's earlier explicit end",
			a:         &Alert{StartsAt: at(-time.Minute), EndsAt: at(3 * time.Minute), UpdatedAt: now},
			b:         &Alert{StartsAt: now, EndsAt: at(2 * time.Minute), UpdatedAt: at(time.Minute)},
			wantStart: at(-time.Minute), wantEnd: at(3 * time.Minute), wantState: StateFiring,
		},
		{
			name:      "resolution report ends a firing alert, start kept",
			a:         &Alert{StartsAt: at(-10 * time.Minute), UpdatedAt: at(-time.Minute), State: StateFiring},
			b:         &Alert{StartsAt: at(-10 * time.Minute), EndsAt: now, UpdatedAt: now},
			wantStart: at(-10 * time.Minute), wantEnd: now, wantState: StateResolved,
		},
		{
			name:      "resolution without a start keeps the start",
			a:         &Alert{StartsAt: at(-10 * time.Minute), UpdatedAt: at(-time.Minute)},
			b:         &Alert{EndsAt: now, UpdatedAt: now},
			wantStart: at(-10 * time.Minute), wantEnd: now, wantState: StateResolved,
		},
		{
			name:      "both resolved: the latest end wins",
			a:         &Alert{StartsAt: at(-10 * time.Minute), EndsAt: at(-time.Minute), UpdatedAt: at(-2 * time.Minute)},
			b:         &Alert{StartsAt: at(-5 * time.Minute), EndsAt: at(-3 * time.Minute), UpdatedAt: now},
			wantStart: at(-10 * time.Minute), wantEnd: at(-time.Minute), wantState: StateResolved,
		},
		{
			name:      "resolved alert firing again starts a new episode",
			a:         &Alert{StartsAt: at(-time.Hour), EndsAt: at(-30 * time.Minute), UpdatedAt: at(-30 * time.Minute), Annotations: ann("old")},
			b:         &Alert{StartsAt: at(-time.Minute), UpdatedAt: now, Annotations: ann("new")},
			wantStart: at(-time.Minute), wantEnd: zero, wantAnn: "new", wantState: StateFiring,
		},
		{
			name:      "older report arriving late: the younger still rules",
			a:         &Alert{StartsAt: at(-2 * time.Minute), EndsAt: now, UpdatedAt: at(time.Minute), Annotations: ann("young")},
			b:         &Alert{StartsAt: at(-time.Minute), UpdatedAt: at(-time.Minute), Annotations: ann("old")},
			wantStart: at(-2 * time.Minute), wantEnd: now, wantAnn: "young", wantState: StateResolved,
		},
		{
			name:      "pending stays pending while not resolved",
			a:         &Alert{StartsAt: at(-time.Minute), UpdatedAt: at(-time.Minute), State: StatePending},
			b:         &Alert{StartsAt: at(-time.Minute), UpdatedAt: now, State: StatePending},
			wantStart: at(-time.Minute), wantEnd: zero, wantState: StatePending,
		},
	}
	for _, c := range cases {
		got := c.a.Merge(c.b)
		if !got.StartsAt.Equal(c.wantStart) || !got.EndsAt.Equal(c.wantEnd) {
			t.Errorf("%s: merged [%v, %v], want [%v, %v]", c.name, got.StartsAt, got.EndsAt, c.wantStart, c.wantEnd)
		}
		if got.Annotations["summary"] != c.wantAnn {
			t.Errorf("%s: annotations %v, want summary %q", c.name, got.Annotations, c.wantAnn)
		}
		if got.State != c.wantState {
			t.Errorf("%s: state %q, want %q", c.name, got.State, c.wantState)
		}
		if got == c.a || got == c.b {
			t.Errorf("%s: Merge returned one of its inputs instead of a new alert", c.name)
		}
	}
}
