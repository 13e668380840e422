package analysis

import (
	"fmt"
	"sort"
	"strings"

	"github.com/canopy-platform/canopy/services/failover/internal/topology"
)

// CandidateConfig bounds how far behind a candidate may be.
type CandidateConfig struct {
	// MaxLagSeconds: a replica reporting more lag is not promoted unless
	// forced (default 10).
	MaxLagSeconds int64 `yaml:"max_lag_seconds" env:"MAX_LAG_SECONDS"`
	// MaxOffsetGap: a Redis replica more than this many bytes behind the
	// most advanced known position is not promoted unless forced
	// (default 1 MiB).
	MaxOffsetGap int64 `yaml:"max_offset_gap" env:"MAX_OFFSET_GAP"`
}

// WithDefaults fills zero fields.
func (c CandidateConfig) WithDefaults() CandidateConfig {
	if c.MaxLagSeconds == 0 {
		c.MaxLagSeconds = 10
	}
	if c.MaxOffsetGap == 0 {
		c.MaxOffsetGap = 1 << 20
	}
	return c
}

// ChooseOptions are the inputs of one candidate choice beyond the views.
type ChooseOptions struct {
	CandidateConfig
	// Force lifts the lag bound (and, for a named target, the "never" rule).
	Force bool
	// Target, when set, is the only node considered (a switchover's
	// target_node).
	Target string
}

// NoCandidateError says why no node could be promoted: a reason per node
// considered. It wraps topology.ErrNoCandidate.
type NoCandidateError struct {
	Reasons map[string]string
}

func (e *NoCandidateError) Error() string {
	if len(e.Reasons) == 0 {
		return topology.ErrNoCandidate.Error() + ": no replica"
	}
	ids := make([]string, 0, len(e.Reasons))
	for id := range e.Reasons {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = id + ": " + e.Reasons[id]
	}
	return topology.ErrNoCandidate.Error() + ": " + strings.Join(parts, "; ")
}

// Unwrap lets errors.Is(err, topology.ErrNoCandidate) hold.
func (e *NoCandidateError) Unwrap() error { return topology.ErrNoCandidate }

// Choice is the chosen candidate.
type Choice struct {
	Node topology.Node
	View topology.NodeView
	// Behind is how far it is behind the most advanced position known
	// (transactions or bytes); non-zero only when nothing better exists.
	Behind int64
	// Reference is that most advanced position.
	Reference topology.Position
}

// Choose picks the replica to promote: among reachable replicas (never the
// assigned primary nor a fenced node) whose promotion rule is not "never"
// and whose lag is within bounds (unless forced), those in the instance's
// primary region come before other regions; then the most advanced
// (MariaDB GTID per domain, Redis offset) wins, then "prefer" over
// "neutral", then the node id so the choice is deterministic.
func Choose(in topology.Instance, views []topology.NodeView, opts ChooseOptions) (Choice, error) {
	cfg := opts.CandidateConfig.WithDefaults()
	byID := make(map[string]topology.NodeView, len(views))
	var known []topology.Position
	for _, v := range views {
		byID[v.NodeID] = v
		if n, ok := in.Node(v.NodeID); ok && v.Reachable && n.Role != topology.RoleFenced {
			known = append(known, v.Position)
		}
	}
	ref, err := maxPosition(in.Engine, known)
	if err != nil {
		return Choice{}, &NoCandidateError{Reasons: map[string]string{"*": "unreadable position: " + err.Error()}}
	}
	type cand struct {
		n      topology.Node
		v      topology.NodeView
		behind int64
	}
	var cands []cand
	reasons := map[string]string{}
	for _, n := range in.Nodes {
		if opts.Target != "" && n.ID != opts.Target {
			continue
		}
		if n.Role != topology.RoleReplica {
			if opts.Target != "" {
				reasons[n.ID] = "is " + string(n.Role) + ", not a replica"
			}
			continue
		}
		v, ok := byID[n.ID]
		switch {
		case !ok:
			reasons[n.ID] = "not observed"
			continue
		case !v.Reachable:
			reasons[n.ID] = "unreachable: " + v.Err
			continue
		case n.Promotion == topology.PromoteNever && !(opts.Force && opts.Target != ""):
			reasons[n.ID] = "promotion rule never"
			continue
		}
		behind, err := Behind(in.Engine, v.Position, ref)
		if err != nil {
			reasons[n.ID] = "unreadable position: " + err.Error()
			continue
		}
		if !opts.Force {
			if v.LagSeconds > cfg.MaxLagSeconds {
				reasons[n.ID] = fmt.Sprintf("lag %ds beyond %ds", v.LagSeconds, cfg.MaxLagSeconds)
				continue
			}
			if in.Engine == topology.EngineRedis && behind > cfg.MaxOffsetGap {
				reasons[n.ID] = fmt.Sprintf("%d bytes behind, bound %d", behind, cfg.MaxOffsetGap)
				continue
			}
		}
		cands = append(cands, cand{n: n, v: v, behind: behind})
	}
	if opts.Target != "" && len(cands) == 0 && len(reasons) == 0 {
		reasons[opts.Target] = "no such node"
	}
	if len(cands) == 0 {
		return Choice{}, &NoCandidateError{Reasons: reasons}
	}
	tier := func(n topology.Node) int {
		if in.Region == "" || n.Region == in.Region {
			return 0
		}
		return 1
	}
	rule := func(n topology.Node) int {
		if n.Promotion == topology.PromotePrefer {
			return 0
		}
		return 1
	}
	sort.SliceStable(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if tier(a.n) != tier(b.n) {
			return tier(a.n) < tier(b.n)
		}
		if a.behind != b.behind {
			return a.behind < b.behind
		}
		if rule(a.n) != rule(b.n) {
			return rule(a.n) < rule(b.n)
		}
		return a.n.ID < b.n.ID
	})
	c := cands[0]
	return Choice{Node: c.n, View: c.v, Behind: c.behind, Reference: ref}, nil
}
