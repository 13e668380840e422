// Package remediation runs a rule's self-healing action (switchover,
// restart-node, rebuild-replica) through the owning service's API with a
// platform identity, rate-limited per instance, and records each run.
package remediation

import (
	"context"
	"time"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
)

// CONTRACT (helper "remediation" implements; delete this file then).

// Actions known.
const (
	ActionSwitchover     = "switchover"
	ActionRestartNode    = "restart-node"
	ActionRebuildReplica = "rebuild-replica"
)

// Known reports whether name is an action.
func Known(name string) bool { panic("todo") }

// Recorder is the part of the store the runner needs.
type Recorder interface {
	Remediation(ctx context.Context, tenant string) (bool, error)
	ActionsSince(ctx context.Context, instanceID string, since time.Time) (int, error)
}

// Run is what happened (the engine stores it with the alert).
type Run struct {
	Action     string
	InstanceID string
	NodeID     string
	Status     string // succeeded, failed, skipped
	Detail     string
}

// Config configures the runner.
type Config struct {
	FailoverURL     string // the failover service (switchover)
	ProvisioningURL string // provisioning (restart-node, rebuild-replica)
	Secret          []byte // internal secret for platform identity
	// MaxPerInstance actions per Window per instance (default 3 per 1h).
	MaxPerInstance int
	Window         time.Duration
	Timeout        time.Duration
}

// Runner executes actions.
type Runner struct{}

// New builds a runner.
func New(cfg Config, rec Recorder) (*Runner, error) { panic("todo") }

// Execute runs the alert's action (a.Action) for its instance/node labels
// if the tenant allows remediation and the rate limit permits; otherwise
// a skipped Run says why.
func (r *Runner) Execute(ctx context.Context, a *alert.Alert, now time.Time) Run { panic("todo") }
