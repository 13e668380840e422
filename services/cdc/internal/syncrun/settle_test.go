package syncrun

import (
	"context"
	"errors"
	"github.com/canopy-platform/canopy/services/cdc/internal/gtidpos"
	"sync"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/services/cdc/internal/change"
	"github.com/canopy-platform/canopy/services/cdc/internal/syncjob"
)

func TestVerifySettlesOnTheAppliedWatermark(t *testing.T) {
	w := newWorld(t)
	w.add("src", 1)
	w.add("dst", 2)
	w.write("src", 1, op{"c", 1, "x"})
	j := job("j", syncjob.Spec{SourceInstance: "src", Target: syncjob.Target{Instance: "dst"}})
	r := newRepo(j)
	var mu sync.Mutex
	blocked := false
	w.failApply = func(string, change.Batch) error {
		mu.Lock()
		defer mu.Unlock()
		if blocked {
			return errors.New("target unreachable")
		}
		return nil
	}
	type settled struct {
		pos, applied string
		spec         VerifySpec
		err          error
	}
	got := make(chan settled, 1)
	w.verify = func(ctx context.Context, s VerifySpec) (syncjob.Report, error) {
		pos, _ := w.position(ctx, s.Source)
		mu.Lock()
		blocked = false // the target comes back while Settle waits
		mu.Unlock()
		err := s.Settle(ctx, pos)
		wm, _ := w.watermark("dst", "src")
		got <- settled{pos: pos, applied: wm.Position, spec: s, err: err}
		return syncjob.Report{Consistent: true, Tables: []syncjob.TableReport{{Table: testTable}}}, nil
	}
	m, _ := start(t, w, r)
	eventually(t, "synced", func() bool { return w.rows("dst")[1] == "x" })
	mu.Lock()
	blocked = true
	mu.Unlock()
	w.write("src", 1, op{"c", 2, "in flight"})

	v := syncjob.Verification{ID: "v1", JobID: "j", Tenant: "t1", State: syncjob.VerifyRunning, Repair: true}
	if err := m.Verify(context.Background(), j, v); err != nil {
		t.Fatal(err)
	}
	var s settled
	select {
	case s = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("verification never settled")
	}
	if s.err != nil || !gtidpos.CoversText(s.applied, s.pos, 0) {
		t.Fatalf("Settle(%q) returned %v with the watermark at %q", s.pos, s.err, s.applied)
	}
	if s.spec.RepairServerID != j.ServerID || !s.spec.Repair || len(s.spec.Tables) != 1 || s.spec.Tables[0] != testTable ||
		s.spec.Target.Addr != w.byID["dst"].addr {
		t.Fatalf("verify spec %+v", s.spec)
	}
	eventually(t, "verification stored", func() bool { return len(r.finishedVerifications()) == 1 })
	fv := r.finishedVerifications()[0]
	if fv.ID != "v1" || fv.State != syncjob.VerifyDone || !fv.Report.Consistent || fv.FinishedAt == nil {
		t.Fatalf("stored verification %+v", fv)
	}
}

func TestSettleOfAStoppedJobFails(t *testing.T) {
	w := newWorld(t)
	w.add("src", 1)
	w.add("dst", 2)
	j := job("j", syncjob.Spec{SourceInstance: "src", Target: syncjob.Target{Instance: "dst"}})
	j.State = syncjob.StatePaused
	m, _ := start(t, w, newRepo(j))
	if err := m.settle(context.Background(), j, "0-1-1"); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("settle of a paused job: %v, want ErrNotRunning", err)
	}
}

func TestSettleCountsOwnTransactionAfterGrace(t *testing.T) {
	w := newWorld(t)
	w.add("src", 1)
	w.add("dst", 2)
	w.write("src", 1, op{"c", 1, "x"})
	j := job("j", syncjob.Spec{SourceInstance: "src", Target: syncjob.Target{Instance: "dst"}})
	m, _ := start(t, w, newRepo(j))
	eventually(t, "synced", func() bool { wm, _ := w.watermark("dst", "src"); return wm.Position == "0-1-1" })
	// A position whose last transaction is the job's own that the capture
	// never passes (the fake source has no such transaction).
	own := "0-" + itoa(j.ServerID) + "-2"
	t0 := time.Now()
	if err := m.settle(context.Background(), j, own); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d < m.cfg.OwnGrace {
		t.Fatalf("settled after %v, before the grace of %v", d, m.cfg.OwnGrace)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*m.cfg.OwnGrace)
	defer cancel()
	if err := m.settle(ctx, j, "0-1-2"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("settle past the applied position of another writer: %v, want a deadline", err)
	}
}

func TestScheduledVerification(t *testing.T) {
	w := newWorld(t)
	w.add("src", 1)
	w.add("dst", 2)
	j := job("j", syncjob.Spec{SourceInstance: "src", Target: syncjob.Target{Instance: "dst"},
		VerifyEvery: syncjob.Duration(50 * time.Millisecond)})
	r := newRepo(j)
	start(t, w, r, WithNewID(func() string { return "sched" }))
	eventually(t, "scheduled verification done", func() bool {
		for _, v := range r.finishedVerifications() {
			if v.ID == "sched" && v.State == syncjob.VerifyDone {
				return true
			}
		}
		return false
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.created) == 0 || r.created[0].JobID != "j" || r.created[0].State != syncjob.VerifyRunning {
		t.Fatalf("created %+v", r.created)
	}
}

// The schedule is kept with the status: a job whose verification fell due
// while the service was down (an hourly one here) runs it once it streams
// again, and the next due time is stored.
func TestScheduleSurvivesRestart(t *testing.T) {
	w := newWorld(t)
	w.add("src", 1)
	w.add("dst", 2)
	j := job("j", syncjob.Spec{SourceInstance: "src", Target: syncjob.Target{Instance: "dst"},
		VerifyEvery: syncjob.Duration(time.Hour)})
	j.Status.NextVerification = time.Now().Add(-time.Minute)
	r := newRepo(j)
	start(t, w, r, WithNewID(func() string { return "due" }))
	eventually(t, "the overdue verification done", func() bool {
		for _, v := range r.finishedVerifications() {
			if v.ID == "due" && v.State == syncjob.VerifyDone {
				return true
			}
		}
		return false
	})
	eventually(t, "the next one stored about an hour ahead", func() bool {
		next := r.job("j").Status.NextVerification
		return next.After(time.Now().Add(59*time.Minute)) && next.Before(time.Now().Add(61*time.Minute))
	})
}

func TestVerifyOfACacheFails(t *testing.T) {
	w := newWorld(t)
	w.add("src", 1)
	w.add("cache", 2)
	j := job("j", syncjob.Spec{SourceInstance: "src", Target: syncjob.Target{RedisInstance: "cache"}})
	r := newRepo(j)
	m, _ := start(t, w, r)
	eventually(t, "manager running", func() bool { m.mu.Lock(); defer m.mu.Unlock(); return m.ctx != nil })
	if err := m.Verify(context.Background(), j, syncjob.Verification{ID: "v", JobID: "j"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "verification failed", func() bool {
		v := r.finishedVerifications()
		return len(v) == 1 && v[0].State == syncjob.VerifyFailed && v[0].Error != ""
	})
}

func TestLoadResumesFromTheWatermarkProgress(t *testing.T) {
	w := newWorld(t)
	w.add("src", 1)
	w.add("dst", 2)
	for i := int64(1); i <= 5; i++ {
		w.write("src", 1, op{"c", i, "r"})
	}
	var once sync.Once
	w.failApply = func(_ string, b change.Batch) error {
		var err error
		if len(b.Messages) > 0 && b.Messages[0].Change.Op == "r" && b.Messages[0].Change.After[0] == int64(3) {
			once.Do(func() { err = errors.New("connection lost") })
		}
		return err
	}
	r := newRepo(job("j", syncjob.Spec{SourceInstance: "src", Target: syncjob.Target{Instance: "dst"}}))
	// One chunk per target transaction, so the first is committed alone.
	start(t, w, r, func(m *Manager) { m.cfg.ApplyRows = 1 })
	eventually(t, "loaded", func() bool {
		wm, _ := w.watermark("dst", "src")
		return len(w.rows("dst")) == 5 && wm.Position == "0-1-5" && wm.Load == nil
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.resumes) != 2 || w.resumes[0] != nil || w.resumes[1] == nil {
		t.Fatalf("loads resumed with %v, want a fresh one then a resume", w.resumes)
	}
	if k := w.resumes[1].Tables[0].LastKey; len(k) != 1 || k[0] != float64(2) {
		t.Fatalf("resumed after key %v, want 2 (the last chunk applied)", k)
	}
	if got := r.job("j").State; got != syncjob.StateRunning {
		t.Fatalf("state %s after the load", got)
	}
	found := false
	r.mu.Lock()
	for _, s := range r.states {
		found = found || s == "j:loading:"
	}
	r.mu.Unlock()
	if !found {
		t.Fatal("state loading was never stored")
	}
}

func itoa(n uint32) string {
	b := []byte{}
	for {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
		if n == 0 {
			return string(b)
		}
	}
}
