// Package envelope turns MySQL/MariaDB rows into Debezium-compatible change
// events: the value mapping Debezium documents for its MySQL connector
// (decimal.handling.mode=string, time.precision.mode=adaptive_time_microseconds,
// bigint.unsigned.handling.mode=precise, binary.handling.mode=base64) and
// the {before, after, source, op, ts_ms} envelope, as JSON without the
// Kafka Connect schema part (value.converter.schemas.enable=false).
package envelope

// Column is one column of a captured table, as the binlog's table map
// (binlog_row_metadata=FULL) or information_schema.COLUMNS describes it.
type Column struct {
	Name string
	// Type is the column's type in information_schema.COLUMNS.DATA_TYPE
	// spelling, lower case: int, bigint, decimal, datetime, timestamp,
	// date, time, year, json, blob, varchar, enum, set, bit, ...
	Type     string
	Unsigned bool
	// Precision is the fractional-seconds precision of temporal types
	// and the precision of DECIMAL; Scale the scale of DECIMAL.
	Precision, Scale int
	// Values are the members of an ENUM or SET, in declaration order.
	Values []string
	// Length is the byte length of a BINARY(n) column: the binlog drops
	// its trailing zero bytes, SELECT returns them, Debezium keeps them.
	Length int
	// Binary is true for binary strings (BINARY, VARBINARY, BLOBs), whose
	// values are published in base64.
	Binary bool
	// Nullable is from the table definition.
	Nullable bool
	// Key is true for the columns of the primary key. Only the primary
	// key: it is all a FULL table map carries, and the snapshot must key
	// rows exactly as the binlog does. A table without one has no key.
	Key bool
}

// Table is a captured table's shape at one point of its history.
type Table struct {
	DB, Name string
	Columns  []Column
	// PrimaryKey lists the indexes (into Columns) of the primary key's
	// columns in key order, the order of the Kafka key's fields as in
	// Debezium. Empty: the Key columns in column order.
	PrimaryKey []int
}

// Row is one row image with its values already mapped to their Debezium
// JSON form; it marshals as a JSON object in column order.
type Row struct {
	Names  []string
	Values []any
}

// Source is Debezium's source block.
type Source struct {
	Version   string `json:"version"`
	Connector string `json:"connector"`
	// Name is the logical server name, the topic prefix cdc.<tenant>.<instance>.
	Name string `json:"name"`
	TsMs int64  `json:"ts_ms"`
	// Snapshot is "true", "first", "last" while snapshotting, else "false".
	Snapshot string `json:"snapshot"`
	DB       string `json:"db"`
	Table    string `json:"table"`
	ServerID uint32 `json:"server_id"`
	GTID     string `json:"gtid"`
	File     string `json:"file"`
	Pos      uint32 `json:"pos"`
	Row      int    `json:"row"`
	// Thread and Query are Debezium's; always null here.
	Thread *int64  `json:"thread"`
	Query  *string `json:"query"`
}

// Envelope is the value of a change event.
type Envelope struct {
	Before *Row   `json:"before"`
	After  *Row   `json:"after"`
	Source Source `json:"source"`
	Op     string `json:"op"`
	TsMs   int64  `json:"ts_ms"`
	// Transaction is Debezium's transaction block; always null here.
	Transaction *struct{} `json:"transaction"`
}

// Ops.
const (
	OpCreate = "c"
	OpUpdate = "u"
	OpDelete = "d"
	OpRead   = "r"
)
