package intake_test

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/devkafka/devkafkatest"
	"github.com/canopy-platform/canopy/libs/eventbus"

	"github.com/canopy-platform/canopy/services/router/internal/intake"
	"github.com/canopy-platform/canopy/services/router/internal/provview"
	"github.com/canopy-platform/canopy/services/router/internal/table"
)

// source is provisioning's router view as a list the test edits.
type source struct {
	mu   sync.Mutex
	byID map[string]table.Instance
}

func (s *source) set(in table.Instance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byID[in.ID] = in
}

func (s *source) List(context.Context) ([]table.Instance, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []table.Instance
	for _, in := range s.byID {
		out = append(out, in)
	}
	return out, nil
}

func (s *source) Get(_ context.Context, id string) (table.Instance, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.byID[id]
	if !ok {
		return table.Instance{}, provview.ErrNotFound
	}
	return in, nil
}

func redis(id string) table.Instance {
	return table.Instance{ID: id, Tenant: "acme", Name: "cache-" + id, Engine: table.Redis, State: "ready", RWPort: 16000, ROPort: 16001,
		Nodes: []table.Node{{ID: id + "-0", Address: "127.0.0.1:1", Role: table.Primary}, {ID: id + "-1", Address: "127.0.0.1:2", Role: table.Replica}}}
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

// TestIntakeFollowsEventsAndResyncs runs the intake on the embedded broker:
// the table is read from provisioning at the group's assignment; failover
// events move the primary and hold connections during the recovery;
// health transitions take a replica out of the read pool; a binding event
// re-reads the instance; a deleted instance is forgotten.
func TestIntakeFollowsEventsAndResyncs(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logger := slog.New(slog.DiscardHandler)
	brokers := devkafkatest.Start(t, events.TopicInstances, events.TopicHealth, events.TopicFailover)
	src := &source{byID: map[string]table.Instance{}}
	src.set(redis("i-1"))
	src.set(redis("i-2"))
	tbl := table.New()
	in, err := intake.New(intake.Config{Brokers: brokers, Replica: "r1"}, tbl, src, logger, prometheus.NewRegistry())
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
	select {
	case <-in.Synced():
	case <-time.After(20 * time.Second):
		t.Fatal("no resync at the group's assignment")
	}
	if len(tbl.List()) != 2 {
		t.Fatalf("table after resync: %d instances", len(tbl.List()))
	}

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
	view := func(id string) table.View {
		v, _ := tbl.Get(id)
		return v
	}
	// The group starts at the topics' end: publish until it hears.
	eventually(t, "a recovery window from failover.started", func() bool { return view("i-1").Switching }, func() {
		publish(events.TopicFailover, events.TypeFailoverStarted, "i-1", events.Recovery{RecoveryID: "r", InstanceID: "i-1", TenantID: "acme",
			State: "started", FencingToken: 3})
	})
	publish(events.TopicFailover, events.TypeFailoverCompleted, "i-1", events.Recovery{RecoveryID: "r", InstanceID: "i-1", TenantID: "acme",
		State: "completed", FencingToken: 3, Roles: map[string]string{"i-1-0": "fenced", "i-1-1": "primary"}})
	eventually(t, "the new primary", func() bool {
		p, ok := view("i-1").Primary()
		return ok && p.ID == "i-1-1" && !view("i-1").Switching
	}, nil)

	publish(events.TopicHealth, events.TypeNodeDown, "i-2", events.NodeTransition{InstanceID: "i-2", TenantID: "acme", NodeID: "i-2-1", Status: "down"})
	eventually(t, "the down replica out of the read pool", func() bool { return len(view("i-2").Replicas()) == 0 }, nil)
	publish(events.TopicHealth, events.TypeNodeUp, "i-2", events.NodeTransition{InstanceID: "i-2", TenantID: "acme", NodeID: "i-2-1", Status: "up"})
	eventually(t, "the replica back", func() bool { return len(view("i-2").Replicas()) == 1 }, nil)

	withBinding := redis("i-2")
	withBinding.Bindings = []table.Binding{{Username: "b_1", PasswordSHA256: sha256.Sum256([]byte("pw"))}}
	src.set(withBinding)
	publish(events.TopicInstances, events.TypeBindingCreated, "i-2", events.Binding{BindingID: "b", InstanceID: "i-2", TenantID: "acme", Username: "b_1"})
	eventually(t, "the new binding's account", func() bool {
		_, ok := tbl.Authenticate(table.Redis, "b_1", "pw")
		return ok
	}, nil)

	publish(events.TopicInstances, events.TypeInstanceDeleted, "i-2", events.Instance{InstanceID: "i-2", TenantID: "acme", State: "deleted"})
	eventually(t, "the deleted instance forgotten", func() bool {
		_, ok := tbl.Get("i-2")
		return !ok
	}, nil)

	// A replica that missed everything converges from the resync alone.
	src.set(redis("i-3"))
	if err := in.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := tbl.Get("i-3"); !ok {
		t.Fatal("resync did not add the instance it missed")
	}
}
