// Package target is what the health checker watches: one node of one
// instance, with where to reach it, the monitor credentials, the role Canopy
// believes it has, the kafka partition its instance lives on and the probe
// policy (interval, timeout, fall, rise). It is plain data with validation
// and the deterministic phase that spreads probes evenly; it knows nothing of
// sockets, Kafka or HTTP.
package target

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"time"
)

// Engine is what the node runs.
type Engine string

// Engines.
const (
	EngineRedis Engine = "redis"
	EngineMySQL Engine = "mysql"
	EngineTCP   Engine = "tcp"
)

// Role is the role Canopy believes a node has.
type Role string

// Roles.
const (
	RolePrimary Role = "primary"
	RoleReplica Role = "replica"
)

// Credentials is the monitor account (never a tenant's).
type Credentials struct {
	Username string
	Password string
}

// Policy is how a target is probed and judged.
type Policy struct {
	// Interval between the starts of two probes.
	Interval time.Duration
	// Timeout bounds one probe; at most Interval.
	Timeout time.Duration
	// Fall consecutive failures turn the node down.
	Fall int
	// Rise consecutive successes turn it up (or degraded).
	Rise int
	// MaxLag is the replica lag above which a replica is degraded.
	MaxLag time.Duration
	// SampleEvery takes a metric sample every n-th probe (1 = every probe).
	SampleEvery int
}

// Defaults of Policy.
const (
	DefaultInterval    = time.Second
	DefaultTimeout     = 500 * time.Millisecond
	DefaultFall        = 3
	DefaultRise        = 2
	DefaultMaxLag      = 30 * time.Second
	DefaultSampleEvery = 10
)

// DefaultPolicy returns the defaults: a probe every second with a 500 ms
// timeout, down after 3 failures, up after 2 successes; a node that died is
// reported within interval × fall + timeout = 3.5 s.
func DefaultPolicy() Policy {
	return Policy{Interval: DefaultInterval, Timeout: DefaultTimeout, Fall: DefaultFall, Rise: DefaultRise,
		MaxLag: DefaultMaxLag, SampleEvery: DefaultSampleEvery}
}

// WithDefaults fills zero fields from DefaultPolicy.
func (p Policy) WithDefaults() Policy {
	d := DefaultPolicy()
	if p.Interval == 0 {
		p.Interval = d.Interval
	}
	if p.Timeout == 0 {
		p.Timeout = min(d.Timeout, p.Interval)
	}
	if p.Fall == 0 {
		p.Fall = d.Fall
	}
	if p.Rise == 0 {
		p.Rise = d.Rise
	}
	if p.MaxLag == 0 {
		p.MaxLag = d.MaxLag
	}
	if p.SampleEvery == 0 {
		p.SampleEvery = d.SampleEvery
	}
	return p
}

// Validate reports a policy that cannot work.
func (p Policy) Validate() error {
	var errs []error
	if p.Interval < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("interval %s: must be at least 10ms", p.Interval))
	}
	if p.Timeout <= 0 || p.Timeout > p.Interval {
		errs = append(errs, fmt.Errorf("timeout %s: must be positive and at most the interval %s", p.Timeout, p.Interval))
	}
	if p.Fall < 1 || p.Rise < 1 {
		errs = append(errs, fmt.Errorf("fall %d and rise %d must be at least 1", p.Fall, p.Rise))
	}
	if p.MaxLag < 0 {
		errs = append(errs, errors.New("max lag must not be negative"))
	}
	if p.SampleEvery < 1 {
		errs = append(errs, fmt.Errorf("sample every %d: must be at least 1", p.SampleEvery))
	}
	return errors.Join(errs...)
}

// DetectionTime is the longest a dead node stays reported up: fall
// intervals plus the last probe's timeout.
func (p Policy) DetectionTime() time.Duration {
	return time.Duration(p.Fall)*p.Interval + p.Timeout
}

// Target is one node to probe.
type Target struct {
	// NodeID identifies the node (unique across instances).
	NodeID string
	// InstanceID is the instance the node belongs to (the Kafka key).
	InstanceID string
	// Tenant owns the instance.
	Tenant string
	// Engine selects the probe.
	Engine Engine
	// Role is what Canopy believes the node is; empty means no expectation.
	Role Role
	// Address is host:port.
	Address string
	// Monitor is the account the probe authenticates with.
	Monitor Credentials
	// SemiSync: a primary is expected to run semi-synchronous replication.
	SemiSync bool
	// Partition is the partition of the instance topic the instance's
	// events land on; it decides which replica probes the node.
	Partition int
	// Policy is how to probe it.
	Policy Policy
}

// Validate reports an unusable target.
func (t Target) Validate() error {
	var errs []error
	if t.NodeID == "" {
		errs = append(errs, errors.New("node id is required"))
	}
	if t.InstanceID == "" {
		errs = append(errs, errors.New("instance id is required"))
	}
	switch t.Engine {
	case EngineRedis, EngineMySQL, EngineTCP:
	default:
		errs = append(errs, fmt.Errorf("engine %q: unknown", t.Engine))
	}
	switch t.Role {
	case "", RolePrimary, RoleReplica:
	default:
		errs = append(errs, fmt.Errorf("role %q: unknown", t.Role))
	}
	if _, _, err := net.SplitHostPort(t.Address); err != nil {
		errs = append(errs, fmt.Errorf("address %q: %w", t.Address, err))
	}
	if t.Partition < 0 {
		errs = append(errs, fmt.Errorf("partition %d: must not be negative", t.Partition))
	}
	if err := t.Policy.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("target %s: %w", t.NodeID, err)
	}
	return nil
}

// SameProbe reports whether u probes exactly like t (a changed address,
// engine, credentials or policy needs a new connection and schedule).
func (t Target) SameProbe(u Target) bool {
	return t.Engine == u.Engine && t.Address == u.Address && t.Monitor == u.Monitor && t.Policy == u.Policy
}

// Phase returns the target's offset within its interval: a hash of the node
// id, so probes of many targets spread evenly over the interval and a target
// keeps its phase when it moves to another replica.
func (t Target) Phase() time.Duration {
	h := fnv.New64a()
	h.Write([]byte(t.NodeID))
	iv := t.Policy.Interval
	if iv <= 0 {
		return 0
	}
	return time.Duration(h.Sum64() % uint64(iv))
}
