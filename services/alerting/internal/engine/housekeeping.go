package engine

import (
	"context"
	"log/slog"
	"time"
)

// housekeeping prunes what the retention lets go and re-reads silences
// (another replica's API may have written them; expiry itself is checked
// against the clock at every use), until ctx ends.
func (e *Engine) housekeeping(ctx context.Context) {
	prune := time.NewTicker(pruneEvery)
	defer prune.Stop()
	sils := time.NewTicker(silenceRefresh)
	defer sils.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-prune.C:
			e.pruneStore(ctx)
		case <-sils.C:
			if err := e.reloadSilences(ctx); err != nil && ctx.Err() == nil {
				e.log.WarnContext(ctx, "refresh silences", slog.Any("err", err))
			}
		}
	}
}

// pruneStore deletes resolved alerts and delivered notifications older
// than the retention.
func (e *Engine) pruneStore(ctx context.Context) {
	before := e.now().Add(-e.cfg.ResolvedRetention)
	if n, err := e.st.PruneAlerts(ctx, before); err != nil {
		if ctx.Err() == nil {
			e.log.WarnContext(ctx, "prune alerts", slog.Any("err", err))
		}
	} else if n > 0 {
		e.log.DebugContext(ctx, "pruned alerts", slog.Int64("alerts", n))
	}
	if n, err := e.st.PruneDeliveries(ctx, before); err != nil {
		if ctx.Err() == nil {
			e.log.WarnContext(ctx, "prune deliveries", slog.Any("err", err))
		}
	} else if n > 0 {
		e.log.DebugContext(ctx, "pruned deliveries", slog.Int64("deliveries", n))
	}
}
