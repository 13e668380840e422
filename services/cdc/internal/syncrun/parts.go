package syncrun

import (
	"context"
	"database/sql"
	"log/slog"
	"time"

	"github.com/canopy-platform/canopy/services/cdc/internal/capture"
	"github.com/canopy-platform/canopy/services/cdc/internal/change"
	"github.com/canopy-platform/canopy/services/cdc/internal/snapshot"
	"github.com/canopy-platform/canopy/services/cdc/internal/syncjob"
)

// The parts a direction is made of are taken as functions so tests run the
// Manager's logic with fakes; the defaults are capture.Run, snapshot.Run,
// apply.Open, cache.Open and verify.Run in decoded mode (parts_merged.go).

// CaptureSpec is one direction's decoded binlog capture: capture.Config
// with Decoded set.
type CaptureSpec struct {
	Source capture.Source
	// ServerID is the replica server id presented to the source (one per
	// direction); SkipServerID is the job's own server id, whose
	// transactions the capture skips (they are the job's echo).
	ServerID     uint32
	SkipServerID uint32
	Prefix       string
	Include      func(db, table string) bool
	Start        string
	FromStart    bool
	MaxBatch     int
	Logger       *slog.Logger
}

// CaptureFunc runs a decoded capture (capture.Run with Decoded).
type CaptureFunc func(ctx context.Context, s CaptureSpec, out chan<- change.Batch) error

// LoadSpec is the initial load of a direction: snapshot.Config with Decoded
// set.
type LoadSpec struct {
	Source    capture.Source
	Prefix    string
	Include   func(db, table string) bool
	ChunkSize int
	Logger    *slog.Logger
}

// LoadFunc runs a decoded snapshot (snapshot.Run with Decoded).
type LoadFunc func(ctx context.Context, s LoadSpec, resume *snapshot.Progress, out chan<- change.Batch) (snapshot.Progress, error)

// MySQLTarget is what opening a MySQL applier needs (apply.Config).
type MySQLTarget struct {
	JobID, Tenant string
	From, To      string
	Target        capture.Source
	ServerID      uint32
	Strategy      syncjob.Strategy
	Column        string
	SourceFirst   bool
	DDL           syncjob.DDLMode
	Schema        func(ctx context.Context, db, table string) (string, error)
	Conflicts     syncjob.Conflicts
	Logger        *slog.Logger
}

// RedisTarget is what opening a Redis cache needs (cache.Config).
type RedisTarget struct {
	JobID, Tenant, From      string
	Addr, Username, Password string
	KeyPattern               string
	Format                   syncjob.Format
	TTL                      time.Duration
	// SourceDB is a pool on a node of the source, for the column types
	// that let a load's rows (all text) be cached as the binlog's typed
	// rows are (cache.ColumnTypesFrom).
	SourceDB func(ctx context.Context) (*sql.DB, error)
	Logger   *slog.Logger
}

// Target is an open applier of one direction: a MySQL applier or a cache.
type Target interface {
	syncjob.Applier
	// Drop removes the direction's watermark (the job is deleted).
	Drop(ctx context.Context) error
}

// Resolver is a target that can force a manual conflict's stored change
// (the MySQL applier).
type Resolver interface {
	Resolve(ctx context.Context, c syncjob.Conflict, use syncjob.Resolution) error
}

// OpenMySQLFunc opens a MySQL applier (apply.Open).
type OpenMySQLFunc func(ctx context.Context, t MySQLTarget) (Target, error)

// OpenRedisFunc opens a Redis cache (cache.Open).
type OpenRedisFunc func(ctx context.Context, t RedisTarget) (Target, error)

// VerifySpec is one verification (verify.Config).
type VerifySpec struct {
	Source, Target capture.Source
	Tables         []string
	TargetDB       func(db string) string
	ChunkSize      int
	Parallel       int
	Settle         func(ctx context.Context, pos string) error
	Rechecks       int
	Repair         bool
	RepairServerID uint32
	Logger         *slog.Logger
}

// VerifyFunc runs a verification (verify.Run).
type VerifyFunc func(ctx context.Context, s VerifySpec) (syncjob.Report, error)

// PositionFunc returns a node's @@gtid_binlog_pos.
type PositionFunc func(ctx context.Context, src capture.Source) (string, error)

// TablesFunc lists the "db.table" base tables of a node that include
// selects.
type TablesFunc func(ctx context.Context, src capture.Source, include func(db, table string) bool) ([]string, error)

// SchemaFunc returns SHOW CREATE TABLE of db.table on a node.
type SchemaFunc func(ctx context.Context, src capture.Source, db, table string) (string, error)

// Option replaces a part of the Manager (tests).
type Option func(*Manager)

// WithCapture replaces the decoded capture.Run.
func WithCapture(fn CaptureFunc) Option { return func(m *Manager) { m.capture = fn } }

// WithSnapshot replaces the decoded snapshot.Run of the initial load.
func WithSnapshot(fn LoadFunc) Option { return func(m *Manager) { m.load = fn } }

// WithOpenMySQL replaces apply.Open.
func WithOpenMySQL(fn OpenMySQLFunc) Option { return func(m *Manager) { m.openMySQL = fn } }

// WithOpenRedis replaces cache.Open.
func WithOpenRedis(fn OpenRedisFunc) Option { return func(m *Manager) { m.openRedis = fn } }

// WithVerify replaces verify.Run.
func WithVerify(fn VerifyFunc) Option { return func(m *Manager) { m.verify = fn } }

// WithPosition replaces the read of a node's @@gtid_binlog_pos.
func WithPosition(fn PositionFunc) Option { return func(m *Manager) { m.position = fn } }

// WithTables replaces the listing of a source's tables (verification).
func WithTables(fn TablesFunc) Option { return func(m *Manager) { m.tables = fn } }

// WithSchema replaces SHOW CREATE TABLE on a source.
func WithSchema(fn SchemaFunc) Option { return func(m *Manager) { m.schema = fn } }

// WithNewID replaces the id generator of scheduled verifications.
func WithNewID(fn func() string) Option { return func(m *Manager) { m.newID = fn } }
