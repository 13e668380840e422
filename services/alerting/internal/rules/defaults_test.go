package rules

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
)

// defaultCase is a realistic occurrence of what a default rule watches:
// the events that fire it (sample batches are repeated until For elapsed),
// and those that resolve it ("" resolves on Tick after ResolveAfter).
type defaultCase struct {
	fire     func(t *testing.T, at time.Time) eventbus.Event
	resolve  func(t *testing.T, at time.Time) eventbus.Event
	severity string
}

func redisBatch(t *testing.T, at time.Time, role string, m map[string]int64) eventbus.Event {
	return batch(t, at, "acme", "i-redis", "redis", node("n-r1", role, m))
}

func mysqlBatch(t *testing.T, at time.Time, role string, m map[string]int64) eventbus.Event {
	return batch(t, at, "acme", "i-mysql", "mysql", node("n-m2", role, m))
}

var defaultCases = map[string]defaultCase{
	"node-down": {
		fire: func(t *testing.T, at time.Time) eventbus.Event {
			return envelope(t, events.TypeNodeDown, at, events.NodeTransition{InstanceID: "i-mysql", TenantID: "acme",
				NodeID: "n-m1", Address: "10.0.0.5:3306", Engine: "mysql", Role: "primary", Status: "down",
				PreviousStatus: "up", Reason: "refused", Streak: 3, ProbedAt: at, Replica: "hc-0"})
		},
		resolve: func(t *testing.T, at time.Time) eventbus.Event {
			return envelope(t, events.TypeNodeUp, at, events.NodeTransition{InstanceID: "i-mysql", TenantID: "acme",
				NodeID: "n-m1", Address: "10.0.0.5:3306", Engine: "mysql", Role: "primary", Status: "up",
				PreviousStatus: "down", Streak: 2, ProbedAt: at, Replica: "hc-0"})
		},
		severity: "critical",
	},
	"redis-memory-high": {
		fire: func(t *testing.T, at time.Time) eventbus.Event {
			return redisBatch(t, at, "primary", map[string]int64{"used_memory": 900 << 20, "maxmemory": 1 << 30,
				"connected_clients": 12, "maxclients": 10000})
		},
		resolve: func(t *testing.T, at time.Time) eventbus.Event {
			return redisBatch(t, at, "primary", map[string]int64{"used_memory": 100 << 20, "maxmemory": 1 << 30})
		},
		severity: "critical",
	},
	"mysql-buffer-pool-high": {
		fire: func(t *testing.T, at time.Time) eventbus.Event {
			return mysqlBatch(t, at, "primary", map[string]int64{"innodb_buffer_pool_bytes_data": 120 << 20,
				"innodb_buffer_pool_size": 128 << 20, "connected_clients": 3, "max_connections": 151})
		},
		resolve: func(t *testing.T, at time.Time) eventbus.Event {
			return mysqlBatch(t, at, "primary", map[string]int64{"innodb_buffer_pool_bytes_data": 20 << 20,
				"innodb_buffer_pool_size": 128 << 20})
		},
		severity: "critical",
	},
	"replica-lag": {
		fire: func(t *testing.T, at time.Time) eventbus.Event {
			return mysqlBatch(t, at, "replica", map[string]int64{"replication_lag_seconds": 95, "replication_running": 1})
		},
		resolve: func(t *testing.T, at time.Time) eventbus.Event {
			return mysqlBatch(t, at, "replica", map[string]int64{"replication_lag_seconds": 0, "replication_running": 1})
		},
		severity: "warning",
	},
	"connections-high": {
		fire: func(t *testing.T, at time.Time) eventbus.Event {
			return mysqlBatch(t, at, "primary", map[string]int64{"connected_clients": 140, "max_connections": 151})
		},
		resolve: func(t *testing.T, at time.Time) eventbus.Event {
			return mysqlBatch(t, at, "primary", map[string]int64{"connected_clients": 14, "max_connections": 151})
		},
		severity: "warning",
	},
	"redis-connections-high": {
		fire: func(t *testing.T, at time.Time) eventbus.Event {
			return redisBatch(t, at, "replica", map[string]int64{"connected_clients": 9500, "maxclients": 10000})
		},
		resolve: func(t *testing.T, at time.Time) eventbus.Event {
			return redisBatch(t, at, "replica", map[string]int64{"connected_clients": 50, "maxclients": 10000})
		},
		severity: "warning",
	},
	"replication-stopped": {
		fire: func(t *testing.T, at time.Time) eventbus.Event {
			return mysqlBatch(t, at, "replica", map[string]int64{"replication_running": 0})
		},
		resolve: func(t *testing.T, at time.Time) eventbus.Event {
			return mysqlBatch(t, at, "replica", map[string]int64{"replication_running": 1, "replication_lag_seconds": 0})
		},
		severity: "critical",
	},
	"failover-happened": {
		fire: func(t *testing.T, at time.Time) eventbus.Event {
			promoted := at.Add(-time.Second)
			return envelope(t, events.TypeFailoverCompleted, at, events.Recovery{RecoveryID: "rec-1", InstanceID: "i-mysql",
				TenantID: "acme", Engine: "mysql", Kind: events.RecoveryAutomatic, Problem: "DeadPrimary", State: "completed",
				OldPrimary: "n-m1", NewPrimary: "n-m2", NewPrimaryAddress: "10.0.0.6:3306", FencingToken: 7,
				DetectedAt: at.Add(-5 * time.Second), PromotedAt: &promoted, CompletedAt: &at, RTOMS: 5200})
		},
		severity: "warning",
	},
	"failover-failed": {
		fire: func(t *testing.T, at time.Time) eventbus.Event {
			return envelope(t, events.TypeFailoverFailed, at, events.Recovery{RecoveryID: "rec-2", InstanceID: "i-mysql",
				TenantID: "acme", Engine: "mysql", Kind: events.RecoveryAutomatic, Problem: "DeadPrimary", State: "failed",
				OldPrimary: "n-m1", Reason: "no replica is safe to promote", DetectedAt: at})
		},
		severity: "critical",
	},
	"cdc-lag": {
		fire: func(t *testing.T, at time.Time) eventbus.Event {
			return envelope(t, events.TypeCDCStreamLagging, at, events.CDCStreamStatus{StreamID: "s-1", InstanceID: "i-mysql",
				TenantID: "acme", State: "streaming", LagMs: 95000, LagEvents: 1200, ThresholdMs: 60000, GTID: "0-1-42"})
		},
		resolve: func(t *testing.T, at time.Time) eventbus.Event {
			return envelope(t, events.TypeCDCStreamCaughtUp, at, events.CDCStreamStatus{StreamID: "s-1", InstanceID: "i-mysql",
				TenantID: "acme", State: "streaming", LagMs: 300, ThresholdMs: 60000, GTID: "0-1-99"})
		},
		severity: "warning",
	},
	"cdc-stream-failed": {
		fire: func(t *testing.T, at time.Time) eventbus.Event {
			return envelope(t, events.TypeCDCStreamFailed, at, events.CDCStreamStatus{StreamID: "s-1", InstanceID: "i-mysql",
				TenantID: "acme", State: "failed", Reason: "binlog purged past the stream's position: recreate the stream"})
		},
		severity: "critical",
	},
	"sync-inconsistent": {
		fire: func(t *testing.T, at time.Time) eventbus.Event {
			return envelope(t, events.TypeCDCSyncInconsistent, at, events.CDCSyncInconsistent{JobID: "j-1", TenantID: "acme",
				VerificationID: "v-1", SourceInstance: "i-mysql", TargetInstance: "i-mysql-2",
				Tables: []events.CDCSyncTableDiff{{Table: "app.orders", DifferingRows: 3}}, RowsChecked: 5000,
				DifferingRows: 3, FinishedAt: at})
		},
		severity: "critical",
	},
	"sync-failed": {
		fire: func(t *testing.T, at time.Time) eventbus.Event {
			return envelope(t, events.TypeCDCSyncFailed, at, events.CDCSyncFailed{JobID: "j-1", TenantID: "acme",
				SourceInstance: "i-mysql", TargetInstance: "i-mysql-2", State: "failed", Reason: "target table dropped"})
		},
		severity: "critical",
	},
	"backup-failed": {
		fire: func(t *testing.T, at time.Time) eventbus.Event {
			return envelope(t, events.TypeBackupFailed, at, events.BackupOutcome{BackupID: "b-1", TenantID: "acme",
				InstanceID: "i-mysql", Engine: "mysql", Kind: "full", Trigger: "scheduled", StartedAt: at.Add(-time.Minute),
				FinishedAt: at, Error: "no healthy node to back up"})
		},
		resolve: func(t *testing.T, at time.Time) eventbus.Event {
			return envelope(t, events.TypeBackupCompleted, at, events.BackupOutcome{BackupID: "b-2", TenantID: "acme",
				InstanceID: "i-mysql", Engine: "mysql", Kind: "full", Trigger: "on_demand", StartedAt: at.Add(-time.Minute),
				FinishedAt: at, DataBytes: 1 << 20, StoredBytes: 1 << 18, GTID: "0-1-42", Verified: true})
		},
		severity: "warning",
	},
	"backup-archive-lagging": {
		fire: func(t *testing.T, at time.Time) eventbus.Event {
			return envelope(t, events.TypeArchiveLagging, at, events.ArchiveLag{TenantID: "acme", InstanceID: "i-mysql",
				LagSeconds: 95, BoundSeconds: 30, ArchivedGTID: "0-1-40"})
		},
		resolve: func(t *testing.T, at time.Time) eventbus.Event {
			return envelope(t, events.TypeArchiveCaughtUp, at, events.ArchiveLag{TenantID: "acme", InstanceID: "i-mysql",
				LagSeconds: 0.4, BoundSeconds: 30, ArchivedGTID: "0-1-99"})
		},
		severity: "critical",
	},
	"backup-drill-failed": {
		fire: func(t *testing.T, at time.Time) eventbus.Event {
			return envelope(t, events.TypeDrillFailed, at, events.DrillOutcome{DrillID: "d-1", TenantID: "acme",
				InstanceID: "i-mysql", BackupID: "b-1", StartedAt: at.Add(-time.Minute), FinishedAt: at,
				Mismatches: []string{"shop.orders: rows 10 != 11"}, Error: "restored data differs from the backup's verification in 1 places"})
		},
		resolve: func(t *testing.T, at time.Time) eventbus.Event {
			return envelope(t, events.TypeDrillCompleted, at, events.DrillOutcome{DrillID: "d-2", TenantID: "acme",
				InstanceID: "i-mysql", BackupID: "b-2", StartedAt: at.Add(-time.Minute), FinishedAt: at, Tables: 3})
		},
		severity: "critical",
	},
	"budget-80": {
		fire: func(t *testing.T, at time.Time) eventbus.Event {
			return envelope(t, events.TypeMeteringBudgetThreshold, at, events.BudgetThreshold{TenantID: "acme",
				Month: "2026-12", Kind: "forecast", ThresholdPercent: 80, Budget: "100.00", Actual: "6.40",
				Forecast: "82.20", Currency: "USD", OccurredAt: at})
		},
		severity: "warning",
	},
	"budget-100": {
		fire: func(t *testing.T, at time.Time) eventbus.Event {
			return envelope(t, events.TypeMeteringBudgetThreshold, at, events.BudgetThreshold{TenantID: "acme",
				Month: "2026-12", Kind: "actual", ThresholdPercent: 100, Budget: "100.00", Actual: "100.20",
				Forecast: "130.00", Currency: "USD", OccurredAt: at})
		},
		severity: "critical",
	},
}

func TestEveryDefaultRuleFires(t *testing.T) {
	defaults, err := Defaults()
	require.NoError(t, err)
	var ids, cases []string
	for _, r := range defaults {
		ids = append(ids, r.ID)
	}
	for id := range defaultCases {
		cases = append(cases, id)
	}
	sort.Strings(ids)
	sort.Strings(cases)
	require.Equal(t, ids, cases, "every default rule has a case")

	for _, r := range defaults {
		t.Run(r.ID, func(t *testing.T) {
			tc := defaultCases[r.ID]
			e := NewEvaluator(defaults, genURL)
			at := t0
			fired := e.Event(at, tc.fire(t, at))
			if r.For > 0 {
				require.Equal(t, []alert.State{alert.StatePending}, statesOf(fired, r.ID))
				at = at.Add(r.For)
				fired = e.Event(at, tc.fire(t, at))
			}
			a := only(t, fired, r.ID)
			require.Equal(t, alert.StateFiring, a.State)
			require.Equal(t, r.Name, a.Labels["alertname"])
			require.Equal(t, tc.severity, a.Labels["severity"])
			require.Equal(t, "acme", a.Labels["tenant"], "the tenant's receivers get it")
			if !strings.HasPrefix(r.ID, "budget-") { // a budget is the tenant's, not an instance's
				require.Contains(t, []string{"i-mysql", "i-redis"}, a.Labels["instance"])
			}
			require.NotEmpty(t, a.Annotations["summary"])
			for name, text := range a.Annotations {
				require.NotContains(t, text, "{{", "annotation %s did not expand", name)
				require.NotContains(t, text, "<no value>", "annotation %s", name)
				require.NotContains(t, text, "  ", "annotation %s has an empty field: %q", name, text)
				require.NotContains(t, text, "()", "annotation %s has an empty field: %q", name, text)
				t.Logf("%s: %s", name, text)
			}

			var resolved []*alert.Alert
			switch {
			case tc.resolve != nil:
				at = at.Add(time.Minute)
				resolved = e.Event(at, tc.resolve(t, at))
			case r.ResolveAfter > 0:
				resolved = e.Tick(t0.Add(r.ResolveAfter), time.Hour)
			default:
				t.Fatal("a default rule must resolve by an event or by itself")
			}
			a = only(t, resolved, r.ID)
			require.Equal(t, alert.StateResolved, a.State)
		})
	}
}

func statesOf(as []*alert.Alert, rule string) []alert.State {
	var out []alert.State
	for _, a := range as {
		if a.Rule == rule {
			out = append(out, a.State)
		}
	}
	return out
}

func only(t *testing.T, as []*alert.Alert, rule string) *alert.Alert {
	t.Helper()
	var found *alert.Alert
	for _, a := range as {
		if a.Rule == rule {
			require.Nil(t, found, "one alert of %s", rule)
			found = a
		}
	}
	require.NotNil(t, found, "an alert of %s in %d alerts", rule, len(as))
	return found
}
