package alertstore

import (
	"time"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
)

// Receiver is a webhook receiver and its route.
type Receiver struct {
	ID             string        `json:"id"`
	Tenant         string        `json:"tenant,omitempty"` // "" platform
	Name           string        `json:"name"`
	URL            string        `json:"url"`
	Secret         string        `json:"-"` // never returned
	HasSecret      bool          `json:"has_secret"`
	Matchers       []string      `json:"matchers,omitempty"` // each `name=~"value"`
	GroupBy        []string      `json:"group_by,omitempty"`
	GroupWait      time.Duration `json:"-"`
	GroupInterval  time.Duration `json:"-"`
	RepeatInterval time.Duration `json:"-"`
	SendResolved   bool          `json:"send_resolved"`
	Continue       bool          `json:"continue"`
	Position       int64         `json:"-"` // route order within the owner
	CreatedAt      time.Time     `json:"created_at"`
	UpdatedAt      time.Time     `json:"updated_at"`
}

// AlertFilter selects alerts for the API.
type AlertFilter struct {
	Tenant   string // required unless All
	All      bool   // platform-admin: every tenant and platform alerts
	States   []alert.State
	Matchers alert.Matchers
	Limit    int
	After    string // cursor: fingerprint hex of the last item
}

// StoredAlert is an alert with its bookkeeping.
type StoredAlert struct {
	alert.Alert
	Fingerprint alert.Fingerprint
	// SilencedBy and InhibitedBy are filled by the API from the engine.
	SilencedBy  []string
	InhibitedBy []string
	// ActionRuns lists the remediation runs the alert triggered.
	ActionRuns []ActionRun
}

// Delivery is one stored notification on its way to a receiver.
type Delivery struct {
	ID          int64
	Receiver    string
	Owner       string
	GroupKey    string
	Payload     []byte // the webhook v4 JSON, built when stored
	Attempts    int
	NextAt      time.Time
	LastError   string
	CreatedAt   time.Time
	DeliveredAt time.Time
	DeadAt      time.Time // dead letter when set
}

// ActionRun is one remediation attempt.
type ActionRun struct {
	ID          int64     `json:"id"`
	Fingerprint string    `json:"fingerprint"`
	Tenant      string    `json:"tenant,omitempty"`
	InstanceID  string    `json:"instance_id"`
	NodeID      string    `json:"node_id,omitempty"`
	Action      string    `json:"action"`
	Status      string    `json:"status"` // started, succeeded, failed, skipped
	Detail      string    `json:"detail,omitempty"`
	At          time.Time `json:"at"`
}
