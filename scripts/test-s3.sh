#!/usr/bin/env bash
# Runs the backup repository's S3 tests against a real S3-compatible server:
# SeaweedFS (Apache-2.0), built from the Go module proxy into .canopy/tools
# on first use (several minutes), started on loopback ports with a scratch
# directory and one access key, and stopped (by PID) when the tests end.
# `make test` skips these tests: no S3 server is on the machine by default.
set -euo pipefail
cd "$(dirname "$0")/.."

version=v0.0.0-20261109003541-7506e5f91cd6
tools=$PWD/.canopy/tools
weed=$tools/weed-$version
if [[ ! -x $weed ]]; then
  echo "test-s3: building SeaweedFS $version (once)"
  go mod download -json "github.com/seaweedfs/seaweedfs@$version" >/dev/null
  src=$(go env GOMODCACHE)/github.com/seaweedfs/seaweedfs@$version
  build=$(mktemp -d)
  trap 'rm -rf "$build"' EXIT
  # Its go.mod has replace directives, so `go install pkg@version` refuses
  # it: build a copy of the module as the main module instead.
  cp -r "$src/." "$build" && chmod -R u+w "$build"
  mkdir -p "$tools"
  (cd "$build" && go build -o "$weed" ./weed)
fi

# A free loopback port p whose p+10000 is free too: SeaweedFS serves gRPC there.
free_port() {
  python3 - <<'PY'
import random, socket
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); return True
    except OSError:
        return False
    finally:
        s.close()
while True:
    p = random.randint(20000, 45000)
    if free(p) and free(p + 10000):
        print(p); break
PY
}
data=$(mktemp -d)
s3port=$(free_port); master=$(free_port); volume=$(free_port); filer=$(free_port)
cat > "$data/s3.json" <<JSON
{"identities":[{"name":"canopy","credentials":[{"accessKey":"canopytest","secretKey":"canopytestsecret"}],"actions":["Admin","Read","List","Tagging","Write"]}]}
JSON
"$weed" server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$data" -master.port="$master" -volume.port="$volume" \
  -filer.port="$filer" -s3 -s3.port="$s3port" -s3.config="$data/s3.json" >"$data/server.log" 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$data"; }
trap cleanup EXIT
for _ in $(seq 120); do
  curl -s -o /dev/null "http://127.0.0.1:$s3port/" && break
  kill -0 "$pid" 2>/dev/null || { cat "$data/server.log"; exit 1; }
  sleep 0.5
done
for _ in $(seq 60); do
  echo "s3.bucket.create -name canopy" | "$weed" shell -master="127.0.0.1:$master" 2>/dev/null | grep -q "created bucket" && break
  sleep 0.5
done
cd services/backup
CANOPY_TEST_S3_ENDPOINT=127.0.0.1:$s3port CANOPY_TEST_S3_BUCKET=canopy \
CANOPY_TEST_S3_ACCESS_KEY=canopytest CANOPY_TEST_S3_SECRET_KEY=canopytestsecret \
  go test -count=1 -run 'S3' -v ./internal/repo/
