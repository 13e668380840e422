package apply

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/canopy-platform/canopy/services/cdc/internal/change"
	"github.com/canopy-platform/canopy/services/cdc/internal/syncjob"
)

// ddl handles a schema change. DDL commits implicitly, so the changes
// before it are committed first with the watermark just before the
// statement; after a replay the watermark moves past it at once, leaving
// only the moment between the two where a crash would replay it again.
func (a *Applier) ddl(ctx context.Context, m change.Message, done *syncjob.Stats) error {
	sc := m.Schema
	if err := a.commit(ctx, a.running, nil, done); err != nil {
		return err
	}
	if a.cfg.DDL != syncjob.DDLReplay {
		a.log.Warn("DDL stops the job", "db", sc.DB, "table", sc.Table, "gtid", m.GTID)
		return &DDLError{Statement: sc.Statement, Err: ErrDDLStopped}
	}
	// Prepared statements of the table would describe its old shape.
	a.sess.close()
	a.forget(sc.DB, sc.Table)
	if sc.DB != "" {
		for _, q := range []string{"CREATE DATABASE IF NOT EXISTS " + quote(sc.DB), "USE " + quote(sc.DB)} {
			if _, err := a.sess.conn.ExecContext(ctx, q); err != nil {
				return &DDLError{Statement: sc.Statement, Err: fmt.Errorf("%s on %s: %w", q, a.cfg.Target.Addr, err)}
			}
		}
	}
	_, err := a.sess.conn.ExecContext(ctx, sc.Statement)
	switch {
	case err == nil:
		a.log.Info("DDL replayed", "db", sc.DB, "table", sc.Table, "gtid", m.GTID)
	case alreadyApplied(err):
		// The target has this schema already: a table created from the
		// source's current schema (which includes later DDL), or a replay
		// whose watermark a crash lost.
		a.log.Warn("DDL already in effect on the target", "db", sc.DB, "table", sc.Table, "gtid", m.GTID, "err", err)
	default:
		return &DDLError{Statement: sc.Statement, Err: fmt.Errorf("replay on %s: %w", a.cfg.Target.Addr, err)}
	}
	pos := mergePosition(a.running, m.GTID)
	if _, err := a.sess.exec(ctx, upsertWatermark, a.cfg.JobID, a.cfg.From, pos, nil, 0); err != nil {
		return fmt.Errorf("write watermark after DDL: %w", err)
	}
	a.pos, a.running = pos, pos
	return a.begin(ctx)
}

// alreadyApplied says whether a replayed DDL failed only because its
// effect is there: the table, column, key or database exists, or what it
// drops is gone.
func alreadyApplied(err error) bool {
	for _, code := range []uint16{
		1007, // ER_DB_CREATE_EXISTS
		1008, // ER_DB_DROP_EXISTS
		1050, // ER_TABLE_EXISTS_ERROR
		1051, // ER_BAD_TABLE_ERROR
		1060, // ER_DUP_FIELDNAME
		1061, // ER_DUP_KEYNAME
		1091, // ER_CANT_DROP_FIELD_OR_KEY
	} {
		if isCode(err, code) {
			return true
		}
	}
	return false
}

// mergePosition returns pos (domain-server-seq per domain) with gtid's
// domain set to gtid.
func mergePosition(pos, gtid string) string {
	gtid = strings.TrimSpace(gtid)
	if gtid == "" || strings.Contains(gtid, ",") {
		return pos
	}
	dom, _, ok := strings.Cut(gtid, "-")
	if !ok {
		return pos
	}
	byDomain := map[uint64]string{}
	for _, part := range strings.Split(pos, ",") {
		part = strings.TrimSpace(part)
		d, _, ok := strings.Cut(part, "-")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(d, 10, 32); err == nil {
			byDomain[n] = part
		}
	}
	n, err := strconv.ParseUint(dom, 10, 32)
	if err != nil {
		return pos
	}
	byDomain[n] = gtid
	doms := make([]uint64, 0, len(byDomain))
	for d := range byDomain {
		doms = append(doms, d)
	}
	sort.Slice(doms, func(i, j int) bool { return doms[i] < doms[j] })
	parts := make([]string, len(doms))
	for i, d := range doms {
		parts[i] = byDomain[d]
	}
	return strings.Join(parts, ",")
}
