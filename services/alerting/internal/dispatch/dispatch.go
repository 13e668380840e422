// Package dispatch is Alertmanager's notification pipeline without the
// I/O: routes, aggregation groups with group_wait, group_interval and
// repeat_interval, muting (silences, inhibition) at flush time and the
// notification log that decides whether a group needs a new notification.
// Time only moves through the now arguments, so tests run on a fake clock.
// It does not send, store or template anything: the engine stores each
// Notification, then Commits it (or Requeues it when storing failed).
package dispatch

import (
	"container/heap"
	"time"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
)

// Defaults of a route's timers (Alertmanager's).
const (
	DefaultGroupWait      = 30 * time.Second
	DefaultGroupInterval  = 5 * time.Minute
	DefaultRepeatInterval = 4 * time.Hour
)

// Route sends the alerts it matches to one receiver, grouped.
type Route struct {
	// Receiver is the receiver's id; ReceiverName its name (the payload's
	// "receiver").
	Receiver     string
	ReceiverName string
	// Owner is the tenant whose route this is ("" platform). Routes are
	// evaluated per owner, in order: the first matching route takes the
	// alert unless it has Continue. A tenant's route matches only alerts
	// of that tenant; a platform route without a tenant matcher only
	// platform alerts (the caller adds these implicit matchers to Matchers).
	Owner    string
	Matchers alert.Matchers
	// GroupBy lists the grouping labels; ["..."] groups by all labels;
	// empty puts every matched alert in one group.
	GroupBy []string
	// GroupWait zero flushes a new group at once (negative: the default);
	// GroupInterval and RepeatInterval zero take the defaults, as
	// Alertmanager refuses zero for them.
	GroupWait      time.Duration
	GroupInterval  time.Duration
	RepeatInterval time.Duration
	// SendResolved: notify resolved alerts (default true for webhooks).
	SendResolved bool
	Continue     bool
}

// Muter tells whether an alert is muted at now (silenced or inhibited);
// muted alerts are left out of notifications and do not count as changes.
type Muter interface {
	Muted(a *alert.Alert, now time.Time) bool
}

// LogEntry is the notification log's record for one (receiver, group): what
// the last notification carried and when.
type LogEntry struct {
	Receiver string
	GroupKey string
	Firing   []alert.Fingerprint // sorted
	Resolved []alert.Fingerprint // sorted
	SentAt   time.Time
	// ExpiresAt: entries are dropped after (repeat interval, plus a margin).
	ExpiresAt time.Time
}

// Notification is one message for a receiver about one group: its firing
// alerts and (when the route sends resolved) its resolved ones, unmuted,
// sorted by fingerprint. Log is the entry to record once the notification
// is safely stored (Commit).
//
// A notification with no Alerts (see LogOnly) only updates the log: every
// alert of the group resolved and the route does not send resolved ones.
// Alertmanager records that too, so that a later firing of the same alerts
// counts as new; the engine stores its Log entry, delivers nothing, and
// Commits it like any other.
type Notification struct {
	Receiver     string
	ReceiverName string
	Owner        string
	GroupKey     string // Alertmanager's shape: {}/{matchers}:{group labels}
	GroupLabels  alert.LabelSet
	// Alerts are copies (their label and annotation maps are shared: read
	// them only); a firing alert's EndsAt is zero (the webhook shows
	// 0001-01-01 as Alertmanager does) and State says firing or resolved.
	Alerts []*alert.Alert
	At     time.Time
	Log    LogEntry

	// group is the dispatcher's group id; resolved lists every resolved
	// alert the flush saw (muted or not sent too): Commit removes those
	// not updated since from the group.
	group    string
	resolved []flushed
}

// LogOnly reports whether the notification carries no alerts and only its
// log entry is to be stored.
func (n Notification) LogOnly() bool { return len(n.Alerts) == 0 }

// flushed identifies the version of an alert a flush saw.
type flushed struct {
	fp alert.Fingerprint
	a  *alert.Alert
}

// GroupInfo describes one aggregation group.
type GroupInfo struct {
	Receiver     string
	ReceiverName string
	// Owner is the route's tenant ("" platform).
	Owner    string
	GroupKey string
	Labels   alert.LabelSet
	Alerts   int
	NextAt   time.Time
}

// Dispatcher owns the aggregation groups. Not safe for concurrent use: the
// engine calls it from one goroutine.
type Dispatcher struct {
	muter  Muter
	routes routeTable
	// alerts holds every alert put and not yet gone: routed ones until the
	// last group holding them drops them, unrouted firing ones so that a
	// later route can take them.
	alerts map[alert.Fingerprint]*tracked
	groups map[string]*group
	due    groupHeap
	log    *notificationLog
	// matched is reused by Put to avoid an allocation per alert.
	matched []*route
	idBuf   []byte
}

// tracked is one alert shared by every group it is in; a Put replaces a,
// so all of them see the update.
type tracked struct {
	fp   alert.Fingerprint
	a    *alert.Alert
	refs int // groups holding it
}

// New returns a dispatcher with no routes. muter may be nil (nothing is
// muted).
func New(muter Muter) *Dispatcher {
	return &Dispatcher{
		muter:  muter,
		routes: newRouteTable(nil),
		alerts: map[alert.Fingerprint]*tracked{},
		groups: map[string]*group{},
		log:    newNotificationLog(),
	}
}

// SetRoutes replaces the routes; groups of removed routes are dropped and
// alerts are re-routed (new groups start their group_wait). An owner whose
// route list is unchanged keeps its groups and their timers; any change to
// an owner's list (a route added, removed, reordered or edited) drops all
// of that owner's groups, because first-match routing makes the list one
// unit. The notification log keeps the rebuilt groups from re-sending
// what was already sent, as after an Alertmanager reload.
func (d *Dispatcher) SetRoutes(routes []Route, now time.Time) {
	nt := newRouteTable(routes)
	kept := keptRoutes(d.routes, nt)
	for _, g := range d.groups {
		if r, ok := kept[g.route]; ok {
			g.route = r
			continue
		}
		d.removeGroup(g)
	}
	d.routes = nt
	// Resolved alerts are routed too: a dropped group may have owed its
	// receiver their resolve notification (the log says what it was sent).
	for fp, tr := range d.alerts {
		d.route(tr, now)
		if tr.refs == 0 && tr.a.Resolved(now) {
			delete(d.alerts, fp)
		}
	}
}

// keptRoutes maps each old route of an owner whose list did not change to
// the new route standing for it.
func keptRoutes(old, nw routeTable) map[*route]*route {
	kept := map[*route]*route{}
	for o, rs := range old.byOwner {
		ns := nw.byOwner[o]
		if !sameRoutes(rs, ns) {
			continue
		}
		for i, r := range rs {
			kept[r] = ns[i]
		}
	}
	return kept
}

func sameRoutes(a, b []*route) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].sameAs(b[i]) {
			return false
		}
	}
	return true
}

// Restore loads the notification log (at start, from the store).
func (d *Dispatcher) Restore(log []LogEntry) {
	d.log = newNotificationLog()
	for _, e := range log {
		d.log.put(e)
	}
}

// Put adds or updates alerts (merged by fingerprint) in the groups of the
// routes that match them. A new group flushes after its group_wait; an
// alert added to a group that already notified is sent at the next
// group_interval tick. As in Alertmanager, a group that has not flushed yet
// flushes at once when an alert's StartsAt is already more than group_wait
// ago (an old alert after a restart waits no more). Pending alerts are
// ignored: they are never notified.
func (d *Dispatcher) Put(now time.Time, alerts ...*alert.Alert) {
	for _, in := range alerts {
		if in == nil || in.State == alert.StatePending {
			continue
		}
		a := *in
		if a.UpdatedAt.IsZero() {
			a.UpdatedAt = now
		}
		fp := a.Labels.Fingerprint()
		tr := d.alerts[fp]
		if tr == nil {
			tr = &tracked{fp: fp, a: &a}
		} else {
			tr.a = tr.a.MergeAt(&a, now)
		}
		d.route(tr, now)
		if tr.refs == 0 && tr.a.Resolved(now) {
			delete(d.alerts, fp)
			continue
		}
		d.alerts[fp] = tr
	}
}

// route inserts tr into the group of every route that takes it.
func (d *Dispatcher) route(tr *tracked, now time.Time) {
	d.matched = d.routes.match(tr.a.Labels, d.matched[:0])
	for _, r := range d.matched {
		d.idBuf = r.appendGroupID(d.idBuf[:0], tr.a.Labels)
		g := d.groups[string(d.idBuf)]
		if g == nil {
			id := string(d.idBuf)
			g = &group{
				id: id, groupKey: id[len(r.Receiver)+1:], route: r,
				alerts: map[alert.Fingerprint]*tracked{}, next: now.Add(r.GroupWait),
			}
			d.groups[id] = g
			heap.Push(&d.due, g)
		}
		if _, ok := g.alerts[tr.fp]; !ok {
			g.alerts[tr.fp] = tr
			tr.refs++
		}
		if !g.flushed && tr.a.StartsAt.Add(r.GroupWait).Before(now) && g.next.After(now) {
			g.next = now
			heap.Fix(&d.due, g.index)
		}
	}
}

// Flush returns the notifications of every group due at now (a group
// whose alerts, firing or newly resolved, differ from its log entry, or
// whose repeat interval has passed since its last notification) and
// schedules each group's next tick at now + group_interval. Groups with
// nothing left (all resolved and notified) are removed.
func (d *Dispatcher) Flush(now time.Time) []Notification {
	d.log.gc(now)
	var out []Notification
	for d.due.Len() > 0 && !d.due[0].next.After(now) {
		g := d.due[0]
		g.flushed = true
		g.next = now.Add(g.route.GroupInterval)
		heap.Fix(&d.due, 0)
		if n, ok := d.flushGroup(g, now); ok {
			out = append(out, n)
		}
	}
	return out
}

// flushGroup is one group's pass through Alertmanager's pipeline: mute,
// dedup against the log. Without a notification the pipeline has
// succeeded, so the resolved alerts leave the group at once, as in
// Alertmanager's aggrGroup.flush.
func (d *Dispatcher) flushGroup(g *group, now time.Time) (Notification, bool) {
	snap := g.snapshot(now)
	var (
		send             []*alert.Alert
		firing, resolved []alert.Fingerprint
		resolvedAll      []flushed
		sendResolved     = g.route.SendResolved
	)
	for _, s := range snap {
		isResolved := s.copy.State == alert.StateResolved
		if isResolved {
			resolvedAll = append(resolvedAll, flushed{fp: s.fp, a: s.orig})
		}
		if d.muter != nil && d.muter.Muted(s.copy, now) {
			continue
		}
		if isResolved {
			resolved = append(resolved, s.fp)
			if sendResolved {
				send = append(send, s.copy)
			}
			continue
		}
		firing = append(firing, s.fp)
		send = append(send, s.copy)
	}
	nothing := len(firing) == 0 && len(resolved) == 0
	if nothing || !needsUpdate(d.log.get(g.id, now), firing, resolved,
		sendResolved, g.route.RepeatInterval, now) {
		d.dropResolved(g, resolvedAll)
		return Notification{}, false
	}
	return Notification{
		Receiver:     g.route.Receiver,
		ReceiverName: g.route.ReceiverName,
		Owner:        g.route.Owner,
		GroupKey:     g.groupKey,
		GroupLabels:  g.labels(),
		Alerts:       send,
		At:           now,
		Log: LogEntry{
			Receiver: g.route.Receiver, GroupKey: g.groupKey,
			Firing: firing, Resolved: resolved,
			SentAt: now, ExpiresAt: now.Add(2 * g.route.RepeatInterval),
		},
		group:    g.id,
		resolved: resolvedAll,
	}, true
}

// Commit records a flushed notification as sent: its log entry is kept
// and the resolved alerts it carried leave the group (unless updated since
// the flush); a group left empty is deleted.
func (d *Dispatcher) Commit(n Notification) {
	switch {
	case isLogKey(n.group, n.Log.Receiver, n.Log.GroupKey):
		d.log.putKey(n.group, n.Log)
	case n.Log.GroupKey != "":
		d.log.put(n.Log)
	}
	if g := d.groups[n.group]; g != nil {
		d.dropResolved(g, n.resolved)
	}
}

// Requeue makes a flushed but not stored notification's group due again at
// at (its alerts stay). A group dropped meanwhile (routes changed) is
// ignored.
func (d *Dispatcher) Requeue(n Notification, at time.Time) {
	if g := d.groups[n.group]; g != nil {
		g.next = at
		heap.Fix(&d.due, g.index)
	}
}

// NextDue is the earliest time a group is due; ok is false with no groups.
func (d *Dispatcher) NextDue() (at time.Time, ok bool) {
	if d.due.Len() == 0 {
		return time.Time{}, false
	}
	return d.due[0].next, true
}

// Groups lists the groups for the API and tests, by receiver and key.
func (d *Dispatcher) Groups() []GroupInfo {
	out := make([]GroupInfo, 0, len(d.groups))
	for _, g := range d.groups {
		out = append(out, GroupInfo{
			Receiver: g.route.Receiver, ReceiverName: g.route.ReceiverName, Owner: g.route.Owner,
			GroupKey: g.groupKey, Labels: g.labels(),
			Alerts: len(g.alerts), NextAt: g.next,
		})
	}
	sortGroupInfos(out)
	return out
}

// dropResolved removes the flushed resolved alerts that no Put changed
// since, forgets alerts no group holds any more, and deletes the group
// once it is empty.
func (d *Dispatcher) dropResolved(g *group, fs []flushed) {
	for _, f := range fs {
		tr := g.alerts[f.fp]
		if tr == nil || tr.a != f.a {
			continue
		}
		delete(g.alerts, f.fp)
		d.release(tr, true)
	}
	if len(g.alerts) == 0 {
		d.removeGroup(g)
	}
}

func (d *Dispatcher) removeGroup(g *group) {
	for _, tr := range g.alerts {
		d.release(tr, false)
	}
	g.alerts = nil
	delete(d.groups, g.id)
	if g.index >= 0 {
		heap.Remove(&d.due, g.index)
	}
}

// release drops one group's hold on tr. A resolved alert no group holds
// is forgotten; a firing one stays known (unrouted), so that a later route
// can take it. SetRoutes forgets unrouted alerts that ended.
func (d *Dispatcher) release(tr *tracked, resolved bool) {
	tr.refs--
	if tr.refs == 0 && resolved && d.alerts[tr.fp] == tr {
		delete(d.alerts, tr.fp)
	}
}
