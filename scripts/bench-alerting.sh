#!/usr/bin/env bash
# The alerting peer benchmark alone (issue 16): BenchmarkAlerting in
# services/alerting/bench pushes the same alert stream (a group per alert,
# and 100 groups) to Debian's prometheus-alertmanager and to Canopy's
# alerting service, both delivering to one local webhook receiver with
# group_by [alertname, group], group_wait 1s, group_interval 1m; a rate
# ladder finds the highest rate each keeps up with (every alert delivered
# within group_wait + 2 s), and it prints CPU per alert (/proc/<pid>/stat of
# each server; Canopy also with mariadbd's), POST -> webhook p99 and
# Canopy's ratios to Alertmanager.
#
# Installs prometheus-alertmanager from Debian when missing (root,
# CANOPY_BENCH_INSTALL unset or 1); Debian's package also enables a system
# Alertmanager on :9093 — the benchmark starts its own on free ports.
# Canopy's side builds services/alerting/cmd/alerting and uses the
# machine's MariaDB (a database canopy_alertbench_<rand> per step, dropped
# after) and the embedded Kafka broker.
# Knobs: CANOPY_BENCH_ALERTING_SECONDS (per step, default 10),
# CANOPY_BENCH_ALERTING_RATES (ladder, default 250,500,1000,1500,2000,3000,
# 4000,6000,8000,12000,16000), CANOPY_BENCH_ALERTING_CANOPY (0: peer only,
# 1: Canopy required, unset: Canopy when it builds), CANOPY_BENCH_ALERTING_LOG=1
# (each step as it ends, failed servers' log tails), CANOPY_BENCH_ALERTMANAGER
# (another Alertmanager binary).
set -euo pipefail
cd "$(dirname "$0")/.."

install_alertmanager() {
  [[ ${CANOPY_BENCH_INSTALL:-1} != 0 ]] || return 0
  command -v prometheus-alertmanager >/dev/null && return 0
  local sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "bench-alerting: prometheus-alertmanager missing and not root"; return 0; }
    sudo="sudo"
  fi
  echo "bench-alerting: installing prometheus-alertmanager from Debian for the alerting benchmark's peer"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus-alertmanager >/dev/null \
    || { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus-alertmanager >/dev/null; } \
    || echo "bench-alerting: apt-get install prometheus-alertmanager failed; BenchmarkAlerting will skip"
}

install_alertmanager
# scripts/bench.sh runs this with CANOPY_BENCH_ALERTING_INSTALL_ONLY=1 before
# every benchmark: install only.
[[ ${CANOPY_BENCH_ALERTING_INSTALL_ONLY:-} == 1 ]] && exit 0

BENCH='^BenchmarkAlerting$' exec bash scripts/bench.sh
