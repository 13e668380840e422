# Canopy entry points. `make dev` runs the whole platform; `make test` passes the tests.
SHELL := /bin/bash
MODULE_PATTERN := github.com/canopy-platform/canopy/...
GO ?= go
TEST_TIMEOUT ?= 18m
FUZZTIME ?= 30s
# make test fuzzes every target briefly after the ordinary tests (which already
# run each target's seed corpus); see docs/testing.md. A count, not a duration:
# Go 1.26's fuzzer can fail a target at a -fuzztime deadline with no failing
# input (golang/go#75804), and a count has no deadline to race.
TEST_FUZZTIME ?= 3000x

.PHONY: dev split test test-s3 vet bench bench-metering bench-alerting bench-backup fuzz lint fmt up down k8s build deps clean reset openapi config-docs e2e

deps:
	@bash scripts/ensure-deps.sh

## dev: run the all-in-one platform in the foreground (Ctrl-C stops it)
dev: deps
	$(GO) run ./services/allinone/cmd/canopy

## split: split mode on one machine: the broker, then every service's own binary as two replicas, two gateways balancing over them (Ctrl-C stops all)
split: deps build
	@bash scripts/split.sh

## reset: stop the platform and every node process Canopy started, drop its databases, remove .canopy (asks first; FORCE=1 does not)
reset:
	$(GO) run ./services/allinone/cmd/canopy reset $(if $(filter 1 yes true,$(FORCE)),-force,)

## build: build every binary into bin/
build:
	@mkdir -p bin
	@for d in services/*/cmd/*; do \
	  echo "build $$d"; $(GO) build -o bin/$$(basename $$d) ./$$d || exit 1; \
	done

vet:
	$(GO) vet $(MODULE_PATTERN)

## test: ensure deps, vet, run every test (integration included) with the race detector, then fuzz each target for TEST_FUZZTIME
test: deps vet
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(MODULE_PATTERN)
	FUZZTIME=$(TEST_FUZZTIME) bash scripts/fuzz.sh

## test-s3: the backup repository's S3 tests against a real S3-compatible server (SeaweedFS, built once into .canopy/tools)
test-s3: deps
	@bash scripts/test-s3.sh

## fuzz: run every Fuzz target for FUZZTIME each (default 30s; FUZZ=regexp picks targets)
fuzz:
	FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

## e2e: the end-to-end scenarios against a freshly built all-in-one platform (e2e/README.md)
e2e: deps
	cd e2e && $(GO) test -count=1 -run Scenario -v .

## bench: every benchmark, each printing its figures and ratios (BENCH=regexp picks some; knobs in scripts/bench.sh)
bench: deps
	@bash scripts/bench.sh

## bench-alerting: the alerting peer benchmark alone: Canopy vs Debian's prometheus-alertmanager (installed if missing)
bench-alerting: deps
	@bash scripts/bench-alerting.sh

## bench-backup: the backup benchmarks alone: throughput and restore time next to bare mariadb-backup, archive lag under 1,000 rows/s
bench-backup: deps
	@BENCH='^(BenchmarkBackupThroughput|BenchmarkRestore|BenchmarkArchiveLag)$$' bash scripts/bench.sh

## bench-metering: the metering benchmarks alone: ledger ingestion next to a raw consumer, the ingestion API, usage query p99
bench-metering: deps
	@BENCH='^(BenchmarkLedgerIngest|BenchmarkIngestAPI|BenchmarkUsageQuery)$$' bash scripts/bench.sh

## lint: formatting and vet (golangci-lint when installed)
lint: vet
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [[ -n $$unformatted ]]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	@if command -v golangci-lint >/dev/null; then golangci-lint run $(MODULE_PATTERN); fi

## openapi: regenerate api/openapi/canopy.v1.yaml from base.yaml and the *.paths.yaml fragments
openapi:
	cd e2e && $(GO) test -count=1 -run 'OpenAPI' . -update

## config-docs: regenerate docs/configuration.md (every environment variable, per binary) from the Config structs
config-docs:
	cd e2e && $(GO) test -count=1 -run 'TestConfigDoc$$' . -update

fmt:
	gofmt -w $$(git ls-files '*.go')

## up: the platform on real Kafka, MySQL 8 and Redis 7 with Docker Compose
up:
	docker compose up --build

down:
	docker compose down -v

## k8s: render the kustomize manifests of the dev overlay
k8s:
	@if command -v kubectl >/dev/null; then kubectl kustomize k8s/overlays/dev; \
	else $(GO) run sigs.k8s.io/kustomize/kustomize/v5@v5.7.1 build k8s/overlays/dev; fi

clean:
	rm -rf bin bench-results
