package apply

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/oklog/ulid/v2"

	"github.com/canopy-platform/canopy/services/cdc/internal/change"
	"github.com/canopy-platform/canopy/services/cdc/internal/syncjob"
)

// latest is the source's value of the latest-wins column in a change.
type latest struct {
	ok    bool // the strategy is latest-wins and the table has the column
	value any
}

func latestValue(cfg Config, rc *change.RowChange, row []any) latest {
	if cfg.Strategy != syncjob.LatestWins {
		return latest{}
	}
	i := slices.Index(rc.Columns, cfg.Column)
	if i < 0 || i >= len(row) {
		return latest{}
	}
	return latest{ok: true, value: row[i]}
}

// probe is the target's row of a conflicting change.
type probe struct {
	found bool
	// row is the target row in the change's column order (text, nil NULL).
	row []any
	// same: the row equals the image probed with.
	same bool
	// cmp compares the source's latest-wins value with the target's:
	// 1 the source's is newer, -1 the target's, 0 a tie (NULL is oldest).
	cmp int
}

// probe reads (and locks) the target row with key, comparing it with image
// and, for latest-wins, the source's column value, in SQL so that every
// type compares as the server compares it.
func (a *Applier) probe(ctx context.Context, s *session, t *table, rc *change.RowChange, key, image []any, l latest) (probe, error) {
	var q strings.Builder
	q.WriteString("SELECT " + columnList(rc.Columns) + ", (" + imageWhere(rc.Columns) + ")")
	args := append([]any{}, image...)
	if l.ok {
		c := quote(a.cfg.Column)
		q.WriteString(", CASE WHEN ? IS NULL THEN IF(" + c + " IS NULL, 0, -1) WHEN " + c + " IS NULL THEN 1 WHEN ? > " + c +
			" THEN 1 WHEN ? < " + c + " THEN -1 ELSE 0 END")
		args = append(args, l.value, l.value, l.value)
	}
	q.WriteString(" FROM " + t.quoted + " WHERE " + keyWhere(rc) + " FOR UPDATE")
	args = append(args, key...)
	st, err := s.stmt(ctx, q.String())
	if err != nil {
		return probe{}, fmt.Errorf("read target row of %s: %w", t.name, err)
	}
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return probe{}, fmt.Errorf("read target row of %s: %w", t.name, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return probe{}, fmt.Errorf("read target row of %s: %w", t.name, err)
		}
		return probe{}, nil
	}
	n := len(rc.Columns)
	raw := make([]sql.RawBytes, n)
	dest := make([]any, 0, n+2)
	for i := range raw {
		dest = append(dest, &raw[i])
	}
	var same int64
	var cmp sql.NullInt64
	dest = append(dest, &same)
	if l.ok {
		dest = append(dest, &cmp)
	}
	if err := rows.Scan(dest...); err != nil {
		return probe{}, fmt.Errorf("read target row of %s: %w", t.name, err)
	}
	p := probe{found: true, row: make([]any, n), same: same == 1, cmp: int(cmp.Int64)}
	for i, r := range raw {
		if r != nil {
			p.row[i] = []byte(slices.Clone(r))
		}
	}
	return p, rows.Close()
}

// decide says whether the source's change wins a conflict, and the
// resolution recorded.
func (a *Applier) decide(p probe) (bool, syncjob.Resolution) {
	switch a.cfg.Strategy {
	case syncjob.SourceWins:
		return true, syncjob.ResolvedSource
	case syncjob.TargetWins:
		return false, syncjob.ResolvedTarget
	case syncjob.LatestWins:
		// A change against a row the target no longer has is newer than
		// the delete it never saw; both directions decide so and converge.
		win := !p.found || p.cmp > 0 || (p.cmp == 0 && a.cfg.SourceFirst)
		if win {
			return true, syncjob.ResolvedSource
		}
		return false, syncjob.ResolvedTarget
	default:
		return false, syncjob.ResolvedPending
	}
}

// conflict decides a conflicting change, applies it if the source wins,
// and records it.
func (a *Applier) conflict(ctx context.Context, s *session, t *table, m change.Message, kind syncjob.ConflictKind, p probe, st *syncjob.Stats) error {
	rc := m.Change
	win, res := a.decide(p)
	if a.reconcile {
		// Catch-up after a resumed load: the target holds a later state
		// of the source's own row, not a change of its own.
		win, res = true, syncjob.ResolvedSource
	}
	if kind == syncjob.KindMissing && rc.Op == "d" && res != syncjob.ResolvedPending {
		// Nothing to delete: either way the row is gone.
		win = false
	}
	if a.reconcile {
		if win {
			if err := a.force(ctx, s, t, rc); err != nil {
				return err
			}
			countApplied(st, t, 1)
		}
		return nil
	}
	if win {
		if err := a.force(ctx, s, t, rc); err != nil {
			return err
		}
		countApplied(st, t, 1)
	}
	c, err := a.newConflict(m, kind, p, res)
	if err != nil {
		return err
	}
	if err := a.cfg.Conflicts.Record(ctx, c); err != nil {
		return fmt.Errorf("record conflict on %s at %s/%d: %w", t.name, m.GTID, m.Row, err)
	}
	st.Conflicts++
	a.log.Info("sync conflict", "table", t.name, "kind", kind, "gtid", m.GTID, "row", m.Row, "resolution", res)
	return nil
}

func (a *Applier) newConflict(m change.Message, kind syncjob.ConflictKind, p probe, res syncjob.Resolution) (syncjob.Conflict, error) {
	rc := m.Change
	keyRow := rc.After
	if rc.Op == "u" || rc.Op == "d" {
		keyRow = rc.Before
	}
	key, err := encodeObject(keyNames(rc), keyValues(rc, keyRow))
	if err != nil {
		return syncjob.Conflict{}, fmt.Errorf("conflict key: %w", err)
	}
	ch, err := EncodeChange(*rc)
	if err != nil {
		return syncjob.Conflict{}, err
	}
	target := json.RawMessage("null")
	if p.found {
		if target, err = encodeObject(rc.Columns, p.row); err != nil {
			return syncjob.Conflict{}, fmt.Errorf("conflict target row: %w", err)
		}
	}
	at := a.now().UTC()
	c := syncjob.Conflict{
		ID: ulid.Make().String(), JobID: a.cfg.JobID, Tenant: a.cfg.Tenant, From: a.cfg.From, To: a.cfg.To,
		DB: rc.DB, Table: rc.Table, Kind: kind, Key: key, Change: ch, TargetRow: target,
		GTID: m.GTID, Row: m.Row, Strategy: a.cfg.Strategy, Resolution: res, At: at,
	}
	if res != syncjob.ResolvedPending {
		c.ResolvedAt = &at
	}
	return c, nil
}

func keyNames(rc *change.RowChange) []string {
	names := make([]string, len(rc.Key))
	for i, k := range rc.Key {
		names[i] = rc.Columns[k]
	}
	return names
}

// Resolve settles a conflict: with source, the stored change is forced onto
// the target (in its own transaction, with the job's server id); with
// target, the target row stays as it is.
func (a *Applier) Resolve(ctx context.Context, c syncjob.Conflict, use syncjob.Resolution) error {
	switch use {
	case syncjob.ResolvedTarget:
		return nil
	case syncjob.ResolvedSource:
	default:
		return fmt.Errorf("resolve conflict %s: unknown resolution %q", c.ID, use)
	}
	rc, err := DecodeChange(c.Change)
	if err != nil {
		return fmt.Errorf("resolve conflict %s: %w", c.ID, err)
	}
	t, err := a.table(ctx, &rc)
	if err != nil {
		return fmt.Errorf("resolve conflict %s: %w", c.ID, err)
	}
	conn, err := a.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("resolve conflict %s: connect to %s: %w", c.ID, a.cfg.Target.Addr, err)
	}
	s := newSession(conn)
	defer func() {
		s.close()
		closeConn(conn)
	}()
	tx := func() error {
		if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
			return err
		}
		if err := a.force(ctx, s, t, &rc); err != nil {
			return err
		}
		_, err := conn.ExecContext(ctx, "COMMIT")
		return err
	}
	if err := tx(); err != nil {
		return fmt.Errorf("resolve conflict %s on %s: %w", c.ID, a.cfg.Target.Addr, err)
	}
	a.log.Info("conflict resolved", "conflict", c.ID, "use", use)
	return nil
}
