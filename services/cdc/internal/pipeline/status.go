package pipeline

import (
	"context"
	"time"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/services/cdc/internal/stream"
)

// lagEpisode tracks one stream's lag against the threshold, so lagging is
// published once per episode and caught_up when it ends.
type lagEpisode struct {
	threshold, after time.Duration
	over             time.Time // when the lag went past the threshold; zero when under
	lagging          bool
}

// observe returns the event to publish for this lag, if any.
func (e *lagEpisode) observe(now time.Time, lag time.Duration) string {
	if lag <= e.threshold {
		e.over = time.Time{}
		if e.lagging {
			e.lagging = false
			return events.TypeCDCStreamCaughtUp
		}
		return ""
	}
	if e.over.IsZero() {
		e.over = now
	}
	if !e.lagging && now.Sub(e.over) >= e.after {
		e.lagging = true
		return events.TypeCDCStreamLagging
	}
	return ""
}

// statusLoop measures the lag and rate every StatusInterval, stores the
// status, sets the metrics and publishes lag episodes, until ctx ends.
func (r *runner) statusLoop(ctx context.Context) {
	t := time.NewTicker(r.m.cfg.StatusInterval)
	defer t.Stop()
	ep := lagEpisode{threshold: r.m.cfg.LagThreshold, after: r.m.cfg.LagFor}
	prevEvents, prevAt := r.eventCount(), time.Now()
	var lagEvents int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		lag, n, caughtUp := r.measure(ctx, now, lagEvents)
		lagEvents = n
		total := r.eventCount()
		rate := float64(total-prevEvents) / now.Sub(prevAt).Seconds()
		prevEvents, prevAt = total, now
		st := r.status(lag, lagEvents, rate)
		if ctx.Err() != nil || st.State != stream.StateSnapshotting && st.State != stream.StateStreaming {
			return
		}
		r.m.metrics.lag.WithLabelValues(r.id).Set(lag.Seconds())
		r.m.metrics.rate.WithLabelValues(r.id).Set(rate)
		if err := r.m.repo.SetStatus(ctx, r.id, st); err != nil && ctx.Err() == nil {
			r.logger.Warn("store stream status", "err", err)
		}
		if typ := ep.observe(now, lag); typ != "" {
			r.logger.Info("stream lag episode", "type", typ, "lag", lag, "lag_events", lagEvents, "caught_up", caughtUp)
			r.publish(ctx, typ, events.CDCStreamStatus{State: string(st.State), LagMs: st.LagMs, LagEvents: lagEvents,
				ThresholdMs: r.m.cfg.LagThreshold.Milliseconds(), GTID: r.checkpoint().GTID})
		}
	}
}

// measure returns the lag (now − commit time of the last acknowledged
// change; 0 when the source's binlog ends at our checkpoint) and the
// transactions between the checkpoint and the source's end. When the
// source cannot be asked, the last distance is kept and nothing is called
// caught up.
func (r *runner) measure(ctx context.Context, now time.Time, prevDistance int64) (time.Duration, int64, bool) {
	r.mu.Lock()
	src, connected, cp, last := r.source, r.connected, r.cp, r.lastEvent
	r.mu.Unlock()
	distanceEvents, caughtUp := prevDistance, false
	if connected {
		pos, err := r.m.position(ctx, src)
		if err == nil {
			if d, up, err := distance(pos, cp.GTID); err == nil {
				distanceEvents, caughtUp = d, up && cp.GTID != ""
			}
		}
	}
	if caughtUp {
		return 0, 0, true
	}
	if last.IsZero() {
		// Nothing acknowledged since the runner started: the lag is at
		// least how long it has been trying.
		last = r.started
	}
	lag := now.Sub(last)
	if lag < 0 {
		lag = 0
	}
	return lag, distanceEvents, false
}
