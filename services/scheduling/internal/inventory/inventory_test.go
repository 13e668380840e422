package inventory

import (
	"errors"
	"strings"
	"testing"
)

func TestDevInventoryFile(t *testing.T) {
	inv, err := LoadFile("../../../../deploy/inventory/dev.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Regions) != 2 || len(inv.Zones) != 6 || len(inv.Hosts) != 24 {
		t.Fatalf("got %d regions, %d zones, %d hosts", len(inv.Regions), len(inv.Zones), len(inv.Hosts))
	}
	for _, h := range inv.Hosts {
		if h.Region == "" || h.State != StateReady {
			t.Fatalf("host %s not normalised: %+v", h.ID, h)
		}
	}
}

func base() Inventory {
	return Inventory{
		Regions: []Region{{ID: "r1"}, {ID: "r2"}},
		Zones:   []Zone{{ID: "a", Region: "r1"}, {ID: "b", Region: "r1"}, {ID: "c", Region: "r2"}},
		Hosts: []Host{
			{ID: "h1", Zone: "a", Address: "127.0.0.1", Ports: PortRange{From: 1000, To: 1009}, Capacity: Resources{MilliCPU: 1000, MemoryMB: 1024, StorageGB: 10}, State: StateReady},
		},
		Latencies: []Latency{{A: "a", B: "b", P95MS: 1}, {A: "r2", B: "r1", P95MS: 30}},
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(inv *Inventory)
		fields []string // substrings of the error
	}{
		{"valid", func(*Inventory) {}, nil},
		{"missing zone pair", func(inv *Inventory) { inv.Latencies = inv.Latencies[1:] }, []string{"missing pair a <-> b"}},
		{"missing region pair", func(inv *Inventory) { inv.Latencies = inv.Latencies[:1] }, []string{"missing pair r1 <-> r2"}},
		{"cross-region zone pair", func(inv *Inventory) { inv.Latencies = append(inv.Latencies, Latency{A: "a", B: "c", P95MS: 3}) }, []string{"different regions"}},
		{"unknown latency endpoint", func(inv *Inventory) { inv.Latencies = append(inv.Latencies, Latency{A: "a", B: "zz", P95MS: 3}) }, []string{"must both be zones"}},
		{"negative latency", func(inv *Inventory) { inv.Latencies[0].P95MS = -1 }, []string{"latencies[0].p95_ms"}},
		{"duplicate host", func(inv *Inventory) { inv.Hosts = append(inv.Hosts, inv.Hosts[0]) }, []string{"duplicate host id"}},
		{"duplicate region", func(inv *Inventory) { inv.Regions = append(inv.Regions, Region{ID: "r1"}) }, []string{"duplicate region id"}},
		{"unknown zone", func(inv *Inventory) { inv.Hosts[0].Zone = "nope" }, []string{"unknown zone"}},
		{"zero capacity", func(inv *Inventory) { inv.Hosts[0].Capacity.MemoryMB = 0 }, []string{"hosts[0].capacity.memory_mb"}},
		{"bad ports", func(inv *Inventory) { inv.Hosts[0].Ports = PortRange{From: 10, To: 5} }, []string{"hosts[0].ports"}},
		{"bad state", func(inv *Inventory) { inv.Hosts[0].State = "gone" }, []string{"hosts[0].state"}},
		{"bad id", func(inv *Inventory) { inv.Hosts[0].ID = "Not OK" }, []string{"hosts[0].id"}},
		{"zone in wrong region", func(inv *Inventory) { inv.Hosts[0].Region = "r2" }, []string{"hosts[0].region"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := base()
			tt.mutate(&inv)
			err := inv.Validate()
			if tt.fields == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("want ErrInvalid, got %v", err)
			}
			for _, f := range tt.fields {
				if !strings.Contains(err.Error(), f) {
					t.Errorf("%q lacks %q", err, f)
				}
			}
		})
	}
}

func TestTopologyLatency(t *testing.T) {
	inv := base()
	topo, err := NewTopology(inv.Regions, inv.Zones, inv.Latencies)
	if err != nil {
		t.Fatal(err)
	}
	z := topo.ZoneIndex
	if got := topo.ZoneLatency(z["a"], z["b"]); got != 1 {
		t.Fatalf("a-b %v", got)
	}
	if got := topo.ZoneLatency(z["b"], z["c"]); got != 30 {
		t.Fatalf("cross-region zones take the region latency, got %v", got)
	}
	if got := topo.ZoneLatency(z["a"], z["a"]); got != 0 {
		t.Fatalf("same zone %v", got)
	}
	if len(topo.Latencies()) != 2 {
		t.Fatalf("%v", topo.Latencies())
	}
}

func TestParseRejectsUnknownFields(t *testing.T) {
	_, err := Parse([]byte("regions: [{id: r1, colour: blue}]\n"))
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("want ErrInvalid, got %v", err)
	}
}

func TestGenerateIsValid(t *testing.T) {
	inv := Generate(GenerateSpec{ZonesPerRegion: []int{3, 4}, Hosts: 100, Capacity: Resources{MilliCPU: 1000, MemoryMB: 1024, StorageGB: 10}})
	inv.Normalize()
	if err := inv.Validate(); err != nil {
		t.Fatal(err)
	}
}
