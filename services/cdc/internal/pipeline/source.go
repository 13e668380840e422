package pipeline

import (
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"

	"github.com/canopy-platform/canopy/services/cdc/internal/gtidpos"
	"github.com/canopy-platform/canopy/services/cdc/internal/provview"
)

// ErrNoSource: the instance has no node to read from now (no primary and
// no healthy replica in its primary region); the runner retries.
var ErrNoSource = errors.New("no node to capture from")

// PickSource chooses the node to read the binlog from: a healthy replica
// of the primary region first (what it serves already exists on two nodes,
// so a failover never takes back a published change, and the primary stays
// unloaded), else the primary. Among replicas, prev (the node read last) is
// kept while it qualifies so a stream does not hop between replicas; avoid
// (the node whose connection just failed) is only chosen when nothing else
// is left, since provisioning may not have noticed its death yet.
func PickSource(in provview.Instance, prev, avoid string) (provview.Node, error) {
	var replicas []provview.Node
	var primary *provview.Node
	for i, n := range in.Nodes {
		switch {
		case n.Address == "":
		case n.Role == provview.RolePrimary:
			primary = &in.Nodes[i]
		case n.Role == provview.RoleReplica && n.Healthy && n.RegionRole != provview.RegionDR:
			replicas = append(replicas, n)
		}
	}
	slices.SortFunc(replicas, func(a, b provview.Node) int {
		switch {
		case a.ID == prev:
			return -1
		case b.ID == prev:
			return 1
		}
		return strings.Compare(a.ID, b.ID)
	})
	candidates := replicas
	if primary != nil {
		candidates = append(candidates, *primary)
	}
	if len(candidates) == 0 {
		return provview.Node{}, fmt.Errorf("instance %s: %w", in.ID, ErrNoSource)
	}
	for _, n := range candidates {
		if n.ID != avoid {
			return n, nil
		}
	}
	return candidates[0], nil
}

// ServerID is the replica server id the stream presents to the source:
// unique per stream (a hash of its id) in a range of its own (0x7c......),
// away from the small ids the instance's nodes use.
func ServerID(streamID string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(streamID))
	id := 0x7c000000 | h.Sum32()&0x00ffffff
	return id
}

// Prefix is the stream's topic prefix and Debezium logical server name.
func Prefix(tenant, instance string) string { return "cdc." + tenant + "." + instance }

// distance is how many transactions the source is ahead of the checkpoint
// in the checkpoint's domains (sequence numbers grow by one per
// transaction within a domain under gtid_strict_mode), and whether the
// source is at the checkpoint in every domain it has.
func distance(source, checkpoint string) (events int64, caughtUp bool, err error) {
	src, err := gtidpos.Parse(source)
	if err != nil {
		return 0, false, fmt.Errorf("source position: %w", err)
	}
	cp, err := gtidpos.Parse(checkpoint)
	if err != nil {
		return 0, false, fmt.Errorf("checkpoint: %w", err)
	}
	events, caughtUp = gtidpos.Behind(src, cp)
	return events, caughtUp, nil
}

// tableOf returns "db.table" for a row topic of prefix, "" for another
// topic (the schema-changes topic).
func tableOf(prefix, topic string) string {
	rest, ok := strings.CutPrefix(topic, prefix+".")
	if !ok || rest == "schema-changes" || !strings.Contains(rest, ".") {
		return ""
	}
	return rest
}
