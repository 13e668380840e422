// Package topology is the failover service's model of an instance's
// replication topology: the nodes Canopy assigned roles to, what one look at
// each node saw, and the ports through which the recovery reaches nodes and
// records itself. It knows nothing of SQL, Redis, HTTP or Kafka; the adapters
// (mysqlnode, redisnode, mysqlstore, provclient) do.
package topology

import (
	"context"
	"errors"
	"time"
)

// Engine names a database engine.
type Engine string

// Engines failover handles.
const (
	EngineMySQL Engine = "mysql"
	EngineRedis Engine = "redis"
)

// Role is the role Canopy assigned a node.
type Role string

// Roles of a node.
const (
	RolePrimary Role = "primary"
	RoleReplica Role = "replica"
	// RoleFenced: a former primary that must never take writes again until
	// it has been rejoined as a replica of the current primary.
	RoleFenced Role = "fenced"
)

// PromotionRule is a node's eligibility as a failover candidate.
type PromotionRule string

// Promotion rules (orchestrator's names).
const (
	PromotePrefer  PromotionRule = "prefer"
	PromoteNeutral PromotionRule = "neutral"
	PromoteNever   PromotionRule = "never"
)

// Credentials is one account on the nodes.
type Credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// Node is one node of an instance as Canopy assigned it.
type Node struct {
	ID        string
	Address   string // host:port
	Region    string
	Zone      string
	Role      Role
	Promotion PromotionRule
}

// Instance is what failover needs to know of an instance: its nodes and the
// accounts to act on them with (admin to reconfigure, replication for
// CHANGE MASTER / masterauth).
type Instance struct {
	ID     string
	Tenant string
	Engine Engine
	// Mode is the plan's deployment mode (single-az, multi-az, multi-region).
	Mode string
	// Region is the primary region (multi-region plans keep DR nodes elsewhere).
	Region      string
	SemiSync    bool
	Nodes       []Node
	Admin       Credentials
	Replication Credentials
}

// Primary returns the node Canopy assigned the primary role, if any.
func (in Instance) Primary() (Node, bool) {
	for _, n := range in.Nodes {
		if n.Role == RolePrimary {
			return n, true
		}
	}
	return Node{}, false
}

// Node returns the node with the given id.
func (in Instance) Node(id string) (Node, bool) {
	for _, n := range in.Nodes {
		if n.ID == id {
			return n, true
		}
	}
	return Node{}, false
}

// Position is how far a node's data goes: a MariaDB GTID set
// ("0-1-42,1-2-7") or a Redis replication offset within a replication id.
type Position struct {
	GTID   string `json:"gtid,omitempty"`
	ReplID string `json:"repl_id,omitempty"`
	Offset int64  `json:"offset,omitempty"`
}

// NodeView is what one look at a node saw. Observe never fails: a node it
// cannot reach is a view with Reachable false and Err set.
type NodeView struct {
	NodeID    string
	Reachable bool
	// Err says why the node could not be reached or read.
	Err string
	// Writable: the node takes writes from clients (MySQL read_only=OFF;
	// Redis role master).
	Writable bool
	// Replicating: replication is configured on the node (MySQL a slave
	// status row; Redis role slave).
	Replicating bool
	// Source is the host:port it replicates from.
	Source string
	// LinkUp: the connection to Source is up (MySQL Slave_IO_Running=Yes;
	// Redis master_link_status:up).
	LinkUp bool
	// SQLRunning: MySQL's applier thread runs (true for Redis replicas).
	SQLRunning bool
	// Position is how far the node's data goes (MySQL gtid_current_pos;
	// Redis master_repl_offset / slave_repl_offset).
	Position Position
	// LagSeconds is the replica's lag as the engine reports it.
	LagSeconds int64
	// Replicas is what a primary reports of its connected replicas
	// (addresses), when it is reachable.
	Replicas   []string
	ObservedAt time.Time
}

// Nodes acts on an instance's nodes for one engine. Every call takes the
// instance (for its credentials) and is bounded by ctx. Implementations:
// mysqlnode (MariaDB), redisnode (Redis).
type Nodes interface {
	// Observe looks at one node; never fails (see NodeView).
	Observe(ctx context.Context, in Instance, n Node) NodeView
	// Fence makes a reachable node refuse client writes at once (MySQL
	// read_only=ON and kills client connections' open transactions; Redis
	// becomes a replica of nothing reachable or pauses writes) so that it can
	// never be a second writable primary. Idempotent.
	Fence(ctx context.Context, in Instance, n Node) error
	// Promote makes a replica the writable primary: stop replication once
	// everything received is applied, writes on, semi-sync master side on
	// when in.SemiSync. Idempotent.
	Promote(ctx context.Context, in Instance, n Node) error
	// Repoint makes n a read-only replica of primary (MySQL CHANGE MASTER
	// ... MASTER_USE_GTID=slave_pos; Redis REPLICAOF) and returns once
	// replication is configured (not necessarily caught up). Idempotent.
	Repoint(ctx context.Context, in Instance, n, primary Node) error
	// WaitCaughtUp returns once n's data reaches pos, or ctx ends.
	WaitCaughtUp(ctx context.Context, in Instance, n Node, pos Position) error
	// Errant lists the transactions node old has that primary lacks (MySQL
	// GTIDs beyond the primary's; empty when old's data is a prefix of the
	// primary's). Redis returns nil: a Redis replica always resynchronises.
	Errant(ctx context.Context, in Instance, old, primary Node) ([]string, error)
}

// Faults injects drills' faults on a node's process (through provisioning's
// driver): kill -9 or a graceful stop.
type Faults interface {
	Inject(ctx context.Context, instanceID, nodeID string, kind Fault) error
}

// Rebuilder replaces a node's data with a consistent copy of the data of
// the node at source (the current primary's host:port), through
// provisioning's driver, and starts it again read-only and not
// replicating, at the copy's position: what an old primary with errant
// transactions needs before it can follow the primary (its errant
// transactions are gone afterwards). MySQL nodes only: a Redis replica
// always resynchronises by itself. Implementation: provclient.
type Rebuilder interface {
	Rebuild(ctx context.Context, instanceID, nodeID, source string) error
}

// Fault is a drill's fault.
type Fault string

// Faults a drill can inject.
const (
	FaultKill Fault = "kill"
	FaultStop Fault = "stop"
)

// Errors callers branch on.
var (
	// ErrLeaseHeld: another actor holds the instance's recovery lease.
	ErrLeaseHeld = errors.New("recovery lease held by another actor")
	// ErrFenced: the caller's fencing token is no longer the current one; it
	// must stop acting on the instance.
	ErrFenced = errors.New("fencing token superseded")
	// ErrNoCandidate: no replica is safe to promote.
	ErrNoCandidate = errors.New("no safe candidate")
	// ErrHoldOff: an automatic failover happened within the hold-off and was
	// not acknowledged.
	ErrHoldOff = errors.New("within failover hold-off")
	// ErrNotFound: no such instance or recovery.
	ErrNotFound = errors.New("not found")
)
