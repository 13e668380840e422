package scheduling_test

import (
	"context"
	"testing"

	"github.com/canopy-platform/canopy/api/events/eventstest"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/store"
)

// schemaCheckedPublisher validates every event the service publishes
// against its schema in api/events (by ce_type) before passing it on.
type schemaCheckedPublisher struct {
	t    testing.TB
	v    *eventstest.Validator
	next store.Publisher
}

func (p schemaCheckedPublisher) Publish(ctx context.Context, topic string, evs ...eventbus.Event) error {
	for _, e := range evs {
		if err := p.v.Validate(e.Type, e.Data); err != nil {
			p.t.Errorf("published on %s: %v", topic, err)
		}
	}
	return p.next.Publish(ctx, topic, evs...)
}

// schemaChecked wraps pub so the test checks what the service publishes.
func schemaChecked(t testing.TB, pub store.Publisher) store.Publisher {
	return schemaCheckedPublisher{t: t, v: eventstest.MustNew(t), next: pub}
}
