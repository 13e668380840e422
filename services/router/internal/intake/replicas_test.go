package intake_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/devkafka/devkafkatest"
	"github.com/canopy-platform/canopy/libs/eventbus"

	"github.com/canopy-platform/canopy/services/router/internal/intake"
	"github.com/canopy-platform/canopy/services/router/internal/table"
)

// TestTwoReplicasEachSeeEveryEvent: two router replicas (as make split
// names them by host and port) on one broker each follow every event in a
// group of their own, so both move the primary at a failover, and one
// going away changes nothing for the other.
func TestTwoReplicasEachSeeEveryEvent(t *testing.T) {
	ctx := t.Context()
	logger := slog.New(slog.DiscardHandler)
	brokers := devkafkatest.Start(t, events.TopicInstances, events.TopicHealth, events.TopicFailover)
	src := &source{byID: map[string]table.Instance{}}
	src.set(redis("i-1"))

	type replica struct {
		tbl  *table.Table
		stop context.CancelFunc
		done chan error
	}
	start := func(name string) *replica {
		r := &replica{tbl: table.New(), done: make(chan error, 1)}
		in, err := intake.New(intake.Config{Brokers: brokers, Replica: name}, r.tbl, src, logger, prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		var rctx context.Context
		rctx, r.stop = context.WithCancel(ctx)
		go func() { r.done <- in.Run(rctx) }()
		t.Cleanup(func() {
			r.stop()
			if err := <-r.done; err != nil {
				t.Errorf("run %s: %v", name, err)
			}
		})
		eventually(t, name+"'s first resync", func() bool { _, ok := r.tbl.Get("i-1"); return ok }, nil)
		return r
	}
	a, b := start("host-8090"), start("host-8190")

	pub, err := eventbus.NewPublisher(eventbus.PublisherConfig{Brokers: brokers, Source: "/test"}, logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	publish := func(typ string, rec events.Recovery) {
		ev, err := eventbus.NewEvent(typ, "/test", "i-1", rec)
		if err != nil {
			t.Fatal(err)
		}
		ev.Tenant = "acme"
		if err := pub.Publish(ctx, events.TopicFailover, ev); err != nil {
			t.Fatal(err)
		}
	}
	switching := func(r *replica) bool { v, _ := r.tbl.Get("i-1"); return v.Switching }
	primary := func(r *replica) string {
		v, _ := r.tbl.Get("i-1")
		p, _ := v.Primary()
		return p.ID
	}
	// The groups start at the topics' end: publish until both hear.
	started := events.Recovery{RecoveryID: "r1", InstanceID: "i-1", TenantID: "acme", State: "started", FencingToken: 1}
	eventually(t, "both replicas in the recovery window", func() bool { return switching(a) && switching(b) },
		func() { publish(events.TypeFailoverStarted, started) })
	publish(events.TypeFailoverCompleted, events.Recovery{RecoveryID: "r1", InstanceID: "i-1", TenantID: "acme", State: "completed",
		FencingToken: 1, Roles: map[string]string{"i-1-0": "fenced", "i-1-1": "primary"}})
	eventually(t, "the new primary on both replicas", func() bool { return primary(a) == "i-1-1" && primary(b) == "i-1-1" }, nil)

	// a goes away; b still follows the next recovery.
	a.stop()
	if err := <-a.done; err != nil {
		t.Fatal(err)
	}
	a.done <- nil // for the cleanup
	publish(events.TypeFailoverStarted, events.Recovery{RecoveryID: "r2", InstanceID: "i-1", TenantID: "acme", State: "started", FencingToken: 2})
	publish(events.TypeFailoverCompleted, events.Recovery{RecoveryID: "r2", InstanceID: "i-1", TenantID: "acme", State: "completed",
		FencingToken: 2, Roles: map[string]string{"i-1-0": "primary", "i-1-1": "fenced"}})
	eventually(t, "b alone following the next recovery", func() bool { return primary(b) == "i-1-0" && !switching(b) }, nil)
}
