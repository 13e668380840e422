// Package alert is the alert model Canopy shares with Prometheus
// Alertmanager: label sets and their fingerprints, alerts with start and
// end, matchers, silences, inhibition rules and the templates that expand
// annotations. It knows nothing of HTTP, Kafka or SQL.
package alert

import (
	"regexp"
	"time"
)

// LabelTenant is the label that carries an alert's tenant; an alert without
// it is a platform alert. Tenant routes and silences get an implicit
// tenant="<id>" matcher, which is what keeps tenants apart.
const LabelTenant = "tenant"

// Well-known labels.
const (
	LabelAlertName = "alertname"
	LabelSeverity  = "severity"
	LabelInstance  = "instance"
	LabelNode      = "node"
)

// LabelSet is a set of label names and values.
type LabelSet map[string]string

// Fingerprint is Prometheus' label-set hash (FNV-1a 64 over the sorted
// names and values, each followed by the 0xff separator), so that a
// fingerprint Canopy shows equals the one Alertmanager shows for the same
// labels.
type Fingerprint uint64

// Status of an alert as seen by a notification.
type Status string

// Statuses.
const (
	StatusFiring   Status = "firing"
	StatusResolved Status = "resolved"
)

// State is an alert's lifecycle state (pending exists only for rule alerts
// whose `for` has not elapsed yet; they are never notified).
type State string

// States.
const (
	StatePending  State = "pending"
	StateFiring   State = "firing"
	StateResolved State = "resolved"
)

// Alert is one alert, identified by the fingerprint of its labels.
type Alert struct {
	Labels      LabelSet
	Annotations LabelSet
	StartsAt    time.Time
	// EndsAt is zero while the alert fires with no known end; an EndsAt in
	// the past means resolved (Alertmanager's rule, also for pushes whose
	// EndsAt is a timeout in the future).
	EndsAt       time.Time
	GeneratorURL string
	UpdatedAt    time.Time
	// State is pending, firing or resolved; Resolved(now) is what counts
	// for an alert with an EndsAt.
	State State
	// Rule is the id of the rule that raised the alert ("" for pushes).
	Rule string
	// Value is the rule's value when it last evaluated.
	Value float64
	// Action is the remediation the rule names ("" for none).
	Action string
}

// MatchType is a matcher's operator.
type MatchType int

// Operators, as Alertmanager spells them: = != =~ !~.
const (
	MatchEqual MatchType = iota
	MatchNotEqual
	MatchRegexp
	MatchNotRegexp
)

// Matcher matches one label. A regexp is anchored at both ends; a missing
// label is matched as the empty string.
type Matcher struct {
	Type  MatchType
	Name  string
	Value string
	re    *regexp.Regexp
}

// Matchers match when every matcher matches.
type Matchers []*Matcher

// Silence mutes the alerts its matchers match between StartsAt and EndsAt.
type Silence struct {
	ID        string
	Tenant    string // "" for a platform silence
	Matchers  Matchers
	StartsAt  time.Time
	EndsAt    time.Time
	CreatedBy string
	Comment   string
	UpdatedAt time.Time
}

// SilenceState is pending (not started), active or expired.
type SilenceState string

// Silence states.
const (
	SilencePending SilenceState = "pending"
	SilenceActive  SilenceState = "active"
	SilenceExpired SilenceState = "expired"
)

// InhibitRule mutes an alert matching Target while an alert matching
// Source fires with the same values of the Equal labels (Alertmanager's
// inhibit_rules; an alert never inhibits itself).
type InhibitRule struct {
	Source Matchers
	Target Matchers
	Equal  []string
}
