package events

import "time"

// Metering topics and types. canopy.usage.v1 carries what billing systems
// and alerting act on, keyed by tenant id; canopy.usage.ingest.v1 carries
// the CloudEvents accepted by POST /api/v1/usage/events, keyed by
// source NUL id so that every copy of an event lands in one partition.
const (
	// TopicUsage carries metering.budget.threshold and metering.usage.rated.
	TopicUsage = "canopy.usage.v1"
	// TopicUsageIngest carries ingested usage CloudEvents (structured JSON
	// mode, the tenant in the "tenantid" extension), as the API accepted them.
	TopicUsageIngest = "canopy.usage.ingest.v1"
	// SourceMetering is the source of metering.* events.
	SourceMetering = "/canopy/metering"

	// TypeMeteringBudgetThreshold: a tenant's month-to-date cost (kind
	// "actual") or its forecast for the month (kind "forecast") reached a
	// threshold of its budget; once per tenant, month, kind and threshold.
	TypeMeteringBudgetThreshold = "metering.budget.threshold"
	// TypeMeteringUsageRated: a tenant's rated usage of one meter in one
	// hour, published once the hour is past the grace window.
	TypeMeteringUsageRated = "metering.usage.rated"

	// SchemaUsageCloudEvent names the schema (in Schemas) of a record value
	// on TopicUsageIngest: a whole structured-mode CloudEvent, not a
	// ce_type's data, so it is no event type itself.
	SchemaUsageCloudEvent = "metering.usage.cloudevent"
)

// BudgetThreshold is the payload of metering.budget.threshold. Amounts are
// decimal strings in Currency.
type BudgetThreshold struct {
	TenantID string `json:"tenant_id"`
	// Month is the budget's month, "2026-12".
	Month string `json:"month"`
	// Kind is "actual" (month-to-date cost) or "forecast" (linear
	// extrapolation of it to the month's end).
	Kind string `json:"kind"`
	// ThresholdPercent is the percentage of the budget reached (80, 100).
	ThresholdPercent int       `json:"threshold_percent"`
	Budget           string    `json:"budget"`
	Actual           string    `json:"actual"`
	Forecast         string    `json:"forecast"`
	Currency         string    `json:"currency"`
	OccurredAt       time.Time `json:"occurred_at"`
}

// UsageRated is the payload of metering.usage.rated: one tenant's usage of
// one meter in one hour, with its cost.
type UsageRated struct {
	TenantID  string    `json:"tenant_id"`
	Meter     string    `json:"meter"`
	Unit      string    `json:"unit"`
	HourStart time.Time `json:"hour_start"`
	// Quantity is in Unit; Amount in Currency (unrounded, 9 fraction digits).
	Quantity string `json:"quantity"`
	Amount   string `json:"amount"`
	Currency string `json:"currency"`
}

// TypeCDCStreamUsage: rows a stream published to Kafka since its previous
// usage event (payload CDCStreamUsage), counted in the same write as the
// checkpoint that covers them and emitted through the outbox in the
// transaction that resets that count, so that each row is counted once;
// at most one per stream per minute, and one when its runner stops.
// Metering's cdc_rows meter.
const TypeCDCStreamUsage = "cdc.stream.usage"

// CDCStreamUsage is the payload of cdc.stream.usage, on TopicCDC keyed by
// the stream id.
type CDCStreamUsage struct {
	StreamID   string `json:"stream_id"`
	TenantID   string `json:"tenant_id"`
	InstanceID string `json:"instance_id"`
	// Rows counts the data messages (row changes and snapshot reads, not
	// tombstones or schema changes) whose checkpoint was stored since the
	// previous usage event; a row re-published after a restart counts once.
	Rows int64 `json:"rows"`
	// From is when the checkpoint covering the first of them was stored,
	// To when the event was written.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}
