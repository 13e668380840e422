package consumers

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/devkafka"
	"github.com/canopy-platform/canopy/libs/devkafka/devkafkatest"
	"github.com/canopy-platform/canopy/libs/eventbus"

	"github.com/canopy-platform/canopy/services/failover/internal/topology"
)

// recorder is a Watcher that records what it was told.
type recorder struct {
	mu       sync.Mutex
	owned    map[string]topology.Instance
	disowned []string
	triggers []string
}

func (r *recorder) Own(in topology.Instance) { r.mu.Lock(); r.owned[in.ID] = in; r.mu.Unlock() }
func (r *recorder) Update(in topology.Instance) {
	r.mu.Lock()
	r.owned[in.ID] = in
	r.mu.Unlock()
}
func (r *recorder) Disown(id string) {
	r.mu.Lock()
	delete(r.owned, id)
	r.disowned = append(r.disowned, id)
	r.mu.Unlock()
}
func (r *recorder) Trigger(id string) {
	r.mu.Lock()
	r.triggers = append(r.triggers, id)
	r.mu.Unlock()
}

func (r *recorder) check(f func(r *recorder) bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return f(r)
}

// source is provisioning's view, in memory.
type source struct{ list []topology.Instance }

func (s source) List(context.Context) ([]topology.Instance, error) { return s.list, nil }
func (s source) Get(_ context.Context, id string) (topology.Instance, error) {
	for _, in := range s.list {
		if in.ID == id {
			return in, nil
		}
	}
	return topology.Instance{}, topology.ErrNotFound
}

func instance(i int) topology.Instance {
	id := fmt.Sprintf("inst-%02d", i)
	return topology.Instance{ID: id, Tenant: "acme", Engine: topology.EngineRedis, Nodes: []topology.Node{
		{ID: id + "-0", Role: topology.RolePrimary, Address: "127.0.0.1:1"},
		{ID: id + "-1", Role: topology.RoleReplica, Address: "127.0.0.1:2"},
	}}
}

func eventually(t *testing.T, what string, cond func() bool, tick func()) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		if tick != nil {
			tick()
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestOwnershipAndSignals runs the consumers on the embedded broker: the
// instances are owned from the resync, a primary's down transition
// triggers the analysis, a completed failover moves the roles, and a
// deleting instance is disowned.
func TestOwnershipAndSignals(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logger := slog.New(slog.DiscardHandler)
	brokers := devkafkatest.Start(t, events.TopicInstances, events.TopicHealth, events.TopicFailover)
	src := source{}
	for i := range 4 {
		src.list = append(src.list, instance(i))
	}
	single := instance(9)
	single.Nodes = single.Nodes[:1] // nothing to fail over to: not watched
	src.list = append(src.list, single)
	w := &recorder{owned: map[string]topology.Instance{}}
	c, err := New(Config{Brokers: brokers, Replica: "r1", SessionTimeout: 6 * time.Second}, w, src, logger, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	runCtx, stop := context.WithCancel(ctx)
	for _, run := range []func(context.Context) error{c.RunOwnership, c.RunFollower} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(runCtx); err != nil {
				t.Errorf("run: %v", err)
			}
		}()
	}
	defer func() { stop(); wg.Wait() }()

	eventually(t, "the four instances owned", func() bool { return w.check(func(r *recorder) bool { return len(r.owned) == 4 }) }, nil)
	if parts, total := c.Owned(); len(parts) != 3 || total != 3 {
		t.Fatalf("owned partitions %v of %d, want all 3", parts, total)
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
	// The follower starts at the topic's end: publish until it hears.
	eventually(t, "a trigger from the primary's down transition", func() bool {
		return w.check(func(r *recorder) bool { return slices.Contains(r.triggers, "inst-01") })
	}, func() {
		publish(events.TopicHealth, events.TypeNodeDown, "inst-01", events.NodeTransition{InstanceID: "inst-01", TenantID: "acme",
			NodeID: "inst-01-0", Status: "down"})
	})
	// A replica going down is the analysis' business at its next tick, not a trigger.
	publish(events.TopicHealth, events.TypeNodeDown, "inst-02", events.NodeTransition{InstanceID: "inst-02", TenantID: "acme",
		NodeID: "inst-02-1", Status: "down"})
	publish(events.TopicFailover, events.TypeFailoverCompleted, "inst-01", events.Recovery{RecoveryID: "r", InstanceID: "inst-01",
		TenantID: "acme", State: "completed", Roles: map[string]string{"inst-01-0": "fenced", "inst-01-1": "primary"}})
	eventually(t, "the watcher following the new primary", func() bool {
		return w.check(func(r *recorder) bool {
			p, ok := r.owned["inst-01"].Primary()
			return ok && p.ID == "inst-01-1"
		})
	}, nil)
	if w.check(func(r *recorder) bool { return slices.Contains(r.triggers, "inst-02") }) {
		t.Fatal("a replica's down transition triggered an analysis")
	}
	// The fenced old primary comes back up: rejoin now.
	count := func() int {
		n := 0
		w.check(func(r *recorder) bool {
			for _, id := range r.triggers {
				if id == "inst-01" {
					n++
				}
			}
			return true
		})
		return n
	}
	before := count()
	publish(events.TopicHealth, events.TypeNodeUp, "inst-01", events.NodeTransition{InstanceID: "inst-01", TenantID: "acme",
		NodeID: "inst-01-0", Status: "up"})
	eventually(t, "a trigger from the fenced node's up transition", func() bool { return count() > before }, nil)
	publish(events.TopicInstances, events.TypeInstanceDeleting, "inst-03", events.Instance{InstanceID: "inst-03", TenantID: "acme",
		State: "deleting"})
	eventually(t, "the deleting instance disowned", func() bool {
		return w.check(func(r *recorder) bool {
			_, ok := r.owned["inst-03"]
			return !ok && slices.Contains(r.disowned, "inst-03")
		})
	}, nil)
}

// TestTwoReplicasShareInstances: two replicas in the group own disjoint
// shares that cover every instance; when one leaves, the other owns all.
func TestTwoReplicasShareInstances(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logger := slog.New(slog.DiscardHandler)
	broker, err := devkafka.Start(ctx, devkafka.Config{Addr: "127.0.0.1:0", Partitions: 6}, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	brokers := []string{broker.Addr()}
	if err := eventbus.EnsureTopics(ctx, brokers, eventbus.TopicSpec{Name: events.TopicInstances, Partitions: 6},
		eventbus.TopicSpec{Name: events.TopicHealth, Partitions: 6}, eventbus.TopicSpec{Name: events.TopicFailover, Partitions: 6}); err != nil {
		t.Fatal(err)
	}
	src := source{}
	for i := range 12 {
		src.list = append(src.list, instance(i))
	}
	type replica struct {
		w    *recorder
		stop func()
	}
	start := func(name string) replica {
		w := &recorder{owned: map[string]topology.Instance{}}
		c, err := New(Config{Brokers: brokers, Replica: name, SessionTimeout: 6 * time.Second}, w, src, logger, prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		runCtx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for _, run := range []func(context.Context) error{c.RunOwnership, c.RunFollower} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := run(runCtx); err != nil {
					t.Errorf("%s: %v", name, err)
				}
			}()
		}
		r := replica{w: w, stop: func() { stop(); wg.Wait() }}
		t.Cleanup(r.stop)
		return r
	}
	owned := func(r replica) map[string]bool {
		out := map[string]bool{}
		r.w.check(func(rec *recorder) bool {
			for id := range rec.owned {
				out[id] = true
			}
			return true
		})
		return out
	}
	a, b := start("a"), start("b")
	eventually(t, "disjoint shares covering every instance", func() bool {
		oa, ob := owned(a), owned(b)
		if len(oa) == 0 || len(ob) == 0 || len(oa)+len(ob) != 12 {
			return false
		}
		for id := range oa {
			if ob[id] {
				return false
			}
		}
		return true
	}, nil)
	a.stop()
	eventually(t, "the remaining replica owning every instance", func() bool { return len(owned(b)) == 12 }, nil)
}
