package dispatch

import (
	"slices"
	"strings"
	"time"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
)

// group is one aggregation group: a route and the values of its GroupBy
// labels, the alerts that share them, and when it is next due.
type group struct {
	id       string // logKey(receiver, groupKey)
	groupKey string
	route    *route
	alerts   map[alert.Fingerprint]*tracked
	next     time.Time
	// flushed is Alertmanager's hasFlushed: once a group has flushed, new
	// alerts wait for the next group_interval tick.
	flushed bool
	index   int // position in the due heap, -1 when out of it
}

// labels are the group's label values, taken from any of its alerts (they
// all have them, which is what put them in the group); not stored, to keep
// a group small when every alert has its own.
func (g *group) labels() alert.LabelSet {
	for _, tr := range g.alerts {
		return g.route.groupLabels(tr.a.Labels)
	}
	return alert.LabelSet{}
}

// snapAlert is one alert as a flush sees it.
type snapAlert struct {
	fp   alert.Fingerprint
	orig *alert.Alert
	copy *alert.Alert
}

// snapshot copies the group's alerts, sorted by fingerprint, with their
// status at now: a firing alert's EndsAt is cleared (Alertmanager: alerts
// must not resolve in the payload as time moves on) and State set.
func (g *group) snapshot(now time.Time) []snapAlert {
	out := make([]snapAlert, 0, len(g.alerts))
	for fp, tr := range g.alerts {
		c := *tr.a
		if resolvedAt(tr.a, now) {
			c.State = alert.StateResolved
		} else {
			c.State = alert.StateFiring
			c.EndsAt = time.Time{}
		}
		out = append(out, snapAlert{fp: fp, orig: tr.a, copy: &c})
	}
	slices.SortFunc(out, func(a, b snapAlert) int {
		switch {
		case a.fp < b.fp:
			return -1
		case a.fp > b.fp:
			return 1
		}
		return 0
	})
	return out
}

// groupHeap orders groups by when they are next due.
type groupHeap []*group

func (h groupHeap) Len() int           { return len(h) }
func (h groupHeap) Less(i, j int) bool { return h[i].next.Before(h[j].next) }
func (h groupHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}

func (h *groupHeap) Push(x any) {
	g := x.(*group)
	g.index = len(*h)
	*h = append(*h, g)
}

func (h *groupHeap) Pop() any {
	old := *h
	g := old[len(old)-1]
	old[len(old)-1] = nil
	g.index = -1
	*h = old[:len(old)-1]
	return g
}

func sortGroupInfos(gs []GroupInfo) {
	slices.SortFunc(gs, func(a, b GroupInfo) int {
		if c := strings.Compare(a.Receiver, b.Receiver); c != 0 {
			return c
		}
		return strings.Compare(a.GroupKey, b.GroupKey)
	})
}
