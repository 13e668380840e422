// Package checker speaks just enough of each engine's protocol to tell whether
// a node is alive and what it says about itself: Redis (PING, INFO
// replication and the basic INFO sections over a hand-rolled RESP client),
// MySQL/MariaDB (ping, SHOW SLAVE STATUS, read_only, semi-sync and status
// counters through go-sql-driver/mysql) and a plain TCP connect for engines
// without a protocol probe. Its checkers fill the probe package's types.
//
// A Checker belongs to one target and keeps its monitor connection open
// between probes (re-dialling after a failure), so a probe on a healthy node
// is one round trip. Every probe is bounded by the caller's context deadline;
// a Checker never starts goroutines of its own that outlive a call, and Close
// releases its connection.
package checker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/canopy-platform/canopy/services/healthcheck/internal/probe"
)

// New returns the Checker for spec.
func New(spec probe.Spec, dial probe.Dialer) (probe.Checker, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if dial == nil {
		return nil, errors.New("probe: nil dialer")
	}
	switch spec.Engine {
	case probe.EngineRedis:
		return newRedis(spec, dial), nil
	case probe.EngineMySQL:
		return newMySQL(spec, dial)
	default:
		return &tcpChecker{spec: spec, dial: dial}, nil
	}
}

// fail builds a failed result from err.
func fail(started time.Time, err error) probe.Result {
	reason, detail := Classify(err)
	return probe.Result{Reason: reason, Detail: detail, Started: started, Duration: time.Since(started)}
}

// tcpChecker only connects: a connect check cannot keep its connection.
type tcpChecker struct {
	spec probe.Spec
	dial probe.Dialer
}

func (c *tcpChecker) Check(ctx context.Context, _ bool) probe.Result {
	started := time.Now()
	conn, err := c.dial(ctx, "tcp", c.spec.Address)
	if err != nil {
		return fail(started, fmt.Errorf("connect %s: %w", c.spec.Address, err))
	}
	_ = conn.Close()
	return probe.Result{OK: true, Started: started, Duration: time.Since(started),
		Observation: probe.Observation{ConnectedReplicas: -1}}
}

func (c *tcpChecker) Close() error { return nil }
