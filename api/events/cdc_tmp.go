// Temporary: replaced at merge.
package events

// TopicCDC carries CDC stream health events, keyed by stream id.
const TopicCDC = "canopy.cdc.v1"

// CDC stream event types on TopicCDC (payload CDCStreamStatus).
const (
	TypeCDCStreamFailed   = "cdc.stream.failed"
	TypeCDCStreamLagging  = "cdc.stream.lagging"
	TypeCDCStreamCaughtUp = "cdc.stream.caught_up"
)

// CDCStreamStatus is the payload of the cdc.stream.* events.
type CDCStreamStatus struct {
	StreamID    string `json:"stream_id"`
	InstanceID  string `json:"instance_id"`
	TenantID    string `json:"tenant_id"`
	State       string `json:"state"`
	LagMs       int64  `json:"lag_ms"`
	LagEvents   int64  `json:"lag_events"`
	ThresholdMs int64  `json:"threshold_ms"`
	Reason      string `json:"reason,omitempty"`
	GTID        string `json:"gtid,omitempty"`
}
