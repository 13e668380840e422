package meter

import (
	"time"

	"github.com/canopy-platform/canopy/api/events"
)

// NodeSize is what one node of a plan gets.
type NodeSize struct {
	VCPU      float64
	MemoryMB  int64
	StorageGB int64
}

// BilledNode is a node that is billed while the instance is as the event says.
type BilledNode struct {
	InstanceID, NodeID, Tenant, Plan, Region string
	Size                                     NodeSize
}

// Key returns the usage key of n for meter slug.
func (n BilledNode) Key(slug string) Key {
	return Key{Tenant: n.Tenant, Meter: slug, Subject: n.InstanceID, Plan: n.Plan, Region: n.Region}
}

// billedInstanceStates are the instance states in which running nodes are
// billed: the instance was handed to the tenant (ready) and is theirs until
// its nodes are gone, whatever is being done to it meanwhile.
var billedInstanceStates = map[string]bool{"ready": true, "updating": true, "deleting": true}

// nodeRunning is the only node state that is billed; a failed, stopped or
// paused node is not.
const nodeRunning = "running"

// BilledNodes returns the nodes of in that are billed in its state. Roles
// are not looked at: a failover swaps them and billing goes on.
func BilledNodes(in events.Instance) []BilledNode {
	if !billedInstanceStates[in.State] {
		return nil
	}
	size := NodeSize{VCPU: in.VCPU, MemoryMB: in.MemoryMB, StorageGB: in.StorageGB}
	var out []BilledNode
	for _, n := range in.Nodes {
		if n.State != nodeRunning || n.ID == "" {
			continue
		}
		out = append(out, BilledNode{
			InstanceID: in.InstanceID, NodeID: n.ID, Tenant: in.TenantID,
			Plan: in.PlanID, Region: n.Region, Size: size,
		})
	}
	return out
}

// IntervalContributions returns n's node_hours, vcpu_hours,
// memory_gb_hours and storage_gb_hours for [from, to), split at minute
// boundaries, multiplied by sign (+1 to add, -1 to take back). Values are
// seconds (node_hours), vCPU-seconds, MB-seconds and GB-seconds, with
// sub-second precision; each piece is At its start. Count is 1 per piece
// (-1 when taking back) so that a take-back cancels the counts it added.
// Meters whose weight is zero (a plan without storage) get nothing. An
// empty or inverted interval has no contributions.
func IntervalContributions(n BilledNode, from, to time.Time, sign float64) []Contribution {
	from, to = from.UTC(), to.UTC()
	if !from.Before(to) || sign == 0 {
		return nil
	}
	count := int64(1)
	if sign < 0 {
		count = -1
	}
	type weighted struct {
		slug   string
		weight float64
	}
	meters := make([]weighted, 0, 4)
	meters = append(meters, weighted{NodeHours, 1})
	for _, w := range []weighted{
		{VCPUHours, n.Size.VCPU},
		{MemoryGBHours, float64(n.Size.MemoryMB)},
		{StorageGBHours, float64(n.Size.StorageGB)},
	} {
		if w.weight != 0 {
			meters = append(meters, w)
		}
	}
	pieces := int(to.Sub(Minute.Start(from))/time.Minute) + 1
	out := make([]Contribution, 0, pieces*len(meters))
	for start := from; start.Before(to); {
		end := Minute.Start(start).Add(time.Minute)
		if end.After(to) {
			end = to
		}
		secs := end.Sub(start).Seconds()
		for _, m := range meters {
			out = append(out, Contribution{Key: n.Key(m.slug), At: start, Value: sign * secs * m.weight, Count: count})
		}
		start = end
	}
	return out
}
