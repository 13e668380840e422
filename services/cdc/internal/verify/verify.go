// Package verify checks that a sync job's target holds the same rows as its
// source: per primary-key chunk it compares a checksum computed in SQL on
// both sides (so rows never cross the network unless a chunk differs),
// rechecks differing chunks after the job caught up with the source so that
// changes still in flight are not reported, drills down to the differing
// rows and, when asked, repairs them from the source.
package verify

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/canopy-platform/canopy/services/cdc/internal/capture"
	"github.com/canopy-platform/canopy/services/cdc/internal/syncjob"
)

// Defaults of Config. Chunks of 10000 rows rather than 1000: the fixed
// cost of a query (and of a chunk bound) then stops showing while a
// differing chunk's drill-down (10000 keys and checksums per side) stays
// cheap (BenchmarkVerify: 1000-row chunks check a third fewer rows/s).
const (
	DefaultChunkSize = 10000
	DefaultParallel  = 4
	DefaultRechecks  = 3
)

// maxListed bounds the differences a TableReport lists; DifferingRows
// still counts them all and a repair still fixes them all.
const maxListed = 1000

// The kinds of a syncjob.RowDiff.
const (
	MissingOnTarget = "missing_on_target"
	ExtraOnTarget   = "extra_on_target"
	Different       = "different"
)

// Config is one verification of a job's tables.
type Config struct {
	// Source is the source node, Target the target primary (canopy_cdc
	// account on both).
	Source, Target capture.Source
	// Tables are "db.table", each with a primary key, or "db.*" for every
	// base table of db on the source.
	Tables []string
	// TargetDB maps a source database to the target's (nil: same name).
	TargetDB func(db string) string
	// ChunkSize is the rows per checksummed chunk (default 10000).
	ChunkSize int
	// Parallel is the chunks checked at once (default 4).
	Parallel int
	// Settle returns once the job applied the source up to pos
	// (@@gtid_binlog_pos of the source read when a chunk was found
	// differing); nil means do not wait (one-shot compare).
	Settle func(ctx context.Context, pos string) error
	// Rechecks is how often a difference is checked again after Settle
	// before it is reported (default 3).
	Rechecks int
	// Repair re-copies differing rows from the source.
	Repair bool
	// RepairServerID is the session server_id of repair writes, so the
	// job's own captures skip them.
	RepairServerID uint32
	Logger         *slog.Logger
}

// Run verifies cfg.Tables and, with cfg.Repair, repairs what differs. An
// error means the verification could not finish (a node, a missing table,
// Settle failed); differences are not errors but the Report's content.
func Run(ctx context.Context, cfg Config) (syncjob.Report, error) {
	start := time.Now()
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = DefaultChunkSize
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = DefaultParallel
	}
	if cfg.Rechecks <= 0 {
		cfg.Rechecks = DefaultRechecks
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	src, err := open(cfg.Source, cfg.Parallel+2)
	if err != nil {
		return syncjob.Report{}, err
	}
	defer src.Close()
	tgt, err := open(cfg.Target, cfg.Parallel+2)
	if err != nil {
		return syncjob.Report{}, err
	}
	defer tgt.Close()
	v := &verifier{cfg: cfg, src: src, tgt: tgt, log: cfg.Logger}
	rep := syncjob.Report{Tables: []syncjob.TableReport{}, Consistent: true}
	tables, err := v.expand(ctx, cfg.Tables)
	if err != nil {
		return syncjob.Report{}, err
	}
	for _, name := range tables {
		tr, st, err := v.table(ctx, name)
		if err != nil {
			return syncjob.Report{}, err
		}
		rep.Tables = append(rep.Tables, tr)
		rep.Chunks += tr.Chunks
		rep.RowsChecked += tr.RowsChecked
		rep.DifferingRows += st.differing
		rep.Repaired += st.repaired
		rep.Rechecked += st.rechecked
	}
	rep.Consistent = rep.DifferingRows == rep.Repaired
	rep.DurationMs = time.Since(start).Milliseconds()
	cfg.Logger.Info("verification done", "tables", len(tables), "chunks", rep.Chunks, "rows", rep.RowsChecked,
		"differing", rep.DifferingRows, "repaired", rep.Repaired, "rechecked", rep.Rechecked, "ms", rep.DurationMs)
	return rep, nil
}

// open connects to a node with sessions reading temporal values in UTC on
// both sides alike. Arguments are interpolated: a checksum query is one
// round trip, not a prepare, execute and close.
func open(s capture.Source, conns int) (*sql.DB, error) {
	mc := mysql.NewConfig()
	mc.User, mc.Passwd, mc.Net, mc.Addr = s.User, s.Password, "tcp", s.Addr
	mc.Timeout = 10 * time.Second
	mc.InterpolateParams = true
	mc.Params = map[string]string{"time_zone": "'+00:00'"}
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("verify connect to %s: %w", s.Addr, err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	return db, nil
}

type verifier struct {
	cfg      Config
	src, tgt *sql.DB
	log      *slog.Logger
}

// tableStats are a table's counters that the TableReport does not hold.
type tableStats struct{ differing, repaired, rechecked int64 }

// table verifies one table.
func (v *verifier) table(ctx context.Context, name string) (syncjob.TableReport, tableStats, error) {
	tr := syncjob.TableReport{Table: name, Differences: []syncjob.RowDiff{}}
	var st tableStats
	t, err := loadTable(ctx, v.src, name)
	if err != nil {
		return tr, st, err
	}
	if v.cfg.TargetDB != nil {
		t.tdb = v.cfg.TargetDB(t.db)
		t.build()
	}
	chunks, err := v.scan(ctx, t)
	if err != nil {
		return tr, st, err
	}
	tr.Chunks = int64(len(chunks))
	var diff []*chunk
	for _, c := range chunks {
		tr.RowsChecked += max(c.src.count, c.tgt.count)
		if c.differs() {
			diff = append(diff, c)
		}
	}
	if len(diff) > 0 {
		v.log.Info("chunks differ", "table", name, "chunks", len(diff))
	}
	// A chunk may differ only because the job has not applied the latest
	// source changes yet: wait until it has, and look again.
	rechecked := map[int]bool{}
	for r := 0; r < v.cfg.Rechecks && len(diff) > 0 && v.cfg.Settle != nil; r++ {
		if err := v.settle(ctx); err != nil {
			return tr, st, err
		}
		for _, c := range diff {
			rechecked[c.idx] = true
		}
		if err := v.check(ctx, t, diff); err != nil {
			return tr, st, err
		}
		diff = slices.DeleteFunc(diff, func(c *chunk) bool { return !c.differs() })
	}
	st.rechecked = int64(len(rechecked))
	var rows []rowDiff
	for _, c := range diff {
		ps, err := v.pieces(ctx, t, c)
		if err != nil {
			return tr, st, err
		}
		for _, p := range ps {
			d, err := v.rowDiffs(ctx, t, p)
			if err != nil {
				return tr, st, err
			}
			rows = append(rows, d...)
		}
	}
	// A busy chunk may differ at every look while each of its rows is
	// only in flight: a row is reported only if it still differs after
	// the job caught up, every time.
	for r := 0; r < v.cfg.Rechecks && len(rows) > 0 && v.cfg.Settle != nil; r++ {
		if err := v.settle(ctx); err != nil {
			return tr, st, err
		}
		if rows, err = v.recheckRows(ctx, t, rows); err != nil {
			return tr, st, err
		}
	}
	st.differing = int64(len(rows))
	if v.cfg.Repair && len(rows) > 0 {
		if err := v.repair(ctx, t, rows); err != nil {
			return tr, st, err
		}
	}
	for _, d := range rows {
		if d.repaired {
			st.repaired++
		}
		if len(tr.Differences) < maxListed {
			tr.Differences = append(tr.Differences, syncjob.RowDiff{Key: t.keyJSON(d.key), Kind: d.kind, Repaired: d.repaired})
		}
	}
	if len(rows) > 0 {
		v.log.Warn("rows differ", "table", name, "rows", len(rows), "repaired", st.repaired)
	}
	return tr, st, nil
}

// syncSchema holds the sync jobs' watermarks on a target.
const syncSchema = "_canopy_sync"

// expand replaces each "db.*" by the source's base tables of db.
func (v *verifier) expand(ctx context.Context, names []string) ([]string, error) {
	var out []string
	for _, name := range names {
		if strings.HasPrefix(name, syncSchema+".") {
			continue // the jobs' own bookkeeping is never verified
		}
		db, ok := strings.CutSuffix(name, ".*")
		if !ok {
			out = append(out, name)
			continue
		}
		rows, err := v.src.QueryContext(ctx, `SELECT TABLE_NAME FROM information_schema.TABLES
			WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME`, db)
		if err != nil {
			return nil, fmt.Errorf("tables of %s on %s: %w", db, v.cfg.Source.Addr, err)
		}
		for rows.Next() {
			var t string
			if err := rows.Scan(&t); err != nil {
				rows.Close()
				return nil, fmt.Errorf("tables of %s on %s: %w", db, v.cfg.Source.Addr, err)
			}
			out = append(out, db+"."+t)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("tables of %s on %s: %w", db, v.cfg.Source.Addr, err)
		}
	}
	return out, nil
}

// settle waits until the job applied the source as it is now.
func (v *verifier) settle(ctx context.Context) error {
	var pos string
	if err := v.src.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&pos); err != nil {
		return fmt.Errorf("source position on %s: %w", v.cfg.Source.Addr, err)
	}
	if err := v.cfg.Settle(ctx, pos); err != nil {
		return fmt.Errorf("settle at %s: %w", pos, err)
	}
	return nil
}

// both runs f on the source and the target at once (f is told which side
// it reads, 0 source or 1 target, and the node's address).
func (v *verifier) both(f func(db *sql.DB, side int, addr string) error) error {
	var wg sync.WaitGroup
	var tErr error
	wg.Go(func() { tErr = f(v.tgt, 1, v.cfg.Target.Addr) })
	sErr := f(v.src, 0, v.cfg.Source.Addr)
	wg.Wait()
	if sErr != nil {
		return sErr
	}
	return tErr
}
