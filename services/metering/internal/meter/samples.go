package meter

import (
	"time"

	"github.com/canopy-platform/canopy/api/events"
)

// Sample metric names metering reads (healthcheck's names).
const (
	MetricNetIn        = "net_in_bytes_total"
	MetricNetOut       = "net_out_bytes_total"
	MetricQuestions    = "questions_total"
	MetricCommands     = "commands_total"
	MetricConnections  = "connected_clients"
	MetricStorageUsed  = "storage_used_bytes"
	MetricUptime       = "uptime_seconds"
	nodeStatusDown     = "down"
	maxStorageInterval = 300 * time.Second
)

// counterMeters maps the engine counters to the meters their growth feeds;
// MySQL reports questions and Redis commands, both are operations.
var counterMeters = []struct{ metric, meter string }{
	{MetricNetIn, NetworkBytesIn},
	{MetricNetOut, NetworkBytesOut},
	{MetricQuestions, Operations},
	{MetricCommands, Operations},
}

// Counter is a node's engine counter (or gauge) as last sampled.
type Counter struct {
	Value, Uptime int64
	At            time.Time
}

// CounterKey names one counter of one node.
type CounterKey struct{ NodeID, Name string }

// Delta is how much a counter grew from prev to cur, never negative: a
// counter that went down, or an uptime that went down, is a restart and
// counts cur from zero; no prev counts nothing (a baseline). Growth from a
// restart is lost only when neither went down: two restarts in consecutive
// sample intervals with the second counter higher than the first (and,
// unavoidably, the traffic between the last sample and a restart).
func Delta(prev *Counter, cur Counter) int64 {
	if prev == nil || cur.Value <= 0 {
		return 0
	}
	if cur.Value < prev.Value || cur.Uptime < prev.Uptime {
		return cur.Value
	}
	return cur.Value - prev.Value
}

// InstanceInfo is what metering knows of an instance for keying its usage.
type InstanceInfo struct{ Tenant, Plan, Region string }

// SampleCounters lists the sample metric names whose last values
// SampleContributions needs (for the store to load them per node).
func SampleCounters() []string {
	return []string{MetricNetIn, MetricNetOut, MetricQuestions, MetricCommands, MetricStorageUsed}
}

// SampleContributions turns one sample batch into contributions (network
// bytes, operations, connections, used storage), given the nodes' previous
// counters; it returns the counters to store.
//
// The returned map holds only the counters that moved; the others keep
// their stored values. A node reported down contributes nothing and its
// counters stay as they were, so that the restart it may be going through
// is seen against its last good values. A node sample not newer than the
// stored counter (a replayed or out-of-order sample) is ignored for the
// counters: read against newer values it would look like a reset and be
// counted twice. A sample without uptime_seconds keeps the previous uptime
// so that a missing metric is not mistaken for a restart.
//
// Connections are summed over the batch's nodes that report them and go,
// At the batch's WindowEnd, to connections_max (Value = the sum) and
// connections_avg (Value = the sum, Count 1).
func SampleContributions(b events.SampleBatch, info InstanceInfo, prev map[CounterKey]Counter) ([]Contribution, map[CounterKey]Counter) {
	if info.Tenant == "" {
		info.Tenant = b.TenantID
	}
	key := func(slug string) Key {
		return Key{Tenant: info.Tenant, Meter: slug, Subject: b.InstanceID, Plan: info.Plan, Region: info.Region}
	}
	var out []Contribution
	next := make(map[CounterKey]Counter)
	var conns int64
	hasConns := false
	latest := time.Time{}
	for _, s := range b.Nodes {
		if s.Status == nodeStatusDown || s.NodeID == "" {
			continue
		}
		at := s.At.UTC()
		if at.After(latest) {
			latest = at
		}
		if v, ok := s.Metrics[MetricConnections]; ok {
			conns += max(v, 0)
			hasConns = true
		}
		uptime, hasUptime := s.Metrics[MetricUptime]
		current := func(name string, v int64) (Counter, *Counter, bool) {
			k := CounterKey{NodeID: s.NodeID, Name: name}
			// A node twice in one batch reads its first copy as previous.
			var p *Counter
			if c, ok := next[k]; ok {
				p = &c
			} else if c, ok := prev[k]; ok {
				p = &c
			}
			cur := Counter{Value: v, Uptime: uptime, At: at}
			if !hasUptime && p != nil {
				cur.Uptime = p.Uptime
			}
			if p != nil && !at.After(p.At) {
				return cur, p, false
			}
			next[k] = cur
			return cur, p, true
		}
		for _, cm := range counterMeters {
			v, ok := s.Metrics[cm.metric]
			if !ok {
				continue
			}
			cur, p, fresh := current(cm.metric, v)
			if !fresh {
				continue
			}
			if d := Delta(p, cur); d > 0 {
				out = append(out, Contribution{Key: key(cm.meter), At: at, Value: float64(d), Count: 1})
			}
		}
		if v, ok := s.Metrics[MetricStorageUsed]; ok {
			cur, p, fresh := current(MetricStorageUsed, v)
			if fresh && p != nil && cur.Value > 0 {
				secs := min(cur.At.Sub(p.At), maxStorageInterval).Seconds()
				out = append(out, Contribution{Key: key(StorageUsedGBHours), At: at, Value: float64(cur.Value) * secs, Count: 1})
			}
		}
	}
	if hasConns {
		at := b.WindowEnd.UTC()
		if at.IsZero() {
			at = latest
		}
		out = append(out,
			Contribution{Key: key(ConnectionsMax), At: at, Value: float64(conns), Count: 1},
			Contribution{Key: key(ConnectionsAvg), At: at, Value: float64(conns), Count: 1},
		)
	}
	return out, next
}

// CDCContributions turns a cdc.stream.usage payload into cdc_rows, At the
// end of the span it covers.
func CDCContributions(u events.CDCStreamUsage, info InstanceInfo) []Contribution {
	if u.Rows <= 0 {
		return nil
	}
	if info.Tenant == "" {
		info.Tenant = u.TenantID
	}
	at := u.To.UTC()
	if at.IsZero() {
		at = u.From.UTC()
	}
	return []Contribution{{
		Key: Key{Tenant: info.Tenant, Meter: CDCRows, Subject: u.InstanceID, Plan: info.Plan, Region: info.Region},
		At:  at, Value: float64(u.Rows), Count: 1,
	}}
}
