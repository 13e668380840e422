package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/canopy-platform/canopy/libs/store"
)

// Process is the gateway as its own binary runs it: it owns its database
// and Redis connections, opened from Config when it runs and closed when it
// stops, where New takes them from a caller that shares them (all-in-one,
// tests).
type Process struct {
	cfg  Config
	deps Deps
}

// NewProcess checks cfg and deps (whose DB and Redis must be nil: the
// process opens its own) and returns the process, not yet connected.
func NewProcess(cfg Config, deps Deps) (*Process, error) {
	if cfg.Store.Database == "" {
		cfg.Store.Database = DefaultDatabase
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new gateway: %w", err)
	}
	if deps.Logger == nil || deps.Registry == nil {
		return nil, errors.New("new gateway: logger and registry are required")
	}
	if deps.DB != nil || deps.Redis != nil {
		return nil, errors.New("new gateway: a process opens its own db and redis")
	}
	return &Process{cfg: cfg, deps: deps}, nil
}

// Run opens the database and Redis, then builds and runs the gateway until
// ctx ends, and closes both once it has stopped.
func (p *Process) Run(ctx context.Context) error {
	logger := p.deps.Logger.With("service", "gateway")
	db, err := store.Open(ctx, p.cfg.Store, logger)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	defer func() {
		if err := db.Close(); err != nil {
			logger.Warn("close database", "err", err)
		}
	}()
	rdb := NewRedis(p.cfg)
	defer func() {
		if err := rdb.Close(); err != nil {
			logger.Warn("close redis", "err", err)
		}
	}()
	deps := p.deps
	deps.DB, deps.Redis = db, rdb
	svc, err := New(p.cfg, deps)
	if err != nil {
		return err
	}
	return svc.Run(ctx)
}

// NewRedis returns the client of the Redis Config names, sized for the
// rate limiter and the auth throttle on every request.
func NewRedis(cfg Config) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: cfg.RedisAddr, PoolSize: 64, MinIdleConns: 4,
		ReadTimeout: time.Second, WriteTimeout: time.Second})
}
