// Package mysqlphys runs MariaDB's physical backup tools on a node's host
// (the local driver: processes on this machine; the same steps fit a
// Kubernetes Job): mariadb-backup --backup streamed as xbstream, its
// extraction and --prepare, a scratch mariadbd on a prepared directory for
// verification (CHECK TABLE, row counts, checksums) and for point-in-time
// replay of archived binlog segments with mariadb-binlog, leaving a data
// directory a new node starts from.
package mysqlphys

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"time"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
)

// Config names the tools (found on PATH or in /usr/sbin, /usr/bin when
// empty) and the scratch directory for temporary servers' sockets.
type Config struct {
	BackupBin   string // mariadb-backup
	MbstreamBin string // mbstream
	ServerBin   string // mariadbd
	BinlogBin   string // mariadb-binlog
	ClientBin   string // mariadb
	// ScratchDir holds temporary servers' sockets, pid files and logs.
	ScratchDir string
	// Parallel is mariadb-backup's --parallel (default 2).
	Parallel int
	Log      *slog.Logger
}

// Tools runs the backup tools.
type Tools struct{ cfg Config }

// New checks the tools exist (a clear error naming the missing one and the
// Debian package, mariadb-backup) and returns Tools.
func New(cfg Config) (*Tools, error) { panic("contract") }

// Source is the node a backup is taken from, on this host.
type Source struct {
	Address  string // host:port
	DataDir  string
	User     string
	Password string
}

// Result is what a backup reported.
type Result struct {
	// GTID is the gtid_binlog_pos the copy is consistent with.
	GTID         string
	DataBytes    int64
	ConsistentAt time.Time
}

// Backup streams a physical backup of src (mariadb-backup --backup
// --stream=xbstream) into w. It never stops writes on the source for
// longer than mariadb-backup's final short lock (BACKUP STAGE).
func (t *Tools) Backup(ctx context.Context, src Source, w io.Writer) (Result, error) { panic("contract") }

// Prepare extracts the xbstream read from r into dir (created, must not
// exist or be empty) and prepares it (mariadb-backup --prepare), returning
// the GTID position it is consistent with. A truncated or failing stream
// is an error, never a half-prepared success.
func (t *Tools) Prepare(ctx context.Context, r io.Reader, dir string) (gtid string, err error) {
	panic("contract")
}

// Inspect starts a scratch server on a prepared dir (no TCP, its own
// socket, binlog off), measures the tenant tables (every schema but the
// system ones: count; a sample of up to sample tables: rows, CHECKSUM
// TABLE, CHECK TABLE) and stops it cleanly.
func (t *Tools) Inspect(ctx context.Context, dir string, sample int) (backup.DataStats, error) {
	panic("contract")
}

// Replay makes a prepared dir the data of a new instance: it starts a
// scratch server on it, applies the binlog files in order from after
// start (a GTID position: the backup's), stopping before stopBefore
// (exclusive; zero: no bound) and after stopGTID (inclusive; "": no
// bound), clears replication state (gtid_slave_pos, master info, relay
// logs) and stops it cleanly. It returns the last GTID applied (start
// when none). With no files it only clears and stops.
func (t *Tools) Replay(ctx context.Context, dir string, files []string, start string, stopBefore time.Time, stopGTID string) (reached string, err error) {
	panic("contract")
}

// StatsOf measures the same stats as Inspect over a live server (a drill's
// scratch instance); sample picks the same tables when given Inspect's
// sample.
func StatsOf(ctx context.Context, db *sql.DB, sample []backup.TableStat, limit int) (backup.DataStats, error) {
	panic("contract")
}
