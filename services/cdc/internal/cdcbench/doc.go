// Package cdcbench holds the CDC benchmarks of issue 13 (run by `make bench`,
// alone with BENCH=BenchmarkCDC make bench): binlog-to-Kafka throughput next
// to a raw go-mysql parse of the same binlog, and commit-to-Kafka lag under a
// sustained write load. Everything is in _test files; this file only names
// the package.
package cdcbench
