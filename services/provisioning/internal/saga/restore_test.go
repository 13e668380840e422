package saga

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/port"
)

// fakeRestores stands in for the backup service's restore jobs: the test
// sets a job's state; Done calls are recorded.
type fakeRestores struct {
	mu   sync.Mutex
	jobs map[string]port.RestoreJob
	err  error
	done []string
}

func (f *fakeRestores) Job(_ context.Context, _ string, id string) (port.RestoreJob, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return port.RestoreJob{}, f.err
	}
	j, ok := f.jobs[id]
	if !ok {
		return port.RestoreJob{}, port.ErrNotFound
	}
	return j, nil
}

func (f *fakeRestores) Done(_ context.Context, _ string, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.done = append(f.done, id)
	return nil
}

func (f *fakeRestores) set(j port.RestoreJob) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jobs[j.ID] = j
}

func (f *fakeRestores) doneCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.done...)
}

// restoreHarness is a harness whose saga follows fake restore jobs and
// never re-polls by itself (the test sweeps).
func restoreHarness(t *testing.T) (*harness, *fakeRestores) {
	h := newHarness(t, Config{RestorePoll: time.Hour, RestoreTimeout: time.Hour, ProvisionTimeout: 10 * time.Minute})
	r := &fakeRestores{jobs: map[string]port.RestoreJob{}}
	h.saga.WithRestores(r)
	return h, r
}

// orderRestored orders an instance made from restore job r1 and places it.
func (h *harness) orderRestored(name string) *instance.Instance {
	h.t.Helper()
	in, _, err := h.saga.Order(h.ctx, OrderRequest{Tenant: tenant, Name: name, Plan: redisPlan(), Version: "7.0", ID: "restored-" + name,
		Restore: &instance.Restore{ID: "r1", SourceInstanceID: "src", BackupID: "b1"}})
	if err != nil {
		h.t.Fatalf("order: %v", err)
	}
	if in.ID != "restored-"+name || in.Restore == nil || in.Restore.ID != "r1" {
		h.t.Fatalf("ordered %s with restore %+v", in.ID, in.Restore)
	}
	h.place(in)
	return in
}

// A restored instance waits in restoring while the job runs (its phase on
// the operation), then every node is created from the job's seed, the
// backup service is told the seed was taken, and the instance gets ready.
func TestRestoreReady(t *testing.T) {
	h, jobs := restoreHarness(t)
	jobs.set(port.RestoreJob{ID: "r1", Status: port.RestoreRunning, Phase: "replaying"})
	in := h.orderRestored("db")
	h.settle()
	got := h.get(in.ID)
	if got.State != instance.StateProvisioning || got.Step != instance.StepRestoring {
		t.Fatalf("while the job runs: %s/%s (%s), want provisioning/restoring", got.State, got.Step, got.Reason)
	}
	if op := h.op(got); op.Step != instance.StepRestoring || op.StepDetail != "replaying" {
		t.Fatalf("operation step %s detail %q, want restoring / replaying", op.Step, op.StepDetail)
	}
	if n := h.drv.count("create", ""); n != 0 {
		t.Fatalf("%d nodes created before the seed is ready", n)
	}

	// Long past the provision timeout since the order: it counts from the
	// seed, not from the order.
	h.clock.Advance(30 * time.Minute)
	jobs.set(port.RestoreJob{ID: "r1", Status: port.RestoreReady, Seed: "/seeds/r1"})
	h.sweep()
	got = h.get(in.ID)
	if got.State != instance.StateReady {
		t.Fatalf("after the job is ready: %s/%s (%s), want ready", got.State, got.Step, got.Reason)
	}
	if got.Restore == nil || got.Restore.Seed != "/seeds/r1" {
		t.Fatalf("restore recorded as %+v, want the seed", got.Restore)
	}
	if n := h.drv.count("create", ""); n != 3 {
		t.Fatalf("driver created %d nodes, want 3", n)
	}
	for _, n := range got.Nodes {
		if spec := h.drv.disk.nodes[n.ID].spec; spec.Seed != "/seeds/r1" {
			t.Fatalf("node %s created with seed %q, want /seeds/r1", n.ID, spec.Seed)
		}
	}
	if op := h.op(got); op.State != instance.OpSucceeded || op.StepDetail != "" {
		t.Fatalf("operation %+v, want succeeded without a step detail", op)
	}
	if done := jobs.doneCalls(); len(done) != 1 || done[0] != "r1" {
		t.Fatalf("done calls %v, want [r1]", done)
	}
	h.wantEvents(in.ID, events.TypeInstanceRequested, events.TypePlacementRequested, events.TypeInstanceReady)
}

// A failed restore job, one the backup service does not know, or one not
// ready within the restore timeout rolls the create back with a reason
// starting "restore: ".
func TestRestoreRollsBack(t *testing.T) {
	tests := []struct {
		name   string
		job    *port.RestoreJob
		wait   time.Duration
		reason string
	}{
		{"failed", &port.RestoreJob{ID: "r1", Status: port.RestoreFailed, Error: "object b1/data: checksum mismatch"}, 0,
			"restore: object b1/data: checksum mismatch"},
		{"unknown job", nil, 0, "restore: job r1 is unknown"},
		{"timeout", &port.RestoreJob{ID: "r1", Status: port.RestoreRunning, Phase: "fetching"}, 61 * time.Minute,
			"restore: not ready within 1h0m0s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, jobs := restoreHarness(t)
			if tc.job != nil {
				jobs.set(*tc.job)
			}
			in := h.orderRestored("db")
			h.settle()
			if tc.wait > 0 {
				if got := h.get(in.ID); got.Step != instance.StepRestoring {
					t.Fatalf("step %s before the timeout, want restoring", got.Step)
				}
				h.clock.Advance(tc.wait)
				h.sweep()
			}
			h.wantFailed(in.ID, tc.reason)
			if n := h.drv.count("create", ""); n != 0 {
				t.Fatalf("%d nodes created for a restore that did not succeed", n)
			}
		})
	}
}

// A backup service that does not answer leaves the instance restoring
// (asked again later), not failed.
func TestRestoreBackupServiceDown(t *testing.T) {
	h, jobs := restoreHarness(t)
	jobs.err = errors.New("backup: service unavailable")
	in := h.orderRestored("db")
	h.settle()
	if got := h.get(in.ID); got.State != instance.StateProvisioning || got.Step != instance.StepRestoring {
		t.Fatalf("%s/%s (%s), want still restoring", got.State, got.Step, got.Reason)
	}
}
