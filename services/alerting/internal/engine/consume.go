package engine

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/retry"
	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
)

// Topics lists the platform topics the engine consumes.
func Topics() []string {
	return []string{
		events.TopicHealth, events.TopicSamples, events.TopicFailover,
		events.TopicCDC, events.TopicUsage, events.TopicInstances, events.TopicBackups,
	}
}

// topicPartitions is the partition count of a consumed topic the engine
// has to create (the count the owning services create them with).
const topicPartitions = 6

// setupRetry paces the retries of a broker that is not there yet.
var setupRetry = retry.Policy{Initial: 500 * time.Millisecond, Max: 30 * time.Second}

// consume runs the subscriber until ctx ends. The consumed topics belong to
// other services and may not exist yet: the missing ones are created (as
// the owners would create them) once the broker answers, so a fresh
// platform starts in any order.
func (e *Engine) consume(ctx context.Context) {
	if len(e.cfg.Brokers) == 0 {
		e.log.WarnContext(ctx, "no kafka brokers configured: platform events are not consumed")
		<-ctx.Done()
		return
	}
	topics := Topics()
	specs := make([]eventbus.TopicSpec, len(topics))
	for i, t := range topics {
		specs[i] = eventbus.TopicSpec{Name: t, Partitions: topicPartitions}
	}
	err := retry.Do(ctx, setupRetry, func(ctx context.Context) error {
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		err := eventbus.EnsureTopics(tctx, e.cfg.Brokers, specs...)
		if err != nil && ctx.Err() == nil {
			e.log.WarnContext(ctx, "consumed topics not ready; retrying", slog.Any("err", err))
		}
		return err
	})
	if err != nil {
		return // ctx ended
	}
	_ = retry.Do(ctx, setupRetry, func(ctx context.Context) error {
		sub, err := eventbus.NewSubscriber(eventbus.SubscriberConfig{
			Brokers: e.cfg.Brokers, GroupID: e.cfg.GroupID, Topics: topics,
		}, e.handle, e.log, e.promReg)
		if err != nil {
			return retry.Permanent(err) // configuration: retrying cannot fix it
		}
		if err := sub.Run(ctx); err != nil {
			if ctx.Err() == nil {
				e.log.WarnContext(ctx, "event subscriber failed; restarting", slog.Any("err", err))
			}
			return err
		}
		return nil
	})
}

// handle folds one platform event into the node registry and the
// evaluator and commits the alerts it changed. A store failure does not
// fail the event: the results are carried to the next tick (the evaluator
// already moved on, a redelivery would not produce them again).
func (e *Engine) handle(ctx context.Context, ev eventbus.Event) error {
	e.reg.Event(ev)
	e.evalMu.Lock()
	out := copyAlerts(e.eval.Event(e.now(), ev))
	e.evalMu.Unlock()
	if len(out) == 0 {
		return nil
	}
	err := e.submit(ctx, &commitReq{alerts: out})
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, ErrStopped) {
		return err // redelivered to the next engine
	}
	return nil
}

// copyAlerts copies the evaluator's results, which it may keep and change.
func copyAlerts(as []*alert.Alert) []*alert.Alert {
	if len(as) == 0 {
		return nil
	}
	cps := make([]alert.Alert, len(as))
	out := make([]*alert.Alert, len(as))
	for i, a := range as {
		cps[i] = *a
		out[i] = &cps[i]
	}
	return out
}
