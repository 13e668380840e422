package apply

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/canopy-platform/canopy/services/cdc/internal/change"
	"github.com/canopy-platform/canopy/services/cdc/internal/nodetest"
)

// BenchmarkApplyInserts compares the rows/s Apply reaches on batches of
// inserts (watermark and commit included) with raw multi-row INSERTs of
// the same rows into an identical table of the same target, through the
// same driver, same statement size, one commit per batch. The goal is a
// ratio of at least 0.5.
func BenchmarkApplyInserts(b *testing.B) {
	const batchRows = 1000
	ctx := context.Background()
	node := nodetest.StartMariaDB(b, 1)
	const ddl = " (id BIGINT PRIMARY KEY, name VARCHAR(64), v BIGINT, f DOUBLE, ts DATETIME(6), bin VARBINARY(32))"
	node.Exec(b, "CREATE DATABASE app", "CREATE TABLE app.bench_apply"+ddl, "CREATE TABLE app.bench_raw"+ddl)
	a, err := Open(ctx, baseConfig(node, &fakeConflicts{}))
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()

	mc := mysql.NewConfig()
	mc.User, mc.Passwd, mc.Net, mc.Addr = nodetest.CDCUser, nodetest.CDCPassword, "tcp", node.Addr
	mc.InterpolateParams = true
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		b.Fatal(err)
	}
	raw := sql.OpenDB(connector)
	defer raw.Close()
	raw.SetMaxOpenConns(1)
	rawHead := "INSERT INTO app.bench_raw (id,name,v,f,ts,bin) VALUES "
	rawQuery := rawHead + strings.TrimSuffix(strings.Repeat("(?,?,?,?,?,?),", batchRows), ",")

	columns := []string{"id", "name", "v", "f", "ts", "bin"}
	var applyTime, rawTime time.Duration
	var rows int64
	next := int64(0)
	for b.Loop() {
		msgs := make([]change.Message, batchRows)
		args := make([]any, 0, batchRows*len(columns))
		gtid := fmt.Sprintf("0-1-%d", next/batchRows+1)
		for i := range msgs {
			next++
			vals := []any{next, fmt.Sprintf("name-%d", next), next * 7, float64(next) / 3,
				"2026-12-03 06:00:00.123456", []byte(fmt.Sprintf("bin-%d", next))}
			msgs[i] = change.Message{GTID: gtid, Row: i, Change: &change.RowChange{DB: "app", Table: "bench_apply", Op: "c",
				Columns: columns, Key: []int{0}, After: vals}}
			args = append(args, vals...)
		}
		bt := change.Batch{Messages: msgs, Checkpoint: &change.Checkpoint{GTID: gtid}}
		start := time.Now()
		st, err := a.Apply(ctx, bt)
		applyTime += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if st.Applied != batchRows {
			b.Fatalf("applied %d rows of %d", st.Applied, batchRows)
		}
		start = time.Now()
		if _, err := raw.ExecContext(ctx, rawQuery, args...); err != nil {
			b.Fatal(err)
		}
		rawTime += time.Since(start)
		rows += batchRows
	}
	applyRate := float64(rows) / applyTime.Seconds()
	rawRate := float64(rows) / rawTime.Seconds()
	b.ReportMetric(applyRate, "apply_rows/s")
	b.ReportMetric(rawRate, "raw_rows/s")
	b.ReportMetric(applyRate/rawRate, "ratio")
	verdict := "meets"
	if applyRate/rawRate < 0.5 {
		verdict = "MISSES"
	}
	b.Logf("applier alone: %.0f rows/s, raw multi-row INSERTs %.0f rows/s: %.2f× (%s the job-level goal ≥ 0.5×, see cdcbench BenchmarkSyncApply)",
		applyRate, rawRate, applyRate/rawRate, verdict)
}
