package store

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/tenancy"
)

// OutboxTable is the table Tx.Emit writes and the Relay reads. The
// migration OutboxMigrations creates it; every service migrates it with its
// own files.
const OutboxTable = "outbox"

// OutboxMigrationFile is the outbox migration's name and so its record in
// schema_migrations (version 0, before any service's own files).
const OutboxMigrationFile = "0000_outbox.up.sql"

//go:embed migrations/*.sql
var storeMigrations embed.FS

// OutboxMigrations returns the migration that creates the outbox table, to
// pass to Migrate with the service's own files:
// db.Migrate(ctx, store.OutboxMigrations(), migrations.FS).
func OutboxMigrations() fs.FS {
	// "migrations" is a valid path, so Sub cannot fail.
	sub, _ := fs.Sub(storeMigrations, "migrations")
	return sub
}

// Publisher publishes events to a topic and returns once they are acked.
// eventbus.Publisher satisfies it.
type Publisher interface {
	Publish(ctx context.Context, topic string, events ...eventbus.Event) error
}

// outboxHeaders are the event attributes kept in the headers column; id, key
// and data have their own columns.
type outboxHeaders struct {
	Type        string            `json:"type"`
	Source      string            `json:"source"`
	Subject     string            `json:"subject,omitempty"`
	Time        time.Time         `json:"time"`
	Tenant      string            `json:"tenant,omitempty"`
	ContentType string            `json:"content_type,omitempty"`
	TraceParent string            `json:"traceparent,omitempty"`
	Extensions  map[string]string `json:"extensions,omitempty"`
}

// ErrInvalidEvent is wrapped by Emit when an event cannot be written.
var ErrInvalidEvent = errors.New("invalid event")

// Emit writes events to the outbox in tx, to be published to topic by the
// Relay once (and only if) the transaction commits. Per-key order is the
// order of Emit calls as transactions commit; transactions that emit for the
// same key should serialise on the aggregate's row (SELECT ... FOR UPDATE),
// as a repository's Update does.
//
// Missing fields are filled in: ID (a new ULID), Time (now), Tenant (from
// ctx via tenancy), TraceParent (from ctx's span via the OTel propagator).
func (tx *Tx) Emit(ctx context.Context, topic string, events ...eventbus.Event) error {
	if strings.TrimSpace(topic) == "" {
		return fmt.Errorf("emit: %w: empty topic", ErrInvalidEvent)
	}
	if len(events) == 0 {
		return nil
	}
	var sb strings.Builder
	sb.WriteString("INSERT INTO outbox (topic, msg_key, event_id, headers, payload, created_at) VALUES ")
	args := make([]any, 0, 6*len(events))
	now := time.Now().UTC()
	for i, e := range events {
		if e.Type == "" {
			return fmt.Errorf("emit to %s: %w: event %d has no type", topic, ErrInvalidEvent, i)
		}
		if e.ID == "" {
			e.ID = ulid.Make().String()
		}
		if e.Time.IsZero() {
			e.Time = now
		}
		if e.Tenant == "" {
			if id, ok := tenancy.FromContext(ctx); ok {
				e.Tenant = id.String()
			}
		}
		if e.TraceParent == "" {
			carrier := propagation.MapCarrier{}
			otel.GetTextMapPropagator().Inject(ctx, carrier)
			e.TraceParent = carrier.Get("traceparent")
		}
		h, err := json.Marshal(outboxHeaders{
			Type: e.Type, Source: e.Source, Subject: e.Subject, Time: e.Time.UTC(), Tenant: e.Tenant,
			ContentType: e.ContentType, TraceParent: e.TraceParent, Extensions: e.Extensions,
		})
		if err != nil {
			return fmt.Errorf("emit %s to %s: encode headers: %w", e.ID, topic, err)
		}
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString("(?, ?, ?, ?, ?, ?)")
		args = append(args, topic, e.Key, e.ID, string(h), e.Data, now)
	}
	if _, err := tx.ExecContext(ctx, sb.String(), args...); err != nil {
		return fmt.Errorf("emit %d events to %s: %w", len(events), topic, err)
	}
	tx.emitted += len(events)
	return nil
}

// outboxRow is one unsent row as the relay reads it.
type outboxRow struct {
	id    uint64
	topic string
	event eventbus.Event
}

// decodeRow rebuilds the event stored in a row.
func decodeRow(id uint64, topic, key, eventID string, headers, payload []byte) (outboxRow, error) {
	var h outboxHeaders
	if err := json.Unmarshal(headers, &h); err != nil {
		return outboxRow{}, fmt.Errorf("decode outbox row %d headers: %w", id, err)
	}
	return outboxRow{id: id, topic: topic, event: eventbus.Event{
		ID: eventID, Type: h.Type, Source: h.Source, Subject: h.Subject, Time: h.Time,
		Tenant: h.Tenant, Key: key, ContentType: h.ContentType, Data: payload,
		TraceParent: h.TraceParent, Extensions: h.Extensions,
	}}, nil
}
