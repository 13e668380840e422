// Package realtest holds the failover service's end-to-end recovery tests on
// real processes: three-node MariaDB (semi-sync) and Redis topologies from
// nodetest, the real mysqlnode/redisnode adapters, recovery.Recoverer,
// watch.Watcher and mysqlstore, under a writer that records every
// acknowledged write and a checker that counts moments with two writable
// nodes. It has no non-test code; the unit tests with fake nodes live next
// to the packages they test.
package realtest
