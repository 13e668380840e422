package apply

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/canopy-platform/canopy/services/cdc/internal/change"
)

// wireChange is a RowChange as conflicts store it.
type wireChange struct {
	DB      string            `json:"db"`
	Table   string            `json:"table"`
	Op      string            `json:"op"`
	Columns []string          `json:"columns"`
	Key     []int             `json:"key"`
	Before  []json.RawMessage `json:"before"`
	After   []json.RawMessage `json:"after"`
}

// EncodeChange writes rc as JSON for conflict storage: numbers as numbers,
// text as strings, NULL as null, and bytes that are not UTF-8 as
// {"base64": "..."}.
func EncodeChange(rc change.RowChange) (json.RawMessage, error) {
	w := wireChange{DB: rc.DB, Table: rc.Table, Op: rc.Op, Columns: rc.Columns, Key: rc.Key}
	var err error
	if w.Before, err = encodeValues(rc.Before); err != nil {
		return nil, fmt.Errorf("encode change of %s.%s: before: %w", rc.DB, rc.Table, err)
	}
	if w.After, err = encodeValues(rc.After); err != nil {
		return nil, fmt.Errorf("encode change of %s.%s: after: %w", rc.DB, rc.Table, err)
	}
	b, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("encode change of %s.%s: %w", rc.DB, rc.Table, err)
	}
	return b, nil
}

// DecodeChange reads what EncodeChange wrote. Integers come back as int64
// (uint64 beyond its range), other numbers as float64, strings as string
// and base64 objects as []byte: the same SQL arguments.
func DecodeChange(b json.RawMessage) (change.RowChange, error) {
	var w wireChange
	if err := json.Unmarshal(b, &w); err != nil {
		return change.RowChange{}, fmt.Errorf("decode change: %w", err)
	}
	rc := change.RowChange{DB: w.DB, Table: w.Table, Op: w.Op, Columns: w.Columns, Key: w.Key}
	var err error
	if rc.Before, err = decodeValues(w.Before); err != nil {
		return change.RowChange{}, fmt.Errorf("decode change: before: %w", err)
	}
	if rc.After, err = decodeValues(w.After); err != nil {
		return change.RowChange{}, fmt.Errorf("decode change: after: %w", err)
	}
	return rc, nil
}

func encodeValues(vs []any) ([]json.RawMessage, error) {
	if vs == nil {
		return nil, nil
	}
	out := make([]json.RawMessage, len(vs))
	for i, v := range vs {
		b, err := encodeValue(v)
		if err != nil {
			return nil, fmt.Errorf("value %d: %w", i, err)
		}
		out[i] = b
	}
	return out, nil
}

func decodeValues(raw []json.RawMessage) ([]any, error) {
	if raw == nil {
		return nil, nil
	}
	out := make([]any, len(raw))
	for i, r := range raw {
		v, err := decodeValue(r)
		if err != nil {
			return nil, fmt.Errorf("value %d: %w", i, err)
		}
		out[i] = v
	}
	return out, nil
}

type base64Value struct {
	Base64 string `json:"base64"`
}

func encodeValue(v any) (json.RawMessage, error) {
	switch v := v.(type) {
	case nil:
		return json.RawMessage("null"), nil
	case int64:
		return json.RawMessage(strconv.FormatInt(v, 10)), nil
	case uint64:
		return json.RawMessage(strconv.FormatUint(v, 10)), nil
	case int:
		return json.RawMessage(strconv.Itoa(v)), nil
	case float32:
		return encodeFloat(float64(v), 32)
	case float64:
		return encodeFloat(v, 64)
	case string:
		if !utf8.ValidString(v) {
			return json.Marshal(base64Value{base64.StdEncoding.EncodeToString([]byte(v))})
		}
		return json.Marshal(v)
	case []byte:
		if !utf8.Valid(v) {
			return json.Marshal(base64Value{base64.StdEncoding.EncodeToString(v)})
		}
		return json.Marshal(string(v))
	case bool:
		return json.Marshal(v)
	default:
		return nil, fmt.Errorf("unsupported value type %T", v)
	}
}

func encodeFloat(f float64, bits int) (json.RawMessage, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("float %v has no JSON form", f)
	}
	s := strconv.FormatFloat(f, 'g', -1, bits)
	if !strings.ContainsAny(s, ".eE") {
		// Keep it a float when read back.
		s += ".0"
	}
	return json.RawMessage(s), nil
}

func decodeValue(r json.RawMessage) (any, error) {
	r = bytes.TrimSpace(r)
	if len(r) == 0 {
		return nil, errors.New("empty value")
	}
	switch r[0] {
	case 'n':
		return nil, nil
	case '"':
		var s string
		err := json.Unmarshal(r, &s)
		return s, err
	case '{':
		var b base64Value
		if err := json.Unmarshal(r, &b); err != nil {
			return nil, err
		}
		return base64.StdEncoding.DecodeString(b.Base64)
	case 't', 'f':
		var b bool
		err := json.Unmarshal(r, &b)
		return b, err
	}
	s := string(r)
	if strings.ContainsAny(s, ".eE") {
		return strconv.ParseFloat(s, 64)
	}
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return i, nil
	}
	return strconv.ParseUint(s, 10, 64)
}

// encodeObject writes names → values as a JSON object in names' order.
func encodeObject(names []string, values []any) (json.RawMessage, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(n)
		b.Write(k)
		b.WriteByte(':')
		v, err := encodeValue(values[i])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}
