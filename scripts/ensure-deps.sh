#!/usr/bin/env bash
# Makes sure what Canopy needs on this machine is installed and running:
# MariaDB (127.0.0.1:3306, root without password) and Redis (127.0.0.1:6379),
# the mariadbd/redis-server binaries the local driver starts, the backup
# service's tools (mariadb-backup, mbstream, mariadb-binlog), headless
# Chromium for the portal's browser tests (docs/portal.md), and the Go
# modules of the workspace. It installs through apt-get only what is missing
# and starts only what is not running; it never stops anything.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'ensure-deps: %s\n' "$*"; }

SUDO=""
if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null; then SUDO="sudo"; fi

apt_updated=""
apt_install() {
  if [[ -z $apt_updated ]]; then
    log "apt-get update"
    $SUDO apt-get update -qq
    apt_updated=1
  fi
  log "installing $*"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

# wait_for CMD... : retries a check for up to 30 s.
wait_for() {
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  return 1
}

mysql_ok() { mariadb-admin --protocol=tcp -h127.0.0.1 -P3306 -uroot ping >/dev/null 2>&1; }
redis_ok() { [[ $(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null) == PONG ]]; }

if ! command -v mariadbd >/dev/null && [[ ! -x /usr/sbin/mariadbd ]]; then
  apt_install mariadb-server mariadb-client
fi
if ! command -v mariadb-admin >/dev/null; then apt_install mariadb-client; fi
# The backup service's physical backups and restores (docs/backups.md).
if ! command -v mariadb-backup >/dev/null || ! command -v mbstream >/dev/null; then apt_install mariadb-backup; fi
if ! command -v mariadb-binlog >/dev/null; then apt_install mariadb-client; fi
if ! mysql_ok; then
  if [[ -n ${CANOPY_MYSQL_DSN:-} ]]; then
    log "CANOPY_MYSQL_DSN is set; not starting a local MariaDB"
  else
    log "starting MariaDB"
    $SUDO mkdir -p /run/mysqld && $SUDO chown mysql:mysql /run/mysqld 2>/dev/null || true
    if [[ ! -d /var/lib/mysql/mysql ]]; then $SUDO mariadb-install-db --user=mysql >/dev/null; fi
    $SUDO start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
    wait_for mysql_ok || { log "MariaDB did not come up on 127.0.0.1:3306"; exit 1; }
  fi
fi

# The split-mode scenario runs 23 processes on this server (65-80 connections)
# while other packages' tests run beside it; MariaDB's default of 151 is then
# reached ("Error 1040: Too many connections"). Raised for the running server
# only (SET GLOBAL: gone at its restart), on the local server the tests use.
MIN_MYSQL_CONNECTIONS=${MIN_MYSQL_CONNECTIONS:-500}
if [[ -z ${CANOPY_MYSQL_DSN:-} ]] && mysql_ok; then
  max_conn=$(mariadb --protocol=tcp -h127.0.0.1 -P3306 -uroot -N -e 'SELECT @@max_connections' 2>/dev/null || echo "")
  if [[ $max_conn =~ ^[0-9]+$ ]] && (( max_conn < MIN_MYSQL_CONNECTIONS )); then
    if mariadb --protocol=tcp -h127.0.0.1 -P3306 -uroot -e "SET GLOBAL max_connections = $MIN_MYSQL_CONNECTIONS" 2>/dev/null; then
      log "MariaDB max_connections raised from $max_conn to $MIN_MYSQL_CONNECTIONS (until the server restarts)"
    else
      log "MariaDB max_connections is $max_conn; could not raise it to $MIN_MYSQL_CONNECTIONS (the split-mode tests may see 'Too many connections')"
    fi
  fi
fi

if ! command -v redis-server >/dev/null; then apt_install redis-server redis-tools; fi
if ! command -v redis-cli >/dev/null; then apt_install redis-tools; fi
if ! redis_ok; then
  if [[ -n ${CANOPY_REDIS_ADDR:-} ]]; then
    log "CANOPY_REDIS_ADDR is set; not starting a local Redis"
  else
    log "starting Redis"
    $SUDO mkdir -p /var/lib/redis /var/log/redis
    $SUDO redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/canopy.log
    wait_for redis_ok || { log "Redis did not come up on 127.0.0.1:6379"; exit 1; }
  fi
fi

# The portal's browser tests (e2e, docs/portal.md) drive Debian's Chromium;
# CHROMIUM may name another binary.
if [[ -z ${CHROMIUM:-} ]] && ! command -v chromium >/dev/null && [[ ! -x /usr/bin/chromium ]]; then
  apt_install chromium
fi

if ! command -v go >/dev/null; then
  log "Go is not installed (need Go 1.26+); see https://go.dev/doc/install"
  exit 1
fi
log "downloading Go modules"
for mod in $(go list -m -f '{{.Dir}}'); do
  (cd "$mod" && go mod download)
done
log "ok: MariaDB on 127.0.0.1:3306, Redis on 127.0.0.1:6379, Go $(go env GOVERSION)"
