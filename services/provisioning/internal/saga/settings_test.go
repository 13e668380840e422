package saga

import (
	"errors"
	"strings"
	"testing"

	"github.com/canopy-platform/canopy/libs/nettune"

	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
)

func TestDriverVersion(t *testing.T) {
	tests := []struct {
		version string
		exact   bool
		want    string
	}{
		{"7.2", false, "7"},
		{"7.2", true, "7.2"},
		{"7", false, "7"},
		{"mariadb-10.11", false, "10.11"},
		{"10.11", false, "10.11"},
		{"11.4", false, "11.4"},
		{"", false, ""},
	}
	for _, tt := range tests {
		s := &Saga{cfg: Config{ExactVersions: tt.exact}}
		if got := s.driverVersion(tt.version); got != tt.want {
			t.Errorf("driverVersion(%q, exact %v) = %q, want %q", tt.version, tt.exact, got, tt.want)
		}
	}
}

// TestSettings: a node's engine settings are its deployment mode's tuning
// profile overridden by the tenant's parameters, through the allowlist.
func TestSettings(t *testing.T) {
	profile := func(t *testing.T, mode nettune.Mode, engine string) map[string]string {
		p, err := nettune.Default(mode)
		if err != nil {
			t.Fatal(err)
		}
		if engine == instance.EngineRedis {
			return p.Redis.Map()
		}
		return p.MariaDB.Server.Map()
	}
	tests := []struct {
		name   string
		engine string
		mode   string
		params map[string]any
		want   map[string]string
		absent string
		fails  bool
		errIs  error
	}{
		{"redis profile and parameter", instance.EngineRedis, instance.ModeMultiAZ, map[string]any{"maxmemory-policy": "allkeys-lru"},
			map[string]string{"maxmemory-policy": "allkeys-lru", "min-replicas-to-write": "1", "min-replicas-max-lag": "10"}, "", false, nil},
		{"single-az redis takes writes without replicas", instance.EngineRedis, instance.ModeSingleAZ, nil,
			map[string]string{}, "min-replicas-to-write", false, nil},
		{"mysql profile without the semi-sync wait point", instance.EngineMySQL, instance.ModeMultiAZ, map[string]any{"max_connections": 500},
			map[string]string{"max_connections": "500"}, "rpl_semi_sync_master_wait_point", false, nil},
		{"not a tunable", instance.EngineRedis, instance.ModeSingleAZ, map[string]any{"dir": "/etc"}, nil, "", true, instance.ErrInvalid},
		{"unknown mode", instance.EngineRedis, "sideways", nil, nil, "", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := redisPlan()
			plan.Engine, plan.DeploymentMode = tt.engine, tt.mode
			got, err := settings(&instance.Instance{Plan: plan, Parameters: tt.params})
			switch {
			case tt.fails && err == nil:
				t.Fatalf("settings = %v, want an error", got)
			case tt.fails && tt.errIs != nil && !errors.Is(err, tt.errIs):
				t.Fatalf("err = %v, want %v", err, tt.errIs)
			case tt.fails:
				return
			case err != nil:
				t.Fatal(err)
			}
			mode, _ := nettune.ParseMode(tt.mode)
			for k, v := range profile(t, mode, tt.engine) {
				if _, overridden := tt.want[k]; overridden || strings.HasPrefix(k, "rpl_semi_sync_master_wait_point") {
					continue
				}
				if got[k] != v {
					t.Errorf("%s = %q, want the profile's %q", k, got[k], v)
				}
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
			if _, ok := got[tt.absent]; tt.absent != "" && ok {
				t.Errorf("%s set; the driver manages it", tt.absent)
			}
		})
	}
}

// TestSpec: the driver's spec of a node carries the application database
// (MySQL) or the memory limit (Redis), and keeps a DR replica asynchronous.
func TestSpec(t *testing.T) {
	s := &Saga{cfg: Config{DataRoot: "/data"}}
	plan := redisPlan()
	plan.Engine, plan.ReplicationMode = instance.EngineMySQL, instance.ReplicationSemiSync
	in := &instance.Instance{ID: "i1", Name: "shop-db", Plan: plan, Version: "mariadb-10.11",
		Nodes: []instance.Node{
			{ID: "i1-n0", Role: instance.RolePrimary, RegionRole: instance.RegionPrimary, Port: 3307},
			{ID: "i1-n1", Role: instance.RoleReplica, RegionRole: instance.RegionPrimary, Port: 3308},
			{ID: "i1-n2", Role: instance.RoleReplica, RegionRole: instance.RegionDR, Port: 3309},
		}}
	for i, wantSemi := range []bool{true, true, false} {
		sp := s.spec(in, &in.Nodes[i])
		if sp.Database != "shop_db" || sp.Version != "10.11" || sp.DataRoot != "/data" || sp.Port != in.Nodes[i].Port || sp.SemiSync != wantSemi {
			t.Errorf("spec of %s = %+v", in.Nodes[i].ID, sp)
		}
	}
	in.Plan = redisPlan()
	if sp := s.spec(in, &in.Nodes[0]); sp.MemoryLimitBytes != 256<<20 || sp.Database != "" || sp.SemiSync {
		t.Errorf("redis spec = %+v", sp)
	}
}

func TestSysctlsFor(t *testing.T) {
	for _, mode := range []string{instance.ModeSingleAZ, instance.ModeMultiAZ, instance.ModeMultiRegion} {
		got, err := SysctlsFor(mode)
		if err != nil || len(got) == 0 {
			t.Errorf("SysctlsFor(%s) = %v, %v; want the profile's sysctls", mode, got, err)
		}
		for _, s := range got {
			if s.Key == "" || s.Value == "" {
				t.Errorf("SysctlsFor(%s): empty setting %+v", mode, s)
			}
		}
	}
	if _, err := SysctlsFor("sideways"); err == nil {
		t.Error("SysctlsFor(sideways) = nil error")
	}
}
