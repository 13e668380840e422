// Package rating turns metered usage into money: it prices the hourly and
// daily aggregates (usage_hour, usage_day) with the versioned prices,
// answers cost queries, builds invoice drafts and closes them at month end
// plus grace, keeps tenants' budgets and runs the periodic jobs that
// announce budget thresholds and rated hours on canopy.usage.v1 through
// the outbox. It reads what the ledger wrote and never writes usage; it
// knows nothing of HTTP (ratingapi) or Kafka (the outbox relay publishes).
package rating

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/libs/store"

	"github.com/canopy-platform/canopy/services/metering/internal/meter"
)

// Config tunes the rating service. Zero fields take their defaults.
type Config struct {
	// Grace is how long after a window its usage may still change (late
	// events within it are counted): an invoice closes at month end + Grace
	// and an hour is rated at its end + Grace. Default 1h.
	Grace time.Duration
	// JobsEvery is how often Run evaluates budgets, publishes rated hours
	// and closes invoices. Default 15s.
	JobsEvery time.Duration
	// DefaultCurrency is the currency of amounts while no price names one.
	// Default USD.
	DefaultCurrency string
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Defaults of Config.
const (
	DefaultGrace     = time.Hour
	DefaultJobsEvery = 15 * time.Second
	DefaultCurrency  = "USD"
)

var currencyCode = regexp.MustCompile(`^[A-Z]{3}$`)

func (c Config) withDefaults() Config {
	if c.Grace == 0 {
		c.Grace = DefaultGrace
	}
	if c.JobsEvery == 0 {
		c.JobsEvery = DefaultJobsEvery
	}
	if c.DefaultCurrency == "" {
		c.DefaultCurrency = DefaultCurrency
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports whether c (with defaults) can be used.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Grace < 0:
		return fmt.Errorf("rating config: grace %s is negative", c.Grace)
	case c.JobsEvery < 0:
		return fmt.Errorf("rating config: jobs_every %s is negative", c.JobsEvery)
	case !currencyCode.MatchString(c.DefaultCurrency):
		return fmt.Errorf("rating config: default currency %q is not a 3-letter code", c.DefaultCurrency)
	}
	return nil
}

// Service rates usage; its methods are safe for concurrent use, and Run may
// run in several replicas at once (the jobs are idempotent).
type Service struct {
	cfg     Config
	db      *store.DB
	log     *slog.Logger
	metrics *metrics
}

// New returns a rating service over db (migrated with the metering schema
// and the outbox). reg may be nil to register no metrics.
func New(cfg Config, db *store.DB, log *slog.Logger, reg prometheus.Registerer) (*Service, error) {
	if db == nil {
		return nil, errors.New("new rating service: nil db")
	}
	if log == nil {
		return nil, errors.New("new rating service: nil logger")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new rating service: %w", err)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("new rating service: %w", err)
	}
	return &Service{cfg: cfg.withDefaults(), db: db, log: log.With("component", "rating"), metrics: m}, nil
}

// Now returns the service clock's time in UTC.
func (s *Service) Now() time.Time { return s.cfg.Now().UTC() }

// ErrNotFound is returned when the thing asked for does not exist.
var ErrNotFound = errors.New("not found")

// FieldError names one invalid input field and why.
type FieldError struct {
	Field  string
	Reason string
}

// ValidationError is input that parsed but breaks a rule; ratingapi
// answers it with 422 naming the fields.
type ValidationError struct {
	Detail string
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Reason
	}
	return e.Detail + " (" + strings.Join(parts, "; ") + ")"
}

// fieldErrors collects FieldErrors; err returns nil when there are none.
type fieldErrors []FieldError

func (f *fieldErrors) add(field, reason string) {
	*f = append(*f, FieldError{Field: field, Reason: reason})
}

func (f fieldErrors) err(detail string) error {
	if len(f) == 0 {
		return nil
	}
	return &ValidationError{Detail: detail, Fields: f}
}

// meterInfo is what rating needs of a meter.
type meterInfo struct {
	slug  string
	unit  string
	agg   meter.Aggregation
	scale *big.Rat
}

// priced reports whether the meter's quantities can carry a price: SUM
// and COUNT add up over time, MAX, AVG and UNIQUE_COUNT do not.
func (m meterInfo) priced() bool { return m.agg == meter.Sum || m.agg == meter.Count }

// meters returns every meter: the meters table, completed by the built-in
// definitions in case the table lacks them (before EnsureBuiltins ran).
func (s *Service) meters(ctx context.Context) (map[string]meterInfo, error) {
	out := map[string]meterInfo{}
	for _, b := range meter.Builtins() {
		out[b.Slug] = meterInfo{slug: b.Slug, unit: b.Unit, agg: b.Aggregation, scale: new(big.Rat).SetFloat64(b.Scale)}
	}
	rows, err := s.db.SQL().QueryContext(ctx, "SELECT slug, unit, aggregation, scale FROM meters")
	if err != nil {
		return nil, fmt.Errorf("read meters: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var m meterInfo
		var agg, scale string
		if err := rows.Scan(&m.slug, &m.unit, &agg, &scale); err != nil {
			return nil, fmt.Errorf("read meters: %w", err)
		}
		m.agg = meter.Aggregation(agg)
		if m.scale, err = ratFromDB(scale); err != nil {
			return nil, fmt.Errorf("read meter %s: %w", m.slug, err)
		}
		if m.scale.Sign() <= 0 {
			m.scale = ratInt(1)
		}
		out[m.slug] = m
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read meters: %w", err)
	}
	return out, nil
}

// monthBounds parses "2026-12" into its UTC start and end.
func monthBounds(month string) (time.Time, time.Time, error) {
	t, err := time.Parse("2006-01", month)
	if err != nil || t.Format("2006-01") != month {
		return time.Time{}, time.Time{}, &ValidationError{Detail: "invalid month",
			Fields: []FieldError{{Field: "month", Reason: "must be a month as YYYY-MM (2026-12)"}}}
	}
	start := t.UTC()
	return start, start.AddDate(0, 1, 0), nil
}

// monthOf names t's month.
func monthOf(t time.Time) string { return t.UTC().Format("2006-01") }
