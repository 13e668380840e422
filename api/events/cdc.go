package events

// CDC event types on TopicCDC (payload CDCStreamStatus): a stream's health, for
// alerting. The captured data itself goes to the cdc.<tenant>.<instance>.*
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
