package launch

import (
	"context"
	"log/slog"
	"time"
)

// Every returns a stage Run that calls pass every interval until ctx ends.
// A failed pass is logged as "periodic <what> failed" and tried again at the
// next tick: a periodic pass heals what events missed, so one failure must
// not stop the service.
func Every(interval time.Duration, log *slog.Logger, what string, pass func(ctx context.Context) error) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				if err := pass(ctx); err != nil && ctx.Err() == nil {
					log.Warn("periodic "+what+" failed", "err", err)
				}
			}
		}
	}
}
