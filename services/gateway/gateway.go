// Package gateway is Canopy's only public HTTP listener: it authenticates API
// keys, rate limits per tenant, authorizes with the tenancy role matrix,
// serves the tenant, API key, quota and audit APIs, the OpenAPI document,
// the portal (the web console, with sign-in sessions) at /,
// and forwards everything else to the owning service with the caller's
// identity in signed headers. On a second, internal listener it serves the
// services under /internal/v1 (provisioning reads tenants' quotas there), to
// signed requests only, and the operator endpoints /metrics and a detailed
// /readyz. main uses Config and NewProcess (which opens its own database and
// Redis); the all-in-one binary Config, New and Run.
package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/idempotency"
	"github.com/canopy-platform/canopy/libs/launch"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/gateway/internal/apikey"
	"github.com/canopy-platform/canopy/services/gateway/internal/audit"
	"github.com/canopy-platform/canopy/services/gateway/internal/auththrottle"
	"github.com/canopy-platform/canopy/services/gateway/internal/httpapi"
	"github.com/canopy-platform/canopy/services/gateway/internal/mysqlrepo"
	"github.com/canopy-platform/canopy/services/gateway/internal/portal"
	"github.com/canopy-platform/canopy/services/gateway/internal/proxy"
	"github.com/canopy-platform/canopy/services/gateway/internal/ratelimit"
	"github.com/canopy-platform/canopy/services/gateway/internal/tenant"
	"github.com/canopy-platform/canopy/services/gateway/migrations"
)

// DefaultDatabase is the gateway's MySQL database.
const DefaultDatabase = "canopy_gateway"

// Config configures the gateway. Environment variables carry the CANOPY_ prefix.
type Config struct {
	// Addr is the public listen address: the API, /livez and a /readyz that
	// says only ready or not.
	Addr string `yaml:"addr" env:"GATEWAY_ADDR" default:"127.0.0.1:8080"`
	// InternalAddr is the internal listen address, never to be exposed
	// publicly: the services' /internal/v1 API, /metrics and a /readyz that
	// names each dependency and its error.
	InternalAddr string `yaml:"internal_addr" env:"GATEWAY_INTERNAL_ADDR" default:"127.0.0.1:8092"`
	// StateDir holds the generated admin key and internal secret in dev.
	StateDir string `yaml:"state_dir" env:"STATE_DIR" default:".canopy"`
	// AdminKey, when set, is the bootstrap platform-admin key (at least 16
	// characters). When empty, one is generated at first start, printed once
	// and written to <StateDir>/admin-key.
	AdminKey string `yaml:"admin_key" env:"ADMIN_KEY"`
	// InternalSecret signs the identity headers for services (at least 16
	// characters). When empty it is read from, or generated into,
	// <StateDir>/internal-secret; every service must use the same one.
	InternalSecret string `yaml:"internal_secret" env:"INTERNAL_SECRET"`
	// InternalSecretPrevious, during a rotation, is the secret being replaced:
	// still accepted from services, never used to sign (docs/security.md).
	InternalSecretPrevious string `yaml:"internal_secret_previous" env:"INTERNAL_SECRET_PREVIOUS"`
	// Store is the MySQL connection; Database defaults to canopy_gateway.
	Store store.Config `yaml:"store" envPrefix:"MYSQL_"`
	// RedisAddr is the Redis used for rate limits.
	RedisAddr string `yaml:"redis_addr" env:"REDIS_ADDR" default:"127.0.0.1:6379"`
	// CatalogURL and SchedulingURL are the upstream services. Each upstream
	// URL may list several replicas, comma-separated: requests go round
	// robin to the ready ones (health-checked every
	// UpstreamHealthInterval on their /readyz).
	CatalogURL    string `yaml:"catalog_url" env:"CATALOG_URL" default:"http://127.0.0.1:8082"`
	SchedulingURL string `yaml:"scheduling_url" env:"SCHEDULING_URL" default:"http://127.0.0.1:8083"`
	// ProvisioningURL, HealthcheckURL and FailoverURL are the instance services.
	ProvisioningURL string `yaml:"provisioning_url" env:"PROVISIONING_URL" default:"http://127.0.0.1:8084"`
	HealthcheckURL  string `yaml:"healthcheck_url" env:"HEALTHCHECK_URL" default:"http://127.0.0.1:8085"`
	FailoverURL     string `yaml:"failover_url" env:"FAILOVER_URL" default:"http://127.0.0.1:8086"`
	// RouterURL is a router replica's HTTP API (the endpoints' live state);
	// each replica answers for itself, so any one of them will do.
	RouterURL string `yaml:"router_url" env:"ROUTER_URL" default:"http://127.0.0.1:8090"`
	// CDCURL is the cdc service (an instance's change data capture streams).
	CDCURL string `yaml:"cdc_url" env:"CDC_URL" default:"http://127.0.0.1:8087"`
	// MeteringURL is the metering service (usage, meters, costs, invoices,
	// budgets, prices).
	MeteringURL string `yaml:"metering_url" env:"METERING_URL" default:"http://127.0.0.1:8088"`
	// AlertingURL is the alerting service (alerts, receivers, silences,
	// rules, the Alertmanager v2 push API, Prometheus service discovery).
	AlertingURL string `yaml:"alerting_url" env:"ALERTING_URL" default:"http://127.0.0.1:8089"`
	// BackupURL is the backup service (an instance's backups, restore
	// window, backup policy and restore drills).
	BackupURL string `yaml:"backup_url" env:"BACKUP_URL" default:"http://127.0.0.1:8091"`
	// UpstreamTimeout bounds waiting for an upstream's response headers.
	UpstreamTimeout time.Duration `yaml:"upstream_timeout" env:"GATEWAY_UPSTREAM_TIMEOUT" default:"30s"`
	// UpstreamRetries is how often GET/HEAD are retried after a failed
	// connect to a single-replica upstream; with several replicas a failed
	// request goes once to each other replica instead, when that is safe.
	UpstreamRetries int `yaml:"upstream_retries" env:"GATEWAY_UPSTREAM_RETRIES" default:"2"`
	// UpstreamHealthInterval is how often each replica of an upstream with
	// several is checked on its /readyz; one that fails a check or a
	// request leaves the rotation until a check passes.
	UpstreamHealthInterval time.Duration `yaml:"upstream_health_interval" env:"GATEWAY_UPSTREAM_HEALTH_INTERVAL" default:"1s"`
	// BreakerFailures consecutive failures open an upstream's circuit breaker
	// for BreakerOpenFor.
	BreakerFailures int           `yaml:"breaker_failures" env:"GATEWAY_BREAKER_FAILURES" default:"5"`
	BreakerOpenFor  time.Duration `yaml:"breaker_open_for" env:"GATEWAY_BREAKER_OPEN_FOR" default:"5s"`
	// RateLimitRPS and RateLimitBurst are the default per-tenant token bucket.
	RateLimitRPS   int `yaml:"rate_limit_rps" env:"GATEWAY_RATE_LIMIT_RPS" default:"50"`
	RateLimitBurst int `yaml:"rate_limit_burst" env:"GATEWAY_RATE_LIMIT_BURST" default:"100"`
	// AuthFailures is how many failed authentications (bad API keys, bad or
	// missing OSB Basic credentials) a client address may have per
	// AuthFailureWindow before it is refused with 429, without lookups.
	AuthFailures      int           `yaml:"auth_failures" env:"GATEWAY_AUTH_FAILURES" default:"20"`
	AuthFailureWindow time.Duration `yaml:"auth_failure_window" env:"GATEWAY_AUTH_FAILURE_WINDOW" default:"1m"`
	// TrustedProxies are the CIDRs (or addresses) of proxies in front of the
	// gateway (load balancer, ingress) whose X-Forwarded-For is believed
	// when telling clients apart; empty uses the TCP peer.
	TrustedProxies []string `yaml:"trusted_proxies" env:"GATEWAY_TRUSTED_PROXIES"`
	// RateLimitPrefix namespaces the limiter's Redis keys.
	RateLimitPrefix string `yaml:"rate_limit_prefix" env:"GATEWAY_RATE_LIMIT_PREFIX" default:"canopy:gateway:rl:"`
	// KeyCacheTTL is how long other replicas may keep honouring a revoked key
	// (the replica that revoked it stops at once).
	KeyCacheTTL time.Duration `yaml:"key_cache_ttl" env:"GATEWAY_KEY_CACHE_TTL" default:"10s"`
	// SessionTTL is how long a portal sign-in session lives (the cookie's
	// Max-Age); the session also ends when its API key is revoked.
	SessionTTL time.Duration `yaml:"session_ttl" env:"GATEWAY_SESSION_TTL" default:"12h"`
	// OpenAPIPath is the OpenAPI document served at /api/v1/openapi.yaml,
	// relative to the working directory (the repository root in dev).
	OpenAPIPath string `yaml:"openapi_path" env:"GATEWAY_OPENAPI_PATH" default:"api/openapi/canopy.v1.yaml"`
	// AccessLog writes one log line per request.
	AccessLog bool `yaml:"access_log" env:"GATEWAY_ACCESS_LOG" default:"true"`
	// Tracing creates an OTel server span per request.
	Tracing bool `yaml:"tracing" env:"GATEWAY_TRACING" default:"false"`
	// MaxBodyBytes bounds request bodies.
	MaxBodyBytes int64 `yaml:"max_body_bytes" env:"GATEWAY_MAX_BODY_BYTES" default:"1048576"`
	// ShutdownTimeout bounds draining in-flight requests.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout" env:"GATEWAY_SHUTDOWN_TIMEOUT" default:"15s"`
}

// Defaults returns the configuration the default tags describe, for callers
// that build a Config in code (tests, the all-in-one binary).
func Defaults() Config {
	return Config{
		Addr: "127.0.0.1:8080", InternalAddr: "127.0.0.1:8092", StateDir: ".canopy", Store: store.Config{Database: DefaultDatabase},
		RedisAddr: "127.0.0.1:6379", CatalogURL: "http://127.0.0.1:8082", SchedulingURL: "http://127.0.0.1:8083",
		ProvisioningURL: "http://127.0.0.1:8084", HealthcheckURL: "http://127.0.0.1:8085", FailoverURL: "http://127.0.0.1:8086",
		RouterURL: "http://127.0.0.1:8090", CDCURL: "http://127.0.0.1:8087", MeteringURL: "http://127.0.0.1:8088", AlertingURL: "http://127.0.0.1:8089",
		BackupURL:       "http://127.0.0.1:8091",
		UpstreamTimeout: 30 * time.Second, UpstreamRetries: 2, UpstreamHealthInterval: time.Second, BreakerFailures: 5, BreakerOpenFor: 5 * time.Second,
		RateLimitRPS: 50, RateLimitBurst: 100, AuthFailures: 20, AuthFailureWindow: time.Minute, RateLimitPrefix: "canopy:gateway:rl:", KeyCacheTTL: 10 * time.Second,
		SessionTTL:  12 * time.Hour,
		OpenAPIPath: "api/openapi/canopy.v1.yaml", AccessLog: true, MaxBodyBytes: 1 << 20, ShutdownTimeout: 15 * time.Second,
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("addr %q: %w", c.Addr, err))
	}
	if _, _, err := net.SplitHostPort(c.InternalAddr); err != nil {
		errs = append(errs, fmt.Errorf("internal_addr %q: %w", c.InternalAddr, err))
	} else if c.InternalAddr == c.Addr && !strings.HasSuffix(c.Addr, ":0") {
		errs = append(errs, errors.New("internal_addr must differ from addr: the internal API must not be public"))
	}
	if c.AdminKey != "" && len(c.AdminKey) < 16 {
		errs = append(errs, errors.New("admin_key must be at least 16 characters"))
	}
	if c.InternalSecret != "" && len(c.InternalSecret) < 16 {
		errs = append(errs, errors.New("internal_secret must be at least 16 characters"))
	}
	if c.InternalSecretPrevious != "" && len(c.InternalSecretPrevious) < 16 {
		errs = append(errs, errors.New("internal_secret_previous must be at least 16 characters"))
	}
	if c.InternalSecret == "" && c.StateDir == "" {
		errs = append(errs, errors.New("state_dir is required when internal_secret is empty"))
	}
	for name, u := range map[string]string{"catalog_url": c.CatalogURL, "scheduling_url": c.SchedulingURL,
		"provisioning_url": c.ProvisioningURL, "healthcheck_url": c.HealthcheckURL, "failover_url": c.FailoverURL, "router_url": c.RouterURL, "cdc_url": c.CDCURL,
		"metering_url": c.MeteringURL, "alerting_url": c.AlertingURL, "backup_url": c.BackupURL} {
		urls := proxy.SplitURLs(u)
		if len(urls) == 0 {
			errs = append(errs, fmt.Errorf("%s %q must be an http(s) URL", name, u))
		}
		for _, one := range urls {
			if !strings.HasPrefix(one, "http://") && !strings.HasPrefix(one, "https://") {
				errs = append(errs, fmt.Errorf("%s %q must be an http(s) URL", name, one))
			}
		}
	}
	if c.RedisAddr == "" {
		errs = append(errs, errors.New("redis_addr is required"))
	}
	if c.RateLimitRPS < 1 || c.RateLimitBurst < 1 || c.RateLimitRPS > tenant.MaxRate || c.RateLimitBurst > tenant.MaxRate {
		errs = append(errs, fmt.Errorf("rate_limit_rps and rate_limit_burst must be between 1 and %d", tenant.MaxRate))
	}
	if c.AuthFailures < 1 || c.AuthFailureWindow <= 0 {
		errs = append(errs, errors.New("auth_failures and auth_failure_window must be positive"))
	}
	if _, err := auththrottle.NewResolver(c.TrustedProxies); err != nil {
		errs = append(errs, err)
	}
	if c.UpstreamTimeout <= 0 || c.BreakerOpenFor <= 0 || c.KeyCacheTTL <= 0 || c.UpstreamHealthInterval < 0 {
		errs = append(errs, errors.New("upstream_timeout, breaker_open_for and key_cache_ttl must be positive, upstream_health_interval not negative"))
	}
	if c.SessionTTL < time.Minute || c.SessionTTL > 30*24*time.Hour {
		errs = append(errs, fmt.Errorf("session_ttl %v must be between 1m and 720h", c.SessionTTL))
	}
	if c.BreakerFailures < 1 || c.UpstreamRetries < 0 {
		errs = append(errs, errors.New("breaker_failures must be positive and upstream_retries not negative"))
	}
	if c.Store.Database != "" {
		if err := c.Store.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Routes returns the proxied route table: which path goes to which service.
// No route may lie under /internal/, which only signed service requests reach.
func Routes() []httpapi.Route {
	return []httpapi.Route{
		{Pattern: "/api/v1/catalog/*", Upstream: "catalog"},
		{Pattern: "/v2/*", Upstream: "catalog", Public: true, Broker: true},
		{Pattern: "/api/v1/inventory", Upstream: "scheduling"},
		{Pattern: "/api/v1/inventory/*", Upstream: "scheduling"},
		{Pattern: "/api/v1/placements", Upstream: "scheduling"},
		{Pattern: "/api/v1/placements:simulate", Upstream: "scheduling"},
		{Pattern: "/api/v1/placements/*", Upstream: "scheduling"},
		{Pattern: "/api/v1/instances", Upstream: "provisioning"},
		{Pattern: "/api/v1/instances/*", Upstream: "provisioning"},
		{Pattern: "/api/v1/operations/*", Upstream: "provisioning"},
		{Pattern: "/api/v1/instances/{id}/health", Upstream: "healthcheck"},
		{Pattern: "/api/v1/health/*", Upstream: "healthcheck"},
		{Pattern: "/api/v1/instances/{id}/failovers", Upstream: "failover"},
		{Pattern: "/api/v1/instances/{id}/failovers/*", Upstream: "failover"},
		{Pattern: "/api/v1/instances/{id}/switchover", Upstream: "failover"},
		{Pattern: "/api/v1/instances/{id}/drills", Upstream: "failover"},
		{Pattern: "/api/v1/instances/{id}/drill-schedule", Upstream: "failover"},
		{Pattern: "/api/v1/drills", Upstream: "failover"},
		{Pattern: "/api/v1/drills/*", Upstream: "failover"},
		{Pattern: "/api/v1/instances/{id}/endpoints", Upstream: "router"},
		{Pattern: "/api/v1/router/endpoints", Upstream: "router"},
		// More specific than /api/v1/instances/*, so chi sends them to the cdc
		// service whatever the order; the stream actions (…/{stream}:pause)
		// are under the wildcard.
		{Pattern: "/api/v1/instances/{id}/cdc-streams", Upstream: "cdc"},
		{Pattern: "/api/v1/instances/{id}/cdc-streams/*", Upstream: "cdc"},
		// Backups: an instance's backups, restore window, policy and
		// restore drills (restores themselves are orders to provisioning,
		// POST /api/v1/instances with restore_from); plans' default
		// policies.
		{Pattern: "/api/v1/instances/{id}/backups", Upstream: "backup"},
		{Pattern: "/api/v1/instances/{id}/backups/*", Upstream: "backup"},
		{Pattern: "/api/v1/instances/{id}/restore-window", Upstream: "backup"},
		{Pattern: "/api/v1/instances/{id}/backup-policy", Upstream: "backup"},
		{Pattern: "/api/v1/instances/{id}/restore-drills", Upstream: "backup"},
		{Pattern: "/api/v1/backup-policies/*", Upstream: "backup"},
		// Sync jobs name their instances in the body, so they are a
		// top-level resource of the cdc service.
		{Pattern: "/api/v1/sync-jobs", Upstream: "cdc"},
		{Pattern: "/api/v1/sync-jobs/*", Upstream: "cdc"},
		// Usage and what it costs; /api/v1/usage/* holds the ingestion API
		// (POST /api/v1/usage/events) and the late events.
		{Pattern: "/api/v1/usage", Upstream: "metering"},
		{Pattern: "/api/v1/usage/*", Upstream: "metering"},
		{Pattern: "/api/v1/meters", Upstream: "metering"},
		{Pattern: "/api/v1/meters/*", Upstream: "metering"},
		{Pattern: "/api/v1/costs", Upstream: "metering"},
		{Pattern: "/api/v1/costs/*", Upstream: "metering"},
		{Pattern: "/api/v1/invoices", Upstream: "metering"},
		{Pattern: "/api/v1/invoices/*", Upstream: "metering"},
		{Pattern: "/api/v1/budget", Upstream: "metering"},
		{Pattern: "/api/v1/budget/*", Upstream: "metering"},
		{Pattern: "/api/v1/prices", Upstream: "metering"},
		{Pattern: "/api/v1/prices/*", Upstream: "metering"},
		// Alerts, their receivers (one route each), silences, rules,
		// settings, dead letters and remediation runs; the Alertmanager v2
		// API Prometheus pushes to and reads the status of; the node
		// targets Prometheus discovers (HTTP SD).
		{Pattern: "/api/v1/alerts", Upstream: "alerting"},
		{Pattern: "/api/v1/alerts/*", Upstream: "alerting"},
		{Pattern: "/api/v1/alert-receivers", Upstream: "alerting"},
		{Pattern: "/api/v1/alert-receivers/*", Upstream: "alerting"},
		{Pattern: "/api/v1/alert-rules", Upstream: "alerting"},
		{Pattern: "/api/v1/alert-rules/*", Upstream: "alerting"},
		{Pattern: "/api/v1/alert-settings", Upstream: "alerting"},
		{Pattern: "/api/v1/alert-dead-letters", Upstream: "alerting"},
		{Pattern: "/api/v1/alert-dead-letters/*", Upstream: "alerting"},
		{Pattern: "/api/v1/alert-actions", Upstream: "alerting"},
		{Pattern: "/api/v1/alert-groups", Upstream: "alerting"},
		{Pattern: "/api/v1/silences", Upstream: "alerting"},
		{Pattern: "/api/v1/silences/*", Upstream: "alerting"},
		{Pattern: "/api/v2/alerts", Upstream: "alerting"},
		{Pattern: "/api/v2/status", Upstream: "alerting"},
		{Pattern: "/api/v1/prometheus/*", Upstream: "alerting"},
	}
}

// Deps are the gateway's collaborators.
type Deps struct {
	// Logger is required.
	Logger *slog.Logger
	// Registry receives the metrics and is served at /metrics; required.
	Registry *prometheus.Registry
	// DB is the open canopy_gateway database; required.
	DB *store.DB
	// Redis backs the rate limiter; required.
	Redis redis.UniversalClient
	// Stdout receives the generated admin key, once; defaults to io.Discard.
	Stdout io.Writer
	// Now is the clock; defaults to time.Now.
	Now func() time.Time
}

// Service is a constructed gateway.
type Service struct {
	launch.Base
	cfg    Config
	deps   Deps
	repo   *mysqlrepo.Repo
	auth   *apikey.Authenticator
	proxy  *proxy.Proxy
	server *httpx.Server
	// internal serves /internal/v1, /metrics and the detailed /readyz.
	internal *httpx.Server
	purgeIv  time.Duration
	// sweepIv is how often expired portal sessions are deleted.
	sweepIv time.Duration
}

// idempotencyLabel derives the key that seals stored answers; changing it
// makes every stored answer unreadable.
const idempotencyLabel = "canopy gateway idempotency v1"

// New builds the gateway. It resolves the internal secret (creating it in
// the state directory if needed) but does not touch the database or the
// network; Run does.
func New(cfg Config, deps Deps) (*Service, error) {
	if cfg.Store.Database == "" {
		cfg.Store.Database = DefaultDatabase
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new gateway: %w", err)
	}
	if deps.Logger == nil || deps.Registry == nil || deps.DB == nil || deps.Redis == nil {
		return nil, errors.New("new gateway: logger, registry, db and redis are required")
	}
	if deps.Stdout == nil {
		deps.Stdout = io.Discard
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	// Each listener drains within ShutdownTimeout; its stage gets as long again.
	base := launch.NewBase("gateway", deps.Logger, max(launch.DefaultStopTimeout, 2*cfg.ShutdownTimeout))
	logger := base.Logger()
	secret, err := ResolveInternalSecret(cfg)
	if err != nil {
		return nil, fmt.Errorf("new gateway: %w", err)
	}
	repo, err := mysqlrepo.New(deps.DB)
	if err != nil {
		return nil, fmt.Errorf("new gateway: %w", err)
	}
	auth, err := apikey.NewAuthenticator(repo, apikey.AuthConfig{CacheTTL: cfg.KeyCacheTTL}, logger, deps.Now)
	if err != nil {
		return nil, fmt.Errorf("new gateway: %w", err)
	}
	limiter, err := ratelimit.New(deps.Redis, ratelimit.Config{Prefix: cfg.RateLimitPrefix}, deps.Now)
	if err != nil {
		return nil, fmt.Errorf("new gateway: %w", err)
	}
	throttle, err := auththrottle.New(deps.Redis, auththrottle.Config{Prefix: cfg.RateLimitPrefix, Failures: cfg.AuthFailures, Window: cfg.AuthFailureWindow}, deps.Now)
	if err != nil {
		return nil, fmt.Errorf("new gateway: %w", err)
	}
	addrs, err := auththrottle.NewResolver(cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("new gateway: %w", err)
	}
	metrics, err := proxy.NewMetrics(deps.Registry)
	if err != nil {
		return nil, fmt.Errorf("new gateway: %w", err)
	}
	px, err := proxy.New(proxy.Config{Retries: cfg.UpstreamRetries, BreakerFailures: uint32(cfg.BreakerFailures), BreakerOpenFor: cfg.BreakerOpenFor,
		HealthInterval: cfg.UpstreamHealthInterval},
		[]proxy.Upstream{
			{Name: "catalog", URL: cfg.CatalogURL, Timeout: cfg.UpstreamTimeout},
			{Name: "scheduling", URL: cfg.SchedulingURL, Timeout: cfg.UpstreamTimeout},
			{Name: "provisioning", URL: cfg.ProvisioningURL, Timeout: cfg.UpstreamTimeout},
			{Name: "healthcheck", URL: cfg.HealthcheckURL, Timeout: cfg.UpstreamTimeout},
			{Name: "failover", URL: cfg.FailoverURL, Timeout: cfg.UpstreamTimeout},
			{Name: "router", URL: cfg.RouterURL, Timeout: cfg.UpstreamTimeout},
			{Name: "cdc", URL: cfg.CDCURL, Timeout: cfg.UpstreamTimeout},
			{Name: "metering", URL: cfg.MeteringURL, Timeout: cfg.UpstreamTimeout},
			{Name: "alerting", URL: cfg.AlertingURL, Timeout: cfg.UpstreamTimeout},
			{Name: "backup", URL: cfg.BackupURL, Timeout: cfg.UpstreamTimeout},
		}, secret, metrics, logger)
	if err != nil {
		return nil, fmt.Errorf("new gateway: %w", err)
	}
	rec, err := audit.NewRecorder(repo, logger, deps.Now)
	if err != nil {
		return nil, fmt.Errorf("new gateway: %w", err)
	}
	idem, err := idempotency.New(idempotency.Config{Store: repo, Secret: secret, Previous: [][]byte{[]byte(cfg.InternalSecretPrevious)},
		Label: idempotencyLabel, TTL: 24 * time.Hour, Logger: logger, Now: deps.Now})
	if err != nil {
		return nil, fmt.Errorf("new gateway: %w", err)
	}
	spec, err := os.ReadFile(cfg.OpenAPIPath)
	if err != nil {
		logger.Warn("OpenAPI document not found; /api/v1/openapi.yaml will answer 404", "path", cfg.OpenAPIPath, "err", err)
		spec = nil
	}
	opts := []httpx.RouterOption{httpx.WithMaxBodyBytes(cfg.MaxBodyBytes)}
	if !cfg.AccessLog {
		opts = append(opts, httpx.WithoutAccessLog())
	}
	if !cfg.Tracing {
		opts = append(opts, httpx.WithoutTracing())
	}
	portalHandler, err := portal.New()
	if err != nil {
		return nil, fmt.Errorf("new gateway: %w", err)
	}
	handler, err := httpapi.NewHandler(httpapi.Deps{
		Store: repo, Auth: auth, Limiter: limiter, Throttle: throttle, Addrs: addrs,
		DefaultLimit: tenant.RateLimit{RPS: cfg.RateLimitRPS, Burst: cfg.RateLimitBurst},
		Proxy:        px, Routes: Routes(), Audit: rec, Idempotency: idem, OpenAPI: spec,
		Logger: logger, Now: deps.Now, RouterOptions: opts, LimitCacheTTL: cfg.KeyCacheTTL,
		Sessions: repo, SessionTTL: cfg.SessionTTL, Portal: portalHandler,
	})
	if err != nil {
		return nil, fmt.Errorf("new gateway: %w", err)
	}
	internal, err := httpapi.NewInternalHandler(httpapi.InternalDeps{Store: repo,
		Secrets: [][]byte{secret, []byte(cfg.InternalSecretPrevious)}, Logger: logger, RouterOptions: opts})
	if err != nil {
		return nil, fmt.Errorf("new gateway: %w", err)
	}
	// /internal/* is served only on the internal listener; the public one
	// answers 404 there and serves neither /metrics nor readiness details.
	server := httpx.NewServer(httpx.Config{Addr: cfg.Addr, ShutdownTimeout: cfg.ShutdownTimeout},
		httpapi.WithoutInternal(handler), logger, nil, httpx.WithBriefReadiness())
	internalServer := httpx.NewServer(httpx.Config{Addr: cfg.InternalAddr, ShutdownTimeout: cfg.ShutdownTimeout}, internal, logger, deps.Registry)
	for _, srv := range []*httpx.Server{server, internalServer} {
		srv.AddReadinessCheck("mysql", func(ctx context.Context) error { return deps.DB.SQL().PingContext(ctx) })
		srv.AddReadinessCheck("redis", func(ctx context.Context) error { return deps.Redis.Ping(ctx).Err() })
	}
	deps.Logger = logger
	return &Service{Base: base, cfg: cfg, deps: deps, repo: repo, auth: auth, proxy: px, server: server, internal: internalServer,
		purgeIv: time.Hour, sweepIv: min(10*time.Minute, cfg.SessionTTL)}, nil
}

// Addr returns the public listen address once Ready is closed (Ready,
// closed once the gateway listens on both addresses, is launch.Base's).
func (s *Service) Addr() string { return s.server.Addr() }

// InternalAddr returns the internal listen address once Ready is closed.
func (s *Service) InternalAddr() string { return s.internal.Addr() }

// Run migrates the database, ensures the bootstrap admin key, and serves
// until ctx ends; then it drains requests (the public listener first, both
// unready at once) and flushes key usage. One part failing stops the rest.
func (s *Service) Run(ctx context.Context) error {
	return s.RunStages(ctx,
		launch.Then(launch.MigrateStage(&s.deps.DB, migrations.FS), s.ensureAdminKey),
		// Upstream connections close once nothing proxies any more.
		// Replicas are health-checked until nothing proxies any more.
		launch.Stage{Name: "proxy", Run: s.proxy.Run, Stop: func(context.Context) error { s.proxy.Close(); return nil }},
		launch.Stage{Name: "key usage flusher", Run: s.auth.Run},
		launch.Stage{Name: "idempotency purger", Run: s.purgeIdempotency},
		launch.Stage{Name: "session sweeper", Run: s.sweepSessions},
		launch.Serve("internal http", func(context.Context) (*httpx.Server, error) { return s.internal, nil }),
		launch.Serve("http", func(context.Context) (*httpx.Server, error) { return s.server, nil }),
	)
}

func (s *Service) purgeIdempotency(ctx context.Context) error {
	t := time.NewTicker(s.purgeIv)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if _, err := s.repo.PurgeIdempotency(ctx, s.deps.Now().Add(-24*time.Hour)); err != nil && ctx.Err() == nil {
				s.deps.Logger.Warn("purge idempotency records", "err", err)
			}
		}
	}
}

// sweepSessions deletes expired portal sessions every sweepIv; every
// replica may run it (the delete is idempotent). Expired sessions are
// refused whether swept or not.
func (s *Service) sweepSessions(ctx context.Context) error {
	t := time.NewTicker(s.sweepIv)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if _, err := s.repo.DeleteExpiredSessions(ctx, s.deps.Now()); err != nil && ctx.Err() == nil {
				s.deps.Logger.Warn("delete expired sessions", "err", err)
			}
		}
	}
}

// ensureAdminKey installs the configured bootstrap key, or generates one at
// first start and shows it once.
func (s *Service) ensureAdminKey(ctx context.Context) error {
	now := s.deps.Now().UTC().Truncate(time.Microsecond)
	if s.cfg.AdminKey != "" {
		k := apikey.FromToken(s.cfg.AdminKey, tenancy.RolePlatformAdmin, "bootstrap", now)
		if err := s.repo.PutBootstrapKey(ctx, k, now); err != nil {
			return err
		}
		s.auth.Invalidate(k.ID)
		return nil
	}
	path := filepath.Join(s.cfg.StateDir, "admin-key")
	ok, err := s.repo.HasBootstrapKey(ctx)
	if err != nil {
		return err
	}
	if ok {
		if _, statErr := os.Stat(path); statErr == nil {
			return nil
		}
		// The database outlived the state dir that held the only copy of the
		// key: without a new one nobody could administer the platform.
		s.deps.Logger.Warn("bootstrap admin key file is missing; rotating the bootstrap key", "file", path)
	}
	k, token, err := apikey.New("", tenancy.RolePlatformAdmin, "bootstrap", now)
	if err != nil {
		return err
	}
	if err := writeSecretFile(path, token, false); err != nil {
		return err
	}
	if err := s.repo.PutBootstrapKey(ctx, k, now); err != nil {
		return err
	}
	fmt.Fprintf(s.deps.Stdout, "\nCanopy platform-admin API key (shown once, also saved to %s):\n\n    %s\n\n", path, token)
	s.deps.Logger.Info("generated the bootstrap platform-admin key", "key_id", k.ID, "file", path)
	return nil
}

// ResolveInternalSecret returns the configured secret or the one in the state
// directory, generating it there on first use.
func ResolveInternalSecret(cfg Config) ([]byte, error) {
	if cfg.InternalSecret != "" {
		return []byte(cfg.InternalSecret), nil
	}
	path := filepath.Join(cfg.StateDir, "internal-secret")
	b, err := os.ReadFile(path)
	if err == nil {
		if s := strings.TrimSpace(string(b)); len(s) >= 16 {
			return []byte(s), nil
		}
		return nil, fmt.Errorf("internal secret in %s is shorter than 16 characters", path)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read internal secret: %w", err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, fmt.Errorf("generate internal secret: %w", err)
	}
	s := hex.EncodeToString(raw[:])
	if err := writeSecretFile(path, s, true); err != nil {
		if errors.Is(err, fs.ErrExist) { // another process won the race
			return ResolveInternalSecret(cfg)
		}
		return nil, err
	}
	return []byte(s), nil
}

// writeSecretFile writes path with mode 0600; with exclusive it fails if the
// file exists, otherwise it replaces it (a stale key from an older database).
func writeSecretFile(path, content string, exclusive bool) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if exclusive {
		flags = os.O_WRONLY | os.O_CREATE | os.O_EXCL
	} else {
		_ = os.Remove(path) // recreate, so the mode is 0600 even if the old file's was not
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.WriteString(content + "\n"); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Handler is exposed for tests of the public HTTP surface without a listener.
func (s *Service) Handler() http.Handler { return s.server.Handler() }
