package instance

import (
	"errors"
	"testing"
)

func TestParsePortRange(t *testing.T) {
	tests := []struct {
		in   string
		want PortRange
		ok   bool
	}{
		{"16000-16999", PortRange{16000, 16999}, true},
		{" 1024 - 1025 ", PortRange{1024, 1025}, true},
		{"65534-65535", PortRange{65534, 65535}, true},
		{"16000-16000", PortRange{}, false},
		{"16001-16000", PortRange{}, false},
		{"1023-2000", PortRange{}, false},
		{"60000-65536", PortRange{}, false},
		{"16000", PortRange{}, false},
		{"a-b", PortRange{}, false},
		{"", PortRange{}, false},
	}
	for _, tt := range tests {
		got, err := ParsePortRange(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParsePortRange(%q) = %+v, %v; want %+v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestAllocateRouterPorts(t *testing.T) {
	r := PortRange{Lo: 100, Hi: 104}
	tests := []struct {
		name string
		used []int
		want RouterPorts
		err  error
	}{
		{"empty", nil, RouterPorts{100, 101}, nil},
		{"lowest free ports, not adjacent", []int{100, 102}, RouterPorts{101, 103}, nil},
		{"last two", []int{100, 101, 102}, RouterPorts{103, 104}, nil},
		{"one left", []int{100, 101, 102, 103}, RouterPorts{}, ErrRouterPortsExhausted},
		{"outside ports ignored", []int{99, 105}, RouterPorts{100, 101}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			used := map[int]bool{}
			for _, p := range tt.used {
				used[p] = true
			}
			got, err := AllocateRouterPorts(r, used)
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v, %v", got, err, tt.want, tt.err)
			}
		})
	}
	if _, err := AllocateRouterPorts(PortRange{}, nil); !errors.Is(err, ErrRouterPortsExhausted) {
		t.Fatalf("empty range: %v", err)
	}
}

func TestRouterEndpoints(t *testing.T) {
	in := &Instance{Name: "cache", State: StateReady, Plan: Plan{Engine: EngineRedis}, Router: RouterPorts{RW: 16000, RO: 16001}}
	r := Router{Host: "::1", SentinelPort: 26380, Ports: PortRange{16000, 16999}}
	got, ok := in.RouterEndpoints(r)
	if want := (RouterEndpoints{RW: "[::1]:16000", RO: "[::1]:16001", Sentinel: "[::1]:26380", MasterName: "cache"}); !ok || got != want {
		t.Fatalf("redis: %+v %v, want %+v", got, ok, want)
	}
	in.Plan.Engine = EngineMySQL
	if got, ok := in.RouterEndpoints(r); !ok || got.Sentinel != "" || got.MasterName != "" {
		t.Fatalf("mysql: %+v %v, want no sentinel", got, ok)
	}
	for name, c := range map[string]struct {
		in *Instance
		r  Router
	}{
		"disabled": {in, Router{}},
		"no ports": {&Instance{State: StateReady}, r},
		"deleted":  {&Instance{State: StateDeleted, Router: in.Router}, r},
	} {
		if _, ok := c.in.RouterEndpoints(c.r); ok {
			t.Errorf("%s: endpoints given", name)
		}
	}
}
