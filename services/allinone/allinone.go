// Package allinone runs every Canopy service in one process, on the embedded
// defaults (the in-process Kafka-protocol broker, the local MariaDB and
// Redis), the way `make dev` does. It runs the same code as the per-service
// binaries: it imports only each service's top-level package (Config, New,
// Run) and wires them to shared dependencies. It is not a production
// deployment; for that, run each service on its own.
package allinone

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/libs/devkafka"
	"github.com/canopy-platform/canopy/libs/obs"
	"github.com/canopy-platform/canopy/libs/statedir"
)

// Config configures the all-in-one process. Every field has a default that
// works on a developer machine; environment variables override them.
type Config struct {
	// StateDir holds the embedded broker's data, generated secrets and keys
	// and instances' data; it is kept private (0700 dirs, 0600 files).
	StateDir string `yaml:"state_dir" env:"STATE_DIR" default:".canopy"`
	// KafkaBrokers, when set, is used instead of the embedded broker.
	KafkaBrokers []string `yaml:"kafka_brokers" env:"KAFKA_BROKERS"`
	// EmbeddedKafkaAddr is where the embedded broker listens.
	EmbeddedKafkaAddr string `yaml:"embedded_kafka_addr" env:"EMBEDDED_KAFKA_ADDR" default:"127.0.0.1:9092"`
	// MySQLDSN is the server DSN (no database) every service's database lives on.
	MySQLDSN string `yaml:"mysql_dsn" env:"MYSQL_DSN" default:"root@tcp(127.0.0.1:3306)/"`
	// DatabasePrefix names each service's database: prefix + service name.
	DatabasePrefix string `yaml:"database_prefix" env:"DATABASE_PREFIX" default:"canopy_"`
	// RedisAddr is the Redis used for rate limits, caches and locks.
	RedisAddr string `yaml:"redis_addr" env:"REDIS_ADDR" default:"127.0.0.1:6379"`
	// GatewayAddr is the one public listener.
	GatewayAddr string `yaml:"gateway_addr" env:"GATEWAY_ADDR" default:"127.0.0.1:8080"`
	// GatewayInternalAddr is the gateway's internal listener (/internal/v1,
	// /metrics, detailed /readyz); a free port when GatewayAddr's is 0, and
	// GatewayAddr's host with port 8092 when empty.
	GatewayInternalAddr string `yaml:"gateway_internal_addr" env:"GATEWAY_INTERNAL_ADDR" default:"127.0.0.1:8092"`
	// ShutdownTimeout bounds how long each component may take to stop.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout" env:"SHUTDOWN_TIMEOUT" default:"20s"`
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.StateDir == "" {
		errs = append(errs, errors.New("state_dir is required"))
	}
	if _, _, err := net.SplitHostPort(c.GatewayAddr); err != nil {
		errs = append(errs, fmt.Errorf("gateway_addr %q: %w", c.GatewayAddr, err))
	}
	if _, _, err := net.SplitHostPort(c.gatewayInternalAddr()); err != nil {
		errs = append(errs, fmt.Errorf("gateway_internal_addr %q: %w", c.GatewayInternalAddr, err))
	}
	if len(c.KafkaBrokers) == 0 {
		if _, _, err := net.SplitHostPort(c.EmbeddedKafkaAddr); err != nil {
			errs = append(errs, fmt.Errorf("embedded_kafka_addr %q: %w", c.EmbeddedKafkaAddr, err))
		}
	}
	if c.MySQLDSN == "" {
		errs = append(errs, errors.New("mysql_dsn is required"))
	}
	if c.DatabasePrefix == "" {
		errs = append(errs, errors.New("database_prefix is required"))
	}
	if c.RedisAddr == "" {
		errs = append(errs, errors.New("redis_addr is required"))
	}
	return errors.Join(errs...)
}

// databaseServices name the services' databases, prefix + service
// (services.go); `canopy reset` drops exactly these. Healthcheck and router
// keep none in the all-in-one today; they are listed so that a reset also
// clears theirs wherever a deployment gave them one.
var databaseServices = []string{"gateway", "catalog", "scheduling", "provisioning", "healthcheck", "failover", "router", "cdc", "metering", "alerting", "backup"}

// Databases are the names of the services' databases under DatabasePrefix:
// the databases this configuration owns, and the only ones a reset drops.
func (c *Config) Databases() []string {
	out := make([]string, len(databaseServices))
	for i, s := range databaseServices {
		out[i] = c.DatabasePrefix + s
	}
	return out
}

// gatewayInternalAddr is GatewayInternalAddr or its default.
func (c *Config) gatewayInternalAddr() string {
	if c.GatewayInternalAddr != "" {
		return c.GatewayInternalAddr
	}
	host, _, err := net.SplitHostPort(c.GatewayAddr)
	if err != nil {
		return ""
	}
	return net.JoinHostPort(host, "8092")
}

// Deps are the process-wide dependencies.
type Deps struct {
	Logger *slog.Logger
	// Registry serves the all-in-one process's own metrics; each service
	// keeps its own registry, served on its own /metrics.
	Registry *prometheus.Registry
	// Stdout receives what must be shown to the operator once, such as the
	// generated admin key; io.Discard when nil.
	Stdout io.Writer
}

// Platform is the all-in-one process.
type Platform struct {
	cfg    Config
	deps   Deps
	mu     sync.Mutex
	broker *devkafka.Broker
	ready  chan struct{}
	gwAddr string
	// gwInternal is the gateway's internal listener, where services read quotas.
	gwInternal string
	// provAddr is provisioning's listener, where the catalog forwards OSB calls.
	provAddr string
}

// New returns the platform, not yet started.
func New(cfg Config, deps Deps) (*Platform, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("all-in-one config: %w", err)
	}
	if deps.Logger == nil {
		return nil, errors.New("all-in-one: nil logger")
	}
	if deps.Registry == nil {
		deps.Registry = obs.NewRegistry()
	}
	if deps.Stdout == nil {
		deps.Stdout = io.Discard
	}
	return &Platform{cfg: cfg, deps: deps, ready: make(chan struct{})}, nil
}

// Ready is closed once every component has started.
func (p *Platform) Ready() <-chan struct{} { return p.ready }

// GatewayAddr is the address the gateway listens on, once Ready.
func (p *Platform) GatewayAddr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gwAddr
}

// GatewayInternalAddr is the address of the gateway's internal listener, once Ready.
func (p *Platform) GatewayInternalAddr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gwInternal
}

// KafkaBrokers returns the brokers in use, once Ready.
func (p *Platform) KafkaBrokers() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.broker != nil {
		return []string{p.broker.Addr()}
	}
	return p.cfg.KafkaBrokers
}

// component is one running part, stopped by cancelling its context.
type component struct {
	name   string
	cancel context.CancelFunc
	done   chan error
}

// Run starts everything and blocks until ctx ends, then stops the components
// in reverse start order, each within ShutdownTimeout.
func (p *Platform) Run(ctx context.Context) error {
	log := p.deps.Logger
	var started []*component
	stopAll := func() error {
		var errs []error
		for i := len(started) - 1; i >= 0; i-- {
			c := started[i]
			c.cancel()
			select {
			case err := <-c.done:
				if err != nil && !errors.Is(err, context.Canceled) {
					errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
				}
				log.Info("component stopped", "component", c.name)
			case <-time.After(p.cfg.ShutdownTimeout):
				errs = append(errs, fmt.Errorf("%s: did not stop within %s", c.name, p.cfg.ShutdownTimeout))
			}
		}
		p.closeBroker()
		return errors.Join(errs...)
	}
	failed := make(chan error, 16)
	start := func(name string, run func(context.Context) error) *component {
		cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		c := &component{name: name, cancel: cancel, done: make(chan error, 1)}
		go func() {
			err := run(cctx)
			if cctx.Err() == nil {
				// A component ended on its own: take the platform down with it.
				failed <- fmt.Errorf("%s stopped unexpectedly: %w", name, err)
			}
			c.done <- err
		}()
		started = append(started, c)
		return c
	}

	// Every service keeps keys, secrets and data here: private to the user.
	if err := statedir.Ensure(p.cfg.StateDir, log); err != nil {
		return fmt.Errorf("all-in-one: %w", err)
	}
	// Recorded so `canopy reset` can stop this process before the node
	// processes its supervisor would otherwise restart.
	release, err := writePIDFile(p.cfg.StateDir)
	if err != nil {
		return fmt.Errorf("all-in-one: %w", err)
	}
	defer release()
	brokers, err := p.startBroker(ctx)
	if err != nil {
		return err
	}
	log.Info("kafka", "brokers", strings.Join(brokers, ","), "embedded", p.broker != nil)

	w, err := p.newWiring(brokers)
	if err != nil {
		p.closeBroker()
		return err
	}
	defer w.close()
	// Backends first, the gateway last, so the front door opens onto running
	// services whose addresses it then knows.
	for _, build := range p.services() {
		svc, err := build(ctx, w)
		if err != nil {
			return errors.Join(err, stopAll())
		}
		start(svc.name, svc.run)
		select {
		case <-svc.ready:
			w.addrs[svc.name] = svc.addr()
			if svc.name == "provisioning" {
				p.mu.Lock()
				p.provAddr = svc.addr() // the catalog forwards OSB calls here from now on
				p.mu.Unlock()
			}
			if svc.name == "gateway" {
				p.mu.Lock()
				p.gwAddr = svc.addr()
				p.gwInternal = svc.internalAddr() // provisioning reads quotas here from now on
				p.mu.Unlock()
			}
			log.Info("service ready", "service", svc.name, "addr", svc.addr())
		case err := <-failed:
			return errors.Join(err, stopAll())
		case <-ctx.Done():
			return stopAll()
		}
	}
	close(p.ready)
	log.Info("canopy is up", "gateway", "http://"+w.addrs["gateway"])

	select {
	case <-ctx.Done():
		log.Info("shutting down")
		return stopAll()
	case err := <-failed:
		log.Error("a component failed; shutting down", "err", err)
		return errors.Join(err, stopAll())
	}
}

func (p *Platform) startBroker(ctx context.Context) ([]string, error) {
	if len(p.cfg.KafkaBrokers) > 0 {
		return p.cfg.KafkaBrokers, nil
	}
	b, err := devkafka.Start(ctx, devkafka.Config{
		Addr:    p.cfg.EmbeddedKafkaAddr,
		DataDir: filepath.Join(p.cfg.StateDir, "kafka"),
	}, p.deps.Logger)
	if err != nil {
		return nil, fmt.Errorf("start embedded kafka: %w", err)
	}
	p.mu.Lock()
	p.broker = b
	p.mu.Unlock()
	return []string{b.Addr()}, nil
}

func (p *Platform) closeBroker() {
	p.mu.Lock()
	b := p.broker
	p.mu.Unlock()
	if b != nil {
		b.Close()
	}
}
