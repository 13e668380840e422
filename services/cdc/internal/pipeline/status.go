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
	lm := lagMeter{started: r.started}
	prevEvents, prevAt := r.eventCount(), time.Now()
	// A new runner waits a whole UsageEvery too: a restarted stream
	// reports no more often than a running one.
	lastUsage := prevAt
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		r.mu.Lock()
		src, connected, cp, last := r.lagSource, r.connected, r.cp, r.lastEvent
		r.mu.Unlock()
		pos, polled := "", false
		if connected {
			if p, err := r.m.position(ctx, src); err == nil {
				pos, polled = p, true
			}
		}
		lag, lagEvents := lm.measure(now, pos, polled, cp.GTID, last)
		total := r.eventCount()
		rate := float64(total-prevEvents) / now.Sub(prevAt).Seconds()
		prevEvents, prevAt = total, now
		r.writeMu.Lock()
		st := r.status(lag, lagEvents, rate)
		if ctx.Err() != nil || st.State != stream.StateSnapshotting && st.State != stream.StateStreaming {
			r.writeMu.Unlock()
			return
		}
		if err := r.m.repo.SetStatus(ctx, r.id, st); err != nil && ctx.Err() == nil {
			r.logger.Warn("store stream status", "err", err)
		}
		r.writeMu.Unlock()
		if now.Sub(lastUsage) >= r.m.cfg.UsageEvery {
			// Also when no checkpoint came since: rows of a stream that
			// went quiet are reported within UsageEvery, not at its next
			// change (which would be late for metering).
			lastUsage = now
			r.reportUsage(ctx)
		}
		r.m.metrics.lag.WithLabelValues(r.id).Set(lag.Seconds())
		r.m.metrics.rate.WithLabelValues(r.id).Set(rate)
		if typ := ep.observe(now, lag); typ != "" {
			r.logger.Info("stream lag episode", "type", typ, "lag", lag, "lag_events", lagEvents)
			r.publish(ctx, typ, events.CDCStreamStatus{State: string(st.State), LagMs: st.LagMs, LagEvents: lagEvents,
				ThresholdMs: r.m.cfg.LagThreshold.Milliseconds(), GTID: cp.GTID})
		}
	}
}

// maxSamples bounds the source positions a lagMeter remembers (at one per
// second, ten minutes: an older lag is reported as at least that).
const maxSamples = 600

// posSample is the source's binlog end at one poll.
type posSample struct {
	pos string
	at  time.Time
}

// lagMeter turns polls of the source's binlog end into a lag. The age of
// the last delivered change alone would grow without bound for a stream
// whose tables are quiet while others are busy (the checkpoint keeps up,
// no change of ours arrives), so the lag is the smaller of that age and the
// time since the newest polled source position the checkpoint has reached:
// everything not delivered yet was committed after that poll.
type lagMeter struct {
	started   time.Time
	samples   []posSample
	coveredAt time.Time
	distance  int64
}

func (l *lagMeter) measure(now time.Time, pos string, polled bool, checkpoint string, lastEvent time.Time) (time.Duration, int64) {
	if polled {
		if len(l.samples) == maxSamples {
			l.samples = l.samples[1:]
		}
		l.samples = append(l.samples, posSample{pos: pos, at: now})
		if d, _, err := distance(pos, checkpoint); err == nil {
			l.distance = d
		}
	}
	if n := len(l.samples); n > 0 && checkpoint != "" {
		// The newest first: a source behind an older poll (a reconnect to
		// a replica a little behind) must not hide that we reached it.
		if _, up, err := distance(l.samples[n-1].pos, checkpoint); err == nil && up {
			l.coveredAt, l.samples = l.samples[n-1].at, l.samples[:0]
		}
	}
	for len(l.samples) > 0 && checkpoint != "" {
		if _, up, err := distance(l.samples[0].pos, checkpoint); err != nil || !up {
			break
		}
		l.coveredAt = l.samples[0].at
		l.samples = l.samples[1:]
	}
	if polled && len(l.samples) == 0 && checkpoint != "" {
		return 0, 0 // the source's end is our checkpoint: caught up
	}
	since := l.started
	if !lastEvent.IsZero() {
		since = lastEvent
	}
	if l.coveredAt.After(since) {
		since = l.coveredAt
	}
	return max(now.Sub(since), 0), l.distance
}
