package envelope

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ErrUnsupported is returned (wrapped in a *ValueError) for a column type
// or a value this package has no Debezium mapping for. Callers treat it as
// poison: the row cannot be published faithfully, so it must not be
// published at all.
var ErrUnsupported = errors.New("unsupported value")

// ValueError says which column of a row could not be mapped.
type ValueError struct {
	Column string
	Type   string
	Err    error
}

func (e *ValueError) Error() string {
	return fmt.Sprintf("column %s (%s): %v", e.Column, e.Type, e.Err)
}

func (e *ValueError) Unwrap() error { return e.Err }

// MarshalJSON writes the row as one JSON object, in column order (a Go map
// would sort the names).
func (r Row) MarshalJSON() ([]byte, error) { return r.appendJSON(nil) }

func (r Row) appendJSON(b []byte) ([]byte, error) {
	b = append(b, '{')
	var err error
	for i, n := range r.Names {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, n)
		b = append(b, ':')
		if b, err = appendValue(b, r.Values[i]); err != nil {
			return nil, fmt.Errorf("column %s: %w", n, err)
		}
	}
	return append(b, '}'), nil
}

// appendValue encodes the values the mapping produces without
// reflection on the hot path; anything else goes through encoding/json.
func appendValue(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case json.Number:
		return append(b, x...), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case string:
		return appendString(b, x), nil
	}
	enc, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(b, enc...), nil
}

// appendString writes s as encoding/json would: plain ASCII directly,
// anything needing escapes or UTF-8 checks through json.Marshal.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			enc, _ := json.Marshal(s) // strings always marshal
			return append(b, enc...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// MarshalJSON writes the envelope in Debezium's field order.
func (e Envelope) MarshalJSON() ([]byte, error) { return e.Encode() }

// Encode is MarshalJSON without encoding/json's re-validation of the
// result: what a capture calls once per row change.
func (e Envelope) Encode() ([]byte, error) {
	b := make([]byte, 0, 512)
	var err error
	b = append(b, `{"before":`...)
	if b, err = appendRow(b, e.Before); err != nil {
		return nil, err
	}
	b = append(b, `,"after":`...)
	if b, err = appendRow(b, e.After); err != nil {
		return nil, err
	}
	b = append(b, `,"source":`...)
	b = e.Source.appendJSON(b)
	b = append(b, `,"op":`...)
	b = appendString(b, e.Op)
	b = append(b, `,"ts_ms":`...)
	b = strconv.AppendInt(b, e.TsMs, 10)
	b = append(b, `,"transaction":null}`...)
	return b, nil
}

func appendRow(b []byte, r *Row) ([]byte, error) {
	if r == nil {
		return append(b, "null"...), nil
	}
	return r.appendJSON(b)
}

func (s Source) appendJSON(b []byte) []byte {
	b = append(b, `{"version":`...)
	b = appendString(b, s.Version)
	b = append(b, `,"connector":`...)
	b = appendString(b, s.Connector)
	b = append(b, `,"name":`...)
	b = appendString(b, s.Name)
	b = append(b, `,"ts_ms":`...)
	b = strconv.AppendInt(b, s.TsMs, 10)
	b = append(b, `,"snapshot":`...)
	b = appendString(b, s.Snapshot)
	b = append(b, `,"db":`...)
	b = appendString(b, s.DB)
	b = append(b, `,"table":`...)
	b = appendString(b, s.Table)
	b = append(b, `,"server_id":`...)
	b = strconv.AppendUint(b, uint64(s.ServerID), 10)
	b = append(b, `,"gtid":`...)
	b = appendString(b, s.GTID)
	b = append(b, `,"file":`...)
	b = appendString(b, s.File)
	b = append(b, `,"pos":`...)
	b = strconv.AppendUint(b, uint64(s.Pos), 10)
	b = append(b, `,"row":`...)
	b = strconv.AppendInt(b, int64(s.Row), 10)
	b = append(b, `,"thread":`...)
	if s.Thread != nil {
		b = strconv.AppendInt(b, *s.Thread, 10)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"query":`...)
	if s.Query != nil {
		b = appendString(b, *s.Query)
	} else {
		b = append(b, "null"...)
	}
	return append(b, '}')
}

// FromBinlog maps a row image as go-mysql's replication package decodes
// it (RowsEvent.Rows[i], one value per column of the table map) to a Row.
// It expects the syncer configured with ParseTime=false, UseDecimal=false
// and TimestampStringLocation=time.UTC: temporal values then arrive as the
// same text a SELECT in a '+00:00' session returns, DECIMAL as its exact
// digits, and both paths share one parser.
func (t *Table) FromBinlog(values []any) (Row, error) {
	if len(values) != len(t.Columns) {
		return Row{}, fmt.Errorf("table %s.%s: row has %d values, table map %d columns", t.DB, t.Name, len(values), len(t.Columns))
	}
	r := Row{Names: make([]string, len(values)), Values: make([]any, len(values))}
	for i, v := range values {
		c := &t.Columns[i]
		r.Names[i] = c.Name
		out, err := c.fromBinlog(v)
		if err != nil {
			return Row{}, &ValueError{Column: c.Name, Type: c.Type, Err: err}
		}
		r.Values[i] = out
	}
	return r, nil
}

// FromText maps a row read with SELECT (each column scanned into a
// sql.RawBytes, nil for NULL, in Columns order) to a Row. For the same
// stored value FromText and FromBinlog give the same JSON, provided the
// session ran with time_zone='+00:00' (TIMESTAMP text depends on it).
func (t *Table) FromText(values [][]byte) (Row, error) {
	if len(values) != len(t.Columns) {
		return Row{}, fmt.Errorf("table %s.%s: row has %d values, table %d columns", t.DB, t.Name, len(values), len(t.Columns))
	}
	r := Row{Names: make([]string, len(values)), Values: make([]any, len(values))}
	for i, v := range values {
		c := &t.Columns[i]
		r.Names[i] = c.Name
		if v == nil {
			continue
		}
		out, err := c.fromText(v)
		if err != nil {
			return Row{}, &ValueError{Column: c.Name, Type: c.Type, Err: err}
		}
		r.Values[i] = out
	}
	return r, nil
}

// Key encodes the key columns of r as a JSON object, the Kafka key, in
// primary key order. It returns nil (no key, like Debezium for a table
// without a primary key) when the table has no key columns.
func (t *Table) Key(r Row) ([]byte, error) {
	order := t.PrimaryKey
	if len(order) == 0 {
		for i, c := range t.Columns {
			if c.Key {
				order = append(order, i)
			}
		}
	}
	var k Row
	for _, i := range order {
		if i < 0 || i >= len(t.Columns) {
			return nil, fmt.Errorf("table %s.%s: key column %d of %d", t.DB, t.Name, i, len(t.Columns))
		}
		c := t.Columns[i]
		if i >= len(r.Names) || r.Names[i] != c.Name {
			return nil, fmt.Errorf("table %s.%s: row does not match the table's columns", t.DB, t.Name)
		}
		k.Names = append(k.Names, c.Name)
		k.Values = append(k.Values, r.Values[i])
	}
	if len(k.Names) == 0 {
		return nil, nil
	}
	return k.MarshalJSON()
}

// kind groups the column types by their Debezium mapping.
type kind int

const (
	kindUnsupported kind = iota
	kindInt
	kindDecimal
	kindFloat
	kindDouble
	kindBit
	kindDate
	kindDatetime
	kindTimestamp
	kindTime
	kindYear
	kindString
	kindEnum
	kindSet
)

func (c *Column) kind() kind {
	switch c.Type {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint":
		return kindInt
	case "decimal", "numeric":
		return kindDecimal
	case "float":
		return kindFloat
	case "double", "real":
		return kindDouble
	case "bit":
		return kindBit
	case "date":
		return kindDate
	case "datetime":
		return kindDatetime
	case "timestamp":
		return kindTimestamp
	case "time":
		return kindTime
	case "year":
		return kindYear
	case "char", "varchar", "tinytext", "text", "mediumtext", "longtext", "json",
		"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
		return kindString
	case "enum":
		return kindEnum
	case "set":
		return kindSet
	}
	return kindUnsupported
}

// intBits is the storage width of an integer type, to read go-mysql's
// signed values back as unsigned.
func intBits(typ string) int {
	switch typ {
	case "tinyint":
		return 8
	case "smallint":
		return 16
	case "mediumint":
		return 24
	case "int", "integer":
		return 32
	}
	return 64
}

func (c *Column) fromBinlog(v any) (any, error) {
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
			bits := intBits(c.Type)
			u := uint64(n)
			if bits < 64 {
				u &= 1<<bits - 1
			}
			return json.Number(strconv.FormatUint(u, 10)), nil
		}
		return json.Number(strconv.FormatInt(n, 10)), nil
	case kindYear:
		n, ok := toInt64(v)
		if !ok {
			return nil, fmt.Errorf("%w: year as %T", ErrUnsupported, v)
		}
		return json.Number(strconv.FormatInt(n, 10)), nil
	case kindFloat:
		if f, ok := v.(float32); ok {
			return checkFloat(float64(f), f)
		}
	case kindDouble:
		if f, ok := v.(float64); ok {
			return checkFloat(f, f)
		}
	case kindBit:
		n, ok := toInt64(v)
		if !ok {
			return nil, fmt.Errorf("%w: bit as %T", ErrUnsupported, v)
		}
		return c.bits(uint64(n)), nil
	case kindEnum:
		return c.enumMember(v)
	case kindSet:
		return c.setMembers(v)
	case kindDecimal, kindDate, kindDatetime, kindTimestamp, kindTime, kindString:
		switch s := v.(type) {
		case string:
			return c.fromText([]byte(s))
		case []byte:
			return c.fromText(s)
		}
	default:
		return nil, fmt.Errorf("%w: type %s", ErrUnsupported, c.Type)
	}
	return nil, fmt.Errorf("%w: %s as %T", ErrUnsupported, c.Type, v)
}

func (c *Column) fromText(b []byte) (any, error) {
	s := string(b)
	switch c.kind() {
	case kindInt, kindYear:
		if c.Unsigned {
			if _, err := strconv.ParseUint(s, 10, 64); err != nil {
				return nil, err
			}
		} else if _, err := strconv.ParseInt(s, 10, 64); err != nil {
			return nil, err
		}
		return json.Number(s), nil
	case kindDecimal:
		if _, err := strconv.ParseFloat(s, 64); err != nil {
			return nil, fmt.Errorf("decimal %q: %w", s, err)
		}
		return s, nil
	case kindFloat:
		f, err := strconv.ParseFloat(s, 32)
		if err != nil {
			return nil, err
		}
		return checkFloat(f, float32(f))
	case kindDouble:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, err
		}
		return checkFloat(f, f)
	case kindBit:
		if len(b) > 8 {
			return nil, fmt.Errorf("bit value of %d bytes", len(b))
		}
		var n uint64
		for _, x := range b {
			n = n<<8 | uint64(x)
		}
		return c.bits(n), nil
	case kindDate:
		if strings.HasPrefix(s, "0000-00-00") {
			return c.zero(int64(0)), nil
		}
		return parseDate(s)
	case kindDatetime:
		t, zero, err := parseDatetime(s)
		if err != nil {
			return nil, err
		}
		if zero {
			return c.zero(int64(0)), nil
		}
		// adaptive_time_microseconds: io.debezium.time.Timestamp (ms) up
		// to precision 3, io.debezium.time.MicroTimestamp beyond.
		if c.Precision <= 3 {
			return t.UnixMilli(), nil
		}
		return t.UnixMicro(), nil
	case kindTimestamp:
		t, zero, err := parseDatetime(s)
		if err != nil {
			return nil, err
		}
		if zero {
			return c.zero(zoned(time.Unix(0, 0), c.Precision)), nil
		}
		return zoned(t, c.Precision), nil
	case kindTime:
		return parseTime(s)
	case kindString:
		if c.Type == "binary" && len(b) < c.Length {
			b = append(b[:len(b):len(b)], make([]byte, c.Length-len(b))...)
		}
		if c.Binary {
			return base64.StdEncoding.EncodeToString(b), nil
		}
		return s, nil
	case kindEnum, kindSet:
		return s, nil
	}
	return nil, fmt.Errorf("%w: type %s", ErrUnsupported, c.Type)
}

// bits is Debezium's BIT mapping: BIT(1) a boolean, BIT(n>1)
// io.debezium.data.Bits, the bytes little-endian, (n+7)/8 of them.
func (c *Column) bits(n uint64) any {
	if c.Precision <= 1 {
		return n != 0
	}
	size := (c.Precision + 7) / 8
	out := make([]byte, size)
	for i := range out {
		out[i] = byte(n >> (8 * i))
	}
	return base64.StdEncoding.EncodeToString(out)
}

func checkFloat(f float64, v any) (any, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("%w: %v", ErrUnsupported, f)
	}
	return v, nil
}

func toInt64(v any) (int64, bool) {
	switch n := v.(type) {
	case int8:
		return int64(n), true
	case int16:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case int:
		return int64(n), true
	case uint8:
		return int64(n), true
	case uint16:
		return int64(n), true
	case uint32:
		return int64(n), true
	case uint64:
		return int64(n), true
	}
	return 0, false
}

// zero is a zero date/datetime/timestamp ('0000-00-00...') as Debezium
// publishes it: null when the column is nullable, else the epoch.
func (c *Column) zero(epoch any) any {
	if c.Nullable {
		return nil
	}
	return epoch
}

// parseDate maps 'YYYY-MM-DD' to io.debezium.time.Date, days since the
// epoch.
func parseDate(s string) (any, error) {
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return nil, err
	}
	return t.Unix() / 86400, nil
}

// parseDatetime reads 'YYYY-MM-DD HH:MM:SS[.ffffff]' as UTC, without any
// time zone conversion (DATETIME has none; TIMESTAMP text is UTC in our
// sessions and the binlog syncer formats it in UTC).
func parseDatetime(s string) (time.Time, bool, error) {
	if strings.HasPrefix(s, "0000-00-00") {
		return time.Time{}, true, nil
	}
	t, err := time.ParseInLocation("2006-01-02 15:04:05.999999999", s, time.UTC)
	return t, false, err
}

// zoned formats io.debezium.time.ZonedTimestamp: ISO-8601 in UTC with the
// column's fractional digits.
func zoned(t time.Time, precision int) string {
	layout := "2006-01-02T15:04:05"
	if precision > 0 {
		layout += "." + strings.Repeat("0", min(precision, 9))
	}
	return t.UTC().Format(layout) + "Z"
}

// parseTime maps '[-]HHH:MM:SS[.ffffff]' to io.debezium.time.MicroTime,
// microseconds, negative for a negative TIME.
func parseTime(s string) (any, error) {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	hms, frac, _ := strings.Cut(s, ".")
	parts := strings.Split(hms, ":")
	if len(parts) != 3 {
		return nil, fmt.Errorf("time %q", s)
	}
	var us int64
	for i, mul := range []int64{3600, 60, 1} {
		n, err := strconv.ParseInt(parts[i], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("time %q: %w", s, err)
		}
		us += n * mul * 1e6
	}
	if frac != "" {
		if len(frac) > 6 {
			return nil, fmt.Errorf("time %q: fraction beyond microseconds", s)
		}
		n, err := strconv.ParseInt(frac+strings.Repeat("0", 6-len(frac)), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("time %q: %w", s, err)
		}
		us += n
	}
	if neg {
		us = -us
	}
	return us, nil
}

// enumMember maps an ENUM's binlog index to its member text (index 0 is
// the empty invalid-value member MySQL stores for a bad value).
func (c *Column) enumMember(v any) (any, error) {
	n, ok := toInt64(v)
	if !ok {
		return nil, fmt.Errorf("%w: enum as %T", ErrUnsupported, v)
	}
	if n == 0 {
		return "", nil
	}
	if n < 0 || int(n) > len(c.Values) {
		return nil, fmt.Errorf("enum index %d out of %d values", n, len(c.Values))
	}
	return c.Values[n-1], nil
}

// setMembers maps a SET's binlog bitmask to its members, comma separated.
func (c *Column) setMembers(v any) (any, error) {
	n, ok := toInt64(v)
	if !ok {
		return nil, fmt.Errorf("%w: set as %T", ErrUnsupported, v)
	}
	if uint64(n)>>uint(len(c.Values)) != 0 {
		return nil, fmt.Errorf("set bits %#x beyond %d values", n, len(c.Values))
	}
	var parts []string
	for i, name := range c.Values {
		if uint64(n)&(1<<uint(i)) != 0 {
			parts = append(parts, name)
		}
	}
	return strings.Join(parts, ","), nil
}
