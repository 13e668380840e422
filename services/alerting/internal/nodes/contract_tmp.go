// Package nodes keeps the platform's nodes as the alerting service sees
// them — topology from canopy.instances.v1 (tenant, instance, node, role,
// az, region, engine, address) and each node's latest sample from
// canopy.health.samples.v1 — and serves them to Prometheus: HTTP service
// discovery targets and a collector of per-node gauges.
package nodes

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/libs/eventbus"
)

// CONTRACT (helper "nodes" implements; delete this file then).

// Registry is safe for concurrent use.
type Registry struct{}

// New returns an empty registry.
func New() *Registry { panic("todo") }

// Event folds an instances or samples event in (others ignored).
func (r *Registry) Event(ev eventbus.Event) { panic("todo") }

// Node is one node's labels.
type Node struct {
	Tenant, Instance, Node, Role, AZ, Region, Engine, Address string
	SampledAt                                                  time.Time
}

// Lookup returns a node's labels (rules use it to label alerts with az and
// region).
func (r *Registry) Lookup(nodeID string) (Node, bool) { panic("todo") }

// TargetGroup is Prometheus HTTP SD's element.
type TargetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// Targets lists every live node as an HTTP SD group (target: the node's
// address; labels __meta_canopy_* and tenant, instance, node, role, az,
// region, engine). tenant "" and all: every node; else the tenant's.
func (r *Registry) Targets(tenant string, all bool) []TargetGroup { panic("todo") }

// Collector exposes canopy_node_<metric> gauges (labels tenant, instance,
// node, role, az, region, engine) from the latest samples, and
// canopy_node_up (1 when the node's status is up/healthy).
func (r *Registry) Collector() prometheus.Collector { panic("todo") }
