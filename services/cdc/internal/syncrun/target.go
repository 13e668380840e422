package syncrun

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
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
			return m.schema(ctx, src, db, table)
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
