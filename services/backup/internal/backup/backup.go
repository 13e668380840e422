// Package backup is the backup service's domain: backups, archived binlog
// segments, policies (schedule and retention), restore planning and the
// restore window, restore jobs and drill reports. It knows no SQL, HTTP,
// Kafka or process: adapters (backupstore, repo, mysqlphys, binlogarchive,
// httpapi) do.
package backup

import (
	"errors"
	"time"
)

// Engine names a database engine, as provisioning does.
type Engine string

// Engines with backups.
const (
	EngineMySQL Engine = "mysql"
	EngineRedis Engine = "redis"
)

// Kind is what a backup holds.
type Kind string

// Kinds of backups.
const (
	// KindFull is a physical MySQL backup (mariadb-backup, xbstream).
	KindFull Kind = "full"
	// KindSnapshot is a Redis RDB snapshot.
	KindSnapshot Kind = "snapshot"
)

// Status is a backup's state.
type Status string

// States of a backup.
const (
	StatusRunning   Status = "running"
	StatusCompleted Status = "completed"
	StatusFailed    Status = "failed"
	// StatusExpired: retention removed its objects; the row is kept for audit.
	StatusExpired Status = "expired"
)

// Trigger says why a backup was taken.
type Trigger string

// Triggers of a backup.
const (
	TriggerScheduled Trigger = "scheduled"
	TriggerOnDemand  Trigger = "on_demand"
)

// Object is one object in a repository: its key, the SHA-256 (hex) and size
// of the stored (compressed, encrypted) bytes, and the size before.
type Object struct {
	Key       string `json:"key"`
	SHA256    string `json:"sha256"`
	Size      int64  `json:"size"`
	PlainSize int64  `json:"plain_size"`
}

// TableStat is what a verification measured of one table.
type TableStat struct {
	Schema string `json:"schema"`
	Table  string `json:"table"`
	Rows   int64  `json:"rows"`
	// Checksum is CHECKSUM TABLE's value.
	Checksum uint64 `json:"checksum"`
	// CheckOK is CHECK TABLE's verdict.
	CheckOK bool `json:"check_ok"`
}

// DataStats is what a verification or a drill measured of a data set: the
// number of tenant tables (MySQL) or keys (Redis) and a sample of tables.
type DataStats struct {
	Tables int         `json:"tables"`
	Keys   int64       `json:"keys,omitempty"`
	Sample []TableStat `json:"sample,omitempty"`
}

// Backup is one full backup (MySQL) or snapshot (Redis) of an instance.
type Backup struct {
	ID         string  `json:"id"`
	TenantID   string  `json:"tenant_id"`
	InstanceID string  `json:"instance_id"`
	Engine     Engine  `json:"engine"`
	Kind       Kind    `json:"kind"`
	Trigger    Trigger `json:"trigger"`
	Status     Status  `json:"status"`
	// NodeID is the node it was taken from; FromReplica whether that node
	// was a replica (never blocking the primary when there is one).
	NodeID      string    `json:"node_id"`
	FromReplica bool      `json:"from_replica"`
	StartedAt   time.Time `json:"started_at"`
	// FinishedAt is zero while running.
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// DataBytes is the size of the data the backup copied; StoredBytes what
	// it takes in the repository (compressed and encrypted).
	DataBytes   int64 `json:"data_bytes"`
	StoredBytes int64 `json:"stored_bytes"`
	// GTID is the MariaDB GTID position the backup is consistent with
	// (gtid_binlog_pos of the node it came from, e.g. "0-1-42"); binlog
	// replay for a point in time starts after it.
	GTID string `json:"gtid,omitempty"`
	// ConsistentAt is the time the data corresponds to: the backup's end
	// (MySQL: the moment its copy was made consistent; Redis: LASTSAVE).
	ConsistentAt time.Time `json:"consistent_at,omitzero"`
	// Offset is a Redis snapshot's master_repl_offset.
	Offset int64 `json:"offset,omitempty"`
	// Verified says the backup was prepared and checked (CHECK TABLE,
	// stats measured) after it was taken.
	Verified   bool       `json:"verified"`
	VerifiedAt time.Time  `json:"verified_at,omitzero"`
	Stats      *DataStats `json:"stats,omitempty"`
	// Objects are the backup's objects in the repository, in order.
	Objects []Object `json:"objects,omitempty"`
	// WrappedKey is the backup's data key sealed by the secrets keyring
	// (additional data: the backup id). Never shown by the API.
	WrappedKey []byte `json:"-"`
	// Copies names the repositories holding the objects ("primary",
	// "secondary").
	Copies []string `json:"copies,omitempty"`
	// Monthly marks the backup kept as its month's.
	Monthly bool   `json:"monthly"`
	Error   string `json:"error,omitempty"`
}

// Segment is one archived piece of an instance's binary log: a complete
// binlog file (magic, format description, whole transactions) that
// mariadb-binlog reads.
type Segment struct {
	TenantID   string `json:"tenant_id"`
	InstanceID string `json:"instance_id"`
	// Seq orders an instance's segments from 1.
	Seq    int64  `json:"seq"`
	Object Object `json:"object"`
	// WrappedKey is the segment's data key, sealed (additional data: the
	// object key).
	WrappedKey []byte `json:"-"`
	// StartPos is the GTID position before the segment's first
	// transaction, EndPos after its last: segment n+1 starts where n ends.
	StartPos string `json:"start_pos"`
	EndPos   string `json:"end_pos"`
	// FirstAt and LastAt are the binlog timestamps (seconds) of its first
	// and last transaction.
	FirstAt time.Time `json:"first_at"`
	LastAt  time.Time `json:"last_at"`
	// Transactions counts its transactions.
	Transactions int `json:"transactions"`
	// SourceNode is the node it was read from (changes at a failover).
	SourceNode string    `json:"source_node"`
	ArchivedAt time.Time `json:"archived_at"`
}

// Policy is an instance's schedule and retention. Its JSON (MarshalJSON)
// writes the durations as Go duration strings ("2h", "720h") under
// window_start, window_length, drill_every and snapshot_every.
type Policy struct {
	// Enabled runs scheduled backups, archiving and drills.
	Enabled bool `json:"enabled"`
	// WindowStart is the daily backup window's start as an offset from
	// midnight UTC; WindowLength its length (a backup starts within it).
	WindowStart  time.Duration `json:"-"`
	WindowLength time.Duration `json:"-"`
	// DailyKeepDays keeps daily fulls this many days.
	DailyKeepDays int `json:"daily_keep_days"`
	// PITRDays keeps binlog segments (and the full they start from) for
	// this many days of point-in-time restore.
	PITRDays int `json:"pitr_days"`
	// MonthlyKeepMonths keeps the first completed backup of each month
	// this many months.
	MonthlyKeepMonths int `json:"monthly_keep_months"`
	// DrillEvery is the restore drills' period (0: no scheduled drill).
	DrillEvery time.Duration `json:"-"`
	// SnapshotEvery is a Redis instance's snapshot period.
	SnapshotEvery time.Duration `json:"-"`
}

// DefaultPolicy: daily at 02:00 UTC within an hour, 7 days of fulls and of
// point-in-time restore, 12 monthly backups, a drill every 30 days, a
// Redis snapshot every 6 hours.
func DefaultPolicy() Policy {
	return Policy{Enabled: true, WindowStart: 2 * time.Hour, WindowLength: time.Hour, DailyKeepDays: 7, PITRDays: 7,
		MonthlyKeepMonths: 12, DrillEvery: 30 * 24 * time.Hour, SnapshotEvery: 6 * time.Hour}
}

// PolicyOverride is a plan's or an instance's change to the defaults: nil
// fields keep the value below it (platform default < plan < instance).
// Its JSON has Policy's keys, durations as strings; UnmarshalJSON refuses
// unknown keys with a *FieldError.
type PolicyOverride struct {
	Enabled           *bool          `json:"enabled,omitempty"`
	WindowStart       *time.Duration `json:"-"`
	WindowLength      *time.Duration `json:"-"`
	DailyKeepDays     *int           `json:"daily_keep_days,omitempty"`
	PITRDays          *int           `json:"pitr_days,omitempty"`
	MonthlyKeepMonths *int           `json:"monthly_keep_months,omitempty"`
	DrillEvery        *time.Duration `json:"-"`
	SnapshotEvery     *time.Duration `json:"-"`
}

// Node is a node of an instance as provisioning shows it to the backup
// service.
type Node struct {
	ID string `json:"id"`
	// Role is primary, replica or fenced (a former primary a failover
	// replaced: never a backup source).
	Role    string `json:"role"`
	Address string `json:"address"`
	// DataDir is the node's data directory on its host (the local driver
	// runs mariadb-backup and reads dump.rdb there).
	DataDir string `json:"data_dir"`
	Host    string `json:"host"`
	Region  string `json:"region"`
	Zone    string `json:"zone"`
	Healthy bool   `json:"healthy"`
}

// Credentials is an account on the instance's nodes.
type Credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// Instance is an instance as the backup service knows it.
type Instance struct {
	ID       string `json:"instance_id"`
	TenantID string `json:"tenant_id"`
	Name     string `json:"name"`
	Engine   Engine `json:"engine"`
	PlanID   string `json:"plan_id"`
	State    string `json:"state"`
	Nodes    []Node `json:"nodes"`
	// Admin is Canopy's administrative account on the nodes.
	Admin Credentials `json:"admin"`
	// DeletedAt is set once provisioning no longer lists the instance; its
	// backups are kept for the retention period.
	DeletedAt time.Time `json:"deleted_at,omitzero"`
}

// Target is what a restore aims at: exactly one of BackupID, PointInTime
// (to the second, inclusive) and GTID (inclusive).
type Target struct {
	BackupID    string    `json:"backup_id,omitempty"`
	PointInTime time.Time `json:"point_in_time,omitzero"`
	GTID        string    `json:"gtid,omitempty"`
}

// RestorePlan is how a target is reached: the newest completed full
// backup at or before it, then the segments after the backup's GTID up to
// it, replayed until StopBefore (exclusive; zero: no time bound) or
// through StopGTID (inclusive; "": none).
type RestorePlan struct {
	Backup     Backup    `json:"backup"`
	Segments   []Segment `json:"segments"`
	StopBefore time.Time `json:"stop_before,omitzero"`
	StopGTID   string    `json:"stop_gtid,omitempty"`
}

// Window is the range a restore can reach: from the oldest completed
// backup's ConsistentAt to the last contiguous archived transaction (or
// the newest backup's ConsistentAt when nothing is archived after it).
type Window struct {
	Earliest time.Time `json:"earliest"`
	Latest   time.Time `json:"latest"`
	// LatestGTID is the GTID position the window ends at (MySQL).
	LatestGTID string `json:"latest_gtid,omitempty"`
}

// RestoreStatus is a restore job's state.
type RestoreStatus string

// States of a restore job.
const (
	RestorePending RestoreStatus = "pending"
	// RestoreRunning: fetching, preparing and replaying (Phase says which).
	RestoreRunning RestoreStatus = "running"
	// RestoreReady: Seed holds the data; provisioning copies it into the
	// new instance's nodes.
	RestoreReady RestoreStatus = "ready"
	// RestoreDone: provisioning took the seed; it was removed.
	RestoreDone   RestoreStatus = "done"
	RestoreFailed RestoreStatus = "failed"
)

// Restore phases, shown as the new instance's operation step detail.
const (
	PhaseFetching  = "fetching"
	PhasePreparing = "preparing"
	PhaseReplaying = "replaying"
)

// Restore is a restore job: the data of a new instance made from a source
// instance's backup and archived binlogs.
type Restore struct {
	ID               string        `json:"id"`
	TenantID         string        `json:"tenant_id"`
	SourceInstanceID string        `json:"source_instance_id"`
	TargetInstanceID string        `json:"target_instance_id"`
	Engine           Engine        `json:"engine"`
	Target           Target        `json:"target"`
	Plan             RestorePlan   `json:"plan"`
	Status           RestoreStatus `json:"status"`
	Phase            string        `json:"phase,omitempty"`
	// Seed is the directory holding the restored data (MySQL: a prepared,
	// replayed, cleanly stopped data directory; Redis: dump.rdb, or for a
	// restore to the second aof/ with base.rdb or base.aof and incr.aof).
	Seed string `json:"seed,omitempty"`
	// ReachedGTID is the last transaction applied (MySQL).
	ReachedGTID string    `json:"reached_gtid,omitempty"`
	Error       string    `json:"error,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// DrillStatus is a restore drill's state.
type DrillStatus string

// States of a drill.
const (
	DrillRunning   DrillStatus = "running"
	DrillSucceeded DrillStatus = "succeeded"
	DrillFailed    DrillStatus = "failed"
)

// Drill is a restore drill's report: the backup restored into a scratch
// instance, what was measured there against what the backup's
// verification measured, and the scratch instance's removal.
type Drill struct {
	ID         string      `json:"id"`
	TenantID   string      `json:"tenant_id"`
	InstanceID string      `json:"instance_id"`
	BackupID   string      `json:"backup_id"`
	Status     DrillStatus `json:"status"`
	// ScratchInstanceID is the instance the drill restored into (deleted
	// when the drill ends).
	ScratchInstanceID string     `json:"scratch_instance_id,omitempty"`
	StartedAt         time.Time  `json:"started_at"`
	FinishedAt        time.Time  `json:"finished_at,omitzero"`
	Expected          *DataStats `json:"expected,omitempty"`
	Measured          *DataStats `json:"measured,omitempty"`
	// Mismatches name each difference ("shop.orders: rows 10 != 11").
	Mismatches []string `json:"mismatches,omitempty"`
	// RestoreSeconds is how long the scratch instance took to be ready.
	RestoreSeconds float64 `json:"restore_seconds"`
	Error          string  `json:"error,omitempty"`
}

// Errors callers branch on.
var (
	// ErrNotFound: no such instance, backup, restore or drill for the tenant.
	ErrNotFound = errors.New("not found")
	// ErrNoBackup: no completed backup at or before the target.
	ErrNoBackup = errors.New("no completed backup before the target")
	// ErrInvalid: a target or policy that cannot be used.
	ErrInvalid = errors.New("invalid")
	// ErrBusy: a backup of the instance is already running.
	ErrBusy = errors.New("a backup of this instance is already running")
	// ErrUnavailable: the service cannot act now (its engine is a standby
	// or stopping); asking again later may succeed.
	ErrUnavailable = errors.New("backup engine not active")
)

// OutsideWindowError is returned for a target outside the restore window.
type OutsideWindowError struct{ Window Window }

func (e *OutsideWindowError) Error() string {
	return "target outside the restore window " + e.Window.Earliest.UTC().Format(time.RFC3339) + " .. " +
		e.Window.Latest.UTC().Format(time.RFC3339)
}
