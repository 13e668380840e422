package consumers

import (
	"context"
	"log/slog"
	"testing"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/services/scheduling/internal/inventory"
	"github.com/canopy-platform/canopy/services/scheduling/internal/placement"
)

// decidingPlacer places with the real placement pipeline on the dev
// inventory, without a database: what the scheduler would decide.
type decidingPlacer struct {
	s *placement.Pipeline
	c *placement.Cluster
}

func (p *decidingPlacer) Place(_ context.Context, req placement.Request) (placement.Decision, error) {
	return p.s.Decide(p.c, req)
}
func (p *decidingPlacer) Replace(context.Context, string, string, string) (placement.Decision, error) {
	return placement.Decision{}, placement.ErrNotPlaced
}
func (p *decidingPlacer) Reject(context.Context, placement.Request, string) error { return nil }
func (p *decidingPlacer) Confirm(context.Context, string) (placement.Record, error) {
	return placement.Record{}, placement.ErrNotPlaced
}
func (p *decidingPlacer) Release(context.Context, string, string) error { return nil }
func (p *decidingPlacer) Get(context.Context, string) (placement.Record, error) {
	return placement.Record{}, placement.ErrNotPlaced
}

var fuzzTypes = []string{
	events.TypePlacementRequested, events.TypeInstanceReady, events.TypeInstanceDeleted,
	events.TypeInstanceFailed, events.TypePlacementDecided, "something.else",
}

// FuzzHandler feeds arbitrary payloads of every event type the scheduler
// consumes to its handler, which places requests with the real pipeline: it
// must never panic, and with dependencies that work every failure must be
// poison or permanent (dead-lettered at once), never retried.
func FuzzHandler(f *testing.F) {
	for _, s := range []struct {
		typ  uint8
		key  string
		data string
	}{
		{0, "i1", `{"instance_id":"i1","deployment_mode":"multi-az","nodes":[{"role":"primary","vcpu":0.5,"memory_mb":1024,"storage_gb":10},{"role":"replica","vcpu":0.5,"memory_mb":1024,"storage_gb":10}]}`},
		{0, "i2", `{"instance_id":"i2","deployment_mode":"multi-region","region":"eu-west","dr_region":"eu-central","nodes":[{"role":"primary","vcpu":1,"memory_mb":2048,"storage_gb":20}]}`},
		{0, "i3", `{"instance_id":"i3","kind":"replace","failed_node":"n1"}`},
		{0, "i4", `{"instance_id":"i4","kind":"upgrade"}`},
		{0, "i5", `{"nodes":[{"role":"primary","vcpu":1e308,"memory_mb":-1,"storage_gb":9223372036854775807}]}`},
		{0, "", `{"instance_id":"","nodes":[]}`},
		{0, "i6", `{not json`},
		{0, "i7", `{"instance_id":"i7","deployment_mode":"single-az","nodes":[{"name":"a","role":"primary"},{"name":"a","role":"primary"}],"labels":{"":""},"allowed_regions":[""]}`},
		{1, "i1", `{"instance_id":"i1"}`},
		{2, "", `{}`},
		{3, "i1", `null`},
		{4, "i1", `{}`},
		{5, "", ``},
	} {
		f.Add(s.typ, s.key, "acme", []byte(s.data))
	}
	inv, err := inventory.LoadFile("../../../../deploy/inventory/dev.yaml")
	if err != nil {
		f.Fatal(err)
	}
	sched, err := placement.New(placement.DefaultConfig())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, typ uint8, key, tenant string, data []byte) {
		cluster, err := placement.NewCluster(inv)
		if err != nil {
			t.Fatal(err)
		}
		h := Handler(&decidingPlacer{s: sched, c: cluster}, slog.New(slog.DiscardHandler))
		e := eventbus.Event{ID: "ev-1", Type: fuzzTypes[int(typ)%len(fuzzTypes)], Source: "/fuzz",
			Key: key, Tenant: tenant, ContentType: "application/json", Data: data}
		if err := h(context.Background(), e); err != nil {
			if c := eventbus.ClassOf(err); c == eventbus.ClassRetryable {
				t.Fatalf("%s event %q: retryable error %v; bad input must be poison or permanent", e.Type, data, err)
			}
		}
	})
}
