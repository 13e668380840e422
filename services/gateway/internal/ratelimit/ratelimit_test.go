package ratelimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func newLimiter(t *testing.T) (*Limiter, redis.UniversalClient) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	t.Cleanup(func() { _ = rdb.Close() })
	var b [6]byte
	_, _ = rand.Read(b[:])
	l, err := New(rdb, Config{Prefix: "test:rl:" + hex.EncodeToString(b[:]) + ":"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l, rdb
}

func TestBurstThenDeny(t *testing.T) {
	l, _ := newLimiter(t)
	ctx := context.Background()
	lim := Limit{RPS: 1, Burst: 5}
	allowed := 0
	var last Decision
	for range 10 {
		d, err := l.Allow(ctx, "t:a", lim)
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed {
			allowed++
		}
		last = d
	}
	if allowed != 5 {
		t.Fatalf("allowed %d, want 5", allowed)
	}
	if last.Allowed || last.RetryAfter <= 0 || last.Remaining != 0 {
		t.Fatalf("last decision %+v", last)
	}
	if d, _ := l.Allow(ctx, "t:b", lim); !d.Allowed {
		t.Fatal("another key must be unaffected")
	}
}

// TestBatchedLimitHolds checks that local batching never admits more than
// the bucket allows, across two limiters (two gateway replicas).
func TestBatchedLimitHolds(t *testing.T) {
	a, rdb := newLimiter(t)
	b, err := New(rdb, a.cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	lim := Limit{RPS: 10, Burst: 1000} // batch of 64 per replica
	var ok atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for _, l := range []*Limiter{a, b} {
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 200 {
					if d, err := l.Allow(context.Background(), "t:shared", lim); err == nil && d.Allowed {
						ok.Add(1)
					}
				}
			}()
		}
	}
	wg.Wait()
	max := int64(1000 + 10*time.Since(start).Seconds() + 1)
	// Tokens a replica still holds at the end go unused: under two batches
	// per replica (one it spends from, one fetched ahead or concurrently).
	const min = 1000 - 2*2*64
	if got := ok.Load(); got > max || got < min {
		t.Fatalf("admitted %d of 3200, want between %d and %d", got, min, max)
	}
}
