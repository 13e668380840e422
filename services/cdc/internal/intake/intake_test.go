package intake_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/devkafka/devkafkatest"
	"github.com/canopy-platform/canopy/libs/eventbus"

	"github.com/canopy-platform/canopy/services/cdc/internal/intake"
	"github.com/canopy-platform/canopy/services/cdc/internal/pipeline"
)

// calls records what the intake told the pipeline.
type calls struct {
	mu       sync.Mutex
	changed  []string
	deleted  []string
	failures int // the deleted callback fails this many times first
}

func (c *calls) InstanceChanged(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.changed = append(c.changed, id)
}

func (c *calls) Deleted(_ context.Context, id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failures > 0 {
		c.failures--
		return errors.New("store down")
	}
	c.deleted = append(c.deleted, id)
	return nil
}

func (c *calls) has(changed, deleted string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return (changed == "" || slices.Contains(c.changed, changed)) && (deleted == "" || slices.Contains(c.deleted, deleted))
}

func eventually(t *testing.T, what string, cond func() bool, each func()) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		if each != nil {
			each()
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestIntakeFollowsFailoverAndInstanceEvents runs the intake on the
// embedded broker: a completed failover, a rejoined node and an updated
// instance move the instance's streams; a deleting or deleted instance ends
// them (retried when the callback fails); other events are ignored.
func TestIntakeFollowsFailoverAndInstanceEvents(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logger := slog.New(slog.DiscardHandler)
	brokers := devkafkatest.Start(t, events.TopicInstances, events.TopicFailover)
	rec := &calls{failures: 1}
	in, err := intake.New(intake.Config{Brokers: brokers}, rec, rec.Deleted, logger, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- in.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()

	pub, err := eventbus.NewPublisher(eventbus.PublisherConfig{Brokers: brokers, Source: "/test"}, logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	publish := func(topic, typ, key string, data any) {
		ev, err := eventbus.NewEvent(typ, "/test", key, data)
		if err != nil {
			t.Fatal(err)
		}
		ev.Tenant = "acme"
		if err := pub.Publish(ctx, topic, ev); err != nil {
			t.Fatal(err)
		}
	}
	// The group starts at the topics' end: publish until it hears.
	eventually(t, "failover.completed", func() bool { return rec.has("i-1", "") }, func() {
		publish(events.TopicFailover, events.TypeFailoverCompleted, "i-1", events.Recovery{RecoveryID: "r", InstanceID: "i-1",
			TenantID: "acme", State: "completed", NewPrimary: "i-1-1"})
	})
	publish(events.TopicFailover, events.TypeNodeRejoined, "i-2", events.NodeRejoined{InstanceID: "i-2", TenantID: "acme", NodeID: "n"})
	publish(events.TopicInstances, events.TypeInstanceUpdated, "i-3", events.Instance{InstanceID: "i-3", TenantID: "acme", State: "ready"})
	publish(events.TopicInstances, events.TypeInstanceReady, "i-9", events.Instance{InstanceID: "i-9", TenantID: "acme", State: "ready"})
	publish(events.TopicInstances, events.TypeInstanceDeleting, "i-4", events.Instance{InstanceID: "i-4", TenantID: "acme", State: "deleting"})
	publish(events.TopicInstances, events.TypeInstanceDeleted, "i-5", events.Instance{InstanceID: "i-5", TenantID: "acme", State: "deleted"})
	eventually(t, "rejoin and update", func() bool { return rec.has("i-2", "") && rec.has("i-3", "") }, nil)
	eventually(t, "deleting and deleted (after a failed try)", func() bool { return rec.has("", "i-4") && rec.has("", "i-5") }, nil)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if slices.Contains(rec.changed, "i-9") || slices.Contains(rec.deleted, "i-9") {
		t.Fatal("instance ready moved or ended streams")
	}
}

func TestNewRejectsMissingParts(t *testing.T) {
	rec := &calls{}
	logger := slog.New(slog.DiscardHandler)
	if _, err := intake.New(intake.Config{}, rec, rec.Deleted, logger, prometheus.NewRegistry()); err == nil {
		t.Fatal("no brokers accepted")
	}
	if _, err := intake.New(intake.Config{Brokers: []string{"127.0.0.1:1"}}, nil, rec.Deleted, logger, prometheus.NewRegistry()); err == nil {
		t.Fatal("nil streams accepted")
	}
}

// The pipeline is what cdc.go wires in.
var (
	_ intake.Streams     = (*pipeline.Manager)(nil)
	_ intake.DeletedFunc = (*pipeline.Manager)(nil).InstanceDeleted
)
