package tenancy

import (
	"crypto/sha256"
	"fmt"
	"sync"
	"time"
)

// replayShards spreads the cache over independently locked maps.
const replayShards = 16

// replayKey is half a signature: 128 bits make an accidental collision
// between two genuine signatures negligible and halve the memory.
type replayKey [16]byte

// replayCache remembers accepted signatures for as long as they could be
// replayed. Each shard keeps two generations of period each: an entry
// inserted at time t stays until at least t+period, and a signature is
// accepted at most validity+2*skew (= period) after the verifier first saw it,
// so by the time a generation is dropped none of its signatures would pass the
// freshness check anyway. The size bound is per generation.
type replayCache struct {
	period   time.Duration
	perShard int
	shards   [replayShards]replayShard
}

type replayShard struct {
	mu        sync.Mutex
	start     time.Time
	cur, prev map[replayKey]struct{}
}

func newReplayCache(period time.Duration, size int) *replayCache {
	c := &replayCache{period: period, perShard: max(1, size/replayShards)}
	for i := range c.shards {
		c.shards[i].cur = map[replayKey]struct{}{}
		c.shards[i].prev = map[replayKey]struct{}{}
	}
	return c
}

// add records sig seen at now, or returns ErrReplayed if it was seen before
// (or ErrReplayCacheFull when the current generation is full).
func (c *replayCache) add(sig [sha256.Size]byte, now time.Time) error {
	var k replayKey
	copy(k[:], sig[:])
	s := &c.shards[k[0]%replayShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := now.Sub(s.start); d >= c.period {
		clear(s.prev)
		if d >= 2*c.period { // idle for a while: everything in cur is stale too
			clear(s.cur)
		}
		s.prev, s.cur = s.cur, s.prev
		s.start = now
	}
	if _, ok := s.cur[k]; ok {
		return ErrReplayed
	}
	if _, ok := s.prev[k]; ok {
		return ErrReplayed
	}
	if len(s.cur) >= c.perShard {
		return fmt.Errorf("%w: %d signatures in the last %s", ErrReplayCacheFull, len(s.cur), c.period)
	}
	s.cur[k] = struct{}{}
	return nil
}
