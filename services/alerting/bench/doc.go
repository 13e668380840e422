// Package alertbench is the peer benchmark of the alerting service (issue
// 16, `make bench`): the same alert stream is pushed to Debian's
// prometheus-alertmanager and to Canopy's alerting service, both grouping
// with the same route and delivering to one local webhook receiver, and a
// rate ladder finds the highest rate each keeps up with, its CPU per alert
// and its POST → webhook latency. It is benchmark support, not production
// code: import it only from the benchmark.
package alertbench
