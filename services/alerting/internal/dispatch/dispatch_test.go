package dispatch

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
)

// t0 is the fake clock's origin; every time in these tests is an offset.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// muteSet mutes alerts by alertname, standing in for silences and
// inhibition.
type muteSet map[string]bool

func (m muteSet) Muted(a *alert.Alert, _ time.Time) bool { return m[a.Labels[alert.LabelAlertName]] }

// fire is a firing alert named name (kv: more labels) started at start.
func fire(name string, start time.Duration, kv ...string) *alert.Alert {
	ls := alert.LabelSet{alert.LabelAlertName: name}
	for i := 0; i+1 < len(kv); i += 2 {
		ls[kv[i]] = kv[i+1]
	}
	return &alert.Alert{Labels: ls, StartsAt: t0.Add(start), UpdatedAt: t0.Add(start), State: alert.StateFiring}
}

// resolve is the same alert ended at end (reported then).
func resolve(name string, start, end time.Duration, kv ...string) *alert.Alert {
	a := fire(name, start, kv...)
	a.EndsAt, a.UpdatedAt, a.State = t0.Add(end), t0.Add(end), alert.StateResolved
	return a
}

// timeout is a firing alert whose EndsAt lies ahead (a push's timeout).
func timeout(name string, start, end time.Duration) *alert.Alert {
	a := fire(name, start)
	a.EndsAt = t0.Add(end)
	return a
}

func match(name, op, value string) *alert.Matcher {
	types := map[string]alert.MatchType{"=": alert.MatchEqual, "!=": alert.MatchNotEqual,
		"=~": alert.MatchRegexp, "!~": alert.MatchNotRegexp}
	return &alert.Matcher{Type: types[op], Name: name, Value: value}
}

// rt is a route to receiver recv with Alertmanager's default timers, send
// resolved on and everything in one group, changed by opts.
func rt(recv string, opts ...func(*Route)) Route {
	r := Route{
		Receiver: recv, ReceiverName: recv + "-name", GroupWait: 30 * time.Second,
		GroupInterval: 5 * time.Minute, RepeatInterval: 4 * time.Hour, SendResolved: true,
	}
	for _, o := range opts {
		o(&r)
	}
	return r
}

func matchers(ms ...*alert.Matcher) func(*Route) {
	return func(r *Route) { r.Matchers = ms }
}
func groupBy(ls ...string) func(*Route) { return func(r *Route) { r.GroupBy = ls } }
func owner(o string) func(*Route)       { return func(r *Route) { r.Owner = o } }
func cont(r *Route)                     { r.Continue = true }
func noResolved(r *Route)               { r.SendResolved = false }

// summary renders a notification as "receiver: A+ B-" (alertname, @instance
// when set, + firing, - resolved), tokens sorted.
func summary(n Notification) string {
	var toks []string
	for _, a := range n.Alerts {
		tok := a.Labels[alert.LabelAlertName]
		if in := a.Labels[alert.LabelInstance]; in != "" {
			tok += "@" + in
		}
		if a.State == alert.StateResolved {
			tok += "-"
		} else {
			tok += "+"
		}
		toks = append(toks, tok)
	}
	slices.Sort(toks)
	return strings.TrimSpace(n.Receiver + ": " + strings.Join(toks, " "))
}

func summaries(ns []Notification) []string {
	out := make([]string, 0, len(ns))
	for _, n := range ns {
		out = append(out, summary(n))
	}
	slices.Sort(out)
	return out
}

// step happens at t0+at: set the muted alertnames (when mute is not nil),
// put alerts, flush, commit every notification and compare.
type step struct {
	at    time.Duration
	mute  []string
	put   []*alert.Alert
	want  []string
	check func(t *testing.T, d *Dispatcher)
}

// harness drives a dispatcher the way the engine does and keeps the log
// entries it commits, standing in for the store's notification log.
type harness struct {
	t    *testing.T
	d    *Dispatcher
	mute muteSet
	log  map[string]LogEntry
}

func newHarness(t *testing.T, routes ...Route) *harness {
	h := &harness{t: t, mute: muteSet{}, log: map[string]LogEntry{}}
	h.d = New(h.mute)
	h.d.SetRoutes(routes, t0)
	return h
}

func (h *harness) flush(at time.Duration) []string {
	ns := h.d.Flush(t0.Add(at))
	for _, n := range ns {
		h.log[logKey(n.Log.Receiver, n.Log.GroupKey)] = n.Log
		h.d.Commit(n)
	}
	return summaries(ns)
}

func (h *harness) logEntries() []LogEntry {
	var out []LogEntry
	for _, e := range h.log {
		out = append(out, e)
	}
	return out
}

func (h *harness) run(steps []step) {
	h.t.Helper()
	for _, s := range steps {
		if s.mute != nil {
			clear(h.mute)
			for _, n := range s.mute {
				h.mute[n] = true
			}
		}
		h.d.Put(t0.Add(s.at), s.put...)
		got := h.flush(s.at)
		want := slices.Clone(s.want)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			h.t.Fatalf("at %v: notifications %q, want %q", s.at, got, want)
		}
		if s.check != nil {
			s.check(h.t, h.d)
		}
	}
}

func wantGroups(n int) func(*testing.T, *Dispatcher) {
	return func(t *testing.T, d *Dispatcher) {
		t.Helper()
		if got := len(d.Groups()); got != n {
			t.Fatalf("groups = %d (%+v), want %d", got, d.Groups(), n)
		}
		if _, ok := d.NextDue(); ok != (n > 0) {
			t.Fatalf("NextDue ok = %v with %d groups", ok, n)
		}
	}
}

func wantGroupKeys(keys ...string) func(*testing.T, *Dispatcher) {
	return func(t *testing.T, d *Dispatcher) {
		t.Helper()
		var got []string
		for _, g := range d.Groups() {
			got = append(got, g.GroupKey)
		}
		slices.Sort(got)
		slices.Sort(keys)
		if !slices.Equal(got, keys) {
			t.Fatalf("group keys %q, want %q", got, keys)
		}
	}
}

func wantNextDue(at time.Duration) func(*testing.T, *Dispatcher) {
	return func(t *testing.T, d *Dispatcher) {
		t.Helper()
		if got, ok := d.NextDue(); !ok || !got.Equal(t0.Add(at)) {
			t.Fatalf("NextDue = %v %v, want %v", got.Sub(t0), ok, at)
		}
	}
}

const (
	sec = time.Second
	min = time.Minute
)

func TestLifecycle(t *testing.T) {
	cases := []struct {
		name   string
		routes []Route
		steps  []step
	}{
		{
			name:   "group_wait delays the first notification",
			routes: []Route{rt("r")},
			steps: []step{
				{at: 0, put: []*alert.Alert{fire("A", 0)}, check: wantNextDue(30 * sec)},
				{at: 29 * sec},
				{at: 30 * sec, want: []string{"r: A+"}, check: wantNextDue(5*min + 30*sec)},
			},
		},
		{
			name:   "an alert joining a notified group waits for group_interval",
			routes: []Route{rt("r")},
			steps: []step{
				{at: 0, put: []*alert.Alert{fire("A", 0)}},
				{at: 30 * sec, want: []string{"r: A+"}},
				{at: min, put: []*alert.Alert{fire("B", min)}, check: wantNextDue(5*min + 30*sec)},
				{at: 5*min + 29*sec},
				{at: 5*min + 30*sec, want: []string{"r: A+ B+"}},
			},
		},
		{
			name:   "alerts arriving within group_wait are sent together",
			routes: []Route{rt("r")},
			steps: []step{
				{at: 0, put: []*alert.Alert{fire("A", 0)}},
				{at: 20 * sec, put: []*alert.Alert{fire("B", 20*sec)}},
				{at: 30 * sec, want: []string{"r: A+ B+"}},
			},
		},
		{
			name:   "repeat_interval resends an unchanged group",
			routes: []Route{rt("r")},
			steps: []step{
				{at: 0, put: []*alert.Alert{fire("A", 0)}},
				{at: 30 * sec, want: []string{"r: A+"}},
				{at: 5*min + 30*sec},
				// Exactly repeat_interval after the send is not past it.
				{at: 4*time.Hour + 30*sec},
				{at: 4*time.Hour + 5*min + 30*sec, want: []string{"r: A+"}},
				{at: 4*time.Hour + 10*min + 30*sec},
			},
		},
		{
			name:   "resolved alert is sent with send_resolved and leaves the group",
			routes: []Route{rt("r")},
			steps: []step{
				{at: 0, put: []*alert.Alert{fire("A", 0), fire("B", 0)}},
				{at: 30 * sec, want: []string{"r: A+ B+"}},
				{at: 2 * min, put: []*alert.Alert{resolve("B", 0, 2*min)}},
				{at: 5*min + 30*sec, want: []string{"r: A+ B-"}},
				{at: 10*min + 30*sec, check: func(t *testing.T, d *Dispatcher) {
					if g := d.Groups(); len(g) != 1 || g[0].Alerts != 1 {
						t.Fatalf("groups %+v, want one group with A only", g)
					}
				}},
			},
		},
		{
			name:   "all resolved with send_resolved notifies and deletes the group",
			routes: []Route{rt("r")},
			steps: []step{
				{at: 0, put: []*alert.Alert{fire("A", 0)}},
				{at: 30 * sec, want: []string{"r: A+"}},
				{at: min, put: []*alert.Alert{resolve("A", 0, min)}},
				{at: 5*min + 30*sec, want: []string{"r: A-"}, check: wantGroups(0)},
			},
		},
		{
			name:   "without send_resolved a resolved alert is not sent",
			routes: []Route{rt("r", noResolved)},
			steps: []step{
				{at: 0, put: []*alert.Alert{fire("A", 0), fire("B", 0)}},
				{at: 30 * sec, want: []string{"r: A+ B+"}},
				{at: 2 * min, put: []*alert.Alert{resolve("B", 0, 2*min)}},
				{at: 5*min + 30*sec},
				// All resolved: a log-only notification (no alerts), as
				// Alertmanager logs it, then the group is gone.
				{at: 6 * min, put: []*alert.Alert{resolve("A", 0, 6*min)}},
				{at: 10*min + 30*sec, want: []string{"r:"}, check: wantGroups(0)},
			},
		},
		{
			name:   "an alert fired and resolved before group_wait is never sent",
			routes: []Route{rt("r")},
			steps: []step{
				{at: 0, put: []*alert.Alert{fire("A", 0)}},
				{at: 10 * sec, put: []*alert.Alert{resolve("A", 0, 10*sec)}},
				{at: 30 * sec, check: wantGroups(0)},
			},
		},
		{
			name:   "an EndsAt passing resolves the alert",
			routes: []Route{rt("r")},
			steps: []step{
				{at: 0, put: []*alert.Alert{timeout("A", 0, 3*min)}},
				{at: 30 * sec, want: []string{"r: A+"}},
				{at: 5*min + 30*sec, want: []string{"r: A-"}, check: wantGroups(0)},
			},
		},
		{
			name:   "a muted alert is not sent and appears at the next tick once unmuted",
			routes: []Route{rt("r")},
			steps: []step{
				{at: 0, mute: []string{"A"}, put: []*alert.Alert{fire("A", 0), fire("B", 0)}},
				{at: 30 * sec, want: []string{"r: B+"}},
				{at: 2 * min, mute: []string{}},
				{at: 5*min + 30*sec, want: []string{"r: A+ B+"}},
			},
		},
		{
			name:   "a fully muted group sends nothing until the silence ends",
			routes: []Route{rt("r")},
			steps: []step{
				{at: 0, mute: []string{"A"}, put: []*alert.Alert{fire("A", 0)}},
				{at: 30 * sec},
				{at: 5*min + 30*sec},
				{at: 6 * min, mute: []string{}},
				{at: 10*min + 30*sec, want: []string{"r: A+"}},
			},
		},
		{
			name:   "muting a notified alert is not a change",
			routes: []Route{rt("r")},
			steps: []step{
				{at: 0, put: []*alert.Alert{fire("A", 0), fire("B", 0)}},
				{at: 30 * sec, want: []string{"r: A+ B+"}},
				{at: min, mute: []string{"A"}},
				{at: 5*min + 30*sec},
			},
		},
		{
			name: "continue sends to the next matching route too",
			routes: []Route{
				rt("crit", matchers(match("severity", "=", "critical")), cont),
				rt("all"),
			},
			steps: []step{
				{at: 0, put: []*alert.Alert{fire("A", 0, "severity", "critical"), fire("B", 0, "severity", "warning")}},
				{at: 30 * sec, want: []string{"crit: A+", "all: A+ B+"}},
			},
		},
		{
			name: "the first matching route stops the walk",
			routes: []Route{
				rt("crit", matchers(match("severity", "=~", "crit|critical"))),
				rt("all"),
			},
			steps: []step{
				{at: 0, put: []*alert.Alert{fire("A", 0, "severity", "critical"), fire("B", 0, "severity", "critic")}},
				{at: 30 * sec, want: []string{"crit: A+", "all: B+"}},
			},
		},
		{
			name: "routes are walked per owner",
			routes: []Route{
				rt("platform-crit", owner(""), matchers(match("tenant", "=~", ".+"), match("severity", "=", "critical"))),
				rt("platform", owner(""), matchers(match("tenant", "=", ""))),
				rt("t1", owner("t1"), matchers(match("tenant", "=", "t1"))),
				rt("t2", owner("t2"), matchers(match("tenant", "=", "t2"))),
			},
			steps: []step{
				{at: 0, put: []*alert.Alert{
					fire("A", 0, "tenant", "t1", "severity", "critical"),
					fire("B", 0, "tenant", "t2", "severity", "warning"),
					fire("C", 0),
				}},
				{at: 30 * sec, want: []string{"platform-crit: A+", "t1: A+", "t2: B+", "platform: C+"}},
			},
		},
		{
			name:   "grouping by labels",
			routes: []Route{rt("r", groupBy("alertname", "cluster"))},
			steps: []step{
				{at: 0, put: []*alert.Alert{
					fire("A", 0, "instance", "i1"), fire("A", 0, "instance", "i2"), fire("B", 0, "instance", "i1"),
				}, check: wantGroupKeys(`{}/{}:{alertname="A"}`, `{}/{}:{alertname="B"}`)},
				{at: 30 * sec, want: []string{"r: A@i1+ A@i2+", "r: B@i1+"}},
			},
		},
		{
			name:   "grouping by all labels",
			routes: []Route{rt("r", groupBy("..."), matchers(match("severity", "!=", "info")))},
			steps: []step{
				{at: 0, put: []*alert.Alert{fire("A", 0, "instance", "i1"), fire("A", 0, "instance", "i2")},
					check: wantGroupKeys(`{}/{severity!="info"}:{alertname="A", instance="i1"}`,
						`{}/{severity!="info"}:{alertname="A", instance="i2"}`)},
				{at: 30 * sec, want: []string{"r: A@i1+", "r: A@i2+"}},
			},
		},
		{
			name:   "pending alerts are never dispatched",
			routes: []Route{rt("r")},
			steps: []step{
				{at: 0, put: []*alert.Alert{{Labels: alert.LabelSet{"alertname": "P"}, State: alert.StatePending}},
					check: wantGroups(0)},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			newHarness(t, tc.routes...).run(tc.steps)
		})
	}
}

func TestNotificationContents(t *testing.T) {
	t.Parallel()
	h := newHarness(t, rt("r", groupBy("alertname"), owner(""), matchers(match("tenant", "=", ""))))
	h.d.Put(t0, timeout("A", 0, time.Hour), fire("A", 0, "instance", "i2"))
	ns := h.d.Flush(t0.Add(30 * sec))
	if len(ns) != 1 {
		t.Fatalf("notifications %d, want 1", len(ns))
	}
	n := ns[0]
	if n.Receiver != "r" || n.ReceiverName != "r-name" || n.GroupKey != `{}/{tenant=""}:{alertname="A"}` ||
		n.GroupLabels[alert.LabelAlertName] != "A" || !n.At.Equal(t0.Add(30*sec)) {
		t.Fatalf("notification %+v", n)
	}
	for i, a := range n.Alerts {
		if !a.EndsAt.IsZero() || a.State != alert.StateFiring {
			t.Fatalf("alert %d: firing copy has EndsAt %v state %s", i, a.EndsAt, a.State)
		}
		if i > 0 && fingerprintOf(n.Alerts[i-1].Labels) >= fingerprintOf(a.Labels) {
			t.Fatalf("alerts not sorted by fingerprint")
		}
	}
	if len(n.Log.Firing) != 2 || len(n.Log.Resolved) != 0 || !n.Log.SentAt.Equal(n.At) ||
		!n.Log.ExpiresAt.Equal(n.At.Add(8*time.Hour)) || n.LogOnly() {
		t.Fatalf("log entry %+v", n.Log)
	}
}

// A restarted engine restores the log and puts its live alerts back: the
// unchanged group is not sent again before repeat_interval; a changed one
// is sent at once (its alerts are older than group_wait).
func TestRestoreFromLog(t *testing.T) {
	before := func(t *testing.T) []LogEntry {
		h := newHarness(t, rt("r"))
		h.d.Put(t0, fire("A", 0))
		if got := h.flush(30 * sec); !slices.Equal(got, []string{"r: A+"}) {
			t.Fatalf("before restart: %q", got)
		}
		return h.logEntries()
	}
	cases := []struct {
		name  string
		put   []*alert.Alert
		steps []step
	}{
		{
			name: "unchanged group waits for repeat_interval",
			put:  []*alert.Alert{fire("A", 0)},
			steps: []step{
				{at: 10 * min},
				{at: 15 * min},
				{at: 4*time.Hour + 30*sec},
				{at: 4*time.Hour + 5*min + 30*sec, want: []string{"r: A+"}},
			},
		},
		{
			name:  "a new alert is sent",
			put:   []*alert.Alert{fire("A", 0), fire("B", 5*min)},
			steps: []step{{at: 10 * min, want: []string{"r: A+ B+"}}},
		},
		{
			name:  "a resolve during the downtime is sent",
			put:   []*alert.Alert{resolve("A", 0, 7*min)},
			steps: []step{{at: 10 * min, want: []string{"r: A-"}, check: wantGroups(0)}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			log := before(t)
			h := newHarness(t, rt("r"))
			h.d.Restore(log)
			h.d.Put(t0.Add(10*min), tc.put...)
			wantNextDue(10*min)(t, h.d)
			h.run(tc.steps)
		})
	}
}

func TestRequeue(t *testing.T) {
	t.Parallel()
	h := newHarness(t, rt("r"))
	h.d.Put(t0, fire("A", 0))
	ns := h.d.Flush(t0.Add(30 * sec))
	if len(ns) != 1 {
		t.Fatalf("notifications %d, want 1", len(ns))
	}
	h.d.Requeue(ns[0], t0.Add(40*sec))
	wantNextDue(40*sec)(t, h.d)
	h.run([]step{
		{at: 35 * sec},
		{at: 40 * sec, want: []string{"r: A+"}, check: wantNextDue(5*min + 40*sec)},
		{at: 5*min + 40*sec},
	})
}

// Commit must not drop an alert that fired again between the flush that
// reported it resolved and the commit (Alertmanager's UpdatedAt check).
func TestCommitKeepsAlertUpdatedSinceFlush(t *testing.T) {
	t.Parallel()
	h := newHarness(t, rt("r"))
	h.run([]step{
		{at: 0, put: []*alert.Alert{fire("A", 0), fire("B", 0)}},
		{at: 30 * sec, want: []string{"r: A+ B+"}},
		{at: min, put: []*alert.Alert{resolve("B", 0, min)}},
	})
	now := t0.Add(5*min + 30*sec)
	ns := h.d.Flush(now)
	if got := summaries(ns); !slices.Equal(got, []string{"r: A+ B-"}) {
		t.Fatalf("flush: %q", got)
	}
	h.d.Put(now, fire("B", 5*min+30*sec))
	h.d.Commit(ns[0])
	if g := h.d.Groups(); len(g) != 1 || g[0].Alerts != 2 {
		t.Fatalf("groups %+v, want A and B", g)
	}
	h.run([]step{{at: 10*min + 30*sec, want: []string{"r: A+ B+"}}})
}

func TestSetRoutes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.run([]step{{at: 0, put: []*alert.Alert{fire("A", 0), fire("B", 0, "severity", "critical")}, check: wantGroups(0)}})

	// A route added later takes the alerts already known.
	h.d.SetRoutes([]Route{rt("r")}, t0.Add(min))
	h.run([]step{{at: min, want: []string{"r: A+ B+"}, check: wantNextDue(6 * min)}})

	// The same routes again keep the groups and their timers.
	h.d.SetRoutes([]Route{rt("r")}, t0.Add(2*min))
	wantNextDue(6*min)(t, h.d)

	// A changed list rebuilds the groups; the log stops a re-send, the new
	// route gets what it has not been sent.
	h.d.SetRoutes([]Route{rt("crit", matchers(match("severity", "=", "critical")), cont), rt("r")}, t0.Add(3*min))
	h.run([]step{{at: 3 * min, want: []string{"crit: B+"}, check: wantGroups(2)}})

	// A tenant's routes changing leaves the platform's groups alone.
	h.d.SetRoutes([]Route{rt("crit", matchers(match("severity", "=", "critical")), cont), rt("r"),
		rt("t1", owner("t1"), matchers(match("tenant", "=", "t1")))}, t0.Add(3*min))
	wantNextDue(8*min)(t, h.d)

	// A resolve owed when the routes change is still sent by the new group.
	h.run([]step{{at: 4 * min, put: []*alert.Alert{resolve("A", 0, 4*min)}}})
	h.d.SetRoutes([]Route{rt("r")}, t0.Add(5*min))
	h.run([]step{{at: 5 * min, want: []string{"r: A- B+"}}})

	// Removing every route drops the groups.
	h.d.SetRoutes(nil, t0.Add(6*min))
	wantGroups(0)(t, h.d)
}

func TestLogExpires(t *testing.T) {
	t.Parallel()
	h := newHarness(t, rt("r", func(r *Route) { r.RepeatInterval = time.Hour }))
	h.d.Restore([]LogEntry{{Receiver: "r", GroupKey: "{}/{}:{}", Firing: []alert.Fingerprint{fingerprintOf(fire("A", 0).Labels)},
		SentAt: t0, ExpiresAt: t0.Add(2 * time.Hour)}})
	// Restored entry still live: no re-send.
	h.d.Put(t0.Add(min), fire("A", 0))
	h.run([]step{{at: min}})
	if len(h.d.log.entries) != 1 {
		t.Fatalf("log entries %d, want 1", len(h.d.log.entries))
	}
	h.d.Flush(t0.Add(3 * time.Hour))
	if len(h.d.log.entries) != 0 {
		t.Fatalf("expired log entry kept")
	}
}
