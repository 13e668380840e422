package envelope

import (
	"fmt"
)

// ColumnNames returns the table's column names in column order.
func (t *Table) ColumnNames() []string {
	names := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		names[i] = c.Name
	}
	return names
}

// KeyIndexes returns the indexes (into Columns) of the primary key's
// columns in key order, the order Key uses; nil for a table without one.
func (t *Table) KeyIndexes() []int {
	if len(t.PrimaryKey) > 0 {
		return append([]int(nil), t.PrimaryKey...)
	}
	var order []int
	for i, c := range t.Columns {
		if c.Key {
			order = append(order, i)
		}
	}
	return order
}

// SQLFromBinlog maps a row image as go-mysql decodes it (the syncer
// configured as for FromBinlog) to SQL argument values that store the same
// value when bound in a session with time_zone='+00:00': integers as int64
// or, for unsigned columns, uint64 (go-mysql hands every integer back
// signed); FLOAT as float32, DOUBLE as float64; BIT as uint64; ENUM and SET
// as their member text (the binlog carries the index and the bit mask);
// DECIMAL, temporal and JSON values as their text; character strings as
// string and binary strings as []byte, BINARY(n) padded back to n bytes.
// A column type without a mapping is a *ValueError wrapping
// ErrUnsupported, as in FromBinlog.
func (t *Table) SQLFromBinlog(values []any) ([]any, error) {
	if len(values) != len(t.Columns) {
		return nil, fmt.Errorf("table %s.%s: row has %d values, table map %d columns", t.DB, t.Name, len(values), len(t.Columns))
	}
	out := make([]any, len(values))
	for i, v := range values {
		c := &t.Columns[i]
		x, err := c.sqlFromBinlog(v)
		if err != nil {
			return nil, &ValueError{Column: c.Name, Type: c.Type, Err: err}
		}
		out[i] = x
	}
	return out, nil
}

func (c *Column) sqlFromBinlog(v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch c.kind() {
	case kindInt:
		n, ok := toInt64(v)
		if !ok {
			return nil, fmt.Errorf("%w: integer as %T", ErrUnsupported, v)
		}
		if c.Unsigned {
			u := uint64(n)
			if bits := intBits(c.Type); bits < 64 {
				u &= 1<<bits - 1
			}
			return u, nil
		}
		return n, nil
	case kindYear:
		n, ok := toInt64(v)
		if !ok {
			return nil, fmt.Errorf("%w: year as %T", ErrUnsupported, v)
		}
		return n, nil
	case kindFloat:
		if f, ok := v.(float32); ok {
			return f, nil
		}
	case kindDouble:
		if f, ok := v.(float64); ok {
			return f, nil
		}
	case kindBit:
		n, ok := toInt64(v)
		if !ok {
			return nil, fmt.Errorf("%w: bit as %T", ErrUnsupported, v)
		}
		return uint64(n), nil
	case kindEnum:
		return c.enumMember(v)
	case kindSet:
		return c.setMembers(v)
	case kindDecimal, kindDate, kindDatetime, kindTimestamp, kindTime:
		switch s := v.(type) {
		case string:
			return s, nil
		case []byte:
			return string(s), nil
		}
	case kindString:
		var b []byte
		switch s := v.(type) {
		case string:
			if !c.Binary {
				return s, nil
			}
			b = []byte(s)
		case []byte:
			if !c.Binary {
				return string(s), nil
			}
			b = append([]byte(nil), s...)
		default:
			return nil, fmt.Errorf("%w: %s as %T", ErrUnsupported, c.Type, v)
		}
		if c.Type == "binary" && len(b) < c.Length {
			// The binlog drops BINARY(n)'s trailing zero bytes.
			b = append(b, make([]byte, c.Length-len(b))...)
		}
		return b, nil
	default:
		return nil, fmt.Errorf("%w: type %s", ErrUnsupported, c.Type)
	}
	return nil, fmt.Errorf("%w: %s as %T", ErrUnsupported, c.Type, v)
}
