#!/usr/bin/env bash
# Split mode on one machine, no Docker (`make split`, docs/operations.md):
# the embedded Kafka-protocol broker as its own process (`canopy broker`),
# then every service from its own binary in bin/, two replicas each on their
# own ports, and two gateway replicas balancing over them. Same state
# directory, databases and defaults as `make dev`. Ctrl-C or SIGTERM stops
# every process this script started, by PID (gateways first, the broker
# last). Logs: <state dir>/split/logs/<service>-<replica>.log.
#
# Knobs (environment): CANOPY_STATE_DIR (.canopy), CANOPY_DATABASE_PREFIX
# (canopy_: each service's database is prefix + service name), REPLICAS (2),
# SPLIT_PORT_OFFSET (0: added to every port, so a second split can run beside
# the first), SPLIT_READY_TIMEOUT (90 seconds), SPLIT_STOP_TIMEOUT (25 seconds
# per process before SIGQUIT, which dumps its goroutines' stacks to its log,
# then SIGKILL 5 s later), BIN (bin). Every other CANOPY_* variable
# reaches each binary as its own documentation says (docs/configuration.md);
# the script sets only listen addresses, peer URLs, replica names and the
# shared internal secret.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin}
REPLICAS=${REPLICAS:-2}
OFF=${SPLIT_PORT_OFFSET:-0}
READY_TIMEOUT=${SPLIT_READY_TIMEOUT:-90}
STOP_TIMEOUT=${SPLIT_STOP_TIMEOUT:-25}
STATE_DIR=${CANOPY_STATE_DIR:-.canopy}
mkdir -p "$STATE_DIR" && chmod 700 "$STATE_DIR"
STATE_DIR=$(cd "$STATE_DIR" && pwd)
LOGS="$STATE_DIR/split/logs"
mkdir -p "$LOGS"
export CANOPY_STATE_DIR="$STATE_DIR"
DB_PREFIX=${CANOPY_DATABASE_PREFIX:-canopy_}
for svc in catalog scheduling provisioning failover cdc metering alerting backup; do
  export "CANOPY_${svc^^}_DATABASE=${DB_PREFIX}${svc}"
done

# Ports: replica 1 on the services' own ports (docs/operations.md), replica r
# on the same port + 100*(r-1); the gateways on 8080, 8081, ... (internal
# listeners 8092, 8093, ...). SPLIT_PORT_OFFSET shifts all of them.
declare -A BASE=([catalog]=8082 [scheduling]=8083 [provisioning]=8084 [healthcheck]=8085 [failover]=8086
  [cdc]=8087 [metering]=8088 [alerting]=8089 [router]=8090 [backup]=8091)
BACKENDS=(catalog scheduling provisioning healthcheck failover router cdc metering alerting backup)
port() { echo $(( BASE[$1] + 100 * ($2 - 1) + OFF )); }
url() { echo "http://127.0.0.1:$(port "$1" "$2")"; }
gw_port() { echo $(( 8080 + ($1 - 1) + OFF )); }
gw_internal_port() { echo $(( 8092 + ($1 - 1) + OFF )); }
sentinel_port() { echo $(( 26380 + ($1 - 1) + OFF )); }
BROKER_ADDR=${CANOPY_EMBEDDED_KAFKA_ADDR:-127.0.0.1:$(( 9092 + OFF ))}

for b in canopy gateway "${BACKENDS[@]}"; do
  [[ -x $BIN/$b ]] || { echo "split: $BIN/$b missing; run make build" >&2; exit 1; }
done

# One internal secret for every process: the gateway's own file in the state
# directory (the one `make dev` uses), generated here if it does not exist yet.
if [[ -z ${CANOPY_INTERNAL_SECRET:-} ]]; then
  if [[ ! -s $STATE_DIR/internal-secret ]]; then
    (umask 077; od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$STATE_DIR/internal-secret.tmp")
    mv -n "$STATE_DIR/internal-secret.tmp" "$STATE_DIR/internal-secret"
    rm -f "$STATE_DIR/internal-secret.tmp"
  fi
  CANOPY_INTERNAL_SECRET=$(tr -d ' \n' < "$STATE_DIR/internal-secret")
fi
export CANOPY_INTERNAL_SECRET
export CANOPY_KAFKA_BROKERS="$BROKER_ADDR"
# `make dev` is one machine: a webhook receiver on localhost is allowed.
export CANOPY_ALERTING_ALLOW_PRIVATE_WEBHOOKS=${CANOPY_ALERTING_ALLOW_PRIVATE_WEBHOOKS:-true}

# proc_start PID: the process's start time (clock ticks since boot, field 22
# of /proc/PID/stat, counted after the parenthesised command name).
proc_start() {
  local stat f
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  stat=${stat##*) }
  read -r -a f <<<"$stat"
  echo "${f[19]}"
}
# alive PID: the process this script started as PID runs (a zombie, dead but
# not yet reaped, does not). The start time recorded by start must match: on a
# busy machine a PID is reused within seconds, and a stranger holding it must
# neither read as a replica that will not stop nor receive its signals.
declare -A STARTED=()
alive() {
  local stat f
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  read -r -a f <<<"$stat"
  [[ ${f[0]} != Z && ${f[19]} == "${STARTED[$1]:-none}" ]]
}

# The platform's pid file, the one `make dev` writes too: `make reset` stops
# what it names (this script, which stops every process it started) before
# it drops the databases and removes the state directory. One platform per
# state directory: an all-in-one or another split on it is refused.
PID_FILE="$STATE_DIR/canopy.pid"
if [[ -f $PID_FILE ]]; then
  read -r other_pid other_start <"$PID_FILE" || true
  if [[ -n ${other_pid:-} && $(proc_start "$other_pid") == "${other_start:-x}" ]]; then
    echo "split: Canopy already runs on $STATE_DIR (pid $other_pid, $PID_FILE); stop it first (Ctrl-C, or make reset)" >&2
    exit 1
  fi
fi
echo "$$ $(proc_start $$)" >"$PID_FILE.tmp" && mv "$PID_FILE.tmp" "$PID_FILE"
OWN_PID_LINE="$$ $(proc_start $$)"

NAMES=() PIDS=() PORTS=()
stopping=0
stop_all() {
  (( stopping )) && return
  stopping=1
  trap '' INT TERM
  echo "split: stopping ${#PIDS[@]} processes"
  local i pid deadline
  for (( i = ${#PIDS[@]} - 1; i >= 0; i-- )); do
    pid=${PIDS[i]}
    alive "$pid" || continue
    kill -TERM "$pid" 2>/dev/null || continue
    deadline=$(( SECONDS + STOP_TIMEOUT ))
    while alive "$pid" && (( SECONDS < deadline )); do sleep 0.1; done
    if alive "$pid"; then
      # SIGQUIT first: the Go runtime writes every goroutine's stack to
      # stderr, i.e. the replica's log, and exits; the hang leaves its cause.
      echo "split: ${NAMES[i]} (pid $pid) did not stop in ${STOP_TIMEOUT}s; SIGQUIT (stacks in $LOGS/${NAMES[i]}.log), then SIGKILL" >&2
      alive "$pid" && kill -QUIT "$pid" 2>/dev/null || true
      deadline=$(( SECONDS + 5 ))
      while alive "$pid" && (( SECONDS < deadline )); do sleep 0.1; done
      alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  if [[ -f $PID_FILE && $(cat "$PID_FILE" 2>/dev/null) == "$OWN_PID_LINE" ]]; then
    rm -f "$PID_FILE"
  fi
  echo "split: stopped"
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap 'stop_all' EXIT

# start NAME PORTS CMD... starts one process in the background, logging to
# $LOGS/NAME.log.
start() {
  local name=$1 ports=$2
  shift 2
  "$@" >>"$LOGS/$name.log" 2>&1 &
  NAMES+=("$name") PIDS+=($!) PORTS+=("$ports")
  STARTED[$!]=$(proc_start $!)
}

# wait_http NAME URL: until URL answers 200, the process dies, or the deadline.
wait_http() {
  local name=$1 u=$2 pid=$3 deadline=$(( SECONDS + READY_TIMEOUT ))
  until curl -fs -o /dev/null --max-time 2 "$u"; do
    if ! alive "$pid"; then
      echo "split: $name exited; last lines of $LOGS/$name.log:" >&2
      tail -n 20 "$LOGS/$name.log" >&2
      exit 1
    fi
    if (( SECONDS >= deadline )); then
      echo "split: $name not ready at $u within ${READY_TIMEOUT}s (log: $LOGS/$name.log)" >&2
      exit 1
    fi
    sleep 0.2
  done
}

wait_tcp() {
  local name=$1 addr=$2 pid=$3 deadline=$(( SECONDS + READY_TIMEOUT ))
  until (exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}") 2>/dev/null; do
    alive "$pid" || { echo "split: $name exited; see $LOGS/$name.log" >&2; tail -n 20 "$LOGS/$name.log" >&2; exit 1; }
    (( SECONDS < deadline )) || { echo "split: $name not listening on $addr" >&2; exit 1; }
    sleep 0.1
  done
}

start broker-1 "$BROKER_ADDR" env CANOPY_EMBEDDED_KAFKA_ADDR="$BROKER_ADDR" "$BIN/canopy" broker
wait_tcp broker-1 "$BROKER_ADDR" "${PIDS[-1]}"

# Every replica of a service calls every replica of each service it calls:
# the callee settings list them all (comma-separated), and libs/svcclient
# spreads the calls and goes round a replica that is down
# (docs/operations.md), as the gateways do. upstreams SERVICE: every
# replica's base URL.
upstreams() {
  local svc=$1 r out=()
  for (( r = 1; r <= REPLICAS; r++ )); do out+=("$(url "$svc" "$r")"); done
  local IFS=,
  echo "${out[*]}"
}
# all_gateways_internal: every gateway's internal listener.
all_gateways_internal() {
  local r out=()
  for (( r = 1; r <= REPLICAS; r++ )); do out+=("http://127.0.0.1:$(gw_internal_port "$r")"); done
  local IFS=,
  echo "${out[*]}"
}
sentinel_peers() {
  local r peers=()
  for (( r = 1; r <= REPLICAS; r++ )); do
    (( r == $1 )) || peers+=("127.0.0.1:$(sentinel_port "$r")")
  done
  local IFS=,
  echo "${peers[*]}"
}
backend_env() {
  local svc=$1 r=$2 addr="127.0.0.1:$(port "$1" "$2")"
  case $svc in
    catalog) echo CANOPY_CATALOG_ADDR="$addr" CANOPY_PROVISIONING_URL="$(upstreams provisioning)" \
      CANOPY_GATEWAY_URL="$(all_gateways_internal)" ;;
    scheduling) echo CANOPY_SCHEDULING_ADDR="$addr" CANOPY_SCHEDULING_CATALOG_URL="$(upstreams catalog)" ;;
    provisioning) echo CANOPY_PROVISIONING_ADDR="$addr" CANOPY_CATALOG_URL="$(upstreams catalog)" \
      CANOPY_GATEWAY_URL="$(all_gateways_internal)" CANOPY_BACKUP_URL="$(upstreams backup)" \
      CANOPY_PROVISIONING_ROUTER_SENTINEL_PORT="$(sentinel_port 1)" ;;
    healthcheck) echo CANOPY_HEALTHCHECK_ADDR="$addr" CANOPY_HEALTHCHECK_REPLICA="healthcheck-$r" \
      CANOPY_HEALTHCHECK_PROVISIONING_URL="$(upstreams provisioning)" ;;
    failover) echo CANOPY_FAILOVER_ADDR="$addr" CANOPY_FAILOVER_REPLICA="failover-$r" \
      CANOPY_FAILOVER_PROVISIONING_URL="$(upstreams provisioning)" ;;
    router)
      # Replica 1 serves the endpoints on 127.0.0.1, replica 2 on 127.0.0.2
      # and so on: the same ports on one machine need distinct addresses.
      echo CANOPY_ROUTER_ADDR="$addr" CANOPY_ROUTER_REPLICA="router-$r" \
        CANOPY_ROUTER_PROVISIONING_URL="$(upstreams provisioning)" CANOPY_ROUTER_PROXY_LISTEN_HOST="127.0.0.$r" \
        CANOPY_ROUTER_SENTINEL_ADDR="127.0.0.1:$(sentinel_port "$r")" CANOPY_ROUTER_SENTINEL_PEERS="$(sentinel_peers "$r")" ;;
    cdc) echo CANOPY_CDC_ADDR="$addr" CANOPY_CDC_PROVISIONING_URL="$(upstreams provisioning)" ;;
    metering) echo CANOPY_METERING_ADDR="$addr" ;;
    alerting) echo CANOPY_ALERTING_ADDR="$addr" CANOPY_ALERTING_EXTERNAL_URL="http://127.0.0.1:$(gw_port 1)" \
      CANOPY_ALERTING_FAILOVER_URL="$(upstreams failover)" CANOPY_ALERTING_PROVISIONING_URL="$(upstreams provisioning)" ;;
    backup) echo CANOPY_BACKUP_ADDR="$addr" CANOPY_BACKUP_PROVISIONING_URL="$(upstreams provisioning)" ;;
  esac
}

# Both replicas of every backend start together (migrations serialise on a
# database lock), then the gateways, once every backend is ready.
for svc in "${BACKENDS[@]}"; do
  for (( r = 1; r <= REPLICAS; r++ )); do
    ports=$(port "$svc" "$r")
    [[ $svc == router ]] && ports+=" sentinel $(sentinel_port "$r")"
    # shellcheck disable=SC2046 # the settings are word-split on purpose
    start "$svc-$r" "$ports" env $(backend_env "$svc" "$r") "$BIN/$svc"
  done
done
# Every replica must be live; per service one ready replica is enough: the
# single-active ones (alerting's engine, backup's engine, cdc's streams) keep the others
# as not-ready standbys until the active one goes.
for (( i = 1; i < ${#NAMES[@]}; i++ )); do
  svc=${NAMES[i]%-*} r=${NAMES[i]##*-}
  wait_http "${NAMES[i]}" "$(url "$svc" "$r")/livez" "${PIDS[i]}"
done
for svc in "${BACKENDS[@]}"; do
  deadline=$(( SECONDS + READY_TIMEOUT ))
  until for (( r = 1; r <= REPLICAS; r++ )); do curl -fs -o /dev/null --max-time 2 "$(url "$svc" "$r")/readyz" && break; done; (( r <= REPLICAS )); do
    (( SECONDS < deadline )) || { echo "split: no replica of $svc ready within ${READY_TIMEOUT}s (logs: $LOGS/$svc-*.log)" >&2; exit 1; }
    sleep 0.2
  done
done

# One gateway at a time: the first creates the bootstrap admin key.
for (( r = 1; r <= REPLICAS; r++ )); do
  start "gateway-$r" "$(gw_port "$r") internal $(gw_internal_port "$r")" env \
    CANOPY_GATEWAY_ADDR="127.0.0.1:$(gw_port "$r")" CANOPY_GATEWAY_INTERNAL_ADDR="127.0.0.1:$(gw_internal_port "$r")" \
    CANOPY_MYSQL_DSN="${CANOPY_MYSQL_DSN:-root@tcp(127.0.0.1:3306)/}" \
    CANOPY_MYSQL_DATABASE="${DB_PREFIX}gateway" \
    CANOPY_CATALOG_URL="$(upstreams catalog)" CANOPY_SCHEDULING_URL="$(upstreams scheduling)" \
    CANOPY_PROVISIONING_URL="$(upstreams provisioning)" CANOPY_HEALTHCHECK_URL="$(upstreams healthcheck)" \
    CANOPY_FAILOVER_URL="$(upstreams failover)" CANOPY_ROUTER_URL="$(upstreams router)" \
    CANOPY_CDC_URL="$(upstreams cdc)" CANOPY_METERING_URL="$(upstreams metering)" \
    CANOPY_ALERTING_URL="$(upstreams alerting)" CANOPY_BACKUP_URL="$(upstreams backup)" \
    "$BIN/gateway"
  wait_http "gateway-$r" "http://127.0.0.1:$(gw_port "$r")/readyz" "${PIDS[-1]}"
done

# state NAME: ready, or standby for a live replica that is not ready.
state() {
  local svc=${1%-*} r=${1##*-} u
  case $svc in
    broker) echo ready; return ;;
    gateway) u="http://127.0.0.1:$(gw_port "$r")" ;;
    *) u=$(url "$svc" "$r") ;;
  esac
  if curl -fs -o /dev/null --max-time 2 "$u/readyz"; then echo ready; else echo standby; fi
}
printf '\n%-14s %-8s %-8s %-8s %s\n' SERVICE REPLICA PID STATE PORTS
for i in "${!NAMES[@]}"; do
  printf '%-14s %-8s %-8s %-8s %s\n' "${NAMES[i]%-*}" "${NAMES[i]##*-}" "${PIDS[i]}" "$(state "${NAMES[i]}")" "${PORTS[i]}"
done
echo
echo "split: Canopy is up: http://127.0.0.1:$(gw_port 1) (and $(( REPLICAS - 1 )) more gateway(s) on the next ports); logs in $LOGS"
[[ -s $STATE_DIR/admin-key ]] && echo "split: the admin key is in $STATE_DIR/admin-key"
echo "split: Ctrl-C stops everything"

# Until a signal: a process that dies is reported, the rest keep running (the
# other replica carries on; that is the point of two).
declare -A reported=()
while :; do
  for i in "${!PIDS[@]}"; do
    if [[ -z ${reported[$i]:-} ]] && ! alive "${PIDS[i]}"; then
      reported[$i]=1
      echo "split: ${NAMES[i]} (pid ${PIDS[i]}) exited; see $LOGS/${NAMES[i]}.log" >&2
    fi
  done
  sleep 1 &
  wait $! || true
done
