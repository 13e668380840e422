package alert

import (
	"sync"
	"testing"
	"time"
)

func eq(name, value string) *Matcher { return MustMatcher(MatchEqual, name, value) }

func firing(ls LabelSet, now time.Time) *Alert {
	return &Alert{Labels: ls, StartsAt: now.Add(-time.Minute), State: StateFiring}
}

// TestInhibitorAlertmanagerCases are Alertmanager 0.25's
// TestInhibitRuleMatches cases, with each target also among the known
// alerts (as it is in a running system) to show it never inhibits itself.
func TestInhibitorAlertmanagerCases(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	rules := []InhibitRule{
		{Source: Matchers{eq("s1", "1")}, Target: Matchers{eq("t1", "1")}, Equal: []string{"e"}},
		{Source: Matchers{eq("s2", "1")}, Target: Matchers{eq("t2", "1")}, Equal: []string{"e"}},
	}
	source1 := firing(LabelSet{"s1": "1", "t1": "2", "e": "1"}, now)
	source2 := firing(LabelSet{"s2": "1", "t2": "1", "e": "1"}, now) // matches both sides of rule 2
	cases := []struct {
		name   string
		target LabelSet
		by     *Alert
	}{
		{"target of rule 1", LabelSet{"t1": "1", "e": "1"}, source1},
		{"target of rule 2", LabelSet{"t2": "1", "e": "1"}, source2},
		{"target of rule 1 plus noise", LabelSet{"t1": "1", "t3": "1", "e": "1"}, source1},
		{"target of both rules", LabelSet{"t1": "1", "t2": "1", "e": "1"}, source1},
		{"no target", LabelSet{"t1": "0", "e": "1"}, nil},
		{"both sides of rule 1, source only one side", LabelSet{"s1": "1", "t1": "1", "e": "1"}, source1},
		{"both sides of rule 2, source both sides too", LabelSet{"s2": "1", "t2": "1", "e": "1"}, nil},
		{"equal label differs", LabelSet{"t1": "1", "e": "0"}, nil},
		{"equal label missing on target", LabelSet{"t1": "1"}, nil},
	}
	for _, c := range cases {
		in := NewInhibitor(rules)
		target := firing(c.target, now)
		in.Set([]*Alert{source1, source2, target}, now)
		fp, ok := in.Inhibited(target, now)
		switch {
		case c.by == nil && ok:
			t.Errorf("%s: inhibited by %s, want not inhibited", c.name, fp)
		case c.by != nil && !ok:
			t.Errorf("%s: not inhibited, want inhibited by %s", c.name, c.by.Labels)
		case c.by != nil && fp != c.by.Fingerprint():
			t.Errorf("%s: inhibited by %s, want %s", c.name, fp, c.by.Fingerprint())
		}
	}
}

func TestInhibitorSourceStates(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	rule := InhibitRule{
		Source: Matchers{eq("alertname", "NodeDown")},
		Target: Matchers{MustMatcher(MatchNotEqual, "alertname", "NodeDown")},
		Equal:  []string{"instance", "node"},
	}
	target := firing(LabelSet{"alertname": "ReplicaLag", "instance": "i1", "node": "n1"}, now)
	src := func(mod func(a *Alert)) *Alert {
		a := firing(LabelSet{"alertname": "NodeDown", "instance": "i1", "node": "n1"}, now)
		mod(a)
		return a
	}
	cases := []struct {
		name   string
		source *Alert
		at     time.Time
		want   bool
	}{
		{"firing source", src(func(*Alert) {}), now, true},
		{"firing with a future end", src(func(a *Alert) { a.EndsAt = now.Add(time.Minute) }), now, true},
		{"resolved source", src(func(a *Alert) { a.EndsAt = now.Add(-time.Second); a.State = StateResolved }), now, false},
		{"source resolves after Set", src(func(a *Alert) { a.EndsAt = now.Add(time.Minute) }), now.Add(2 * time.Minute), false},
		{"pending source", src(func(a *Alert) { a.State = StatePending }), now, false},
		{"other node", src(func(a *Alert) { a.Labels["node"] = "n2" }), now, false},
	}
	for _, c := range cases {
		in := NewInhibitor([]InhibitRule{rule})
		in.Set([]*Alert{c.source, target}, now)
		if _, got := in.Inhibited(target, c.at); got != c.want {
			t.Errorf("%s: inhibited = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestInhibitorSetReplacesSources(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	in := NewInhibitor([]InhibitRule{{Source: Matchers{eq("a", "src")}, Target: Matchers{eq("a", "tgt")}}})
	target := firing(LabelSet{"a": "tgt"}, now)
	in.Set([]*Alert{firing(LabelSet{"a": "src"}, now)}, now)
	if _, ok := in.Inhibited(target, now); !ok {
		t.Fatal("not inhibited with a source")
	}
	in.Set(nil, now)
	if _, ok := in.Inhibited(target, now); ok {
		t.Fatal("still inhibited after the source left")
	}
}

func TestInhibitorConcurrentUse(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	in := NewInhibitor([]InhibitRule{{Source: Matchers{eq("a", "src")}, Target: Matchers{eq("a", "tgt")}}})
	target := firing(LabelSet{"a": "tgt"}, now)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				in.Set([]*Alert{firing(LabelSet{"a": "src"}, now)}, now)
			}
		}()
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				in.Inhibited(target, now)
			}
		}()
	}
	wg.Wait()
}
