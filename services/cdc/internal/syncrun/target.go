package syncrun

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/canopy-platform/canopy/services/cdc/internal/change"
	"strings"
	"time"

	"github.com/canopy-platform/canopy/services/cdc/internal/capture"
	"github.com/canopy-platform/canopy/services/cdc/internal/pipeline"
	"github.com/canopy-platform/canopy/services/cdc/internal/provview"
	"github.com/canopy-platform/canopy/services/cdc/internal/syncjob"
)

// errNoPrimary: the instance has no primary to write to now (a failover
// is under way); the direction retries.
var errNoPrimary = errors.New("no primary to write to")

// route is one direction of a job: changes of from are applied to to.
type route struct {
	from, to string
	forward  bool
	redis    bool
}

// tables are the table patterns of the route's source side: the job's own
// for the forward route, the same tables under the target's database for
// the reverse one.
func (r route) tables(sp syncjob.Spec) []string {
	if r.forward {
		return sp.Tables
	}
	out := make([]string, len(sp.Tables))
	for i, p := range sp.Tables {
		db, t, _ := strings.Cut(p, ".")
		out[i] = sp.TargetDB(db) + "." + t
	}
	return out
}

// targetDB maps a database of the route's source to its target's; nil when
// both sides use the same names.
func (r route) targetDB(sp syncjob.Spec) func(string) string {
	switch {
	case sp.Target.Database == "":
		return nil
	case r.forward:
		return sp.TargetDB
	default:
		return sp.SourceDB
	}
}

// sourceDB is targetDB backwards: the route's source database of a target
// database (where to read a missing table's definition).
func (r route) sourceDB(sp syncjob.Spec) func(string) string {
	switch {
	case sp.Target.Database == "":
		return func(db string) string { return db }
	case r.forward:
		return sp.SourceDB
	default:
		return sp.TargetDB
	}
}

// renamed is b with its changes' databases mapped by f (nil: b itself).
func renamed(b change.Batch, f func(string) string) change.Batch {
	if f == nil || len(b.Messages) == 0 {
		return b
	}
	msgs := make([]change.Message, len(b.Messages))
	for i, m := range b.Messages {
		if m.Change != nil {
			rc := *m.Change
			rc.DB = f(rc.DB)
			m.Change = &rc
		}
		if m.Schema != nil {
			sc := *m.Schema
			sc.DB = f(sc.DB)
			m.Schema = &sc
		}
		msgs[i] = m
	}
	b.Messages = msgs
	return b
}

// directionsOf returns the job's directions, source → target first.
func directionsOf(j syncjob.Job) []route {
	sp := j.Spec
	if sp.Target.RedisInstance != "" {
		return []route{{from: sp.SourceInstance, to: sp.Target.RedisInstance, forward: true, redis: true}}
	}
	out := []route{{from: sp.SourceInstance, to: sp.Target.Instance, forward: true}}
	if sp.Direction == syncjob.TwoWay {
		out = append(out, route{from: sp.Target.Instance, to: sp.SourceInstance})
	}
	return out
}

// primaryOf is the instance's primary node.
func primaryOf(in provview.Instance) (provview.Node, error) {
	for _, n := range in.Nodes {
		if n.Role == provview.RolePrimary && n.Address != "" {
			return n, nil
		}
	}
	return provview.Node{}, fmt.Errorf("instance %s: %w", in.ID, errNoPrimary)
}

// openDirection opens the applier of a direction on the current primary
// of its target instance.
func (m *Manager) openDirection(ctx context.Context, j syncjob.Job, r route) (Target, error) {
	in, err := m.nodes.Instance(ctx, r.to)
	if err != nil {
		return nil, fmt.Errorf("resolve target %s: %w", r.to, err)
	}
	p, err := primaryOf(in)
	if err != nil {
		return nil, err
	}
	log := m.logger.With("job_id", j.ID, "tenant", j.Tenant, "from", r.from, "to", r.to)
	if r.redis {
		t := j.Spec.Target
		tgt, err := m.openRedis(ctx, RedisTarget{JobID: j.ID, Tenant: j.Tenant, From: r.from, Addr: p.Address,
			Username: in.CDC.Username, Password: in.CDC.Password, KeyPattern: t.KeyPattern, Format: t.Format,
			TTL: time.Duration(t.TTL), SourceDB: func(ctx context.Context) (*sql.DB, error) { return m.sourceDB(ctx, r.from) },
			Logger: log})
		if err != nil {
			return nil, fmt.Errorf("open redis target %s (%s): %w", r.to, p.Address, err)
		}
		return tgt, nil
	}
	tgt, err := m.openMySQL(ctx, m.mysqlTarget(j, r, capture.Source{Addr: p.Address, User: in.CDC.Username,
		Password: in.CDC.Password}))
	if err != nil {
		return nil, fmt.Errorf("open mysql target %s (%s): %w", r.to, p.Address, err)
	}
	return tgt, nil
}

func (m *Manager) mysqlTarget(j syncjob.Job, r route, target capture.Source) MySQLTarget {
	return MySQLTarget{JobID: j.ID, Tenant: j.Tenant, From: r.from, To: r.to, Target: target, ServerID: j.ServerID,
		Strategy: j.Spec.Conflict, Column: j.Spec.Column,
		// Both directions decide a latest-wins tie alike: the instance whose
		// id sorts first wins, whichever way the change flows.
		SourceFirst: r.from < r.to,
		DDL:         j.Spec.DDL, Conflicts: m.repo,
		Logger: m.logger.With("job_id", j.ID, "tenant", j.Tenant, "from", r.from, "to", r.to),
		Schema: func(ctx context.Context, db, table string) (string, error) {
			src, err := m.sourceNode(ctx, r.from)
			if err != nil {
				return "", err
			}
			return m.schema(ctx, src, r.sourceDB(j.Spec)(db), table)
		}}
}

// sourceNode resolves a node to read an instance's schema from. Such reads
// are rare (a table missing on the target, a new table in a cache load):
// the node is resolved on each call rather than held.
func (m *Manager) sourceNode(ctx context.Context, id string) (capture.Source, error) {
	in, err := m.nodes.Instance(ctx, id)
	if err != nil {
		return capture.Source{}, fmt.Errorf("resolve source %s: %w", id, err)
	}
	n, err := pipeline.PickSource(in, "", "")
	if err != nil {
		return capture.Source{}, err
	}
	return capture.Source{Addr: n.Address, User: in.CDC.Username, Password: in.CDC.Password}, nil
}

func (m *Manager) sourceDB(ctx context.Context, id string) (*sql.DB, error) {
	src, err := m.sourceNode(ctx, id)
	if err != nil {
		return nil, err
	}
	return m.dbs.db(src)
}

// systemSchemas are never synced, whatever the job's tables say; the
// watermarks' own schema among them.
var systemSchemas = map[string]bool{"mysql": true, "information_schema": true, "performance_schema": true, "sys": true,
	"_canopy_sync": true}

// includes returns the job's table filter: "db.table" or "db.*" patterns.
func includes(tables []string) func(db, table string) bool {
	return func(db, table string) bool {
		if systemSchemas[strings.ToLower(db)] {
			return false
		}
		for _, p := range tables {
			pd, pt, ok := strings.Cut(p, ".")
			if ok && pd == db && (pt == "*" || pt == table) {
				return true
			}
		}
		return false
	}
}
