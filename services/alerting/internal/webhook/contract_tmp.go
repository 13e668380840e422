// Package webhook delivers notifications as Alertmanager's webhook payload
// version 4, signed with HMAC-SHA256 when the receiver has a secret, with
// a circuit breaker per receiver (sony/gobreaker), and validates receiver
// URLs against server-side request forgery.
package webhook

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/canopy-platform/canopy/services/alerting/internal/dispatch"
)

// CONTRACT (helper "webhook" implements; delete this file then).

// SignatureHeader carries "sha256=<hex HMAC-SHA256 of the body>" keyed by
// the receiver's secret; TimestampHeader the unix seconds the signature
// covers as well (signature over "<timestamp>.<body>" — say so in docs).
const (
	SignatureHeader = "X-Canopy-Signature"
	TimestampHeader = "X-Canopy-Timestamp"
)

// Message is Alertmanager's webhook payload, version "4".
type Message struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []Alert           `json:"alerts"`
}

// Alert is one alert in a Message.
type Alert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"` // 0001-01-01T00:00:00Z while firing, as Alertmanager
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// Build turns a notification into the payload (status firing if any alert
// fires; common labels/annotations; maxAlerts>0 truncates and counts
// truncatedAlerts).
func Build(n dispatch.Notification, externalURL string, maxAlerts int) Message { panic("todo") }

// Sign returns the signature header value for body at ts.
func Sign(secret []byte, ts time.Time, body []byte) string { panic("todo") }

// Verify checks a signature as a receiver would (tolerance on ts).
func Verify(secret []byte, tsHeader, sigHeader string, body []byte, now time.Time, tolerance time.Duration) error {
	panic("todo")
}

// URLPolicy says which webhook targets are allowed.
type URLPolicy struct {
	// AllowPrivate allows loopback and private (RFC 1918, ULA) addresses;
	// link-local and cloud metadata (169.254.0.0/16, fe80::/10,
	// 100.100.100.200, fd00:ec2::254) are always refused.
	AllowPrivate bool
}

// ErrURLRefused wraps every refusal (the API answers 400 naming "url").
var ErrURLRefused = errors.New("webhook url refused")

// Check validates a URL (http/https, host present, no userinfo, address
// allowed; a name is resolved and every address checked).
func (p URLPolicy) Check(ctx context.Context, raw string) error { panic("todo") }

// DialControl refuses, at connect time, addresses the policy refuses (so a
// name that re-resolves to a metadata address is still refused).
func (p URLPolicy) Transport() *http.Transport { panic("todo") }

// Outcome of one attempt.
type Outcome int

// Outcomes.
const (
	Delivered Outcome = iota
	Retry              // transient: 5xx, 429, network, breaker open
	Reject             // permanent: 4xx other than 408/429
)

// Sender posts payloads to receivers, one breaker per receiver id.
type Sender struct{}

// SenderConfig configures a Sender.
type SenderConfig struct {
	Policy  URLPolicy
	Timeout time.Duration // per attempt, default 10s
	// BreakerFailures consecutive failures open a receiver's breaker for
	// BreakerOpen (default 5 and 30s).
	BreakerFailures int
	BreakerOpen     time.Duration
	UserAgent       string
}

// NewSender builds a sender.
func NewSender(cfg SenderConfig) *Sender { panic("todo") }

// Send posts one payload (already JSON) to url for receiverID, signing it
// when secret is set. err explains a non-Delivered outcome.
func (s *Sender) Send(ctx context.Context, receiverID, url, secret string, body []byte) (Outcome, error) {
	panic("todo")
}

// Backoff is the wait before attempt n+1 (exponential from 1s, capped at
// 5m, with jitter).
func Backoff(attempt int) time.Duration { panic("todo") }
