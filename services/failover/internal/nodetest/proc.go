// Package nodetest starts real replicated topologies (three mariadbd or three
// redis-server processes on free loopback ports) for the failover service's
// integration tests, and hands them back as a topology.Instance plus one
// killable, restartable process per node. It is test support: import it only
// from _test files. The processes themselves are libs/enginetest's: killed
// by pid when the test ends, also on failure.
package nodetest

import "github.com/canopy-platform/canopy/libs/enginetest"

// Proc is one node's process. Start after Kill brings it back on the same
// port and data, the way a supervisor would: a MariaDB node read-only, as a
// semi-sync replica-to-be (init_rpl_role=SLAVE), never as a writable
// primary; a Redis node as a replica of nothing (FencePlaceholder).
type Proc = enginetest.Proc

// CleanupTemplate removes the MariaDB template; call it from TestMain after
// m.Run.
func CleanupTemplate() { enginetest.CleanupTemplate() }
