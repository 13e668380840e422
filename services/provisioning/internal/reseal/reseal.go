// Package reseal runs the background pass that moves stored credentials to
// the current secrets key after a key rotation: at start and then every
// Interval it asks the store to re-seal what is still under a previous key,
// and reports how much is left (canopy_provisioning_secrets_unresealed), so
// an operator knows when the previous key can be removed. It does not hold
// keys or touch SQL itself.
package reseal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/services/provisioning/internal/mysqlrepo"
)

// DefaultBatch is how many rows a pass looks at per query when Config.Batch
// is zero.
const DefaultBatch = 100

// Config tunes the resealer.
type Config struct {
	// Interval between passes after the one at start; zero runs only the
	// pass at start (enough for one replica; with several, a replica still
	// sealing with the old key during a rolling restart leaves values that
	// a later pass picks up).
	Interval time.Duration `yaml:"interval" env:"INTERVAL" default:"10m"`
	// Batch is how many candidate rows a pass reads per query.
	Batch int `yaml:"batch" env:"BATCH" default:"100"`
}

// Validate reports configuration errors.
func (c Config) Validate() error {
	if c.Interval < 0 || c.Batch < 0 {
		return errors.New("reseal: interval and batch must not be negative")
	}
	return nil
}

// Store re-seals stored values under the current key.
type Store interface {
	Reseal(ctx context.Context, batch int) (mysqlrepo.ResealResult, error)
}

// Resealer runs re-sealing passes.
type Resealer struct {
	cfg        Config
	store      Store
	logger     *slog.Logger
	unresealed prometheus.Gauge
	resealed   prometheus.Counter
	failures   prometheus.Counter
}

// New returns a resealer; reg receives its metrics.
func New(cfg Config, store Store, logger *slog.Logger, reg prometheus.Registerer) (*Resealer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if store == nil || logger == nil || reg == nil {
		return nil, errors.New("reseal: nil store, logger or registerer")
	}
	if cfg.Batch == 0 {
		cfg.Batch = DefaultBatch
	}
	r := &Resealer{
		cfg: cfg, store: store, logger: logger,
		unresealed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "canopy_provisioning_secrets_unresealed",
			Help: "Stored credentials not sealed with the current secrets key after the last re-sealing pass; previous keys can be removed at zero.",
		}),
		resealed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "canopy_provisioning_secrets_resealed_total",
			Help: "Stored credentials re-sealed with the current secrets key.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "canopy_provisioning_secrets_reseal_failures_total",
			Help: "Re-sealing passes that failed or met values they could not open.",
		}),
	}
	for _, c := range []prometheus.Collector{r.unresealed, r.resealed, r.failures} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("reseal: register metrics: %w", err)
		}
	}
	return r, nil
}

// Run runs a pass at once and then every Interval until ctx ends. A failed
// pass is logged and counted, not fatal: reads keep working with the
// previous keys, and the next pass tries again.
func (r *Resealer) Run(ctx context.Context) error {
	r.Pass(ctx)
	if r.cfg.Interval == 0 {
		return nil
	}
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			r.Pass(ctx)
		}
	}
}

// Pass runs one re-sealing pass and reports it in logs and metrics.
func (r *Resealer) Pass(ctx context.Context) mysqlrepo.ResealResult {
	res, err := r.store.Reseal(ctx, r.cfg.Batch)
	r.resealed.Add(float64(res.Resealed))
	// A pass that met values it cannot open still counted what is left.
	if err == nil || res.Remaining > 0 {
		r.unresealed.Set(float64(res.Remaining))
	}
	if err != nil {
		if ctx.Err() != nil {
			return res
		}
		r.failures.Inc()
		r.logger.Error("re-sealing credentials with the current secrets key failed", "err", err, "resealed", res.Resealed)
		return res
	}
	if res.Resealed > 0 || res.Remaining > 0 {
		r.logger.Info("re-sealed credentials with the current secrets key", "resealed", res.Resealed, "remaining", res.Remaining)
	}
	return res
}
