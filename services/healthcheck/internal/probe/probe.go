// Package probe is what a health probe observes of a node: the target's
// Spec, the Result of one probe (reason of a failure, or the Observation:
// role, read-only, replication, semi-sync, a metric Sample) and the Checker
// interface that produces them. It is plain data; the checkers that speak
// each engine's protocol (and link the MySQL driver) are in probe/checker,
// so the detector that judges results depends on no protocol code.
//
// The package only observes. Whether an observation means up, down or
// degraded is decided by the detector package.
package probe

import (
	"context"
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
