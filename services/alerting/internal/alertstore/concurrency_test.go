package alertstore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
)

// Concurrent batches over overlapping alerts all commit (rows are locked in
// fingerprint order, so they do not deadlock).
func TestUpsertAlertsConcurrently(t *testing.T) {
	t.Parallel()
	s, db := newAlertStore(t)
	ctx := context.Background()
	const writers, rounds, size = 6, 8, 300
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), 1))
			for r := range rounds {
				batch := make([]*alert.Alert, size)
				for i := range batch {
					batch[i] = firing(t0.Add(time.Duration(r)*time.Second), "alertname", "Load",
						"instance", fmt.Sprintf("i-%d", rnd.IntN(1000)), "tenant", "t1")
				}
				errs <- s.UpsertAlerts(ctx, batch, nil)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.LessOrEqual(t, count(t, db, "SELECT COUNT(*) FROM alerts"), 1000)
}
