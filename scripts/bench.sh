#!/usr/bin/env bash
# Runs every Go benchmark of the workspace; each prints its own figures and,
# where an issue names a peer, the ratio measured in the same run.
# Results are kept under bench-results/ with a timestamp.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench-results
out="bench-results/bench-$(date -u +%Y%m%dT%H%M%SZ).txt"
pattern=${BENCH:-.}
args=()
[[ -n ${BENCHTIME:-} ]] && args+=(-benchtime "$BENCHTIME")
echo "writing $out"

# The failover benchmark (e2e BenchmarkFailover, issue 11) measures Redis
# Sentinel in the same run. Debian's redis-sentinel is installed when
# missing (root, CANOPY_BENCH_INSTALL unset or 1); without it the benchmark
# runs redis-server --sentinel, the same program. Debian's package also
# enables a system sentinel on 26379 (it watches 127.0.0.1:6379 alone, quorum
# 2, so it never fails anything over); the benchmark starts its own.
# Knobs: CANOPY_BENCH_FAILOVER_DETECT_MS (Sentinel's down-after-milliseconds,
# = Canopy's detection budget, default 250), CANOPY_BENCH_FAILOVER_DRILLS
# (default 5), CANOPY_BENCH_FAILOVER_SENTINEL_REF_MS (a second Sentinel
# series, default 1000, 0 skips), CANOPY_BENCH_FAILOVER_CANOPY=0 (peer only).
if [[ ${CANOPY_BENCH_INSTALL:-1} != 0 && $(id -u) -eq 0 ]] && ! command -v redis-sentinel >/dev/null; then
  echo "installing redis-sentinel from Debian for the failover benchmark's peer"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-sentinel >/dev/null \
    || echo "apt-get install redis-sentinel failed; the failover benchmark uses redis-server --sentinel"
fi
# The alerting benchmark (services/alerting/bench BenchmarkAlerting, issue 16;
# alone with make bench-alerting) measures Debian's prometheus-alertmanager
# in the same run; scripts/bench-alerting.sh installs it when missing and
# documents the knobs (CANOPY_BENCH_ALERTING_*).
if [[ $pattern == . || $pattern == *Alerting* ]]; then
  CANOPY_BENCH_ALERTING_INSTALL_ONLY=1 bash scripts/bench-alerting.sh
fi
# The CDC benchmarks (services/cdc/internal/cdcbench, issue 13; alone with
# BENCH=BenchmarkCDC) start their own mariadbd (ROW binlog, FULL row
# metadata, GTID strict mode) and the embedded Kafka broker.
# BenchmarkCDCThroughput loads CANOPY_BENCH_CDC_ROWS orders (default 200000,
# transactions of 1000 rows), then reads that binlog range with a bare
# go-mysql BinlogSyncer (the peer) and with capture+sink up to acknowledged
# Kafka events, and prints both rows/s and the ratio (goal >= 0.3).
# BenchmarkCDCLag writes CANOPY_BENCH_CDC_RATE rows/s (default 2000, ~100
# small commits a second) for CANOPY_BENCH_CDC_SECONDS (default 20) and
# prints p50/p99/max of commit-acknowledged -> read from Kafka (goal p99 <
# 1s). BENCHTIME=Nx repeats either N times on the same server.
# BenchmarkSyncApply (same package, issue 14; alone with
# BENCH=BenchmarkSyncApply) starts a source and a target mariadbd (durable
# commits) and loads CANOPY_BENCH_SYNC_ROWS orders (default 200000) into the
# source as multi-row INSERTs of CANOPY_BENCH_SYNC_STMT_ROWS rows (default
# 1000, one transaction each). The peer sends the same statements into an
# identical table on the target; a one-way sync job (syncrun.Manager with
# real capture and apply, initial_load false, watermark set before the load)
# then drains that backlog into the target, timed from the job's start until
# the target's watermark covers the source's end. Both tables are compared
# with the source (count + checksum); it prints both rows/s and the ratio
# (goal >= 0.5). CANOPY_BENCH_SYNC_LOG=1 shows the job's logs.
# The backup benchmarks (services/backup/bench, issue 17; alone with make
# bench-backup) start their own mariadbd (durable commits) and need Debian's
# mariadb-backup (scripts/ensure-deps.sh installs it). BenchmarkBackupThroughput
# loads CANOPY_BENCH_BACKUP_MB of rows (default 512), then in the same run times a
# bare `mariadb-backup --backup` of that node into a directory (the peer) and
# Canopy's backup (mariadb-backup --stream=xbstream, zstd, AES-256-GCM, SHA-256,
# written to a file repository), printing MB/s of the data directory each and the
# ratio (goal >= 0.7). BenchmarkRestore times a bare --prepare + --copy-back
# against Canopy's restore (repository object opened and checked, unpacked,
# prepared, copied into a node directory) and prints the ratio (goal <= 1.3).
# BenchmarkArchiveLag writes CANOPY_BENCH_ARCHIVE_RATE rows/s (default 1000) for
# CANOPY_BENCH_ARCHIVE_SECONDS (default 20) while the archiver cuts segments every
# second into the repository, and prints p50/p99/max of commit -> segment stored
# (goal p99 < 5 s).
# The metering benchmarks (issue 15; all three with make bench-metering, or
# BENCH='^(BenchmarkLedgerIngest|BenchmarkIngestAPI|BenchmarkUsageQuery)$') use the
# machine's MariaDB (a database per run, dropped after) and the embedded Kafka broker.
# BenchmarkLedgerIngest (services/metering/internal/ledger) puts at least 200k usage
# CloudEvents on canopy.usage.ingest.v1, then in the same run reads them with a bare
# kafka-go Reader that does nothing (the peer) and folds them with the ledger into
# hourly aggregates, checking the totals exactly; it prints both events/s and the
# ratio x_raw (goal >= 0.5, >= 150k events/s). BenchmarkIngestAPI
# (services/metering/internal/httpapi) posts batches of 100 events through the HTTP
# API into Kafka and reports events/s. BenchmarkUsageQuery (same package) loads 30
# days of hourly node_hours for 1,000 instances and reports the p99 of
# GET /api/v1/usage (a tenant's month by day, one instance's month by hour) as p99_ms
# (goal < 50 ms).
go test -run '^$' -bench "$pattern" "${args[@]}" -timeout 30m -p 1 \
  github.com/canopy-platform/canopy/... 2>&1 | tee "$out"
