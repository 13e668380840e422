package plan

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var now = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func validSpec() Spec {
	return Spec{
		Name:           "mysql-test",
		Description:    "test plan",
		Engine:         MySQL,
		Versions:       []string{"8.0"},
		DeploymentMode: MultiAZ,
		Nodes: Nodes{Count: 3, Zones: 3, Groups: []NodeGroup{
			{Role: RolePrimary, RegionRole: RegionPrimary, Count: 1},
			{Role: RoleReplica, RegionRole: RegionPrimary, Count: 2},
		}},
		Resources:        Resources{VCPU: 2, MemoryMB: 4096, StorageGB: 50},
		ReplicationMode:  SemiSync,
		SLO:              SLO{Availability: 99.95, RTOSeconds: 60, RPOSeconds: 0},
		Prices:           Prices{Currency: "USD", NodeHour: "0.1", StorageGBHour: "0.0001"},
		ParametersSchema: json.RawMessage(`{"type":"object","properties":{"max_connections":{"type":"integer"}}}`),
		MaintenanceInfo:  MaintenanceInfo{Version: "1.0.0"},
	}
}

const testID = "11111111-2222-4333-8444-555555555555"

func TestNewDefaults(t *testing.T) {
	p, err := New(testID, validSpec(), now)
	require.NoError(t, err)
	require.Equal(t, "mysql-test", p.DisplayName)
	require.Equal(t, "8.0", p.DefaultVersion)
	require.Equal(t, Active, p.State)
	require.True(t, p.Orderable())
	require.Equal(t, "2vcpu-4096mb", p.Size())
	require.True(t, strings.HasPrefix(string(p.ParametersSchema), `{"$schema":"`+DefaultSchemaDialect+`","type":"object"`), string(p.ParametersSchema))
}

func TestValidationRules(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(s *Spec)
		field string
	}{
		{"missing name", func(s *Spec) { s.Name = "" }, "name"},
		{"oversize name", func(s *Spec) { s.Name = strings.Repeat("a", 64) }, "name"},
		{"bad name characters", func(s *Spec) { s.Name = "My_Plan" }, "name"},
		{"trailing hyphen", func(s *Spec) { s.Name = "plan-" }, "name"},
		{"oversize display name", func(s *Spec) { s.DisplayName = strings.Repeat("x", 101) }, "display_name"},
		{"missing description", func(s *Spec) { s.Description = " " }, "description"},
		{"oversize description", func(s *Spec) { s.Description = strings.Repeat("x", 256) }, "description"},
		{"unknown engine", func(s *Spec) { s.Engine = "postgres" }, "engine"},
		{"no versions", func(s *Spec) { s.Versions = nil }, "versions"},
		{"unknown version", func(s *Spec) { s.Versions = []string{"8.0", "5.7"} }, "versions[1]"},
		{"duplicate version", func(s *Spec) { s.Versions = []string{"8.0", "8.0"} }, "versions[1]"},
		{"default version not offered", func(s *Spec) { s.DefaultVersion = "8.4" }, "default_version"},
		{"unknown deployment mode", func(s *Spec) { s.DeploymentMode = "everywhere" }, "deployment_mode"},
		{"zero nodes", func(s *Spec) { s.Nodes.Count = 0 }, "nodes.count"},
		{"count differs from groups", func(s *Spec) { s.Nodes.Count = 4 }, "nodes.count"},
		{"no groups", func(s *Spec) { s.Nodes.Groups = nil }, "nodes.groups"},
		{"bad role", func(s *Spec) { s.Nodes.Groups[1].Role = "witness" }, "nodes.groups[1].role"},
		{"bad region role", func(s *Spec) { s.Nodes.Groups[1].RegionRole = "moon" }, "nodes.groups[1].region_role"},
		{"group count zero", func(s *Spec) { s.Nodes.Groups[1].Count = 0 }, "nodes.groups[1].count"},
		{"two primaries", func(s *Spec) { s.Nodes.Groups[0].Count = 2; s.Nodes.Count = 4 }, "nodes.groups"},
		{"primary in dr region", func(s *Spec) { s.Nodes.Groups[0].RegionRole = RegionDR }, "nodes.groups[0].region_role"},
		{"more zones than nodes", func(s *Spec) { s.Nodes.Zones = 4 }, "nodes.zones"},
		{"multi-az in one zone", func(s *Spec) { s.Nodes.Zones = 1 }, "nodes.zones"},
		{"multi-az with dr node", func(s *Spec) {
			s.Nodes.Groups[1].Count = 1
			s.Nodes.Groups = append(s.Nodes.Groups, NodeGroup{Role: RoleReplica, RegionRole: RegionDR, Count: 1})
			s.Nodes.Zones = 2
		}, "nodes.groups"},
		{"single-az over zones", func(s *Spec) { s.DeploymentMode = SingleAZ }, "nodes.zones"},
		{"multi-region without dr", func(s *Spec) { s.DeploymentMode = MultiRegion }, "nodes.groups"},
		{"unknown replication", func(s *Spec) { s.ReplicationMode = "sync" }, "replication_mode"},
		{"semi-sync on redis", func(s *Spec) {
			s.Engine = Redis
			s.Versions = []string{"7.2"}
		}, "replication_mode"},
		{"semi-sync single node", func(s *Spec) {
			s.DeploymentMode = SingleAZ
			s.Nodes = Nodes{Count: 1, Zones: 1, Groups: []NodeGroup{{Role: RolePrimary, RegionRole: RegionPrimary, Count: 1}}}
		}, "replication_mode"},
		{"vcpu zero", func(s *Spec) { s.Resources.VCPU = 0 }, "resources.vcpu"},
		{"vcpu fraction", func(s *Spec) { s.Resources.VCPU = 1.1 }, "resources.vcpu"},
		{"memory too small", func(s *Spec) { s.Resources.MemoryMB = 64 }, "resources.memory_mb"},
		{"storage zero", func(s *Spec) { s.Resources.StorageGB = 0 }, "resources.storage_gb"},
		{"availability 100", func(s *Spec) { s.SLO.Availability = 100 }, "slo.availability"},
		{"availability low", func(s *Spec) { s.SLO.Availability = 50 }, "slo.availability"},
		{"negative rto", func(s *Spec) { s.SLO.RTOSeconds = -1 }, "slo.rto_seconds"},
		{"zero rpo async", func(s *Spec) { s.ReplicationMode = Async }, "slo.rpo_seconds"},
		{"lower-case currency", func(s *Spec) { s.Prices.Currency = "usd" }, "prices.currency"},
		{"negative price", func(s *Spec) { s.Prices.NodeHour = "-1" }, "prices.node_hour"},
		{"price too precise", func(s *Spec) { s.Prices.StorageGBHour = "0.0000001" }, "prices.storage_gb_hour"},
		{"schema missing", func(s *Spec) { s.ParametersSchema = nil }, "parameters_schema"},
		{"schema not object", func(s *Spec) { s.ParametersSchema = json.RawMessage(`[1]`) }, "parameters_schema"},
		{"schema wrong keyword type", func(s *Spec) {
			s.ParametersSchema = json.RawMessage(`{"type":"object","properties":{"a":{"type":"integer","minimum":"ten"}}}`)
		}, "parameters_schema"},
		{"schema unknown type", func(s *Spec) {
			s.ParametersSchema = json.RawMessage(`{"type":"object","properties":{"a":{"type":"int"}}}`)
		}, "parameters_schema"},
		{"schema not describing object", func(s *Spec) { s.ParametersSchema = json.RawMessage(`{"type":"string"}`) }, "parameters_schema"},
		{"schema external ref", func(s *Spec) {
			s.ParametersSchema = json.RawMessage(`{"type":"object","properties":{"a":{"$ref":"http://example.com/x.json"}}}`)
		}, "parameters_schema"},
		{"schema relative ref", func(s *Spec) {
			s.ParametersSchema = json.RawMessage(`{"type":"object","properties":{"a":{"$ref":"other.json"}}}`)
		}, "parameters_schema"},
		{"schema oversize", func(s *Spec) {
			s.ParametersSchema = json.RawMessage(`{"type":"object","description":"` + strings.Repeat("x", MaxSchemaBytes) + `"}`)
		}, "parameters_schema"},
		{"maintenance version not semver", func(s *Spec) { s.MaintenanceInfo.Version = "1.0" }, "maintenance_info.version"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := validSpec()
			s.Nodes.Groups = append([]NodeGroup(nil), s.Nodes.Groups...)
			tc.edit(&s)
			_, err := New(testID, s, now)
			require.Error(t, err)
			require.ErrorIs(t, err, ErrInvalid)
			var ve *ValidationError
			require.True(t, errors.As(err, &ve))
			var fields []string
			for _, v := range ve.Violations {
				fields = append(fields, v.Field)
			}
			require.Contains(t, fields, tc.field, "violations: %v", ve.Violations)
		})
	}
}

func TestValidateIDAndState(t *testing.T) {
	p, err := New(testID, validSpec(), now)
	require.NoError(t, err)
	p.ID = "not-a-uuid"
	p.State = "gone"
	var ve *ValidationError
	require.True(t, errors.As(p.Validate(), &ve))
	require.Len(t, ve.Violations, 2)
}

func TestSeedIsValidAndStable(t *testing.T) {
	a, err := Seed(now)
	require.NoError(t, err)
	b, err := Seed(now.Add(time.Hour))
	require.NoError(t, err)
	require.Len(t, a, 6)
	names := map[string]bool{}
	for i := range a {
		require.Equal(t, a[i].ID, b[i].ID)
		require.Equal(t, a[i].Name, b[i].Name)
		require.NoError(t, a[i].Validate())
		names[a[i].Name] = true
	}
	for _, n := range []string{"mysql-dev-single-az", "mysql-ha-multi-az", "mysql-dr-multi-region",
		"redis-dev-single-az", "redis-ha-multi-az", "redis-dr-multi-region"} {
		require.True(t, names[n], n)
	}
}

func TestApply(t *testing.T) {
	p, err := New(testID, validSpec(), now)
	require.NoError(t, err)
	later := now.Add(time.Minute)

	desc := "new description"
	got, changed, err := p.Apply(Changes{Description: &desc}, later)
	require.NoError(t, err)
	require.Equal(t, []string{"description"}, changed)
	require.Equal(t, desc, got.Description)
	require.Equal(t, later, got.UpdatedAt)
	require.Equal(t, "test plan", p.Description, "the original is not modified")

	same := p.Description
	_, changed, err = p.Apply(Changes{Description: &same, ParametersSchema: p.ParametersSchema, Resources: &p.Resources}, later)
	require.NoError(t, err)
	require.Empty(t, changed)

	res := p.Resources
	res.VCPU = 8
	_, _, err = p.Apply(Changes{Resources: &res}, later)
	require.ErrorIs(t, err, ErrInvalid)
	require.Contains(t, err.Error(), "resources: is immutable")

	mi := MaintenanceInfo{Version: "0.9.0"}
	_, _, err = p.Apply(Changes{MaintenanceInfo: &mi}, later)
	require.ErrorContains(t, err, "maintenance_info.version")

	mi = MaintenanceInfo{Version: "1.1.0", Description: "tuned"}
	got, changed, err = p.Apply(Changes{MaintenanceInfo: &mi}, later)
	require.NoError(t, err)
	require.Equal(t, []string{"maintenance_info"}, changed)
	require.Equal(t, "1.1.0", got.MaintenanceInfo.Version)

	bad := json.RawMessage(`{"type":"object","properties":{"a":{"type":"nope"}}}`)
	_, _, err = p.Apply(Changes{ParametersSchema: bad}, later)
	require.ErrorContains(t, err, "parameters_schema")
}

func TestDeprecate(t *testing.T) {
	p, err := New(testID, validSpec(), now)
	require.NoError(t, err)
	require.True(t, p.Deprecate(now.Add(time.Hour)))
	require.False(t, p.Orderable())
	require.NotNil(t, p.DeprecatedAt)
	require.False(t, p.Deprecate(now.Add(2*time.Hour)))
	require.Equal(t, now.Add(time.Hour), *p.DeprecatedAt)
}

func TestValidateParameters(t *testing.T) {
	plans, err := Seed(now)
	require.NoError(t, err)
	mysql, redis := plans[0], plans[3]
	require.NoError(t, mysql.ValidateParameters(json.RawMessage(`{"max_connections": 500}`)))
	require.NoError(t, mysql.ValidateParameters(nil))
	require.Error(t, mysql.ValidateParameters(json.RawMessage(`{"max_connections": 5}`)))
	require.Error(t, mysql.ValidateParameters(json.RawMessage(`{"unknown": 1}`)))
	require.NoError(t, redis.ValidateParameters(json.RawMessage(`{"maxmemory-policy": "allkeys-lru"}`)))
	require.Error(t, redis.ValidateParameters(json.RawMessage(`{"maxmemory-policy": "sometimes"}`)))
}

func TestNormalizeSchema(t *testing.T) {
	got, err := NormalizeSchema(json.RawMessage(`{ }`))
	require.NoError(t, err)
	require.JSONEq(t, `{"$schema":"`+DefaultSchemaDialect+`"}`, string(got))
	got, err = NormalizeSchema(json.RawMessage(`{"$schema":"http://json-schema.org/draft-07/schema#", "type": "object"}`))
	require.NoError(t, err)
	require.Equal(t, `{"$schema":"http://json-schema.org/draft-07/schema#","type":"object"}`, string(got))
}
