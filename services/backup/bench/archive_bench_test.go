package bench

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/enginetest"
	"github.com/canopy-platform/canopy/services/backup/internal/binlogarchive"
	"github.com/canopy-platform/canopy/services/backup/internal/mysqlphys/phystest"
	"github.com/canopy-platform/canopy/services/backup/internal/repo"
)

const (
	adminUser     = phystest.AdminUser
	adminPassword = "admin-secret-1"
)

// startPrimary runs a mariadbd configured like a Canopy node, durable
// commits included (sync_binlog=1, innodb_flush_log_at_trx_commit=1).
func startPrimary(b *testing.B) (*enginetest.Proc, *sql.DB) {
	b.Helper()
	n := phystest.StartMariaDB(b, phystest.Options{ServerID: 1, AdminPassword: adminPassword, Durable: true, BufferPool: "128M"})
	return n.Proc, n.Root
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// ack is one row's commit acknowledgement.
type ack struct {
	at  time.Time
	seq uint64
}

// stored is one segment in the repository.
type stored struct {
	at               time.Time
	startSeq, endSeq uint64
}

// BenchmarkArchiveLag writes rows, each its own transaction, at a steady
// rate on a durable primary while an archiver (FlushEvery 1s) seals its
// segments into the directory repository, and measures for each row the
// time from its commit acknowledgement to its segment being stored.
// CANOPY_BENCH_ARCHIVE_RATE (rows/s, default 1000) and
// CANOPY_BENCH_ARCHIVE_SECONDS (default 20) size the run. Goal: p99 < 5s.
func BenchmarkArchiveLag(b *testing.B) {
	rate := envInt(b, "CANOPY_BENCH_ARCHIVE_RATE", 1000)
	seconds := envInt(b, "CANOPY_BENCH_ARCHIVE_SECONDS", 20)
	p, db := startPrimary(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(seconds)*time.Second+2*time.Minute)
	defer cancel()
	for _, q := range []string{"CREATE DATABASE app", "CREATE TABLE app.t (id BIGINT PRIMARY KEY, v VARCHAR(100) NOT NULL, at DATETIME(6) NOT NULL)"} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	var start string
	if err := db.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&start); err != nil {
		b.Fatal(err)
	}

	fs, err := repo.NewFS(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	dataKey, err := repo.NewDataKey()
	if err != nil {
		b.Fatal(err)
	}
	var (
		mu   sync.Mutex
		segs []stored
	)
	sink := func(ctx context.Context, seg binlogarchive.Segment) error {
		mu.Lock()
		n := len(segs) + 1
		mu.Unlock()
		key := fmt.Sprintf("t1/i1/binlog/%012d", n)
		if _, err := repo.Seal(ctx, fs, key, dataKey, bytes.NewReader(seg.Data)); err != nil {
			return fmt.Errorf("seal %s: %w", key, err)
		}
		mu.Lock()
		segs = append(segs, stored{at: time.Now(), startSeq: seqOf(seg.StartPos), endSeq: seqOf(seg.EndPos)})
		mu.Unlock()
		return nil
	}
	ar := binlogarchive.New(binlogarchive.Config{ServerID: 9100, FlushEvery: time.Second})
	src := binlogarchive.Source{NodeID: "p", Address: p.Addr, User: adminUser, Password: adminPassword}
	actx, acancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- ar.Run(actx, func(context.Context) (binlogarchive.Source, error) { return src, nil }, start, sink)
	}()

	b.ResetTimer()
	acks, elapsed := write(ctx, b, db, rate, seconds)
	var end string
	if err := db.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&end); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for ar.Stats().Committed != end {
		if time.Now().After(deadline) {
			b.Fatalf("archive at %q a minute after the writes, want %q", ar.Stats().Committed, end)
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.StopTimer()
	acancel()
	if err := <-done; err != nil {
		b.Fatalf("archiver: %v", err)
	}

	lags := make([]float64, 0, len(acks))
	for _, a := range acks {
		i := sort.Search(len(segs), func(i int) bool { return segs[i].endSeq >= a.seq })
		if i == len(segs) || segs[i].startSeq >= a.seq {
			b.Fatalf("transaction %d in no segment", a.seq)
		}
		lags = append(lags, segs[i].at.Sub(a.at).Seconds())
	}
	sort.Float64s(lags)
	pct := func(q float64) float64 { return lags[min(len(lags)-1, int(q*float64(len(lags))))] }
	b.ReportMetric(pct(0.50), "p50-s")
	b.ReportMetric(pct(0.99), "p99-s")
	b.ReportMetric(lags[len(lags)-1], "max-s")
	b.ReportMetric(float64(len(acks))/elapsed.Seconds(), "rows/s")
	b.Logf("%d rows in %s (%.0f rows/s, asked %d), %d segments: commit → segment stored p50 %.3fs p99 %.3fs max %.3fs",
		len(acks), elapsed.Round(time.Millisecond), float64(len(acks))/elapsed.Seconds(), rate, len(segs), pct(0.5), pct(0.99), lags[len(lags)-1])
}

// write inserts rows, each in its own transaction, paced at rate per
// second for seconds, from enough connections that fsync-bound commits
// keep up (they group-commit), and returns each row's acknowledgement.
func write(ctx context.Context, b *testing.B, db *sql.DB, rate, seconds int) ([]ack, time.Duration) {
	const workers = 16
	db.SetMaxOpenConns(workers + 2)
	total := rate * seconds
	ids := make(chan int, total)
	var (
		mu   sync.Mutex
		acks = make([]ack, 0, total)
		wg   sync.WaitGroup
		errs = make(chan error, workers)
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := db.Conn(ctx)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			for id := range ids {
				if _, err := conn.ExecContext(ctx, "INSERT INTO app.t VALUES (?, ?, NOW(6))", id, strings.Repeat("x", 64)); err != nil {
					errs <- fmt.Errorf("insert %d: %w", id, err)
					return
				}
				at := time.Now()
				var g string
				if err := conn.QueryRowContext(ctx, "SELECT @@last_gtid").Scan(&g); err != nil {
					errs <- fmt.Errorf("last_gtid after %d: %w", id, err)
					return
				}
				mu.Lock()
				acks = append(acks, ack{at: at, seq: seqOf(g)})
				mu.Unlock()
			}
		}()
	}
	t0 := time.Now()
	for i := 0; i < total; i++ {
		if d := time.Until(t0.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
			time.Sleep(d)
		}
		ids <- i + 1
	}
	close(ids)
	wg.Wait()
	elapsed := time.Since(t0)
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	return acks, elapsed
}

// seqOf is the sequence number of a single-domain GTID or position.
func seqOf(pos string) uint64 {
	i := strings.LastIndexByte(pos, '-')
	n, _ := strconv.ParseUint(pos[i+1:], 10, 64)
	return n
}
