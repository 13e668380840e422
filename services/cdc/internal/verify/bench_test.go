package verify

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
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
	// CPU time besides wall time: other processes on the machine slow
	// either side's wall time by chance, the CPU both servers and this
	// process spend is what each side costs.
	cpu := func() time.Duration { return cpuTime(b, src) + cpuTime(b, tgt) + selfCPU() }
	var ours, theirs, oursCPU, theirCPU time.Duration
	b.ResetTimer()
	for range b.N {
		c0, t0 := cpu(), time.Now()
		verify()
		c1, t1 := cpu(), time.Now()
		checksum()
		c2, t2 := cpu(), time.Now()
		ours, theirs = ours+t1.Sub(t0), theirs+t2.Sub(t1)
		oursCPU, theirCPU = oursCPU+c1-c0, theirCPU+c2-c1
	}
	oursRate := float64(benchRows*b.N) / ours.Seconds()
	theirRate := float64(benchRows*b.N) / theirs.Seconds()
	b.ReportMetric(oursRate, "rows/s")
	b.ReportMetric(theirRate, "checksum_table_rows/s")
	b.ReportMetric(oursRate/theirRate, "ratio")
	b.ReportMetric(theirCPU.Seconds()/oursCPU.Seconds(), "cpu_ratio")
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

// cpuTime is the CPU time m's server process has run, all threads.
func cpuTime(b testing.TB, m *nodetest.MariaDB) time.Duration {
	dir := fmt.Sprintf("/proc/%d/task", m.Proc.PID())
	tasks, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	var sum time.Duration
	for _, task := range tasks {
		// A thread that ended since the listing has no file: its time
		// is lost alike on both sides of the comparison.
		stat, err := os.ReadFile(filepath.Join(dir, task.Name(), "schedstat"))
		if err != nil {
			continue
		}
		if f := strings.Fields(string(stat)); len(f) > 0 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			sum += time.Duration(ns)
		}
	}
	return sum
}

// selfCPU is the CPU time this process has run: the verification's own
// client work counts too.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
