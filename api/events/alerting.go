package events

import "time"

// Alerting topic and types: canopy.alerts.v1 carries an alert's transitions
// to firing and to resolved (not pending), keyed by the alert's
// fingerprint, for systems downstream of on-call (ticketing, audit).
const (
	// TopicAlerts carries alerting.alert.firing and alerting.alert.resolved.
	TopicAlerts = "canopy.alerts.v1"
	// SourceAlerting is the source of alerting.* events.
	SourceAlerting = "/canopy/alerting"

	// TypeAlertFiring: an alert started firing (once per firing episode).
	TypeAlertFiring = "alerting.alert.firing"
	// TypeAlertResolved: a firing alert resolved.
	TypeAlertResolved = "alerting.alert.resolved"
)

// AlertTransition is the payload of alerting.alert.firing and .resolved.
type AlertTransition struct {
	// Fingerprint is Alertmanager's: 16 hex digits of the labels' hash.
	Fingerprint string `json:"fingerprint"`
	// TenantID is the tenant label ("" for a platform alert).
	TenantID    string            `json:"tenant_id,omitempty"`
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations,omitempty"`
	StartsAt    time.Time         `json:"starts_at"`
	// EndsAt is set on resolved.
	EndsAt       *time.Time `json:"ends_at,omitempty"`
	GeneratorURL string     `json:"generator_url,omitempty"`
	// Rule is the rule that raised it ("" for alerts pushed through
	// /api/v2/alerts).
	Rule string `json:"rule,omitempty"`
}
