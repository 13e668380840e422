// Package probe speaks just enough of each engine's protocol to tell whether
// a node is alive and what it says about itself: Redis (PING, INFO
// replication and the basic INFO sections over a hand-rolled RESP client),
// MySQL/MariaDB (ping, SHOW SLAVE STATUS, read_only, semi-sync and status
// counters through go-sql-driver/mysql) and a plain TCP connect for engines
// without a protocol probe.
//
// A Checker belongs to one target and keeps its monitor connection open
// between probes (re-dialling after a failure), so a probe on a healthy node
// is one round trip. Every probe is bounded by the caller's context deadline;
// a Checker never starts goroutines of its own that outlive a call, and Close
// releases its connection.
//
// The package only observes. Whether an observation means up, down or
// degraded is decided by the detector package.
package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// Engine names what a target speaks.
type Engine string

// Engines with a probe.
const (
	EngineRedis Engine = "redis"
	EngineMySQL Engine = "mysql"
	EngineTCP   Engine = "tcp"
)

// Valid reports whether e is a known engine.
func (e Engine) Valid() bool {
	switch e {
	case EngineRedis, EngineMySQL, EngineTCP:
		return true
	}
	return false
}

// Reason is the precise cause of a failed probe.
type Reason string

// Failure reasons.
const (
	// ReasonRefused: the connection was refused (nothing listens).
	ReasonRefused Reason = "refused"
	// ReasonTimeout: connect or reply did not complete within the timeout
	// (a hung node, a blackhole, a lost network).
	ReasonTimeout Reason = "timeout"
	// ReasonReset: the peer reset the connection.
	ReasonReset Reason = "reset"
	// ReasonClosed: the peer closed the connection before answering.
	ReasonClosed Reason = "closed"
	// ReasonUnreachable: no route to the host or network.
	ReasonUnreachable Reason = "unreachable"
	// ReasonProtocol: the peer answered something that is not the protocol.
	ReasonProtocol Reason = "protocol_error"
	// ReasonAuthFailed: the monitor credentials were rejected (or lack a
	// needed privilege).
	ReasonAuthFailed Reason = "auth_failed"
	// ReasonLoading: the server answers but is not ready (Redis LOADING,
	// MySQL shutting down or starting).
	ReasonLoading Reason = "loading"
	// ReasonServerError: the server answered a probe command with an error.
	ReasonServerError Reason = "server_error"
	// ReasonError: anything else (see the detail).
	ReasonError Reason = "error"
)

// Role is what a node says it is.
type Role string

// Observed roles.
const (
	RolePrimary Role = "primary"
	RoleReplica Role = "replica"
)

// Spec is what a Checker needs to reach one target.
type Spec struct {
	// Engine selects the protocol.
	Engine Engine
	// Address is host:port.
	Address string
	// Username and Password are the monitor account; empty Username means
	// no authentication (Redis default user without password).
	Username string
	Password string
}

// Validate reports an unusable spec.
func (s Spec) Validate() error {
	if !s.Engine.Valid() {
		return fmt.Errorf("probe spec: unknown engine %q", s.Engine)
	}
	if _, _, err := net.SplitHostPort(s.Address); err != nil {
		return fmt.Errorf("probe spec: address %q: %w", s.Address, err)
	}
	return nil
}

// Replication is what a node says about its replication.
type Replication struct {
	// Configured: the node has a replication source (SHOW SLAVE STATUS has
	// a row; Redis role:slave).
	Configured bool `json:"configured"`
	// IORunning and SQLRunning are MySQL's replica threads; for Redis both
	// mirror master_link_status:up.
	IORunning  bool `json:"io_running"`
	SQLRunning bool `json:"sql_running"`
	// LagSeconds is Seconds_Behind_Master (MySQL) or master_last_io_seconds_ago
	// (Redis); -1 when unknown (NULL, link down).
	LagSeconds int64 `json:"lag_seconds"`
	// Position is the GTID position (Gtid_IO_Pos) or the replication offset.
	Position string `json:"position,omitempty"`
	// Source is the primary the replica follows (host:port), when known.
	Source string `json:"source,omitempty"`
	// LastError is the replica's last IO/SQL error, when any.
	LastError string `json:"last_error,omitempty"`
}

// Observation is what a successful probe learned.
type Observation struct {
	// Role the node reports.
	Role Role `json:"role,omitempty"`
	// ReadOnly is MySQL's @@read_only (nil for Redis and TCP).
	ReadOnly *bool `json:"read_only,omitempty"`
	// SemiSync is Rpl_semi_sync_master_status on a MySQL primary (nil when
	// not reported).
	SemiSync *bool `json:"semi_sync,omitempty"`
	// Replication is set when the node is (or should be) a replica.
	Replication *Replication `json:"replication,omitempty"`
	// ConnectedReplicas is Redis connected_slaves (-1 for other engines).
	ConnectedReplicas int `json:"connected_replicas"`
}

// Result is the outcome of one probe.
type Result struct {
	// OK is true when the node answered the protocol correctly.
	OK bool
	// Reason says why the probe failed (empty when OK).
	Reason Reason
	// Detail is the evidence: the error text, the server's error reply or
	// the unexpected bytes.
	Detail string
	// Started is when the probe began; Duration how long it took.
	Started  time.Time
	Duration time.Duration
	// Reused tells whether the probe ran on a connection kept from an
	// earlier probe.
	Reused bool
	// Observation is what the node said about itself (OK results).
	Observation Observation
	// Sample are the node's metrics (OK results; may be empty when the probe
	// was asked for no sample).
	Sample Sample
}

// Sample holds a node's metric counters and gauges by name
// (used_memory, maxmemory, connected_clients, ops_per_sec, ...).
type Sample map[string]int64

// Checker probes one target.
type Checker interface {
	// Check runs one probe bounded by ctx; withSample asks for the metric
	// sample too (costlier, so done less often than liveness checks).
	Check(ctx context.Context, withSample bool) Result
	// Close releases the connection kept between probes.
	Close() error
}

// Dialer opens connections; nettune.DialerSettings.DialContext fits.
type Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

// New returns the Checker for spec.
func New(spec Spec, dial Dialer) (Checker, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if dial == nil {
		return nil, errors.New("probe: nil dialer")
	}
	switch spec.Engine {
	case EngineRedis:
		return newRedis(spec, dial), nil
	case EngineMySQL:
		return newMySQL(spec, dial)
	default:
		return &tcpChecker{spec: spec, dial: dial}, nil
	}
}

// fail builds a failed result from err.
func fail(started time.Time, err error) Result {
	reason, detail := Classify(err)
	return Result{Reason: reason, Detail: detail, Started: started, Duration: time.Since(started)}
}

// tcpChecker only connects: a connect check cannot keep its connection.
type tcpChecker struct {
	spec Spec
	dial Dialer
}

func (c *tcpChecker) Check(ctx context.Context, _ bool) Result {
	started := time.Now()
	conn, err := c.dial(ctx, "tcp", c.spec.Address)
	if err != nil {
		return fail(started, fmt.Errorf("connect %s: %w", c.spec.Address, err))
	}
	_ = conn.Close()
	return Result{OK: true, Started: started, Duration: time.Since(started),
		Observation: Observation{ConnectedReplicas: -1}}
}

func (c *tcpChecker) Close() error { return nil }
