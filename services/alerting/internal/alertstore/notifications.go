package alertstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
	"github.com/canopy-platform/canopy/services/alerting/internal/dispatch"
)

const deliveryColumns = "id, receiver, owner, group_key, payload, attempts, next_at, last_error, created_at, delivered_at, dead_at"

// StoreNotifications, in one transaction, queues the deliveries and
// writes their log entries (the dispatcher commits only after this). A
// zero NextAt or CreatedAt is now; IDs, attempts and outcomes are the
// store's (the given ones are ignored). A log entry replaces the
// receiver's entry for the same group key.
func (s *Store) StoreNotifications(ctx context.Context, ds []Delivery, log []dispatch.LogEntry) error {
	if len(ds) == 0 && len(log) == 0 {
		return nil
	}
	now := dbTime(time.Now())
	logRows, err := logRows(log)
	if err != nil {
		return err
	}
	return s.db.TxRetry(ctx, func(tx *store.Tx) error {
		err := statementChunks(ds, func(d Delivery) int { return len(d.Payload) + len(d.GroupKey) },
			func(part []Delivery) error { return insertDeliveries(ctx, tx, part, now) })
		if err != nil {
			return err
		}
		return statementChunks(logRows, func(r [7]any) int { return len(r[2].(string)) + len(r[3].(string)) + len(r[4].(string)) },
			func(part [][7]any) error { return upsertLog(ctx, tx, part) })
	})
}

func insertDeliveries(ctx context.Context, tx *store.Tx, ds []Delivery, now time.Time) error {
	var b strings.Builder
	b.WriteString("INSERT INTO deliveries (receiver, owner, group_key, payload, attempts, next_at, last_error, created_at) VALUES ")
	args := make([]any, 0, 7*len(ds))
	for i, d := range ds {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?, ?, ?, ?, 0, ?, '', ?)")
		next, created := d.NextAt, d.CreatedAt
		if next.IsZero() {
			next = now
		}
		if created.IsZero() {
			created = now
		}
		payload := d.Payload
		if payload == nil {
			payload = []byte{}
		}
		args = append(args, d.Receiver, d.Owner, d.GroupKey, payload, dbTime(next), dbTime(created))
	}
	if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
		return fmt.Errorf("queue %d deliveries: %w", len(ds), err)
	}
	return nil
}

// logRows encodes log entries in nflog's column order.
func logRows(log []dispatch.LogEntry) ([][7]any, error) {
	rows := make([][7]any, len(log))
	for i, e := range log {
		firing, err := encodeFingerprints(e.Firing)
		if err != nil {
			return nil, fmt.Errorf("encode log entry %s: %w", e.GroupKey, err)
		}
		resolved, err := encodeFingerprints(e.Resolved)
		if err != nil {
			return nil, fmt.Errorf("encode log entry %s: %w", e.GroupKey, err)
		}
		h := sha256.Sum256([]byte(e.GroupKey))
		rows[i] = [7]any{e.Receiver, h[:], e.GroupKey, firing, resolved, dbTime(e.SentAt), dbTime(e.ExpiresAt)}
	}
	return rows, nil
}

func upsertLog(ctx context.Context, tx *store.Tx, rows [][7]any) error {
	var b strings.Builder
	b.WriteString("INSERT INTO nflog (receiver, group_key_hash, group_key, firing, resolved, sent_at, expires_at) VALUES ")
	args := make([]any, 0, 7*len(rows))
	ph := store.Placeholders(7)
	for i, r := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(ph)
		args = append(args, r[:]...)
	}
	b.WriteString(" ON DUPLICATE KEY UPDATE group_key = VALUES(group_key), firing = VALUES(firing), resolved = VALUES(resolved)," +
		" sent_at = VALUES(sent_at), expires_at = VALUES(expires_at)")
	if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
		return fmt.Errorf("write %d notification log entries: %w", len(rows), err)
	}
	return nil
}

// encodeFingerprints stores fingerprints as a JSON array of numbers (plain
// uint64s, whatever text form the alert package gives them).
func encodeFingerprints(fps []alert.Fingerprint) (string, error) {
	u := make([]uint64, len(fps))
	for i, fp := range fps {
		u[i] = uint64(fp)
	}
	b, err := json.Marshal(u)
	return string(b), err
}

func decodeFingerprints(b []byte) ([]alert.Fingerprint, error) {
	var u []uint64
	if err := json.Unmarshal(b, &u); err != nil {
		return nil, err
	}
	if len(u) == 0 {
		return nil, nil
	}
	fps := make([]alert.Fingerprint, len(u))
	for i, v := range u {
		fps[i] = alert.Fingerprint(v)
	}
	return fps, nil
}

func scanLogEntry(sc store.Scanner) (dispatch.LogEntry, error) {
	var (
		e                dispatch.LogEntry
		firing, resolved []byte
		err              error
	)
	if err := sc.Scan(&e.Receiver, &e.GroupKey, &firing, &resolved, &e.SentAt, &e.ExpiresAt); err != nil {
		return e, err
	}
	e.SentAt, e.ExpiresAt = e.SentAt.UTC(), e.ExpiresAt.UTC()
	if e.Firing, err = decodeFingerprints(firing); err != nil {
		return e, fmt.Errorf("log entry %s firing: %w", e.GroupKey, err)
	}
	if e.Resolved, err = decodeFingerprints(resolved); err != nil {
		return e, fmt.Errorf("log entry %s resolved: %w", e.GroupKey, err)
	}
	return e, nil
}

// NotificationLog returns the unexpired log entries.
func (s *Store) NotificationLog(ctx context.Context, now time.Time) ([]dispatch.LogEntry, error) {
	return store.QueryAll(ctx, s.db.SQL(), "read notification log", scanLogEntry,
		"SELECT receiver, group_key, firing, resolved, sent_at, expires_at FROM nflog WHERE expires_at > ?", dbTime(now))
}

// PruneNotificationLog deletes the entries expired at now.
func (s *Store) PruneNotificationLog(ctx context.Context, now time.Time) (int64, error) {
	return deleteChunked(ctx, s.db.SQL(), "prune notification log",
		"DELETE FROM nflog WHERE expires_at <= ? LIMIT 5000", dbTime(now))
}

func scanDelivery(sc store.Scanner) (Delivery, error) {
	var (
		d               Delivery
		delivered, dead sql.NullTime
	)
	if err := sc.Scan(&d.ID, &d.Receiver, &d.Owner, &d.GroupKey, &d.Payload, &d.Attempts, &d.NextAt, &d.LastError,
		&d.CreatedAt, &delivered, &dead); err != nil {
		return d, err
	}
	d.NextAt, d.CreatedAt = d.NextAt.UTC(), d.CreatedAt.UTC()
	d.DeliveredAt, d.DeadAt = fromNull(delivered), fromNull(dead)
	return d, nil
}

// DueDeliveries claims up to limit undelivered, not dead deliveries whose
// NextAt <= now, oldest first. A claimed delivery is not returned again
// until now + the claim lease (SetClaimLease) unless Failed or
// ReleaseClaims frees it earlier; Delivered ends it. So a crash between
// the claim and the outcome delays the delivery, never loses it.
func (s *Store) DueDeliveries(ctx context.Context, now time.Time, limit int) ([]Delivery, error) {
	if limit <= 0 {
		return nil, nil
	}
	now = dbTime(now)
	var out []Delivery
	err := s.db.TxRetry(ctx, func(tx *store.Tx) error {
		rows, err := tx.QueryContext(ctx, "SELECT "+deliveryColumns+" FROM deliveries"+
			" WHERE delivered_at IS NULL AND dead_at IS NULL AND next_at <= ? AND (claimed_until IS NULL OR claimed_until <= ?)"+
			" ORDER BY next_at, id LIMIT ? FOR UPDATE SKIP LOCKED", now, now, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			d, err := scanDelivery(rows)
			if err != nil {
				return err
			}
			out = append(out, d)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(out) == 0 {
			return nil
		}
		ids := make([]any, 0, len(out)+1)
		ids = append(ids, now.Add(s.claimLease))
		for _, d := range out {
			ids = append(ids, d.ID)
		}
		_, err = tx.ExecContext(ctx, "UPDATE deliveries SET claimed_until = ? WHERE id IN "+store.Placeholders(len(out)), ids...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claim due deliveries: %w", err)
	}
	return out, nil
}

// ReleaseClaims frees every claim (the engine calls it at start: it holds
// the single-engine lock, so no claim is still being worked on).
func (s *Store) ReleaseClaims(ctx context.Context) error {
	if _, err := s.db.SQL().ExecContext(ctx, "UPDATE deliveries SET claimed_until = NULL"+
		" WHERE claimed_until IS NOT NULL AND delivered_at IS NULL"); err != nil {
		return fmt.Errorf("release delivery claims: %w", err)
	}
	return nil
}

// Delivered marks deliveries sent (one statement for many). A delivery
// dead-lettered while it was being sent (its receiver deleted) counts as
// delivered after all.
func (s *Store) Delivered(ctx context.Context, ids []int64, at time.Time) error {
	at = dbTime(at)
	// Marking races the claims and inserts of the flushes on the same
	// index; a lost conflict is run again rather than left undelivered.
	return s.db.TxRetry(ctx, func(tx *store.Tx) error {
		return chunks(ids, 1000, func(part []int64) error {
			args := append([]any{at}, anys(part)...)
			if _, err := tx.ExecContext(ctx, "UPDATE deliveries SET delivered_at = ?, dead_at = NULL, claimed_until = NULL"+
				" WHERE id IN "+store.Placeholders(len(part))+" AND delivered_at IS NULL", args...); err != nil {
				return fmt.Errorf("mark %d deliveries delivered: %w", len(part), err)
			}
			return nil
		})
	})
}

// Failed records a failed attempt and the next try; dead=true makes it a
// dead letter (dead at the current time). A delivery already delivered
// or dead is left as it is.
func (s *Store) Failed(ctx context.Context, id int64, attempts int, next time.Time, reason string, dead bool) error {
	var deadAt any
	if dead {
		deadAt = dbTime(time.Now())
	}
	if _, err := s.db.SQL().ExecContext(ctx, "UPDATE deliveries SET attempts = ?, next_at = ?, last_error = ?, dead_at = ?,"+
		" claimed_until = NULL WHERE id = ? AND delivered_at IS NULL AND dead_at IS NULL",
		attempts, dbTime(next), reason, deadAt, id); err != nil {
		return fmt.Errorf("record failed delivery %d: %w", id, err)
	}
	return nil
}

// DeadLetters lists dead letters (tenant's or all), newest first. A limit
// of 0 or less means 100.
func (s *Store) DeadLetters(ctx context.Context, tenant string, all bool, limit int) ([]Delivery, error) {
	if limit <= 0 {
		limit = 100
	}
	cond, args := tenantClause("owner", tenant, all)
	return store.QueryAll(ctx, s.db.SQL(), "list dead letters", scanDelivery,
		"SELECT "+deliveryColumns+" FROM deliveries WHERE dead_at IS NOT NULL AND delivered_at IS NULL"+cond+
			" ORDER BY dead_at DESC, id DESC LIMIT ?", append(args, limit)...)
}

// RetryDeadLetter queues a dead letter again (attempts reset, due at now;
// the last error stays until the next attempt). ErrNotFound when the
// tenant has no such dead letter, ErrConflict when its receiver is gone.
func (s *Store) RetryDeadLetter(ctx context.Context, tenant string, all bool, id int64, now time.Time) error {
	return s.db.Tx(ctx, func(tx *store.Tx) error {
		cond, args := tenantClause("owner", tenant, all)
		var receiver string
		err := tx.QueryRowContext(ctx, "SELECT receiver FROM deliveries WHERE id = ? AND dead_at IS NOT NULL AND delivered_at IS NULL"+
			cond+" FOR UPDATE", append([]any{id}, args...)...).Scan(&receiver)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("retry dead letter %d: %w", id, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("retry dead letter %d: %w", id, err)
		}
		ok, err := exists(ctx, tx, "SELECT 1 FROM receivers WHERE id = ?", receiver)
		if err != nil {
			return fmt.Errorf("retry dead letter %d: %w", id, err)
		}
		if !ok {
			return fmt.Errorf("retry dead letter %d: %w: receiver deleted", id, ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, "UPDATE deliveries SET dead_at = NULL, attempts = 0, next_at = ?, claimed_until = NULL WHERE id = ?",
			dbTime(now), id); err != nil {
			return fmt.Errorf("retry dead letter %d: %w", id, err)
		}
		return nil
	})
}

// PruneDeliveries deletes delivered deliveries older than before.
func (s *Store) PruneDeliveries(ctx context.Context, before time.Time) (int64, error) {
	return deleteChunked(ctx, s.db.SQL(), "prune deliveries",
		"DELETE FROM deliveries WHERE delivered_at < ? LIMIT 5000", dbTime(before))
}
