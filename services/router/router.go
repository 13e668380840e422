// Package router is Canopy's data-plane router: for every instance
// provisioning gave router ports it holds a read-write endpoint that
// forwards to the current primary and a read-only endpoint spread over the
// healthy replicas, and it answers the Redis Sentinel protocol so Sentinel
// clients discover primaries through Canopy. Its view of the instances
// comes from provisioning's events, the failover service's recoveries and
// the health checker's transitions, with a resync from provisioning's
// router view at start; it keeps no state of its own, so any number of
// replicas serve the same endpoints and a restarted one converges alone.
// It is deliberately apart from the control plane: restarting any other
// service drops no client connection.
//
// Config, New and Run are what cmd/router and the all-in-one binary call;
// everything else is internal.
package router

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/launch"
	"github.com/canopy-platform/canopy/libs/svcclient"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/router/internal/httpapi"
	"github.com/canopy-platform/canopy/services/router/internal/intake"
	"github.com/canopy-platform/canopy/services/router/internal/provview"
	"github.com/canopy-platform/canopy/services/router/internal/proxy"
	"github.com/canopy-platform/canopy/services/router/internal/sentinel"
	"github.com/canopy-platform/canopy/services/router/internal/table"
)

// Defaults of Config.
const (
	DefaultAddr            = "127.0.0.1:8090"
	DefaultProvisioningURL = "http://127.0.0.1:8084"
)

// Kafka is where the router reads events from; it publishes none.
type Kafka struct {
	// Brokers are the bootstrap brokers (host:port), shared with every service.
	Brokers []string `yaml:"brokers" env:"BROKERS"`
}

// Config configures the router; env vars carry the CANOPY_ prefix.
type Config struct {
	// Secrets verify the identities the gateway signs (the HTTP API) and
	// sign the router's reads of provisioning.
	launch.Secrets `yaml:",inline"`
	// Kafka holds the brokers, under the names every service reads.
	Kafka Kafka `yaml:"kafka" envPrefix:"KAFKA_"`
	// Addr is the HTTP listen address (endpoint state, /metrics, health).
	Addr string `yaml:"addr" env:"ROUTER_ADDR" default:"127.0.0.1:8090"`
	// HTTP holds the server timeouts; its Addr is ignored in favour of Addr.
	HTTP httpx.Config `yaml:"http"`
	// Replica names this replica's consumer group (default: the host name
	// and the port of Addr, so that replicas on one host, which listen on
	// different ports, never share a group and split the events between
	// them). Keep it stable across restarts: the group's offsets are its
	// own.
	Replica string `yaml:"replica" env:"ROUTER_REPLICA"`
	// ProvisioningURL is where provisioning's internal router view is.
	// A comma-separated list names the callee's replicas: calls spread
	// over them and go round one that fails (libs/svcclient).
	ProvisioningURL string `yaml:"provisioning_url" env:"ROUTER_PROVISIONING_URL" default:"http://127.0.0.1:8084"`
	// ResyncInterval is how often the whole view is re-read from provisioning.
	ResyncInterval time.Duration `yaml:"resync_interval" env:"ROUTER_RESYNC_INTERVAL" default:"1m"`
	// EventWait bounds how long a fetch waits on an idle partition, i.e.
	// how late the router may hear of a recovery.
	EventWait time.Duration `yaml:"event_wait" env:"ROUTER_EVENT_WAIT" default:"50ms"`
	// Proxy configures the read-write and read-only endpoints.
	Proxy proxy.Config `yaml:"proxy" envPrefix:"ROUTER_"`
	// Sentinel configures the Redis Sentinel port.
	Sentinel sentinel.Config `yaml:"sentinel" envPrefix:"ROUTER_SENTINEL_"`
}

// DefaultConfig is a local development configuration, without the secret.
func DefaultConfig() Config {
	return Config{Kafka: Kafka{Brokers: []string{"127.0.0.1:9092"}}, Addr: DefaultAddr, ProvisioningURL: DefaultProvisioningURL,
		ResyncInterval: time.Minute, EventWait: 50 * time.Millisecond, Proxy: proxy.DefaultConfig(), Sentinel: sentinel.DefaultConfig()}
}

// Validate reports every configuration error at once.
func (c Config) Validate() error {
	errs := []error{launch.CheckAddr("addr", c.Addr), c.Secrets.Validate(), c.Proxy.Validate(), c.Sentinel.Validate()}
	if len(c.Kafka.Brokers) == 0 {
		errs = append(errs, errors.New("kafka brokers (CANOPY_KAFKA_BROKERS) must be set"))
	}
	if err := svcclient.CheckURLs(c.ProvisioningURL); err != nil {
		errs = append(errs, fmt.Errorf("provisioning_url (one URL or a comma-separated list): %w", err))
	}
	if c.ResyncInterval < time.Second {
		errs = append(errs, errors.New("resync_interval must be at least 1s"))
	}
	if c.EventWait <= 0 {
		errs = append(errs, errors.New("event_wait must be positive"))
	}
	return launch.ConfigError("router", errs...)
}

// Service is a configured router, ready to Run. launch.Base gives it Ready
// and Addr.
type Service struct {
	launch.Base
	cfg      Config
	reg      *prometheus.Registry
	tbl      *table.Table
	intake   *intake.Intake
	proxy    *proxy.Proxy
	sentinel *sentinel.Server
}

// New checks cfg and deps (logger and registry required; the publisher is
// not used) and builds the service. It does no I/O.
func New(cfg Config, deps launch.Deps) (*Service, error) {
	if err := launch.Check("router", cfg, "logger", deps.Logger, "metrics registry", deps.Registry); err != nil {
		return nil, err
	}
	if cfg.Replica == "" {
		cfg.Replica = defaultReplica(cfg.Addr)
	}
	log := deps.Logger
	base := launch.NewBase("router", log, 0, "replica", cfg.Replica)
	prov, err := provview.New(cfg.ProvisioningURL, []byte(cfg.InternalSecret), 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	s := &Service{Base: base, cfg: cfg, reg: deps.Registry, tbl: table.New()}
	if s.intake, err = intake.New(intake.Config{Brokers: cfg.Kafka.Brokers, Replica: cfg.Replica, ResyncInterval: cfg.ResyncInterval,
		MaxWait: cfg.EventWait}, s.tbl, prov, base.Logger(), deps.Registry); err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	m, err := proxy.NewMetrics(deps.Registry)
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	if s.proxy, err = proxy.New(cfg.Proxy, s.tbl, m, base.Logger().With("component", "proxy")); err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	if s.sentinel, err = sentinel.New(cfg.Sentinel, s.tbl, base.Logger().With("component", "sentinel"), deps.Registry); err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	return s, nil
}

// Run runs the stages in order until ctx ends, then stops them in reverse:
// HTTP first, then the Sentinel port, the endpoints (open connections get
// the proxy's drain time) and the intake last, so the endpoints follow the
// primaries while they drain.
func (s *Service) Run(ctx context.Context) error {
	log := s.Logger()
	return s.RunStages(ctx,
		launch.Stage{Name: "intake", Run: s.intake.Run},
		launch.Stage{Name: "endpoints", Run: s.proxy.Run},
		launch.Stage{Name: "sentinel", Run: s.sentinel.Run},
		launch.ServeHTTP(s.cfg.HTTP, s.cfg.Addr, log, s.reg, func(context.Context) (http.Handler, error) {
			api := httpapi.New(s.tbl, proxyEndpoints{s.proxy}, s.cfg.Replica)
			r := httpx.NewRouter(log)
			r.Group(func(r chi.Router) {
				r.Use(s.cfg.Middleware(tenancy.AudienceRouter))
				api.Routes(r)
			})
			return r, nil
		}, launch.ReadyCheck{Name: "view", Check: s.synced}),
	)
}

// synced is ready once the table was read from provisioning in full.
func (s *Service) synced(context.Context) error {
	select {
	case <-s.intake.Synced():
		return nil
	default:
		return errors.New("the instances were not read from provisioning yet")
	}
}

// proxyEndpoints reports the proxy's endpoints to the HTTP API.
type proxyEndpoints struct{ p *proxy.Proxy }

func (pe proxyEndpoints) Endpoints() []httpapi.Endpoint {
	stats := pe.p.Stats()
	out := make([]httpapi.Endpoint, 0, len(stats))
	for _, st := range stats {
		out = append(out, httpapi.Endpoint{InstanceID: st.InstanceID, Kind: st.Endpoint, Port: st.Port, Listening: st.Listening,
			Error: st.Error, Active: st.Active, Backends: st.Backends})
	}
	return out
}

// defaultReplica names a replica after its host and the port it serves
// HTTP on: unique among the replicas of one host and the same after a
// restart.
func defaultReplica(addr string) string {
	host, _ := os.Hostname()
	if host == "" {
		return "router-" + ulid.Make().String()
	}
	if _, port, err := net.SplitHostPort(addr); err == nil && port != "" && port != "0" {
		return host + "-" + port
	}
	return host
}
