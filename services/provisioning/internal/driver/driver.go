// Package driver defines how provisioning runs the nodes of a database
// instance: one small Driver interface over "a server process with its data",
// the node specification it takes and the node record it returns.
//
// Implementations live in sub-packages: local (real mariadbd / redis-server
// processes on 127.0.0.1) and, later, kubernetes (one StatefulSet per node
// pinned to a zone). Every implementation must pass the shared conformance
// suite in drivertest.
//
// The package is not the provisioning workflow: it knows nothing of instances,
// plans, placements, Kafka or the database where Canopy persists nodes. The
// caller (the saga) decides the topology, persists what Create/Start return and
// calls Adopt for every persisted node after a restart.
package driver

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strconv"
)

// Driver creates, runs and reconfigures the nodes of database instances.
//
// Operations are keyed by node id and are idempotent: repeating one that
// already took effect succeeds without side effects. A driver only acts on
// nodes it created or adopted; after a restart of Canopy the caller calls
// Adopt for each node it persisted before anything else.
type Driver interface {
	// Create prepares a node (data directory, configuration, accounts) without
	// starting it. Creating an existing node with the same spec returns it;
	// with a different spec it fails with ErrConflict.
	Create(ctx context.Context, spec NodeSpec) (Node, error)
	// Start runs the node and returns once it answers on its address, or with
	// an error when ctx ends first. Starting a running node returns it.
	// Every start brings the node up refusing client writes (MySQL
	// read_only, Redis a replica) whatever its last role, so that a
	// restarted former primary is never a second writable one; the caller
	// (the saga, the failover service) assigns the role with
	// ConfigurePrimary or ConfigureReplica.
	Start(ctx context.Context, nodeID string) (Node, error)
	// Stop shuts the node down gracefully (forcefully after the driver's stop
	// timeout), keeping its data. Stopping a stopped node succeeds.
	Stop(ctx context.Context, nodeID string) error
	// Destroy stops the node and removes its data, freeing its port.
	// Destroying an unknown or already destroyed node succeeds.
	Destroy(ctx context.Context, nodeID string) error
	// Status reports whether the node runs and answers. It fails with
	// ErrNotFound for a node the driver neither created nor adopted.
	Status(ctx context.Context, nodeID string) (NodeStatus, error)
	// ConfigurePrimary makes a running node a writable primary: replication
	// from another node stops, writes are allowed and, with SemiSync, the
	// primary waits for a replica's acknowledgement on commit.
	ConfigurePrimary(ctx context.Context, nodeID string, opts PrimaryOpts) error
	// ConfigureReplica makes a running node a read-only replica of
	// opts.Primary and returns once replication runs (or ctx ends).
	ConfigureReplica(ctx context.Context, nodeID string, opts ReplicaOpts) error
	// Adopt re-attaches the driver to a node created earlier (typically by a
	// previous Canopy process) from its spec and the record the caller
	// persisted. The returned status tells whether it still runs; a node whose
	// data is gone fails with ErrNotFound.
	Adopt(ctx context.Context, spec NodeSpec, node Node) (NodeStatus, error)
}

// Engine names a database engine.
type Engine string

// Engines the drivers run.
const (
	EngineMySQL Engine = "mysql"
	EngineRedis Engine = "redis"
)

// Role is a node's place in replication.
type Role string

// Roles of a node.
const (
	RolePrimary Role = "primary"
	RoleReplica Role = "replica"
)

// State is what Status observed of a node.
type State string

// States of a node.
const (
	// StateStopped: no server process runs for the node; its data is kept.
	StateStopped State = "stopped"
	// StateStarting: the process runs but does not answer yet.
	StateStarting State = "starting"
	// StateRunning: the process runs and answers on the node's address.
	StateRunning State = "running"
)

// CDCGrants are the global privileges of the cdc account on a MariaDB
// 10.11 node: SELECT for the consistent snapshot, REPLICATION SLAVE for
// COM_BINLOG_DUMP_GTID, BINLOG MONITOR for SHOW BINLOG STATUS and
// @@gtid_binlog_pos, SLAVE MONITOR for SHOW SLAVE STATUS (is a replica a
// good capture source?). Sync jobs also write their target instance as
// this account: INSERT, UPDATE, DELETE for the changes, CREATE, ALTER,
// DROP, INDEX for missing tables, replayed DDL and their _canopy_sync
// watermark schema, and BINLOG REPLAY for SET SESSION server_id (the job's
// own id marks its writes so that its captures skip them).
const CDCGrants = "SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX, REPLICATION SLAVE, BINLOG MONITOR, SLAVE MONITOR, BINLOG REPLAY"

// Credentials is one account on a node.
type Credentials struct {
	Username string
	Password string
}

// Placement says where a node lives. The local driver records it; the
// kubernetes driver turns it into zone affinity.
type Placement struct {
	Region string
	Zone   string
	Host   string
}

// NodeSpec describes a node to create. Secrets are held by the caller (which
// stores them encrypted) and passed again to Adopt after a restart.
type NodeSpec struct {
	// InstanceID is the instance the node belongs to.
	InstanceID string
	// NodeID identifies the node; unique across instances. It names the node's
	// directory, so it is limited to letters, digits, '-' and '_'.
	NodeID string
	// Engine is the database engine.
	Engine Engine
	// Version is the engine version ("10.11", "7.0"); empty takes the driver's
	// default. A driver refuses a version it cannot run.
	Version string
	// Role is the node's initial role: a replica starts read-only.
	Role Role
	// Port is the TCP port, from the host's range, chosen by the caller.
	Port int
	// DataRoot is the directory under which the local driver keeps the node
	// (DataRoot/nodes/<node-id>); other drivers may ignore it.
	DataRoot string
	// MemoryLimitBytes caps the dataset (Redis maxmemory); 0 means no cap.
	MemoryLimitBytes int64
	// Settings are engine configuration keys and values (MariaDB option names
	// or Redis directives), typically the tuned values from libs/nettune. They
	// override the driver's defaults; keys the driver manages are refused.
	Settings map[string]string
	// SemiSync makes a MySQL primary wait for one replica's acknowledgement
	// (multi-az plans). Ignored for Redis.
	SemiSync bool
	// Admin is Canopy's own administrative account; never given to tenants.
	Admin Credentials
	// Monitor is the least-privilege account of the health checker.
	Monitor Credentials
	// Replication is the account replicas use to reach their primary.
	Replication Credentials
	// CDC is the account of the cdc service (snapshot reads and binlog
	// dump) on a MySQL node. Empty for Redis and for instances created
	// before CDC existed; omitzero keeps such specs' fingerprints unchanged.
	CDC Credentials `json:",omitzero"`
	// Database is the application database created on a MySQL node.
	Database string
	// Placement is where the node runs.
	Placement Placement
	// Seed, when set, is the directory a restored instance's node is made
	// from instead of an empty data set (the backup service's restore job
	// wrote it on the node's host): for MySQL a complete, cleanly stopped
	// data directory, for Redis a directory holding dump.rdb. Canopy's
	// accounts are (re)made on first start with this spec's passwords. Only
	// Create reads it; a seed that does not exist is a *SpecError. omitzero
	// keeps the fingerprints of nodes made without one unchanged.
	Seed string `json:",omitzero"`
}

// Node is the record of a created node that the caller persists.
type Node struct {
	ID         string
	InstanceID string
	Engine     Engine
	Role       Role
	// PID is the server process id while it runs (0 otherwise, and always 0
	// for drivers that do not run local processes).
	PID  int
	Port int
	// Address is "host:port" where clients reach the node.
	Address string
	// DataDir is the directory holding the node's data and configuration;
	// the engine's own data directory (MariaDB's datadir, Redis's dir with
	// dump.rdb) is EngineDataDir(DataDir).
	DataDir string
}

// EngineDataDir is the engine's data directory inside a node's DataDir:
// where the backup service runs mariadb-backup against and reads dump.rdb
// from. "" for a node without a DataDir.
func EngineDataDir(nodeDataDir string) string {
	if nodeDataDir == "" {
		return ""
	}
	return filepath.Join(nodeDataDir, "data")
}

// NodeStatus is what Status and Adopt observed.
type NodeStatus struct {
	Node  Node
	State State
}

// Endpoint is a host and port.
type Endpoint struct {
	Host string
	Port int
}

// String returns "host:port".
func (e Endpoint) String() string { return net.JoinHostPort(e.Host, strconv.Itoa(e.Port)) }

// EndpointOf returns the endpoint of a node's address.
func EndpointOf(n Node) (Endpoint, error) {
	host, port, err := net.SplitHostPort(n.Address)
	if err != nil {
		return Endpoint{}, err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return Endpoint{}, err
	}
	return Endpoint{Host: host, Port: p}, nil
}

// PrimaryOpts configures a node as primary.
type PrimaryOpts struct {
	// SemiSync turns on the master side of semi-synchronous replication
	// (MySQL; normally the instance's NodeSpec.SemiSync).
	SemiSync bool
}

// ReplicaOpts configures a node as replica.
type ReplicaOpts struct {
	// Primary is where the replica replicates from.
	Primary Endpoint
	// SemiSync turns on the replica side of semi-synchronous replication
	// (MySQL; normally the instance's NodeSpec.SemiSync).
	SemiSync bool
}

// Errors callers branch on.
var (
	// ErrNotFound: the driver does not know the node, or its data is gone.
	ErrNotFound = errors.New("node not found")
	// ErrConflict: a node with this id exists with a different spec.
	ErrConflict = errors.New("node exists with a different spec")
	// ErrNotRunning: the operation needs a running node.
	ErrNotRunning = errors.New("node not running")
	// ErrPortInUse: the node's port is taken by another process.
	ErrPortInUse = errors.New("port in use")
	// ErrUnsupported: the driver cannot run this engine or version.
	ErrUnsupported = errors.New("unsupported engine or version")
)
