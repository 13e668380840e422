package verify

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/services/cdc/internal/nodetest"
)

const benchRows = 200000

// benchTable is a typical application table; both nodes get the same rows.
var benchTable = []string{
	"CREATE DATABASE app",
	`CREATE TABLE app.orders (id BIGINT PRIMARY KEY, customer INT NOT NULL, status VARCHAR(16) NOT NULL,
		amount DECIMAL(12,2) NOT NULL, note VARCHAR(255) NULL, created DATETIME NOT NULL, updated TIMESTAMP NULL)`,
	fmt.Sprintf(`INSERT INTO app.orders SELECT seq, seq %% 9973, ELT(1 + seq %% 4, 'new', 'paid', 'shipped', 'done'),
		(seq %% 100000) / 100, IF(seq %% 5 = 0, NULL, CONCAT('note for order ', seq, ' of some customer')),
		'2024-01-01' + INTERVAL seq MINUTE, IF(seq %% 3 = 0, NULL, FROM_UNIXTIME(1700000000 + seq))
		FROM app.seq_1_to_%d`, benchRows),
}

// BenchmarkVerify compares the rows per second a verification checks with
// CHECKSUM TABLE run on both nodes at once (the fastest whole-table
// compare MariaDB offers, but one that says nothing of which rows differ
// and cannot be settled against writes in flight).
func BenchmarkVerify(b *testing.B) {
	src, tgt := startBench(b)
	for _, bc := range []struct {
		name     string
		chunk    int
		parallel int
	}{{"defaults", 0, 0}, {"chunk1000", 1000, 0}, {"parallel2", 0, 2}} {
		b.Run(bc.name, func(b *testing.B) { benchVerify(b, src, tgt, bc.chunk, bc.parallel) })
	}
}

func benchVerify(b *testing.B, src, tgt *nodetest.MariaDB, chunk, parallel int) {
	ctx := context.Background()
	cfg := Config{Source: cdc(src), Target: cdc(tgt), Tables: []string{"app.orders"}, ChunkSize: chunk, Parallel: parallel}
	checksum := func() {
		var wg sync.WaitGroup
		for _, m := range []*nodetest.MariaDB{src, tgt} {
			wg.Go(func() {
				var name string
				var sum any
				if err := m.Root.QueryRowContext(ctx, "CHECKSUM TABLE app.orders").Scan(&name, &sum); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
	}
	verify := func() {
		rep, err := Run(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		if !rep.Consistent || rep.RowsChecked != benchRows {
			b.Fatalf("report %+v", rep)
		}
	}
	verify() // warm the buffer pools
	checksum()
	var ours, theirs time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		verify()
		t1 := time.Now()
		checksum()
		ours, theirs = ours+t1.Sub(t0), theirs+time.Since(t1)
	}
	oursRate := float64(benchRows*b.N) / ours.Seconds()
	theirRate := float64(benchRows*b.N) / theirs.Seconds()
	b.ReportMetric(oursRate, "rows/s")
	b.ReportMetric(theirRate, "checksum_table_rows/s")
	b.ReportMetric(oursRate/theirRate, "ratio")
}

// startBench starts the two nodes of every sub-benchmark: loading them is
// slower than what is measured.
func startBench(b testing.TB) (src, tgt *nodetest.MariaDB) {
	b.Helper()
	var wg sync.WaitGroup
	wg.Go(func() { src = nodetest.StartMariaDB(b, 1) })
	tgt = nodetest.StartMariaDB(b, 2)
	wg.Wait()
	src.Exec(b, benchTable...)
	tgt.Exec(b, benchTable...)
	return src, tgt
}
