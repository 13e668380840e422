package healthcheck

import (
	"reflect"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/monitor"
)

func TestEventsOfReports(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	got := eventsOf([]monitor.Report{{ID: "01J", Type: events.TypeNodeDown, InstanceID: "inst-1", Tenant: "acme", At: at, Data: []byte(`{"a":1}`)}})
	want := []eventbus.Event{{ID: "01J", Type: events.TypeNodeDown, Source: events.SourceHealthcheck, Subject: "inst-1", Key: "inst-1",
		Time: at, Tenant: "acme", ContentType: "application/json", Data: []byte(`{"a":1}`)}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("eventsOf:\n got %+v\nwant %+v", got, want)
	}
}
