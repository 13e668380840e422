// Package rules evaluates alerting rules over the health checker's samples
// and over platform events (node down/up, failover, cdc, metering budgets)
// and turns them into alerts: pending while a sample rule's `for` runs,
// firing, resolved. The default rules ship as YAML (defaults.yaml,
// embedded); tenants add their own through the API. No I/O here.
package rules

import (
	"time"

	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
)

// CONTRACT (helper "rules" implements; delete this file then).

// Kind of a rule.
type Kind string

// Kinds.
const (
	KindSample Kind = "sample"
	KindEvent  Kind = "event"
)

// Rule is one alerting rule. JSON/YAML names are the API's.
type Rule struct {
	ID     string `json:"id" yaml:"id"`         // slug, unique per owner
	Tenant string `json:"tenant,omitempty" yaml:"-"` // "" default/platform rule
	// Name is the alertname label.
	Name string `json:"name" yaml:"name"`
	Kind Kind   `json:"kind" yaml:"kind"`
	// Expr (sample rules): `metric OP threshold` or
	// `metric / metric OP threshold` over one node's sample metrics, OP one
	// of > >= < <= == !=; e.g. "used_memory / maxmemory > 0.85",
	// "replication_lag_seconds > 10".
	Expr string `json:"expr,omitempty" yaml:"expr,omitempty"`
	// Engine limits a rule to mysql or redis nodes ("" both); Role to a
	// node role (primary, replica; "" all).
	Engine string `json:"engine,omitempty" yaml:"engine,omitempty"`
	Role   string `json:"role,omitempty" yaml:"role,omitempty"`
	// For is how long the condition must hold before firing (pending
	// until then).
	For time.Duration `json:"for,omitempty" yaml:"for,omitempty"`
	// On (event rules) lists the event types that fire the alert,
	// ResolveOn those that resolve it (matched by the same key labels);
	// ResolveAfter resolves a one-off event's alert by itself (e.g.
	// failover.completed: fires, resolves after 15m). Match filters on
	// payload fields (top-level JSON keys, string equality).
	On           []string          `json:"on,omitempty" yaml:"on,omitempty"`
	ResolveOn    []string          `json:"resolve_on,omitempty" yaml:"resolve_on,omitempty"`
	ResolveAfter time.Duration     `json:"resolve_after,omitempty" yaml:"resolve_after,omitempty"`
	Match        map[string]string `json:"match,omitempty" yaml:"match,omitempty"`
	// Labels are added to the alert (severity etc.); Annotations are
	// templates ({{ $labels.instance }}, {{ $value }}).
	Labels      map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty" yaml:"annotations,omitempty"`
	// Action is a remediation (switchover, restart-node, rebuild-replica)
	// run when the alert fires, if ActionEnabled and the tenant allows it.
	Action        string `json:"action,omitempty" yaml:"action,omitempty"`
	ActionEnabled bool   `json:"action_enabled,omitempty" yaml:"action_enabled,omitempty"`
	Disabled      bool   `json:"disabled,omitempty" yaml:"disabled,omitempty"`
}

// Defaults returns the shipped default rules (parsed from the embedded
// defaults.yaml), validated.
func Defaults() ([]Rule, error) { panic("todo") }

// Validate checks a rule (expr parses, kinds and fields agree, templates
// parse, action known).
func (r Rule) Validate() error { panic("todo") }

// Evaluator holds the rules and the per-series pending/firing state.
// Not safe for concurrent use.
type Evaluator struct{}

// NewEvaluator returns an evaluator over rules. generatorURL is the base
// of the alerts' generatorURL (e.g. http://127.0.0.1:8080/api/v1/alert-rules/).
func NewEvaluator(rules []Rule, generatorURL string) *Evaluator { panic("todo") }

// SetRules replaces the rules, keeping the state of rules that remain.
func (e *Evaluator) SetRules(rules []Rule) { panic("todo") }

// Restore seeds the state with the alerts the store holds as pending or
// firing for rules (after a restart), so they can be resolved.
func (e *Evaluator) Restore(alerts []*alert.Alert) { panic("todo") }

// Event evaluates one platform event (decoded envelope from any consumed
// topic: health, samples, failover, cdc, usage, instances) and returns the
// alerts whose state changed (pending, firing, resolved; an instance's
// deletion resolves its alerts). Labels always carry alertname, severity,
// tenant (when the event has one), instance, node (when known), rule.
func (e *Evaluator) Event(now time.Time, ev eventbus.Event) []*alert.Alert { panic("todo") }

// Tick resolves one-off event alerts past their ResolveAfter and sample
// series not seen for stale (a node no longer sampled), returning them.
func (e *Evaluator) Tick(now time.Time, stale time.Duration) []*alert.Alert { panic("todo") }
