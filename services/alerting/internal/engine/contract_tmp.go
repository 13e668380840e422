// Package engine is the alerting service's core: it consumes the platform's
// topics, evaluates the rules, accepts pushed alerts, keeps the alerts,
// silences and routes, drives the dispatcher, stores notifications and
// delivers them, runs remediation actions, and recovers all of it from the
// store after a restart. One engine is active per database (a MySQL named
// lock); a standby waits for the lock.
package engine

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
	"github.com/canopy-platform/canopy/services/alerting/internal/alertstore"
	"github.com/canopy-platform/canopy/services/alerting/internal/nodes"
	"github.com/canopy-platform/canopy/services/alerting/internal/remediation"
	"github.com/canopy-platform/canopy/services/alerting/internal/webhook"
	"github.com/canopy-platform/canopy/libs/store"
)

// CONTRACT (helper "engine" implements; delete this file then).

// Config configures the engine.
type Config struct {
	Brokers []string
	GroupID string // consumer group, "canopy-alerting"
	// ExternalURL is the payload's externalURL (the gateway's URL).
	ExternalURL string
	// GeneratorURL is the base of rule alerts' generatorURL.
	GeneratorURL string
	// InhibitRules, default DefaultInhibitRules().
	InhibitRules []alert.InhibitRule
	// DeliveryWorkers posting concurrently (default 32).
	DeliveryWorkers int
	// MaxAttempts before a delivery becomes a dead letter (default 12), or
	// when the receiver's breaker stays open past DeadAfter (default 1h).
	MaxAttempts int
	DeadAfter   time.Duration
	// StaleAfter resolves sample alerts of nodes no longer sampled (5m).
	StaleAfter time.Duration
	// ResolvedRetention keeps resolved alerts listable (24h).
	ResolvedRetention time.Duration
	// MaxAlertsPerMessage truncates a payload (0: no limit).
	MaxAlertsPerMessage int
	// BatchWait bounds how long a pushed alert waits for its batch's
	// commit (group commit of concurrent pushes, default 5ms).
	BatchWait time.Duration
	// LockName is the MySQL named lock of the single active engine.
	LockName string
}

// DefaultInhibitRules: an instance-wide alert (severity critical with
// alertname InstanceDown) inhibits that instance's node-level alerts; a
// node-down alert inhibits the same node's other alerts.
func DefaultInhibitRules() []alert.InhibitRule { panic("todo") }

// Engine is the running core.
type Engine struct{}

// New builds an engine (no I/O). act may be nil (no remediation).
func New(cfg Config, db *store.DB, st *alertstore.Store, send *webhook.Sender, act *remediation.Runner,
	reg *nodes.Registry, log *slog.Logger, metrics prometheus.Registerer) (*Engine, error) {
	panic("todo")
}

// Run runs until ctx ends: takes the lock, loads state, then consumes,
// evaluates, dispatches and delivers. It returns nil on ctx's end.
func (e *Engine) Run(ctx context.Context) error { panic("todo") }

// Ready is closed once the engine holds the lock and loaded its state.
func (e *Engine) Ready() <-chan struct{} { panic("todo") }

// Push accepts alerts (from POST /api/v2/alerts; tenant labels already
// enforced by the API); it returns once they are stored.
func (e *Engine) Push(ctx context.Context, alerts []*alert.Alert) error { panic("todo") }

// What to reload after an API change.
type What int

// Reload kinds.
const (
	ReloadReceivers What = iota
	ReloadSilences
	ReloadRules
)

// Reload re-reads receivers (routes), silences or rules from the store.
func (e *Engine) Reload(ctx context.Context, what What) error { panic("todo") }

// Muting tells who mutes an alert now: silence ids and inhibiting
// fingerprints (empty when none).
func (e *Engine) Muting(fp alert.Fingerprint) (silencedBy, inhibitedBy []string) { panic("todo") }
