// Package dispatch is Alertmanager's notification pipeline without the
// I/O: routes, aggregation groups with group_wait, group_interval and
// repeat_interval, muting (silences, inhibition) at flush time and the
// notification log that decides whether a group needs a new notification.
// Time only moves through the now arguments, so tests run on a fake clock.
package dispatch

import (
	"time"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
)

// CONTRACT (helper "dispatch" implements; delete this file then).

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
	GroupBy        []string
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
type Notification struct {
	Receiver     string
	ReceiverName string
	Owner        string
	GroupKey     string // Alertmanager's shape: {}/{matchers}:{group labels}
	GroupLabels  alert.LabelSet
	Alerts       []*alert.Alert // copies
	At           time.Time
	Log          LogEntry
}

// Dispatcher owns the aggregation groups. Not safe for concurrent use: the
// engine calls it from one goroutine.
type Dispatcher struct{}

// New returns a dispatcher with no routes.
func New(muter Muter) *Dispatcher { panic("todo") }

// SetRoutes replaces the routes; groups of removed routes are dropped and
// alerts are re-routed (new groups start their group_wait).
func (d *Dispatcher) SetRoutes(routes []Route, now time.Time) { panic("todo") }

// Restore loads the notification log (at start, from the store).
func (d *Dispatcher) Restore(log []LogEntry) { panic("todo") }

// Put adds or updates alerts (merged by fingerprint) in the groups of the
// routes that match them. A new group flushes after its group_wait; an
// alert added to a group that already notified is sent at the next
// group_interval tick.
func (d *Dispatcher) Put(now time.Time, alerts ...*alert.Alert) { panic("todo") }

// Flush returns the notifications of every group due at now (a group
// whose alerts, firing or newly resolved, differ from its log entry, or
// whose repeat interval has passed since its last notification) and
// schedules each group's next tick at now + group_interval. Groups with
// nothing left (all resolved and notified) are removed.
func (d *Dispatcher) Flush(now time.Time) []Notification { panic("todo") }

// Commit records a flushed notification as sent: its log entry is kept
// and the resolved alerts it carried leave the group.
func (d *Dispatcher) Commit(n Notification) { panic("todo") }

// Requeue makes a flushed but not stored notification's group due again at
// now+backoff (its alerts stay).
func (d *Dispatcher) Requeue(n Notification, at time.Time) { panic("todo") }

// NextDue is the earliest time a group is due; ok is false with no groups.
func (d *Dispatcher) NextDue() (at time.Time, ok bool) { panic("todo") }

// Groups lists the groups for the API and tests.
func (d *Dispatcher) Groups() []GroupInfo { panic("todo") }

// GroupInfo describes one aggregation group.
type GroupInfo struct {
	Receiver string
	GroupKey string
	Labels   alert.LabelSet
	Alerts   int
	NextAt   time.Time
}
