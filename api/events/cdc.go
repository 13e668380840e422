package events

import (
	"encoding/json"
	"time"
)

// CDC event types on TopicCDC (payload CDCStreamStatus): a stream's health, for
// alerting (sync jobs' events follow below). The captured data itself goes to the cdc.<tenant>.<instance>.*
// data topics (api/topics.md), not here.
const (
	// TypeCDCStreamLagging: the stream fell behind its source past the lag
	// threshold for longer than the service's lag_for; once per episode.
	TypeCDCStreamLagging = "cdc.stream.lagging"
	// TypeCDCStreamCaughtUp: a lagging stream is back under the threshold.
	TypeCDCStreamCaughtUp = "cdc.stream.caught_up"
	// TypeCDCStreamFailed: the stream stopped and cannot continue without a
	// user action (binlog purged past its position, an undecodable event);
	// Reason says why and what to do.
	TypeCDCStreamFailed = "cdc.stream.failed"
)

// CDCStreamStatus is the payload of cdc.stream.lagging, .caught_up and .failed.
type CDCStreamStatus struct {
	StreamID   string `json:"stream_id"`
	InstanceID string `json:"instance_id"`
	TenantID   string `json:"tenant_id"`
	// State is the stream's state (snapshotting, streaming, paused, failed,
	// deleting).
	State string `json:"state"`
	// LagMs is now minus the commit time of the last published change;
	// LagEvents the GTID sequence distance to the source.
	LagMs     int64 `json:"lag_ms"`
	LagEvents int64 `json:"lag_events"`
	// ThresholdMs is the lag threshold the service alerts on.
	ThresholdMs int64 `json:"threshold_ms,omitempty"`
	// Reason explains a failure.
	Reason string `json:"reason,omitempty"`
	// GTID is the stream's checkpoint position.
	GTID string `json:"gtid,omitempty"`
}

// Sync job event types on TopicCDC, keyed by the job id: what a user of a
// sync job acts on.
const (
	// TypeCDCSyncConflict: a change of a sync job conflicted with the
	// target's row (payload CDCSyncConflict); once per conflicting row
	// change, whatever the strategy decided. A manual one waits for
	// POST /api/v1/sync-jobs/{id}/conflicts/{cid}:resolve.
	TypeCDCSyncConflict = "cdc.sync.conflict"
	// TypeCDCSyncInconsistent: a verification found rows that differ
	// between source and target after the job caught up (payload
	// CDCSyncInconsistent).
	TypeCDCSyncInconsistent = "cdc.sync.inconsistent"
	// TypeCDCSyncFailed: a sync job stopped and cannot continue without a
	// user action (payload CDCSyncFailed); Reason says why.
	TypeCDCSyncFailed = "cdc.sync.failed"
)

// CDCSyncConflict is the payload of cdc.sync.conflict.
type CDCSyncConflict struct {
	JobID      string `json:"job_id"`
	TenantID   string `json:"tenant_id"`
	ConflictID string `json:"conflict_id"`
	// FromInstance and ToInstance are the direction of the change.
	FromInstance string `json:"from_instance"`
	ToInstance   string `json:"to_instance"`
	DB           string `json:"db"`
	Table        string `json:"table"`
	// Kind is exists, missing or differs.
	Kind string `json:"kind"`
	// Key is the row's primary key as a JSON object.
	Key json.RawMessage `json:"key"`
	// Strategy decided it; Resolution is source, target or pending (manual).
	Strategy   string `json:"strategy"`
	Resolution string `json:"resolution"`
	// GTID is the source transaction of the change.
	GTID string    `json:"gtid"`
	At   time.Time `json:"at"`
}

// CDCSyncInconsistent is the payload of cdc.sync.inconsistent.
type CDCSyncInconsistent struct {
	JobID          string `json:"job_id"`
	TenantID       string `json:"tenant_id"`
	VerificationID string `json:"verification_id"`
	SourceInstance string `json:"source_instance"`
	TargetInstance string `json:"target_instance"`
	// Tables lists the tables with differing rows.
	Tables        []CDCSyncTableDiff `json:"tables"`
	RowsChecked   int64              `json:"rows_checked"`
	DifferingRows int64              `json:"differing_rows"`
	// Repair says whether the verification repaired; RepairedRows how many.
	Repair       bool      `json:"repair"`
	RepairedRows int64     `json:"repaired_rows"`
	FinishedAt   time.Time `json:"finished_at"`
}

// CDCSyncTableDiff is one table of CDCSyncInconsistent.
type CDCSyncTableDiff struct {
	Table         string `json:"table"`
	DifferingRows int64  `json:"differing_rows"`
}

// CDCSyncFailed is the payload of cdc.sync.failed.
type CDCSyncFailed struct {
	JobID          string `json:"job_id"`
	TenantID       string `json:"tenant_id"`
	SourceInstance string `json:"source_instance"`
	TargetInstance string `json:"target_instance"`
	// State is the job's state (failed).
	State string `json:"state"`
	// Reason explains the failure and what to do.
	Reason string `json:"reason"`
}
