package pipeline

import (
	"errors"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/api/events"

	"github.com/canopy-platform/canopy/services/cdc/internal/provview"
)

func TestPickSource(t *testing.T) {
	primary := provview.Node{ID: "n0", Address: "h:1", Role: "primary", RegionRole: "primary", Healthy: true}
	r1 := provview.Node{ID: "n1", Address: "h:2", Role: "replica", RegionRole: "primary", Healthy: true}
	r2 := provview.Node{ID: "n2", Address: "h:3", Role: "replica", RegionRole: "primary", Healthy: true}
	sick := provview.Node{ID: "n1", Address: "h:2", Role: "replica", RegionRole: "primary"}
	dr := provview.Node{ID: "n3", Address: "h:4", Role: "replica", Region: "us", RegionRole: "dr", Healthy: true}
	fenced := provview.Node{ID: "n4", Address: "h:5", Role: "fenced", Healthy: true}
	cases := map[string]struct {
		nodes       []provview.Node
		prev, avoid string
		want        string
		wantErr     error
	}{
		"replica before primary":            {nodes: []provview.Node{primary, r2, r1}, want: "n1"},
		"keeps the replica read before":     {nodes: []provview.Node{primary, r1, r2}, prev: "n2", want: "n2"},
		"unhealthy replica: primary":        {nodes: []provview.Node{primary, sick}, want: "n0"},
		"dr replica is never preferred":     {nodes: []provview.Node{dr, primary}, want: "n0"},
		"fenced never":                      {nodes: []provview.Node{fenced, primary}, want: "n0"},
		"avoids the node that just failed":  {nodes: []provview.Node{primary, r1, r2}, prev: "n1", avoid: "n1", want: "n2"},
		"failed node when nothing else":     {nodes: []provview.Node{primary}, avoid: "n0", want: "n0"},
		"no primary, healthy replica":       {nodes: []provview.Node{r1, dr}, want: "n1"},
		"no primary, only dr and fenced":    {nodes: []provview.Node{dr, fenced}, wantErr: ErrNoSource},
		"primary without address is unused": {nodes: []provview.Node{{ID: "n0", Role: "primary"}}, wantErr: ErrNoSource},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := PickSource(provview.Instance{ID: "i", Nodes: tc.nodes}, tc.prev, tc.avoid)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || got.ID != tc.want {
				t.Fatalf("picked %q (%v), want %s", got.ID, err, tc.want)
			}
		})
	}
}

func TestDistance(t *testing.T) {
	cases := map[string]struct {
		source, cp string
		events     int64
		caughtUp   bool
		bad        bool
	}{
		"equal":                   {source: "0-1-100", cp: "0-1-100", caughtUp: true},
		"behind":                  {source: "0-1-120", cp: "0-1-100", events: 20},
		"server id changes":       {source: "0-2-105", cp: "0-1-100", events: 5},
		"two domains":             {source: "0-1-10,1-3-7", cp: "1-3-5,0-1-10", events: 2},
		"domain unknown to cp":    {source: "0-1-10,2-1-3", cp: "0-1-10"},
		"checkpoint ahead (lag0)": {source: "0-1-10", cp: "0-1-11", caughtUp: true},
		"garbage":                 {source: "x", cp: "0-1-1", bad: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			n, up, err := distance(tc.source, tc.cp)
			if (err != nil) != tc.bad {
				t.Fatalf("err %v", err)
			}
			if !tc.bad && (n != tc.events || up != tc.caughtUp) {
				t.Fatalf("distance %d caught up %v, want %d %v", n, up, tc.events, tc.caughtUp)
			}
		})
	}
}

func TestServerIDAndTopics(t *testing.T) {
	a, b := ServerID("s-1"), ServerID("s-2")
	if a == b || a>>24 != 0x7c || b>>24 != 0x7c || ServerID("s-1") != a {
		t.Fatalf("server ids %x %x", a, b)
	}
	p := Prefix("acme", "i1")
	for topic, want := range map[string]string{
		p + ".app.orders":     "app.orders",
		p + ".schema-changes": "",
		"cdc.other.i1.app.t":  "",
	} {
		if got := tableOf(p, topic); got != want {
			t.Errorf("tableOf(%s) = %q, want %q", topic, got, want)
		}
	}
}

// TestLagEpisode: lagging once per episode, only after LagFor past the
// threshold; caught_up when back under.
func TestLagEpisode(t *testing.T) {
	e := lagEpisode{threshold: 30 * time.Second, after: 10 * time.Second}
	t0 := time.Now()
	steps := []struct {
		at   time.Duration
		lag  time.Duration
		want string
	}{
		{0, 40 * time.Second, ""},
		{5 * time.Second, 45 * time.Second, ""},
		{10 * time.Second, 50 * time.Second, events.TypeCDCStreamLagging},
		{11 * time.Second, 60 * time.Second, ""},
		{12 * time.Second, time.Second, events.TypeCDCStreamCaughtUp},
		{13 * time.Second, 0, ""},
		{14 * time.Second, 31 * time.Second, ""},
		{15 * time.Second, 0, ""}, // a short spike is no episode
	}
	for i, s := range steps {
		if got := e.observe(t0.Add(s.at), s.lag); got != s.want {
			t.Fatalf("step %d: %q, want %q", i, got, s.want)
		}
	}
}

// TestLagMeter: lag is the age of the last delivered change, bounded by
// the newest source position the checkpoint reached (quiet tables on a
// busy instance do not lag), and 0 when the checkpoint is the source's end.
func TestLagMeter(t *testing.T) {
	t0 := time.Now()
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	l := lagMeter{started: t0}
	// Behind: source at 20, checkpoint at 10, last change committed at -5s.
	if lag, n := l.measure(at(1), "0-1-20", true, "0-1-10", at(-5)); lag != 6*time.Second || n != 10 {
		t.Fatalf("lag %s events %d", lag, n)
	}
	// Checkpoint passes the position polled at 1s (other tables' transactions),
	// the source moved on: lag counts from that poll, not from the old change.
	if lag, n := l.measure(at(2), "0-1-30", true, "0-1-25", at(-5)); lag != time.Second || n != 5 {
		t.Fatalf("quiet tables: lag %s events %d", lag, n)
	}
	// Caught up.
	if lag, n := l.measure(at(3), "0-1-30", true, "0-1-30", at(-5)); lag != 0 || n != 0 {
		t.Fatalf("caught up: lag %s events %d", lag, n)
	}
	// Source not reachable: the lag grows from what is known.
	if lag, _ := l.measure(at(10), "", false, "0-1-30", at(-5)); lag != 7*time.Second {
		t.Fatalf("unpolled: lag %s", lag)
	}
	// A reconnect to a replica a little behind an older poll: reaching its
	// end is caught up.
	if lag, _ := l.measure(at(11), "0-1-40", true, "0-1-32", at(-5)); lag == 0 {
		t.Fatal("behind, reported caught up")
	}
	if lag, n := l.measure(at(12), "0-1-35", true, "0-1-35", at(-5)); lag != 0 || n != 0 {
		t.Fatalf("caught up with a source behind an older poll: lag %s events %d", lag, n)
	}
	// Nothing delivered and no position: counts from the runner's start.
	l2 := lagMeter{started: t0}
	if lag, _ := l2.measure(at(4), "", false, "", time.Time{}); lag != 4*time.Second {
		t.Fatalf("fresh: lag %s", lag)
	}
}
