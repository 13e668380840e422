package intake

import (
	"context"
	"log/slog"
	"testing"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/provclient"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/target"
)

// validatingTargets accepts what target.Validate accepts, as the monitor does.
type validatingTargets struct{ n int }

func (v *validatingTargets) Upsert(t target.Target) error {
	if err := t.Validate(); err != nil {
		return err
	}
	v.n++
	return nil
}
func (v *validatingTargets) RemoveWhere(func(target.Target) bool) int { return 0 }
func (v *validatingTargets) SeedPublished(string, string, string)     {}
func (v *validatingTargets) Flush(context.Context) error              { return nil }

// anySource knows every instance and hands out monitor credentials.
type anySource struct{}

func (anySource) List(context.Context) ([]provclient.Instance, error) { return nil, nil }
func (anySource) Get(_ context.Context, id string) (provclient.Instance, error) {
	return provclient.Instance{InstanceID: id, Monitor: provclient.MonitorAccount{Username: "monitor", Password: "p"}}, nil
}

var fuzzTypes = []string{
	events.TypeInstanceReady, events.TypeInstanceUpdated, events.TypeInstanceDeleting,
	events.TypeInstanceDeleted, events.TypeInstanceFailed, "provisioning.instance.requested", events.TypeNodeUp,
}

// FuzzHandle feeds arbitrary payloads of instance events to the intake: it
// must never panic, and a failure must be poison or permanent so the sharder
// dead-letters it instead of retrying.
func FuzzHandle(f *testing.F) {
	for _, s := range []struct {
		typ  uint8
		data string
	}{
		{0, `{"instance_id":"i1","tenant_id":"acme","engine":"mysql","state":"ready","nodes":[{"id":"n1","role":"primary","address":"127.0.0.1:3306","state":"running"},{"id":"n2","role":"replica","address":"127.0.0.1:3307"}]}`},
		{1, `{"instance_id":"i2","engine":"redis","nodes":[{"id":"n1","role":"dr-replica","address":"[::1]:6379"}]}`},
		{0, `{"instance_id":"i3","engine":"kafka","nodes":[{"id":"","role":"","address":"nowhere"},{"id":"n1","address":":0"}]}`},
		{3, `{"instance_id":"i1"}`},
		{4, `{"instance_id":""}`},
		{0, `{not json`},
		{0, `null`},
		{5, `{}`},
		{6, ``},
	} {
		f.Add(s.typ, []byte(s.data))
	}
	f.Fuzz(func(t *testing.T, typ uint8, data []byte) {
		in, err := New(&validatingTargets{}, anySource{}, target.DefaultPolicy(), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		ev := eventbus.Event{ID: "ev-1", Type: fuzzTypes[int(typ)%len(fuzzTypes)], Source: "/fuzz", Data: data}
		if err := in.Handle(context.Background(), 0, ev); err != nil {
			if c := eventbus.ClassOf(err); c == eventbus.ClassRetryable {
				t.Fatalf("%s event %q: retryable error %v", ev.Type, data, err)
			}
		}
	})
}
