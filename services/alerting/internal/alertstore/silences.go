package alertstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
)

const silenceColumns = "id, tenant, matchers, starts_at, ends_at, created_by, comment, updated_at"

// storedMatcher is a matcher as the silences table keeps it: structured,
// so reading it back does not depend on the text syntax.
type storedMatcher struct {
	Name  string `json:"name"`
	Op    string `json:"op"`
	Value string `json:"value"`
}

var matchOps = map[alert.MatchType]string{
	alert.MatchEqual: "=", alert.MatchNotEqual: "!=", alert.MatchRegexp: "=~", alert.MatchNotRegexp: "!~",
}

func encodeMatchers(ms alert.Matchers) (string, error) {
	out := make([]storedMatcher, len(ms))
	for i, m := range ms {
		op, ok := matchOps[m.Type]
		if !ok {
			return "", fmt.Errorf("matcher %s: unknown type %d", m.Name, m.Type)
		}
		out[i] = storedMatcher{Name: m.Name, Op: op, Value: m.Value}
	}
	b, err := json.Marshal(out)
	return string(b), err
}

func decodeMatchers(b []byte) (alert.Matchers, error) {
	var in []storedMatcher
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, err
	}
	ms := make(alert.Matchers, 0, len(in))
	for _, sm := range in {
		t, ok := matchType(sm.Op)
		if !ok {
			return nil, fmt.Errorf("matcher %s: unknown operator %q", sm.Name, sm.Op)
		}
		m, err := alert.NewMatcher(t, sm.Name, sm.Value)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	return ms, nil
}

func matchType(op string) (alert.MatchType, bool) {
	for t, o := range matchOps {
		if o == op {
			return t, true
		}
	}
	return 0, false
}

func scanSilence(sc store.Scanner) (alert.Silence, error) {
	var (
		sil      alert.Silence
		matchers []byte
	)
	if err := sc.Scan(&sil.ID, &sil.Tenant, &matchers, &sil.StartsAt, &sil.EndsAt, &sil.CreatedBy, &sil.Comment, &sil.UpdatedAt); err != nil {
		return sil, err
	}
	sil.StartsAt, sil.EndsAt, sil.UpdatedAt = sil.StartsAt.UTC(), sil.EndsAt.UTC(), sil.UpdatedAt.UTC()
	ms, err := decodeMatchers(matchers)
	if err != nil {
		return sil, fmt.Errorf("silence %s matchers: %w", sil.ID, err)
	}
	sil.Matchers = ms
	return sil, nil
}

// CreateSilence stores a new silence (ID assigned, uuid) and returns it.
// Validation (alert.Silence.Validate) is the caller's; a zero UpdatedAt is
// now.
func (s *Store) CreateSilence(ctx context.Context, sil alert.Silence) (alert.Silence, error) {
	sil.ID = uuid.NewString()
	now := dbTime(time.Now())
	if sil.UpdatedAt.IsZero() {
		sil.UpdatedAt = now
	}
	sil.StartsAt, sil.EndsAt, sil.UpdatedAt = dbTime(sil.StartsAt), dbTime(sil.EndsAt), dbTime(sil.UpdatedAt)
	ms, err := encodeMatchers(sil.Matchers)
	if err != nil {
		return sil, fmt.Errorf("create silence: %w", err)
	}
	_, err = s.db.SQL().ExecContext(ctx, "INSERT INTO silences ("+silenceColumns+", created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
		sil.ID, sil.Tenant, ms, sil.StartsAt, sil.EndsAt, sil.CreatedBy, sil.Comment, sil.UpdatedAt, now)
	if err != nil {
		return sil, fmt.Errorf("create silence: %w", err)
	}
	return sil, nil
}

// ExpireSilence ends a silence now (kept for audit); tenant-checked. A
// silence that has not started yet ends before it starts (StartsAt = EndsAt
// = now, as Alertmanager); expiring an expired silence changes nothing.
func (s *Store) ExpireSilence(ctx context.Context, tenant string, all bool, id string, now time.Time) error {
	now = dbTime(now)
	return s.db.Tx(ctx, func(tx *store.Tx) error {
		cond, args := tenantClause("tenant", tenant, all)
		var ends time.Time
		err := tx.QueryRowContext(ctx, "SELECT ends_at FROM silences WHERE id = ?"+cond+" FOR UPDATE",
			append([]any{id}, args...)...).Scan(&ends)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("expire silence %s: %w", id, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("expire silence %s: %w", id, err)
		}
		if !ends.After(now) {
			return nil
		}
		if _, err := tx.ExecContext(ctx,
			"UPDATE silences SET starts_at = LEAST(starts_at, ?), ends_at = ?, updated_at = ? WHERE id = ?",
			now, now, now, id); err != nil {
			return fmt.Errorf("expire silence %s: %w", id, err)
		}
		return nil
	})
}

// GetSilence returns one silence, tenant-checked.
func (s *Store) GetSilence(ctx context.Context, tenant string, all bool, id string) (alert.Silence, error) {
	cond, args := tenantClause("tenant", tenant, all)
	sil, err := scanSilence(s.db.SQL().QueryRowContext(ctx,
		"SELECT "+silenceColumns+" FROM silences WHERE id = ?"+cond, append([]any{id}, args...)...))
	if errors.Is(err, sql.ErrNoRows) {
		return sil, fmt.Errorf("silence %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return sil, fmt.Errorf("read silence %s: %w", id, err)
	}
	return sil, nil
}

// ListSilences lists a tenant's (or all) silences, expired ones included,
// newest first.
func (s *Store) ListSilences(ctx context.Context, tenant string, all bool) ([]alert.Silence, error) {
	cond, args := tenantClause("tenant", tenant, all)
	return store.QueryAll(ctx, s.db.SQL(), "list silences", scanSilence,
		"SELECT "+silenceColumns+" FROM silences WHERE TRUE"+cond+" ORDER BY created_at DESC, id", args...)
}

// UnexpiredSilences returns every silence whose EndsAt is after now (the
// engine's muting set).
func (s *Store) UnexpiredSilences(ctx context.Context, now time.Time) ([]alert.Silence, error) {
	return store.QueryAll(ctx, s.db.SQL(), "read unexpired silences", scanSilence,
		"SELECT "+silenceColumns+" FROM silences WHERE ends_at > ? ORDER BY id", dbTime(now))
}
