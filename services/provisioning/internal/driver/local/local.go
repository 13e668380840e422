// Package local is the process driver: every node is a real mariadbd or
// redis-server process on 127.0.0.1, with its data and configuration under
// <data root>/nodes/<node id>/.
//
// Processes run in their own session (they survive a restart of Canopy) and
// are tracked by pid, port and data directory; Adopt re-attaches to them after
// a restart, checking the pid is the expected binary working in the node's
// data directory. MariaDB nodes are initialised by copying a per-version
// template data directory made once with mariadb-install-db (or by running it
// for every node when Config.NoTemplate is set); Canopy's accounts are created
// on the first start through --init-file, without touching the binary log.
//
// Supervise (supervise.go) watches the node processes the driver started or
// adopted the way systemd would: a process that exits without the driver
// stopping it is restarted after a short delay, backing off in a crash loop.
// Every start, first or not, brings a node up refusing client writes
// (MariaDB read_only=ON with init_rpl_role=SLAVE, Redis as a replica): only
// an explicit ConfigurePrimary makes it writable, so a fast restart can never
// produce a second writable primary (docs/provisioning.md, "Failover").
package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/canopy-platform/canopy/libs/retry"
	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
)

const (
	loopback = "127.0.0.1"
	// maxSocketPath is the room for a unix socket path (sun_path) minus the
	// terminating NUL; mariadbd's socket lives in the node directory.
	maxSocketPath = 107
)

// Config configures the local driver.
type Config struct {
	// MariadbdPath is the MariaDB server binary; default: mariadbd from PATH.
	MariadbdPath string `yaml:"mariadbd_path" env:"MARIADBD_PATH"`
	// InstallDBPath is mariadb-install-db; default: from PATH.
	InstallDBPath string `yaml:"install_db_path" env:"MARIADB_INSTALL_DB_PATH"`
	// RedisServerPath is the Redis server binary; default: redis-server from PATH.
	RedisServerPath string `yaml:"redis_server_path" env:"REDIS_SERVER_PATH"`
	// NoTemplate runs mariadb-install-db for every MySQL node instead of
	// copying a template data directory initialised once per version.
	NoTemplate bool `yaml:"no_template" env:"NO_TEMPLATE"`
	// StopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	StopTimeout time.Duration `yaml:"stop_timeout" env:"STOP_TIMEOUT" default:"30s"`
	// RestartDelay is how long Supervise waits before restarting a node
	// process that exited without being stopped.
	RestartDelay time.Duration `yaml:"restart_delay" env:"RESTART_DELAY" default:"1s"`
	// RestartDelayMax caps the delay, which doubles with every restart of a
	// node that did not stay up for StableAfter (a crash loop never spins).
	RestartDelayMax time.Duration `yaml:"restart_delay_max" env:"RESTART_DELAY_MAX" default:"30s"`
	// SuperviseInterval is how often Supervise looks at the processes.
	SuperviseInterval time.Duration `yaml:"supervise_interval" env:"SUPERVISE_INTERVAL" default:"100ms"`
}

// StableAfter is how long a restarted node must stay up for its restart
// delay to fall back to RestartDelay.
const StableAfter = 10 * time.Second

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.StopTimeout < 0 {
		return errors.New("local driver: stop_timeout must not be negative")
	}
	if c.RestartDelay < 0 || c.RestartDelayMax < 0 || c.SuperviseInterval < 0 {
		return errors.New("local driver: restart_delay, restart_delay_max and supervise_interval must not be negative")
	}
	if c.RestartDelayMax > 0 && c.RestartDelay > c.RestartDelayMax {
		return errors.New("local driver: restart_delay must not exceed restart_delay_max")
	}
	return nil
}

// Driver runs nodes as local processes. It is safe for concurrent use;
// operations on one node are serialised.
type Driver struct {
	cfg    Config
	log    *slog.Logger
	mysql  *mariadb
	redis  *redis
	mu     sync.Mutex
	nodes  map[string]*node
	tplMu  sync.Mutex
	tplFor map[string]*sync.Mutex
}

var _ driver.Driver = (*Driver)(nil)

// New returns a local driver. Binaries are looked up on first use, so a
// machine without Redis can still run MySQL nodes.
func New(cfg Config, logger *slog.Logger) (*Driver, error) {
	if logger == nil {
		return nil, errors.New("local driver: nil logger")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = 30 * time.Second
	}
	if cfg.RestartDelay == 0 {
		cfg.RestartDelay = time.Second
	}
	if cfg.RestartDelayMax == 0 {
		cfg.RestartDelayMax = max(30*time.Second, cfg.RestartDelay)
	}
	if cfg.SuperviseInterval == 0 {
		cfg.SuperviseInterval = 100 * time.Millisecond
	}
	d := &Driver{
		cfg:    cfg,
		log:    logger.With("driver", "local"),
		nodes:  make(map[string]*node),
		tplFor: make(map[string]*sync.Mutex),
	}
	d.mysql = &mariadb{d: d, bin: binary{name: "mariadbd", path: cfg.MariadbdPath, engine: driver.EngineMySQL}, installDB: binary{name: "mariadb-install-db", path: cfg.InstallDBPath}}
	d.redis = &redis{bin: binary{name: "redis-server", path: cfg.RedisServerPath, engine: driver.EngineRedis}}
	return d, nil
}

// engine is what differs between MariaDB and Redis nodes.
type engine interface {
	// server is the server binary.
	server() *binary
	// checkSettings refuses settings keys the driver manages itself.
	checkSettings(settings map[string]string) error
	// prepare fills a new node directory: data (from seed when not "":
	// NodeSpec.Seed), configuration, accounts.
	prepare(ctx context.Context, n *node, seed string) error
	// writeConfig renders the node's configuration from spec and state.
	writeConfig(n *node) error
	// args are the server's command-line arguments for a start.
	args(n *node) []string
	// logFile is the server's own log, quoted in start failures.
	logFile(n *node) string
	// ping checks that the node answers to Canopy's admin account.
	ping(ctx context.Context, n *node) error
	// started runs once after a start answered.
	started(n *node) error
	configurePrimary(ctx context.Context, n *node, opts driver.PrimaryOpts) error
	configureReplica(ctx context.Context, n *node, opts driver.ReplicaOpts) error
}

func (d *Driver) engine(e driver.Engine) engine {
	if e == driver.EngineRedis {
		return d.redis
	}
	return d.mysql
}

// node is the driver's view of one node. mu serialises operations on it.
type node struct {
	mu      sync.Mutex
	spec    driver.NodeSpec
	state   nodeState
	dir     string
	pid     int
	exited  <-chan struct{} // closed when a process this driver started exits
	removed bool            // destroyed; a waiter must look the node up again
	// redisAdmin is a Redis node's admin client, kept open from the first
	// answered ping until the server stops or a call fails (redis.go).
	redisAdmin *goredis.Client
	// supervised: the node should run; Supervise restarts it when its
	// process exits. Set by a start, cleared by Stop and Destroy.
	supervised bool
	// launchedAt is when the current process was launched; crashes counts
	// restarts since the node last stayed up for StableAfter; restartAt is
	// when Supervise restarts a node found dead (zero: none pending).
	launchedAt time.Time
	crashes    int
	restartAt  time.Time
}

// nodeState is persisted in the node directory (node.json) without secrets;
// its presence marks a completely created node.
type nodeState struct {
	InstanceID  string           `json:"instance_id"`
	NodeID      string           `json:"node_id"`
	Engine      driver.Engine    `json:"engine"`
	Version     string           `json:"version"`
	Port        int              `json:"port"`
	Fingerprint string           `json:"fingerprint"`
	Placement   driver.Placement `json:"placement"`
	Role        driver.Role      `json:"role"`
	SemiSync    bool             `json:"semi_sync"`
	Source      *driver.Endpoint `json:"source,omitempty"`
	CreatedAt   time.Time        `json:"created_at"`
}

func (n *node) dataDir() string  { return driver.EngineDataDir(n.dir) }
func (n *node) pidFile() string  { return filepath.Join(n.dir, "canopy.pid") }
func (n *node) metaFile() string { return filepath.Join(n.dir, "node.json") }
func (n *node) outFile() string  { return filepath.Join(n.dir, "stdout.log") }

func (n *node) record() driver.Node {
	return driver.Node{
		ID:         n.spec.NodeID,
		InstanceID: n.spec.InstanceID,
		Engine:     n.spec.Engine,
		Role:       n.state.Role,
		PID:        n.pid,
		Port:       n.spec.Port,
		Address:    net.JoinHostPort(loopback, strconv.Itoa(n.spec.Port)),
		DataDir:    n.dir,
	}
}

func (n *node) logger(l *slog.Logger) *slog.Logger {
	return l.With("instance", n.spec.InstanceID, "node", n.spec.NodeID, "engine", string(n.spec.Engine))
}

func nodeDir(spec driver.NodeSpec) string {
	return filepath.Join(spec.DataRoot, "nodes", spec.NodeID)
}

// fingerprint identifies a spec without its secrets and without its role,
// so Create and Adopt can tell a repeat from a conflicting request. The
// role is left out because it changes over a node's life (a failover
// promotes a replica): the caller's record of it is not a different node.
func fingerprint(spec driver.NodeSpec) string {
	spec.Role = ""
	return legacyFingerprint(spec)
}

// legacyFingerprint is the fingerprint of node.json files written before
// the role left it.
func legacyFingerprint(spec driver.NodeSpec) string {
	spec.Admin.Password, spec.Monitor.Password, spec.Replication.Password, spec.CDC.Password = "", "", "", ""
	b, _ := json.Marshal(spec) // maps marshal with sorted keys
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// sameNode reports whether a stored fingerprint is spec's, in either form.
func sameNode(stored string, spec driver.NodeSpec) bool {
	if stored == fingerprint(spec) {
		return true
	}
	for _, r := range []driver.Role{driver.RolePrimary, driver.RoleReplica} {
		spec.Role = r
		if stored == legacyFingerprint(spec) {
			return true
		}
	}
	return false
}

func (n *node) saveState() error {
	b, err := json.MarshalIndent(n.state, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(n.metaFile(), b, 0o600)
}

func loadState(dir string) (nodeState, error) {
	var st nodeState
	b, err := os.ReadFile(filepath.Join(dir, "node.json"))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("decode %s/node.json: %w", dir, err)
	}
	return st, nil
}

// writeFileAtomic replaces path with data through a rename, so a crash never
// leaves a half-written file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func (d *Driver) validate(ctx context.Context, spec driver.NodeSpec) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	if spec.DataRoot == "" || !filepath.IsAbs(spec.DataRoot) {
		return &driver.SpecError{Field: "data_root", Reason: "must be an absolute path"}
	}
	if spec.Engine == driver.EngineMySQL {
		if sock := filepath.Join(nodeDir(spec), "mysqld.sock"); len(sock) > maxSocketPath {
			return &driver.SpecError{Field: "data_root", Reason: fmt.Sprintf("socket path %s is longer than %d bytes; use a shorter data root", sock, maxSocketPath)}
		}
	}
	e := d.engine(spec.Engine)
	if err := e.checkSettings(spec.Settings); err != nil {
		return err
	}
	have, err := e.server().version(ctx)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", driver.ErrUnsupported, spec.Engine, err)
	}
	if !versionMatches(spec.Version, have) {
		return fmt.Errorf("%w: %s %s requested, %s installed", driver.ErrUnsupported, spec.Engine, spec.Version, have)
	}
	return nil
}

// EngineVersions reports the builds of mariadbd and redis-server this
// driver runs, read from their --version once and cached; a server that is
// missing or unreadable is left out (and logged), so a machine without
// Redis still offers MySQL.
func (d *Driver) EngineVersions(ctx context.Context) []driver.EngineVersion {
	var out []driver.EngineVersion
	for _, e := range []driver.Engine{driver.EngineMySQL, driver.EngineRedis} {
		v, err := d.engine(e).server().engineVersion(ctx)
		if err != nil {
			d.log.Warn("engine not available", "engine", string(e), "err", err)
			continue
		}
		out = append(out, v)
	}
	return out
}

var _ driver.Versions = (*Driver)(nil)

// versionMatches reports whether the requested version (empty, or a dotted
// prefix such as "10.11") is satisfied by the installed one ("10.11.19").
func versionMatches(want, have string) bool {
	return want == "" || want == have || strings.HasPrefix(have, want+".")
}

// lookup returns the node with id, locked; callers unlock n.mu.
func (d *Driver) lookup(id string) (*node, error) {
	for {
		d.mu.Lock()
		n := d.nodes[id]
		d.mu.Unlock()
		if n == nil {
			return nil, fmt.Errorf("node %s: %w", id, driver.ErrNotFound)
		}
		n.mu.Lock()
		if !n.removed {
			return n, nil
		}
		n.mu.Unlock()
	}
}

// claim returns the registry entry for spec's node, creating a blank one,
// locked; callers unlock n.mu.
func (d *Driver) claim(spec driver.NodeSpec) *node {
	for {
		d.mu.Lock()
		n := d.nodes[spec.NodeID]
		if n == nil {
			n = &node{spec: spec, dir: nodeDir(spec)}
			d.nodes[spec.NodeID] = n
		}
		d.mu.Unlock()
		n.mu.Lock()
		if !n.removed {
			return n
		}
		n.mu.Unlock()
	}
}

// forget drops n from the registry; n.mu is held.
func (d *Driver) forget(n *node) {
	n.dropAdmin()
	n.removed = true
	d.mu.Lock()
	if d.nodes[n.spec.NodeID] == n {
		delete(d.nodes, n.spec.NodeID)
	}
	d.mu.Unlock()
}

// Create prepares the node's directory, data and configuration.
func (d *Driver) Create(ctx context.Context, spec driver.NodeSpec) (driver.Node, error) {
	if err := d.validate(ctx, spec); err != nil {
		return driver.Node{}, fmt.Errorf("create node %s: %w", spec.NodeID, err)
	}
	fp := fingerprint(spec)
	n := d.claim(spec)
	defer n.mu.Unlock()
	if n.state.Fingerprint != "" {
		if !sameNode(n.state.Fingerprint, spec) {
			return driver.Node{}, fmt.Errorf("create node %s: %w", spec.NodeID, driver.ErrConflict)
		}
		return n.record(), nil
	}
	log := n.logger(d.log)
	// A node directory left by an earlier Canopy process: the same node when
	// its state file says so, a half-created one (to redo) when it has none.
	// An unreadable state file is an error: the directory may hold data.
	switch st, err := loadState(n.dir); {
	case err == nil:
		if !sameNode(st.Fingerprint, spec) {
			return driver.Node{}, fmt.Errorf("create node %s: %w", spec.NodeID, driver.ErrConflict)
		}
		n.spec, n.state = spec, st
		d.refresh(n, 0)
		n.supervised = n.pid != 0 || n.hasPIDFile()
		log.Info("node exists", "pid", n.pid)
		return n.record(), nil
	case !errors.Is(err, os.ErrNotExist):
		d.forget(n)
		return driver.Node{}, fmt.Errorf("create node %s: %w", spec.NodeID, err)
	}
	started := time.Now()
	if err := d.create(ctx, n, fp); err != nil {
		d.forget(n)
		return driver.Node{}, fmt.Errorf("create node %s: %w", spec.NodeID, err)
	}
	log.Info("node created", "dir", n.dir, "port", spec.Port, "role", string(spec.Role), "took", time.Since(started))
	return n.record(), nil
}

func (d *Driver) create(ctx context.Context, n *node, fp string) error {
	if err := os.RemoveAll(n.dir); err != nil {
		return fmt.Errorf("clear half-created %s: %w", n.dir, err)
	}
	if err := os.MkdirAll(n.dir, 0o700); err != nil {
		return fmt.Errorf("make node dir: %w", err)
	}
	version, err := d.engine(n.spec.Engine).server().version(ctx)
	if err != nil {
		return err
	}
	n.state = nodeState{
		InstanceID: n.spec.InstanceID,
		NodeID:     n.spec.NodeID,
		Engine:     n.spec.Engine,
		Version:    version,
		Port:       n.spec.Port,
		Placement:  n.spec.Placement,
		Role:       n.spec.Role,
		SemiSync:   n.spec.SemiSync,
		CreatedAt:  time.Now().UTC(),
	}
	e := d.engine(n.spec.Engine)
	if err := e.prepare(ctx, n, n.spec.Seed); err != nil {
		os.RemoveAll(n.dir)
		n.state = nodeState{}
		return err
	}
	if err := e.writeConfig(n); err != nil {
		os.RemoveAll(n.dir)
		n.state = nodeState{}
		return err
	}
	n.state.Fingerprint = fp
	if err := n.saveState(); err != nil {
		os.RemoveAll(n.dir)
		n.state = nodeState{}
		return fmt.Errorf("save node state: %w", err)
	}
	return nil
}

// runningPID returns the pid of the node's server when one runs: candidate
// (the pid the caller persisted) or the one in the node's pid file.
func (d *Driver) runningPID(n *node, candidate int) int {
	bin, err := d.engine(n.spec.Engine).server().resolve()
	if err != nil {
		return 0
	}
	if candidate > 0 && isServer(candidate, bin, n.dataDir()) {
		return candidate
	}
	if b, err := os.ReadFile(n.pidFile()); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && isServer(pid, bin, n.dataDir()) {
			return pid
		}
	}
	return 0
}

// refresh sets n.pid to the running server's pid (0 when none runs) and
// returns it; the exit channel only belongs to the process it was made for.
func (d *Driver) refresh(n *node, candidate int) int {
	pid := d.runningPID(n, candidate)
	if pid != n.pid || pid == 0 {
		n.exited = nil
	}
	n.pid = pid
	return pid
}

// Start runs the node's server and waits until it answers.
func (d *Driver) Start(ctx context.Context, nodeID string) (driver.Node, error) {
	n, err := d.lookup(nodeID)
	if err != nil {
		return driver.Node{}, fmt.Errorf("start: %w", err)
	}
	defer n.mu.Unlock()
	log := n.logger(d.log)
	e := d.engine(n.spec.Engine)
	if d.refresh(n, n.pid) != 0 {
		// Already running, possibly from a start interrupted by a restart
		// of Canopy: finish that start.
		if err := d.waitReady(ctx, n, e); err != nil {
			return driver.Node{}, fmt.Errorf("start node %s: %w", nodeID, err)
		}
		if err := e.started(n); err != nil {
			return driver.Node{}, fmt.Errorf("start node %s: %w", nodeID, err)
		}
		n.supervised, n.restartAt = true, time.Time{}
		return n.record(), nil
	}
	began := time.Now()
	pid, err := d.spawn(n, e)
	if err != nil {
		return driver.Node{}, fmt.Errorf("start node %s: %w", nodeID, err)
	}
	if err := d.waitReady(ctx, n, e); err != nil {
		return driver.Node{}, fmt.Errorf("start node %s: %w", nodeID, err)
	}
	if err := e.started(n); err != nil {
		return driver.Node{}, fmt.Errorf("start node %s: %w", nodeID, err)
	}
	n.supervised, n.restartAt = true, time.Time{}
	log.Info("node started", "pid", pid, "port", n.spec.Port, "took", time.Since(began))
	return n.record(), nil
}

// spawn launches the node's server and records its pid (in the node and
// its pid file) without waiting for it to answer; n.mu is held. The pid file
// is the record that the node should run: only a stop removes it.
func (d *Driver) spawn(n *node, e engine) (int, error) {
	if !portFree(n.spec.Port) {
		return 0, fmt.Errorf("%w: %d", driver.ErrPortInUse, n.spec.Port)
	}
	bin, err := e.server().resolve()
	if err != nil {
		return 0, err
	}
	n.dropAdmin() // a client of an earlier run of the server
	pid, exited, err := launch(bin, e.args(n), n.dataDir(), n.outFile())
	if err != nil {
		return 0, err
	}
	n.pid, n.exited, n.launchedAt = pid, exited, time.Now()
	if err := writeFileAtomic(n.pidFile(), []byte(strconv.Itoa(pid)+"\n"), 0o600); err != nil {
		return 0, fmt.Errorf("record pid: %w", err)
	}
	return pid, nil
}

// hasPIDFile reports whether the node's pid file exists: the node was
// started and not stopped since.
func (n *node) hasPIDFile() bool {
	_, err := os.Stat(n.pidFile())
	return err == nil
}

// waitReady waits until the node answers, its process exits or ctx ends.
func (d *Driver) waitReady(ctx context.Context, n *node, e engine) error {
	var last error
	err := retry.Do(ctx, pollPolicy, func(ctx context.Context) error {
		if n.exited != nil {
			select {
			case <-n.exited:
				n.pid = 0
				return retry.Permanent(fmt.Errorf("server exited during start: %s", startLog(n, e)))
			default:
			}
		} else if !alive(n.pid) {
			n.pid = 0
			return retry.Permanent(fmt.Errorf("server exited during start: %s", startLog(n, e)))
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		last = e.ping(pctx, n)
		return last
	})
	if err != nil && last != nil && ctx.Err() != nil {
		return fmt.Errorf("not answering: %w (last: %v)", err, last)
	}
	return err
}

// startLog is what the server logged before it failed to start: its own
// log and what it wrote to stdout/stderr.
func startLog(n *node, e engine) string {
	return strings.TrimSpace(tail(e.logFile(n), 1500) + "\n" + tail(n.outFile(), 500))
}

// Stop shuts the node's server down, keeping its data.
func (d *Driver) Stop(ctx context.Context, nodeID string) error {
	n, err := d.lookup(nodeID)
	if err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	defer n.mu.Unlock()
	return d.stop(ctx, n)
}

func (d *Driver) stop(ctx context.Context, n *node) error {
	// A stop is intended: the supervisor leaves the node down, also when
	// its process is already gone (a crash the supervisor had not yet
	// repaired).
	n.supervised, n.restartAt, n.crashes = false, time.Time{}, 0
	pid := d.refresh(n, n.pid)
	if pid == 0 {
		if err := os.Remove(n.pidFile()); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("stop node %s: %w", n.spec.NodeID, err)
		}
		return nil
	}
	began := time.Now()
	if err := terminate(ctx, pid, n.exited, d.cfg.StopTimeout); err != nil {
		return fmt.Errorf("stop node %s: %w", n.spec.NodeID, err)
	}
	n.pid, n.exited = 0, nil
	n.dropAdmin()
	if err := os.Remove(n.pidFile()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("stop node %s: %w", n.spec.NodeID, err)
	}
	n.logger(d.log).Info("node stopped", "pid", pid, "took", time.Since(began))
	return nil
}

// Destroy stops the node and removes its directory.
func (d *Driver) Destroy(ctx context.Context, nodeID string) error {
	n, err := d.lookup(nodeID)
	if errors.Is(err, driver.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer n.mu.Unlock()
	if err := d.stop(ctx, n); err != nil {
		return fmt.Errorf("destroy: %w", err)
	}
	if err := os.RemoveAll(n.dir); err != nil {
		return fmt.Errorf("destroy node %s: remove %s: %w", nodeID, n.dir, err)
	}
	d.forget(n)
	n.logger(d.log).Info("node destroyed", "dir", n.dir)
	return nil
}

// Status reports whether the node's server runs and answers.
func (d *Driver) Status(ctx context.Context, nodeID string) (driver.NodeStatus, error) {
	n, err := d.lookup(nodeID)
	if err != nil {
		return driver.NodeStatus{}, fmt.Errorf("status: %w", err)
	}
	defer n.mu.Unlock()
	return d.status(ctx, n), nil
}

func (d *Driver) status(ctx context.Context, n *node) driver.NodeStatus {
	if d.refresh(n, n.pid) == 0 {
		return driver.NodeStatus{Node: n.record(), State: driver.StateStopped}
	}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := d.engine(n.spec.Engine).ping(pctx, n); err != nil {
		return driver.NodeStatus{Node: n.record(), State: driver.StateStarting}
	}
	return driver.NodeStatus{Node: n.record(), State: driver.StateRunning}
}

// Adopt re-attaches to a node created by an earlier Canopy process.
func (d *Driver) Adopt(ctx context.Context, spec driver.NodeSpec, rec driver.Node) (driver.NodeStatus, error) {
	if err := d.validate(ctx, spec); err != nil {
		return driver.NodeStatus{}, fmt.Errorf("adopt node %s: %w", spec.NodeID, err)
	}
	if rec.ID != spec.NodeID {
		return driver.NodeStatus{}, fmt.Errorf("adopt node %s: record is for node %q", spec.NodeID, rec.ID)
	}
	dir := nodeDir(spec)
	if rec.DataDir != "" && filepath.Clean(rec.DataDir) != dir {
		return driver.NodeStatus{}, fmt.Errorf("adopt node %s: record's data dir %s is not %s", spec.NodeID, rec.DataDir, dir)
	}
	st, err := loadState(dir)
	if errors.Is(err, os.ErrNotExist) {
		return driver.NodeStatus{}, fmt.Errorf("adopt node %s: %w", spec.NodeID, driver.ErrNotFound)
	}
	if err != nil {
		return driver.NodeStatus{}, fmt.Errorf("adopt node %s: %w", spec.NodeID, err)
	}
	if !sameNode(st.Fingerprint, spec) {
		return driver.NodeStatus{}, fmt.Errorf("adopt node %s: %w", spec.NodeID, driver.ErrConflict)
	}
	n := d.claim(spec)
	defer n.mu.Unlock()
	if n.state.Fingerprint == "" {
		n.spec, n.state, n.dir = spec, st, dir
		d.refresh(n, rec.PID)
		// A node that runs, or whose process died without a stop (its pid
		// file is still there: it crashed while Canopy was away), is
		// supervised; a node stopped through a driver is not.
		n.supervised = n.pid != 0 || n.hasPIDFile()
	}
	status := d.status(ctx, n)
	n.logger(d.log).Info("node adopted", "pid", n.pid, "state", string(status.State))
	return status, nil
}

// ConfigurePrimary makes the running node a writable primary.
func (d *Driver) ConfigurePrimary(ctx context.Context, nodeID string, opts driver.PrimaryOpts) error {
	n, err := d.lookup(nodeID)
	if err != nil {
		return fmt.Errorf("configure primary: %w", err)
	}
	defer n.mu.Unlock()
	if d.refresh(n, n.pid) == 0 {
		return fmt.Errorf("configure node %s as primary: %w", nodeID, driver.ErrNotRunning)
	}
	began := time.Now()
	if err := d.setRole(n, driver.RolePrimary, opts.SemiSync, nil); err != nil {
		return fmt.Errorf("configure node %s as primary: %w", nodeID, err)
	}
	if err := d.engine(n.spec.Engine).configurePrimary(ctx, n, opts); err != nil {
		return fmt.Errorf("configure node %s as primary: %w", nodeID, err)
	}
	n.logger(d.log).Info("node configured as primary", "semi_sync", opts.SemiSync, "took", time.Since(began))
	return nil
}

// ConfigureReplica makes the running node a read-only replica of opts.Primary.
func (d *Driver) ConfigureReplica(ctx context.Context, nodeID string, opts driver.ReplicaOpts) error {
	n, err := d.lookup(nodeID)
	if err != nil {
		return fmt.Errorf("configure replica: %w", err)
	}
	defer n.mu.Unlock()
	if opts.Primary.Host == "" || opts.Primary.Port <= 0 {
		return fmt.Errorf("configure node %s as replica: %w", nodeID, &driver.SpecError{Field: "primary", Reason: "host and port required"})
	}
	if opts.Primary.Port == n.spec.Port && (opts.Primary.Host == loopback || opts.Primary.Host == "localhost") {
		return fmt.Errorf("configure node %s as replica: %w", nodeID, &driver.SpecError{Field: "primary", Reason: "a node cannot replicate from itself"})
	}
	if d.refresh(n, n.pid) == 0 {
		return fmt.Errorf("configure node %s as replica: %w", nodeID, driver.ErrNotRunning)
	}
	began := time.Now()
	source := opts.Primary
	if err := d.setRole(n, driver.RoleReplica, opts.SemiSync, &source); err != nil {
		return fmt.Errorf("configure node %s as replica: %w", nodeID, err)
	}
	if err := d.engine(n.spec.Engine).configureReplica(ctx, n, opts); err != nil {
		return fmt.Errorf("configure node %s as replica of %s: %w", nodeID, opts.Primary, err)
	}
	n.logger(d.log).Info("node configured as replica", "primary", opts.Primary.String(), "semi_sync", opts.SemiSync, "took", time.Since(began))
	return nil
}

// setRole records a role change and rewrites the configuration, so the
// role survives a restart of the node.
func (d *Driver) setRole(n *node, role driver.Role, semiSync bool, source *driver.Endpoint) error {
	prev := n.state
	n.state.Role, n.state.SemiSync, n.state.Source = role, semiSync, source
	if err := d.engine(n.spec.Engine).writeConfig(n); err != nil {
		n.state = prev
		return fmt.Errorf("write config: %w", err)
	}
	if err := n.saveState(); err != nil {
		n.state = prev
		return fmt.Errorf("save node state: %w", err)
	}
	return nil
}
