package provisioning

import (
	"context"
	"log/slog"
	"testing"

	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/memrepo"
	"github.com/canopy-platform/canopy/services/provisioning/internal/port"
	"github.com/canopy-platform/canopy/services/provisioning/internal/repotest"
)

// The start-up backfill gives live instances without ports a pair, once;
// a disabled router assigns nothing; a full range does not fail the start.
func TestBackfillRouterPorts(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	repo := memrepo.New()
	for _, id := range []string{"i1", "i2", "i3"} {
		in, op := repotest.Order(id, "acme", "db-"+id)
		if err := repo.Create(ctx, port.CreateRequest{Instance: in, Op: op}); err != nil {
			t.Fatal(err)
		}
	}
	full := instance.Router{Host: "127.0.0.1", Ports: instance.PortRange{Lo: 16000, Hi: 16003}}
	if err := backfillRouterPorts(ctx, repo, instance.Router{Ports: full.Ports}, log); err != nil {
		t.Fatal(err)
	}
	if left, _ := repo.WithoutRouterPorts(ctx); len(left) != 3 {
		t.Fatalf("router disabled: %v left without ports, want all 3", left)
	}
	if err := backfillRouterPorts(ctx, repo, full, log); err != nil {
		t.Fatalf("full range failed the start: %v", err)
	}
	for id, want := range map[string]instance.RouterPorts{"i1": {RW: 16000, RO: 16001}, "i2": {RW: 16002, RO: 16003}} {
		if in, _ := repo.GetAnyTenant(ctx, id); in.Router != want {
			t.Fatalf("%s: %+v, want %+v", id, in.Router, want)
		}
	}
	if left, _ := repo.WithoutRouterPorts(ctx); len(left) != 1 || left[0] != "i3" {
		t.Fatalf("left without ports %v, want [i3]", left)
	}
	wider := full
	wider.Ports.Hi = 16005
	if err := backfillRouterPorts(ctx, repo, wider, log); err != nil {
		t.Fatal(err)
	}
	if in, _ := repo.GetAnyTenant(ctx, "i3"); in.Router != (instance.RouterPorts{RW: 16004, RO: 16005}) {
		t.Fatalf("i3 after widening: %+v", in.Router)
	}
	if in, _ := repo.GetAnyTenant(ctx, "i1"); in.Router != (instance.RouterPorts{RW: 16000, RO: 16001}) {
		t.Fatalf("i1's ports changed: %+v", in.Router)
	}
}
