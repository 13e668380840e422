// Package backupstore keeps the backup service's state in MySQL: the
// instances it knows (no credentials), policy overrides, backups, archived
// segments, restore jobs and drills, with outbox events written in the same
// transaction as the change they announce.
package backupstore

import (
	"context"
	"time"

	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/store"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
)

// Store is the MySQL state of the backup service.
type Store struct{ db *store.DB }

// New returns a store over a migrated database.
func New(db *store.DB) (*Store, error) { panic("contract") }

// Scope of a policy override.
const (
	ScopePlan     = "plan"
	ScopeInstance = "instance"
)

// UpsertInstances records instances provisioning lists (id, tenant, name,
// engine, plan, state; nodes and credentials are not stored) and clears
// their DeletedAt.
func (s *Store) UpsertInstances(ctx context.Context, ins []backup.Instance) error { panic("contract") }

// MarkDeleted sets DeletedAt of the instances not yet marked.
func (s *Store) MarkDeleted(ctx context.Context, ids []string, at time.Time) error { panic("contract") }

// ListInstances returns every known instance, deleted ones included.
func (s *Store) ListInstances(ctx context.Context) ([]backup.Instance, error) { panic("contract") }

// GetInstance returns the instance of tenant ("" for any); ErrNotFound
// when unknown or another tenant's.
func (s *Store) GetInstance(ctx context.Context, tenant, id string) (backup.Instance, error) {
	panic("contract")
}

// PolicyOverride returns the override of a plan or instance (zero, false
// when none).
func (s *Store) PolicyOverride(ctx context.Context, scope, id string) (backup.PolicyOverride, bool, error) {
	panic("contract")
}

// SetPolicyOverride stores (replaces) an override.
func (s *Store) SetPolicyOverride(ctx context.Context, scope, id string, o backup.PolicyOverride) error {
	panic("contract")
}

// CreateBackup records a running backup; ErrBusy when the instance has one
// running already.
func (s *Store) CreateBackup(ctx context.Context, b backup.Backup) error { panic("contract") }

// UpdateBackup stores b (by id) and emits events (on events.TopicBackups)
// in the same transaction.
func (s *Store) UpdateBackup(ctx context.Context, b backup.Backup, evs ...eventbus.Event) error {
	panic("contract")
}

// GetBackup returns a backup of the tenant's instance ("" tenant: any).
func (s *Store) GetBackup(ctx context.Context, tenant, instanceID, id string) (backup.Backup, error) {
	panic("contract")
}

// ListBackups returns an instance's backups, newest first, after the
// cursor (a backup id, "" from the start), at most limit.
func (s *Store) ListBackups(ctx context.Context, tenant, instanceID, after string, limit int) ([]backup.Backup, error) {
	panic("contract")
}

// AllBackups returns every backup of an instance (any tenant), oldest
// first, for retention and planning.
func (s *Store) AllBackups(ctx context.Context, instanceID string) ([]backup.Backup, error) {
	panic("contract")
}

// RunningBackups returns backups left running (by a process that died).
func (s *Store) RunningBackups(ctx context.Context) ([]backup.Backup, error) { panic("contract") }

// AppendSegment records the instance's next segment; its Seq must be the
// last one's + 1 (store.Conflict-style ErrSeq otherwise).
func (s *Store) AppendSegment(ctx context.Context, seg backup.Segment) error { panic("contract") }

// Segments returns an instance's segments from fromSeq on, in order.
func (s *Store) Segments(ctx context.Context, instanceID string, fromSeq int64) ([]backup.Segment, error) {
	panic("contract")
}

// LastSegment returns an instance's newest segment.
func (s *Store) LastSegment(ctx context.Context, instanceID string) (backup.Segment, bool, error) {
	panic("contract")
}

// DeleteSegments removes segment rows (their objects are removed first by
// the caller).
func (s *Store) DeleteSegments(ctx context.Context, instanceID string, seqs []int64) error {
	panic("contract")
}

// CreateRestore records a pending restore job.
func (s *Store) CreateRestore(ctx context.Context, r backup.Restore) error { panic("contract") }

// UpdateRestore stores a restore job (by id).
func (s *Store) UpdateRestore(ctx context.Context, r backup.Restore) error { panic("contract") }

// GetRestore returns a restore job.
func (s *Store) GetRestore(ctx context.Context, id string) (backup.Restore, error) { panic("contract") }

// ActiveRestores returns jobs pending, running or ready.
func (s *Store) ActiveRestores(ctx context.Context) ([]backup.Restore, error) { panic("contract") }

// CreateDrill records a running drill.
func (s *Store) CreateDrill(ctx context.Context, d backup.Drill) error { panic("contract") }

// UpdateDrill stores a drill and emits events in the same transaction.
func (s *Store) UpdateDrill(ctx context.Context, d backup.Drill, evs ...eventbus.Event) error {
	panic("contract")
}

// ListDrills returns an instance's drills, newest first.
func (s *Store) ListDrills(ctx context.Context, tenant, instanceID string, limit int) ([]backup.Drill, error) {
	panic("contract")
}

// RunningDrills returns drills left running.
func (s *Store) RunningDrills(ctx context.Context) ([]backup.Drill, error) { panic("contract") }

// Emit writes outbox events on their own (the archive's lag transitions).
func (s *Store) Emit(ctx context.Context, evs ...eventbus.Event) error { panic("contract") }
