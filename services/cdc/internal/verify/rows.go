package verify

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// rowDiff is one differing row.
type rowDiff struct {
	key      []any
	kind     string
	repaired bool
}

// keyedCRC is a row's key and checksum.
type keyedCRC struct {
	key []any
	crc int64
}

// rowDiffs lists the rows of c that differ: each side's (key, crc) of the
// chunk, compared by key.
func (v *verifier) rowDiffs(ctx context.Context, t *table, c *chunk) ([]rowDiff, error) {
	where, args := t.where(c.lo, c.hi)
	q := t.rowsSQL + where + " ORDER BY " + t.keyList
	var sides [2][]keyedCRC
	err := v.both(func(db *sql.DB, side int, addr string) error {
		rows, err := db.QueryContext(ctx, t.on(side, q), args...)
		if err != nil {
			return fmt.Errorf("rows of chunk %d of %s on %s: %w", c.idx, t, addr, err)
		}
		defer rows.Close()
		raw := make([]sql.RawBytes, len(t.key))
		var crc int64
		dest := make([]any, len(raw)+1)
		for i := range raw {
			dest[i] = &raw[i]
		}
		dest[len(raw)] = &crc
		for rows.Next() {
			if err := rows.Scan(dest...); err != nil {
				return fmt.Errorf("rows of chunk %d of %s on %s: %w", c.idx, t, addr, err)
			}
			b := make([][]byte, len(raw))
			for i, r := range raw {
				b[i] = r
			}
			k, err := t.keyArgs(b)
			if err != nil {
				return err
			}
			sides[side] = append(sides[side], keyedCRC{key: k, crc: crc})
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("rows of chunk %d of %s on %s: %w", c.idx, t, addr, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Compared through a map rather than merged in order: Go cannot order
	// keys as the column collations do.
	tgt := make(map[string]int64, len(sides[1]))
	for _, r := range sides[1] {
		tgt[keyID(r.key)] = r.crc
	}
	var out []rowDiff
	for _, r := range sides[0] {
		id := keyID(r.key)
		crc, ok := tgt[id]
		delete(tgt, id)
		switch {
		case !ok:
			out = append(out, rowDiff{key: r.key, kind: MissingOnTarget})
		case crc != r.crc:
			out = append(out, rowDiff{key: r.key, kind: Different})
		}
	}
	for _, r := range sides[1] {
		if _, ok := tgt[keyID(r.key)]; ok {
			out = append(out, rowDiff{key: r.key, kind: ExtraOnTarget})
		}
	}
	return out, nil
}

// recheckRows looks at each row again on both sides and keeps those that
// still differ (with the kind they differ by now).
func (v *verifier) recheckRows(ctx context.Context, t *table, rows []rowDiff) ([]rowDiff, error) {
	q := "SELECT " + t.rowCRC + " FROM " + t.from + t.keyEq()
	out := rows[:0]
	for _, d := range rows {
		var crc [2]sql.NullInt64
		err := v.both(func(db *sql.DB, side int, addr string) error {
			err := db.QueryRowContext(ctx, t.on(side, q), d.key...).Scan(&crc[side])
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("recheck row %s of %s on %s: %w", t.keyJSON(d.key), t, addr, err)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		switch {
		case crc[0].Valid && !crc[1].Valid:
			d.kind = MissingOnTarget
		case !crc[0].Valid && crc[1].Valid:
			d.kind = ExtraOnTarget
		case crc[0].Valid && crc[0].Int64 != crc[1].Int64:
			d.kind = Different
		default:
			continue
		}
		out = append(out, d)
	}
	return out, nil
}

// repair makes the target's rows as the source's are now: REPLACE what the
// source has, DELETE what it has not, on one target session carrying the
// job's server_id so the job does not capture its own repairs as changes.
func (v *verifier) repair(ctx context.Context, t *table, rows []rowDiff) error {
	conn, err := v.tgt.Conn(ctx)
	if err != nil {
		return fmt.Errorf("repair %s on %s: %w", t, v.cfg.Target.Addr, err)
	}
	defer conn.Close()
	// The session variables must not leak into the pool's other users:
	// the connection is discarded, not returned.
	defer conn.Raw(func(any) error { return driver.ErrBadConn })
	for _, q := range []string{
		"SET SESSION time_zone = '+00:00', sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION', foreign_key_checks = 0",
		"SET SESSION server_id = " + strconv.FormatUint(uint64(v.cfg.RepairServerID), 10),
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("repair %s on %s: %s: %w", t, v.cfg.Target.Addr, q, err)
		}
	}
	var sel, names, marks []string
	var written []column
	for _, c := range t.cols {
		if c.virtual {
			continue
		}
		written = append(written, c)
		expr := quote(c.name)
		if c.float {
			// A plain SELECT rounds FLOAT to 6 digits; through DOUBLE it
			// keeps the exact value, which a FLOAT column stores back as is.
			expr = "CAST(" + expr + " AS DOUBLE)"
		}
		sel, names, marks = append(sel, expr), append(names, quote(c.name)), append(marks, "?")
	}
	read := "SELECT " + strings.Join(sel, ", ") + " FROM " + t.from + t.keyEq()
	replace := "REPLACE INTO " + quote(t.tdb) + "." + quote(t.name) + " (" + strings.Join(names, ", ") + ") VALUES (" +
		strings.Join(marks, ", ") + ")"
	del := "DELETE FROM " + quote(t.tdb) + "." + quote(t.name) + t.keyEq()
	raw := make([][]byte, len(written)) // Row.Scan refuses RawBytes
	dest := make([]any, len(raw))
	for i := range raw {
		dest[i] = &raw[i]
	}
	for i := range rows {
		d := &rows[i]
		q, args := del, d.key
		err := v.src.QueryRowContext(ctx, read, d.key...).Scan(dest...)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return fmt.Errorf("repair %s: read row %s on %s: %w", t, t.keyJSON(d.key), v.cfg.Source.Addr, err)
		default:
			q, args = replace, rowArgs(written, raw)
		}
		if _, err := conn.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("repair %s: row %s on %s: %w", t, t.keyJSON(d.key), v.cfg.Target.Addr, err)
		}
		d.repaired = true
	}
	return nil
}

// rowArgs turns a row read as text into arguments: NULL as nil, binary
// columns as bytes, the rest as text the server converts from the
// connection's character set.
func rowArgs(cols []column, raw [][]byte) []any {
	out := make([]any, len(raw))
	for i, b := range raw {
		switch {
		case b == nil:
			out[i] = nil
		case cols[i].kind == kindBinary:
			out[i] = append([]byte(nil), b...)
		default:
			out[i] = string(b)
		}
	}
	return out
}
