package cache

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/canopy-platform/canopy/services/cdc/internal/change"
)

// ErrNoPrimaryKey is wrapped when a change's table has no primary key: a
// row without one has no key to cache it under.
var ErrNoPrimaryKey = errors.New("table has no primary key")

// Key is the Redis key of row (rc's After or Before image) under pattern:
// {db} and {table} are rc's, {pk} the row's key values as text joined by
// ':' in key order. An empty pattern is syncjob.DefaultKeyPattern.
func Key(pattern string, rc change.RowChange, row []any) (string, error) {
	if pattern == "" {
		pattern = defaultPattern
	}
	if len(rc.Key) == 0 {
		return "", fmt.Errorf("key of %s.%s: %w", rc.DB, rc.Table, ErrNoPrimaryKey)
	}
	parts := make([]string, len(rc.Key))
	for i, k := range rc.Key {
		if k < 0 || k >= len(row) {
			return "", fmt.Errorf("key of %s.%s: key column %d outside the row's %d values", rc.DB, rc.Table, k, len(row))
		}
		if row[k] == nil {
			return "", fmt.Errorf("key of %s.%s: key column %s is NULL", rc.DB, rc.Table, columnName(rc, k))
		}
		s, err := text(row[k])
		if err != nil {
			return "", fmt.Errorf("key of %s.%s: column %s: %w", rc.DB, rc.Table, columnName(rc, k), err)
		}
		parts[i] = s
	}
	return strings.NewReplacer("{db}", rc.DB, "{table}", rc.Table, "{pk}", strings.Join(parts, ":")).Replace(pattern), nil
}

func columnName(rc change.RowChange, i int) string {
	if i < len(rc.Columns) {
		return rc.Columns[i]
	}
	return "#" + strconv.Itoa(i)
}

// text is a non-NULL value as the MySQL client would show it, so a row
// read by the snapshot (text) and the same row from the binlog (typed)
// give the same key and the same hash fields.
func text(v any) (string, error) {
	switch x := v.(type) {
	case int64:
		return strconv.FormatInt(x, 10), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case int:
		return strconv.Itoa(x), nil
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32), nil
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	case string:
		return x, nil
	case []byte:
		return string(x), nil
	default:
		return "", fmt.Errorf("unsupported value type %T", v)
	}
}
