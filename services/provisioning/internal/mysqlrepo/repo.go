// Package mysqlrepo persists provisioning's instances, nodes, operations and
// bindings in its MySQL database (canopy_provisioning) and writes their
// events to the outbox in the same transaction. Changes to an instance go
// through Update, which locks the row (SELECT … FOR UPDATE) so concurrent
// changes serialise. Credentials are sealed with AES-GCM before they are
// stored. It holds no business rules: the instance package decides.
package mysqlrepo

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"

	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/provisioning/migrations"

	"github.com/canopy-platform/canopy/libs/secrets"
	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/port"
)

// Errors callers branch on: the repository contract's (package port), named
// here too for callers that know only this adapter.
var (
	ErrNotFound  = port.ErrNotFound
	ErrNameTaken = port.ErrNameTaken
	// ErrDuplicate: the idempotency key or OSB id is already used.
	ErrDuplicate = port.ErrDuplicate
	// ErrNoTenant: a tenant-scoped method was called without a tenant.
	ErrNoTenant = port.ErrNoTenant
	// ErrBindingNameTaken: the instance already has an active binding with the name.
	ErrBindingNameTaken = port.ErrBindingNameTaken
	// ErrNoChange may be returned by an Update callback to commit nothing.
	ErrNoChange = port.ErrNoChange
)

// needTenant refuses an empty tenant on a tenant-scoped method.
func needTenant(tenant, what string) error {
	if tenant == "" {
		return fmt.Errorf("%s: %w", what, ErrNoTenant)
	}
	return nil
}

// Repo is the repository.
type Repo struct {
	db  *store.DB
	box *secrets.Box
}

// New returns a repository over an open, migrated database.
func New(db *store.DB, box *secrets.Box) (*Repo, error) {
	if db == nil || box == nil {
		return nil, errors.New("mysqlrepo: nil db or secrets box")
	}
	return &Repo{db: db, box: box}, nil
}

// Migrate applies the schema.
func (r *Repo) Migrate(ctx context.Context) error {
	return r.db.Migrate(ctx, store.OutboxMigrations(), migrations.FS)
}

// The contract's types, named here for callers that know only this adapter.
type (
	// Outgoing is an event to write to the outbox with a change.
	Outgoing = port.Outgoing
	// Change is what an Update callback edits.
	Change = port.Change
	// Usage is what a tenant's live instances hold.
	Usage = port.Usage
	// CreateRequest is a new instance with what its creation depends on.
	CreateRequest = port.CreateRequest
	// DuplicateError is returned when an idempotency key or OSB id was used before.
	DuplicateError = port.DuplicateError
)

// Update locks instance id, runs fn on it and, when fn returns nil, saves the
// instance, its nodes, the operation and fn's events in one transaction.
// When fn returns ErrNoChange nothing is written and Update returns nil.
// A ctx carrying a saga lease's fencing token (port.WithFence) whose lease
// was taken over since is refused with port.ErrFenced.
func (r *Repo) Update(ctx context.Context, id string, fn func(c *Change) error) (*instance.Instance, error) {
	var out *instance.Instance
	err := r.db.Tx(ctx, func(tx *store.Tx) error {
		if err := checkFence(ctx, tx, id); err != nil {
			return err
		}
		in, _, err := r.load(ctx, tx.Tx, anyTenant, id, true)
		if err != nil {
			return err
		}
		op, err := r.operation(ctx, tx.Tx, in.Tenant, in.OperationID)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		c := &Change{Instance: in, Op: &op}
		if err := fn(c); err != nil {
			return err
		}
		if err := r.save(ctx, tx, c.Instance, false); err != nil {
			return err
		}
		for _, op := range c.Superseded {
			if err := saveOp(ctx, tx.Tx, op); err != nil {
				return err
			}
		}
		if c.Op != nil && c.Op.ID != "" {
			if err := saveOp(ctx, tx.Tx, *c.Op); err != nil {
				return err
			}
		}
		if err := emit(ctx, tx, c.Instance.Tenant, c.Events()); err != nil {
			return err
		}
		out = c.Instance
		return nil
	})
	if errors.Is(err, ErrNoChange) {
		return r.GetAnyTenant(ctx, id)
	}
	if err != nil {
		return nil, fmt.Errorf("update instance %s: %w", id, err)
	}
	return out, nil
}

func emit(ctx context.Context, tx *store.Tx, tenant string, events []Outgoing) error {
	if len(events) == 0 {
		return nil
	}
	ctx = tenancy.WithTenant(ctx, tenancy.ID(tenant))
	for _, o := range events {
		if err := tx.Emit(ctx, o.Topic, o.Event); err != nil {
			return err
		}
	}
	return nil
}

// Create inserts a new instance and its operation and emits its events,
// after checking idempotency key, OSB id, name and quota under a
// per-tenant lock.
func (r *Repo) Create(ctx context.Context, req CreateRequest) error {
	in := req.Instance
	var err error
	// Two creates (of any tenants) may pick the same free pair; the loser's
	// insert into router_ports fails and it tries again from a new snapshot.
	for attempt := 0; attempt < portRaceAttempts; attempt++ {
		if !req.RouterPorts.Empty() {
			in.Router = instance.RouterPorts{} // the pair of a rolled-back attempt
		}
		if err = r.create(ctx, req); !errors.Is(err, errPortTaken) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("create instance %s: %w", in.ID, err)
	}
	return nil
}

// portRaceAttempts bounds the retries of a create or an assignment that
// lost a router port to a concurrent one.
const portRaceAttempts = 8

// errPortTaken: a router port was taken by a concurrent transaction.
var errPortTaken = errors.New("router port taken concurrently")

func (r *Repo) create(ctx context.Context, req CreateRequest) error {
	in := req.Instance
	// TxRetry: a transaction InnoDB picks as a deadlock victim (the
	// first orders of a tenant racing to insert its lock row) runs again.
	return r.db.TxRetry(ctx, func(tx *store.Tx) error {
		if !req.RouterPorts.Empty() {
			in.Router = instance.RouterPorts{} // the pair of a rolled-back attempt
		}
		// The tenant's lock row, inserted or locked exclusively in one
		// statement: INSERT IGNORE then SELECT ... FOR UPDATE took a shared
		// lock first, and two creates of one tenant holding it both
		// deadlocked on the upgrade.
		if _, err := tx.ExecContext(ctx, "INSERT INTO tenant_locks (tenant) VALUES (?) ON DUPLICATE KEY UPDATE tenant = VALUES(tenant)", in.Tenant); err != nil {
			return fmt.Errorf("lock tenant: %w", err)
		}
		if req.IdempotencyKey != "" || in.OSBID != "" {
			var q string
			var arg string
			if req.IdempotencyKey != "" {
				q, arg = "idempotency_key = ?", req.IdempotencyKey
			} else {
				q, arg = "osb_id = ?", in.OSBID
			}
			var id, hash string
			err := tx.QueryRowContext(ctx, "SELECT id, request_hash FROM instances WHERE tenant = ? AND "+q, in.Tenant, arg).Scan(&id, &hash)
			if err == nil {
				existing, _, lerr := r.load(ctx, tx.Tx, in.Tenant, id, false)
				if lerr != nil {
					return lerr
				}
				return &DuplicateError{Existing: existing, SameRequest: hash == req.RequestHash}
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("check request key: %w", err)
			}
		}
		if req.Admit != nil {
			u, err := usage(ctx, tx.Tx, in.Tenant)
			if err != nil {
				return err
			}
			if err := req.Admit(u); err != nil {
				return err
			}
		}
		if !req.RouterPorts.Empty() {
			ports, err := allocateRouterPorts(ctx, tx.Tx, in.ID, req.RouterPorts)
			if err != nil {
				return err
			}
			in.Router = ports
		}
		if err := r.insert(ctx, tx, in, req.IdempotencyKey, req.RequestHash); err != nil {
			return err
		}
		if err := saveOp(ctx, tx.Tx, req.Op); err != nil {
			return err
		}
		return emit(ctx, tx, in.Tenant, req.Events)
	})
}

func usage(ctx context.Context, q querier, tenant string) (Usage, error) {
	rows, err := q.QueryContext(ctx, "SELECT plan FROM instances WHERE tenant = ? AND state <> 'deleted'", tenant)
	if err != nil {
		return Usage{}, fmt.Errorf("tenant usage: %w", err)
	}
	defer rows.Close()
	var u Usage
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return Usage{}, err
		}
		var p instance.Plan
		if err := json.Unmarshal(raw, &p); err != nil {
			return Usage{}, fmt.Errorf("decode plan: %w", err)
		}
		n := int64(len(p.Nodes))
		u = u.Add(Usage{Instances: 1, VCPU: p.Resources.VCPU * float64(n), MemoryMB: p.Resources.MemoryMB * n, StorageGB: p.Resources.StorageGB * n})
	}
	return u, rows.Err()
}

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
}

func isDuplicateKey(err error, key string) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1062 && strings.Contains(me.Message, key)
}

func (r *Repo) insert(ctx context.Context, tx *store.Tx, in *instance.Instance, idemKey, hash string) error {
	planJSON, params, sysctls, accounts, err := r.encode(in)
	if err != nil {
		return err
	}
	restore, err := encodeRestore(in)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO instances (id, tenant, name, osb_id, plan_id, engine, version, region, state, step, reason,
		plan, parameters, sysctls, accounts, operation_id, idempotency_key, request_hash, created_at, updated_at, step_at, router_rw_port, router_ro_port, restore)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		in.ID, in.Tenant, in.Name, nullable(in.OSBID), in.Plan.ID, in.Plan.Engine, in.Version, in.Region, in.State, in.Step, in.Reason,
		planJSON, params, sysctls, accounts, in.OperationID, nullable(idemKey), hash, in.CreatedAt.UTC(), in.UpdatedAt.UTC(), in.StepAt.UTC(),
		nullPort(in.Router.RW), nullPort(in.Router.RO), restore)
	if isDuplicateKey(err, "instances_tenant_live_name") {
		return fmt.Errorf("%w: %s", ErrNameTaken, in.Name)
	}
	if isDuplicateKey(err, "instances_live_router") {
		return fmt.Errorf("%w: %w", errPortTaken, err)
	}
	if err != nil {
		return fmt.Errorf("insert instance: %w", err)
	}
	return saveNodes(ctx, tx.Tx, in)
}

func (r *Repo) save(ctx context.Context, tx *store.Tx, in *instance.Instance, _ bool) error {
	planJSON, params, sysctls, accounts, err := r.encode(in)
	if err != nil {
		return err
	}
	restore, err := encodeRestore(in)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `UPDATE instances SET state = ?, step = ?, reason = ?, plan = ?, parameters = ?, sysctls = ?,
		accounts = ?, operation_id = ?, updated_at = ?, step_at = ?, failover_token = ?, failover_recovery = ?, restore = ?, engine_version = ? WHERE id = ?`,
		in.State, in.Step, in.Reason, planJSON, params, sysctls, accounts, in.OperationID, in.UpdatedAt.UTC(), in.StepAt.UTC(),
		in.Failover.Token, in.Failover.Recovery, restore, in.EngineVersion, in.ID)
	if err != nil {
		return fmt.Errorf("save instance: %w", err)
	}
	if in.State == instance.StateDeleted {
		// The ports return to the pool; the columns keep them as history.
		if _, err := tx.ExecContext(ctx, "DELETE FROM router_ports WHERE instance_id = ?", in.ID); err != nil {
			return fmt.Errorf("release router ports of %s: %w", in.ID, err)
		}
	}
	return saveNodes(ctx, tx.Tx, in)
}

func saveNodes(ctx context.Context, tx *sql.Tx, in *instance.Instance) error {
	for _, n := range in.Nodes {
		var settings any
		if n.Settings != nil {
			b, err := json.Marshal(n.Settings)
			if err != nil {
				return fmt.Errorf("encode settings of node %s: %w", n.ID, err)
			}
			settings = b
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO nodes (id, instance_id, name, role, region_role, region, az, host, port, address, state, pid, data_dir, settings, fenced, promotion_rule)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON DUPLICATE KEY UPDATE role = VALUES(role), region = VALUES(region), az = VALUES(az), host = VALUES(host), port = VALUES(port),
			address = VALUES(address), state = VALUES(state), pid = VALUES(pid), data_dir = VALUES(data_dir), settings = VALUES(settings),
			fenced = VALUES(fenced), promotion_rule = VALUES(promotion_rule)`,
			n.ID, in.ID, n.Name, n.Role, n.RegionRole, n.Region, n.AZ, n.Host, n.Port, n.Address, n.State, n.PID, n.DataDir, settings, n.Fenced, n.Promotion)
		if err != nil {
			return fmt.Errorf("save node %s: %w", n.ID, err)
		}
	}
	return nil
}

func saveOp(ctx context.Context, tx *sql.Tx, op instance.Operation) error {
	var fin any
	if op.FinishedAt != nil {
		fin = op.FinishedAt.UTC()
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO operations (id, instance_id, tenant, type, state, step, started_at, finished_at, error, requested_by, step_detail)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON DUPLICATE KEY UPDATE state = VALUES(state), step = VALUES(step), finished_at = VALUES(finished_at), error = VALUES(error),
		step_detail = VALUES(step_detail)`,
		op.ID, op.InstanceID, op.Tenant, op.Type, op.State, op.Step, op.StartedAt.UTC(), fin, op.Error, op.RequestedBy, truncate(op.StepDetail, 255))
	if err != nil {
		return fmt.Errorf("save operation %s: %w", op.ID, err)
	}
	return nil
}

// truncate cuts s to at most n bytes (a column's width), on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// encodeRestore is the restore column of in: NULL without a restore.
func encodeRestore(in *instance.Instance) (any, error) {
	if in.Restore == nil {
		return nil, nil
	}
	b, err := json.Marshal(in.Restore)
	if err != nil {
		return nil, fmt.Errorf("encode restore of %s: %w", in.ID, err)
	}
	return b, nil
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (r *Repo) encode(in *instance.Instance) (planJSON, params, sysctls []byte, accounts []byte, err error) {
	if planJSON, err = json.Marshal(in.Plan); err != nil {
		return
	}
	p := in.Parameters
	if p == nil {
		p = map[string]any{}
	}
	if params, err = json.Marshal(p); err != nil {
		return
	}
	s := in.Sysctls
	if s == nil {
		s = []instance.Setting{}
	}
	if sysctls, err = json.Marshal(s); err != nil {
		return
	}
	acc, err := json.Marshal(in.Accounts)
	if err != nil {
		return
	}
	accounts, err = r.box.Seal(acc, []byte("instance:"+in.ID))
	return
}

const instanceColumns = `id, tenant, name, COALESCE(osb_id, ''), version, region, state, step, reason, plan, parameters, sysctls, accounts,
	operation_id, created_at, updated_at, step_at, failover_token, failover_recovery, COALESCE(router_rw_port, 0), COALESCE(router_ro_port, 0), restore, engine_version`

// anyTenant is the scope of the explicitly cross-tenant reads: a value no
// tenant id can take (tenancy ids are validated printable text).
const anyTenant = "\x00any"

// load reads an instance and its nodes; the tenant anyTenant reads any
// tenant's, "" is ErrNoTenant.
func (r *Repo) load(ctx context.Context, q querier, tenant, id string, lock bool) (*instance.Instance, string, error) {
	if err := needTenant(tenant, "instance "+id); err != nil {
		return nil, "", err
	}
	query := "SELECT " + instanceColumns + " FROM instances WHERE id = ?"
	args := []any{id}
	if tenant != anyTenant {
		query += " AND tenant = ?"
		args = append(args, tenant)
	}
	if lock {
		query += " FOR UPDATE"
	}
	in, err := r.scan(q.QueryRowContext(ctx, query, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", fmt.Errorf("instance %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, "", err
	}
	if err := loadNodes(ctx, q, in); err != nil {
		return nil, "", err
	}
	return in, in.ID, nil
}

type scanner interface{ Scan(dst ...any) error }

func (r *Repo) scan(row scanner) (*instance.Instance, error) {
	var in instance.Instance
	var planJSON, params, sysctls, accounts, restore []byte
	err := row.Scan(&in.ID, &in.Tenant, &in.Name, &in.OSBID, &in.Version, &in.Region, &in.State, &in.Step, &in.Reason,
		&planJSON, &params, &sysctls, &accounts, &in.OperationID, &in.CreatedAt, &in.UpdatedAt, &in.StepAt,
		&in.Failover.Token, &in.Failover.Recovery, &in.Router.RW, &in.Router.RO, &restore, &in.EngineVersion)
	if err != nil {
		return nil, err
	}
	if restore != nil {
		in.Restore = &instance.Restore{}
		if err := json.Unmarshal(restore, in.Restore); err != nil {
			return nil, fmt.Errorf("decode restore of %s: %w", in.ID, err)
		}
		in.Restore.PointInTime, in.Restore.ReadyAt = in.Restore.PointInTime.UTC(), in.Restore.ReadyAt.UTC()
	}
	if err := json.Unmarshal(planJSON, &in.Plan); err != nil {
		return nil, fmt.Errorf("decode plan of %s: %w", in.ID, err)
	}
	if err := json.Unmarshal(params, &in.Parameters); err != nil {
		return nil, fmt.Errorf("decode parameters of %s: %w", in.ID, err)
	}
	if err := json.Unmarshal(sysctls, &in.Sysctls); err != nil {
		return nil, fmt.Errorf("decode sysctls of %s: %w", in.ID, err)
	}
	acc, err := r.box.Open(accounts, []byte("instance:"+in.ID))
	if err != nil {
		return nil, fmt.Errorf("open accounts of %s: %w", in.ID, err)
	}
	if err := json.Unmarshal(acc, &in.Accounts); err != nil {
		return nil, fmt.Errorf("decode accounts of %s: %w", in.ID, err)
	}
	in.CreatedAt, in.UpdatedAt, in.StepAt = in.CreatedAt.UTC(), in.UpdatedAt.UTC(), in.StepAt.UTC()
	return &in, nil
}

func loadNodes(ctx context.Context, q querier, in *instance.Instance) error {
	rows, err := q.QueryContext(ctx, `SELECT id, name, role, region_role, region, az, host, port, address, state, pid, data_dir, settings, fenced, promotion_rule
		FROM nodes WHERE instance_id = ? ORDER BY name`, in.ID)
	if err != nil {
		return fmt.Errorf("load nodes of %s: %w", in.ID, err)
	}
	defer rows.Close()
	in.Nodes = nil
	for rows.Next() {
		var n instance.Node
		var settings []byte
		if err := rows.Scan(&n.ID, &n.Name, &n.Role, &n.RegionRole, &n.Region, &n.AZ, &n.Host, &n.Port, &n.Address, &n.State, &n.PID, &n.DataDir, &settings, &n.Fenced, &n.Promotion); err != nil {
			return err
		}
		if settings != nil {
			if err := json.Unmarshal(settings, &n.Settings); err != nil {
				return fmt.Errorf("decode settings of node %s: %w", n.ID, err)
			}
		}
		in.Nodes = append(in.Nodes, n)
	}
	return rows.Err()
}

// Get returns the tenant's instance. Another tenant's instance is
// ErrNotFound; an empty tenant is ErrNoTenant.
func (r *Repo) Get(ctx context.Context, tenant, id string) (*instance.Instance, error) {
	in, _, err := r.load(ctx, r.db.SQL(), tenant, id, false)
	return in, err
}

// GetAnyTenant returns an instance whatever its tenant: for the saga, the
// health checker's monitoring view and platform admins.
func (r *Repo) GetAnyTenant(ctx context.Context, id string) (*instance.Instance, error) {
	in, _, err := r.load(ctx, r.db.SQL(), anyTenant, id, false)
	return in, err
}

// GetByOSBID returns the tenant's instance ordered with an OSB instance id.
func (r *Repo) GetByOSBID(ctx context.Context, tenant, osbID string) (*instance.Instance, error) {
	if err := needTenant(tenant, "osb instance "+osbID); err != nil {
		return nil, err
	}
	var id string
	err := r.db.SQL().QueryRowContext(ctx, "SELECT id FROM instances WHERE tenant = ? AND osb_id = ?", tenant, osbID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("osb instance %s: %w", osbID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("find osb instance %s: %w", osbID, err)
	}
	return r.Get(ctx, tenant, id)
}

// List returns up to limit of the tenant's instances (deleted ones only
// with includeDeleted) with ids after the cursor id, in id order. An empty
// tenant is ErrNoTenant.
func (r *Repo) List(ctx context.Context, tenant, after string, limit int, includeDeleted bool) ([]*instance.Instance, error) {
	if err := needTenant(tenant, "list instances"); err != nil {
		return nil, err
	}
	q := "SELECT " + instanceColumns + " FROM instances WHERE tenant = ? AND id > ?"
	if !includeDeleted {
		q += " AND state <> 'deleted'"
	}
	q += " ORDER BY id LIMIT ?"
	return r.list(ctx, q, tenant, after, limit)
}

// ListAllInstances is List across every tenant, for platform admins.
func (r *Repo) ListAllInstances(ctx context.Context, after string, limit int, includeDeleted bool) ([]*instance.Instance, error) {
	q := "SELECT " + instanceColumns + " FROM instances WHERE id > ?"
	if !includeDeleted {
		q += " AND state <> 'deleted'"
	}
	q += " ORDER BY id LIMIT ?"
	return r.list(ctx, q, after, limit)
}

func (r *Repo) list(ctx context.Context, q string, args ...any) ([]*instance.Instance, error) {
	rows, err := r.db.SQL().QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	var out []*instance.Instance
	for rows.Next() {
		in, err := r.scan(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, in)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	for _, in := range out {
		if err := loadNodes(ctx, r.db.SQL(), in); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ListMonitored returns, across all tenants, the instances whose nodes are
// meant to be up (ready or updating), after the id cursor, for the health
// checker.
func (r *Repo) ListMonitored(ctx context.Context, after string, limit int) ([]*instance.Instance, error) {
	rows, err := r.db.SQL().QueryContext(ctx, "SELECT "+instanceColumns+
		" FROM instances WHERE id > ? AND state IN ('ready','updating') ORDER BY id LIMIT ?", after, limit)
	if err != nil {
		return nil, fmt.Errorf("list monitored instances: %w", err)
	}
	var out []*instance.Instance
	for rows.Next() {
		in, err := r.scan(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, in)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list monitored instances: %w", err)
	}
	for _, in := range out {
		if err := loadNodes(ctx, r.db.SQL(), in); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Unfinished returns the ids of instances whose saga has work left
// (provisioning, updating, deleting), oldest first.
func (r *Repo) Unfinished(ctx context.Context) ([]string, error) {
	return r.ids(ctx, "SELECT id FROM instances WHERE state IN ('provisioning', 'updating', 'deleting') ORDER BY id")
}

// WithNodes returns the ids of instances that may have nodes to adopt
// (every state but deleted).
func (r *Repo) WithNodes(ctx context.Context) ([]string, error) {
	return r.ids(ctx, "SELECT DISTINCT i.id FROM instances i JOIN nodes n ON n.instance_id = i.id WHERE i.state <> 'deleted' AND n.state IN ('creating', 'created', 'running', 'stopped') ORDER BY i.id")
}

func (r *Repo) ids(ctx context.Context, q string) ([]string, error) {
	rows, err := r.db.SQL().QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("list instance ids: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// Operation returns the tenant's operation; an empty tenant is ErrNoTenant.
func (r *Repo) Operation(ctx context.Context, tenant, id string) (instance.Operation, error) {
	return r.operation(ctx, r.db.SQL(), tenant, id)
}

// OperationAnyTenant returns an operation whatever its tenant, for
// platform admins.
func (r *Repo) OperationAnyTenant(ctx context.Context, id string) (instance.Operation, error) {
	return r.operation(ctx, r.db.SQL(), anyTenant, id)
}

func (r *Repo) operation(ctx context.Context, q querier, tenant, id string) (instance.Operation, error) {
	if err := needTenant(tenant, "operation "+id); err != nil {
		return instance.Operation{}, err
	}
	query := "SELECT id, instance_id, tenant, type, state, step, started_at, finished_at, error, requested_by, step_detail FROM operations WHERE id = ?"
	args := []any{id}
	if tenant != anyTenant {
		query += " AND tenant = ?"
		args = append(args, tenant)
	}
	var op instance.Operation
	var fin sql.NullTime
	err := q.QueryRowContext(ctx, query, args...).Scan(&op.ID, &op.InstanceID, &op.Tenant, &op.Type, &op.State, &op.Step, &op.StartedAt, &fin, &op.Error, &op.RequestedBy, &op.StepDetail)
	if errors.Is(err, sql.ErrNoRows) {
		return op, fmt.Errorf("operation %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return op, fmt.Errorf("load operation %s: %w", id, err)
	}
	op.StartedAt = op.StartedAt.UTC()
	if fin.Valid {
		t := fin.Time.UTC()
		op.FinishedAt = &t
	}
	return op, nil
}

// now is the repository's timestamp precision (DATETIME(6)).
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
