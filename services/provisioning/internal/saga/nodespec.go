package saga

import (
	"strings"

	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
)

// spec is the driver's spec of a node, rebuilt identically from the
// database on every call (the driver compares it on Create and Adopt).
func (s *Saga) spec(in *instance.Instance, n *instance.Node) driver.NodeSpec {
	spec := driver.NodeSpec{
		InstanceID: in.ID, NodeID: n.ID, Engine: driver.Engine(in.Plan.Engine), Version: s.driverVersion(in.Version),
		Role: driver.Role(n.Role), Port: n.Port, DataRoot: s.cfg.DataRoot, Settings: n.Settings,
		SemiSync:    semiSync(in, n),
		Admin:       driver.Credentials(in.Accounts.Admin),
		Monitor:     driver.Credentials(in.Accounts.Monitor),
		Replication: driver.Credentials(in.Accounts.Replication),
		CDC:         driver.Credentials(in.Accounts.CDC),
		Placement:   driver.Placement{Region: n.Region, Zone: n.AZ, Host: n.Host},
	}
	if in.Restore != nil {
		// Every node of a restored instance is made from the same seed;
		// the spec keeps naming it after the seed is gone (the driver reads
		// it only when it creates a node), so it stays the same spec.
		spec.Seed = in.Restore.Seed
	}
	if in.Plan.Engine == instance.EngineMySQL {
		spec.Database = in.Database()
	} else {
		spec.MemoryLimitBytes = in.Plan.Resources.MemoryMB << 20
	}
	return spec
}

func (s *Saga) record(in *instance.Instance, n *instance.Node) driver.Node {
	return driver.Node{ID: n.ID, InstanceID: in.ID, Engine: driver.Engine(in.Plan.Engine), Role: driver.Role(n.Role),
		PID: n.PID, Port: n.Port, Address: n.Address, DataDir: n.DataDir}
}

// driverVersion maps a catalog version to what the driver runs.
func (s *Saga) driverVersion(v string) string {
	v = strings.TrimPrefix(v, "mariadb-")
	if s.cfg.ExactVersions || v == "" {
		return v
	}
	if strings.Count(v, ".") >= 1 && !strings.HasPrefix(v, "10.") && !strings.HasPrefix(v, "11.") {
		return strings.SplitN(v, ".", 2)[0]
	}
	return v
}
