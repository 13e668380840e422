package usage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/canopy-platform/canopy/libs/store"

	"github.com/canopy-platform/canopy/services/metering/internal/meter"
)

const meterColumns = "slug, name, description, unit, aggregation, scale, event_type, value_property, builtin, created_at"

func scanMeter(sc store.Scanner) (meter.Meter, error) {
	var m meter.Meter
	var agg string
	if err := sc.Scan(&m.Slug, &m.Name, &m.Description, &m.Unit, &agg, &m.Scale, &m.EventType, &m.ValueProperty, &m.Builtin, &m.CreatedAt); err != nil {
		return m, err
	}
	m.Aggregation = meter.Aggregation(agg)
	m.CreatedAt = m.CreatedAt.UTC()
	return m, nil
}

// List returns every meter, built-in ones first, then by slug.
func (s *Store) List(ctx context.Context) ([]meter.Meter, error) {
	return store.QueryAll(ctx, s.db.SQL(), "list meters", scanMeter,
		"SELECT "+meterColumns+" FROM meters ORDER BY builtin DESC, slug")
}

// Get returns the meter slug, or ErrMeterNotFound.
func (s *Store) Get(ctx context.Context, slug string) (meter.Meter, error) {
	m, err := scanMeter(s.db.SQL().QueryRowContext(ctx, "SELECT "+meterColumns+" FROM meters WHERE slug = ?", slug))
	if errors.Is(err, sql.ErrNoRows) {
		return m, fmt.Errorf("meter %s: %w", slug, ErrMeterNotFound)
	}
	if err != nil {
		return m, fmt.Errorf("read meter %s: %w", slug, err)
	}
	return m, nil
}

// Create stores a custom meter: it is validated with meter.ValidateMeter
// (its meter.FieldErrors returned as they are), Builtin is cleared, a zero
// Scale becomes 1 and a zero CreatedAt now. A taken slug is ErrMeterExists.
// It returns the meter as stored.
func (s *Store) Create(ctx context.Context, m meter.Meter) (meter.Meter, error) {
	m.Builtin = false
	if m.Scale == 0 {
		m.Scale = 1
	}
	if err := meter.ValidateMeter(m); err != nil {
		return m, err
	}
	if m.CreatedAt.IsZero() {
		m.CreatedAt = time.Now()
	}
	m.CreatedAt = m.CreatedAt.UTC().Truncate(time.Microsecond)
	_, err := s.db.SQL().ExecContext(ctx, "INSERT INTO meters ("+meterColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, FALSE, ?)",
		m.Slug, m.Name, m.Description, m.Unit, string(m.Aggregation), m.Scale, m.EventType, m.ValueProperty, m.CreatedAt)
	if isDuplicate(err) {
		return m, fmt.Errorf("create meter %s: %w", m.Slug, ErrMeterExists)
	}
	if err != nil {
		return m, fmt.Errorf("create meter %s: %w", m.Slug, err)
	}
	return m, nil
}

// Delete removes the custom meter slug: ErrMeterNotFound when there is
// none, ErrBuiltinMeter for a built-in one. Its stored usage stays (and
// shows again if a meter of that slug is defined again).
func (s *Store) Delete(ctx context.Context, slug string) error {
	return s.db.Tx(ctx, func(tx *store.Tx) error {
		var builtin bool
		err := tx.QueryRowContext(ctx, "SELECT builtin FROM meters WHERE slug = ? FOR UPDATE", slug).Scan(&builtin)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("delete meter %s: %w", slug, ErrMeterNotFound)
		}
		if err != nil {
			return fmt.Errorf("delete meter %s: %w", slug, err)
		}
		if builtin {
			return fmt.Errorf("delete meter %s: %w", slug, ErrBuiltinMeter)
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM meters WHERE slug = ?", slug); err != nil {
			return fmt.Errorf("delete meter %s: %w", slug, err)
		}
		return nil
	})
}

// EnsureBuiltins upserts meter.Builtins(): new ones are inserted, existing
// ones get this release's name, description, unit, aggregation and scale
// (their created_at stays). It runs at every start.
func (s *Store) EnsureBuiltins(ctx context.Context) error {
	now := time.Now().UTC().Truncate(time.Microsecond)
	return s.db.Tx(ctx, func(tx *store.Tx) error {
		for _, m := range meter.Builtins() {
			_, err := tx.ExecContext(ctx, "INSERT INTO meters ("+meterColumns+") VALUES (?, ?, ?, ?, ?, ?, '', '', TRUE, ?)"+
				" ON DUPLICATE KEY UPDATE name = VALUES(name), description = VALUES(description), unit = VALUES(unit),"+
				" aggregation = VALUES(aggregation), scale = VALUES(scale), event_type = '', value_property = '', builtin = TRUE",
				m.Slug, m.Name, m.Description, m.Unit, string(m.Aggregation), m.Scale, now)
			if err != nil {
				return fmt.Errorf("ensure built-in meter %s: %w", m.Slug, err)
			}
		}
		return nil
	})
}

// isDuplicate reports a duplicate key error (ER_DUP_ENTRY).
func isDuplicate(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1062
}
