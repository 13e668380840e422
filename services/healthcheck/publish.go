package healthcheck

import (
	"context"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/monitor"
)

// EventPublisher publishes events to a topic; *eventbus.Publisher fits.
type EventPublisher interface {
	Publish(ctx context.Context, topic string, events ...eventbus.Event) error
}

// reportPublisher is the adapter between the monitor, which speaks in
// reports, and the event bus: each report becomes one CloudEvent keyed by
// its instance.
type reportPublisher struct{ bus EventPublisher }

var _ monitor.Publisher = reportPublisher{}

// Publish publishes the reports as events on topic.
func (p reportPublisher) Publish(ctx context.Context, topic string, reports ...monitor.Report) error {
	return p.bus.Publish(ctx, topic, eventsOf(reports)...)
}

// eventsOf translates reports into events, keeping their ids and times so a
// retried publish repeats the same events.
func eventsOf(reports []monitor.Report) []eventbus.Event {
	out := make([]eventbus.Event, len(reports))
	for i, r := range reports {
		out[i] = eventbus.Event{ID: r.ID, Type: r.Type, Source: events.SourceHealthcheck, Subject: r.InstanceID, Key: r.InstanceID,
			Time: r.At, Tenant: r.Tenant, ContentType: "application/json", Data: r.Data}
	}
	return out
}
