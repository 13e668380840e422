package engine

import (
	"context"
	"log/slog"
	"time"

	"github.com/canopy-platform/canopy/services/alerting/internal/alertstore"
)

// housekeeping prunes what the retention lets go and re-reads silences,
// receivers and rules (another replica's API may have written them; expiry
// itself is checked against the clock at every use), until ctx ends.
func (e *Engine) housekeeping(ctx context.Context) {
	prune := time.NewTicker(pruneEvery)
	defer prune.Stop()
	refresh := time.NewTicker(e.cfg.RefreshEvery)
	defer refresh.Stop()
	// The zero stamps make the first round re-read receivers and rules
	// once: a change stored between load and now is not missed.
	var receivers, rules alertstore.Stamp
	for {
		select {
		case <-ctx.Done():
			return
		case <-prune.C:
			e.pruneStore(ctx)
		case <-refresh.C:
			if err := e.reloadSilences(ctx); err != nil && ctx.Err() == nil {
				e.log.WarnContext(ctx, "refresh silences", slog.Any("err", err))
			}
			receivers = e.refreshIfChanged(ctx, receivers, e.st.ReceiversStamp, ReloadReceivers)
			rules = e.refreshIfChanged(ctx, rules, e.st.RulesStamp, ReloadRules)
		}
	}
}

// refreshIfChanged reloads what when its table's stamp moved from last,
// and returns the stamp to compare with next time (last again when the
// stamp or the reload failed, so that the next round tries again).
func (e *Engine) refreshIfChanged(ctx context.Context, last alertstore.Stamp, stamp func(context.Context) (alertstore.Stamp, error), what What) alertstore.Stamp {
	cur, err := stamp(ctx)
	if err == nil && cur.Same(last) {
		return last
	}
	if err == nil {
		err = e.Reload(ctx, what)
	}
	if err != nil {
		if ctx.Err() == nil {
			e.log.WarnContext(ctx, "refresh receivers or rules", slog.Int("what", int(what)), slog.Any("err", err))
		}
		return last
	}
	return cur
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
