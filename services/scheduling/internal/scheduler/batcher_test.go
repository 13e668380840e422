package scheduler_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/store/storetest"
	"github.com/canopy-platform/canopy/services/scheduling/internal/scheduler"
)

// TestBatcherAnswersEveryCaller: many callers at once, some giving up
// before their answer; every request is placed exactly once and the ones
// still waiting get their own decision.
func TestBatcherAnswersEveryCaller(t *testing.T) {
	cfg := storetest.NewConfig(t, "sched_batcher")
	db, repo := open(t, cfg)
	if _, err := repo.Seed(context.Background(), tightInventory(), "test"); err != nil {
		t.Fatal(err)
	}
	s := newScheduler(t, repo, scheduler.Config{}, nil)
	b := scheduler.NewBatcher(s, scheduler.BatcherConfig{MaxBatch: 3, Flushers: 2})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ctx := context.Background()
			if i%4 == 3 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, time.Microsecond)
				defer cancel()
			}
			id := fmt.Sprintf("inst-%d", i)
			d, err := b.Place(ctx, multiAZ(id))
			if ctx.Err() != nil {
				return
			}
			if err != nil || d.InstanceID != id || len(d.Nodes) != 3 {
				t.Errorf("%s: %+v %v", id, d, err)
			}
		}(i)
	}
	wg.Wait()
	// Callers that gave up: their requests are still placed.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		_ = db.SQL().QueryRow("SELECT COUNT(*) FROM placements WHERE status = 'reserved'").Scan(&n)
		if n == 8 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 8 placed", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	checkNoOvercommit(t, db)
}
