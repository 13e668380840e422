package events_test

import (
	"encoding/json"
	"io/fs"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/api/events/eventstest"
)

// examples returns a fully populated payload for every schema file: each
// ce_type, plus the aggregate schemas the ce_types share by $ref.
func examples() map[string]any {
	at := time.Date(2026, 12, 2, 14, 0, 0, 0, time.UTC)
	yes := true
	plan := events.Plan{
		ID: "6f1c9a52-5b1e-4c47-9d0f-6e0d2b1a7c11", Name: "mysql-ha-small", DisplayName: "MySQL HA small", Description: "d",
		Engine: "mysql", Versions: []string{"8.0", "8.4"}, DefaultVersion: "8.4", DeploymentMode: "multi-az",
		Nodes:     events.PlanNodes{Count: 3, Zones: 3, Groups: []events.NodeGroup{{Role: "primary", RegionRole: "primary", Count: 1}, {Role: "replica", RegionRole: "primary", Count: 2}}},
		Resources: events.PlanResources{VCPU: 2, MemoryMB: 8192, StorageGB: 100}, ReplicationMode: "semi-sync",
		SLO:              events.PlanSLO{Availability: 99.95, RTOSeconds: 30, RPOSeconds: 0},
		Prices:           events.PlanPrices{Currency: "USD", NodeHour: "0.12", StorageGBHour: "0.0002"},
		ParametersSchema: json.RawMessage(`{"$schema":"http://json-schema.org/draft-04/schema#","type":"object"}`),
		MaintenanceInfo:  events.MaintenanceInfo{Version: "1.0.0", Description: "m"},
		State:            "deprecated", CreatedAt: at, UpdatedAt: at, DeprecatedAt: &at,
		ServiceID: "0b6d4c1e-2f4a-4e0b-8a55-3c1f7e9d2a10", Size: "2vcpu-8192mb",
	}
	instance := events.Instance{
		InstanceID: "i-1", TenantID: "acme", Name: "orders", PlanID: plan.ID, Engine: "mysql", Version: "8.4",
		DeploymentMode: "multi-az", State: "failed", OperationID: "op-1", Reason: "node-0 did not start",
		VCPU: 6, MemoryMB: 24576, StorageGB: 300,
		Nodes: []events.Node{{ID: "n-0", Name: "node-0", Role: "primary", Region: "eu", AZ: "eu-a", Host: "h-1", Address: "127.0.0.1:20000", State: "running"}},
		Endpoints: events.Endpoints{Primary: "127.0.0.1:20000", Replicas: []string{"127.0.0.1:20001"},
			RW: "127.0.0.1:16000", RO: "127.0.0.1:16001", Sentinel: "127.0.0.1:26380", MasterName: "orders"},
		FailoverToken: 7,
		OccurredAt:    at,
	}
	binding := events.Binding{BindingID: "b-1", InstanceID: "i-1", TenantID: "acme", Name: "app", Username: "app_1", OccurredAt: at}
	placed := events.PlacedNode{Name: "node-0", Role: "primary", Region: "eu", AZ: "eu-a", Host: "h-1", Address: "127.0.0.1", Port: 20000, VCPU: 2, MemoryMB: 8192, StorageGB: 100, Score: 1.5}
	host := events.HostChanged{HostID: "h-1", Region: "eu", AZ: "eu-a", State: "down", PreviousState: "ready", Labels: map[string]string{"disk": "nvme"}, Instances: []string{"i-1"}}
	transition := events.NodeTransition{
		InstanceID: "i-1", TenantID: "acme", NodeID: "n-0", Address: "127.0.0.1:20000", Engine: "mysql", Role: "replica",
		Status: "down", PreviousStatus: "up", Reason: "refused", Streak: 3,
		Evidence: events.Evidence{ProbeReason: "refused", Detail: "connection refused", ObservedRole: "replica", ReadOnly: &yes, SemiSync: &yes,
			Replication: &events.Replication{IORunning: true, SQLRunning: true, LagSeconds: 2, Position: "gtid:1-5", Source: "127.0.0.1:20001", LastError: "e"},
			SplitBrain:  []string{"n-0", "n-1"}, ProbeDurationMS: 1.5},
		Policy:   events.Policy{IntervalMS: 1000, TimeoutMS: 500, Fall: 3, Rise: 2},
		ProbedAt: at, Replica: "hc-0",
	}
	up := transition
	up.Status, up.PreviousStatus, up.Reason = "up", "down", ""
	degraded := transition
	degraded.Status, degraded.Reason = "degraded", "replica_lag_high"
	promoted := at.Add(400 * time.Millisecond)
	recovery := events.Recovery{RecoveryID: "r-1", InstanceID: "i-1", TenantID: "acme", Engine: "mysql", Kind: events.RecoveryAutomatic,
		Problem: "DeadPrimary", State: "completed", OldPrimary: "n-0", NewPrimary: "n-1", NewPrimaryAddress: "127.0.0.1:20001",
		Roles: map[string]string{"n-0": "fenced", "n-1": "primary", "n-2": "replica"}, FencingToken: 7, Reason: "r",
		LostTransactions: []string{"0-1-42"}, DetectedAt: at, PromotedAt: &promoted, CompletedAt: &promoted, RTOMS: 900, DetectionMS: 300, PromotionMS: 90}
	streamStatus := events.CDCStreamStatus{StreamID: "s-1", InstanceID: "i-1", TenantID: "acme", State: "streaming", LagMs: 45000,
		LagEvents: 1200, ThresholdMs: 30000, Reason: "r", GTID: "0-1-42"}
	syncConflict := events.CDCSyncConflict{JobID: "j-1", TenantID: "acme", ConflictID: "c-1", FromInstance: "i-1", ToInstance: "i-2",
		DB: "app", Table: "orders", Kind: "differs", Key: json.RawMessage(`{"id":7}`), Strategy: "manual", Resolution: "pending",
		GTID: "0-1-42", At: at}
	syncInconsistent := events.CDCSyncInconsistent{JobID: "j-1", TenantID: "acme", VerificationID: "v-1", SourceInstance: "i-1",
		TargetInstance: "i-2", Tables: []events.CDCSyncTableDiff{{Table: "app.orders", DifferingRows: 2}}, RowsChecked: 1000,
		DifferingRows: 2, Repair: true, RepairedRows: 2, FinishedAt: at}
	syncFailed := events.CDCSyncFailed{JobID: "j-1", TenantID: "acme", SourceInstance: "i-1", TargetInstance: "r-1", State: "failed",
		Reason: "ALTER TABLE app.orders with ddl: stop"}
	resolvedAt := at.Add(5 * time.Minute)
	firing := events.AlertTransition{Fingerprint: "0f1e2d3c4b5a6978", TenantID: "acme", Status: "firing",
		Labels: map[string]string{"alertname": "NodeDown", "severity": "critical", "tenant": "acme", "instance": "i-1",
			"node": "n-0", "rule": "node-down"},
		Annotations: map[string]string{"summary": "Node n-0 of i-1 is down"}, StartsAt: at,
		GeneratorURL: "http://127.0.0.1:8080/api/v1/alert-rules/node-down", Rule: "node-down"}
	resolved := firing
	resolved.Status, resolved.EndsAt = "resolved", &resolvedAt
	backupDone := events.BackupOutcome{BackupID: "b-1", TenantID: "acme", InstanceID: "i-1", Engine: "mysql", Kind: "full",
		Trigger: "scheduled", StartedAt: at, FinishedAt: resolvedAt, DataBytes: 1 << 30, StoredBytes: 300 << 20, GTID: "0-1-42",
		Verified: true, Error: "e"}
	backupFailed := backupDone
	backupFailed.Verified, backupFailed.Error = false, "interrupted"
	drill := events.DrillOutcome{DrillID: "d-1", TenantID: "acme", InstanceID: "i-1", BackupID: "b-1", ScratchInstanceID: "i-2",
		StartedAt: at, FinishedAt: resolvedAt, RestoreSeconds: 42.5, Tables: 12, Mismatches: []string{"shop.orders: rows 10 != 11"},
		Error: "e"}
	archiveLag := events.ArchiveLag{TenantID: "acme", InstanceID: "i-1", LagSeconds: 400, BoundSeconds: 300, ArchivedGTID: "0-1-42"}
	return map[string]any{
		"backup.outcome":           backupDone,
		events.TypeBackupCompleted: backupDone,
		events.TypeBackupFailed:    backupFailed,
		"backup.drill.outcome":     drill,
		events.TypeDrillCompleted:  drill,
		events.TypeDrillFailed:     drill,
		"backup.archive.lag":       archiveLag,
		events.TypeArchiveLagging:  archiveLag,
		events.TypeArchiveCaughtUp: archiveLag,
		events.TypeAlertFiring:     firing,
		events.TypeAlertResolved:   resolved,
		events.TypeMeteringBudgetThreshold: events.BudgetThreshold{TenantID: "acme", Month: "2026-12", Kind: "forecast",
			ThresholdPercent: 80, Budget: "100.00", Actual: "6.40", Forecast: "99.20", Currency: "USD", OccurredAt: at},
		events.TypeMeteringUsageRated: events.UsageRated{TenantID: "acme", Meter: "node_hours", Unit: "node-hour",
			HourStart: at, Quantity: "2.975000000", Amount: "0.357000000", Currency: "USD"},
		events.TypeCDCStreamUsage: events.CDCStreamUsage{StreamID: "s-1", TenantID: "acme", InstanceID: "i-1", Rows: 1200,
			From: at.Add(-time.Minute), To: at},
		// The record value on canopy.usage.ingest.v1 is a whole CloudEvent
		// (services/metering's meter.Event marshals to it); metering's
		// tests validate the values they really write.
		events.SchemaUsageCloudEvent: map[string]any{"specversion": "1.0", "id": "evt-1", "source": "/gateway/eu-1",
			"type": "api.request", "subject": "i-1", "time": at, "datacontenttype": "application/json",
			"data": map[string]any{"bytes": 512, "route": "/v1/x"}, "tenantid": "acme"},
		events.TypeCDCSyncConflict:     syncConflict,
		events.TypeCDCSyncInconsistent: syncInconsistent,
		events.TypeCDCSyncFailed:       syncFailed,
		"cdc.stream.status":            streamStatus,
		events.TypeCDCStreamLagging:    streamStatus,
		events.TypeCDCStreamCaughtUp:   streamStatus,
		events.TypeCDCStreamFailed:     streamStatus,
		"failover.recovery":            recovery,
		events.TypeFailoverStarted:     recovery,
		events.TypeFailoverCompleted:   recovery,
		events.TypeFailoverFailed:      recovery,
		events.TypeNodeRejoined: events.NodeRejoined{InstanceID: "i-1", TenantID: "acme", NodeID: "n-0", Primary: "n-1", Rebuilt: true,
			LostTransactions: []string{"0-1-42"}, OccurredAt: at},
		"catalog.plan": events.PlanEvent{Plan: plan}.Plan,
		// created events carry no changed_fields in practice; the schema allows them.
		events.TypePlanCreated:       events.PlanEvent{Plan: plan, ChangedFields: []string{"name"}},
		events.TypePlanUpdated:       events.PlanEvent{Plan: plan, ChangedFields: []string{"description", "prices"}},
		events.TypePlanDeprecated:    events.PlanEvent{Plan: plan, ChangedFields: []string{"state"}},
		"provisioning.instance":      instance,
		events.TypeInstanceRequested: instance,
		events.TypeInstanceReady:     instance,
		events.TypeInstanceFailed:    instance,
		events.TypeInstanceUpdating:  instance,
		events.TypeInstanceUpdated:   instance,
		events.TypeInstanceDeleting:  instance,
		events.TypeInstanceDeleted:   instance,
		events.TypeBindingCreated:    binding,
		events.TypeBindingDeleted:    binding,
		events.TypePlacementRequested: events.PlacementRequested{InstanceID: "i-1", TenantID: "acme", RequestID: "r-1", Kind: events.KindNew, Engine: "mysql", DeploymentMode: "multi-region",
			Nodes:  []events.NodeRequest{{Name: "node-0", Role: events.PlacementRolePrimary, VCPU: 2, MemoryMB: 8192, StorageGB: 100}, {Name: "node-1", Role: events.PlacementRoleDRReplica, VCPU: 2, MemoryMB: 8192, StorageGB: 100}},
			Region: "eu", DRRegion: "us", AllowedRegions: []string{"eu", "us"}, Labels: map[string]string{"disk": "nvme"}, FailedNode: "node-1"},
		events.TypePlacementDecided: events.PlacementDecided{InstanceID: "i-1", TenantID: "acme", RequestID: "r-1", Kind: events.KindReplace, DeploymentMode: "multi-az",
			Nodes: []events.PlacedNode{placed}, ReplacedNode: "node-0", ExpiresAt: at},
		events.TypePlacementFailed: events.PlacementFailed{InstanceID: "i-1", TenantID: "acme", RequestID: "r-1", Kind: events.KindNew, Reason: "no placement",
			Filters: []events.FilterResult{{Name: "capacity", Rejected: 3, Reason: "less than 8 GiB memory free"}}},
		events.TypePlacementReleased:  events.PlacementReleased{InstanceID: "i-1", TenantID: "acme", Reason: "expired", Hosts: []string{"h-1"}},
		events.TypePlacementConfirmed: events.PlacementConfirmed{InstanceID: "i-1", TenantID: "acme"},
		events.TypeHostCreated:        host,
		events.TypeHostUpdated:        host,
		events.TypeHostCordoned:       host,
		events.TypeHostUncordoned:     host,
		events.TypeHostDown:           host,
		events.TypeRegionCreated:      events.RegionChanged{RegionID: "eu", Name: "Europe"},
		events.TypeRegionUpdated:      events.RegionChanged{RegionID: "eu", Name: "Europe"},
		events.TypeZoneCreated:        events.ZoneChanged{ZoneID: "eu-a", RegionID: "eu", Name: "A"},
		events.TypeZoneUpdated:        events.ZoneChanged{ZoneID: "eu-a", RegionID: "eu", Name: "A"},
		events.TypeInventoryLoaded:    events.InventoryLoaded{Source: "inventory.yaml", Regions: 1, Zones: 3, Hosts: 9},
		events.TypeNodeUp:             up,
		events.TypeNodeDown:           transition,
		events.TypeNodeDegraded:       degraded,
		events.TypeNodeSampled: events.SampleBatch{InstanceID: "i-1", TenantID: "acme", Engine: "redis", WindowEnd: at,
			Nodes: []events.NodeSample{{NodeID: "n-0", Role: "primary", Status: "up", At: at, Metrics: map[string]int64{"connections": 3}}}},
	}
}

// TestPayloadsMatchSchemas marshals a populated payload of every event type
// and checks it against its schema, that it writes no member the schema does
// not declare (a struct field the contract does not know) and that it writes
// every member the schema declares (a schema member without a struct field).
func TestPayloadsMatchSchemas(t *testing.T) {
	v := eventstest.MustNew(t)
	for typ, ex := range examples() {
		t.Run(typ, func(t *testing.T) {
			data, err := json.Marshal(ex)
			if err != nil {
				t.Fatal(err)
			}
			if err := v.Validate(typ, data); err != nil {
				t.Fatal(err)
			}
			var inst any
			if err := json.Unmarshal(data, &inst); err != nil {
				t.Fatal(err)
			}
			for _, path := range undeclared(v.Schema(typ), inst, "") {
				t.Errorf("%s is written but not declared in %s", path, events.SchemaFile(typ))
			}
			for _, path := range unwritten(v.Schema(typ), inst, "") {
				t.Errorf("%s is declared in %s but the populated payload does not write it (no struct field?)", path, events.SchemaFile(typ))
			}
		})
	}
}

// TestMinimalPayloadsMatchSchemas checks payloads with only what the
// producers always set (omitempty members left out).
func TestMinimalPayloadsMatchSchemas(t *testing.T) {
	v := eventstest.MustNew(t)
	cases := map[string]struct {
		typ     string
		payload any
	}{
		"replace request": {events.TypePlacementRequested, events.PlacementRequested{InstanceID: "i", Kind: events.KindReplace, FailedNode: "node-1"}},
		"new request": {events.TypePlacementRequested, events.PlacementRequested{InstanceID: "i", TenantID: "acme", DeploymentMode: "multi-az",
			Nodes: []events.NodeRequest{{Role: "primary", VCPU: 1, MemoryMB: 1024, StorageGB: 10}}}},
		"confirmed": {events.TypePlacementConfirmed, events.PlacementConfirmed{InstanceID: "i"}},
		"pushed platform alert": {events.TypeAlertFiring, events.AlertTransition{Fingerprint: "0123456789abcdef", Status: "firing",
			Labels: map[string]string{"alertname": "DiskFull"}, StartsAt: time.Date(2026, 12, 2, 14, 0, 0, 0, time.UTC)}},
		"stream caught up": {events.TypeCDCStreamCaughtUp, events.CDCStreamStatus{StreamID: "s", InstanceID: "i", TenantID: "acme", State: "streaming"}},
		"ingested event without subject or data": {events.SchemaUsageCloudEvent, map[string]any{"specversion": "1.0", "id": "1",
			"source": "s", "type": "x", "time": time.Date(2026, 12, 2, 14, 0, 0, 0, time.UTC), "tenantid": "acme"}},
		"region created": {events.TypeRegionCreated, events.RegionChanged{RegionID: "r"}},
		"backup completed": {events.TypeBackupCompleted, events.BackupOutcome{BackupID: "b", TenantID: "acme", InstanceID: "i",
			Engine: "redis", Kind: "snapshot", Trigger: "on_demand", StartedAt: time.Date(2026, 12, 2, 14, 0, 0, 0, time.UTC),
			FinishedAt: time.Date(2026, 12, 2, 14, 1, 0, 0, time.UTC)}},
		"drill without backup": {events.TypeDrillFailed, events.DrillOutcome{DrillID: "d", TenantID: "acme", InstanceID: "i",
			StartedAt: time.Date(2026, 12, 2, 14, 0, 0, 0, time.UTC), FinishedAt: time.Date(2026, 12, 2, 14, 0, 1, 0, time.UTC),
			Error: "no verified backup"}},
		"archive caught up": {events.TypeArchiveCaughtUp, events.ArchiveLag{TenantID: "acme", InstanceID: "i", BoundSeconds: 300}},
		"zone created":      {events.TypeZoneCreated, events.ZoneChanged{ZoneID: "z", RegionID: "r"}},
		"plan created": {events.TypePlanCreated, events.PlanEvent{Plan: func() events.Plan {
			p := examples()["catalog.plan"].(events.Plan)
			p.DeprecatedAt, p.MaintenanceInfo.Description, p.State = nil, "", "active"
			return p
		}()}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			data, err := json.Marshal(tc.payload)
			if err != nil {
				t.Fatal(err)
			}
			if err := v.Validate(tc.typ, data); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestEverySchemaHasAPayload fails when a schema file has no example here,
// so a new ce_type cannot be added without its Go payload.
func TestEverySchemaHasAPayload(t *testing.T) {
	files, err := fs.Glob(events.Schemas(), "*.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	ex := examples()
	var missing []string
	for _, f := range files {
		if _, ok := ex[strings.TrimSuffix(f, ".schema.json")]; !ok {
			missing = append(missing, f)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("schemas without a payload struct example: %v", missing)
	}
	if len(files) != len(ex) {
		t.Fatalf("%d schema files, %d examples: an example has no schema", len(files), len(ex))
	}
}

// TestInvalidPayloadsRejected keeps the schemas strict enough to matter.
func TestInvalidPayloadsRejected(t *testing.T) {
	v := eventstest.MustNew(t)
	cases := map[string]struct {
		typ  string
		data string
	}{
		"unknown deployment mode":     {events.TypePlacementRequested, `{"instance_id":"i","deployment_mode":"sideways","nodes":[]}`},
		"decided without nodes":       {events.TypePlacementDecided, `{"instance_id":"i"}`},
		"instance without tenant":     {events.TypeInstanceReady, `{"instance_id":"i"}`},
		"transition bad timestamp":    {events.TypeNodeDown, `{"instance_id":"i","node_id":"n","address":"a","engine":"mysql","status":"down","previous_status":"up","reason":"refused","streak":1,"evidence":{"probe_duration_ms":1},"policy":{"interval_ms":1,"timeout_ms":1,"fall":1,"rise":1},"probed_at":"yesterday","replica":"r"}`},
		"unknown type":                {"provisioning.instance.teleported", `{}`},
		"conflict of no kind":         {events.TypeCDCSyncConflict, `{"job_id":"j","tenant_id":"t","conflict_id":"c","from_instance":"a","to_instance":"b","db":"d","table":"t","kind":"weird","key":{},"strategy":"manual","resolution":"pending","gtid":"0-1-1","at":"2026-12-02T14:00:00Z"}`},
		"failed without reason":       {events.TypeCDCSyncFailed, `{"job_id":"j","tenant_id":"t","source_instance":"a","target_instance":"b","state":"failed"}`},
		"budget of no kind":           {events.TypeMeteringBudgetThreshold, `{"tenant_id":"t","month":"2026-12","kind":"hoped","threshold_percent":80,"budget":"1","actual":"1","forecast":"1","currency":"USD","occurred_at":"2026-12-02T14:00:00Z"}`},
		"budget amount a float":       {events.TypeMeteringBudgetThreshold, `{"tenant_id":"t","month":"2026-12","kind":"actual","threshold_percent":80,"budget":1.5,"actual":"1","forecast":"1","currency":"USD","occurred_at":"2026-12-02T14:00:00Z"}`},
		"budget month a date":         {events.TypeMeteringBudgetThreshold, `{"tenant_id":"t","month":"2026-12-01","kind":"actual","threshold_percent":80,"budget":"1","actual":"1","forecast":"1","currency":"USD","occurred_at":"2026-12-02T14:00:00Z"}`},
		"rated negative amount":       {events.TypeMeteringUsageRated, `{"tenant_id":"t","meter":"node_hours","unit":"node-hour","hour_start":"2026-12-02T14:00:00Z","quantity":"1","amount":"-0.5","currency":"USD"}`},
		"rated without currency":      {events.TypeMeteringUsageRated, `{"tenant_id":"t","meter":"node_hours","unit":"node-hour","hour_start":"2026-12-02T14:00:00Z","quantity":"1","amount":"0.5","currency":""}`},
		"usage of no rows":            {events.TypeCDCStreamUsage, `{"stream_id":"s","tenant_id":"t","instance_id":"i","rows":0,"from":"2026-12-02T14:00:00Z","to":"2026-12-02T14:01:00Z"}`},
		"cloudevent without id":       {events.SchemaUsageCloudEvent, `{"specversion":"1.0","source":"s","type":"x","time":"2026-12-02T14:00:00Z","tenantid":"t"}`},
		"cloudevent spec 0.3":         {events.SchemaUsageCloudEvent, `{"specversion":"0.3","id":"1","source":"s","type":"x","time":"2026-12-02T14:00:00Z","tenantid":"t"}`},
		"alert fingerprint not hex":   {events.TypeAlertFiring, `{"fingerprint":"NOTHEX0123456789","status":"firing","labels":{"alertname":"x"},"starts_at":"2026-12-02T14:00:00Z"}`},
		"firing with an end":          {events.TypeAlertFiring, `{"fingerprint":"0123456789abcdef","status":"firing","labels":{"alertname":"x"},"starts_at":"2026-12-02T14:00:00Z","ends_at":"2026-12-02T14:05:00Z"}`},
		"resolved without an end":     {events.TypeAlertResolved, `{"fingerprint":"0123456789abcdef","status":"resolved","labels":{"alertname":"x"},"starts_at":"2026-12-02T14:00:00Z"}`},
		"resolved marked firing":      {events.TypeAlertResolved, `{"fingerprint":"0123456789abcdef","status":"firing","labels":{"alertname":"x"},"starts_at":"2026-12-02T14:00:00Z","ends_at":"2026-12-02T14:05:00Z"}`},
		"alert without labels":        {events.TypeAlertFiring, `{"fingerprint":"0123456789abcdef","status":"firing","labels":{},"starts_at":"2026-12-02T14:00:00Z"}`},
		"backup failed without error": {events.TypeBackupFailed, `{"backup_id":"b","tenant_id":"t","instance_id":"i","engine":"mysql","kind":"full","trigger":"scheduled","started_at":"2026-12-02T14:00:00Z","finished_at":"2026-12-02T14:01:00Z","data_bytes":1,"stored_bytes":1,"verified":false}`},
		"backup of no engine":         {events.TypeBackupCompleted, `{"backup_id":"b","tenant_id":"t","instance_id":"i","engine":"postgres","kind":"full","trigger":"scheduled","started_at":"2026-12-02T14:00:00Z","finished_at":"2026-12-02T14:01:00Z","data_bytes":1,"stored_bytes":1,"verified":true}`},
		"archive lag negative":        {events.TypeArchiveLagging, `{"tenant_id":"t","instance_id":"i","lag_seconds":-1,"bound_seconds":300}`},
		"cloudevent data a string":    {events.SchemaUsageCloudEvent, `{"specversion":"1.0","id":"1","source":"s","type":"x","time":"2026-12-02T14:00:00Z","tenantid":"t","data":"42"}`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if err := v.Validate(tc.typ, []byte(tc.data)); err == nil {
				t.Fatal("invalid payload accepted")
			}
		})
	}
}

func TestIsInstanceEvent(t *testing.T) {
	cases := map[string]bool{
		events.TypeInstanceReady:   true,
		"provisioning.instance.":   false,
		events.TypeBindingCreated:  false,
		events.TypePlacementFailed: false,
	}
	for typ, want := range cases {
		if got := events.IsInstanceEvent(typ); got != want {
			t.Errorf("IsInstanceEvent(%q) = %v, want %v", typ, got, want)
		}
	}
}

// undeclared lists the object members of inst (paths) that s does not
// declare, following $ref and array items. Maps declared as plain objects
// (labels, metrics, parameters_schema) are free-form and not descended.
func undeclared(s *jsonschema.Schema, inst any, path string) []string {
	return memberDiff(s, inst, path, false)
}

// unwritten lists the members s declares that inst lacks, following $ref
// and array items, so a schema member without a struct field is caught.
func unwritten(s *jsonschema.Schema, inst any, path string) []string {
	return memberDiff(s, inst, path, true)
}

// memberDiff walks s and inst together (through $ref and array items) and
// lists, sorted, the members one side lacks: those s declares and inst
// lacks when fromSchema, else those inst has and s does not declare.
func memberDiff(s *jsonschema.Schema, inst any, path string, fromSchema bool) []string {
	for s != nil && s.Ref != nil {
		s = s.Ref
	}
	if s == nil {
		return nil
	}
	var out []string
	switch x := inst.(type) {
	case map[string]any:
		if !fromSchema && len(s.Properties) == 0 {
			return nil
		}
		if fromSchema {
			for k, ps := range s.Properties {
				if val, ok := x[k]; ok {
					out = append(out, memberDiff(ps, val, path+"."+k, fromSchema)...)
				} else {
					out = append(out, path+"."+k)
				}
			}
			break
		}
		for k, val := range x {
			if ps, ok := s.Properties[k]; ok {
				out = append(out, memberDiff(ps, val, path+"."+k, fromSchema)...)
			} else {
				out = append(out, path+"."+k)
			}
		}
	case []any:
		items, _ := s.Items.(*jsonschema.Schema)
		if s.Items2020 != nil {
			items = s.Items2020
		}
		for _, val := range x {
			out = append(out, memberDiff(items, val, path+"[]", fromSchema)...)
		}
	}
	sort.Strings(out)
	return out
}
