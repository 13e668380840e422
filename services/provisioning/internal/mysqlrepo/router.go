package mysqlrepo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/canopy-platform/canopy/libs/store"

	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
)

// nullPort stores an unallocated router port as NULL.
func nullPort(p int) any {
	if p == 0 {
		return nil
	}
	return p
}

// allocateRouterPorts takes the lowest free pair of pr for instance id:
// one router_ports row per port, whose primary key refuses a port another
// transaction took first (errPortTaken: the caller retries).
func allocateRouterPorts(ctx context.Context, tx *sql.Tx, id string, pr instance.PortRange) (instance.RouterPorts, error) {
	rows, err := tx.QueryContext(ctx, "SELECT port FROM router_ports WHERE port BETWEEN ? AND ?", pr.Lo, pr.Hi)
	if err != nil {
		return instance.RouterPorts{}, fmt.Errorf("read router ports: %w", err)
	}
	used := map[int]bool{}
	for rows.Next() {
		var p int
		if err := rows.Scan(&p); err != nil {
			rows.Close()
			return instance.RouterPorts{}, err
		}
		used[p] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return instance.RouterPorts{}, fmt.Errorf("read router ports: %w", err)
	}
	ports, err := instance.AllocateRouterPorts(pr, used)
	if err != nil {
		return ports, err
	}
	_, err = tx.ExecContext(ctx, "INSERT INTO router_ports (port, instance_id) VALUES (?, ?), (?, ?)", ports.RW, id, ports.RO, id)
	if isDuplicateKey(err, "PRIMARY") {
		return instance.RouterPorts{}, fmt.Errorf("%w: %w", errPortTaken, err)
	}
	if err != nil {
		return instance.RouterPorts{}, fmt.Errorf("take router ports: %w", err)
	}
	return ports, nil
}

// WithoutRouterPorts returns the ids of live instances that have no router
// ports (created before the router or with it disabled), in id order.
func (r *Repo) WithoutRouterPorts(ctx context.Context) ([]string, error) {
	return r.ids(ctx, "SELECT id FROM instances WHERE state <> 'deleted' AND (router_rw_port IS NULL OR router_ro_port IS NULL) ORDER BY id")
}

// AssignRouterPorts gives live instance id the lowest free router port pair
// of pr, returning the instance and true; an instance that has ports or is
// deleted is returned unchanged with false. A full range wraps
// instance.ErrRouterPortsExhausted.
func (r *Repo) AssignRouterPorts(ctx context.Context, id string, pr instance.PortRange) (*instance.Instance, bool, error) {
	var (
		out      *instance.Instance
		assigned bool
		err      error
	)
	for attempt := 0; attempt < portRaceAttempts; attempt++ {
		out, assigned, err = r.assignRouterPorts(ctx, id, pr)
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	if err != nil {
		return nil, false, fmt.Errorf("router ports of instance %s: %w", id, err)
	}
	return out, assigned, nil
}

func (r *Repo) assignRouterPorts(ctx context.Context, id string, pr instance.PortRange) (*instance.Instance, bool, error) {
	var (
		out      *instance.Instance
		assigned bool
	)
	err := r.db.Tx(ctx, func(tx *store.Tx) error {
		in, _, err := r.load(ctx, tx.Tx, anyTenant, id, true)
		if err != nil {
			return err
		}
		out = in
		if in.State == instance.StateDeleted || in.Router.Allocated() {
			return nil
		}
		ports, err := allocateRouterPorts(ctx, tx.Tx, id, pr)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "UPDATE instances SET router_rw_port = ?, router_ro_port = ? WHERE id = ?", ports.RW, ports.RO, id)
		if isDuplicateKey(err, "instances_live_router") {
			return fmt.Errorf("%w: %w", errPortTaken, err)
		}
		if err != nil {
			return fmt.Errorf("record router ports: %w", err)
		}
		in.Router, assigned = ports, true
		return nil
	})
	return out, assigned, err
}

// ListRouted returns, across all tenants, up to limit live instances that
// have router ports, with ids after the cursor: the router's view.
func (r *Repo) ListRouted(ctx context.Context, after string, limit int) ([]*instance.Instance, error) {
	return r.list(ctx, "SELECT "+instanceColumns+
		" FROM instances WHERE id > ? AND state <> 'deleted' AND router_rw_port IS NOT NULL AND router_ro_port IS NOT NULL ORDER BY id LIMIT ?", after, limit)
}
