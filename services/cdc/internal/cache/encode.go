package cache

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/canopy-platform/canopy/services/cdc/internal/change"
)

// kind is what a column holds, from its SQL data type.
type kind int

const (
	kindUnknown kind = iota // no type known: decide by the Go value
	kindInt                 // integers and YEAR
	kindFloat               // FLOAT (the binlog gives a float32)
	kindDouble              // DOUBLE
	kindDecimal             // DECIMAL (text on both paths)
	kindBinary              // BINARY, VARBINARY, *BLOB: base64 in JSON
	kindBit                 // BIT (the binlog gives an uint64)
	kindText                // everything else: a string
)

// kindOf maps information_schema.COLUMNS.DATA_TYPE to a kind.
func kindOf(dataType string) kind {
	switch strings.ToLower(dataType) {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year":
		return kindInt
	case "float":
		return kindFloat
	case "double", "real":
		return kindDouble
	case "decimal", "numeric", "dec", "fixed":
		return kindDecimal
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
		return kindBinary
	case "bit":
		return kindBit
	case "":
		return kindUnknown
	default:
		return kindText
	}
}

// number reports whether a column of kind k is written as a JSON number.
func (k kind) number() bool {
	return k == kindInt || k == kindFloat || k == kindDouble || k == kindDecimal || k == kindBit
}

// normalize turns a snapshot row's text into the values the binlog gives
// for the same row, so both paths write the same key and fields: integers
// (also ZEROFILL text), FLOAT and DOUBLE (whose server text is not Go's)
// and BIT (big-endian bytes). Values it cannot read stay text.
func normalize(row []any, kinds []kind) []any {
	var out []any
	for i, v := range row {
		b, ok := v.([]byte)
		if !ok || i >= len(kinds) {
			continue
		}
		var typed any
		switch kinds[i] {
		case kindInt:
			if n, err := strconv.ParseInt(string(b), 10, 64); err == nil {
				typed = n
			} else if u, err := strconv.ParseUint(string(b), 10, 64); err == nil {
				typed = u
			}
		case kindFloat:
			if f, err := strconv.ParseFloat(string(b), 32); err == nil {
				typed = float32(f)
			}
		case kindDouble:
			if f, err := strconv.ParseFloat(string(b), 64); err == nil {
				typed = f
			}
		case kindBit:
			if len(b) <= 8 {
				var buf [8]byte
				copy(buf[8-len(b):], b)
				typed = binary.BigEndian.Uint64(buf[:])
			}
		}
		if typed == nil {
			continue
		}
		if out == nil {
			out = append([]any(nil), row...)
		}
		out[i] = typed
	}
	if out == nil {
		return row
	}
	return out
}

// hashFields is the HSET arguments of a row: column, text, ... with NULL
// columns left out.
func hashFields(rc *change.RowChange, row []any) ([]any, error) {
	args := make([]any, 0, 2*len(row))
	for i, v := range row {
		if v == nil {
			continue
		}
		s, err := text(v)
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", columnName(*rc, i), err)
		}
		args = append(args, columnName(*rc, i), s)
	}
	return args, nil
}

// jsonRow is a row as a JSON object in column order: numbers as numbers,
// text as strings, binary as base64, NULL as null. kinds (nil when the
// column types are unknown) says which []byte is text and which binary;
// without it a snapshot's []byte is text (it reads every value as text)
// and a binlog's is binary (only binary columns come as []byte).
func jsonRow(rc *change.RowChange, row []any, kinds []kind) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, v := range row {
		if i > 0 {
			buf.WriteByte(',')
		}
		name, _ := json.Marshal(columnName(*rc, i))
		buf.Write(name)
		buf.WriteByte(':')
		k := kindUnknown
		if i < len(kinds) {
			k = kinds[i]
		}
		val, err := jsonValue(v, k, rc.Op == "r")
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", columnName(*rc, i), err)
		}
		buf.Write(val)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

func jsonValue(v any, k kind, snapshot bool) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return []byte("null"), nil
	case int64, uint64, int:
		s, _ := text(x)
		return []byte(s), nil
	case float32:
		return jsonFloat(float64(x), 32), nil
	case float64:
		return jsonFloat(x, 64), nil
	case string:
		if k.number() && isNumber(x) {
			return []byte(x), nil
		}
		return json.Marshal(x)
	case []byte:
		switch {
		case k == kindBinary, k == kindUnknown && !snapshot:
			return json.Marshal(base64.StdEncoding.EncodeToString(x))
		case k.number() && isNumber(string(x)):
			return x, nil
		case !utf8.Valid(x):
			// Not text whatever the column says: base64 rather than
			// replacement characters that lose the value.
			return json.Marshal(base64.StdEncoding.EncodeToString(x))
		default:
			return json.Marshal(string(x))
		}
	default:
		return nil, fmt.Errorf("unsupported value type %T", v)
	}
}

func jsonFloat(f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		b, _ := json.Marshal(strconv.FormatFloat(f, 'g', -1, bits))
		return b
	}
	return []byte(strconv.FormatFloat(f, 'g', -1, bits))
}

// isNumber reports whether s is a JSON number (MySQL's text of an integer,
// DECIMAL or DOUBLE is one: "-12", "3.50", "1e20").
func isNumber(s string) bool {
	if s == "" || (s[0] != '-' && (s[0] < '0' || s[0] > '9')) {
		return false
	}
	var n json.Number
	return json.Unmarshal([]byte(s), &n) == nil
}
