package cdcbench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/services/cdc/internal/gtidpos"
	"github.com/canopy-platform/canopy/services/cdc/internal/provview"
	"github.com/canopy-platform/canopy/services/cdc/internal/syncjob"
	"github.com/canopy-platform/canopy/services/cdc/internal/syncrun"
)

// syncApplyGoal is issue 14's: job rows/s ÷ raw multi-row INSERT rows/s
// into the same target.
const syncApplyGoal = 0.5

// The instance ids the benchmark's job names; benchNodes resolves them.
const (
	syncSourceID = "src"
	syncTargetID = "dst"
	// syncPeerDB is the target's database of the peer leg's tables, apart
	// from the job's (it syncs app.* tables only).
	syncPeerDB = "peer"
)

// BenchmarkSyncApply measures a one-way sync job's apply rate on real
// nodes next to its peer, in the same run and on the same target node:
// CANOPY_BENCH_SYNC_ROWS orders (default 200000) as multi-row INSERT
// statements of CANOPY_BENCH_SYNC_STMT_ROWS rows (default 1000), each its
// own transaction.
//
// Per iteration, on fresh tables: a syncrun.Manager with the real parts
// (decoded capture, apply) creates the job (initial_load false, so its
// watermark on the target is the source's end before the load) and is
// stopped; the rows are loaded into the source (not timed); the peer leg
// runs the same statements, same rows, into an identical table on the
// target (TCP, the canopy_cdc account, as the applier connects) and is
// timed; then a new Manager starts the job and the job leg is timed from
// that start until the watermark the target holds covers the source's
// position after the load. The job so drains a backlog of the whole load:
// streaming while loading would cap its rate at the source's write rate and
// say nothing of what apply can do. Both target tables are compared with
// the source's (count and checksum) after each iteration.
//
// Both nodes commit durably, as tenant nodes do (sync_binlog=1,
// innodb_flush_log_at_trx_commit=1); the job's commits are its own (it
// coalesces queued changes into transactions of up to 5000 rows, the
// service's default), the peer's are the statements'.
func BenchmarkSyncApply(b *testing.B) {
	rows := int64(envInt(b, "CANOPY_BENCH_SYNC_ROWS", 200_000))
	stmtRows := int64(envInt(b, "CANOPY_BENCH_SYNC_STMT_ROWS", 1000))
	src := startMariaDB(b, 1)
	dst := startMariaDB(b, 2)
	ctx := b.Context()
	if _, err := dst.root.ExecContext(ctx, "CREATE DATABASE "+syncPeerDB); err != nil {
		b.Fatal(err)
	}
	// The same statements for every iteration and both legs: the rows'
	// created_at is fixed here, so the two legs write equal rows.
	load := newOrderLoad(rows, stmtRows, time.Now())
	peer, err := openCDC(dst)
	if err != nil {
		b.Fatal(err)
	}
	defer peer.Close()

	var peerTime, jobTime time.Duration
	var total int64
	iter := 0
	for b.Loop() {
		iter++
		table := fmt.Sprintf("orders_%d", iter)
		jobTable, peerTable := benchDB+"."+table, syncPeerDB+"."+table
		for _, s := range []struct {
			n *node
			t string
		}{{src, jobTable}, {dst, jobTable}, {dst, peerTable}} {
			if _, err := s.n.root.ExecContext(ctx, ordersDDL(s.t)); err != nil {
				b.Fatalf("create %s: %v", s.t, err)
			}
		}
		j := syncjob.Job{ID: fmt.Sprintf("bench%d", iter), Tenant: "bench", State: syncjob.StateRunning,
			ServerID: 0x7d000000 | uint32(iter), Spec: syncjob.Spec{SourceInstance: syncSourceID,
				Tables: []string{jobTable}, Target: syncjob.Target{Instance: syncTargetID}, Conflict: syncjob.SourceWins,
				Direction: syncjob.OneWay, DDL: syncjob.DDLStop, InitialLoad: new(false)}}
		r := newBenchRepo(j)
		nodes := benchNodes{syncSourceID: syncInstance(syncSourceID, src), syncTargetID: syncInstance(syncTargetID, dst)}

		// The job's watermark goes on the target before the load: with
		// nothing applied and nothing to load, a direction stores the
		// source's current end first.
		before, err := src.position(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := runJobUntil(ctx, r, nodes, dst, j, before); err != nil {
			b.Fatalf("create the job's watermark: %v", err)
		}

		if err := load.run(ctx, src.root, jobTable); err != nil {
			b.Fatalf("load the source: %v", err)
		}
		after, err := src.position(ctx)
		if err != nil {
			b.Fatal(err)
		}

		start := time.Now()
		if err := load.run(ctx, peer, peerTable); err != nil {
			b.Fatalf("peer leg: %v", err)
		}
		pd := time.Since(start)

		jd, err := runJobUntil(ctx, r, nodes, dst, j, after)
		if err != nil {
			b.Logf("sync apply: peer %.0f rows/s; job leg failed", rate(rows, pd))
			b.Fatalf("job leg: %v", err)
		}

		if err := sameOrders(ctx, src, jobTable, rows, dst, jobTable, peerTable); err != nil {
			b.Fatal(err)
		}
		applied, err := appliedRows(ctx, dst, j.ID)
		if err != nil {
			b.Fatal(err)
		}
		if applied != rows || r.conflictCount() != 0 {
			b.Fatalf("the job applied %d rows with %d conflicts; the load wrote %d rows", applied, r.conflictCount(), rows)
		}
		b.Logf("run %d: peer %s (%.0f rows/s), job %s (%.0f rows/s), ratio %.2f; binlog range %s → %s",
			iter, pd.Round(time.Millisecond), rate(rows, pd), jd.Round(time.Millisecond), rate(rows, jd),
			pd.Seconds()/jd.Seconds(), before, after)
		peerTime, jobTime, total = peerTime+pd, jobTime+jd, total+rows

		// Fresh tables next time; the dropped ones free the nodes' memory.
		for _, s := range []struct {
			n *node
			t string
		}{{src, jobTable}, {dst, jobTable}, {dst, peerTable}} {
			if _, err := s.n.root.ExecContext(ctx, "DROP TABLE "+s.t); err != nil {
				b.Fatalf("drop %s: %v", s.t, err)
			}
		}
	}

	peerRate, jobRate := rate(total, peerTime), rate(total, jobTime)
	ratio := jobRate / peerRate
	b.ReportMetric(jobRate, "job-rows/s")
	b.ReportMetric(peerRate, "peer-rows/s")
	b.ReportMetric(ratio, "ratio")
	verdict := "meets"
	if ratio < syncApplyGoal {
		verdict = "MISSES"
	}
	b.Logf("sync apply: job %.0f rows/s, raw multi-row INSERTs (%d rows each) %.0f rows/s, ratio %.2f (goal ≥ %.2f: %s) over %d rows × %d runs",
		jobRate, stmtRows, peerRate, ratio, syncApplyGoal, verdict, rows, iter)
}

// openCDC is one TCP connection to the node as canopy_cdc, the way the
// applier reaches a target.
func openCDC(n *node) (*sql.DB, error) {
	mc := mysql.NewConfig()
	mc.User, mc.Passwd, mc.Net, mc.Addr = cdcUser, cdcPassword, "tcp", n.proc.Addr
	mc.Timeout = 10 * time.Second
	c, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", n.proc.Addr, err)
	}
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(1)
	return db, nil
}

// ordersDDL is the orders table of the CDC benchmarks under another name.
func ordersDDL(table string) string {
	return "CREATE TABLE " + table + ` (
		id BIGINT PRIMARY KEY,
		customer VARCHAR(32) NOT NULL,
		amount DECIMAL(12,2) NOT NULL,
		status ENUM('new','paid','shipped','cancelled') NOT NULL,
		created_at DATETIME(3) NOT NULL,
		note TEXT
	) ENGINE=InnoDB`
}

// orderLoad is the VALUES lists of a load's multi-row INSERTs, built once
// so every leg sends the same statements.
type orderLoad struct{ values []string }

func newOrderLoad(rows, stmtRows int64, at time.Time) orderLoad {
	var l orderLoad
	for first := int64(1); first <= rows; first += stmtRows {
		var sb strings.Builder
		for id := first; id < min(first+stmtRows, rows+1); id++ {
			if id > first {
				sb.WriteByte(',')
			}
			appendOrder(&sb, id, at)
		}
		l.values = append(l.values, sb.String())
	}
	return l
}

// run sends the statements into table, each its own (autocommit)
// transaction.
func (l orderLoad) run(ctx context.Context, db execer, table string) error {
	head := "INSERT INTO " + table + " (id, customer, amount, status, created_at, note) VALUES "
	for i, v := range l.values {
		if _, err := db.ExecContext(ctx, head+v); err != nil {
			return fmt.Errorf("insert statement %d into %s: %w", i+1, table, err)
		}
	}
	return nil
}

// runJobUntil runs a Manager with the real parts over the job until the
// watermark the target holds covers pos, then stops it. It returns the
// time from the Manager's start to that moment.
func runJobUntil(ctx context.Context, r *benchRepo, nodes benchNodes, dst *node, j syncjob.Job, pos string) (time.Duration, error) {
	want, err := gtidpos.Parse(pos)
	if err != nil {
		return 0, err
	}
	m, err := syncrun.New(syncrun.Config{}, r, nodes, syncLogger(), prometheus.NewRegistry())
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithCancel(ctx)
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	stop := func() error {
		cancel()
		return <-done
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Minute)
	// When the job reports (in its status) a watermark covering pos that
	// the target does not hold, the changes sit in an uncommitted target
	// transaction; past a grace of several status intervals that is a
	// stall, not a slow apply.
	var shownAt time.Time
	const stallGrace = 5 * time.Second
	for {
		select {
		case err := <-done:
			return 0, fmt.Errorf("manager stopped: %v", err)
		case <-deadline:
			return 0, errors.Join(fmt.Errorf("the target's watermark did not reach %s in 10m", pos), stop())
		case <-tick.C:
		}
		if st := r.state(j.ID); st == syncjob.StateFailed {
			return 0, errors.Join(fmt.Errorf("job failed: %s", r.lastError(j.ID)), stop())
		}
		wm, err := targetWatermark(ctx, dst, j.ID)
		if err != nil {
			return 0, errors.Join(err, stop())
		}
		if got, err := gtidpos.Parse(wm); err != nil {
			return 0, errors.Join(err, stop())
		} else if wm != "" && got.Covers(want, 0) {
			d := time.Since(start)
			return d, stop()
		}
		shown := r.watermark(j.ID)
		if got, err := gtidpos.Parse(shown); err == nil && shown != "" && got.Covers(want, 0) {
			if shownAt.IsZero() {
				shownAt = time.Now()
			} else if time.Since(shownAt) > stallGrace {
				return 0, errors.Join(fmt.Errorf("the job's status shows watermark %s (covering %s) for %s, the target holds %q: applied changes are left uncommitted on the target",
					shown, pos, stallGrace, wm), stop())
			}
		}
	}
}

// targetWatermark is the position the target holds for the job's forward
// direction; "" before the applier created its table or row.
func targetWatermark(ctx context.Context, dst *node, jobID string) (string, error) {
	var pos string
	err := dst.root.QueryRowContext(ctx, "SELECT position FROM _canopy_sync.watermarks WHERE job_id = ? AND source_instance = ?",
		jobID, syncSourceID).Scan(&pos)
	var me *mysql.MySQLError
	switch {
	case errors.Is(err, sql.ErrNoRows), errors.As(err, &me) && (me.Number == 1146 || me.Number == 1049):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("read the watermark of %s: %w", jobID, err)
	}
	return pos, nil
}

// appliedRows is the applied count the target's watermark holds.
func appliedRows(ctx context.Context, dst *node, jobID string) (int64, error) {
	var n int64
	if err := dst.root.QueryRowContext(ctx, "SELECT applied FROM _canopy_sync.watermarks WHERE job_id = ? AND source_instance = ?",
		jobID, syncSourceID).Scan(&n); err != nil {
		return 0, fmt.Errorf("read the applied count of %s: %w", jobID, err)
	}
	return n, nil
}

// sameOrders checks that the source table holds rows rows and that each
// target table equals it by count and checksum (the way verify checksums a
// chunk, over the whole table).
func sameOrders(ctx context.Context, src *node, srcTable string, rows int64, dst *node, dstTables ...string) error {
	want, err := ordersSum(ctx, src, srcTable)
	if err != nil {
		return err
	}
	if want.rows != rows {
		return fmt.Errorf("source %s holds %d rows, the load wrote %d", srcTable, want.rows, rows)
	}
	for _, t := range dstTables {
		got, err := ordersSum(ctx, dst, t)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("target %s (%d rows, checksum %d) differs from source %s (%d rows, checksum %d)",
				t, got.rows, got.crc, srcTable, want.rows, want.crc)
		}
	}
	return nil
}

type tableSum struct {
	rows int64
	crc  uint64
}

func ordersSum(ctx context.Context, n *node, table string) (tableSum, error) {
	var s tableSum
	q := "SELECT COUNT(*), COALESCE(BIT_XOR(CRC32(CONCAT_WS('#', id, customer, amount, status, created_at, note, ISNULL(note)))), 0) FROM " + table
	if err := n.root.QueryRowContext(ctx, q).Scan(&s.rows, &s.crc); err != nil {
		return s, fmt.Errorf("checksum %s: %w", table, err)
	}
	return s, nil
}

func syncLogger() *slog.Logger {
	if os.Getenv("CANOPY_BENCH_SYNC_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// benchNodes is provisioning's view of the two nodes.
type benchNodes map[string]provview.Instance

func (s benchNodes) Instance(_ context.Context, id string) (provview.Instance, error) {
	in, ok := s[id]
	if !ok {
		return provview.Instance{}, fmt.Errorf("instance %s: %w", id, provview.ErrNotFound)
	}
	return in, nil
}

func syncInstance(id string, n *node) provview.Instance {
	return provview.Instance{ID: id, Tenant: "bench", Engine: "mysql", State: "ready",
		Nodes: []provview.Node{{ID: id + "-1", Address: n.proc.Addr, Role: provview.RolePrimary, Healthy: true,
			RegionRole: provview.RegionPrimary}},
		CDC: provview.Credentials{Username: cdcUser, Password: cdcPassword}}
}

// benchRepo is the job store in memory: one job, its state and status;
// conflicts are counted (the benchmark's rows make none).
type benchRepo struct {
	mu        sync.Mutex
	jobs      map[string]syncjob.Job
	conflicts int
}

var _ syncrun.Repo = (*benchRepo)(nil)

func newBenchRepo(j syncjob.Job) *benchRepo {
	return &benchRepo{jobs: map[string]syncjob.Job{j.ID: j}}
}

func (r *benchRepo) ActiveJobs(context.Context) ([]syncjob.Job, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]syncjob.Job, 0, len(r.jobs))
	for _, j := range r.jobs {
		out = append(out, j)
	}
	return out, nil
}

func (r *benchRepo) GetJob(_ context.Context, _, id string) (syncjob.Job, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	j, ok := r.jobs[id]
	if !ok {
		return syncjob.Job{}, fmt.Errorf("job %s: %w", id, syncjob.ErrNotFound)
	}
	return j, nil
}

func (r *benchRepo) SetJobState(_ context.Context, id string, st syncjob.State, lastError string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	j, ok := r.jobs[id]
	if !ok {
		return fmt.Errorf("job %s: %w", id, syncjob.ErrNotFound)
	}
	j.State, j.Status.LastError = st, lastError
	r.jobs[id] = j
	return nil
}

func (r *benchRepo) SaveJobStatus(_ context.Context, id string, st syncjob.Status) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	j, ok := r.jobs[id]
	if !ok {
		return fmt.Errorf("job %s: %w", id, syncjob.ErrNotFound)
	}
	// As the store does: the last error is SetJobState's.
	st.LastError = j.Status.LastError
	j.Status = st
	r.jobs[id] = j
	return nil
}

func (r *benchRepo) DeleteJob(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.jobs, id)
	return nil
}

func (r *benchRepo) CreateVerification(context.Context, syncjob.Verification) error { return nil }
func (r *benchRepo) FinishVerification(context.Context, syncjob.Verification) error { return nil }
func (r *benchRepo) ResolveConflict(context.Context, string, syncjob.Resolution) error {
	return nil
}

func (r *benchRepo) Record(context.Context, syncjob.Conflict) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.conflicts++
	return nil
}

func (r *benchRepo) state(id string) syncjob.State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.jobs[id].State
}

func (r *benchRepo) lastError(id string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.jobs[id].Status.LastError
}

// watermark is the forward direction's watermark as the job's status last
// showed it.
func (r *benchRepo) watermark(id string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range r.jobs[id].Status.Directions {
		if d.From == syncSourceID {
			return d.Watermark
		}
	}
	return ""
}

func (r *benchRepo) conflictCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conflicts
}
