package capture

import "time"

// DDL is one schema change read from the binlog, recorded in the stream's
// schema history before the messages that follow it are emitted.
//
// Temporary: replaced at merge by the capture helper's definition.
type DDL struct {
	GTID, DB, Table, Statement string
	At                         time.Time
}
