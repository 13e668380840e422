package meter

// Contract of the meter domain, implemented by helper "domain" (who deletes
// this file). Signatures are binding; bodies are placeholders.

import (
	"encoding/json"
	"time"

	"github.com/canopy-platform/canopy/api/events"
)

// NodeSize is what one node of a plan gets.
type NodeSize struct {
	VCPU      float64
	MemoryMB  int64
	StorageGB int64
}

// BilledNode is a node that is billed while the instance is as the event says.
type BilledNode struct {
	InstanceID, NodeID, Tenant, Plan, Region string
	Size                                     NodeSize
}

// BilledNodes returns the nodes of in that are billed in its state.
func BilledNodes(in events.Instance) []BilledNode { panic("contract") }

// IntervalContributions returns n's node_hours, vcpu_hours,
// memory_gb_hours and storage_gb_hours for [from, to), split at minute
// boundaries, multiplied by sign (+1 to add, -1 to take back).
func IntervalContributions(n BilledNode, from, to time.Time, sign float64) []Contribution {
	panic("contract")
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
// counts cur from zero; no prev counts nothing (a baseline).
func Delta(prev *Counter, cur Counter) int64 { panic("contract") }

// InstanceInfo is what metering knows of an instance for keying its usage.
type InstanceInfo struct{ Tenant, Plan, Region string }

// SampleCounters lists the sample metric names whose last values
// SampleContributions needs (for the store to load them per node).
func SampleCounters() []string { panic("contract") }

// SampleContributions turns one sample batch into contributions (network
// bytes, operations, connections, used storage), given the nodes' previous
// counters; it returns the counters to store.
func SampleContributions(b events.SampleBatch, info InstanceInfo, prev map[CounterKey]Counter) ([]Contribution, map[CounterKey]Counter) {
	panic("contract")
}

// CDCContributions turns a cdc.stream.usage payload into cdc_rows.
func CDCContributions(u events.CDCStreamUsage, info InstanceInfo) []Contribution { panic("contract") }

// Event is a usage CloudEvent (structured JSON mode, spec 1.0) as the API
// accepts it and as it travels on events.TopicUsageIngest; TenantID is the
// "tenantid" extension, set by the API from the caller.
type Event struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject,omitempty"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype,omitempty"`
	Data            json.RawMessage `json:"data,omitempty"`
	TenantID        string          `json:"tenantid,omitempty"`
}

// FieldError names one invalid field of a request ("[3].id", "time").
type FieldError struct{ Field, Detail string }

// FieldErrors is every invalid field of a request.
type FieldErrors []FieldError

func (e FieldErrors) Error() string { panic("contract") }

// ParseEvents parses a single CloudEvent (batch false) or a JSON array of
// them (batch true), validating every one (specversion 1.0, id, source,
// type non-empty strings, time RFC 3339 when present, data an object or
// absent, tenantid a string) and at most maxEvents; a missing time is
// filled with now. Errors are FieldErrors naming each field; no event is
// returned unless all are valid.
func ParseEvents(body []byte, batch bool, maxEvents int, now time.Time) ([]Event, error) {
	panic("contract")
}

// DedupKey is the event's identity: the first 16 bytes of
// sha256(source NUL id).
func (e Event) DedupKey() [16]byte { panic("contract") }

// EventContributions returns the contributions of e to the custom meters
// whose EventType is e.Type; info is the subject's instance when the
// subject names one (else Tenant is e.TenantID and Plan, Region empty).
// A meter whose ValueProperty is missing or not a number (or not a string
// for UNIQUE_COUNT) is skipped for this event.
func EventContributions(e Event, meters []Meter, info InstanceInfo) []Contribution { panic("contract") }

// IsLate reports whether an event of eventTime received at receivedAt is
// past the grace window (and so is recorded, not counted).
func IsLate(eventTime, receivedAt time.Time, grace time.Duration) bool { panic("contract") }

// ValidateMeter checks a custom meter definition; FieldErrors on failure.
func ValidateMeter(m Meter) error { panic("contract") }
