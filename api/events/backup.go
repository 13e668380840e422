package events

import "time"

// Backup topic and types: canopy.backups.v1 carries the backup service's
// outcomes (a backup completed or failed, a restore drill's report, the
// binlog archive falling behind or catching up), keyed by instance id, for
// alerting and audit.
const (
	// TopicBackups carries backup.* events.
	TopicBackups = "canopy.backups.v1"
	// SourceBackup is the source of backup.* events.
	SourceBackup = "/canopy/backup"

	// TypeBackupCompleted: a full backup or snapshot completed (and was
	// verified when Verified is true).
	TypeBackupCompleted = "backup.completed"
	// TypeBackupFailed: a backup failed; Error says why.
	TypeBackupFailed = "backup.failed"
	// TypeDrillCompleted: a restore drill restored and checked a backup.
	TypeDrillCompleted = "backup.drill.completed"
	// TypeDrillFailed: a restore drill could not restore, or found a
	// difference.
	TypeDrillFailed = "backup.drill.failed"
	// TypeArchiveLagging: an instance's binlog archive is behind its
	// primary by more than the bound.
	TypeArchiveLagging = "backup.archive.lagging"
	// TypeArchiveCaughtUp: a lagging archive is within the bound again.
	TypeArchiveCaughtUp = "backup.archive.caught_up"
)

// BackupOutcome is the payload of backup.completed and backup.failed.
type BackupOutcome struct {
	BackupID   string    `json:"backup_id"`
	TenantID   string    `json:"tenant_id"`
	InstanceID string    `json:"instance_id"`
	Engine     string    `json:"engine"`
	Kind       string    `json:"kind"`
	Trigger    string    `json:"trigger"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	DataBytes  int64     `json:"data_bytes"`
	// StoredBytes is the size in the repository (compressed, encrypted).
	StoredBytes int64  `json:"stored_bytes"`
	GTID        string `json:"gtid,omitempty"`
	Verified    bool   `json:"verified"`
	Error       string `json:"error,omitempty"`
}

// DrillOutcome is the payload of backup.drill.completed and .failed.
type DrillOutcome struct {
	DrillID           string    `json:"drill_id"`
	TenantID          string    `json:"tenant_id"`
	InstanceID        string    `json:"instance_id"`
	BackupID          string    `json:"backup_id"`
	ScratchInstanceID string    `json:"scratch_instance_id,omitempty"`
	StartedAt         time.Time `json:"started_at"`
	FinishedAt        time.Time `json:"finished_at"`
	RestoreSeconds    float64   `json:"restore_seconds"`
	Tables            int       `json:"tables"`
	Mismatches        []string  `json:"mismatches,omitempty"`
	Error             string    `json:"error,omitempty"`
}

// ArchiveLag is the payload of backup.archive.lagging and .caught_up.
type ArchiveLag struct {
	TenantID   string `json:"tenant_id"`
	InstanceID string `json:"instance_id"`
	// LagSeconds is the time since the primary's newest transaction that
	// the archive does not hold yet was committed.
	LagSeconds float64 `json:"lag_seconds"`
	// BoundSeconds is the configured bound.
	BoundSeconds float64 `json:"bound_seconds"`
	ArchivedGTID string  `json:"archived_gtid,omitempty"`
}
