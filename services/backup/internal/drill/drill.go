// Package drill runs restore drills: the latest verified backup restored
// into a scratch instance through provisioning (the real restore path),
// measured there against what the backup's verification measured, the
// report recorded and published, the scratch instance deleted. A drill a
// dead process left running is finished at start: its scratch instance
// deleted, the drill failed "interrupted". It does not restore anything
// itself: provisioning and the restore jobs do.
package drill

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
	"github.com/canopy-platform/canopy/services/backup/internal/backupstore"
)

// Provisioner creates, reads and deletes instances (provclient).
type Provisioner interface {
	// CreateRestored orders an instance of plan for tenant restored from a
	// backup of source; it returns the new instance id.
	CreateRestored(ctx context.Context, tenant, name, planID, sourceID, backupID string) (string, error)
	// Get returns an instance with nodes and admin account;
	// backup.ErrNotFound once gone.
	Get(ctx context.Context, id string) (backup.Instance, error)
	// Delete deletes an instance (idempotent).
	Delete(ctx context.Context, tenant, id string) error
}

// Defaults of Config.
const (
	DefaultTimeout   = 30 * time.Minute
	DefaultTickEvery = time.Minute
	DefaultSample    = 10
	DefaultPollEvery = 2 * time.Second
)

// Config tunes drills.
type Config struct {
	// Policy is the platform default (its DrillEvery schedules drills).
	Policy backup.Policy
	// Timeout bounds a drill's restore.
	Timeout time.Duration
	// TickEvery is how often schedules are looked at.
	TickEvery time.Duration
	// Sample is how many tables are compared.
	Sample int
	// PollEvery is how often the scratch instance's state is asked while
	// it is being restored.
	PollEvery time.Duration
}

// Scratch instance states provisioning reports.
const (
	stateReady    = "ready"
	stateFailed   = "failed"
	stateDeleting = "deleting"
	stateDeleted  = "deleted"
)

// Runner runs drills.
type Runner struct {
	cfg  Config
	st   *backupstore.Store
	prov Provisioner
	log  *slog.Logger
	now  func() time.Time
	// measure connects to a scratch instance and measures it (a field so
	// an engine without a server here can be stood in for).
	measure func(ctx context.Context, in backup.Instance, expected backup.DataStats, sample int) (backup.DataStats, error)

	// life is the drills' own context: a drill started by a request
	// outlives it; Run's end cancels it.
	life context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu   sync.Mutex
	busy map[string]bool
}

// New builds a runner.
func New(cfg Config, st *backupstore.Store, prov Provisioner, log *slog.Logger) (*Runner, error) {
	if st == nil || prov == nil || log == nil {
		return nil, errors.New("drill: nil dependency")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.TickEvery <= 0 {
		cfg.TickEvery = DefaultTickEvery
	}
	if cfg.Sample <= 0 {
		cfg.Sample = DefaultSample
	}
	if cfg.PollEvery <= 0 {
		cfg.PollEvery = DefaultPollEvery
	}
	life, stop := context.WithCancel(context.Background())
	return &Runner{cfg: cfg, st: st, prov: prov, log: log, now: time.Now, measure: measure,
		life: life, stop: stop, busy: map[string]bool{}}, nil
}

// Start runs a drill of the tenant's instance now (in the background) and
// returns its running record; backup.ErrNoBackup when it has no verified
// backup, backup.ErrBusy when a drill of it runs.
func (r *Runner) Start(ctx context.Context, tenant, instanceID string) (backup.Drill, error) {
	in, err := r.st.GetInstance(ctx, tenant, instanceID)
	if err != nil {
		return backup.Drill{}, fmt.Errorf("drill of %s: %w", instanceID, err)
	}
	return r.start(ctx, in)
}

// start claims the instance, records the running drill and runs it in the
// background.
func (r *Runner) start(ctx context.Context, in backup.Instance) (backup.Drill, error) {
	if !r.claim(in.ID) {
		return backup.Drill{}, fmt.Errorf("drill of %s: %w: a drill of it is running", in.ID, backup.ErrBusy)
	}
	d, b, err := r.record(ctx, in)
	if err != nil {
		r.release(in.ID)
		return backup.Drill{}, err
	}
	r.wg.Go(func() {
		defer r.release(in.ID)
		r.run(r.life, in, b, d)
	})
	return d, nil
}

// record picks the backup and records the running drill.
func (r *Runner) record(ctx context.Context, in backup.Instance) (backup.Drill, backup.Backup, error) {
	// A drill left running by a dead process holds the instance until Run
	// has finished it.
	recent, err := r.st.ListDrills(ctx, in.TenantID, in.ID, 1)
	if err != nil {
		return backup.Drill{}, backup.Backup{}, fmt.Errorf("drills of %s: %w", in.ID, err)
	}
	if len(recent) > 0 && recent[0].Status == backup.DrillRunning {
		return backup.Drill{}, backup.Backup{}, fmt.Errorf("drill of %s: %w: drill %s is running", in.ID, backup.ErrBusy, recent[0].ID)
	}
	b, err := r.latestVerified(ctx, in.ID)
	if err != nil {
		return backup.Drill{}, backup.Backup{}, err
	}
	d := backup.Drill{ID: ulid.Make().String(), TenantID: in.TenantID, InstanceID: in.ID, BackupID: b.ID,
		Status: backup.DrillRunning, StartedAt: r.now().UTC(), Expected: b.Stats}
	if err := r.st.CreateDrill(ctx, d); err != nil {
		return backup.Drill{}, backup.Backup{}, fmt.Errorf("record drill of %s: %w", in.ID, err)
	}
	r.log.InfoContext(ctx, "drill started", "drill", d.ID, "tenant", in.TenantID, "instance", in.ID, "backup", b.ID)
	return d, b, nil
}

// latestVerified is the instance's newest completed, verified backup.
func (r *Runner) latestVerified(ctx context.Context, instanceID string) (backup.Backup, error) {
	all, err := r.st.AllBackups(ctx, instanceID)
	if err != nil {
		return backup.Backup{}, fmt.Errorf("backups of %s: %w", instanceID, err)
	}
	for i := len(all) - 1; i >= 0; i-- {
		if b := all[i]; b.Status == backup.StatusCompleted && b.Verified {
			return b, nil
		}
	}
	return backup.Backup{}, fmt.Errorf("drill of %s: %w: no verified backup", instanceID, backup.ErrNoBackup)
}

func (r *Runner) claim(instanceID string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.busy[instanceID] {
		return false
	}
	r.busy[instanceID] = true
	return true
}

func (r *Runner) release(instanceID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.busy, instanceID)
}

func (r *Runner) isBusy(instanceID string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.busy[instanceID]
}

// ScratchName is the name of a drill's scratch instance:
// drill-<instance name>-<the drill id's last 6 characters>, within
// provisioning's 63 characters.
func ScratchName(instanceName, drillID string) string {
	short := strings.ToLower(drillID)
	if len(short) > 6 {
		short = short[len(short)-6:]
	}
	const maxName = 63
	room := maxName - len("drill-") - len("-") - len(short)
	if len(instanceName) > room {
		instanceName = strings.TrimRight(instanceName[:room], "-")
	}
	return "drill-" + instanceName + "-" + short
}
