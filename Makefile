# labelq — `make help` lists the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

export PATH := /usr/local/go/bin:$(PATH)
GOBIN ?= $(shell go env GOPATH)/bin
SQLC_VERSION  := v1.31.1
MINIO_VERSION := v0.0.0-20260212201848-7aac2a2c5b7c
GOLANGCI_LINT_VERSION := v2.15.0
SQLC  := $(GOBIN)/sqlc
MINIO := $(GOBIN)/minio
GOLANGCI_LINT := $(GOBIN)/golangci-lint

# Local development defaults (override in the environment).
export LABELQ_OPERATOR_PASSWORD ?= labelq-dev
MINIO_DATA ?= $(CURDIR)/.tmp/minio
PG_HOST ?= 127.0.0.1
PG_PORT ?= 5432
REDIS_PORT ?= 6379
# Tests that testenv.SkipUnderRace keeps out of the -race pass; `make test` runs them
# in a second pass without it (TestHeavyTestsRunInMakeTest keeps the two in step).
HEAVY_TESTS := ^(TestPackHuge|TestExportZIP64ManyEntries)$$
MINIO_ADDR ?= 127.0.0.1:9000

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

.PHONY: tools
tools: $(SQLC) $(MINIO) $(GOLANGCI_LINT) ## install sqlc, minio, golangci-lint and the Debian tools the tests use (zip, nftables, redis, pgbouncer, prometheus) when missing
	@command -v zip >/dev/null && command -v unzip >/dev/null || { \
	  echo "installing zip and unzip"; \
	  (apt-get update -qq && apt-get install -y -qq zip unzip) >/dev/null || \
	  sudo sh -c 'apt-get update -qq && apt-get install -y -qq zip unzip' >/dev/null; }
	@command -v nft >/dev/null || { \
	  echo "installing nftables (the partitions of make chaos NETNS=1)"; \
	  (apt-get update -qq && apt-get install -y -qq nftables) >/dev/null || \
	  sudo sh -c 'apt-get update -qq && apt-get install -y -qq nftables' >/dev/null; }
	@{ command -v pgbouncer || [ -x /usr/sbin/pgbouncer ]; } >/dev/null || { \
	  echo "installing pgbouncer (the tests that go through a transaction pooler)"; \
	  (apt-get update -qq && apt-get install -y -qq pgbouncer) >/dev/null || \
	  sudo sh -c 'apt-get update -qq && apt-get install -y -qq pgbouncer' >/dev/null; }
	@command -v promtool >/dev/null || { \
	  echo "installing prometheus (promtool checks and unit-tests the alert rules)"; \
	  (apt-get update -qq && apt-get install -y -qq prometheus) >/dev/null || \
	  sudo sh -c 'apt-get update -qq && apt-get install -y -qq prometheus' >/dev/null; }
	@command -v redis-server >/dev/null && command -v redis-cli >/dev/null || { \
	  echo "installing redis-server and redis-cli (the tests' Redis Cluster and Sentinel sets)"; \
	  (apt-get update -qq && apt-get install -y -qq redis-server) >/dev/null || \
	  sudo sh -c 'apt-get update -qq && apt-get install -y -qq redis-server' >/dev/null; }

$(SQLC):
	@echo "installing sqlc $(SQLC_VERSION) (about 2 minutes, once)"
	CGO_ENABLED=1 go install github.com/sqlc-dev/sqlc/cmd/sqlc@$(SQLC_VERSION)

$(MINIO):
	@echo "installing minio $(MINIO_VERSION) (about 3 minutes, once)"
	go install github.com/minio/minio@$(MINIO_VERSION)

$(GOLANGCI_LINT):
	@echo "installing golangci-lint $(GOLANGCI_LINT_VERSION) (about 3 minutes, once)"
	go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

.PHONY: services
services: services-db $(MINIO) ## check Postgres, Redis and MinIO; start what is missing
	@if curl -fsS -o /dev/null http://$(MINIO_ADDR)/minio/health/live 2>/dev/null; then \
	  echo "MinIO     ok ($(MINIO_ADDR))"; \
	else \
	  mkdir -p $(MINIO_DATA); \
	  echo "MinIO     starting on $(MINIO_ADDR), data in $(MINIO_DATA), log in .tmp/minio.log"; \
	  MINIO_ROOT_USER=$${LABELQ_S3_ACCESS_KEY:-minioadmin} MINIO_ROOT_PASSWORD=$${LABELQ_S3_SECRET_KEY:-minioadmin} \
	    MINIO_BROWSER=off MINIO_UPDATE=off nohup $(MINIO) server $(MINIO_DATA) --address $(MINIO_ADDR) \
	    --console-address 127.0.0.1:9001 --quiet > .tmp/minio.log 2>&1 & \
	  for i in $$(seq 1 100); do curl -fsS -o /dev/null http://$(MINIO_ADDR)/minio/health/live 2>/dev/null && break; sleep 0.2; done; \
	  curl -fsS -o /dev/null http://$(MINIO_ADDR)/minio/health/live || { echo "MinIO did not start: see .tmp/minio.log"; exit 1; }; \
	fi

.PHONY: services-db
services-db:
	@if pg_isready -q -h $(PG_HOST) -p $(PG_PORT) 2>/dev/null; then echo "Postgres  ok ($(PG_HOST):$(PG_PORT))"; \
	elif [ -d /etc/postgresql ]; then echo "Postgres  starting"; \
	  pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | head -n1) main start; \
	  for i in $$(seq 1 50); do pg_isready -q -h $(PG_HOST) -p $(PG_PORT) && break; sleep 0.2; done; \
	else echo "Postgres is not running on $(PG_HOST):$(PG_PORT) and is not installed here: install it (apt-get install postgresql) or use docker compose"; exit 1; fi
	@if redis-cli -h 127.0.0.1 -p $(REDIS_PORT) ping >/dev/null 2>&1; then echo "Redis     ok (127.0.0.1:$(REDIS_PORT))"; \
	elif command -v redis-server >/dev/null; then echo "Redis     starting"; \
	  redis-server --daemonize yes --bind 127.0.0.1 --port $(REDIS_PORT) --save "" --appendonly no >/dev/null; \
	  for i in $$(seq 1 50); do redis-cli -p $(REDIS_PORT) ping >/dev/null 2>&1 && break; sleep 0.1; done; \
	else echo "Redis is not running on 127.0.0.1:$(REDIS_PORT) and is not installed here: install it (apt-get install redis-server) or use docker compose"; exit 1; fi

.PHONY: generate
generate: $(SQLC) ## regenerate the sqlc code in internal/db from queries/ and migrations/
	$(SQLC) generate

.PHONY: build
build: ## build bin/labelq
	go build -o bin/labelq ./cmd/labelq

.PHONY: migrate
migrate: services-db build ## create the database if missing and apply migrations (as the owner, LABELQ_DATABASE_URL)
	./bin/labelq migrate up

.PHONY: run
run: services migrate ## start everything (API, workers, scheduler, relay, asynqmon) on 127.0.0.1:8080 (loopback: dev credentials allowed)
	@echo
	@echo "  API         http://localhost:8080/v1   (token: ./bin/labelq token create --org acme --name dev)"
	@echo "  asynqmon    http://localhost:8080/monitoring/   (user operator, password $$LABELQ_OPERATOR_PASSWORD)"
	@echo "  metrics     http://localhost:8080/metrics"
	@echo "  health      http://localhost:8080/healthz  http://localhost:8080/readyz"
	@echo "  Ctrl-C stops it."
	@echo
	@# migrate ran as the schema owner; the workers run as labelq_worker and the API
	@# as labelq_api_login (LABELQ_API_DATABASE_URL derives it), the roles it created.
	@# Storage credentials are sealed under a development key made once in .tmp/secret-key
	@# (kept: what it sealed must open on the next run); set LABELQ_SECRET_KEY to use yours.
	@mkdir -p .tmp; [ -s .tmp/secret-key ] || { umask 077; printf 'dev1:%s' "$$(head -c 32 /dev/urandom | base64)" > .tmp/secret-key; }
	LABELQ_SECRET_KEY="$${LABELQ_SECRET_KEY:-$$(cat .tmp/secret-key)}" \
	LABELQ_DATABASE_URL="$${LABELQ_DATABASE_URL:-postgres://labelq_worker@$(PG_HOST):$(PG_PORT)/labelq?sslmode=disable}" exec ./bin/labelq all

.PHONY: test
test: tools services-db lint ## lint, then run every test against the real Postgres, Redis and MinIO
	go test -race -timeout 20m ./...
	@echo "second pass, without -race: the tests that move gigabytes (ZIP64 beyond 4 GiB, 70,000-entry export)"
	go test -count=1 -timeout 20m -run '$(HEAVY_TESTS)' ./internal/zipstream/ ./worker/export/

# Objects BenchmarkSync100k (worker/sync: the sync and the re-sync) lists;
# BenchmarkSyncUntilValid10k (cmd/labelq) takes LABELQ_BENCH_SYNC_VALID_OBJECTS, default 10000.
# `make bench LABELQ_BENCH_SYNC_OBJECTS=10000` for a quicker run.
export LABELQ_BENCH_SYNC_OBJECTS ?= 100000
.PHONY: bench
bench: tools services-db ## run the benchmarks and print one table of figures beside their baselines
	@mkdir -p .tmp
	go test -run '^$$' -bench . -benchtime 1x -timeout 60m ./... | tee .tmp/bench.out | go run ./internal/benchtable

.PHONY: chaos
chaos: tools services-db ## fault-injection run: real processes, kill -9, Redis/Postgres/MinIO outages, LLM 429s; prints the invariants (NETNS=1: workers in network namespaces, with partitions; root; CLUSTER=1 / SENTINEL=1: on a Redis Cluster / Sentinel set, masters killed; PGBOUNCER=1: through PgBouncer)
	go run ./cmd/labelq-chaos $(if $(NETNS),-netns) $(if $(CLUSTER),-redis cluster) $(if $(SENTINEL),-redis sentinel) $(if $(PGBOUNCER),-pgbouncer)

.PHONY: chaos-short
chaos-short: tools services-db ## the short variant of make chaos that make test runs (about 3 minutes)
	go run ./cmd/labelq-chaos -short

.PHONY: load
load: tools services-db ## load run: 50,000 versions through the whole pipeline with three workers
	go run ./cmd/labelq-chaos -load 50000

FUZZTIME ?= 30s
.PHONY: fuzz
fuzz: ## run every fuzz target for FUZZTIME each (the normal test run replays their seed corpora)
	@for pkg in $$(go list ./...); do \
	  for f in $$(go test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; go test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

.PHONY: lint
lint: $(SQLC) $(GOLANGCI_LINT) ## gofmt, go vet, golangci-lint (.golangci.yml) and the sqlc freshness check
	@out=$$(gofmt -l $$(git ls-files '*.go')); [ -z "$$out" ] || { echo "gofmt would change: $$out"; exit 1; }
	go vet ./...
	$(GOLANGCI_LINT) run ./...
	$(SQLC) diff
