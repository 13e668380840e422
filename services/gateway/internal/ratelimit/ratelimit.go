// Package ratelimit limits requests per tenant with a token bucket kept in
// Redis (go-redis/redis_rate, GCRA), shared by every gateway replica. To keep
// a Redis round trip off most requests, each process takes tokens from Redis
// in small batches and hands them out locally; unused local tokens expire
// quickly, so a replica can never admit more than Redis granted it — the
// limit holds exactly, and the cost is that a replica whose callers stop may
// be left holding tokens it never hands out: the rest of one batch plus one
// batch prefetched in the background, so under two batches per replica and
// tenant. It knows nothing of HTTP.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// Limit is a token bucket: RPS tokens per second, at most Burst at once.
type Limit struct {
	RPS   int
	Burst int
}

// Decision is the outcome of Allow.
type Decision struct {
	Allowed bool
	// Limit is the bucket size (burst) reported in RateLimit-Limit.
	Limit int
	// Remaining approximates the tokens left.
	Remaining int
	// RetryAfter is when to try again; set when !Allowed.
	RetryAfter time.Duration
	// ResetAfter is when the bucket is full again.
	ResetAfter time.Duration
}

// Config tunes the Limiter.
type Config struct {
	// Prefix namespaces the Redis keys (e.g. "canopy:rl:"); tests use a unique one.
	Prefix string
	// MaxBatch caps how many tokens a process takes from Redis at once.
	// The batch is also capped at Burst/10, so small limits are exact per request.
	MaxBatch int
	// LocalTTL is how long locally held tokens may be spent.
	LocalTTL time.Duration
	// Timeout bounds one Redis call.
	Timeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.MaxBatch <= 0 {
		c.MaxBatch = 64
	}
	if c.LocalTTL <= 0 {
		c.LocalTTL = 250 * time.Millisecond
	}
	if c.Timeout <= 0 {
		c.Timeout = 250 * time.Millisecond
	}
	return c
}

type bucket struct {
	mu         sync.Mutex
	tokens     int
	expires    time.Time
	remaining  int // Redis' remaining at the last refill
	resetAt    time.Time
	deniedTill time.Time
	retryAfter time.Duration
	refilling  bool // a refill runs in the background
}

// Limiter is a per-key rate limiter backed by Redis.
type Limiter struct {
	rl  *redis_rate.Limiter
	cfg Config
	now func() time.Time

	mu      sync.RWMutex
	buckets map[string]*bucket
}

// New returns a Limiter on rdb.
func New(rdb redis.UniversalClient, cfg Config, now func() time.Time) (*Limiter, error) {
	if rdb == nil {
		return nil, errors.New("new rate limiter: nil redis client")
	}
	if now == nil {
		now = time.Now
	}
	return &Limiter{rl: redis_rate.NewLimiter(rdb), cfg: cfg.withDefaults(), now: now, buckets: map[string]*bucket{}}, nil
}

func (l *Limiter) bucket(key string) *bucket {
	l.mu.RLock()
	b := l.buckets[key]
	l.mu.RUnlock()
	if b != nil {
		return b
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if b = l.buckets[key]; b == nil {
		b = &bucket{}
		l.buckets[key] = b
	}
	return b
}

// Allow takes one token for key under lim. On a Redis error it returns the
// error and a Decision that allows the request (callers choose fail-open or not).
func (l *Limiter) Allow(ctx context.Context, key string, lim Limit) (Decision, error) {
	if lim.RPS <= 0 || lim.Burst <= 0 {
		return Decision{Allowed: true}, nil
	}
	b := l.bucket(key)
	now := l.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	batch := min(l.cfg.MaxBatch, max(1, lim.Burst/10))
	if b.tokens > 0 && now.Before(b.expires) {
		b.tokens--
		// Fetch the next batch before this one runs out, so requests do not
		// queue behind a Redis round trip. Only for batches large enough that
		// holding a few tokens ahead cannot matter; small limits stay exact.
		if batch >= minPrefetchBatch && b.tokens < batch/2 && !b.refilling {
			b.refilling = true
			go l.refill(b, key, lim, batch)
		}
		return l.decision(b, lim, now, true), nil
	}
	if now.Before(b.deniedTill) {
		return l.decision(b, lim, now, false), nil
	}
	rctx, cancel := context.WithTimeout(ctx, l.cfg.Timeout)
	res, err := l.rl.AllowAtMost(rctx, l.cfg.Prefix+key, redis_rate.Limit{Rate: lim.RPS, Burst: lim.Burst, Period: time.Second}, batch)
	cancel()
	if err != nil {
		return Decision{Allowed: true, Limit: lim.Burst}, fmt.Errorf("rate limit %s: %w", key, err)
	}
	b.remaining = res.Remaining
	b.resetAt = now.Add(res.ResetAfter)
	if res.Allowed == 0 {
		b.tokens = 0
		b.retryAfter = max(res.RetryAfter, time.Millisecond)
		// Remember the refusal briefly so a flood does not become a Redis flood.
		b.deniedTill = now.Add(min(b.retryAfter, 50*time.Millisecond))
		return l.decision(b, lim, now, false), nil
	}
	b.tokens = res.Allowed - 1
	b.expires = now.Add(l.cfg.LocalTTL)
	b.deniedTill = time.Time{}
	return l.decision(b, lim, now, true), nil
}

// minPrefetchBatch is the smallest batch that is refilled ahead of need.
const minPrefetchBatch = 8

// refill takes the next batch for b from Redis in the background and adds it
// to the local tokens; a refusal or an error leaves b as it is, and the next
// request that finds b empty asks Redis itself.
func (l *Limiter) refill(b *bucket, key string, lim Limit, batch int) {
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.Timeout)
	res, err := l.rl.AllowAtMost(ctx, l.cfg.Prefix+key, redis_rate.Limit{Rate: lim.RPS, Burst: lim.Burst, Period: time.Second}, batch)
	cancel()
	now := l.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refilling = false
	if err != nil || res.Allowed == 0 {
		return
	}
	if !now.Before(b.expires) {
		b.tokens = 0 // what was left has expired
	}
	b.tokens += res.Allowed
	b.expires = now.Add(l.cfg.LocalTTL)
	b.remaining = res.Remaining
	b.resetAt = now.Add(res.ResetAfter)
}

func (l *Limiter) decision(b *bucket, lim Limit, now time.Time, allowed bool) Decision {
	d := Decision{Allowed: allowed, Limit: lim.Burst, Remaining: b.remaining + b.tokens, ResetAfter: max(0, b.resetAt.Sub(now))}
	if !allowed {
		d.Remaining = 0
		d.RetryAfter = max(b.retryAfter-now.Sub(b.deniedTill.Add(-min(b.retryAfter, 50*time.Millisecond))), time.Millisecond)
	}
	return d
}
