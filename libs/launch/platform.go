package launch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/libs/config"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/tenancy"
)

// MinSecretLen is the shortest accepted internal secret.
const MinSecretLen = 16

// Secrets are the keys of the identity the gateway signs, read under the
// same names by every service behind it: embed it with `yaml:",inline"` and
// no envPrefix.
type Secrets struct {
	// InternalSecret is the HMAC key the gateway signs identities with,
	// shared by every service.
	InternalSecret string `yaml:"internal_secret" env:"INTERNAL_SECRET"`
	// InternalSecretPrevious, during a rotation, is the secret being replaced:
	// still accepted on incoming requests, never used to sign (docs/security.md).
	InternalSecretPrevious string `yaml:"internal_secret_previous" env:"INTERNAL_SECRET_PREVIOUS"`
}

// Validate reports secrets that are too short.
func (s Secrets) Validate() error {
	var errs []error
	if len(s.InternalSecret) < MinSecretLen {
		errs = append(errs, fmt.Errorf("internal_secret (CANOPY_INTERNAL_SECRET) must be at least %d bytes, shared with the gateway", MinSecretLen))
	}
	if s.InternalSecretPrevious != "" && len(s.InternalSecretPrevious) < MinSecretLen {
		errs = append(errs, fmt.Errorf("internal_secret_previous (CANOPY_INTERNAL_SECRET_PREVIOUS) must be empty or at least %d bytes", MinSecretLen))
	}
	return errors.Join(errs...)
}

// Middleware verifies the identity the gateway signed for audience, with
// the current or the previous secret (tenancy.Middleware).
func (s Secrets) Middleware(audience string) func(http.Handler) http.Handler {
	return tenancy.Middleware(audience, []byte(s.InternalSecret), []byte(s.InternalSecretPrevious))
}

// Platform is what every service with a database and an outbox reads under
// the same, unprefixed names (CANOPY_MYSQL_DSN, CANOPY_INTERNAL_SECRET,
// CANOPY_KAFKA_*): embed it with `yaml:",inline"` and no envPrefix. What is
// the service's own (its address, database name, relay) stays in its Config,
// named with its prefix.
type Platform struct {
	// MySQLDSN is the server DSN without a database.
	MySQLDSN string `yaml:"mysql_dsn" env:"MYSQL_DSN" default:"root@tcp(127.0.0.1:3306)/"`
	Secrets  `yaml:",inline"`
	// Kafka configures the publisher main builds for the outbox relay.
	Kafka eventbus.PublisherConfig `yaml:"kafka" envPrefix:"KAFKA_"`
}

// DefaultPlatform is the local development Platform (no secret) of a
// service whose events carry ce_source source.
func DefaultPlatform(source string) Platform {
	return Platform{MySQLDSN: store.DefaultDSN, Kafka: eventbus.PublisherConfig{Brokers: []string{"127.0.0.1:9092"}, Source: source}}
}

// Store is the store config of the service's database on MySQLDSN.
func (p Platform) Store(database string) store.Config {
	return store.Config{DSN: p.MySQLDSN, Database: database}
}

// CheckAddr reports a listen address (the setting name) that is not host:port.
func CheckAddr(name, addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("%s %q: %w", name, addr, err)
	}
	return nil
}

// ConfigError joins a Validate's errors (nils are skipped) as the invalid
// config of service, or returns nil when there are none.
func ConfigError(service string, errs ...error) error {
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s config: %w", service, err)
	}
	return nil
}

// Check is the start of a service's New: it validates cfg, then checks the
// required dependencies (name, value pairs, as Require takes them).
func Check(service string, cfg config.Validator, required ...any) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	return Require(service, required...)
}

// Deps are the dependencies every service with an outbox takes. A service
// that needs more (a clock, a driver) declares its own Deps with these
// fields first.
type Deps struct {
	// Logger is required.
	Logger *slog.Logger
	// Registry receives the metrics and is served on /metrics; required.
	Registry *prometheus.Registry
	// Publisher is where the outbox relay publishes (an
	// *eventbus.Publisher); required.
	Publisher store.Publisher
}

// Deps are the dependencies launch built, as a service takes them.
func (e Env) Deps() Deps {
	d := Deps{Logger: e.Logger, Registry: e.Registry}
	if e.Publisher != nil {
		d.Publisher = e.Publisher
	}
	return d
}

// NewService checks cfg and deps (Check) and returns the Base of the service
// name.
func NewService(name string, cfg config.Validator, deps Deps) (Base, error) {
	if err := Check(name, cfg, "logger", deps.Logger, "metrics registry", deps.Registry, "event publisher", deps.Publisher); err != nil {
		return Base{}, err
	}
	return NewBase(name, deps.Logger, 0), nil
}

// ReadyCheck is one dependency an HTTP stage's /readyz checks.
type ReadyCheck struct {
	Name  string
	Check httpx.ReadinessCheck
}

// DatabaseReady is the "mysql" readiness check of *db, read when checked
// (the "database" stage opens it after this is built).
func DatabaseReady(db **store.DB) ReadyCheck {
	return ReadyCheck{Name: "mysql", Check: func(ctx context.Context) error { return (*db).SQL().PingContext(ctx) }}
}

// ServeHTTP is the "http" stage a service ends with: at start, routes builds
// the service's handler (from what the stages before it built), served on
// addr with cfg's timeouts and /livez, /readyz (with checks) and /metrics
// from reg (httpx.NewServer).
func ServeHTTP(cfg httpx.Config, addr string, logger *slog.Logger, reg *prometheus.Registry, routes func(context.Context) (http.Handler, error), checks ...ReadyCheck) Stage {
	cfg.Addr = addr
	return Serve("http", func(ctx context.Context) (*httpx.Server, error) {
		h, err := routes(ctx)
		if err != nil {
			return nil, err
		}
		srv := httpx.NewServer(cfg, h, logger, reg)
		for _, c := range checks {
			srv.AddReadinessCheck(c.Name, c.Check)
		}
		return srv, nil
	})
}
