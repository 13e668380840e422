// Package remediation runs a rule's self-healing action (switchover,
// restart-node, rebuild-replica) through the owning service's API with a
// platform identity, rate-limited per instance, and says what happened so
// the engine can record it with the alert.
package remediation

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/canopy-platform/canopy/libs/svcclient"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
)

// Actions known.
const (
	// ActionSwitchover moves the primary to the best replica (the failover
	// service's planned switchover: zero loss).
	ActionSwitchover = "switchover"
	// ActionRestartNode stops the node's process gracefully; provisioning's
	// supervisor starts it again and the failover service gives it its role.
	ActionRestartNode = "restart-node"
	// ActionRebuildReplica replaces a MySQL replica's data with the
	// primary's and makes it replicate again (the failover service).
	ActionRebuildReplica = "rebuild-replica"
)

// Statuses of a Run.
const (
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
	StatusSkipped   = "skipped"
)

// Identity is who the alerting service is to the services it asks:
// provisioning admits this subject to its fault route for stops only.
var Identity = tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: "service:alerting"}

// Known reports whether name is an action.
func Known(name string) bool {
	switch name {
	case ActionSwitchover, ActionRestartNode, ActionRebuildReplica:
		return true
	}
	return false
}

// Recorder is the part of the store the runner needs.
type Recorder interface {
	// Remediation reports whether the tenant ("" for the platform) allows
	// actions.
	Remediation(ctx context.Context, tenant string) (bool, error)
	// ActionsSince counts the instance's runs that were not skipped.
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
	FailoverURL     string // the failover service (switchover, rebuild-replica); one URL or its replicas', comma-separated
	ProvisioningURL string // provisioning (restart-node); one URL or its replicas', comma-separated
	Secret          []byte // internal secret for platform identity
	// MaxPerInstance actions per Window per instance (default 3 per 1h):
	// an alert that keeps coming back must not keep restarting a node.
	MaxPerInstance int
	Window         time.Duration
	// Timeout bounds one call (default 10m: a rebuild copies the primary's
	// data before the failover service answers).
	Timeout time.Duration
}

// Runner executes actions. Safe for concurrent use.
type Runner struct {
	cfg      Config
	rec      Recorder
	failover *svcclient.Client
	prov     *svcclient.Client

	mu sync.Mutex
	// busy holds the instances with an action in flight: one at a time per
	// instance, whatever the rate limit says.
	busy map[string]bool
}

// New builds a runner; both URLs and the secret are required.
func New(cfg Config, rec Recorder) (*Runner, error) {
	if rec == nil {
		return nil, errors.New("remediation: nil recorder")
	}
	if len(cfg.Secret) == 0 {
		return nil, errors.New("remediation: the internal secret is required")
	}
	if cfg.MaxPerInstance <= 0 {
		cfg.MaxPerInstance = 3
	}
	if cfg.Window <= 0 {
		cfg.Window = time.Hour
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Minute
	}
	// The actions carry no Idempotency-Key: once a replica may have read
	// one, it is not sent to another (svcclient), so none runs twice.
	failover, err := svcclient.New(svcclient.Config{Audience: tenancy.AudienceFailover, Secret: cfg.Secret,
		BaseURL: cfg.FailoverURL, Timeout: cfg.Timeout, MaxBody: 4 << 10})
	if err != nil {
		return nil, fmt.Errorf("remediation: failover url: %w", err)
	}
	prov, err := svcclient.New(svcclient.Config{Audience: tenancy.AudienceProvisioning, Secret: cfg.Secret,
		BaseURL: cfg.ProvisioningURL, Timeout: cfg.Timeout, MaxBody: 4 << 10})
	if err != nil {
		return nil, fmt.Errorf("remediation: provisioning url: %w", err)
	}
	return &Runner{cfg: cfg, rec: rec, failover: failover, prov: prov, busy: map[string]bool{}}, nil
}

// Execute runs the alert's action (a.Action) for its instance and node
// labels if the tenant allows remediation and the rate limit permits;
// otherwise a skipped Run says why. It blocks for the call's duration.
func (r *Runner) Execute(ctx context.Context, a *alert.Alert, now time.Time) Run {
	run := Run{Action: a.Action, InstanceID: a.Labels[alert.LabelInstance], NodeID: a.Labels[alert.LabelNode]}
	skip := func(format string, args ...any) Run {
		run.Status, run.Detail = StatusSkipped, fmt.Sprintf(format, args...)
		return run
	}
	switch {
	case !Known(run.Action):
		return skip("unknown action %q", run.Action)
	case run.InstanceID == "":
		return skip("the alert has no %s label", alert.LabelInstance)
	case run.NodeID == "" && run.Action != ActionSwitchover:
		return skip("the alert has no %s label", alert.LabelNode)
	}
	tenant := a.Tenant()
	on, err := r.rec.Remediation(ctx, tenant)
	if err != nil {
		run.Status, run.Detail = StatusFailed, fmt.Sprintf("read the remediation setting: %v", err)
		return run
	}
	if !on {
		if tenant == "" {
			return skip("remediation is off for platform alerts (PUT /api/v1/alert-settings)")
		}
		return skip("remediation is off for tenant %s (PUT /api/v1/alert-settings)", tenant)
	}
	if !r.claim(run.InstanceID) {
		return skip("another action on instance %s is running", run.InstanceID)
	}
	defer r.release(run.InstanceID)
	n, err := r.rec.ActionsSince(ctx, run.InstanceID, now.Add(-r.cfg.Window))
	if err != nil {
		run.Status, run.Detail = StatusFailed, fmt.Sprintf("count recent actions: %v", err)
		return run
	}
	if n >= r.cfg.MaxPerInstance {
		return skip("rate limit: %d actions on instance %s within %s", n, run.InstanceID, r.cfg.Window)
	}
	if err := r.call(ctx, run); err != nil {
		run.Status, run.Detail = StatusFailed, err.Error()
		return run
	}
	run.Status = StatusSucceeded
	return run
}

func (r *Runner) claim(instance string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.busy[instance] {
		return false
	}
	r.busy[instance] = true
	return true
}

func (r *Runner) release(instance string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.busy, instance)
}

// call asks the owning service for the action.
func (r *Runner) call(ctx context.Context, run Run) error {
	inst, node := url.PathEscape(run.InstanceID), url.PathEscape(run.NodeID)
	switch run.Action {
	case ActionSwitchover:
		return r.post(ctx, r.failover, "/api/v1/instances/"+inst+"/switchover", struct{}{})
	case ActionRebuildReplica:
		return r.post(ctx, r.failover, "/api/v1/instances/"+inst+"/nodes/"+node+"/rebuild", nil)
	default: // ActionRestartNode
		return r.post(ctx, r.prov, "/internal/v1/failover/instances/"+inst+"/nodes/"+node+"/fault",
			map[string]string{"kind": "stop"})
	}
}

// post sends a signed command; any 2xx is success, anything else an error
// carrying the answer's start (a problem's detail says why).
func (r *Runner) post(ctx context.Context, c *svcclient.Client, path string, v any) error {
	_, _, err := c.Do(ctx, Identity, http.MethodPost, path, v, nil)
	return err
}
