// Package rules evaluates alerting rules over the health checker's samples
// and over platform events (node down/up, failover, cdc, metering budgets)
// and turns them into alerts: pending while a sample rule's `for` runs,
// firing, resolved. The default rules ship as YAML (defaults.yaml,
// embedded); tenants add their own through the API. No I/O here.
package rules

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
)

// Kind of a rule.
type Kind string

// Kinds.
const (
	KindSample Kind = "sample"
	KindEvent  Kind = "event"
)

// Remediation actions a rule may name.
const (
	ActionSwitchover     = "switchover"
	ActionRestartNode    = "restart-node"
	ActionRebuildReplica = "rebuild-replica"
)

// Rule is one alerting rule. JSON/YAML names are the API's; For and
// ResolveAfter travel as Go duration strings ("5m").
type Rule struct {
	ID     string `json:"id" yaml:"id"`              // slug, unique per owner
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
	// Labels are added to the alert (severity etc.; severity "warning"
	// when the rule names none); Annotations are templates
	// ({{ $labels.instance }}, {{ $value }}) that also see, under
	// $labels, the event's payload fields or the node's sample metrics
	// ({{ $labels.reason }}, {{ $labels.maxmemory | humanize }}).
	Labels      map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty" yaml:"annotations,omitempty"`
	// Action is a remediation (switchover, restart-node, rebuild-replica)
	// run when the alert fires, if ActionEnabled and the tenant allows it.
	Action        string `json:"action,omitempty" yaml:"action,omitempty"`
	ActionEnabled bool   `json:"action_enabled,omitempty" yaml:"action_enabled,omitempty"`
	Disabled      bool   `json:"disabled,omitempty" yaml:"disabled,omitempty"`
}

// ruleFields is Rule without its methods, so the JSON and YAML methods can
// reuse the default encoding of every other field.
type ruleFields Rule

// ruleJSON shadows the two durations with strings: the outer fields win
// over the embedded ones of the same JSON name.
type ruleJSON struct {
	ruleFields
	For          string `json:"for,omitempty"`
	ResolveAfter string `json:"resolve_after,omitempty"`
}

// MarshalJSON writes For and ResolveAfter as duration strings ("5m"), the
// way the API and Prometheus show them, not as nanoseconds.
func (r Rule) MarshalJSON() ([]byte, error) {
	return json.Marshal(ruleJSON{ruleFields: ruleFields(r), For: formatDuration(r.For),
		ResolveAfter: formatDuration(r.ResolveAfter)})
}

// UnmarshalJSON reads For and ResolveAfter as duration strings.
func (r *Rule) UnmarshalJSON(b []byte) error {
	var v ruleJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	forDur, err := parseDuration("for", v.For)
	if err != nil {
		return err
	}
	after, err := parseDuration("resolve_after", v.ResolveAfter)
	if err != nil {
		return err
	}
	*r = Rule(v.ruleFields)
	r.For, r.ResolveAfter = forDur, after
	return nil
}

// ruleYAML is Rule with string durations (yaml.v3 refuses the shadowing
// trick ruleJSON uses: an inlined struct may not repeat a key).
type ruleYAML struct {
	ID            string            `yaml:"id"`
	Name          string            `yaml:"name"`
	Kind          Kind              `yaml:"kind"`
	Expr          string            `yaml:"expr,omitempty"`
	Engine        string            `yaml:"engine,omitempty"`
	Role          string            `yaml:"role,omitempty"`
	For           string            `yaml:"for,omitempty"`
	On            []string          `yaml:"on,omitempty"`
	ResolveOn     []string          `yaml:"resolve_on,omitempty"`
	ResolveAfter  string            `yaml:"resolve_after,omitempty"`
	Match         map[string]string `yaml:"match,omitempty"`
	Labels        map[string]string `yaml:"labels,omitempty"`
	Annotations   map[string]string `yaml:"annotations,omitempty"`
	Action        string            `yaml:"action,omitempty"`
	ActionEnabled bool              `yaml:"action_enabled,omitempty"`
	Disabled      bool              `yaml:"disabled,omitempty"`
}

// MarshalYAML writes the durations as short strings too (yaml.v3 alone
// would write "5m0s"). Tenant is not part of the YAML form.
func (r Rule) MarshalYAML() (any, error) {
	return ruleYAML{ID: r.ID, Name: r.Name, Kind: r.Kind, Expr: r.Expr, Engine: r.Engine, Role: r.Role,
		For: formatDuration(r.For), On: r.On, ResolveOn: r.ResolveOn, ResolveAfter: formatDuration(r.ResolveAfter),
		Match: r.Match, Labels: r.Labels, Annotations: r.Annotations, Action: r.Action,
		ActionEnabled: r.ActionEnabled, Disabled: r.Disabled}, nil
}

// UnmarshalYAML reads the durations as Go duration strings.
func (r *Rule) UnmarshalYAML(unmarshal func(any) error) error {
	var v ruleYAML
	if err := unmarshal(&v); err != nil {
		return err
	}
	forDur, err := parseDuration("for", v.For)
	if err != nil {
		return err
	}
	after, err := parseDuration("resolve_after", v.ResolveAfter)
	if err != nil {
		return err
	}
	*r = Rule{ID: v.ID, Name: v.Name, Kind: v.Kind, Expr: v.Expr, Engine: v.Engine, Role: v.Role,
		For: forDur, On: v.On, ResolveOn: v.ResolveOn, ResolveAfter: after, Match: v.Match,
		Labels: v.Labels, Annotations: v.Annotations, Action: v.Action,
		ActionEnabled: v.ActionEnabled, Disabled: v.Disabled}
	return nil
}

func parseDuration(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", field, err)
	}
	return d, nil
}

// formatDuration spells a rule's duration as Prometheus does; zero (not
// set) is empty, so that omitempty leaves it out.
func formatDuration(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return alert.FormatDuration(d)
}

var (
	idPattern    = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$`)
	labelPattern = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// reservedLabels are set by the evaluator from the event or sample; a rule
// setting them could, for tenant, move an alert to another tenant, and
// Restore finds a series by its identity labels (see identityLabels).
var reservedLabels = map[string]bool{
	"alertname": true, "tenant": true, "instance": true, "node": true, "rule": true,
	"role": true, "engine": true, "az": true, "region": true, "target_instance": true,
	"stream_id": true, "job_id": true, "recovery_id": true, "month": true, "kind": true, "threshold": true,
}

// ErrInvalid wraps every validation failure, for callers that answer 400.
var ErrInvalid = errors.New("invalid rule")

// Validate checks a rule (expr parses, kinds and fields agree, templates
// parse, action known).
func (r Rule) Validate() error {
	if err := r.validate(); err != nil {
		return fmt.Errorf("%w %q: %w", ErrInvalid, r.ID, err)
	}
	return nil
}

func (r Rule) validate() error {
	if !idPattern.MatchString(r.ID) {
		return errors.New("id must be a lower-case slug of 1-64 characters (a-z, 0-9, '.', '_', '-')")
	}
	if strings.TrimSpace(r.Name) == "" {
		return errors.New("name is required")
	}
	if err := r.validateKind(); err != nil {
		return err
	}
	switch r.Engine {
	case "", "mysql", "redis":
	default:
		return fmt.Errorf("engine %q: want mysql, redis or empty", r.Engine)
	}
	switch r.Role {
	case "", "primary", "replica":
	default:
		return fmt.Errorf("role %q: want primary, replica or empty", r.Role)
	}
	if err := validateLabels(r.Labels); err != nil {
		return err
	}
	for name, text := range r.Annotations {
		if !labelPattern.MatchString(name) {
			return fmt.Errorf("annotation name %q is not a valid label name", name)
		}
		if _, err := alert.ParseTemplate(text); err != nil {
			return fmt.Errorf("annotation %s: %w", name, err)
		}
	}
	return validateAction(r.Action, r.ActionEnabled)
}

func (r Rule) validateKind() error {
	if r.For < 0 || r.ResolveAfter < 0 {
		return errors.New("for and resolve_after must not be negative")
	}
	switch r.Kind {
	case KindSample:
		if _, err := parseExpr(r.Expr); err != nil {
			return err
		}
		if len(r.On) > 0 || len(r.ResolveOn) > 0 || r.ResolveAfter != 0 || len(r.Match) > 0 {
			return errors.New("on, resolve_on, resolve_after and match belong to event rules")
		}
	case KindEvent:
		if r.Expr != "" || r.For != 0 {
			return errors.New("expr and for belong to sample rules")
		}
		if len(r.On) == 0 {
			return errors.New("an event rule needs at least one event type in on")
		}
		for _, t := range append(append([]string(nil), r.On...), r.ResolveOn...) {
			if t == "" || strings.ContainsAny(t, " \t\r\n") {
				return fmt.Errorf("event type %q is not a type name", t)
			}
		}
		resolving := toSet(r.ResolveOn)
		for _, t := range r.On {
			if resolving[t] {
				return fmt.Errorf("event type %q both fires and resolves", t)
			}
		}
		for k := range r.Match {
			if k == "" {
				return errors.New("match has an empty field name")
			}
		}
	default:
		return fmt.Errorf("kind %q: want sample or event", r.Kind)
	}
	return nil
}

func validateLabels(labels map[string]string) error {
	for name := range labels {
		if !labelPattern.MatchString(name) || strings.HasPrefix(name, "__") {
			return fmt.Errorf("label name %q is not valid", name)
		}
		if reservedLabels[name] {
			return fmt.Errorf("label %q is set by the evaluator, not by rules", name)
		}
	}
	return nil
}

func validateAction(action string, enabled bool) error {
	switch action {
	case "":
		if enabled {
			return errors.New("action_enabled without an action")
		}
	case ActionSwitchover, ActionRestartNode, ActionRebuildReplica:
	default:
		return fmt.Errorf("action %q: want switchover, restart-node or rebuild-replica", action)
	}
	return nil
}
