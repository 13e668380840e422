package plan

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Stable ids of the default plans. OSB platforms remember plans by id, so
// these never change.
const (
	MySQLDevID = "6814408d-3c80-49ac-ba04-aaed9eddf844"
	MySQLHAID  = "1f60f3c5-2563-40f2-ab4b-9024647756ec"
	MySQLDRID  = "955f03e0-ba27-48cf-acde-d2b92f385034"
	RedisDevID = "22ffda50-b33a-4466-8afc-15ba8e0e6465"
	RedisHAID  = "013af63c-64eb-488d-b30b-08559e96807b"
	RedisDRID  = "cdd65d3b-a348-40f3-88d8-44f65663e37c"
)

const mysqlParameters = `{
  "$schema": "http://json-schema.org/draft-04/schema#",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "max_connections": {"type": "integer", "minimum": 10, "maximum": 10000, "default": 151,
      "description": "Maximum number of simultaneous client connections."},
    "character_set_server": {"type": "string", "enum": ["utf8mb4", "utf8mb3", "latin1"], "default": "utf8mb4",
      "description": "Default character set of new databases."},
    "long_query_time": {"type": "number", "minimum": 0, "maximum": 3600, "default": 10,
      "description": "Seconds after which a query is written to the slow query log."}
  }
}`

const redisParameters = `{
  "$schema": "http://json-schema.org/draft-04/schema#",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "maxmemory-policy": {"type": "string", "default": "noeviction",
      "enum": ["noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"],
      "description": "What Redis evicts when maxmemory is reached."},
    "notify-keyspace-events": {"type": "string", "pattern": "^[KEg$lshzxetmdnA]*$", "maxLength": 32, "default": "",
      "description": "Keyspace notification classes."},
    "timeout": {"type": "integer", "minimum": 0, "maximum": 86400, "default": 0,
      "description": "Seconds after which an idle client is closed (0 = never)."}
  }
}`

const storagePrice = "0.000140"

var maintenance = MaintenanceInfo{Version: "1.0.0", Description: "Initial Canopy engine build."}

// Seed returns the default catalog: for each engine a single-AZ development
// plan, a multi-AZ high-availability plan and a multi-region disaster-recovery
// plan, with fixed ids, created at now.
func Seed(now time.Time) ([]Plan, error) {
	single := Nodes{Count: 1, Zones: 1, Groups: []NodeGroup{{Role: RolePrimary, RegionRole: RegionPrimary, Count: 1}}}
	multiAZ := Nodes{Count: 3, Zones: 3, Groups: []NodeGroup{
		{Role: RolePrimary, RegionRole: RegionPrimary, Count: 1},
		{Role: RoleReplica, RegionRole: RegionPrimary, Count: 2},
	}}
	multiRegion := Nodes{Count: 3, Zones: 2, Groups: []NodeGroup{
		{Role: RolePrimary, RegionRole: RegionPrimary, Count: 1},
		{Role: RoleReplica, RegionRole: RegionPrimary, Count: 1},
		{Role: RoleReplica, RegionRole: RegionDR, Count: 1},
	}}
	// The major.minor of what the local driver runs (mariadbd 10.11,
	// redis-server 7.0); provisioning refuses orders for any version no
	// host runs, naming the ones that do (docs/provisioning.md).
	mysqlVersions := []string{"10.11"}
	redisVersions := []string{"7.0"}
	specs := []struct {
		id   string
		spec Spec
	}{
		{MySQLDevID, Spec{
			Name: "mysql-dev-single-az", DisplayName: "MySQL Dev (single AZ)",
			Description: "One MySQL node in one availability zone, for development and tests. No replica, no failover.",
			Engine:      MySQL, Versions: mysqlVersions, DeploymentMode: SingleAZ, Nodes: single,
			Resources:        Resources{VCPU: 1, MemoryMB: 2048, StorageGB: 20},
			ReplicationMode:  Async,
			SLO:              SLO{Availability: 99.5, RTOSeconds: 3600, RPOSeconds: 3600},
			Prices:           Prices{Currency: "USD", NodeHour: "0.030", StorageGBHour: storagePrice},
			ParametersSchema: json.RawMessage(mysqlParameters), MaintenanceInfo: maintenance,
		}},
		{MySQLHAID, Spec{
			Name: "mysql-ha-multi-az", DisplayName: "MySQL HA (multi AZ)",
			Description: "A primary and two semi-synchronous replicas across three availability zones, with automatic failover.",
			Engine:      MySQL, Versions: mysqlVersions, DeploymentMode: MultiAZ, Nodes: multiAZ,
			Resources:        Resources{VCPU: 2, MemoryMB: 8192, StorageGB: 100},
			ReplicationMode:  SemiSync,
			SLO:              SLO{Availability: 99.95, RTOSeconds: 60, RPOSeconds: 0},
			Prices:           Prices{Currency: "USD", NodeHour: "0.160", StorageGBHour: storagePrice},
			ParametersSchema: json.RawMessage(mysqlParameters), MaintenanceInfo: maintenance,
		}},
		{MySQLDRID, Spec{
			Name: "mysql-dr-multi-region", DisplayName: "MySQL DR (multi region)",
			Description: "A primary and a semi-synchronous replica across two zones of the primary region, plus a replica in a disaster-recovery region.",
			Engine:      MySQL, Versions: mysqlVersions, DeploymentMode: MultiRegion, Nodes: multiRegion,
			Resources:        Resources{VCPU: 4, MemoryMB: 16384, StorageGB: 200},
			ReplicationMode:  SemiSync,
			SLO:              SLO{Availability: 99.99, RTOSeconds: 300, RPOSeconds: 30},
			Prices:           Prices{Currency: "USD", NodeHour: "0.320", StorageGBHour: storagePrice},
			ParametersSchema: json.RawMessage(mysqlParameters), MaintenanceInfo: maintenance,
		}},
		{RedisDevID, Spec{
			Name: "redis-dev-single-az", DisplayName: "Redis Dev (single AZ)",
			Description: "One Redis node in one availability zone, for development and tests. No replica, no failover.",
			Engine:      Redis, Versions: redisVersions, DeploymentMode: SingleAZ, Nodes: single,
			Resources:        Resources{VCPU: 0.5, MemoryMB: 1024, StorageGB: 4},
			ReplicationMode:  Async,
			SLO:              SLO{Availability: 99.5, RTOSeconds: 3600, RPOSeconds: 3600},
			Prices:           Prices{Currency: "USD", NodeHour: "0.015", StorageGBHour: storagePrice},
			ParametersSchema: json.RawMessage(redisParameters), MaintenanceInfo: maintenance,
		}},
		{RedisHAID, Spec{
			Name: "redis-ha-multi-az", DisplayName: "Redis HA (multi AZ)",
			Description: "A Redis primary and two replicas across three availability zones, with automatic failover.",
			Engine:      Redis, Versions: redisVersions, DeploymentMode: MultiAZ, Nodes: multiAZ,
			Resources:        Resources{VCPU: 1, MemoryMB: 4096, StorageGB: 16},
			ReplicationMode:  Async,
			SLO:              SLO{Availability: 99.95, RTOSeconds: 30, RPOSeconds: 1},
			Prices:           Prices{Currency: "USD", NodeHour: "0.080", StorageGBHour: storagePrice},
			ParametersSchema: json.RawMessage(redisParameters), MaintenanceInfo: maintenance,
		}},
		{RedisDRID, Spec{
			Name: "redis-dr-multi-region", DisplayName: "Redis DR (multi region)",
			Description: "A Redis primary and a replica across two zones of the primary region, plus a replica in a disaster-recovery region.",
			Engine:      Redis, Versions: redisVersions, DeploymentMode: MultiRegion, Nodes: multiRegion,
			Resources:        Resources{VCPU: 2, MemoryMB: 8192, StorageGB: 32},
			ReplicationMode:  Async,
			SLO:              SLO{Availability: 99.99, RTOSeconds: 300, RPOSeconds: 30},
			Prices:           Prices{Currency: "USD", NodeHour: "0.160", StorageGBHour: storagePrice},
			ParametersSchema: json.RawMessage(redisParameters), MaintenanceInfo: maintenance,
		}},
	}
	plans := make([]Plan, 0, len(specs))
	for _, s := range specs {
		p, err := New(s.id, s.spec, now)
		if err != nil {
			return nil, fmt.Errorf("seed plan %s: %w", s.spec.Name, err)
		}
		plans = append(plans, p)
	}
	return plans, nil
}

// earlierSeeds are the version lists earlier releases seeded the default
// plans with: MySQL 8.0/8.4 and Redis 7.2/7.4, which the local driver never
// ran (docs/provisioning.md, "Versions").
var earlierSeeds = map[Engine][][]string{
	MySQL: {{"mariadb-10.11", "8.0", "8.4"}},
	Redis: {{"7.2", "7.4"}},
}

// SeedUpgrade returns the change that brings a stored default plan to the
// versions of seeded (the same plan as Seed returns it now), and true,
// when stored is one of Canopy's default plans (its fixed id) and still
// holds the versions an earlier release seeded. A plan whose versions a
// platform admin changed, and any plan that is not a default one, gets
// false: the catalog then only filters what it lists.
func SeedUpgrade(stored, seeded Plan) (Changes, bool) {
	if stored.ID != seeded.ID || stored.Engine != seeded.Engine || !isDefaultID(stored.ID) {
		return Changes{}, false
	}
	for _, old := range earlierSeeds[stored.Engine] {
		if slices.Equal(stored.Versions, old) {
			def := seeded.DefaultVersion
			return Changes{Versions: slices.Clone(seeded.Versions), DefaultVersion: &def}, true
		}
	}
	return Changes{}, false
}

func isDefaultID(id string) bool {
	return slices.Contains([]string{MySQLDevID, MySQLHAID, MySQLDRID, RedisDevID, RedisHAID, RedisDRID}, id)
}
