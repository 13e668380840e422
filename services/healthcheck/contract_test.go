package healthcheck_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/canopy-platform/canopy/api/events/eventstest"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/openapitest"
)

// checkEvents validates each event the healthcheck publishes against its
// schema in api/events, by ce_type.
func checkEvents(t testing.TB, v *eventstest.Validator, topic string, evs []eventbus.Event) {
	t.Helper()
	for _, e := range evs {
		if err := v.Validate(e.Type, e.Data); err != nil {
			t.Errorf("published on %s: %v", topic, err)
		}
	}
}

// checkResponse validates a response of the public API (/api/v1) against
// the OpenAPI document; the internal routes are not in it.
func checkResponse(t testing.TB, req *http.Request, status int, header http.Header, body []byte) {
	t.Helper()
	if !strings.HasPrefix(req.URL.Path, "/api/v1/") {
		return
	}
	if err := openapitest.MustLoad(t).Check(req, status, header, body); err != nil {
		t.Error(err)
	}
}
