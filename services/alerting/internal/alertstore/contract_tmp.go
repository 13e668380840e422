// Package alertstore keeps the alerting service's state in MySQL: alerts,
// silences (expired ones kept for audit), receivers, tenant rules and
// settings, the notification log, the notification queue (deliveries,
// with attempts and dead letters) and remediation records. Everything the
// engine needs to restart without losing or re-sending notifications.
package alertstore

import (
	"context"
	"errors"
	"time"

	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
	"github.com/canopy-platform/canopy/services/alerting/internal/dispatch"
	"github.com/canopy-platform/canopy/services/alerting/internal/rules"
)

// CONTRACT (helper "store" implements; delete this file then). Signatures
// fixed; the migration is migrations/0001_schema.sql (helper "store").

// Errors callers branch on.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict") // duplicate name/id
)

// Receiver is a webhook receiver and its route.
type Receiver struct {
	ID             string            `json:"id"`
	Tenant         string            `json:"tenant,omitempty"` // "" platform
	Name           string            `json:"name"`
	URL            string            `json:"url"`
	Secret         string            `json:"-"` // never returned
	HasSecret      bool              `json:"has_secret"`
	Matchers       []string          `json:"matchers,omitempty"` // each `name=~"value"`
	GroupBy        []string          `json:"group_by,omitempty"`
	GroupWait      time.Duration     `json:"-"`
	GroupInterval  time.Duration     `json:"-"`
	RepeatInterval time.Duration     `json:"-"`
	SendResolved   bool              `json:"send_resolved"`
	Continue       bool              `json:"continue"`
	Position       int64             `json:"-"` // route order within the owner
	CreatedAt      time.Time         `json:"created_at"`
	UpdatedAt      time.Time         `json:"updated_at"`
}

// AlertFilter selects alerts for the API.
type AlertFilter struct {
	Tenant   string // required unless All
	All      bool   // platform-admin: every tenant and platform alerts
	States   []alert.State
	Matchers alert.Matchers
	Limit    int
	After    string // cursor: fingerprint hex of the last item
}

// StoredAlert is an alert with its bookkeeping.
type StoredAlert struct {
	alert.Alert
	Fingerprint alert.Fingerprint
	// SilencedBy and InhibitedBy are filled by the API from the engine.
	SilencedBy  []string
	InhibitedBy []string
	// ActionRuns lists the remediation runs the alert triggered.
	ActionRuns []ActionRun
}

// Delivery is one stored notification on its way to a receiver.
type Delivery struct {
	ID          int64
	Receiver    string
	Owner       string
	GroupKey    string
	Payload     []byte // the webhook v4 JSON, built when stored
	Attempts    int
	NextAt      time.Time
	LastError   string
	CreatedAt   time.Time
	DeliveredAt time.Time
	DeadAt      time.Time // dead letter when set
}

// ActionRun is one remediation attempt.
type ActionRun struct {
	ID          int64     `json:"id"`
	Fingerprint string    `json:"fingerprint"`
	Tenant      string    `json:"tenant,omitempty"`
	InstanceID  string    `json:"instance_id"`
	NodeID      string    `json:"node_id,omitempty"`
	Action      string    `json:"action"`
	Status      string    `json:"status"` // started, succeeded, failed, skipped
	Detail      string    `json:"detail,omitempty"`
	At          time.Time `json:"at"`
}

// Store is the MySQL store.
type Store struct{}

// New wraps an open, migrated database.
func New(db *store.DB) (*Store, error) { panic("todo") }

// --- alerts

// UpsertAlerts writes alerts by fingerprint (labels, annotations,
// starts/ends, state, rule, value, action, updated) and emits evs to the
// outbox (topic canopy.alerts.v1), in one transaction. Many alerts go in
// few multi-row statements: the push path runs at thousands per second.
func (s *Store) UpsertAlerts(ctx context.Context, alerts []*alert.Alert, evs []eventbus.Event) error {
	panic("todo")
}

// LiveAlerts returns every pending or firing alert and the resolved ones
// resolved after since (the engine's state at start).
func (s *Store) LiveAlerts(ctx context.Context, since time.Time) ([]*alert.Alert, error) { panic("todo") }

// ListAlerts pages alerts for the API (newest first by StartsAt? no:
// ordered by fingerprint for stable cursors).
func (s *Store) ListAlerts(ctx context.Context, f AlertFilter) (items []StoredAlert, next string, err error) {
	panic("todo")
}

// GetAlert returns one alert; a tenant other than the alert's gets
// ErrNotFound (tenant "" with all=true: any).
func (s *Store) GetAlert(ctx context.Context, tenant string, all bool, fp alert.Fingerprint) (StoredAlert, error) {
	panic("todo")
}

// PruneAlerts deletes resolved alerts resolved before.
func (s *Store) PruneAlerts(ctx context.Context, before time.Time) (int64, error) { panic("todo") }

// --- silences

// CreateSilence stores a new silence (ID assigned, uuid) and returns it.
func (s *Store) CreateSilence(ctx context.Context, sil alert.Silence) (alert.Silence, error) { panic("todo") }

// ExpireSilence ends a silence now (kept for audit); tenant-checked.
func (s *Store) ExpireSilence(ctx context.Context, tenant string, all bool, id string, now time.Time) error {
	panic("todo")
}

// GetSilence returns one silence, tenant-checked.
func (s *Store) GetSilence(ctx context.Context, tenant string, all bool, id string) (alert.Silence, error) {
	panic("todo")
}

// ListSilences lists a tenant's (or all) silences, expired ones included.
func (s *Store) ListSilences(ctx context.Context, tenant string, all bool) ([]alert.Silence, error) {
	panic("todo")
}

// UnexpiredSilences returns every silence whose EndsAt is after now (the
// engine's muting set).
func (s *Store) UnexpiredSilences(ctx context.Context, now time.Time) ([]alert.Silence, error) {
	panic("todo")
}

// --- receivers

// CreateReceiver stores a receiver (ID assigned, position last).
func (s *Store) CreateReceiver(ctx context.Context, r Receiver) (Receiver, error) { panic("todo") }

// UpdateReceiver replaces a receiver's fields (tenant-checked).
func (s *Store) UpdateReceiver(ctx context.Context, r Receiver) (Receiver, error) { panic("todo") }

// DeleteReceiver deletes it (its queued deliveries are dead-lettered with
// reason "receiver deleted").
func (s *Store) DeleteReceiver(ctx context.Context, tenant string, all bool, id string) error { panic("todo") }

// GetReceiver returns one receiver, secret included, tenant-checked.
func (s *Store) GetReceiver(ctx context.Context, tenant string, all bool, id string) (Receiver, error) {
	panic("todo")
}

// ListReceivers lists a tenant's receivers (all: every receiver), in
// route order, secrets included (callers never serialise Secret).
func (s *Store) ListReceivers(ctx context.Context, tenant string, all bool) ([]Receiver, error) {
	panic("todo")
}

// --- rules and settings

// CreateRule stores a tenant rule (ErrConflict on a duplicate id).
func (s *Store) CreateRule(ctx context.Context, r rules.Rule) (rules.Rule, error) { panic("todo") }

// UpdateRule replaces it.
func (s *Store) UpdateRule(ctx context.Context, r rules.Rule) (rules.Rule, error) { panic("todo") }

// DeleteRule deletes it.
func (s *Store) DeleteRule(ctx context.Context, tenant, id string) error { panic("todo") }

// ListRules lists stored rules (tenant's; all: every one). Overrides of a
// default rule for a tenant (action_enabled, disabled) are stored as rules
// with the default's id and the tenant set.
func (s *Store) ListRules(ctx context.Context, tenant string, all bool) ([]rules.Rule, error) { panic("todo") }

// Remediation reports whether a tenant allows remediation actions (off
// unless set).
func (s *Store) Remediation(ctx context.Context, tenant string) (bool, error) { panic("todo") }

// SetRemediation switches it.
func (s *Store) SetRemediation(ctx context.Context, tenant string, on bool) error { panic("todo") }

// --- notifications

// StoreNotifications, in one transaction, queues the deliveries and
// writes their log entries (the dispatcher commits only after this).
func (s *Store) StoreNotifications(ctx context.Context, ds []Delivery, log []dispatch.LogEntry) error {
	panic("todo")
}

// NotificationLog returns the unexpired log entries.
func (s *Store) NotificationLog(ctx context.Context, now time.Time) ([]dispatch.LogEntry, error) {
	panic("todo")
}

// DueDeliveries claims up to limit undelivered, not dead deliveries whose
// NextAt <= now, oldest first.
func (s *Store) DueDeliveries(ctx context.Context, now time.Time, limit int) ([]Delivery, error) {
	panic("todo")
}

// Delivered marks deliveries sent (one statement for many).
func (s *Store) Delivered(ctx context.Context, ids []int64, at time.Time) error { panic("todo") }

// Failed records a failed attempt and the next try; dead=true makes it a
// dead letter.
func (s *Store) Failed(ctx context.Context, id int64, attempts int, next time.Time, reason string, dead bool) error {
	panic("todo")
}

// DeadLetters lists dead letters (tenant's or all), newest first.
func (s *Store) DeadLetters(ctx context.Context, tenant string, all bool, limit int) ([]Delivery, error) {
	panic("todo")
}

// RetryDeadLetter queues a dead letter again (attempts reset).
func (s *Store) RetryDeadLetter(ctx context.Context, tenant string, all bool, id int64, now time.Time) error {
	panic("todo")
}

// PruneDeliveries deletes delivered deliveries older than before.
func (s *Store) PruneDeliveries(ctx context.Context, before time.Time) (int64, error) { panic("todo") }

// --- remediation

// RecordAction stores a run.
func (s *Store) RecordAction(ctx context.Context, r ActionRun) (ActionRun, error) { panic("todo") }

// ActionsSince counts an instance's runs (not skipped) since.
func (s *Store) ActionsSince(ctx context.Context, instanceID string, since time.Time) (int, error) {
	panic("todo")
}

// ListActions lists runs (tenant's or all), newest first.
func (s *Store) ListActions(ctx context.Context, tenant string, all bool, limit int) ([]ActionRun, error) {
	panic("todo")
}
