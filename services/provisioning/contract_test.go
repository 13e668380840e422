package provisioning

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/canopy-platform/canopy/api/events/eventstest"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/openapitest"
	"github.com/canopy-platform/canopy/libs/store"
)

// schemaCheckedPublisher validates every event the service publishes
// against its schema in api/events (by ce_type) before passing it on, so
// each integration test also checks the wire contract of what it caused.
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

// contractChecked wraps pub in a schemaCheckedPublisher, except in
// benchmarks, which measure the service and not the validator.
func contractChecked(t testing.TB, pub store.Publisher) store.Publisher {
	if _, bench := t.(*testing.B); bench {
		return pub
	}
	return schemaCheckedPublisher{t: t, v: eventstest.MustNew(t), next: pub}
}

// checkResponse validates a response of the public API (/api/v1) against
// the OpenAPI document; the internal and OSB routes are not in it.
// Benchmarks skip it, like contractChecked.
func checkResponse(t testing.TB, req *http.Request, r response) {
	t.Helper()
	if _, bench := t.(*testing.B); bench || !strings.HasPrefix(req.URL.Path, "/api/v1/") {
		return
	}
	if err := openapitest.MustLoad(t).Check(req, r.status, r.header, r.body); err != nil {
		t.Error(err)
	}
}
