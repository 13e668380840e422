package events

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// TestPayloadsMatchSchemas marshals a payload of every event type the
// scheduler publishes or consumes and validates it against its schema in
// api/events.
func TestPayloadsMatchSchemas(t *testing.T) {
	node := PlacedNode{Name: "node-0", Role: "primary", Region: "r", AZ: "r-a", Host: "h", Address: "127.0.0.1", Port: 20000, VCPU: 0.5, MemoryMB: 1024, StorageGB: 10, Score: 1.2}
	host := HostChanged{HostID: "h", Region: "r", AZ: "r-a", State: "down", PreviousState: "ready", Instances: []string{"i"}}
	cases := map[string]any{
		TypePlacementRequested: PlacementRequested{InstanceID: "i", TenantID: "acme", DeploymentMode: "multi-az",
			Nodes: []NodeRequest{{Role: "primary", VCPU: 1, MemoryMB: 1024, StorageGB: 10}}, Labels: map[string]string{"disk": "nvme"}},
		TypePlacementRequested + "#replace": PlacementRequested{InstanceID: "i", Kind: "replace", FailedNode: "node-1"},
		TypePlacementDecided:                PlacementDecided{InstanceID: "i", Kind: "new", DeploymentMode: "multi-az", Nodes: []PlacedNode{node}, ExpiresAt: time.Now().UTC()},
		TypePlacementFailed:                 PlacementFailed{InstanceID: "i", Reason: "no placement", Filters: []FilterResult{{Name: "capacity", Rejected: 3, Reason: "less than 8 GiB memory free"}}},
		TypePlacementReleased:               PlacementReleased{InstanceID: "i", Reason: "expired", Hosts: []string{"h"}},
		TypePlacementConfirmed:              PlacementConfirmed{InstanceID: "i"},
		TypeHostCreated:                     host,
		TypeHostUpdated:                     host,
		TypeHostCordoned:                    host,
		TypeHostUncordoned:                  host,
		TypeHostDown:                        host,
		TypeRegionCreated:                   RegionChanged{RegionID: "r"},
		TypeRegionUpdated:                   RegionChanged{RegionID: "r", Name: "R"},
		TypeZoneCreated:                     ZoneChanged{ZoneID: "z", RegionID: "r"},
		TypeZoneUpdated:                     ZoneChanged{ZoneID: "z", RegionID: "r"},
		TypeInventoryLoaded:                 InventoryLoaded{Source: "f", Regions: 1, Zones: 1, Hosts: 1},
	}
	invalid := map[string]any{
		TypePlacementRequested: map[string]any{"instance_id": "i", "deployment_mode": "sideways", "nodes": []any{}},
		TypePlacementDecided:   map[string]any{"instance_id": "i"},
	}
	dir := filepath.Join("..", "..", "..", "..", "api", "events")
	c := jsonschema.NewCompiler()
	load := func(typ string) *jsonschema.Schema {
		path, _ := filepath.Abs(filepath.Join(dir, typ+".schema.json"))
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		doc, err := jsonschema.UnmarshalJSON(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.AddResource(path, doc); err != nil && !strings.Contains(err.Error(), "already") {
			t.Fatal(err)
		}
		s, err := c.Compile(path)
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		return s
	}
	check := func(typ string, v any) error {
		b, _ := json.Marshal(v)
		inst, err := jsonschema.UnmarshalJSON(strings.NewReader(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		return load(typ).Validate(inst)
	}
	for name, v := range cases {
		typ, _, _ := strings.Cut(name, "#")
		if err := check(typ, v); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for typ, v := range invalid {
		if err := check(typ, v); err == nil {
			t.Errorf("%s: invalid payload accepted", typ)
		}
	}
}
