package dispatch

import (
	"fmt"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
)

// The expected values come from prometheus/common model v0.72.0, so that a
// fingerprint and group key here equal Alertmanager's.
func TestFingerprintAndLabelStringMatchPrometheus(t *testing.T) {
	cases := []struct {
		name   string
		labels alert.LabelSet
		fp     string
	}{
		{"three labels", alert.LabelSet{"alertname": "NodeDown", "instance": "i-1", "severity": "critical"}, "c9ae259c343204e4"},
		{"empty set", alert.LabelSet{}, "cbf29ce484222325"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := fmt.Sprintf("%016x", uint64(fingerprintOf(tc.labels))); got != tc.fp {
				t.Fatalf("fingerprint = %s, want %s", got, tc.fp)
			}
		})
	}
	got := labelSetString(alert.LabelSet{"v": "x\"y\n", "alertname": "A"})
	if want := `{alertname="A", v="x\"y\n"}`; got != want {
		t.Fatalf("label string = %s, want %s", got, want)
	}
}

func TestMatcherRegexpIsAnchored(t *testing.T) {
	cases := []struct {
		name  string
		m     alert.Matcher
		value string
		want  bool
	}{
		{"regexp whole value", alert.Matcher{Type: alert.MatchRegexp, Name: "s", Value: "crit|warn"}, "warn", true},
		{"regexp prefix only", alert.Matcher{Type: alert.MatchRegexp, Name: "s", Value: "crit"}, "critical", false},
		{"not regexp", alert.Matcher{Type: alert.MatchNotRegexp, Name: "s", Value: "crit.*"}, "warning", true},
		{"equal missing is empty", alert.Matcher{Type: alert.MatchEqual, Name: "tenant", Value: ""}, "", true},
		{"not equal", alert.Matcher{Type: alert.MatchNotEqual, Name: "s", Value: "a"}, "a", false},
		{"bad regexp never matches", alert.Matcher{Type: alert.MatchRegexp, Name: "s", Value: "("}, "(", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := compileMatcher(&tc.m).matches(tc.value); got != tc.want {
				t.Fatalf("matches(%q) = %v, want %v", tc.value, got, tc.want)
			}
		})
	}
}

func TestMergeAlert(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	cases := []struct {
		name               string
		old, nw            alert.Alert
		now                time.Duration
		wantStart, wantEnd time.Time
	}{
		{
			name:      "newer report resolves, earliest start kept",
			old:       alert.Alert{StartsAt: at(0), UpdatedAt: at(time.Minute)},
			nw:        alert.Alert{StartsAt: at(30 * time.Second), EndsAt: at(2 * time.Minute), UpdatedAt: at(2 * time.Minute)},
			now:       3 * time.Minute,
			wantStart: at(0), wantEnd: at(2 * time.Minute),
		},
		{
			name:      "older report arriving late does not win",
			old:       alert.Alert{StartsAt: at(0), EndsAt: at(2 * time.Minute), UpdatedAt: at(2 * time.Minute)},
			nw:        alert.Alert{StartsAt: at(0), UpdatedAt: at(time.Minute)},
			now:       3 * time.Minute,
			wantStart: at(0), wantEnd: at(2 * time.Minute),
		},
		{
			name:      "firing again after the end is a new incarnation",
			old:       alert.Alert{StartsAt: at(0), EndsAt: at(time.Minute), UpdatedAt: at(time.Minute)},
			nw:        alert.Alert{StartsAt: at(5 * time.Minute), UpdatedAt: at(5 * time.Minute)},
			now:       5 * time.Minute,
			wantStart: at(5 * time.Minute),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := mergeAlert(&tc.old, &tc.nw, at(tc.now))
			if !got.StartsAt.Equal(tc.wantStart) || !got.EndsAt.Equal(tc.wantEnd) {
				t.Fatalf("merged starts %v ends %v, want %v %v", got.StartsAt, got.EndsAt, tc.wantStart, tc.wantEnd)
			}
		})
	}
}
