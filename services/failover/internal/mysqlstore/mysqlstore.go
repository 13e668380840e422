// Package mysqlstore is the failover service's topology.Store on MariaDB
// (libs/store): per-instance recovery leases with fencing tokens, the
// recovery history, rejoins, drill reports and drill schedules. Every write
// of a recovery or rejoin checks the caller's lease token and writes its
// failover.* event to the outbox in the same transaction, so an actor whose
// lease was taken over can neither record nor announce anything.
//
// It is not the recovery logic: it stores what the recoverer decided.
package mysqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/store"

	"github.com/canopy-platform/canopy/services/failover/internal/topology"
	"github.com/canopy-platform/canopy/services/failover/migrations"
)

// Store is the MariaDB topology.Store.
type Store struct {
	db *store.DB
}

var _ topology.Store = (*Store)(nil)

// New returns a store on db; Migrate must have run (launch.DatabaseStages
// does it in the service).
func New(db *store.DB) (*Store, error) {
	if db == nil {
		return nil, errors.New("mysqlstore: nil database")
	}
	return &Store{db: db}, nil
}

// Migrate applies the outbox's and the failover service's migrations.
func (s *Store) Migrate(ctx context.Context) error {
	if err := s.db.Migrate(ctx, store.OutboxMigrations(), migrations.FS); err != nil {
		return fmt.Errorf("mysqlstore: migrate: %w", err)
	}
	return nil
}

// Acquire takes or renews the instance's lease. Times are the database's
// clock, so replicas of the service with skewed clocks agree on expiry.
func (s *Store) Acquire(ctx context.Context, instanceID, holder string, ttl time.Duration) (topology.Lease, error) {
	if instanceID == "" || holder == "" || ttl <= 0 {
		return topology.Lease{}, errors.New("acquire lease: instance, holder and a positive ttl are required")
	}
	// The row exists before the transaction locks it, so concurrent first
	// acquisitions serialise on FOR UPDATE instead of deadlocking on the insert.
	if _, err := s.db.SQL().ExecContext(ctx,
		"INSERT IGNORE INTO failover_leases (instance_id, holder, token, expires_at) VALUES (?, '', 0, '1970-01-01 00:00:01')", instanceID); err != nil {
		return topology.Lease{}, fmt.Errorf("acquire lease on %s: %w", instanceID, err)
	}
	var l topology.Lease
	err := s.db.Tx(ctx, func(tx *store.Tx) error {
		var cur string
		var token int64
		var live bool
		if err := tx.QueryRowContext(ctx,
			"SELECT holder, token, expires_at > NOW(6) FROM failover_leases WHERE instance_id = ? FOR UPDATE", instanceID).
			Scan(&cur, &token, &live); err != nil {
			return fmt.Errorf("read lease of %s: %w", instanceID, err)
		}
		switch {
		case live && cur != holder:
			return fmt.Errorf("lease of %s held by %s: %w", instanceID, cur, topology.ErrLeaseHeld)
		case !live || cur != holder:
			token++ // a new term: whatever the previous holder still does is fenced
		}
		if _, err := tx.ExecContext(ctx,
			"UPDATE failover_leases SET holder = ?, token = ?, expires_at = NOW(6) + INTERVAL ? MICROSECOND WHERE instance_id = ?",
			holder, token, ttl.Microseconds(), instanceID); err != nil {
			return fmt.Errorf("write lease of %s: %w", instanceID, err)
		}
		var exp time.Time
		if err := tx.QueryRowContext(ctx, "SELECT expires_at FROM failover_leases WHERE instance_id = ?", instanceID).Scan(&exp); err != nil {
			return fmt.Errorf("read lease of %s: %w", instanceID, err)
		}
		l = topology.Lease{InstanceID: instanceID, Holder: holder, Token: token, Expires: exp.UTC()}
		return nil
	})
	return l, err
}

// Release expires the lease if l is still the current one; the token stays,
// so the next holder's is higher.
func (s *Store) Release(ctx context.Context, l topology.Lease) error {
	if _, err := s.db.SQL().ExecContext(ctx,
		"UPDATE failover_leases SET expires_at = LEAST(expires_at, NOW(6)) WHERE instance_id = ? AND holder = ? AND token = ?",
		l.InstanceID, l.Holder, l.Token); err != nil {
		return fmt.Errorf("release lease of %s: %w", l.InstanceID, err)
	}
	return nil
}

// checkLease locks the lease row and fails with ErrFenced unless l is current.
func checkLease(ctx context.Context, tx *store.Tx, l topology.Lease) error {
	var holder string
	var token int64
	err := tx.QueryRowContext(ctx, "SELECT holder, token FROM failover_leases WHERE instance_id = ? FOR UPDATE", l.InstanceID).
		Scan(&holder, &token)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("lease of %s: none taken: %w", l.InstanceID, topology.ErrFenced)
	}
	if err != nil {
		return fmt.Errorf("read lease of %s: %w", l.InstanceID, err)
	}
	if holder != l.Holder || token != l.Token {
		return fmt.Errorf("lease of %s is %s/%d, not %s/%d: %w", l.InstanceID, holder, token, l.Holder, l.Token, topology.ErrFenced)
	}
	return nil
}

// Begin records a new recovery under l and emits failover.started (and, for
// a recovery recorded already finished, its outcome).
func (s *Store) Begin(ctx context.Context, l topology.Lease, r topology.Recovery) error {
	if r.ID == "" || r.InstanceID == "" || r.InstanceID != l.InstanceID {
		return fmt.Errorf("begin recovery %q of %q: an id and the lease's instance are required", r.ID, r.InstanceID)
	}
	if r.State == "" {
		r.State = topology.StateStarted
	}
	return s.db.Tx(ctx, func(tx *store.Tx) error {
		if err := checkLease(ctx, tx, l); err != nil {
			return err
		}
		roles, lost, err := encodeLists(r)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO recoveries (id, instance_id, tenant_id, engine, kind, problem, state, step,
			old_primary, candidate, candidate_address, roles, token, holder, reason, lost, acknowledged, detected_at, promoted_at,
			completed_at, rto_ms, detection_ms, promotion_ms, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NOW(6))`,
			r.ID, r.InstanceID, r.Tenant, string(r.Engine), string(r.Kind), r.Problem, string(r.State), string(r.Step),
			r.OldPrimary, r.Candidate, r.CandidateAddress, roles, l.Token, l.Holder, r.Reason, lost, r.Acknowledged,
			r.DetectedAt.UTC(), nullTime(r.PromotedAt), nullTime(r.CompletedAt), r.RTOMS, r.DetectionMS, r.PromotionMS); err != nil {
			return fmt.Errorf("record recovery %s of %s: %w", r.ID, r.InstanceID, err)
		}
		r.Token, r.Holder = l.Token, l.Holder
		types := []string{events.TypeFailoverStarted}
		if t := outcomeType(r.State); t != "" {
			types = append(types, t)
		}
		return emitRecovery(ctx, tx, r, types...)
	})
}

// Save records r's new step and state under l, emitting failover.completed
// or failover.failed when r reaches that state for the first time.
func (s *Store) Save(ctx context.Context, l topology.Lease, r topology.Recovery) error {
	return s.db.Tx(ctx, func(tx *store.Tx) error {
		if err := checkLease(ctx, tx, l); err != nil {
			return err
		}
		var prev string
		err := tx.QueryRowContext(ctx, "SELECT state FROM recoveries WHERE id = ? AND instance_id = ? FOR UPDATE", r.ID, r.InstanceID).Scan(&prev)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("save recovery %s of %s: %w", r.ID, r.InstanceID, topology.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("read recovery %s: %w", r.ID, err)
		}
		roles, lost, err := encodeLists(r)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE recoveries SET problem = ?, state = ?, step = ?, old_primary = ?, candidate = ?,
			candidate_address = ?, roles = ?, token = ?, holder = ?, reason = ?, lost = ?, promoted_at = ?, completed_at = ?,
			rto_ms = ?, detection_ms = ?, promotion_ms = ?, updated_at = NOW(6) WHERE id = ?`,
			r.Problem, string(r.State), string(r.Step), r.OldPrimary, r.Candidate, r.CandidateAddress, roles, l.Token, l.Holder,
			r.Reason, lost, nullTime(r.PromotedAt), nullTime(r.CompletedAt), r.RTOMS, r.DetectionMS, r.PromotionMS, r.ID); err != nil {
			return fmt.Errorf("save recovery %s of %s: %w", r.ID, r.InstanceID, err)
		}
		r.Token, r.Holder = l.Token, l.Holder
		if t := outcomeType(r.State); t != "" && prev != string(r.State) {
			return emitRecovery(ctx, tx, r, t)
		}
		return nil
	})
}

func outcomeType(st topology.State) string {
	switch st {
	case topology.StateCompleted:
		return events.TypeFailoverCompleted
	case topology.StateFailed:
		return events.TypeFailoverFailed
	}
	return ""
}

func encodeLists(r topology.Recovery) (roles, lost string, err error) {
	rm := r.Roles
	if rm == nil {
		rm = map[string]topology.Role{}
	}
	lt := r.LostTransactions
	if lt == nil {
		lt = []string{}
	}
	rb, err := json.Marshal(rm)
	if err != nil {
		return "", "", fmt.Errorf("encode roles of recovery %s: %w", r.ID, err)
	}
	lb, err := json.Marshal(lt)
	if err != nil {
		return "", "", fmt.Errorf("encode lost transactions of recovery %s: %w", r.ID, err)
	}
	return string(rb), string(lb), nil
}

func nullTime(t *time.Time) any {
	if t == nil || t.IsZero() {
		return nil
	}
	return t.UTC()
}

// Payload is the api/events.Recovery of r.
func Payload(r topology.Recovery) events.Recovery {
	p := events.Recovery{RecoveryID: r.ID, InstanceID: r.InstanceID, TenantID: r.Tenant, Engine: string(r.Engine),
		Kind: string(r.Kind), Problem: r.Problem, State: string(r.State), OldPrimary: r.OldPrimary, FencingToken: r.Token,
		Reason: r.Reason, LostTransactions: r.LostTransactions, DetectedAt: r.DetectedAt.UTC(), PromotedAt: utc(r.PromotedAt),
		CompletedAt: utc(r.CompletedAt), RTOMS: r.RTOMS, DetectionMS: r.DetectionMS, PromotionMS: r.PromotionMS}
	// The candidate is the new primary only once it was promoted.
	if r.PromotedAt != nil || r.State == topology.StateCompleted {
		p.NewPrimary, p.NewPrimaryAddress = r.Candidate, r.CandidateAddress
	}
	if len(r.Roles) > 0 {
		p.Roles = make(map[string]string, len(r.Roles))
		for k, v := range r.Roles {
			p.Roles[k] = string(v)
		}
	}
	return p
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func emitRecovery(ctx context.Context, tx *store.Tx, r topology.Recovery, types ...string) error {
	data, err := json.Marshal(Payload(r))
	if err != nil {
		return fmt.Errorf("encode recovery %s: %w", r.ID, err)
	}
	evs := make([]eventbus.Event, len(types))
	for i, t := range types {
		evs[i] = eventbus.Event{Type: t, Source: events.SourceFailover, Subject: r.InstanceID, Key: r.InstanceID,
			Tenant: r.Tenant, ContentType: "application/json", Data: data}
	}
	if err := tx.Emit(ctx, events.TopicFailover, evs...); err != nil {
		return fmt.Errorf("emit %s of recovery %s: %w", strings.Join(types, ", "), r.ID, err)
	}
	return nil
}

const recoveryColumns = `id, instance_id, tenant_id, engine, kind, problem, state, step, old_primary, candidate, candidate_address,
	roles, token, holder, reason, lost, acknowledged, detected_at, promoted_at, completed_at, rto_ms, detection_ms, promotion_ms`

func scanRecovery(row store.Scanner) (topology.Recovery, error) {
	var r topology.Recovery
	var engine, kind, state, step, roles, lost string
	var promoted, completed sql.NullTime
	if err := row.Scan(&r.ID, &r.InstanceID, &r.Tenant, &engine, &kind, &r.Problem, &state, &step, &r.OldPrimary, &r.Candidate,
		&r.CandidateAddress, &roles, &r.Token, &r.Holder, &r.Reason, &lost, &r.Acknowledged, &r.DetectedAt, &promoted, &completed,
		&r.RTOMS, &r.DetectionMS, &r.PromotionMS); err != nil {
		return topology.Recovery{}, err
	}
	r.Engine, r.Kind, r.State, r.Step = topology.Engine(engine), topology.Kind(kind), topology.State(state), topology.Step(step)
	r.DetectedAt = r.DetectedAt.UTC()
	if promoted.Valid {
		t := promoted.Time.UTC()
		r.PromotedAt = &t
	}
	if completed.Valid {
		t := completed.Time.UTC()
		r.CompletedAt = &t
	}
	if err := json.Unmarshal([]byte(roles), &r.Roles); err != nil {
		return topology.Recovery{}, fmt.Errorf("decode roles of recovery %s: %w", r.ID, err)
	}
	if len(r.Roles) == 0 {
		r.Roles = nil
	}
	if err := json.Unmarshal([]byte(lost), &r.LostTransactions); err != nil {
		return topology.Recovery{}, fmt.Errorf("decode lost transactions of recovery %s: %w", r.ID, err)
	}
	if len(r.LostTransactions) == 0 {
		r.LostTransactions = nil
	}
	return r, nil
}

func (s *Store) one(ctx context.Context, what, query string, args ...any) (topology.Recovery, error) {
	r, err := scanRecovery(s.db.SQL().QueryRowContext(ctx, "SELECT "+recoveryColumns+" FROM recoveries "+query, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return topology.Recovery{}, fmt.Errorf("%s: %w", what, topology.ErrNotFound)
	}
	if err != nil {
		return topology.Recovery{}, fmt.Errorf("%s: %w", what, err)
	}
	return r, nil
}

// Get returns one recovery of an instance.
func (s *Store) Get(ctx context.Context, instanceID, id string) (topology.Recovery, error) {
	return s.one(ctx, "recovery "+id+" of "+instanceID, "WHERE id = ? AND instance_id = ?", id, instanceID)
}

// Open returns the instance's unfinished recovery, the latest if several.
func (s *Store) Open(ctx context.Context, instanceID string) (topology.Recovery, error) {
	return s.one(ctx, "open recovery of "+instanceID, "WHERE instance_id = ? AND state = ? ORDER BY id DESC LIMIT 1",
		instanceID, string(topology.StateStarted))
}

// LastAutomatic returns the most recent completed automatic recovery.
func (s *Store) LastAutomatic(ctx context.Context, instanceID string) (topology.Recovery, error) {
	return s.one(ctx, "last automatic recovery of "+instanceID,
		"WHERE instance_id = ? AND kind = ? AND state = ? ORDER BY completed_at DESC, id DESC LIMIT 1",
		instanceID, string(topology.KindAutomatic), string(topology.StateCompleted))
}

// Acknowledge marks a recovery acknowledged; acknowledging twice is fine.
func (s *Store) Acknowledge(ctx context.Context, instanceID, id string) error {
	res, err := s.db.SQL().ExecContext(ctx, "UPDATE recoveries SET acknowledged = TRUE, updated_at = NOW(6) WHERE id = ? AND instance_id = ?", id, instanceID)
	if err != nil {
		return fmt.Errorf("acknowledge recovery %s of %s: %w", id, instanceID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := s.Get(ctx, instanceID, id); err != nil {
			return fmt.Errorf("acknowledge: %w", err)
		}
	}
	return nil
}

// Rejoined records that a fenced node replicates again and emits
// failover.node.rejoined.
func (s *Store) Rejoined(ctx context.Context, in topology.Instance, nodeID, primaryID string, rebuilt bool, lost []string) error {
	if lost == nil {
		lost = []string{}
	}
	lb, err := json.Marshal(lost)
	if err != nil {
		return fmt.Errorf("encode lost transactions: %w", err)
	}
	now := time.Now().UTC()
	id := ulid.Make().String()
	return s.db.Tx(ctx, func(tx *store.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO rejoins (id, instance_id, tenant_id, node_id, primary_id, rebuilt, lost, occurred_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, id, in.ID, in.Tenant, nodeID, primaryID, rebuilt, string(lb), now); err != nil {
			return fmt.Errorf("record rejoin of %s/%s: %w", in.ID, nodeID, err)
		}
		p := events.NodeRejoined{InstanceID: in.ID, TenantID: in.Tenant, NodeID: nodeID, Primary: primaryID, Rebuilt: rebuilt, OccurredAt: now}
		if len(lost) > 0 {
			p.LostTransactions = lost
		}
		data, err := json.Marshal(p)
		if err != nil {
			return fmt.Errorf("encode rejoin of %s/%s: %w", in.ID, nodeID, err)
		}
		return tx.Emit(ctx, events.TopicFailover, eventbus.Event{ID: id, Type: events.TypeNodeRejoined, Source: events.SourceFailover,
			Subject: in.ID, Key: in.ID, Tenant: in.Tenant, Time: now, ContentType: "application/json", Data: data})
	})
}

// List returns up to limit recoveries of an instance, newest first, after
// the cursor (the id of the last recovery of the previous page; "" for the
// first page). It returns one more than limit when there are more.
func (s *Store) List(ctx context.Context, instanceID, after string, limit int) ([]topology.Recovery, error) {
	q := "SELECT " + recoveryColumns + " FROM recoveries WHERE instance_id = ?"
	args := []any{instanceID}
	if after != "" {
		q += " AND id < ?"
		args = append(args, after)
	}
	q += " ORDER BY id DESC LIMIT ?"
	args = append(args, limit+1)
	return s.many(ctx, "list recoveries of "+instanceID, q, args...)
}

func (s *Store) many(ctx context.Context, what, q string, args ...any) ([]topology.Recovery, error) {
	return store.QueryAll(ctx, s.db.SQL(), what, scanRecovery, q, args...)
}
