package saga

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/retry"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/memrepo"
)

// The saga's tests drive it step by step without Kafka, a database or
// processes: the in-memory repository (its outbox records what would be
// published), a fake driver and engine admin that record calls and fail on
// demand, and a clock the test moves. Kicks are drained by the test
// (settle) instead of Run's workers, so every test is deterministic.

const tenant = "acme"

// redisPlan is a 3-node multi-az plan (one primary, two replicas).
func redisPlan() instance.Plan {
	return instance.Plan{ID: "redis-ha", Name: "redis-ha", Engine: instance.EngineRedis, DeploymentMode: instance.ModeMultiAZ,
		ReplicationMode: instance.ReplicationAsync,
		Nodes: []instance.NodeTemplate{
			{Role: instance.RolePrimary, RegionRole: instance.RegionPrimary},
			{Role: instance.RoleReplica, RegionRole: instance.RegionPrimary},
			{Role: instance.RoleReplica, RegionRole: instance.RegionPrimary},
		},
		Resources: instance.Resources{VCPU: 1, MemoryMB: 256, StorageGB: 1}}
}

type harness struct {
	t     *testing.T
	ctx   context.Context
	cfg   Config
	repo  *memrepo.Repo
	drv   *fakeDriver
	eng   *fakeEngine
	clock *fakeClock
	saga  *Saga
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	cfg.DataRoot = "/canopy-test"
	h := &harness{t: t, ctx: ctx, cfg: cfg, repo: memrepo.New(), drv: newFakeDriver(), eng: &fakeEngine{},
		clock: &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}
	h.saga = h.newSaga(h.drv)
	return h
}

func (h *harness) newSaga(drv *fakeDriver) *Saga {
	h.t.Helper()
	s, err := New(h.cfg, h.repo, drv, h.eng, slog.New(slog.DiscardHandler), h.clock.Now, Hooks{})
	if err != nil {
		h.t.Fatal(err)
	}
	// Retries in milliseconds, so that a step failing until its timeout
	// tries many times within a test's budget.
	s.stepRetry = retry.Policy{Initial: time.Millisecond, Max: 2 * time.Millisecond, Multiplier: 2}
	return s
}

// restart replaces the saga and the driver with those of a new process:
// the same database and disk, nothing adopted, no hooks or failures.
func (h *harness) restart() {
	h.t.Helper()
	h.drv = h.drv.restart()
	h.saga = h.newSaga(h.drv)
	if err := h.saga.Resume(h.ctx); err != nil {
		h.t.Fatalf("resume: %v", err)
	}
}

// haltAt makes the saga stop before step, as a crash there would.
func (h *harness) haltAt(step instance.Step) {
	h.saga.hooks.BeforeStep = func(_ context.Context, _ string, s instance.Step) error {
		if s == step {
			return fmt.Errorf("crash before %s", s)
		}
		return nil
	}
}

// settle drives every kicked instance until no kick is left: what Run's
// workers do, in the test's goroutine.
func (h *harness) settle() {
	h.t.Helper()
	for range 1000 {
		select {
		case id := <-h.saga.kicks:
			h.saga.drive(h.ctx, id)
		default:
			return
		}
	}
	h.t.Fatal("saga keeps kicking itself")
}

// sweep is the periodic sweep, then settle.
func (h *harness) sweep() {
	h.t.Helper()
	h.saga.sweep(h.ctx)
	h.settle()
}

func (h *harness) order(name string) *instance.Instance {
	h.t.Helper()
	in, _, err := h.saga.Order(h.ctx, OrderRequest{Tenant: tenant, Name: name, Plan: redisPlan(), Version: "7.0"})
	if err != nil {
		h.t.Fatalf("order: %v", err)
	}
	return in
}

// decision is scheduling's answer for in: one node per plan node.
func decision(in *instance.Instance, tenant string) events.PlacementDecided {
	d := events.PlacementDecided{InstanceID: in.ID, TenantID: tenant, Kind: events.KindNew, DeploymentMode: in.Plan.DeploymentMode}
	for i, t := range in.Plan.Nodes {
		d.Nodes = append(d.Nodes, events.PlacedNode{Name: instance.NodeName(i), Role: string(t.Role), Region: "eu-1",
			AZ: fmt.Sprintf("eu-1%c", 'a'+i), Host: "127.0.0.1", Port: 17000 + i})
	}
	return d
}

func (h *harness) place(in *instance.Instance) {
	h.t.Helper()
	if err := h.saga.OnPlacementDecided(h.ctx, decision(in, tenant)); err != nil {
		h.t.Fatalf("placement decided: %v", err)
	}
}

// ready orders an instance and drives it to ready.
func (h *harness) ready(name string) *instance.Instance {
	h.t.Helper()
	in := h.order(name)
	h.place(in)
	h.settle()
	in = h.get(in.ID)
	if in.State != instance.StateReady {
		h.t.Fatalf("instance %s/%s, want ready (%s)", in.State, in.Step, in.Reason)
	}
	return in
}

func (h *harness) get(id string) *instance.Instance {
	h.t.Helper()
	in, err := h.repo.GetAnyTenant(h.ctx, id)
	if err != nil {
		h.t.Fatal(err)
	}
	return in
}

func (h *harness) op(in *instance.Instance) instance.Operation {
	h.t.Helper()
	op, err := h.repo.Operation(h.ctx, in.Tenant, in.OperationID)
	if err != nil {
		h.t.Fatal(err)
	}
	return op
}

// eventTypes are the types of the events committed about instance id, in
// order.
func (h *harness) eventTypes(id string) []string {
	var out []string
	for _, o := range h.repo.Outbox() {
		if o.Event.Subject == id {
			out = append(out, o.Event.Type)
		}
	}
	return out
}

// wantEvents checks the events committed about id, in order.
func (h *harness) wantEvents(id string, want ...string) {
	h.t.Helper()
	if got := h.eventTypes(id); !slices.Equal(got, want) {
		h.t.Fatalf("events = %v, want %v", got, want)
	}
}

// wantFailed checks a rolled-back create: failed with a reason containing
// reason, the operation failed, every node destroyed and nothing left on
// the driver's disk, the failed event last.
func (h *harness) wantFailed(id, reason string) *instance.Instance {
	h.t.Helper()
	in := h.get(id)
	if in.State != instance.StateFailed || !strings.Contains(in.Reason, reason) {
		h.t.Fatalf("instance %s/%s reason %q, want failed with %q", in.State, in.Step, in.Reason, reason)
	}
	if op := h.op(in); op.State != instance.OpFailed || op.Error != in.Reason {
		h.t.Fatalf("operation %+v, want failed with the instance's reason", op)
	}
	for _, n := range in.Nodes {
		if n.State != instance.NodeDestroyed && n.State != instance.NodePending {
			h.t.Fatalf("node %s %s after rollback", n.ID, n.State)
		}
	}
	if n := h.drv.onDisk(); n != 0 {
		h.t.Fatalf("%d nodes left on disk after rollback", n)
	}
	if got := h.eventTypes(id); len(got) == 0 || got[len(got)-1] != events.TypeInstanceFailed {
		h.t.Fatalf("events %v, want %s last", got, events.TypeInstanceFailed)
	}
	return in
}
