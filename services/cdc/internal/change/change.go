// Package change holds what flows from a capture (binlog or snapshot) to the
// sink: Kafka messages already encoded, in commit order, and the checkpoints
// that may be stored once Kafka acknowledged everything before them.
//
// canopy:domain
package change

import "time"

// Message is one Kafka record of a stream: a row change, a tombstone or a
// schema change, with its topic, key and value already encoded.
type Message struct {
	// Topic is the full topic name (cdc.<tenant>.<instance>.<db>.<table> or
	// cdc.<tenant>.<instance>.schema-changes).
	Topic string
	// Key is the row's primary key as a JSON object ({"id":1}); for a
	// schema change, {"databaseName":"app"}.
	Key []byte
	// Value is the Debezium envelope as JSON; nil is a tombstone.
	Value []byte
	// GTID and Row identify the change inside the binlog: Row counts the
	// row changes of the transaction from 0, so (GTID, Row) is unique and
	// consumers drop duplicates by it. Snapshot messages carry the
	// snapshot's GTID position and the row's index in the snapshot.
	GTID string
	Row  int
	// EventTime is when the change was committed on the source (binlog
	// header time; the snapshot's start for op "r"), for lag.
	EventTime time.Time
	// Change is the decoded row change and Schema the DDL, set (instead of
	// Value) only by a capture or snapshot run with Decoded; ServerID is
	// the server id of the transaction's GTID (who wrote it).
	Change   *RowChange
	Schema   *SchemaChange
	ServerID uint32
}

// Checkpoint is a position a stream can restart from. It is only stored
// after Kafka acknowledged every message of this batch and of all earlier
// batches.
type Checkpoint struct {
	// GTID is the MariaDB GTID position (gtid_slave_pos syntax, one
	// domain-server-seq per domain, comma separated) of the last complete
	// transaction; streaming resumes after it.
	GTID string
	// Snapshot is the snapshot's progress (opaque JSON of package
	// snapshot) while a snapshot runs; nil once streaming.
	Snapshot []byte
	// Events counts the row changes up to here (for the status).
	Events int64
	// Skipped counts the transactions a capture with SkipServerID passed
	// over since its Run started (a sync job's own writes coming back).
	Skipped int64
}

// Batch is the unit handed from a capture to the sink: a run of messages in
// commit order and, when it ends at a transaction or chunk boundary, the
// checkpoint that holds once they are all acknowledged. A batch never holds
// more than the capture's batch limit, so memory stays bounded however
// large a transaction is.
type Batch struct {
	Messages []Message
	// Checkpoint is nil when the batch ends inside a transaction.
	Checkpoint *Checkpoint
	// Reconcile marks changes a resumed initial load may already have
	// copied in their later state (a sync job's catch-up after the load):
	// a mismatch with the target is that, not a conflict, and the change
	// is applied as the source has it without recording one.
	Reconcile bool
}

// RowChange is a decoded row change, what a sync job applies to a target
// (captures fill it instead of the Kafka value when run with Decoded).
// Values are SQL argument values in Columns order, nil for NULL: int64,
// uint64, float32, float64, string or []byte (binary columns, and every
// value but integers that a snapshot read). Temporal values are their text
// in a '+00:00' session, ENUM and SET their member text, BIT an uint64.
type RowChange struct {
	DB, Table string
	// Op is "c" (insert), "u" (update), "d" (delete) or "r" (snapshot read).
	Op      string
	Columns []string
	// Key indexes Columns: the primary key's columns in key order; empty
	// for a table without a primary key.
	Key []int
	// Before is nil for c and r; After is nil for d.
	Before, After []any
}

// SchemaChange is a captured DDL statement (Message.Schema, decoded mode).
type SchemaChange struct {
	DB, Table, Statement string
}
