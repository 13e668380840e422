package usage

import (
	"context"
	"time"

	"github.com/canopy-platform/canopy/libs/store"
)

// LateEvent is an event that arrived after its window's grace period: it
// was recorded here and not counted.
type LateEvent struct {
	ID         int64     `json:"id"`
	Tenant     string    `json:"tenant_id"`
	Source     string    `json:"source"`
	EventID    string    `json:"event_id"`
	Type       string    `json:"type"`
	Subject    string    `json:"subject,omitempty"`
	Meter      string    `json:"meter,omitempty"`
	Value      float64   `json:"value"`
	EventTime  time.Time `json:"event_time"`
	ReceivedAt time.Time `json:"received_at"`
	Reason     string    `json:"reason"`
}

// Late returns up to limit late events of tenant ("" for every tenant)
// received in [from, to), oldest first.
func (s *Store) Late(ctx context.Context, tenant string, from, to time.Time, limit int) ([]LateEvent, error) {
	q := "SELECT id, tenant_id, source, event_id, type, subject, meter, value, event_time, received_at, reason FROM late_events WHERE "
	var args []any
	if tenant != "" {
		q += "tenant_id = ? AND "
		args = append(args, tenant)
	}
	q += "received_at >= ? AND received_at < ? ORDER BY received_at, id LIMIT ?"
	args = append(args, from.UTC(), to.UTC(), limit)
	return store.QueryAll(ctx, s.db.SQL(), "read late events", func(sc store.Scanner) (LateEvent, error) {
		var e LateEvent
		err := sc.Scan(&e.ID, &e.Tenant, &e.Source, &e.EventID, &e.Type, &e.Subject, &e.Meter, &e.Value, &e.EventTime, &e.ReceivedAt, &e.Reason)
		e.EventTime, e.ReceivedAt = e.EventTime.UTC(), e.ReceivedAt.UTC()
		return e, err
	}, q, args...)
}
