package eventbus

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"
)

// Event is one CloudEvents 1.0 event as it travels on Kafka in binary mode:
// the attributes ride in ce_* headers and Data is the record value.
type Event struct {
	// ID is the CloudEvents id (ce_id), unique per event; a redelivery carries the same id.
	ID string
	// Type is the CloudEvents type (ce_type), e.g. "provisioning.instance.ready".
	Type string
	// Source is the CloudEvents source (ce_source), e.g. "/canopy/provisioning".
	Source string
	// Subject is the CloudEvents subject (ce_subject), usually the aggregate id.
	Subject string
	// Time is when the event happened (ce_time).
	Time time.Time
	// Tenant is the tenant the event belongs to ("tenant" header); empty for platform events.
	Tenant string
	// Key is the Kafka message key: the aggregate id, so per-aggregate order holds.
	Key string
	// ContentType of Data; "application/json" when empty.
	ContentType string
	// Data is the event payload, JSON unless ContentType says otherwise.
	Data []byte
	// TraceParent is the W3C traceparent the event was published under.
	TraceParent string
	// Extensions are further headers carried verbatim.
	Extensions map[string]string

	// Topic, Partition and Offset are set on consumed events.
	Topic     string
	Partition int
	Offset    int64
}

// NewEvent builds an event with a fresh ULID id and the current time, the
// payload marshalled as JSON and the key and subject set to aggregate.
func NewEvent(typ, source, aggregate string, payload any) (Event, error) {
	data, err := json.Marshal(payload)
	if err != nil {
		return Event{}, fmt.Errorf("marshal %s payload: %w", typ, err)
	}
	return Event{
		ID:          ulid.Make().String(),
		Type:        typ,
		Source:      source,
		Subject:     aggregate,
		Key:         aggregate,
		Time:        time.Now().UTC(),
		ContentType: "application/json",
		Data:        data,
	}, nil
}

// Decode unmarshals the event's JSON data into dst.
func (e Event) Decode(dst any) error {
	if err := json.Unmarshal(e.Data, dst); err != nil {
		return fmt.Errorf("decode %s event %s: %w", e.Type, e.ID, err)
	}
	return nil
}
