package provisioning

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/libs/devkafka"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/porttest"
	"github.com/canopy-platform/canopy/libs/store/storetest"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
	"github.com/canopy-platform/canopy/services/provisioning/internal/saga"
)

const testSecret = "provisioning-test-secret-0123456789"

// Plan ids of the stand-in catalog (the catalog's default plan ids).
const (
	planMySQLDev = "6814408d-3c80-49ac-ba04-aaed9eddf844"
	planMySQLHA  = "1f60f3c5-2563-40f2-ab4b-9024647756ec"
	planRedisDev = "22ffda50-b33a-4466-8afc-15ba8e0e6465"
	planRedisHA  = "013af63c-64eb-488d-b30b-08559e96807b"
	// planRedisLax's schema accepts any parameters (a careless plan): only
	// the engine's allowlist stands between them and redis-server.
	planRedisLax = "5a1c0c8e-0b5e-4a55-9f0e-6f1b0f0b1a11"
	serviceMySQL = "a2dc262d-040c-459d-9e7c-53776f4dcf5b"
	serviceRedis = "9b94515c-29cf-4531-b84d-8daf6b680216"
)

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("PROVISIONING_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
}

// catalogStandIn serves GET /api/v1/catalog/plans/{id} like the catalog
// (services never import each other, so tests use a stand-in).
func catalogStandIn(t testing.TB) string {
	mysqlSchema := json.RawMessage(`{"$schema":"http://json-schema.org/draft-04/schema#","type":"object","additionalProperties":false,
		"properties":{"max_connections":{"type":"integer","minimum":10,"maximum":10000},"long_query_time":{"type":"number","minimum":0}}}`)
	redisSchema := json.RawMessage(`{"$schema":"http://json-schema.org/draft-04/schema#","type":"object","additionalProperties":false,
		"properties":{"maxmemory-policy":{"type":"string","enum":["noeviction","allkeys-lru"]},"timeout":{"type":"integer","minimum":0}}}`)
	single := map[string]any{"count": 1, "groups": []map[string]any{{"role": "primary", "region_role": "primary", "count": 1}}}
	multi := map[string]any{"count": 3, "groups": []map[string]any{{"role": "primary", "region_role": "primary", "count": 1}, {"role": "replica", "region_role": "primary", "count": 2}}}
	// Like the catalog, the stand-in offers what the machine runs (the
	// installed builds' major.minor); mysql-dev also lists MySQL 8.0 and
	// redis-dev 6.2, which no host runs, so orders for them are refused.
	mysqlV, redisV := installedBuild(t, driver.EngineMySQL).Series(), installedBuild(t, driver.EngineRedis).Series()
	plans := map[string]map[string]any{
		planMySQLDev: {"name": "mysql-dev-single-az", "engine": "mysql", "service_id": serviceMySQL, "versions": []string{mysqlV, "8.0"}, "default_version": mysqlV,
			"deployment_mode": "single-az", "nodes": single, "resources": map[string]any{"vcpu": 1, "memory_mb": 2048, "storage_gb": 20}, "replication_mode": "async", "parameters_schema": mysqlSchema},
		planMySQLHA: {"name": "mysql-ha-multi-az", "engine": "mysql", "service_id": serviceMySQL, "versions": []string{mysqlV}, "default_version": mysqlV,
			"deployment_mode": "multi-az", "nodes": multi, "resources": map[string]any{"vcpu": 2, "memory_mb": 8192, "storage_gb": 100}, "replication_mode": "semi-sync", "parameters_schema": mysqlSchema},
		planRedisDev: {"name": "redis-dev-single-az", "engine": "redis", "service_id": serviceRedis, "versions": []string{redisV, "6.2"}, "default_version": redisV,
			"deployment_mode": "single-az", "nodes": single, "resources": map[string]any{"vcpu": 0.5, "memory_mb": 256, "storage_gb": 4}, "replication_mode": "async", "parameters_schema": redisSchema},
		planRedisLax: {"name": "redis-lax-single-az", "engine": "redis", "service_id": serviceRedis, "versions": []string{redisV}, "default_version": redisV,
			"deployment_mode": "single-az", "nodes": single, "resources": map[string]any{"vcpu": 0.5, "memory_mb": 256, "storage_gb": 4}, "replication_mode": "async",
			"parameters_schema": json.RawMessage(`{"$schema":"http://json-schema.org/draft-04/schema#","type":"object"}`)},
		planRedisHA: {"name": "redis-ha-multi-az", "engine": "redis", "service_id": serviceRedis, "versions": []string{redisV}, "default_version": redisV,
			"deployment_mode": "multi-az", "nodes": multi, "resources": map[string]any{"vcpu": 1, "memory_mb": 512, "storage_gb": 16}, "replication_mode": "async", "parameters_schema": redisSchema},
	}
	mux := http.NewServeMux()
	verifier, err := tenancy.NewVerifier(tenancy.VerifierConfig{Audience: tenancy.AudienceCatalog, Secrets: [][]byte{[]byte(testSecret)}})
	if err != nil {
		t.Fatal(err)
	}
	mux.HandleFunc("GET /api/v1/catalog/plans/{id}", func(w http.ResponseWriter, r *http.Request) {
		if _, err := verifier.Verify(r.Header, r.Method, r.RequestURI, tenancy.EmptyBodyHash); err != nil {
			http.Error(w, "unauthenticated", http.StatusUnauthorized)
			return
		}
		p, ok := plans[r.PathValue("id")]
		if !ok {
			http.Error(w, `{"title":"Not Found"}`, http.StatusNotFound)
			return
		}
		out := map[string]any{"id": r.PathValue("id"), "state": "active", "orderable": true}
		for k, v := range p {
			out[k] = v
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// schedulerStandIn answers placement requests like scheduling: every node
// in its own zone on loopback, with a free port; region "nowhere" and every
// order of tenant tenantNoRoom are refused, region "hold" never answered.
// tenantNoRoom is a tenant whose orders the scheduler stand-in refuses (OSB
// orders name no region).
const tenantNoRoom = "noroom"

func schedulerStandIn(t testing.TB, parent context.Context, brokers []string, pub *eventbus.Publisher) {
	ctx, cancel := context.WithCancel(parent)
	// Ports below the ephemeral range: the saga starts the node on it
	// later, and a port from the kernel's port 0 may have become some
	// outgoing connection's local port by then (see porttest).
	port := func() int {
		p, err := porttest.Pick()
		if err != nil {
			t.Errorf("free port: %v", err)
		}
		return p
	}
	sub, err := eventbus.NewSubscriber(eventbus.SubscriberConfig{
		Brokers: brokers, GroupID: "test-scheduling-" + strconv.FormatInt(time.Now().UnixNano(), 36), Topics: []string{events.TopicPlacements},
		SessionTimeout: 2 * time.Second, RebalanceTimeout: 2 * time.Second,
	}, func(ctx context.Context, e eventbus.Event) error {
		if e.Type != events.TypePlacementRequested {
			return nil
		}
		var req events.PlacementRequested
		if err := e.Decode(&req); err != nil {
			return eventbus.Poison(err)
		}
		var out eventbus.Event
		var err error
		if req.Region == "hold" {
			return nil // never answered: the instance stays placing
		}
		if req.Region == "nowhere" || req.TenantID == tenantNoRoom {
			out, err = eventbus.NewEvent(events.TypePlacementFailed, "/services/scheduling", req.InstanceID, events.PlacementFailed{
				InstanceID: req.InstanceID, TenantID: req.TenantID, RequestID: req.RequestID, Kind: "new", Reason: "no region nowhere",
			})
		} else {
			d := events.PlacementDecided{InstanceID: req.InstanceID, TenantID: req.TenantID, RequestID: req.RequestID, Kind: "new",
				DeploymentMode: req.DeploymentMode, ExpiresAt: time.Now().Add(time.Hour)}
			for i, n := range req.Nodes {
				d.Nodes = append(d.Nodes, events.PlacedNode{Name: n.Name, Role: n.Role, Region: "local", AZ: fmt.Sprintf("local-%c", 'a'+i),
					Host: fmt.Sprintf("host-%d", i), Address: "127.0.0.1", Port: port(), VCPU: n.VCPU, MemoryMB: n.MemoryMB, StorageGB: n.StorageGB})
			}
			out, err = eventbus.NewEvent(events.TypePlacementDecided, "/services/scheduling", req.InstanceID, d)
		}
		if err != nil {
			return err
		}
		out.Tenant = req.TenantID
		return pub.Publish(ctx, events.TopicPlacements, out)
	}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = sub.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}

// env is the shared infrastructure of a test: broker, catalog, scheduler.
type env struct {
	brokers    []string
	catalogURL string
	pub        *eventbus.Publisher
}

func newEnv(t testing.TB) *env {
	t.Helper()
	for _, b := range []string{"mariadbd", "mariadb-install-db", "redis-server"} {
		if _, err := exec(b); err != nil {
			t.Skipf("%s not installed", b)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	broker, err := devkafka.Start(ctx, devkafka.Config{Addr: "127.0.0.1:0", Partitions: 3}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	brokers := []string{broker.Addr()}
	pub, err := eventbus.NewPublisher(eventbus.PublisherConfig{Brokers: brokers, Source: events.SourceProvisioning, BatchTimeout: time.Millisecond}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{brokers: brokers, catalogURL: catalogStandIn(t), pub: pub}
	// Registered first, so it runs last: after every service stopped.
	t.Cleanup(func() {
		cancel()
		pub.Close()
		broker.Close()
	})
	if err := eventbus.EnsureTopics(ctx, brokers, eventbus.TopicSpec{Name: events.TopicPlacements, Partitions: 3}, eventbus.TopicSpec{Name: events.TopicInstances, Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	schedulerStandIn(t, ctx, brokers, pub)
	return e
}

// svc is one running provisioning service.
type svc struct {
	*Service
	stop func()
	done chan error
}

// stack is a provisioning deployment: database, state dir, quota; the
// service can be stopped and started again on them.
type stack struct {
	t        testing.TB
	env      *env
	cfg      Config
	stateDir string
	cur      *svc
	hooks    saga.Hooks
}

func newStack(t testing.TB, e *env, edit func(*Config)) *stack {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "cnp-")
	if err != nil {
		t.Fatal(err)
	}
	st := storetest.NewConfig(t, "prov")
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.MySQLDSN, cfg.Database = st.DSN, st.Database
	cfg.InternalSecret = testSecret
	cfg.CatalogURL = e.catalogURL
	cfg.GatewayURL = "" // quotas from Config; gatewayStandIn serves them to tests that set it
	cfg.StateDir = dir
	cfg.Kafka.Brokers = e.brokers
	// Stacks share the broker; each is its own deployment.
	cfg.ConsumerGroup = "provisioning-" + st.Database
	cfg.Consumer.SessionTimeout, cfg.Consumer.RebalanceTimeout, cfg.Consumer.HeartbeatInterval = 2*time.Second, 2*time.Second, 200*time.Millisecond
	cfg.Relay.PollInterval = 20 * time.Millisecond
	cfg.Saga.SweepInterval = 500 * time.Millisecond
	cfg.Saga.StepTimeout = 90 * time.Second
	cfg.Driver.StopTimeout = 10 * time.Second
	if edit != nil {
		edit(&cfg)
	}
	s := &stack{t: t, env: e, cfg: cfg, stateDir: dir}
	t.Cleanup(func() {
		s.stopService()
		killUnder(t, dir)
		os.RemoveAll(dir)
	})
	return s
}

func (s *stack) start() {
	s.t.Helper()
	svcCfg := s.cfg
	sv, err := New(svcCfg, Deps{Logger: testLogger(s.t), Registry: prometheus.NewRegistry(), Publisher: contractChecked(s.t, s.env.pub), Hooks: s.hooks})
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sv.Run(ctx) }()
	select {
	case <-sv.Ready():
	case err := <-done:
		cancel()
		s.t.Fatalf("service stopped before ready: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		s.t.Fatal("service not ready within 60s")
	}
	s.cur = &svc{Service: sv, stop: cancel, done: done}
}

func (s *stack) stopService() {
	if s.cur == nil {
		return
	}
	s.cur.stop()
	select {
	case err := <-s.cur.done:
		if err != nil {
			s.t.Errorf("service stopped with %v", err)
		}
	case <-time.After(60 * time.Second):
		s.t.Error("service did not stop within 60s")
	}
	s.cur = nil
}

// client calls the service as a tenant.
type client struct {
	t      testing.TB
	s      *stack
	tenant string
	role   tenancy.Role
	// subject is the signed subject; "test" when empty.
	subject string
}

func (s *stack) as(tenant string) *client {
	return &client{t: s.t, s: s, tenant: tenant, role: tenancy.RoleTenantMember}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return m
}

func (c *client) do(method, path string, body any, hdr ...string) response {
	c.t.Helper()
	var rd io.Reader
	var raw []byte
	if body != nil {
		raw, _ = json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, "http://"+c.s.cur.Addr()+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	subject := c.subject
	if subject == "" {
		subject = "test"
	}
	tenancy.NewSigner([]byte(testSecret)).SignRequest(req, raw, tenancy.AudienceProvisioning, tenancy.Principal{Tenant: tenancy.ID(c.tenant), Role: c.role, Subject: subject})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header, body: b}
	checkResponse(c.t, req, r)
	return r
}

// eventually polls cond until it returns nil or the deadline passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	wait := 50 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, d, err)
		}
		time.Sleep(wait)
		if wait < time.Second {
			wait *= 2
		}
	}
}

// waitState polls GET /instances/{id} until the instance is in one of states.
func (c *client) waitState(id string, d time.Duration, states ...string) map[string]any {
	c.t.Helper()
	var last map[string]any
	eventually(c.t, d, "instance "+id+" in "+strings.Join(states, "|"), func() error {
		r := c.do("GET", "/api/v1/instances/"+id, nil)
		if r.status != http.StatusOK {
			return fmt.Errorf("status %d: %s", r.status, r.body)
		}
		last = r.json(c.t)
		for _, s := range states {
			if last["state"] == s {
				return nil
			}
		}
		return fmt.Errorf("state %v step %v reason %v", last["state"], last["step"], last["reason"])
	})
	return last
}

// installedBuild is the build of engine's server on this machine, read from
// its --version the way the local driver does.
func installedBuild(t testing.TB, e driver.Engine) driver.EngineVersion {
	t.Helper()
	name := map[driver.Engine]string{driver.EngineMySQL: "mariadbd", driver.EngineRedis: "redis-server"}[e]
	p, err := exec(name)
	if err != nil {
		t.Skipf("%s not installed", name)
	}
	out, err := osexec.Command(p, "--version").Output()
	if err != nil {
		t.Fatalf("%s --version: %v", p, err)
	}
	v, err := driver.ParseVersion(e, string(out))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func exec(name string) (string, error) {
	for _, dir := range filepath.SplitList(os.Getenv("PATH") + ":/usr/sbin:/sbin") {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", errors.New("not found")
}

// nodePIDs returns the pids of the servers running under the state dir.
func nodePIDs(root string) map[string]int {
	out := map[string]int{}
	files, _ := filepath.Glob(filepath.Join(root, "nodes", "*", "canopy.pid"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || syscall.Kill(pid, 0) != nil {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "cwd"))
		if err != nil || !strings.HasPrefix(cwd, root+"/") {
			continue
		}
		out[filepath.Base(filepath.Dir(f))] = pid
	}
	return out
}

// killUnder SIGKILLs every server process started under root, by pid.
func killUnder(t testing.TB, root string) {
	for node, pid := range nodePIDs(root) {
		t.Logf("cleanup: killing leftover server %d of node %s", pid, node)
		_ = syscall.Kill(pid, syscall.SIGKILL)
		deadline := time.Now().Add(10 * time.Second)
		for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
}
