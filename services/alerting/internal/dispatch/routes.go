package dispatch

import (
	"slices"
	"strings"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
)

// groupByAll is the GroupBy value that groups by every label.
const groupByAll = "..."

// route is a Route ready for matching: matchers compiled and sorted (as
// Alertmanager sorts a route's matchers) and its key computed once.
type route struct {
	Route
	matchers []matcher
	// key is Alertmanager's route key, {}/{matchers}: the root route's
	// empty matchers, then this route's.
	key      string
	groupAll bool
	// groupNames is GroupBy sorted and deduplicated, "..." left out.
	groupNames []string
}

func compileRoute(r Route) *route {
	if r.GroupInterval <= 0 {
		r.GroupInterval = DefaultGroupInterval
	}
	if r.RepeatInterval <= 0 {
		r.RepeatInterval = DefaultRepeatInterval
	}
	if r.GroupWait < 0 {
		r.GroupWait = DefaultGroupWait
	}
	r.GroupBy = slices.Clone(r.GroupBy)
	c := &route{Route: r, groupAll: slices.Contains(r.GroupBy, groupByAll)}
	for _, n := range r.GroupBy {
		if n != groupByAll {
			c.groupNames = append(c.groupNames, n)
		}
	}
	slices.Sort(c.groupNames)
	c.groupNames = slices.Compact(c.groupNames)
	for _, m := range r.Matchers {
		if m != nil {
			c.matchers = append(c.matchers, compileMatcher(m))
		}
	}
	slices.SortStableFunc(c.matchers, func(a, b matcher) int {
		if c := strings.Compare(a.m.Name, b.m.Name); c != 0 {
			return c
		}
		if c := strings.Compare(a.m.Value, b.m.Value); c != 0 {
			return c
		}
		return int(a.m.Type) - int(b.m.Type)
	})
	c.key = "{}/" + matchersString(c.matchers)
	return c
}

func (r *route) matches(ls alert.LabelSet) bool {
	for _, m := range r.matchers {
		if !m.matches(ls[m.m.Name]) {
			return false
		}
	}
	return true
}

// groupLabels are the alert's values of the route's GroupBy labels (only
// those present), or all its labels for "...".
func (r *route) groupLabels(ls alert.LabelSet) alert.LabelSet {
	out := make(alert.LabelSet, len(r.groupNames))
	for n, v := range ls {
		if r.groupAll || slices.Contains(r.groupNames, n) {
			out[n] = v
		}
	}
	return out
}

// appendGroupID appends the group's id, receiver NUL group key, where the
// group key is Alertmanager's {route key}:{group labels}.
func (r *route) appendGroupID(buf []byte, ls alert.LabelSet) []byte {
	buf = append(buf, r.Receiver...)
	buf = append(buf, 0)
	buf = append(buf, r.key...)
	buf = append(buf, ':')
	names := r.groupNames
	if r.groupAll {
		names = sortedNames(ls)
	}
	return appendLabels(buf, ls, names)
}

// sameAs reports whether two routes would group and time alerts the same
// way, so that SetRoutes can keep the groups of an unchanged route.
func (r *route) sameAs(o *route) bool {
	return r.Receiver == o.Receiver && r.ReceiverName == o.ReceiverName && r.Owner == o.Owner &&
		r.key == o.key && slices.Equal(r.GroupBy, o.GroupBy) && r.GroupWait == o.GroupWait &&
		r.GroupInterval == o.GroupInterval && r.RepeatInterval == o.RepeatInterval &&
		r.SendResolved == o.SendResolved && r.Continue == o.Continue
}

// routeTable holds the routes per owner, each list in the given order.
type routeTable struct {
	all     []*route
	byOwner map[string][]*route
}

func newRouteTable(routes []Route) routeTable {
	t := routeTable{byOwner: map[string][]*route{}}
	for _, r := range routes {
		c := compileRoute(r)
		t.all = append(t.all, c)
		t.byOwner[r.Owner] = append(t.byOwner[r.Owner], c)
	}
	return t
}

// match returns the routes an alert goes to: the platform's list and its
// tenant's list are each walked in order, the first match ending the walk
// unless that route has Continue. The implicit tenant matchers the caller
// put on the routes keep tenants apart; owners only bound the walk.
func (t routeTable) match(ls alert.LabelSet, dst []*route) []*route {
	dst = walk(t.byOwner[""], ls, dst)
	if tenant := ls[alert.LabelTenant]; tenant != "" {
		dst = walk(t.byOwner[tenant], ls, dst)
	}
	return dst
}

func walk(routes []*route, ls alert.LabelSet, dst []*route) []*route {
	for _, r := range routes {
		if !r.matches(ls) {
			continue
		}
		dst = append(dst, r)
		if !r.Continue {
			break
		}
	}
	return dst
}
