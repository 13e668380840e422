package allinone

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/canopy-platform/canopy/libs/config"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/launch"
	"github.com/canopy-platform/canopy/libs/obs"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/services/alerting"
	"github.com/canopy-platform/canopy/services/backup"
	"github.com/canopy-platform/canopy/services/catalog"
	"github.com/canopy-platform/canopy/services/cdc"
	"github.com/canopy-platform/canopy/services/failover"
	"github.com/canopy-platform/canopy/services/gateway"
	"github.com/canopy-platform/canopy/services/healthcheck"
	"github.com/canopy-platform/canopy/services/metering"
	"github.com/canopy-platform/canopy/services/provisioning"
	"github.com/canopy-platform/canopy/services/router"
	"github.com/canopy-platform/canopy/services/scheduling"
)

// service is one Canopy service as the platform runs it.
type service struct {
	name  string
	run   func(context.Context) error
	ready <-chan struct{}
	addr  func() string
	// internalAddr is the gateway's internal listener; nil for the others.
	internalAddr func() string
}

// builder constructs one service from the shared wiring.
type builder func(ctx context.Context, w *wiring) (service, error)

// wiring is what the services share in one process: one MySQL server, one
// Redis, one broker list and one internal secret, plus the addresses of the
// services started so far.
type wiring struct {
	brokers []string
	secret  string
	addrs   map[string]string
	closers []func() error
}

func (w *wiring) close() {
	for i := len(w.closers) - 1; i >= 0; i-- {
		_ = w.closers[i]()
	}
}

func (p *Platform) newWiring(brokers []string) (*wiring, error) {
	gwCfg := gateway.Defaults()
	gwCfg.StateDir = p.cfg.StateDir
	if err := config.Load(&gwCfg, config.Options{}); err != nil {
		return nil, fmt.Errorf("gateway config: %w", err)
	}
	gwCfg.StateDir = p.cfg.StateDir
	secret, err := gateway.ResolveInternalSecret(gwCfg)
	if err != nil {
		return nil, fmt.Errorf("internal secret: %w", err)
	}
	return &wiring{brokers: brokers, secret: string(secret), addrs: map[string]string{}}, nil
}

// services lists the services in start order.
func (p *Platform) services() []builder {
	return []builder{p.buildCatalog, p.buildScheduling, p.buildProvisioning, p.buildHealthcheck, p.buildFailover, p.buildRouter, p.buildCDC, p.buildMetering, p.buildAlerting, p.buildBackup, p.buildGateway}
}

// backendAddr picks a service's listen address: its own default port when the
// gateway is on its configured address, or a free port when a test asked for
// port 0.
func (p *Platform) backendAddr(defaultAddr string) string {
	host, port, err := net.SplitHostPort(p.cfg.GatewayAddr)
	if err == nil && port == "0" {
		return net.JoinHostPort(host, "0")
	}
	return defaultAddr
}

// load reads a service's config from the environment the way its own binary
// does, with the shared secret in place so validation sees it.
func (p *Platform) load(dst any, w *wiring) error {
	env := append(os.Environ(), "CANOPY_INTERNAL_SECRET="+w.secret)
	return config.Load(dst, config.Options{Environ: env})
}

func (p *Platform) publisher(w *wiring, cfg eventbus.PublisherConfig, name string) (*eventbus.Publisher, error) {
	cfg.Brokers = w.brokers
	pub, err := eventbus.NewPublisher(cfg, p.deps.Logger.With("service", name), nil)
	if err != nil {
		return nil, fmt.Errorf("%s publisher: %w", name, err)
	}
	w.closers = append(w.closers, pub.Close)
	return pub, nil
}

func (p *Platform) buildCatalog(_ context.Context, w *wiring) (service, error) {
	cfg := catalog.DefaultConfig()
	if err := p.load(&cfg, w); err != nil {
		return service{}, fmt.Errorf("catalog config: %w", err)
	}
	cfg.Addr = p.backendAddr(cfg.Addr)
	cfg.MySQLDSN = p.cfg.MySQLDSN
	cfg.Database = p.cfg.DatabasePrefix + "catalog"
	cfg.InternalSecret = w.secret
	// Broker credentials are bound only to tenants the gateway knows; the
	// gateway starts last and may listen on a random port (tests), so its
	// address is resolved per check, like provisioning's quota reads.
	cfg.GatewayURL = "http://" + p.cfg.gatewayInternalAddr()
	pub, err := p.publisher(w, cfg.Kafka, "catalog")
	if err != nil {
		return service{}, err
	}
	// OSB instance calls are forwarded to provisioning, which starts after
	// the catalog and may listen on a random port (tests): resolved per call.
	svc, err := catalog.New(cfg, catalog.Deps{Logger: p.deps.Logger, Registry: obs.NewRegistry(), Publisher: pub,
		GatewayURL: p.gatewayURL, ProvisioningURL: p.provisioningURL})
	if err != nil {
		return service{}, err
	}
	return service{name: "catalog", run: svc.Run, ready: svc.Ready(), addr: svc.Addr}, nil
}

// gatewayURL is the base URL of the gateway's internal listener (where
// /internal/v1 is served) once it listens, "" before.
func (p *Platform) gatewayURL() string {
	if a := p.GatewayInternalAddr(); a != "" {
		return "http://" + a
	}
	return ""
}

// provisioningURL is the base URL of provisioning once it listens, "" before.
func (p *Platform) provisioningURL() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.provAddr == "" {
		return ""
	}
	return "http://" + p.provAddr
}

func (p *Platform) buildScheduling(_ context.Context, w *wiring) (service, error) {
	cfg := scheduling.DefaultConfig()
	if err := p.load(&cfg, w); err != nil {
		return service{}, fmt.Errorf("scheduling config: %w", err)
	}
	cfg.Addr = p.backendAddr(cfg.Addr)
	cfg.MySQLDSN = p.cfg.MySQLDSN
	cfg.Database = p.cfg.DatabasePrefix + "scheduling"
	cfg.InternalSecret = w.secret
	cfg.Kafka.Brokers = w.brokers
	cfg.Consumer.Brokers = w.brokers
	if a, ok := w.addrs["catalog"]; ok {
		cfg.CatalogURL = "http://" + a
	}
	pub, err := p.publisher(w, cfg.Kafka, "scheduling")
	if err != nil {
		return service{}, err
	}
	svc, err := scheduling.New(cfg, scheduling.Deps{Logger: p.deps.Logger, Registry: obs.NewRegistry(), Publisher: pub})
	if err != nil {
		return service{}, err
	}
	return service{name: "scheduling", run: svc.Run, ready: svc.Ready(), addr: svc.Addr}, nil
}

func (p *Platform) buildProvisioning(_ context.Context, w *wiring) (service, error) {
	cfg := provisioning.DefaultConfig()
	if err := p.load(&cfg, w); err != nil {
		return service{}, fmt.Errorf("provisioning config: %w", err)
	}
	cfg.Addr = p.backendAddr(cfg.Addr)
	cfg.MySQLDSN = p.cfg.MySQLDSN
	cfg.Database = p.cfg.DatabasePrefix + "provisioning"
	cfg.InternalSecret = w.secret
	cfg.StateDir = p.cfg.StateDir
	cfg.Kafka.Brokers = w.brokers
	if a, ok := w.addrs["catalog"]; ok {
		cfg.CatalogURL = "http://" + a
	}
	// Quotas come from the gateway's internal listener; the gateway starts after provisioning (it needs
	// the backends' addresses) and may listen on a random port (tests): the
	// URL is resolved per quota read from the address the gateway actually
	// got. Until it listens orders are refused with 503, and none can arrive
	// then anyway, since the gateway is the only way in.
	cfg.GatewayURL = "http://" + p.cfg.gatewayInternalAddr()
	// Restores ask the backup service, which starts after provisioning (it
	// reads provisioning's instances): its address is the one its config
	// names. A test's random ports (port 0) leave the default, unused there.
	bc := backup.DefaultConfig()
	if err := p.load(&bc, w); err != nil {
		return service{}, fmt.Errorf("backup config: %w", err)
	}
	if _, port, err := net.SplitHostPort(p.backendAddr(bc.Addr)); err == nil && port != "0" {
		cfg.BackupURL = "http://" + p.backendAddr(bc.Addr)
	}
	// Bindings advertise the Sentinel port of the router this process runs.
	rc := router.DefaultConfig()
	if err := p.load(&rc, w); err != nil {
		return service{}, fmt.Errorf("router config: %w", err)
	}
	if _, port, err := net.SplitHostPort(rc.Sentinel.Addr); err == nil {
		cfg.Router.SentinelPort, _ = strconv.Atoi(port)
	}
	pub, err := p.publisher(w, cfg.Kafka, "provisioning")
	if err != nil {
		return service{}, err
	}
	svc, err := provisioning.New(cfg, provisioning.Deps{Logger: p.deps.Logger, Registry: obs.NewRegistry(), Publisher: pub, GatewayURL: p.gatewayURL})
	if err != nil {
		return service{}, err
	}
	return service{name: "provisioning", run: svc.Run, ready: svc.Ready(), addr: svc.Addr}, nil
}

func (p *Platform) buildHealthcheck(_ context.Context, w *wiring) (service, error) {
	cfg := healthcheck.DefaultConfig()
	if err := p.load(&cfg, w); err != nil {
		return service{}, fmt.Errorf("healthcheck config: %w", err)
	}
	cfg.Addr = p.backendAddr(cfg.Addr)
	cfg.Brokers = w.brokers
	cfg.InternalSecret = w.secret
	if a, ok := w.addrs["provisioning"]; ok {
		cfg.ProvisioningURL = "http://" + a
	}
	pub, err := p.publisher(w, eventbus.PublisherConfig{Source: "/canopy/healthcheck"}, "healthcheck")
	if err != nil {
		return service{}, err
	}
	svc, err := healthcheck.New(cfg, healthcheck.Deps{Logger: p.deps.Logger, Registry: obs.NewRegistry(), Publisher: pub})
	if err != nil {
		return service{}, err
	}
	return service{name: "healthcheck", run: svc.Run, ready: svc.Ready(), addr: svc.Addr}, nil
}

func (p *Platform) buildFailover(_ context.Context, w *wiring) (service, error) {
	cfg := failover.DefaultConfig()
	if err := p.load(&cfg, w); err != nil {
		return service{}, fmt.Errorf("failover config: %w", err)
	}
	cfg.Addr = p.backendAddr(cfg.Addr)
	cfg.MySQLDSN, cfg.Database = p.cfg.MySQLDSN, p.cfg.DatabasePrefix+"failover"
	cfg.Kafka.Brokers = w.brokers
	cfg.InternalSecret = w.secret
	if a, ok := w.addrs["provisioning"]; ok {
		cfg.ProvisioningURL = "http://" + a
	}
	pub, err := p.publisher(w, cfg.Kafka, "failover")
	if err != nil {
		return service{}, err
	}
	svc, err := failover.New(cfg, launch.Deps{Logger: p.deps.Logger, Registry: obs.NewRegistry(), Publisher: pub})
	if err != nil {
		return service{}, err
	}
	return service{name: "failover", run: svc.Run, ready: svc.Ready(), addr: svc.Addr}, nil
}

func (p *Platform) buildRouter(_ context.Context, w *wiring) (service, error) {
	cfg := router.DefaultConfig()
	if err := p.load(&cfg, w); err != nil {
		return service{}, fmt.Errorf("router config: %w", err)
	}
	cfg.Addr = p.backendAddr(cfg.Addr)
	cfg.Kafka.Brokers = w.brokers
	cfg.InternalSecret = w.secret
	if a, ok := w.addrs["provisioning"]; ok {
		cfg.ProvisioningURL = "http://" + a
	}
	svc, err := router.New(cfg, launch.Deps{Logger: p.deps.Logger, Registry: obs.NewRegistry()})
	if err != nil {
		return service{}, err
	}
	return service{name: "router", run: svc.Run, ready: svc.Ready(), addr: svc.Addr}, nil
}

func (p *Platform) buildCDC(_ context.Context, w *wiring) (service, error) {
	cfg := cdc.DefaultConfig()
	if err := p.load(&cfg, w); err != nil {
		return service{}, fmt.Errorf("cdc config: %w", err)
	}
	cfg.Addr = p.backendAddr(cfg.Addr)
	cfg.MySQLDSN, cfg.Database = p.cfg.MySQLDSN, p.cfg.DatabasePrefix+"cdc"
	cfg.Kafka.Brokers = w.brokers
	cfg.InternalSecret = w.secret
	if a, ok := w.addrs["provisioning"]; ok {
		cfg.ProvisioningURL = "http://" + a
	}
	pub, err := p.publisher(w, cfg.Kafka, "cdc")
	if err != nil {
		return service{}, err
	}
	svc, err := cdc.New(cfg, launch.Deps{Logger: p.deps.Logger, Registry: obs.NewRegistry(), Publisher: pub})
	if err != nil {
		return service{}, err
	}
	return service{name: "cdc", run: svc.Run, ready: svc.Ready(), addr: svc.Addr}, nil
}

func (p *Platform) buildMetering(_ context.Context, w *wiring) (service, error) {
	cfg := metering.DefaultConfig()
	if err := p.load(&cfg, w); err != nil {
		return service{}, fmt.Errorf("metering config: %w", err)
	}
	cfg.Addr = p.backendAddr(cfg.Addr)
	cfg.MySQLDSN, cfg.Database = p.cfg.MySQLDSN, p.cfg.DatabasePrefix+"metering"
	cfg.Kafka.Brokers = w.brokers
	cfg.InternalSecret = w.secret
	pub, err := p.publisher(w, cfg.Kafka, "metering")
	if err != nil {
		return service{}, err
	}
	svc, err := metering.New(cfg, launch.Deps{Logger: p.deps.Logger, Registry: obs.NewRegistry(), Publisher: pub})
	if err != nil {
		return service{}, err
	}
	return service{name: "metering", run: svc.Run, ready: svc.Ready(), addr: svc.Addr}, nil
}

// allowPrivateWebhooksEnv is the alerting setting the all-in-one turns on
// unless the environment says otherwise.
const allowPrivateWebhooksEnv = "CANOPY_ALERTING_ALLOW_PRIVATE_WEBHOOKS"

func (p *Platform) buildAlerting(_ context.Context, w *wiring) (service, error) {
	cfg := alerting.DefaultConfig()
	if err := p.load(&cfg, w); err != nil {
		return service{}, fmt.Errorf("alerting config: %w", err)
	}
	cfg.Addr = p.backendAddr(cfg.Addr)
	cfg.MySQLDSN, cfg.Database = p.cfg.MySQLDSN, p.cfg.DatabasePrefix+"alerting"
	cfg.Kafka.Brokers = w.brokers
	cfg.InternalSecret = w.secret
	// `make dev` is one machine: the receiver a developer tries out listens
	// on localhost, which production refuses (server-side request forgery).
	if _, set := os.LookupEnv(allowPrivateWebhooksEnv); !set {
		cfg.AllowPrivateWebhooks = true
	}
	if _, port, err := net.SplitHostPort(p.cfg.GatewayAddr); err == nil && port != "0" {
		cfg.ExternalURL = "http://" + p.cfg.GatewayAddr
	}
	if a, ok := w.addrs["failover"]; ok {
		cfg.FailoverURL = "http://" + a
	}
	if a, ok := w.addrs["provisioning"]; ok {
		cfg.ProvisioningURL = "http://" + a
	}
	pub, err := p.publisher(w, cfg.Kafka, "alerting")
	if err != nil {
		return service{}, err
	}
	svc, err := alerting.New(cfg, launch.Deps{Logger: p.deps.Logger, Registry: obs.NewRegistry(), Publisher: pub})
	if err != nil {
		return service{}, err
	}
	return service{name: "alerting", run: svc.Run, ready: svc.Ready(), addr: svc.Addr}, nil
}

func (p *Platform) buildBackup(_ context.Context, w *wiring) (service, error) {
	cfg := backup.DefaultConfig()
	if err := p.load(&cfg, w); err != nil {
		return service{}, fmt.Errorf("backup config: %w", err)
	}
	cfg.Addr = p.backendAddr(cfg.Addr)
	cfg.MySQLDSN, cfg.Database = p.cfg.MySQLDSN, p.cfg.DatabasePrefix+"backup"
	cfg.Kafka.Brokers = w.brokers
	cfg.InternalSecret = w.secret
	// The same state directory as provisioning: its secrets key wraps the
	// data keys, the repository and the restore seeds live beside the nodes.
	cfg.StateDir = p.cfg.StateDir
	if a, ok := w.addrs["provisioning"]; ok {
		cfg.ProvisioningURL = "http://" + a
	}
	pub, err := p.publisher(w, cfg.Kafka, "backup")
	if err != nil {
		return service{}, err
	}
	svc, err := backup.New(cfg, launch.Deps{Logger: p.deps.Logger, Registry: obs.NewRegistry(), Publisher: pub})
	if err != nil {
		return service{}, err
	}
	return service{name: "backup", run: svc.Run, ready: svc.Ready(), addr: svc.Addr}, nil
}

func (p *Platform) buildGateway(ctx context.Context, w *wiring) (service, error) {
	cfg := gateway.Defaults()
	if err := p.load(&cfg, w); err != nil {
		return service{}, fmt.Errorf("gateway config: %w", err)
	}
	cfg.Addr = p.cfg.GatewayAddr
	cfg.InternalAddr = p.backendAddr(p.cfg.gatewayInternalAddr())
	cfg.StateDir = p.cfg.StateDir
	cfg.Store.DSN = p.cfg.MySQLDSN
	cfg.Store.Database = p.cfg.DatabasePrefix + "gateway"
	cfg.RedisAddr = p.cfg.RedisAddr
	cfg.InternalSecret = w.secret
	if a, ok := w.addrs["catalog"]; ok {
		cfg.CatalogURL = "http://" + a
	}
	if a, ok := w.addrs["scheduling"]; ok {
		cfg.SchedulingURL = "http://" + a
	}
	if a, ok := w.addrs["provisioning"]; ok {
		cfg.ProvisioningURL = "http://" + a
	}
	if a, ok := w.addrs["healthcheck"]; ok {
		cfg.HealthcheckURL = "http://" + a
	}
	if a, ok := w.addrs["failover"]; ok {
		cfg.FailoverURL = "http://" + a
	}
	if a, ok := w.addrs["router"]; ok {
		cfg.RouterURL = "http://" + a
	}
	if a, ok := w.addrs["cdc"]; ok {
		cfg.CDCURL = "http://" + a
	}
	if a, ok := w.addrs["metering"]; ok {
		cfg.MeteringURL = "http://" + a
	}
	if a, ok := w.addrs["alerting"]; ok {
		cfg.AlertingURL = "http://" + a
	}
	if a, ok := w.addrs["backup"]; ok {
		cfg.BackupURL = "http://" + a
	}
	log := p.deps.Logger.With("service", "gateway")
	db, err := store.Open(ctx, cfg.Store, log)
	if err != nil {
		return service{}, fmt.Errorf("gateway database: %w", err)
	}
	w.closers = append(w.closers, db.Close)
	rdb := redis.NewClient(&redis.Options{Addr: cfg.RedisAddr, PoolSize: 64, MinIdleConns: 4,
		ReadTimeout: time.Second, WriteTimeout: time.Second})
	w.closers = append(w.closers, rdb.Close)
	svc, err := gateway.New(cfg, gateway.Deps{Logger: p.deps.Logger, Registry: obs.NewRegistry(), DB: db, Redis: rdb, Stdout: p.deps.Stdout})
	if err != nil {
		return service{}, err
	}
	return service{name: "gateway", run: svc.Run, ready: svc.Ready(), addr: svc.Addr, internalAddr: svc.InternalAddr}, nil
}
