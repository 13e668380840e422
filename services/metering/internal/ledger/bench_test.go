package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/devkafka"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/services/metering/internal/meter"
)

// benchPartitions is the ingest topic's partition count in production
// (the wiring creates it with 6).
const benchPartitions = 6

// benchSubjects is how many subjects (per tenant) the events name.
const benchSubjects = 20

// BenchmarkLedgerIngest puts N (LEDGER_BENCH_EVENTS, default 200k)
// ingested events on the ingest topic, then measures in the same run a
// raw kafka-go consumer that reads them and does nothing (one Reader per
// partition, like the ledger) and the ledger folding them into the hourly
// aggregates from a fresh database, checking the totals are exact.
// Reports events/s of the ledger and its ratio to the raw rate (x_raw).
func BenchmarkLedgerIngest(b *testing.B) {
	n := 200000
	if v, err := strconv.Atoi(os.Getenv("LEDGER_BENCH_EVENTS")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	broker, err := devkafka.Start(ctx, devkafka.Config{Addr: "127.0.0.1:0", Partitions: benchPartitions}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(broker.Close)
	brokers := []string{broker.Addr()}
	specs := make([]eventbus.TopicSpec, len(topics))
	for i, t := range topics {
		specs[i] = eventbus.TopicSpec{Name: t, Partitions: benchPartitions}
	}
	if err := eventbus.EnsureTopics(ctx, brokers, specs...); err != nil {
		b.Fatal(err)
	}
	h := newHarnessOn(b, brokers)
	now := time.Now().UTC()
	rng := rand.New(rand.NewPCG(1, 2))
	tenants := []string{"acme", "beta", "gamma", "delta", "epsilon"}
	wantTokens := 0.0
	evs := make([]meter.Event, 0, 10000)
	for i := range n {
		tokens := 1 + rng.IntN(100)
		wantTokens += float64(tokens)
		// A live stream: events of the last two minutes.
		at := now.Add(-time.Duration(rng.IntN(120_000)) * time.Millisecond)
		evs = append(evs, apiEvent(fmt.Sprintf("bench-%08d", i), tenants[rng.IntN(len(tenants))],
			fmt.Sprintf("customer-%d", rng.IntN(benchSubjects)), at, tokens, "u"))
		if len(evs) == cap(evs) || i == n-1 {
			h.publishIngest(now, evs...)
			evs = evs[:0]
		}
	}

	var ledgerRate, rawRate float64
	for b.Loop() {
		b.StopTimer()
		rawRate = rawConsume(b, brokers, n)
		db := newHarnessOn(b, brokers) // a fresh database, same broker
		db.addMeter("api_tokens", meter.Sum, apiCall, "tokens")
		db.addMeter("api_calls", meter.Count, apiCall, "")
		l := db.newLedger(Config{BatchMax: envInt("LEDGER_BENCH_BATCH", 0)})
		l.ingestAppliers = envInt("LEDGER_BENCH_APPLIERS", l.ingestAppliers)
		if v := envInt("LEDGER_BENCH_MAXBYTES", 0); v > 0 {
			l.readerMaxBytes = v
		}
		b.StartTimer()
		cpu0, db0 := processCPU(), mariadbCPU(db.db.SQL())
		began := time.Now()
		stop := db.run(l)
		for db.applied(events.TopicUsageIngest) < int64(n) {
			time.Sleep(5 * time.Millisecond)
		}
		elapsed := time.Since(began)
		b.StopTimer()
		fmt.Printf("ledger run: %.2fs wall, this process %.2fs CPU, mariadbd %.2fs CPU\n",
			elapsed.Seconds(), (processCPU() - cpu0).Seconds(), (mariadbCPU(db.db.SQL()) - db0).Seconds())
		stop()
		ledgerRate = float64(n) / elapsed.Seconds()
		if got := db.total("usage_hour", "api_tokens", ""); got != wantTokens {
			b.Fatalf("api_tokens %v, want %v", got, wantTokens)
		}
		if got := db.total("usage_hour", "api_calls", ""); got != float64(n) {
			b.Fatalf("api_calls %v, want %d", got, n)
		}
		b.StartTimer()
	}
	b.ReportMetric(ledgerRate, "events/s")
	b.ReportMetric(ledgerRate/rawRate, "x_raw")
	b.ReportMetric(0, "ns/op")
	fmt.Printf("ledger ingest: %d events, ledger %.0f events/s, raw kafka-go reader %.0f events/s, ratio %.2f\n",
		n, ledgerRate, rawRate, ledgerRate/rawRate)
}

// rawConsume reads n messages of the ingest topic with one kafka-go Reader
// per partition, configured as the ledger's, doing nothing with them; it
// returns messages per second.
func rawConsume(b *testing.B, brokers []string, n int) float64 {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var read atomic.Int64
	var wg sync.WaitGroup
	began := time.Now()
	for p := range benchPartitions {
		wg.Go(func() {
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: events.TopicUsageIngest, Partition: p,
				MinBytes: 1, MaxBytes: max(readerMaxBytes, envInt("LEDGER_BENCH_MAXBYTES", 0)), MaxWait: 50 * time.Millisecond, QueueCapacity: readerQueue})
			defer r.Close()
			for {
				if _, err := r.FetchMessage(ctx); err != nil {
					return
				}
				if read.Add(1) == int64(n) {
					cancel()
				}
			}
		})
	}
	wg.Wait()
	if got := read.Load(); got < int64(n) {
		b.Fatalf("raw reader read %d of %d", got, n)
	}
	return float64(n) / time.Since(began).Seconds()
}

// processCPU is the CPU time this process used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// mariadbCPU is the CPU time the MariaDB server the tests use spent so far
// (0 when it cannot be read, e.g. on another host), to show where the
// time of a run went. It counts the work of every client of that server.
func mariadbCPU(db *sql.DB) time.Duration {
	var pidFile string
	if err := db.QueryRow("SELECT @@pid_file").Scan(&pidFile); err != nil {
		return 0
	}
	pid, err := os.ReadFile(pidFile)
	if err != nil {
		return 0
	}
	stat, err := os.ReadFile(filepath.Join("/proc", strings.TrimSpace(string(pid)), "stat"))
	if err != nil {
		return 0
	}
	// Fields after the ")" of the command: utime and stime are the 12th and 13th.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// envInt reads a benchmark knob from the environment (def when unset).
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
