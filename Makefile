# storesync — build, test, benchmark. `make help` lists the targets.
GO ?= go
PKGS ?= ./...

.PHONY: help build test test-short bench bench-import vet fmt demo clean

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 16

build: ## build ./storesync
	$(GO) build -o storesync ./cmd/storesync

test: ## run every test with the race detector against a real Postgres (started privately when none answers), a private PgBouncer and headless Chromium (installed when missing)
	.ci/with-postgres .ci/with-pgbouncer .ci/with-chromium $(GO) test -race -count=1 -timeout 30m $(PKGS)

vet: ## go vet
	$(GO) vet ./...

fmt: ## gofmt every Go file
	gofmt -w $$(git ls-files '*.go')

bench: ## run the benchmarks (verification, client, ledger, import), then bench-million
	.ci/with-postgres $(GO) test -run '^$$' -bench . -skip 'BenchmarkMillion|BenchmarkReconcileSelection' -benchmem -count=1 -timeout 30m $(PKGS)
	$(MAKE) bench-million

demo: build ## run the demo against the simulator
	./storesync demo

clean:
	rm -f storesync

.PHONY: bench-migrate bench-million

bench-million: ## the 1M-subscriber figures (STORESYNC_BENCH_SUBSCRIBERS, default 1000000): generation, bytes, status, show, reconcile selection, entitlement p50/p99 vs ceilings, ops pages
	@df -h . | awk 'NR==2 {print "bench-million: " $$4 " free here; a 1,000,000-subscriber ledger takes about 16 GB"}'
	.ci/with-postgres $(GO) test -run '^$$' -bench 'BenchmarkMillion' -benchtime 1x -count=1 -timeout 0 ./ledger/population/

bench-import: ## enqueue a generated 1,000,000-row CSV with `storesync import` (rows/s, peak RSS via /usr/bin/time -v)
	.ci/with-postgres $(GO) test -run '^$$' -bench 'BenchmarkImportCommandMillionRows' -benchtime 1x -count=1 -timeout 30m ./jobs/
	.ci/with-postgres $(GO) test -run '^$$' -bench 'BenchmarkImporterEnqueue' -benchtime 200000x -count=1 -timeout 30m ./jobs/

bench-migrate: ## migrate STORESYNC_BENCH_SUBSCRIBERS (default 2000) simulated customers from ids and from receipts with 1, 2 and 4 serve processes: % of Apple's limit per endpoint with work, 429 share, Apple calls per subscriber, time to current state vs full history
	.ci/with-postgres $(GO) test -run '^$$' -bench 'BenchmarkMigrateServeProcesses' -benchtime 1x -count=1 -timeout 60m ./jobs/

.PHONY: chaos
chaos: ## the chaos run: 3 serve processes, SIGKILLs, a Postgres restart, 5xx and a 429 storm, webhooks throughout
	$(GO) test -tags chaos -run TestChaos -count=1 -timeout 20m -v ./cmd/storesync/

# Under make test the PgBouncer test fails, not skips, when STORESYNC_PGBOUNCER_URL is missing
# (i.e. when .ci/with-pgbouncer was left out of the test line above).
test: export STORESYNC_REQUIRE_PGBOUNCER = 1

.PHONY: bench-ingest
bench-ingest: ## a whole serve (workers on) taking STORESYNC_BENCH_RATE webhooks/s (1000) for STORESYNC_BENCH_SECONDS (60): accepted rate, p99, the commit ceiling, processing throughput
	.ci/with-postgres $(GO) test -run '^$$' -bench 'BenchmarkServeIngest' -benchtime 1x -count=1 -timeout 30m -v ./cmd/storesync/
