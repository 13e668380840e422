// Package placement decides where the nodes of an instance run. It is a
// pipeline in the style of the Kubernetes scheduler framework: an explicit,
// ordered list of small host filters and scorers, plus the topology rules of
// the deployment modes (single-az, multi-az, multi-region), the latency bound
// and host anti-affinity. A refusal is explained per filter with counts.
//
// The package is pure Go: it keeps an in-memory Cluster and neither persists
// nor publishes anything; reservations in the database are the caller's job.
package placement

import (
	"fmt"

	"github.com/canopy-platform/canopy/services/scheduling/internal/inventory"
)

// Strategy is how the utilisation scorer ranks hosts.
type Strategy string

// Utilisation strategies.
const (
	// Balanced prefers hosts that stay least and most evenly used.
	Balanced Strategy = "balanced"
	// BinPack prefers the fullest host that still fits, keeping others empty.
	BinPack Strategy = "binpack"
)

// Weights are the weights of the scorers in the sum.
type Weights struct {
	Utilisation float64 `yaml:"utilisation" env:"UTILISATION" default:"1"`
	Price       float64 `yaml:"price" env:"PRICE" default:"0.5"`
	Latency     float64 `yaml:"latency" env:"LATENCY" default:"0.5"`
}

// Config tunes the scheduler.
type Config struct {
	// Strategy of the utilisation scorer: balanced or binpack.
	Strategy Strategy `yaml:"strategy" env:"STRATEGY" default:"balanced"`
	// MaxLatencyMS bounds the P95 latency between the primary and each replica
	// of its group.
	MaxLatencyMS float64 `yaml:"max_latency_ms" env:"MAX_LATENCY_MS" default:"20"`
	// Weights of the scorers.
	Weights Weights `yaml:"weights" envPrefix:"WEIGHT_"`
	// HostsToScore is how many feasible hosts per zone and node are scored,
	// taken in capacity order (emptiest first when balanced, tightest first
	// when bin-packing), like kube-scheduler's percentageOfNodesToScore. Zero
	// means the default (32); negative scores every feasible host.
	HostsToScore int `yaml:"hosts_to_score" env:"HOSTS_TO_SCORE" default:"32"`
}

// DefaultConfig is the configuration used when fields are left zero.
func DefaultConfig() Config {
	return Config{
		Strategy:     Balanced,
		MaxLatencyMS: 20,
		Weights:      Weights{Utilisation: 1, Price: 0.5, Latency: 0.5},
		HostsToScore: 32,
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	ve := &inventory.ValidationError{}
	if c.Strategy != Balanced && c.Strategy != BinPack {
		ve.Add("strategy", "must be balanced or binpack")
	}
	if c.MaxLatencyMS <= 0 {
		ve.Add("max_latency_ms", "must be positive")
	}
	if c.Weights.Utilisation < 0 || c.Weights.Price < 0 || c.Weights.Latency < 0 {
		ve.Add("weights", "must not be negative")
	}
	return ve.Err()
}

// Cycle is the state of one scheduling decision, shared by the filters and
// scorers.
type Cycle struct {
	cluster *Cluster
	req     *Request
	cfg     *Config
	// allowed is, per region position, whether the tenant may use it; nil = all.
	allowed []bool
	// groupRegion is the requested region of each group, -1 for any.
	groupRegion [2]int
	// exclude holds hosts the instance already uses or must avoid.
	exclude []*Host
	// reasons prepared once per decision
	notAllowed   []string
	notRequested [2]string
}

func (cy *Cycle) excluded(h *Host) bool {
	for _, x := range cy.exclude {
		if x == h {
			return true
		}
	}
	return false
}

// Filter rejects hosts that cannot run a node. Reasons must not name the host,
// so that they aggregate into counts ("4 hosts: cordoned").
type Filter interface {
	Name() string
	Filter(cy *Cycle, n *node, h *Host) (ok bool, reason string)
}

// Scorer ranks a feasible host for a node with a value in [0, 1].
type Scorer interface {
	Name() string
	Score(cy *Cycle, n *node, h *Host) float64
}

// ZoneScorer ranks a zone for a node given the zone of its primary (-1 when
// the group has no primary), with a value in [0, 1].
type ZoneScorer interface {
	Name() string
	ScoreZone(cy *Cycle, n *node, zone, primaryZone int) float64
}

type weightedScorer struct {
	Scorer
	weight float64
}

type weightedZoneScorer struct {
	ZoneScorer
	weight float64
}

// Pipeline is the placement pipeline: the ordered filters and scorers and the
// topology rules that decide where the nodes of an instance go.
type Pipeline struct {
	cfg         Config
	filters     []Filter
	scorers     []weightedScorer
	zoneScorers []weightedZoneScorer
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	d := DefaultConfig()
	if c.Strategy == "" {
		c.Strategy = d.Strategy
	}
	if c.MaxLatencyMS == 0 {
		c.MaxLatencyMS = d.MaxLatencyMS
	}
	if c.Weights == (Weights{}) {
		c.Weights = d.Weights
	}
	if c.HostsToScore == 0 {
		c.HostsToScore = d.HostsToScore
	}
	return c
}

// New builds a scheduler. The order of the filters is the order in which a
// host's rejection is attributed in explanations.
func New(cfg Config) (*Pipeline, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("placement config: %w", err)
	}
	s := &Pipeline{
		cfg: cfg,
		filters: []Filter{
			HostReady{},
			AllowedRegions{},
			RequestedRegion{},
			RequiredLabels{},
			AntiAffinity{},
			Capacity{},
		},
		scorers: []weightedScorer{
			{Utilisation{Strategy: cfg.Strategy}, cfg.Weights.Utilisation},
			{Price{}, cfg.Weights.Price},
		},
		zoneScorers: []weightedZoneScorer{
			{LatencyToPrimary{}, cfg.Weights.Latency},
		},
	}
	return s, nil
}

// Config returns the effective configuration.
func (s *Pipeline) Config() Config { return s.cfg }

// Filters returns the names of the filters in order, for documentation and
// explanations.
func (s *Pipeline) Filters() []string {
	out := make([]string, 0, len(s.filters)+2)
	for _, f := range s.filters {
		out = append(out, f.Name())
	}
	return append(out, FilterSpread, FilterLatency)
}

// Names of the topology filters, which act on zones rather than single hosts.
const (
	FilterSpread  = "spread"
	FilterLatency = "latency"
)

func (s *Pipeline) feasible(cy *Cycle, n *node, h *Host) bool {
	for _, f := range s.filters {
		if ok, _ := f.Filter(cy, n, h); !ok {
			return false
		}
	}
	return true
}

func (s *Pipeline) hostScore(cy *Cycle, n *node, h *Host) float64 {
	var total float64
	for _, sc := range s.scorers {
		if sc.weight != 0 {
			total += sc.weight * sc.Score(cy, n, h)
		}
	}
	return total
}

func (s *Pipeline) zoneScore(cy *Cycle, n *node, zone, primaryZone int) float64 {
	var total float64
	for _, sc := range s.zoneScorers {
		if sc.weight != 0 {
			total += sc.weight * sc.ScoreZone(cy, n, zone, primaryZone)
		}
	}
	return total
}

// bestInZone returns the best feasible host of a zone for n, not in extra, and
// its score. It walks the zone's hosts in bottleneck-free order from the end
// that suits the strategy (emptiest first when balanced, from the node's lower
// bound up when bin-packing), skips hosts below the bound, and stops after
// HostsToScore feasible hosts.
func (s *Pipeline) bestInZone(cy *Cycle, n *node, zone int, extra []*Host) (*Host, float64) {
	z := &cy.cluster.zones[zone]
	limit := s.cfg.HostsToScore
	var best *Host
	bestScore := -1.0
	seen := 0
	consider := func(h *Host) bool {
		for _, x := range extra {
			if x == h {
				return true
			}
		}
		if !s.feasible(cy, n, h) {
			return true
		}
		sc := s.hostScore(cy, n, h)
		if sc > bestScore || (sc == bestScore && h.ID < best.ID) {
			best, bestScore = h, sc
		}
		seen++
		return limit <= 0 || seen < limit
	}
	start := z.firstAtLeast(z.lowerBound(n.Resources))
	if s.cfg.Strategy == BinPack {
		for i := start; i < len(z.byFree); i++ {
			if !consider(z.byFree[i]) {
				break
			}
		}
	} else {
		for i := len(z.byFree) - 1; i >= start; i-- {
			if !consider(z.byFree[i]) {
				break
			}
		}
	}
	return best, bestScore
}
