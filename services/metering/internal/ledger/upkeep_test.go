package ledger

import (
	"context"
	"crypto/rand"
	"log/slog"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/devkafka"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/services/metering/internal/meter"
)

// TestSweepExpiredRows: minute aggregates past MinuteRetention and dedup
// keys past DedupRetention go; hourly rows and recent ones stay.
func TestSweepExpiredRows(t *testing.T) {
	h := newHarness(t)
	now := time.Now().UTC()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := h.db.SQL().Exec(q, args...); err != nil {
			t.Fatal(err)
		}
	}
	for _, at := range []time.Time{now.Add(-50 * time.Hour), now.Add(-49 * time.Hour), now.Add(-time.Hour)} {
		for _, table := range []string{"usage_minute", "usage_hour"} {
			exec("INSERT INTO "+table+" (tenant_id, meter, window_start, subject, total, cnt) VALUES ('acme', ?, ?, 'i-1', 1, 1)",
				meter.NodeHours, at.Truncate(time.Minute))
		}
	}
	for _, age := range []time.Duration{40 * 24 * time.Hour, 36 * 24 * time.Hour, time.Hour} {
		k := make([]byte, 16)
		_, _ = rand.Read(k)
		exec("INSERT INTO ingest_dedup (k, part, off, received_at) VALUES (?, 0, 0, ?)", k, now.Add(-age))
	}
	h.run(h.newLedger(Config{SweepEvery: 50 * time.Millisecond, MinuteRetention: 48 * time.Hour, DedupRetention: 35 * 24 * time.Hour}))
	eventually(t, 10*time.Second, "the sweep", func() bool {
		return h.count("SELECT COUNT(*) FROM usage_minute") == 1 && h.count("SELECT COUNT(*) FROM ingest_dedup") == 1
	})
	if n := h.count("SELECT COUNT(*) FROM usage_hour"); n != 3 {
		t.Errorf("%d hourly rows left, want all 3", n)
	}
}

// TestTopicCreatedLater: the ledger starts before the ingest topic exists,
// does not create it, and consumes it once it is created.
func TestTopicCreatedLater(t *testing.T) {
	ctx := context.Background()
	broker, err := devkafka.Start(ctx, devkafka.Config{Addr: "127.0.0.1:0", Partitions: 2}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	brokers := []string{broker.Addr()}
	if err := eventbus.EnsureTopics(ctx, brokers, eventbus.TopicSpec{Name: events.TopicInstances, Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	h := newHarnessOn(t, brokers)
	h.addMeter("api_calls", meter.Count, apiCall, "")
	h.run(h.newLedger(Config{}))
	now := time.Now().UTC()
	h.publishInstance(events.TypeInstanceReady, instance("i-l", "ready", now.Add(-time.Minute), node("l1", "primary", "running")))
	h.waitApplied()
	if n := h.count("SELECT COUNT(*) FROM consumer_offsets WHERE topic = ?", events.TopicUsageIngest); n != 0 {
		t.Fatalf("offsets for a topic that does not exist")
	}
	if err := eventbus.EnsureTopics(ctx, brokers, eventbus.TopicSpec{Name: events.TopicUsageIngest, Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	h.publishIngest(now, apiEvent("late-topic-1", "acme", "x", now, 1, "u"), apiEvent("late-topic-2", "acme", "y", now, 1, "u"))
	h.waitApplied()
	if got := h.total("usage_hour", "api_calls", ""); got != 2 {
		t.Errorf("api_calls %v, want 2", got)
	}
}
