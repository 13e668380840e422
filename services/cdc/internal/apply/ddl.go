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
		if _, err := a.sess.conn.ExecContext(ctx, "USE "+quote(sc.DB)); err != nil {
			return &DDLError{Statement: sc.Statement, Err: fmt.Errorf("use %s on %s: %w", sc.DB, a.cfg.Target.Addr, err)}
		}
	}
	if _, err := a.sess.conn.ExecContext(ctx, sc.Statement); err != nil {
		return &DDLError{Statement: sc.Statement, Err: fmt.Errorf("replay on %s: %w", a.cfg.Target.Addr, err)}
	}
	a.log.Info("DDL replayed", "db", sc.DB, "table", sc.Table, "gtid", m.GTID)
	pos := mergePosition(a.running, m.GTID)
	if _, err := a.sess.exec(ctx, upsertWatermark, a.cfg.JobID, a.cfg.From, pos, nil, 0); err != nil {
		return fmt.Errorf("write watermark after DDL: %w", err)
	}
	a.pos, a.running = pos, pos
	return a.begin(ctx)
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
