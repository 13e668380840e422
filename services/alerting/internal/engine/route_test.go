package engine

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
	"github.com/canopy-platform/canopy/services/alerting/internal/alertstore"
	"github.com/canopy-platform/canopy/services/alerting/internal/dispatch"
)

func TestRouteImplicitTenantMatchers(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		recv     alertstore.Receiver
		matches  []alert.LabelSet
		excludes []alert.LabelSet
	}{
		"tenant receiver sees only its tenant": {
			recv:     alertstore.Receiver{ID: "r1", Tenant: "acme", Matchers: []string{`severity=~"critical|warning"`}},
			matches:  []alert.LabelSet{{"tenant": "acme", "severity": "critical"}},
			excludes: []alert.LabelSet{{"tenant": "other", "severity": "critical"}, {"severity": "critical"}, {"tenant": "acme", "severity": "info"}},
		},
		"tenant receiver cannot widen with its own tenant matcher": {
			recv:     alertstore.Receiver{ID: "r2", Tenant: "acme", Matchers: []string{`tenant=~".*"`}},
			matches:  []alert.LabelSet{{"tenant": "acme"}},
			excludes: []alert.LabelSet{{"tenant": "other"}, {}},
		},
		"platform receiver without tenant matcher: platform alerts only": {
			recv:     alertstore.Receiver{ID: "r3"},
			matches:  []alert.LabelSet{{"alertname": "X"}},
			excludes: []alert.LabelSet{{"tenant": "acme"}},
		},
		"platform receiver with a tenant matcher: as written": {
			recv:     alertstore.Receiver{ID: "r4", Matchers: []string{`tenant=~"acme|beta"`}},
			matches:  []alert.LabelSet{{"tenant": "acme"}, {"tenant": "beta"}},
			excludes: []alert.LabelSet{{}, {"tenant": "gamma"}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rt, err := route(tc.recv)
			require.NoError(t, err)
			for _, ls := range tc.matches {
				assert.True(t, rt.Matchers.Matches(ls), "should match %v", ls)
			}
			for _, ls := range tc.excludes {
				assert.False(t, rt.Matchers.Matches(ls), "should not match %v", ls)
			}
		})
	}
}

func TestRouteDefaults(t *testing.T) {
	t.Parallel()
	rt, err := route(alertstore.Receiver{ID: "r1", Name: "oncall", Tenant: "acme", SendResolved: true})
	require.NoError(t, err)
	assert.Equal(t, dispatch.Route{
		Receiver: "r1", ReceiverName: "oncall", Owner: "acme", Matchers: rt.Matchers,
		GroupBy: []string{"alertname", "instance"}, SendResolved: true,
	}, rt)

	_, err = route(alertstore.Receiver{ID: "r2", Matchers: []string{`a=~"("`}})
	assert.Error(t, err, "a bad regexp is refused")
}

func TestTransition(t *testing.T) {
	t.Parallel()
	at := func(s alert.State) *alert.Alert { return &alert.Alert{State: s} }
	cases := map[string]struct {
		old, cur *alert.Alert
		want     string
	}{
		"new firing":          {nil, at(alert.StateFiring), events.TypeAlertFiring},
		"pending to firing":   {at(alert.StatePending), at(alert.StateFiring), events.TypeAlertFiring},
		"refiring":            {at(alert.StateResolved), at(alert.StateFiring), events.TypeAlertFiring},
		"still firing":        {at(alert.StateFiring), at(alert.StateFiring), ""},
		"firing to resolved":  {at(alert.StateFiring), at(alert.StateResolved), events.TypeAlertResolved},
		"pending to resolved": {at(alert.StatePending), at(alert.StateResolved), ""},
		"new pending":         {nil, at(alert.StatePending), ""},
		"new resolved":        {nil, at(alert.StateResolved), ""},
	}
	for name, tc := range cases {
		got, ok := transition(tc.old, tc.cur)
		assert.Equal(t, tc.want != "", ok, name)
		assert.Equal(t, tc.want, got, name)
	}
}

func TestTransitionEvent(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	a := &alert.Alert{Labels: alert.LabelSet{"alertname": "X", "tenant": "acme"}, StartsAt: start,
		EndsAt: start.Add(time.Minute), State: alert.StateResolved, Rule: "node-down"}
	fp := a.Labels.Fingerprint()
	ev, err := transitionEvent(events.TypeAlertResolved, fp, a)
	require.NoError(t, err)
	assert.Equal(t, fp.String(), ev.Key)
	assert.Equal(t, events.SourceAlerting, ev.Source)
	assert.Equal(t, "acme", ev.Tenant)
	var p events.AlertTransition
	require.NoError(t, ev.Decode(&p))
	assert.Equal(t, "resolved", p.Status)
	assert.Equal(t, "acme", p.TenantID)
	require.NotNil(t, p.EndsAt)
	assert.True(t, p.EndsAt.Equal(start.Add(time.Minute)))

	a.Labels["tenant"] = "Not A Tenant!"
	ev, err = transitionEvent(events.TypeAlertFiring, a.Labels.Fingerprint(), a)
	require.NoError(t, err)
	assert.Empty(t, ev.Tenant, "a malformed tenant label stays out of the header")
}
