package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
	"github.com/canopy-platform/canopy/services/alerting/internal/dispatch"
	"github.com/canopy-platform/canopy/services/alerting/internal/engine"
)

// A tenant lists its own groups only; a platform-admin every group; a
// standby engine answers 503, as a push to it does.
func TestAlertGroups(t *testing.T) {
	f := newFixture(t)
	f.engine.groups = []dispatch.GroupInfo{
		{Receiver: "r1", ReceiverName: "acme-oncall", Owner: "acme", GroupKey: `{}/{tenant="acme"}:{alertname="NodeDown"}`,
			Labels: alert.LabelSet{"alertname": "NodeDown"}, Alerts: 2, NextAt: t0},
		{Receiver: "r2", ReceiverName: "globex-oncall", Owner: "globex", GroupKey: `{}/{tenant="globex"}:{alertname="NodeDown"}`,
			Labels: alert.LabelSet{"alertname": "NodeDown"}, Alerts: 1, NextAt: t0},
		{Receiver: "r3", ReceiverName: "platform", GroupKey: `{}/{tenant=""}:{alertname="DeadLettersGrowing"}`,
			Labels: alert.LabelSet{"alertname": "DeadLettersGrowing"}, Alerts: 1, NextAt: t0},
	}
	var got list[Group]
	if a := f.do(acmeViewer, "GET", "/api/v1/alert-groups", "", &got); a.status != http.StatusOK {
		t.Fatalf("acme: %d %s", a.status, a.body)
	}
	if len(got.Items) != 1 || got.Items[0].Receiver != "acme-oncall" || got.Items[0].Alerts != 2 || got.Items[0].Labels["alertname"] != "NodeDown" {
		t.Fatalf("acme sees %+v, want its one group", got.Items)
	}
	if a := f.do(platform, "GET", "/api/v1/alert-groups", "", &got); a.status != http.StatusOK || len(got.Items) != 3 {
		t.Fatalf("platform-admin: %d, %d groups, want 3", a.status, len(got.Items))
	}
	f.engine.pushErr = fmt.Errorf("standby: %w", engine.ErrStopped)
	if a := f.do(acmeViewer, "GET", "/api/v1/alert-groups", "", nil); a.status != http.StatusServiceUnavailable {
		t.Fatalf("standby engine: %d, want 503", a.status)
	}
	if a := f.do(acmeMember, "POST", "/api/v2/alerts", `[{"labels":{"alertname":"X"}}]`, nil); a.status != http.StatusServiceUnavailable {
		t.Fatalf("push to a standby engine: %d, want 503", a.status)
	}
	f.engine.pushErr = errors.New("boom")
	if a := f.do(acmeViewer, "GET", "/api/v1/alert-groups", "", nil); a.status != http.StatusInternalServerError {
		t.Fatalf("engine failure: %d, want 500", a.status)
	}
}
