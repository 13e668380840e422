// Package httpapi serves the alerting service's HTTP API behind the
// gateway's signed identity: webhook receivers (one route each), silences
// in Alertmanager's v2 shape, alerts (list, get, and POST /api/v2/alerts
// exactly as Prometheus pushes them), alerting rules and their per-tenant
// overrides, the remediation switch, dead letters, remediation runs and
// Prometheus HTTP service discovery. It maps JSON to the model at the edge,
// enforces tenancy and roles, and asks the engine to reload what changed;
// it keeps no state and does not evaluate, route or deliver anything.
package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
	"github.com/canopy-platform/canopy/services/alerting/internal/alertstore"
	"github.com/canopy-platform/canopy/services/alerting/internal/dispatch"
	"github.com/canopy-platform/canopy/services/alerting/internal/engine"
	"github.com/canopy-platform/canopy/services/alerting/internal/nodes"
	"github.com/canopy-platform/canopy/services/alerting/internal/rules"
)

// ReceiverStore keeps receivers; *alertstore.Store fits.
type ReceiverStore interface {
	CreateReceiver(ctx context.Context, r alertstore.Receiver) (alertstore.Receiver, error)
	UpdateReceiver(ctx context.Context, r alertstore.Receiver) (alertstore.Receiver, error)
	DeleteReceiver(ctx context.Context, tenant string, all bool, id string) error
	GetReceiver(ctx context.Context, tenant string, all bool, id string) (alertstore.Receiver, error)
	ListReceivers(ctx context.Context, tenant string, all bool) ([]alertstore.Receiver, error)
}

// SilenceStore keeps silences; *alertstore.Store fits.
type SilenceStore interface {
	CreateSilence(ctx context.Context, sil alert.Silence) (alert.Silence, error)
	ExpireSilence(ctx context.Context, tenant string, all bool, id string, now time.Time) error
	GetSilence(ctx context.Context, tenant string, all bool, id string) (alert.Silence, error)
	ListSilences(ctx context.Context, tenant string, all bool) ([]alert.Silence, error)
}

// AlertStore reads alerts; *alertstore.Store fits.
type AlertStore interface {
	ListAlerts(ctx context.Context, f alertstore.AlertFilter) (items []alertstore.StoredAlert, next string, err error)
	GetAlert(ctx context.Context, tenant string, all bool, fp alert.Fingerprint) (alertstore.StoredAlert, error)
}

// RuleStore keeps tenant rules, overrides of default rules and the
// remediation switch; *alertstore.Store fits.
type RuleStore interface {
	CreateRule(ctx context.Context, r rules.Rule) (rules.Rule, error)
	UpdateRule(ctx context.Context, r rules.Rule) (rules.Rule, error)
	DeleteRule(ctx context.Context, tenant, id string) error
	ListRules(ctx context.Context, tenant string, all bool) ([]rules.Rule, error)
	Remediation(ctx context.Context, tenant string) (bool, error)
	SetRemediation(ctx context.Context, tenant string, on bool) error
}

// DeliveryStore reads dead letters and remediation runs; *alertstore.Store
// fits.
type DeliveryStore interface {
	DeadLetters(ctx context.Context, tenant string, all bool, limit int) ([]alertstore.Delivery, error)
	RetryDeadLetter(ctx context.Context, tenant string, all bool, id int64, now time.Time) error
	ListActions(ctx context.Context, tenant string, all bool, limit int) ([]alertstore.ActionRun, error)
}

// Store is every part of the store the API uses.
type Store interface {
	ReceiverStore
	SilenceStore
	AlertStore
	RuleStore
	DeliveryStore
}

// Engine is the running core; *engine.Engine fits.
type Engine interface {
	Push(ctx context.Context, alerts []*alert.Alert) error
	Reload(ctx context.Context, what engine.What) error
	Muting(fp alert.Fingerprint) (silencedBy, inhibitedBy []string)
	Groups(ctx context.Context) ([]dispatch.GroupInfo, error)
}

// Nodes lists Prometheus scrape targets; *nodes.Registry fits.
type Nodes interface {
	Targets(tenant string, all bool) []nodes.TargetGroup
}

// URLChecker refuses webhook targets that would be server-side request
// forgery; webhook.URLPolicy fits.
type URLChecker interface {
	Check(ctx context.Context, raw string) error
}

// DefaultResolveTimeout is Alertmanager's resolve_timeout: a pushed alert
// without endsAt resolves this long after its last push.
const DefaultResolveTimeout = 5 * time.Minute

// DefaultMaxPushBody bounds POST /api/v2/alerts (Prometheus sends batches
// of 64 alerts by default; 4 MiB leaves room for large annotations).
const DefaultMaxPushBody = 4 << 20

// Deps is what the API needs.
type Deps struct {
	Store  Store
	Engine Engine
	Nodes  Nodes
	URLs   URLChecker
	// DefaultRules returns the shipped rules (default rules.Defaults).
	DefaultRules func() ([]rules.Rule, error)
	// ValidateRule checks a tenant rule (default rules.Rule.Validate).
	ValidateRule func(rules.Rule) error
	// ResolveTimeout is given to pushed alerts without endsAt (default 5m).
	ResolveTimeout time.Duration
	// MaxPushBody bounds a push's body (default 4 MiB). The router's own
	// body limit must be at least as large.
	MaxPushBody int64
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Log receives what the answers do not say (default discards).
	Log *slog.Logger
}

// API serves the routes.
type API struct {
	store          Store
	engine         Engine
	nodes          Nodes
	urls           URLChecker
	defaultRules   func() ([]rules.Rule, error)
	validateRule   func(rules.Rule) error
	resolveTimeout time.Duration
	maxPushBody    int64
	now            func() time.Time
	log            *slog.Logger
	started        time.Time
}

// New returns the API; a nil store, engine, node registry or URL checker is
// an error.
func New(d Deps) (*API, error) {
	if d.Store == nil || d.Engine == nil || d.Nodes == nil || d.URLs == nil {
		return nil, errors.New("alerting httpapi: nil store, engine, nodes or url checker")
	}
	if d.ResolveTimeout < 0 || d.MaxPushBody < 0 {
		return nil, errors.New("alerting httpapi: negative resolve timeout or max push body")
	}
	a := &API{store: d.Store, engine: d.Engine, nodes: d.Nodes, urls: d.URLs, defaultRules: d.DefaultRules,
		validateRule: d.ValidateRule, resolveTimeout: d.ResolveTimeout, maxPushBody: d.MaxPushBody, now: d.Now, log: d.Log}
	if a.defaultRules == nil {
		a.defaultRules = rules.Defaults
	}
	if a.validateRule == nil {
		a.validateRule = rules.Rule.Validate
	}
	if a.resolveTimeout == 0 {
		a.resolveTimeout = DefaultResolveTimeout
	}
	if a.maxPushBody == 0 {
		a.maxPushBody = DefaultMaxPushBody
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.started = a.now().UTC()
	return a, nil
}

// Routes mounts the API on r (behind tenancy.Middleware).
func (a *API) Routes(r chi.Router) {
	r.Get("/api/v1/alert-receivers", a.listReceivers)
	r.Post("/api/v1/alert-receivers", a.createReceiver)
	r.Get("/api/v1/alert-receivers/{id}", a.getReceiver)
	r.Patch("/api/v1/alert-receivers/{id}", a.patchReceiver)
	r.Delete("/api/v1/alert-receivers/{id}", a.deleteReceiver)

	r.Get("/api/v1/silences", a.listSilences)
	r.Post("/api/v1/silences", a.createSilence)
	r.Get("/api/v1/silences/{id}", a.getSilence)
	r.Delete("/api/v1/silences/{id}", a.expireSilence)

	r.Get("/api/v1/alerts", a.listAlerts)
	r.Get("/api/v1/alerts/{fingerprint}", a.getAlert)
	r.Post("/api/v2/alerts", a.pushAlerts)
	r.Get("/api/v2/status", a.status)

	r.Get("/api/v1/alert-rules", a.listRules)
	r.Post("/api/v1/alert-rules", a.createRule)
	r.Get("/api/v1/alert-rules/{id}", a.getRule)
	r.Put("/api/v1/alert-rules/{id}", a.putRule)
	r.Patch("/api/v1/alert-rules/{id}", a.patchRule)
	r.Delete("/api/v1/alert-rules/{id}", a.deleteRule)

	r.Get("/api/v1/alert-settings", a.getSettings)
	r.Put("/api/v1/alert-settings", a.putSettings)
	r.Get("/api/v1/alert-dead-letters", a.listDeadLetters)
	r.Post("/api/v1/alert-dead-letters/{id}/retry", a.retryDeadLetter)
	r.Get("/api/v1/alert-actions", a.listActions)
	r.Get("/api/v1/alert-groups", a.listGroups)
	r.Get("/api/v1/prometheus/targets", a.targets)
}

// scope is who a request acts for. A tenant's requests act for its own
// tenant. A platform-admin acts for the tenant ?tenant= names; without it,
// reads span everything (All) and creations make platform-owned objects
// (Tenant "").
type scope struct {
	p      tenancy.Principal
	tenant string
	all    bool
}

// owner is the tenant that objects created in this scope belong to.
func (s scope) owner() string { return s.tenant }

// admin reports whether the caller is a platform-admin.
func (s scope) admin() bool { return s.p.Role == tenancy.RolePlatformAdmin }

// authorize checks the role for action on what and reads the scope. A
// tenant naming another tenant in ?tenant= gets 403. On false the problem
// has been written.
func authorize(w http.ResponseWriter, r *http.Request, action tenancy.Action, what string) (scope, bool) {
	p, ok := httpx.Authorize(w, r, action, what)
	if !ok {
		return scope{}, false
	}
	asked := r.URL.Query().Get("tenant")
	if p.Role == tenancy.RolePlatformAdmin {
		if asked != "" {
			if _, err := tenancy.Parse(asked); err != nil {
				httpx.WriteProblem(w, r, httpx.BadRequest("invalid query parameter",
					httpx.FieldError{Field: "tenant", Reason: "not a tenant id"}))
				return scope{}, false
			}
		}
		return scope{p: p, tenant: asked, all: asked == ""}, true
	}
	if p.Tenant == "" {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusForbidden, "a tenant role needs a tenant"))
		return scope{}, false
	}
	if asked != "" && asked != string(p.Tenant) {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusForbidden, "a tenant may only see its own "+what))
		return scope{}, false
	}
	return scope{p: p, tenant: string(p.Tenant)}, true
}

// notFound answers 404 for what; another tenant's objects get the same
// answer as missing ones.
func notFound(w http.ResponseWriter, r *http.Request, what string) {
	httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusNotFound, "no such "+what))
}

// storeError answers a store error: ErrNotFound 404, ErrConflict 409,
// anything else a logged 500.
func (a *API) storeError(w http.ResponseWriter, r *http.Request, what string, err error) {
	switch {
	case errors.Is(err, alertstore.ErrNotFound):
		notFound(w, r, what)
	case errors.Is(err, alertstore.ErrConflict):
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusConflict, "a "+what+" with that name or id exists"))
	default:
		a.internalError(w, r, what, err)
	}
}

// internalError logs err and answers 500.
func (a *API) internalError(w http.ResponseWriter, r *http.Request, what string, err error) {
	a.log.ErrorContext(r.Context(), "alerting api: "+what, "err", err, "path", r.URL.Path, "method", r.Method)
	httpx.WriteError(w, r, err)
}

// reload asks the engine to re-read what changed. The change is stored
// either way: a failed reload is logged, and the engine picks the change up
// at its next reload or start, so the answer still reports success.
func (a *API) reload(ctx context.Context, what engine.What) {
	if err := a.engine.Reload(ctx, what); err != nil {
		a.log.ErrorContext(ctx, "alerting api: engine reload after a change", "what", int(what), "err", err)
	}
}

// list is the shape of every list answer.
type list[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}
