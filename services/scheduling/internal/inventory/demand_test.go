package inventory

import (
	"slices"
	"testing"
)

func TestDemandSumsPerHostInFirstAddedOrder(t *testing.T) {
	var d Demand
	d.Add("h2", Resources{MilliCPU: 500, MemoryMB: 512, StorageGB: 5})
	d.Add("h1", Resources{MilliCPU: 1000, MemoryMB: 1024, StorageGB: 10})
	d.Add("h2", Resources{MilliCPU: 250, MemoryMB: 256, StorageGB: 1})
	if got, want := d.Hosts(), []string{"h2", "h1"}; !slices.Equal(got, want) {
		t.Fatalf("hosts %v, want %v", got, want)
	}
	if got, want := d.Of("h2"), (Resources{MilliCPU: 750, MemoryMB: 768, StorageGB: 6}); got != want {
		t.Fatalf("h2 %+v, want %+v", got, want)
	}
	if d.Len() != 2 || !d.Has("h1") || d.Has("h3") || d.Of("h3") != (Resources{}) {
		t.Fatalf("unexpected demand %+v", d)
	}

	var total Demand
	total.Add("h1", Resources{MilliCPU: 1})
	total.Merge(d)
	if got, want := total.Hosts(), []string{"h1", "h2"}; !slices.Equal(got, want) {
		t.Fatalf("merged hosts %v, want %v", got, want)
	}
	if got := total.Of("h1").MilliCPU; got != 1001 {
		t.Fatalf("merged h1 cpu %d, want 1001", got)
	}
}

func TestAdmits(t *testing.T) {
	free := Resources{MilliCPU: 1000, MemoryMB: 1024, StorageGB: 10}
	for _, tc := range []struct {
		name  string
		ready bool
		need  Resources
		want  bool
	}{
		{"fits", true, Resources{MilliCPU: 500, MemoryMB: 512, StorageGB: 5}, true},
		{"exactly full", true, free, true},
		{"not ready", false, Resources{MilliCPU: 1}, false},
		{"cpu over", true, Resources{MilliCPU: 1001}, false},
		{"memory over", true, Resources{MemoryMB: 1025}, false},
		{"storage over", true, Resources{StorageGB: 11}, false},
		{"nothing on a ready host", true, Resources{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Admits(tc.ready, free, tc.need); got != tc.want {
				t.Fatalf("Admits(%v, %+v, %+v) = %v, want %v", tc.ready, free, tc.need, got, tc.want)
			}
		})
	}
}
