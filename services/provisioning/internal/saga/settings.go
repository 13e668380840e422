package saga

import (
	"fmt"
	"strings"

	"github.com/canopy-platform/canopy/libs/nettune"

	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/tunables"
)

// The isolation bound of multi-az Redis primaries (settings).
const (
	RedisMinReplicasToWrite = "1"
	RedisMinReplicasMaxLag  = "10"
)

// settings are a new node's engine settings: the tuning profile of the
// plan's deployment mode, overridden by the tenant's parameters.
func settings(in *instance.Instance) (map[string]string, error) {
	mode, err := nettune.ParseMode(in.Plan.DeploymentMode)
	if err != nil {
		return nil, err
	}
	prof, err := nettune.Default(mode)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	switch in.Plan.Engine {
	case instance.EngineMySQL:
		for k, v := range prof.MariaDB.Server.Map() {
			// The driver manages the semi-sync switches itself.
			if strings.HasPrefix(k, "rpl_semi_sync_master_wait_point") {
				continue
			}
			out[k] = v
		}
	case instance.EngineRedis:
		for k, v := range prof.Redis.Map() {
			out[k] = v
		}
		// Redis's analogue of semi-sync: a multi-az primary cut off from
		// every replica stops taking writes after min-replicas-max-lag
		// seconds, which bounds what a failover away from it can lose.
		if in.Plan.DeploymentMode == instance.ModeMultiAZ && len(in.Plan.Nodes) > 1 {
			out["min-replicas-to-write"] = RedisMinReplicasToWrite
			out["min-replicas-max-lag"] = RedisMinReplicasMaxLag
		}
	}
	params, err := parameterSettings(in.Plan.Engine, in.Parameters)
	if err != nil {
		return nil, err
	}
	for k, v := range params {
		out[k] = v
	}
	return out, nil
}

// parameterSettings renders plan parameters as engine settings through the
// engine's allowlist: a parameter that is not a tunable setting of the engine
// (or has a bad value) is instance.ErrInvalid and never reaches a node.
func parameterSettings(engine string, params map[string]any) (map[string]string, error) {
	out, err := tunables.Render(engine, params)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", instance.ErrInvalid, err)
	}
	return out, nil
}
