// Package mysqlrepo keeps the catalog's state in its MySQL database
// (canopy_catalog) through libs/store: plans, broker credentials and stored
// idempotent responses, with every plan change and its catalog.plan.* event
// written in one transaction (transactional outbox). It holds no business
// rules; those live in internal/plan.
package mysqlrepo

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/services/catalog/internal/plan"
	"github.com/canopy-platform/canopy/services/catalog/migrations"
)

// Errors callers branch on.
var (
	ErrNotFound = errors.New("not found")
	// ErrNameTaken is returned when another plan already has the name.
	ErrNameTaken = errors.New("plan name already taken")
	// ErrExists is returned when a plan with the id already exists.
	ErrExists = errors.New("plan already exists")
	// ErrIdempotencyKeyUsed is returned when the idempotency key was stored
	// by a concurrent request first; the caller looks it up and replays.
	ErrIdempotencyKeyUsed = errors.New("idempotency key already used")
)

// Repo is the catalog's repository.
type Repo struct {
	db  *store.DB
	now func() time.Time
}

// New returns a repository on db; now is the clock (time.Now when nil).
func New(db *store.DB, now func() time.Time) (*Repo, error) {
	if db == nil {
		return nil, errors.New("mysqlrepo: nil db")
	}
	if now == nil {
		now = time.Now
	}
	return &Repo{db: db, now: now}, nil
}

// Migrate applies the catalog's migrations.
func (r *Repo) Migrate(ctx context.Context) error {
	if err := r.db.Migrate(ctx, store.OutboxMigrations(), migrations.FS); err != nil {
		return fmt.Errorf("migrate catalog: %w", err)
	}
	return nil
}

// Ping checks the database is reachable (for readiness).
func (r *Repo) Ping(ctx context.Context) error { return r.db.SQL().PingContext(ctx) }

// IdempotentResponse is a response stored under an Idempotency-Key, written
// in the same transaction as the change it answers.
type IdempotentResponse struct {
	Scope       string
	Key         string
	RequestHash string
	Status      int
	Body        []byte
}

const planColumns = "doc"

// CreatePlan inserts p and its created event; when idem is not nil the
// response is stored under its key in the same transaction.
func (r *Repo) CreatePlan(ctx context.Context, p plan.Plan, idem *IdempotentResponse) error {
	err := r.db.Tx(ctx, func(tx *store.Tx) error {
		if idem != nil {
			if err := saveIdempotent(ctx, tx, *idem, r.now()); err != nil {
				return err
			}
		}
		return insertPlan(ctx, tx, p)
	})
	if err != nil {
		return fmt.Errorf("create plan %s: %w", p.Name, err)
	}
	return nil
}

func insertPlan(ctx context.Context, tx *store.Tx, p plan.Plan) error {
	doc, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode plan: %w", err)
	}
	_, err = tx.ExecContext(ctx,
		"INSERT INTO plans (id, name, engine, state, doc, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
		p.ID, p.Name, string(p.Engine), string(p.State), string(doc), p.CreatedAt, p.UpdatedAt)
	if err != nil {
		return duplicateError(err)
	}
	e, err := planEvent(events.TypePlanCreated, p, nil)
	if err != nil {
		return err
	}
	return tx.Emit(ctx, events.TopicCatalog, e)
}

// duplicateError maps a duplicate-key error to the sentinel of its key.
func duplicateError(err error) error {
	var me *mysql.MySQLError
	if errors.As(err, &me) && me.Number == 1062 {
		switch {
		case strings.Contains(me.Message, "plans_name"):
			return ErrNameTaken
		case strings.Contains(me.Message, "PRIMARY"):
			return ErrExists
		}
	}
	return err
}

// Change says what an UpdatePlan callback did to a plan.
type Change struct {
	// Event is the event type to emit (events.TypePlan*); empty when
	// nothing changed.
	Event string
	// Fields are the changed fields (for updated events).
	Fields []string
}

// UpdatePlan locks plan id, passes it to fn and, when fn reports a change,
// stores the result and emits the event in the same transaction. It returns
// the plan as stored afterwards.
func (r *Repo) UpdatePlan(ctx context.Context, id string, fn func(p plan.Plan) (plan.Plan, Change, error)) (plan.Plan, error) {
	var out plan.Plan
	err := r.db.Tx(ctx, func(tx *store.Tx) error {
		cur, err := scanPlan(tx.QueryRowContext(ctx, "SELECT "+planColumns+" FROM plans WHERE id = ? FOR UPDATE", id))
		if err != nil {
			return err
		}
		next, ch, err := fn(cur)
		if err != nil {
			return err
		}
		out = next
		if ch.Event == "" {
			out = cur
			return nil
		}
		doc, err := json.Marshal(next)
		if err != nil {
			return fmt.Errorf("encode plan: %w", err)
		}
		if _, err := tx.ExecContext(ctx, "UPDATE plans SET name = ?, state = ?, doc = ?, updated_at = ? WHERE id = ?",
			next.Name, string(next.State), string(doc), next.UpdatedAt, id); err != nil {
			return duplicateError(err)
		}
		e, err := planEvent(ch.Event, next, ch.Fields)
		if err != nil {
			return err
		}
		return tx.Emit(ctx, events.TopicCatalog, e)
	})
	if err != nil {
		return plan.Plan{}, fmt.Errorf("update plan %s: %w", id, err)
	}
	return out, nil
}

type rowScanner interface{ Scan(dest ...any) error }

func scanPlan(row rowScanner) (plan.Plan, error) {
	var doc string
	if err := row.Scan(&doc); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return plan.Plan{}, ErrNotFound
		}
		return plan.Plan{}, fmt.Errorf("read plan: %w", err)
	}
	var p plan.Plan
	if err := json.Unmarshal([]byte(doc), &p); err != nil {
		return plan.Plan{}, fmt.Errorf("decode plan: %w", err)
	}
	return p, nil
}

// GetPlan returns plan id, deprecated or not.
func (r *Repo) GetPlan(ctx context.Context, id string) (plan.Plan, error) {
	p, err := scanPlan(r.db.SQL().QueryRowContext(ctx, "SELECT "+planColumns+" FROM plans WHERE id = ?", id))
	if err != nil {
		return plan.Plan{}, fmt.Errorf("get plan %s: %w", id, err)
	}
	return p, nil
}

// PlanQuery filters and pages ListPlans. Plans are ordered by name.
type PlanQuery struct {
	Engine    plan.Engine // empty = every engine
	State     plan.State  // empty = every state
	AfterName string      // cursor: names strictly after this one
	Limit     int         // at most this many (required, > 0)
}

// ListPlans returns plans matching q ordered by name.
func (r *Repo) ListPlans(ctx context.Context, q PlanQuery) ([]plan.Plan, error) {
	var (
		where []string
		args  []any
	)
	if q.Engine != "" {
		where = append(where, "engine = ?")
		args = append(args, string(q.Engine))
	}
	if q.State != "" {
		where = append(where, "state = ?")
		args = append(args, string(q.State))
	}
	if q.AfterName != "" {
		where = append(where, "name > ?")
		args = append(args, q.AfterName)
	}
	query := "SELECT " + planColumns + " FROM plans"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY name LIMIT ?"
	args = append(args, q.Limit)
	rows, err := r.db.SQL().QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list plans: %w", err)
	}
	defer rows.Close()
	var out []plan.Plan
	for rows.Next() {
		p, err := scanPlan(rows)
		if err != nil {
			return nil, fmt.Errorf("list plans: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list plans: %w", err)
	}
	return out, nil
}

// Seed inserts each of plans whose id is not stored yet (with its created
// event) and returns how many it inserted. Plans already there, even changed
// or deprecated since, are left alone, so seeding is idempotent; a seed whose
// name is taken by another plan is skipped and reported in skipped.
func (r *Repo) Seed(ctx context.Context, plans []plan.Plan) (inserted int, skipped []string, err error) {
	for _, p := range plans {
		err := r.db.Tx(ctx, func(tx *store.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM plans WHERE id = ?", p.ID).Scan(&n); err != nil {
				return fmt.Errorf("look up seed plan: %w", err)
			}
			if n > 0 {
				return ErrExists
			}
			return insertPlan(ctx, tx, p)
		})
		switch {
		case err == nil:
			inserted++
		case errors.Is(err, ErrExists):
			// Already seeded (possibly by a concurrent replica).
		case errors.Is(err, ErrNameTaken):
			skipped = append(skipped, p.Name)
		default:
			return inserted, skipped, fmt.Errorf("seed plan %s: %w", p.Name, err)
		}
	}
	return inserted, skipped, nil
}

// LookupIdempotent returns the response stored under scope and key.
func (r *Repo) LookupIdempotent(ctx context.Context, scope, key string) (IdempotentResponse, bool, error) {
	resp := IdempotentResponse{Scope: scope, Key: key}
	err := r.db.SQL().QueryRowContext(ctx,
		"SELECT request_hash, status, response FROM idempotency_keys WHERE scope = ? AND idem_key = ?", scope, key).
		Scan(&resp.RequestHash, &resp.Status, &resp.Body)
	if errors.Is(err, sql.ErrNoRows) {
		return IdempotentResponse{}, false, nil
	}
	if err != nil {
		return IdempotentResponse{}, false, fmt.Errorf("look up idempotency key: %w", err)
	}
	return resp, true, nil
}

func saveIdempotent(ctx context.Context, tx *store.Tx, resp IdempotentResponse, now time.Time) error {
	_, err := tx.ExecContext(ctx,
		"INSERT INTO idempotency_keys (scope, idem_key, request_hash, status, response, created_at) VALUES (?, ?, ?, ?, ?, ?)",
		resp.Scope, resp.Key, resp.RequestHash, resp.Status, resp.Body, now.UTC())
	if err != nil {
		var me *mysql.MySQLError
		if errors.As(err, &me) && me.Number == 1062 {
			return ErrIdempotencyKeyUsed
		}
		return fmt.Errorf("store idempotent response: %w", err)
	}
	return nil
}

// PurgeIdempotent deletes stored responses older than before.
func (r *Repo) PurgeIdempotent(ctx context.Context, before time.Time) (int64, error) {
	res, err := r.db.SQL().ExecContext(ctx, "DELETE FROM idempotency_keys WHERE created_at < ? LIMIT 1000", before.UTC())
	if err != nil {
		return 0, fmt.Errorf("purge idempotency keys: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}
