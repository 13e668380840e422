// Package intake follows the platform events that concern running CDC
// streams: a failover (or a node rejoining, or an instance update) changes
// which node a stream should read, and a deleted instance ends its
// streams. It decides nothing itself: it decodes the events and calls the
// pipeline. The runners re-read the nodes from provisioning on every
// reconnect anyway, so a missed event costs at most a slower move, never a
// gap.
package intake

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
)

// Group is the cdc service's consumer group on the failover and instance
// topics (one cdc replica runs all streams, so one group).
const Group = "cdc.follow"

// Streams is what the intake tells about topology changes;
// *pipeline.Manager fits.
type Streams interface {
	InstanceChanged(instanceID string)
}

// DeletedFunc ends the streams of a deleted (or deleting) instance; an
// error makes the event retried. pipeline.Manager.InstanceDeleted fits.
type DeletedFunc func(ctx context.Context, instanceID string) error

// Config configures the intake.
type Config struct {
	Brokers []string
	// MaxWait bounds how long a fetch waits on an idle partition: the delay
	// between a failover's event and the stream's move (default 100ms).
	MaxWait time.Duration
}

// Intake consumes the events.
type Intake struct {
	streams Streams
	deleted DeletedFunc
	logger  *slog.Logger
	sub     *eventbus.Subscriber
}

// New returns the intake; reg receives the subscriber's metrics.
func New(cfg Config, streams Streams, deleted DeletedFunc, logger *slog.Logger, reg prometheus.Registerer) (*Intake, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("intake: brokers are required")
	}
	if streams == nil || deleted == nil || logger == nil {
		return nil, errors.New("intake: nil streams, deleted callback or logger")
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 100 * time.Millisecond
	}
	in := &Intake{streams: streams, deleted: deleted, logger: logger.With("component", "intake")}
	var err error
	// Latest at the group's first start: a stream starting later resolves
	// the nodes it needs from provisioning, not from history.
	in.sub, err = eventbus.NewSubscriber(eventbus.SubscriberConfig{Brokers: cfg.Brokers, GroupID: Group,
		Topics: []string{events.TopicFailover, events.TopicInstances}, StartOffset: eventbus.StartLatest,
		MaxWait: cfg.MaxWait}, in.Handle, in.logger, reg)
	if err != nil {
		return nil, fmt.Errorf("intake: %w", err)
	}
	return in, nil
}

// Run consumes until ctx ends.
func (in *Intake) Run(ctx context.Context) error {
	if err := in.sub.Run(ctx); err != nil && ctx.Err() == nil {
		return fmt.Errorf("intake: %w", err)
	}
	return nil
}

// Handle applies one event.
func (in *Intake) Handle(ctx context.Context, ev eventbus.Event) error {
	switch ev.Type {
	case events.TypeFailoverCompleted:
		var r events.Recovery
		if err := ev.Decode(&r); err != nil || r.InstanceID == "" {
			return eventbus.Poison(fmt.Errorf("event %s: recovery without instance_id: %v", ev.ID, err))
		}
		in.logger.Info("failover completed; streams move to the preferred node", "instance_id", r.InstanceID,
			"tenant", r.TenantID, "new_primary", r.NewPrimary)
		in.streams.InstanceChanged(r.InstanceID)
	case events.TypeNodeRejoined:
		var r events.NodeRejoined
		if err := ev.Decode(&r); err != nil || r.InstanceID == "" {
			return eventbus.Poison(fmt.Errorf("event %s: rejoin without instance_id: %v", ev.ID, err))
		}
		in.streams.InstanceChanged(r.InstanceID)
	case events.TypeInstanceUpdated:
		i, err := instanceOf(ev)
		if err != nil {
			return err
		}
		in.streams.InstanceChanged(i.InstanceID)
	case events.TypeInstanceDeleting, events.TypeInstanceDeleted:
		i, err := instanceOf(ev)
		if err != nil {
			return err
		}
		if err := in.deleted(ctx, i.InstanceID); err != nil {
			return fmt.Errorf("end streams of instance %s: %w", i.InstanceID, err)
		}
		in.logger.Info("instance deleted; its streams ended", "instance_id", i.InstanceID, "tenant", i.TenantID, "event", ev.Type)
	}
	return nil
}

func instanceOf(ev eventbus.Event) (events.Instance, error) {
	var i events.Instance
	if err := ev.Decode(&i); err != nil || i.InstanceID == "" {
		return i, eventbus.Poison(fmt.Errorf("event %s: instance event without instance_id: %v", ev.ID, err))
	}
	return i, nil
}
