// Package loadpeer measures a TCP data path against its peers in one run:
// the same load (redis-benchmark for Redis, a Go point-select/insert
// generator for MySQL) through several legs that end at the same backend —
// straight to it, through HAProxy in mode tcp, through Canopy's router —
// and a table of ops/s, p99, the p99 each leg adds over the direct one and
// the throughput ratios between legs.
//
// It is benchmark support for the e2e module: it starts and stops only the
// HAProxy processes it started (by pid), installs Debian's haproxy when it
// is missing, and creates and drops its own MySQL tables. It starts no
// backends and knows nothing of the router.
package loadpeer
