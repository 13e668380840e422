package mysqlrepo

import (
	"context"
	"errors"
	"fmt"

	"github.com/canopy-platform/canopy/libs/store"

	"github.com/canopy-platform/canopy/libs/secrets"
)

// sealedColumn is a column holding sealed values and how its rows' aad is
// formed (the aad binds a value to its row, see secrets.Box.Seal).
type sealedColumn struct {
	table, column, aadPrefix string
}

// sealedColumns are every column the repository seals. Deleted rows are
// included: they are still read (listing deleted instances), so they must
// open once the previous key is gone.
var sealedColumns = []sealedColumn{
	{table: "instances", column: "accounts", aadPrefix: "instance:"},
	{table: "bindings", column: "secret", aadPrefix: "binding:"},
}

// ResealResult is what a re-sealing pass did.
type ResealResult struct {
	// Resealed is how many values were rewritten under the current key.
	Resealed int
	// Remaining is how many values are still not under the current key
	// after the pass (values that do not open, or were written meanwhile by
	// a process still sealing with an older key). Previous keys can be
	// removed once it is zero.
	Remaining int
}

// Reseal rewrites every sealed value that is not under the box's current key
// (sealed with a previous key, or in the format from before key ids) under
// the current key. Candidates are found batch at a time without locks; each
// is then rewritten in its own short transaction that locks the row (as
// Update does), so a concurrent change is never lost and no long range
// locks are held. A value that does not open is skipped and reported in the
// returned error; the pass goes on.
func (r *Repo) Reseal(ctx context.Context, batch int) (ResealResult, error) {
	if batch < 1 {
		batch = 100
	}
	var res ResealResult
	var failed []error
	for _, c := range sealedColumns {
		n, errs, err := r.resealColumn(ctx, c, batch)
		res.Resealed += n
		failed = append(failed, errs...)
		if err != nil {
			return res, fmt.Errorf("reseal %s.%s: %w", c.table, c.column, err)
		}
	}
	remaining, err := r.Unresealed(ctx)
	if err != nil {
		return res, err
	}
	res.Remaining = remaining
	if len(failed) > 0 {
		return res, fmt.Errorf("reseal: %d values cannot be opened: %w", len(failed), errors.Join(failed...))
	}
	return res, nil
}

// resealColumn walks c in id order; errs are the rows that did not open.
func (r *Repo) resealColumn(ctx context.Context, c sealedColumn, batch int) (resealed int, errs []error, err error) {
	prefix := r.box.CurrentPrefix()
	// LEFT(...) <> prefix finds values under another key without opening them.
	find := fmt.Sprintf("SELECT id FROM %[1]s WHERE id > ? AND LEFT(%[2]s, ?) <> ? ORDER BY id LIMIT ?", c.table, c.column)
	after := ""
	for {
		ids, err := r.resealCandidates(ctx, find, after, len(prefix), prefix, batch)
		if err != nil {
			return resealed, errs, err
		}
		for _, id := range ids {
			changed, err := r.resealRow(ctx, c, id)
			if errors.Is(err, secrets.ErrDecrypt) {
				errs = append(errs, fmt.Errorf("%s %s: %w", c.table, id, err))
				continue
			}
			if err != nil {
				return resealed, errs, err
			}
			if changed {
				resealed++
			}
		}
		if len(ids) < batch {
			return resealed, errs, nil
		}
		after = ids[len(ids)-1]
	}
}

// resealRow locks one row and rewrites its value under the current key
// unless a concurrent save already did.
func (r *Repo) resealRow(ctx context.Context, c sealedColumn, id string) (changed bool, err error) {
	err = r.db.Tx(ctx, func(tx *store.Tx) error {
		var sealed []byte
		q := fmt.Sprintf("SELECT %s FROM %s WHERE id = ? FOR UPDATE", c.column, c.table)
		if err := tx.QueryRowContext(ctx, q, id).Scan(&sealed); err != nil {
			return fmt.Errorf("lock %s %s: %w", c.table, id, err)
		}
		out, ch, err := r.box.Reseal(sealed, []byte(c.aadPrefix+id))
		if err != nil || !ch {
			return err
		}
		q = fmt.Sprintf("UPDATE %s SET %s = ? WHERE id = ?", c.table, c.column)
		if _, err := tx.ExecContext(ctx, q, out, id); err != nil {
			return fmt.Errorf("update %s %s: %w", c.table, id, err)
		}
		changed = true
		return nil
	})
	return changed, err
}

func (r *Repo) resealCandidates(ctx context.Context, q string, args ...any) ([]string, error) {
	rows, err := r.db.SQL().QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("find values to reseal: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("find values to reseal: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// Unresealed counts the sealed values that are not under the current key.
func (r *Repo) Unresealed(ctx context.Context) (int, error) {
	prefix := r.box.CurrentPrefix()
	total := 0
	for _, c := range sealedColumns {
		var n int
		q := fmt.Sprintf("SELECT COUNT(*) FROM %[1]s WHERE LEFT(%[2]s, ?) <> ?", c.table, c.column)
		if err := r.db.SQL().QueryRowContext(ctx, q, len(prefix), prefix).Scan(&n); err != nil {
			return 0, fmt.Errorf("count unresealed %s.%s: %w", c.table, c.column, err)
		}
		total += n
	}
	return total, nil
}
