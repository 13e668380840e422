// Temporary: replaced by the capture helper's mapping at merge.
//
// This file only exists on the snapshot branch so that package snapshot and
// its tests compile and run before the real mapping lands: TableFromSchema,
// FromText (common types only) and Key, plus Row's JSON form. Drop it at
// merge in favour of the real implementation, and take envelope.go from the
// capture branch (its FromText/Key stubs call into this file here).
package envelope

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// TableFromSchema reads a table's columns from information_schema.COLUMNS.
func TableFromSchema(ctx context.Context, db *sql.DB, schema, table string) (*Table, error) {
	rows, err := db.QueryContext(ctx, `SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, COALESCE(NUMERIC_PRECISION, DATETIME_PRECISION, 0),
		COALESCE(NUMERIC_SCALE, 0), IS_NULLABLE, COLUMN_KEY, COALESCE(CHARACTER_SET_NAME, '')
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, schema, table)
	if err != nil {
		return nil, fmt.Errorf("columns of %s.%s: %w", schema, table, err)
	}
	defer rows.Close()
	t := &Table{DB: schema, Name: table}
	for rows.Next() {
		var c Column
		var colType, nullable, key, charset string
		if err := rows.Scan(&c.Name, &c.Type, &colType, &c.Precision, &c.Scale, &nullable, &key, &charset); err != nil {
			return nil, fmt.Errorf("columns of %s.%s: %w", schema, table, err)
		}
		c.Type = strings.ToLower(c.Type)
		c.Unsigned = strings.Contains(colType, "unsigned")
		c.Nullable = nullable == "YES"
		c.Key = key == "PRI"
		c.Binary = charset == "" && (strings.Contains(c.Type, "binary") || strings.Contains(c.Type, "blob"))
		t.Columns = append(t.Columns, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("columns of %s.%s: %w", schema, table, err)
	}
	if len(t.Columns) == 0 {
		return nil, fmt.Errorf("table %s.%s: no columns (does it exist?)", schema, table)
	}
	return t, nil
}

func (t *Table) fromText(values [][]byte) (Row, error) {
	if len(values) != len(t.Columns) {
		return Row{}, fmt.Errorf("%s.%s: %d values for %d columns", t.DB, t.Name, len(values), len(t.Columns))
	}
	r := Row{Names: make([]string, len(values)), Values: make([]any, len(values))}
	for i, c := range t.Columns {
		r.Names[i] = c.Name
		v, err := c.text(values[i])
		if err != nil {
			return Row{}, fmt.Errorf("%s.%s column %s: %w", t.DB, t.Name, c.Name, err)
		}
		r.Values[i] = v
	}
	return r, nil
}

func (c Column) text(b []byte) (any, error) {
	if b == nil {
		return nil, nil
	}
	s := string(b)
	switch c.Type {
	case "tinyint", "smallint", "mediumint", "int", "bigint", "year":
		if c.Unsigned {
			return strconv.ParseUint(s, 10, 64)
		}
		return strconv.ParseInt(s, 10, 64)
	case "float", "double":
		return strconv.ParseFloat(s, 64)
	case "datetime":
		ts, err := time.Parse("2006-01-02 15:04:05.999999", s)
		if err != nil {
			return nil, err
		}
		if c.Precision <= 3 {
			return ts.UnixMilli(), nil
		}
		return ts.UnixMicro(), nil
	case "timestamp":
		ts, err := time.Parse("2006-01-02 15:04:05.999999", s)
		if err != nil {
			return nil, err
		}
		return ts.UTC().Format(time.RFC3339Nano), nil
	case "date":
		ts, err := time.Parse("2006-01-02", s)
		if err != nil {
			return nil, err
		}
		return ts.Unix() / 86400, nil
	}
	if c.Binary {
		return bytes.Clone(b), nil // encoding/json writes base64
	}
	return s, nil // decimal, strings, enum, set, json...
}

func (t *Table) key(r Row) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	n := 0
	for i, c := range t.Columns {
		if !c.Key {
			continue
		}
		if i >= len(r.Values) {
			return nil, fmt.Errorf("%s.%s: row has no key column %s", t.DB, t.Name, c.Name)
		}
		if n > 0 {
			buf.WriteByte(',')
		}
		n++
		if err := writeField(&buf, c.Name, r.Values[i]); err != nil {
			return nil, err
		}
	}
	if n == 0 {
		return nil, nil
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// MarshalJSON writes the row as a JSON object in column order.
func (r Row) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, n := range r.Names {
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := writeField(&buf, n, r.Values[i]); err != nil {
			return nil, err
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

func writeField(buf *bytes.Buffer, name string, v any) error {
	k, err := json.Marshal(name)
	if err != nil {
		return err
	}
	val, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("column %s: %w", name, err)
	}
	buf.Write(k)
	buf.WriteByte(':')
	buf.Write(val)
	return nil
}
