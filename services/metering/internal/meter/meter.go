// Package meter is metering's domain: what is measured (meters and their
// aggregations), how usage is keyed and windowed (minute, hour, day,
// month), and how lifecycle events, samples, CDC usage and ingested
// CloudEvents become contributions to those windows. It knows nothing of
// Kafka, HTTP or SQL.
package meter

import (
	"time"
)

// Aggregation is how a meter folds its contributions in a window.
type Aggregation string

// The aggregations, as OpenMeter names them (plus AVG).
const (
	Sum         Aggregation = "SUM"
	Count       Aggregation = "COUNT"
	Max         Aggregation = "MAX"
	Avg         Aggregation = "AVG"
	UniqueCount Aggregation = "UNIQUE_COUNT"
)

// Valid reports whether a is a known aggregation.
func (a Aggregation) Valid() bool {
	switch a {
	case Sum, Count, Max, Avg, UniqueCount:
		return true
	}
	return false
}

// Meter is something measured: built in (fed by Canopy's own events) or
// defined by a platform-admin over ingested CloudEvents of EventType.
type Meter struct {
	// Slug names the meter in queries, prices and invoices (node_hours).
	Slug        string `json:"slug"`
	Name        string `json:"name"`
	Description string `json:"description"`
	// Unit is the display unit of a quantity ("node-hour", "GB-hour", "byte").
	Unit        string      `json:"unit"`
	Aggregation Aggregation `json:"aggregation"`
	// Scale is how many stored units make one display unit: node_hours
	// stores node-seconds (3600) so that an interval is exact to the second.
	Scale float64 `json:"scale"`
	// EventType is the CloudEvents type a custom meter counts.
	EventType string `json:"event_type,omitempty"`
	// ValueProperty is the data field (dot path) a custom SUM, MAX, AVG or
	// UNIQUE_COUNT meter reads; COUNT needs none.
	ValueProperty string    `json:"value_property,omitempty"`
	Builtin       bool      `json:"builtin"`
	CreatedAt     time.Time `json:"created_at"`
}

// Slugs of the built-in meters.
const (
	NodeHours          = "node_hours"
	VCPUHours          = "vcpu_hours"
	MemoryGBHours      = "memory_gb_hours"
	StorageGBHours     = "storage_gb_hours"
	StorageUsedGBHours = "storage_used_gb_hours"
	NetworkBytesIn     = "network_bytes_in"
	NetworkBytesOut    = "network_bytes_out"
	ConnectionsMax     = "connections_max"
	ConnectionsAvg     = "connections_avg"
	Operations         = "operations"
	CDCRows            = "cdc_rows"
)

// gib is the bytes in a GB as metering bills it (GiB, as the plans' sizes
// and the big clouds' bills count).
const gib = 1 << 30

// Builtins returns the built-in meters.
func Builtins() []Meter {
	b := func(slug, name, unit string, agg Aggregation, scale float64, desc string) Meter {
		return Meter{Slug: slug, Name: name, Unit: unit, Aggregation: agg, Scale: scale, Description: desc, Builtin: true}
	}
	return []Meter{
		b(NodeHours, "Node hours", "node-hour", Sum, 3600,
			"Time each billed node of an instance ran: from ready until deleted, to the second; failed and stopped nodes are not billed."),
		b(VCPUHours, "vCPU hours", "vCPU-hour", Sum, 3600, "Node hours weighted by the plan's vCPUs per node."),
		b(MemoryGBHours, "Memory GB-hours", "GB-hour", Sum, 3600*1024, "Node hours weighted by the plan's memory per node (stored as MB-seconds)."),
		b(StorageGBHours, "Provisioned storage GB-hours", "GB-hour", Sum, 3600, "Node hours weighted by the plan's provisioned storage per node."),
		b(StorageUsedGBHours, "Used storage GB-hours", "GB-hour", Sum, 3600*gib, "Storage the engine reports in use, integrated over time between samples (stored as byte-seconds)."),
		b(NetworkBytesIn, "Network bytes in", "byte", Sum, 1, "Bytes the engine received from clients and replicas, from its counters; resets on restart count from zero."),
		b(NetworkBytesOut, "Network bytes out", "byte", Sum, 1, "Bytes the engine sent, from its counters; resets on restart count from zero."),
		b(ConnectionsMax, "Connections (max)", "connection", Max, 1, "Most client connections to all nodes of an instance in one sample."),
		b(ConnectionsAvg, "Connections (average)", "connection", Avg, 1, "Mean of the instance's client connections over its samples."),
		b(Operations, "Operations", "operation", Sum, 1, "Queries (MySQL Questions) or commands (Redis total_commands_processed), from the engine's counters."),
		b(CDCRows, "CDC rows", "row", Sum, 1, "Row changes cdc streams published to Kafka."),
	}
}

// Level is a window size.
type Level string

// The levels; usage is stored per minute, hour and day, and read per
// hour, day and month.
const (
	Minute Level = "minute"
	Hour   Level = "hour"
	Day    Level = "day"
	Month  Level = "month"
)

// Start returns the start of t's window at this level, in UTC.
func (l Level) Start(t time.Time) time.Time {
	t = t.UTC()
	switch l {
	case Minute:
		return t.Truncate(time.Minute)
	case Hour:
		return t.Truncate(time.Hour)
	case Day:
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	default:
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
}

// End returns the end of the window starting at start.
func (l Level) End(start time.Time) time.Time {
	switch l {
	case Minute:
		return start.Add(time.Minute)
	case Hour:
		return start.Add(time.Hour)
	case Day:
		return start.AddDate(0, 0, 1)
	default:
		return start.AddDate(0, 1, 0)
	}
}

// Key is what usage is kept per: a tenant's meter for one subject (an
// instance id, or an ingested event's subject), with the plan and region
// the subject had.
type Key struct {
	Tenant  string
	Meter   string
	Subject string
	Plan    string
	Region  string
}

// Contribution is one measurement at a point in time, in the meter's
// stored unit. Count is how many observations it stands for (1 for an
// event or a sample); Unique is the value a UNIQUE_COUNT meter counts.
type Contribution struct {
	Key
	At     time.Time
	Value  float64
	Count  int64
	Unique string
}

// Window is one stored aggregate's identity.
type Window struct {
	Key
	Level Level
	Start time.Time
}

// Agg is an aggregate's state: Total for SUM and the AVG numerator, Count
// for COUNT and the AVG denominator, Max for MAX.
type Agg struct {
	Total  float64
	Count  int64
	Max    float64
	HasMax bool
}

// UniqueKey is one distinct value of a UNIQUE_COUNT meter in a window
// (hour, day or month).
type UniqueKey struct {
	Key
	Level Level
	Start time.Time
	Hash  uint64
}

// Batch folds contributions into the minute, hour and day aggregates (and
// the distinct values) that one transaction adds to the stored ones.
type Batch struct {
	Aggs    map[Window]*Agg
	Uniques map[UniqueKey]struct{}
}

// NewBatch returns an empty batch.
func NewBatch() *Batch {
	return &Batch{Aggs: make(map[Window]*Agg), Uniques: make(map[UniqueKey]struct{})}
}

// Len is the number of rows the batch writes.
func (b *Batch) Len() int { return len(b.Aggs) + len(b.Uniques) }

// Add folds c into the batch as agg says.
func (b *Batch) Add(c Contribution, agg Aggregation) {
	if agg == UniqueCount {
		h := hashString(c.Unique)
		for _, l := range [...]Level{Hour, Day, Month} {
			b.Uniques[UniqueKey{Key: c.Key, Level: l, Start: l.Start(c.At), Hash: h}] = struct{}{}
		}
		return
	}
	for _, l := range [...]Level{Minute, Hour, Day} {
		w := Window{Key: c.Key, Level: l, Start: l.Start(c.At)}
		a := b.Aggs[w]
		if a == nil {
			a = &Agg{}
			b.Aggs[w] = a
		}
		a.Total += c.Value
		a.Count += c.Count
		if !a.HasMax || c.Value > a.Max {
			a.Max, a.HasMax = c.Value, true
		}
	}
}

// hashString is FNV-1a 64, the distinct value's identity.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
