package alert

import (
	"errors"
	"testing"
	"time"
)

func TestSilenceStateAndMutes(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	end := start.Add(time.Hour)
	s := &Silence{
		Matchers: Matchers{MustMatcher(MatchRegexp, "alertname", "Node.*"), MustMatcher(MatchEqual, "instance", "i1")},
		StartsAt: start, EndsAt: end,
	}
	ls := LabelSet{"alertname": "NodeDown", "instance": "i1"}
	cases := []struct {
		name      string
		at        time.Time
		labels    LabelSet
		wantState SilenceState
		wantMute  bool
	}{
		{"before start", start.Add(-time.Second), ls, SilencePending, false},
		{"at start", start, ls, SilenceActive, true},
		{"inside", start.Add(time.Minute), ls, SilenceActive, true},
		{"at end", end, ls, SilenceActive, true},
		{"after end", end.Add(time.Second), ls, SilenceExpired, false},
		{"regexp does not match", start.Add(time.Minute), LabelSet{"alertname": "ReplicaLag", "instance": "i1"}, SilenceActive, false},
		{"regexp is anchored", start.Add(time.Minute), LabelSet{"alertname": "XNodeDown", "instance": "i1"}, SilenceActive, false},
	}
	for _, c := range cases {
		if got := s.State(c.at); got != c.wantState {
			t.Errorf("%s: State = %s, want %s", c.name, got, c.wantState)
		}
		if got := s.Mutes(c.labels, c.at); got != c.wantMute {
			t.Errorf("%s: Mutes = %v, want %v", c.name, got, c.wantMute)
		}
	}
}

func TestTenantSilenceMutesOnlyItsTenant(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	s := &Silence{Tenant: "t1", Matchers: Matchers{eq("alertname", "NodeDown")}, StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour)}
	if !s.Mutes(LabelSet{"alertname": "NodeDown", LabelTenant: "t1"}, now) {
		t.Error("does not mute its own tenant's alert")
	}
	if s.Mutes(LabelSet{"alertname": "NodeDown", LabelTenant: "t2"}, now) {
		t.Error("mutes another tenant's alert")
	}
	if s.Mutes(LabelSet{"alertname": "NodeDown"}, now) {
		t.Error("mutes a platform alert")
	}
	platform := &Silence{Matchers: Matchers{eq("alertname", "NodeDown")}, StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour)}
	if !platform.Mutes(LabelSet{"alertname": "NodeDown", LabelTenant: "t2"}, now) {
		t.Error("platform silence does not mute a tenant alert it matches")
	}
}

func TestSilenceValidate(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	valid := func() Silence {
		return Silence{Matchers: Matchers{eq("alertname", "NodeDown")}, StartsAt: now, EndsAt: now.Add(time.Hour)}
	}
	cases := []struct {
		name string
		mod  func(s *Silence)
		ok   bool
	}{
		{"valid", func(*Silence) {}, true},
		{"no matchers", func(s *Silence) { s.Matchers = nil }, false},
		{"only matchers matching empty", func(s *Silence) {
			s.Matchers = Matchers{eq("a", ""), MustMatcher(MatchRegexp, "b", ".*"), MustMatcher(MatchNotEqual, "c", "x")}
		}, false},
		{"one matcher not matching empty is enough", func(s *Silence) {
			s.Matchers = Matchers{eq("a", ""), MustMatcher(MatchRegexp, "b", ".+")}
		}, true},
		{"regexp that does not compile", func(s *Silence) {
			s.Matchers = Matchers{&Matcher{Type: MatchRegexp, Name: "a", Value: "("}}
		}, false},
		{"invalid label name", func(s *Silence) { s.Matchers = Matchers{eq("a-b", "x")} }, false},
		{"nil matcher", func(s *Silence) { s.Matchers = Matchers{nil} }, false},
		{"ends before start", func(s *Silence) { s.EndsAt = now.Add(-time.Minute) }, false},
		{"ends at start", func(s *Silence) { s.EndsAt = now }, false},
		{"no start", func(s *Silence) { s.StartsAt = time.Time{} }, false},
		{"no end", func(s *Silence) { s.EndsAt = time.Time{} }, false},
		{"tenant with own tenant matcher", func(s *Silence) {
			s.Tenant = "t1"
			s.Matchers = append(s.Matchers, eq(LabelTenant, "t1"))
		}, true},
		{"tenant naming another tenant", func(s *Silence) {
			s.Tenant = "t1"
			s.Matchers = append(s.Matchers, eq(LabelTenant, "t2"))
		}, false},
		{"tenant regexp excluding itself", func(s *Silence) {
			s.Tenant = "t1"
			s.Matchers = append(s.Matchers, MustMatcher(MatchRegexp, LabelTenant, "t2|t3"))
		}, false},
	}
	for _, c := range cases {
		s := valid()
		c.mod(&s)
		err := s.Validate()
		if c.ok && err != nil {
			t.Errorf("%s: Validate: %v", c.name, err)
		}
		if !c.ok && (err == nil || !errors.Is(err, ErrInvalidSilence)) {
			t.Errorf("%s: Validate = %v, want ErrInvalidSilence", c.name, err)
		}
	}
}
