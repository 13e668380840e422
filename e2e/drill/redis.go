package drill

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisAuth is the user a Redis store or prober logs in as (empty: the
// default user).
type RedisAuth struct {
	Username, Password string
}

// redisClients keeps one small client per node address.
type redisClients struct {
	auth RedisAuth
	mu   sync.Mutex
	by   map[string]*redis.Client
}

func (c *redisClients) get(addr string) *redis.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.by == nil {
		c.by = map[string]*redis.Client{}
	}
	cl, ok := c.by[addr]
	if !ok {
		// Short timeouts: a dead node must fail a write in milliseconds,
		// and go-redis must not retry on its own (the writer decides): one
		// dial attempt, no command retries.
		cl = redis.NewClient(&redis.Options{Addr: addr, Username: c.auth.Username, Password: c.auth.Password,
			DialTimeout: 100 * time.Millisecond, DialerRetries: 1, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond,
			MaxRetries: -1, PoolSize: 4, Protocol: 2, ContextTimeoutEnabled: true})
		c.by[addr] = cl
	}
	return cl
}

// drop closes and forgets the client of addr after a failure: go-redis
// keeps a pool's last dial error for up to a second, which would hide a
// node coming back; a fresh client dials at once.
func (c *redisClients) drop(addr string) {
	c.mu.Lock()
	cl, ok := c.by[addr]
	delete(c.by, addr)
	c.mu.Unlock()
	if ok {
		_ = cl.Close()
	}
}

func (c *redisClients) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, cl := range c.by {
		errs = append(errs, cl.Close())
	}
	c.by = nil
	return errors.Join(errs...)
}

// RedisStore writes record seq as SET <prefix><seq> <seq> followed by
// WAIT 1 <waitMS>: acknowledged when the SET succeeded and at least one
// replica confirmed it.
type RedisStore struct {
	prefix  string
	waitMS  int
	clients redisClients
}

// NewRedisStore returns a store writing keys under prefix.
func NewRedisStore(prefix string, auth RedisAuth, wait time.Duration) *RedisStore {
	return &RedisStore{prefix: prefix, waitMS: int(wait / time.Millisecond), clients: redisClients{auth: auth}}
}

var _ Store = (*RedisStore)(nil)

// Write is SET then WAIT 1, on one connection (a pipeline).
func (s *RedisStore) Write(ctx context.Context, addr string, seq int64) error {
	cl := s.clients.get(addr)
	var wait *redis.Cmd
	_, err := cl.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.prefix+strconv.FormatInt(seq, 10), seq, 0)
		wait = p.Do(ctx, "WAIT", 1, s.waitMS)
		return nil
	})
	if err != nil {
		s.clients.drop(addr)
		return fmt.Errorf("SET+WAIT on %s: %w", addr, err)
	}
	if n, err := wait.Int64(); err != nil || n < 1 {
		return fmt.Errorf("WAIT 1 %d on %s: %d replicas acknowledged", s.waitMS, addr, n)
	}
	return nil
}

// Missing reads the keys back with MGET in batches.
func (s *RedisStore) Missing(ctx context.Context, addr string, seqs []int64) ([]int64, error) {
	cl := s.clients.get(addr)
	var missing []int64
	for start := 0; start < len(seqs); start += 500 {
		batch := seqs[start:min(start+500, len(seqs))]
		keys := make([]string, len(batch))
		for i, q := range batch {
			keys[i] = s.prefix + strconv.FormatInt(q, 10)
		}
		// A fresh read may race the first connection to a just-promoted
		// node; retry a little before calling the write lost.
		var vals []any
		var err error
		for try := 0; try < 20; try++ {
			if vals, err = cl.MGet(ctx, keys...).Result(); err == nil {
				break
			}
			if sleepUntil(ctx, time.Now().Add(50*time.Millisecond)) != nil {
				break
			}
		}
		if err != nil {
			return nil, fmt.Errorf("MGET on %s: %w", addr, err)
		}
		for i, v := range vals {
			if str, ok := v.(string); !ok || str != strconv.FormatInt(batch[i], 10) {
				missing = append(missing, batch[i])
			}
		}
	}
	return missing, nil
}

// Close closes the store's clients.
func (s *RedisStore) Close() error { return s.clients.Close() }

// RedisProber decides "accepts writes" by writing: SET on a probe key,
// which a replica refuses (READONLY), as does a primary short of its
// min-replicas-to-write (NOREPLICAS). When the user may run ROLE, a node
// that says it is a replica is not probed further.
type RedisProber struct {
	key     string
	clients redisClients
}

// NewRedisProber returns a prober writing the key probeKey.
func NewRedisProber(probeKey string, auth RedisAuth) *RedisProber {
	return &RedisProber{key: probeKey, clients: redisClients{auth: auth}}
}

var _ Prober = (*RedisProber)(nil)

// Writable reports whether the node at addr accepted a SET now.
func (p *RedisProber) Writable(ctx context.Context, addr string) bool {
	cl := p.clients.get(addr)
	role, err := cl.Do(ctx, "ROLE").Slice()
	if err == nil && len(role) > 0 {
		if r, _ := role[0].(string); r != "master" {
			return false
		}
	} else if err != nil && !strings.Contains(err.Error(), "NOPERM") {
		p.clients.drop(addr)
		return false
	}
	err = cl.Set(ctx, p.key, time.Now().UnixNano(), 0).Err()
	if err != nil && !isRedisReply(err) {
		p.clients.drop(addr)
	}
	return err == nil
}

// Close closes the prober's clients.
func (p *RedisProber) Close() error { return p.clients.Close() }

// isRedisReply reports whether err is an error the server answered (such as
// READONLY), not a broken connection.
func isRedisReply(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}
