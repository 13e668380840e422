package consumers

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
)

// topologyRecorder records what the handler hands on and answers err.
type topologyRecorder struct {
	completed []events.Recovery
	rejoined  []events.NodeRejoined
	err       error
}

func (r *topologyRecorder) OnFailoverCompleted(_ context.Context, rc events.Recovery) error {
	r.completed = append(r.completed, rc)
	return r.err
}

func (r *topologyRecorder) OnNodeRejoined(_ context.Context, nr events.NodeRejoined) error {
	r.rejoined = append(r.rejoined, nr)
	return r.err
}

func TestFailoverHandler(t *testing.T) {
	ev := func(typ, tenant string, payload any) eventbus.Event {
		e, err := eventbus.NewEvent(typ, events.SourceFailover, "i1", payload)
		if err != nil {
			t.Fatal(err)
		}
		e.Tenant = tenant
		return e
	}
	good := events.Recovery{RecoveryID: "r1", InstanceID: "i1", TenantID: "acme", FencingToken: 3, Roles: map[string]string{"i1-n1": "primary"}}
	noToken := good
	noToken.FencingToken = 0
	poison := func(err error) bool { return errors.Is(err, instance.ErrInvalid) }
	tests := []struct {
		name      string
		event     eventbus.Event
		answer    error
		wantClass string // "", "poison", "retryable"
		handed    int
	}{
		{name: "completed", event: ev(events.TypeFailoverCompleted, "acme", good), handed: 1},
		{name: "rejoined", event: ev(events.TypeNodeRejoined, "acme", events.NodeRejoined{InstanceID: "i1", NodeID: "i1-n0"}), handed: 1},
		{name: "started changes no topology", event: ev(events.TypeFailoverStarted, "acme", good)},
		{name: "failed changes no topology", event: ev(events.TypeFailoverFailed, "acme", good)},
		{name: "no fencing token", event: ev(events.TypeFailoverCompleted, "acme", noToken), wantClass: "poison"},
		{name: "tenant header disagrees", event: ev(events.TypeFailoverCompleted, "globex", good), wantClass: "poison"},
		{name: "rejoin without node", event: ev(events.TypeNodeRejoined, "acme", events.NodeRejoined{InstanceID: "i1"}), wantClass: "poison"},
		{name: "outcome the domain refuses", event: ev(events.TypeFailoverCompleted, "acme", good), answer: fmt.Errorf("x: %w", instance.ErrInvalid), wantClass: "poison", handed: 1},
		{name: "database down is retried", event: ev(events.TypeFailoverCompleted, "acme", good), answer: errors.New("connection refused"), wantClass: "retryable", handed: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &topologyRecorder{err: tc.answer}
			err := Failover(rec, poison)(context.Background(), tc.event)
			switch {
			case tc.wantClass == "" && err != nil:
				t.Fatalf("err = %v, want nil", err)
			case tc.wantClass == "poison" && eventbus.ClassOf(err) != eventbus.ClassPoison:
				t.Fatalf("err = %v (class %v), want poison", err, eventbus.ClassOf(err))
			case tc.wantClass == "retryable" && (err == nil || eventbus.ClassOf(err) != eventbus.ClassRetryable):
				t.Fatalf("err = %v, want retryable", err)
			}
			if got := len(rec.completed) + len(rec.rejoined); got != tc.handed {
				t.Fatalf("handed on %d events, want %d", got, tc.handed)
			}
		})
	}
	// The header fills an empty payload tenant.
	rec := &topologyRecorder{}
	noTenant := good
	noTenant.TenantID = ""
	if err := Failover(rec, poison)(context.Background(), ev(events.TypeFailoverCompleted, "acme", noTenant)); err != nil || rec.completed[0].TenantID != "acme" {
		t.Fatalf("empty payload tenant: %v, %+v", err, rec.completed)
	}
}
