// Package binlogarchive archives a MariaDB primary's binary log
// continuously: it reads the log as a replica does (COM_BINLOG_DUMP with
// GTID, go-mysql's BinlogSyncer) and cuts it into segments of whole
// transactions, each a complete binlog file that mariadb-binlog reads,
// flushed every second or so, so that the archive lags the primary by
// seconds. After an error it asks where the primary is again and resumes
// at the last committed segment's GTID position: a failover's new primary
// continues the archive without a gap.
package binlogarchive

import (
	"context"
	"log/slog"
	"time"
)

// Source is where to read the binary log from.
type Source struct {
	NodeID   string
	Address  string
	User     string
	Password string
}

// Segment is one cut of the log, ready to store.
type Segment struct {
	// Data is a binlog file: magic, format description, whole transactions.
	Data         []byte
	StartPos     string
	EndPos       string
	FirstAt      time.Time
	LastAt       time.Time
	Transactions int
	SourceNode   string
}

// Config tunes an archiver.
type Config struct {
	// ServerID is the replica server id the archiver presents (unique per
	// archiver among the primary's replicas).
	ServerID uint32
	// FlushEvery cuts a segment once its first transaction is this old
	// (default 1s); MaxBytes once it is this large (default 16 MiB).
	FlushEvery time.Duration
	MaxBytes   int
	// Backoff bounds reconnect waits (default 200ms .. 5s).
	MinBackoff, MaxBackoff time.Duration
	Log                    *slog.Logger
}

// Archiver archives one instance's binary log.
type Archiver struct{ cfg Config }

// New returns an archiver.
func New(cfg Config) *Archiver { panic("contract") }

// Locate returns the instance's current primary; the archiver calls it
// before every connection.
type Locate func(ctx context.Context) (Source, error)

// Sink stores a segment; once it returns nil the segment is committed and
// the next one starts at its EndPos. An error is retried with the same
// segment.
type Sink func(ctx context.Context, seg Segment) error

// Run archives from after start (a GTID position; "": the oldest binlog the
// primary has) until ctx ends, returning nil then. Errors from locate, the
// connection or a failed sink are retried with backoff; an unrecoverable
// one (the primary purged binlogs the archive needs: a gap) is returned.
func (a *Archiver) Run(ctx context.Context, locate Locate, start string, sink Sink) error { panic("contract") }

// Stats is an archiver's progress, for the lag metric.
type Stats struct {
	// Committed is the EndPos of the last committed segment.
	Committed string
	// CommittedAt is the binlog time of its last transaction.
	CommittedAt time.Time
	// PendingSince is the binlog time of the oldest transaction read but
	// not committed yet (zero: none).
	PendingSince time.Time
	Connected    bool
}

// Stats reports progress; safe for concurrent use.
func (a *Archiver) Stats() Stats { panic("contract") }

// ErrGap is returned when the primary no longer has the binlogs after the
// archive's position.
var ErrGap = errGap{}

type errGap struct{}

func (errGap) Error() string { return "binlog archive gap: the primary purged binlogs after the archived position" }
