# klingfan: `make run` starts the gateway, `make test` runs every check CI runs.

GO      ?= go
BUF     := $(GO) tool -modfile=tools/go.mod buf
# golangci-lint is pinned in a module of its own, tools/golangci-lint/go.mod,
# not in tools/go.mod: its many dependencies would otherwise raise the
# versions that buf and the protoc plugins build with, and so change gen/.
GOLANGCI := $(GO) tool -modfile=$(CURDIR)/tools/golangci-lint/go.mod golangci-lint
# The benchmark harness (bench/), the image builder (image/) and the fault
# harness (chaos/) are tooling, not product: each is a module of its own, so
# the gateway's module neither lists their packages nor requires their
# dependencies. Each builds against this tree's packages through a replace
# directive in its go.mod.
TOOL_MODULES := bench image chaos
DATA    ?= ./data
GENERATED := gen internal/openapi/spec

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets.
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: run
run: ## Build klingfan and klingctl into ./bin and start the gateway, data under ./data.
	$(GO) build -o bin/ ./cmd/klingfan ./cmd/klingctl
	./bin/klingfan serve --data-dir $(DATA)

.PHONY: build
build: ## Build every command into ./bin: klingfan, klingctl, klingsim and the harnesses (make run builds only the first two).
	$(GO) build -o bin/ ./cmd/...

.PHONY: test
test: lint check-generate ## Lint, prove gen/ is reproducible, run every test with -race.
	$(GO) test -race -timeout 25m ./...
	@for m in $(TOOL_MODULES); do $(GO) -C $$m test -race -timeout 20m ./... || exit 1; done

.PHONY: test-short
test-short: ## Run the tests without lint and the generate check.
	$(GO) test -race -short ./...
	@for m in $(TOOL_MODULES); do $(GO) -C $$m test -race -short ./... || exit 1; done

.PHONY: tidy
tidy: ## go mod tidy the gateway's module and the tooling modules (bench/, image/, chaos/).
	$(GO) mod tidy
	@for m in $(TOOL_MODULES); do echo "go -C $$m mod tidy"; $(GO) -C $$m mod tidy || exit 1; done

.PHONY: soak
soak: ## SIGKILL and restart the server under load, KLINGFAN_SOAK_CYCLES times (default 20), without -race.
	KLINGFAN_SOAK_CYCLES=$${KLINGFAN_SOAK_CYCLES:-20} $(GO) test -count=1 -v -run '^TestCrashRecovery$$' -timeout 60m ./internal/crashtest

.PHONY: screenshots
screenshots: ## Write PNGs of every console page (1280x800 and 390x844) to docs/console/; needs chromium.
	KLINGFAN_SCREENSHOTS=$(CURDIR)/docs/console $(GO) test -count=1 -run '^TestScreenshots$$' ./internal/console

.PHONY: check-console-vendor
check-console-vendor: ## Prove the console's vendored library is byte-for-byte the pinned npm package's file (needs npm).
	./scripts/console-vendor.sh --check

.PHONY: generate
generate: ## Regenerate gen/ and the OpenAPI spec from proto/ with the pinned local plugins.
	$(BUF) generate

.PHONY: check-generate
check-generate: generate ## Fail if `make generate` changes anything that is committed.
	@changes=$$(git status --porcelain -- $(GENERATED)); \
	if [ -n "$$changes" ]; then echo "make generate changed generated files:"; echo "$$changes"; git --no-pager diff --stat -- $(GENERATED); exit 1; fi

.PHONY: lint
# BREAKING_BASE is what `buf breaking` compares proto/ with: the commit of
# main this tree builds on (its merge-base with main), or HEAD~1 when that is
# HEAD itself (CI on main, or a branch with no commits yet), so a breaking
# change fails whether it is uncommitted or already committed. Additions pass.
BREAKING_BASE ?= $(shell head=$$(git rev-parse HEAD); \
	b=$$(git merge-base HEAD main 2>/dev/null || git merge-base HEAD origin/main 2>/dev/null || echo $$head); \
	if [ "$$b" = "$$head" ]; then git rev-parse --verify -q HEAD~1 || echo $$head; else echo $$b; fi)

lint: ## buf lint, buf format, buf breaking, go vet, golangci-lint (.golangci.yml), gofmt; also in bench/, image/ and chaos/.
	$(BUF) lint
	$(BUF) breaking --against "$$(git rev-parse --path-format=absolute --git-common-dir)#ref=$(BREAKING_BASE)"
	$(BUF) format -d --exit-code
	$(GO) vet ./...
	$(GOLANGCI) run ./...
	@for m in $(TOOL_MODULES); do \
	  $(GO) -C $$m mod tidy -diff >/dev/null || { echo "$$m/go.mod is out of date with the gateway's: run make tidy"; exit 1; }; \
	  echo "vet, golangci-lint: $$m/"; $(GO) -C $$m vet ./... && (cd $$m && $(GOLANGCI) run ./...) || exit 1; \
	done
	@out=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# bench: the key micro-benchmarks (BENCHTIME each), then the klingbench load
# harness on the real server; BENCHFLAGS go to klingbench (e.g. -full,
# -cpuprofile DIR, -phases ingest). Writes BENCHMARKS.md, its plots
# (bench-*.svg beside it) and bench/results.json.
BENCHTIME  ?= 200ms
BENCHFLAGS ?=
MICROBENCH := ^(BenchmarkPublish|BenchmarkEncodeSubscribeResponse|BenchmarkServeHTTP|BenchmarkKlingSignature|BenchmarkStandardWebhooks|BenchmarkParse|BenchmarkMatch|BenchmarkMatchStreamsApart|BenchmarkCostlyFilters|BenchmarkFanoutFilter)$$

.PHONY: bench
bench: ## Micro-benchmarks + load harness (under 10 min): writes BENCHMARKS.md, its plots and bench/results.json.
	@set -e; micro=$$(mktemp); trap 'rm -f "$$micro" "$$micro.rc"' EXIT; \
	{ $(GO) test -p 1 -run='^$$' -benchmem -benchtime=$(BENCHTIME) -bench='$(MICROBENCH)' \
	    ./internal/hub ./internal/ingest ./internal/verify ./internal/normalize ./internal/eventexpr ./internal/app 2>&1; echo $$? > "$$micro.rc"; } | tee "$$micro"; \
	test "$$(cat "$$micro.rc")" = 0; \
	$(GO) -C bench build -o $(CURDIR)/bin/klingbench ./cmd/klingbench; \
	./bin/klingbench -micro "$$micro" -out BENCHMARKS.md -json bench/results.json $(BENCHFLAGS)

.PHONY: bench-plots
bench-plots: ## Redraw BENCHMARKS.md's plots (bench-*.svg) from bench/results.json without running the harness.
	$(GO) -C bench run ./cmd/klingbench -plots-from $(CURDIR)/bench/results.json -out $(CURDIR)/BENCHMARKS.md

.PHONY: fuzz
fuzz: ## Run every fuzz target for a bounded time (FUZZTIME, default 20s each).
	@for pkg in $$($(GO) list ./internal/...); do \
	  for f in $$($(GO) test -list='^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$${FUZZTIME:-20s} $$pkg || exit 1; \
	  done; \
	done

# image: static binaries for linux (GOARCH as set, this machine's by default)
# and klingimage, run for this machine, to write them into an OCI archive.
IMAGE     ?= bin/klingfan-image.tar
IMAGE_TAG ?= klingfan:dev

.PHONY: image
image: ## Build the container image (no Docker needed) as an OCI archive at bin/klingfan-image.tar.
	CGO_ENABLED=0 GOOS=linux $(GO) build -trimpath -ldflags='-s -w' -o bin/image/ ./cmd/klingfan ./cmd/klingctl
	GOOS= GOARCH= $(GO) -C image run ./cmd/klingimage -arch $$($(GO) env GOARCH) -klingfan $(CURDIR)/bin/image/klingfan -klingctl $(CURDIR)/bin/image/klingctl -tag $(IMAGE_TAG) -o $(abspath $(IMAGE))

.PHONY: clean
clean: ## Remove build output (not the data directory).
	rm -rf bin

.PHONY: cluster
cluster: build ## Demo cluster mode: three NATS nodes plus replicas on :8080/:9090 and :8081/:9091, until Ctrl-C.
	BIN=./bin DATA=$(DATA) ./scripts/cluster.sh

.PHONY: test-cluster
test-cluster: ## Run the cluster harness in its long form (more load, repeated NATS node kills).
	KLINGFAN_CLUSTER_LONG=1 $(GO) test -race -count=1 -v -timeout 20m ./internal/natscluster

.PHONY: chaos
chaos: ## Cluster under faults, as root: 3 NATS nodes in namespaces, 2 replicas, seeded faults, a loss check (CHAOS_SEED, CHAOS_SYNC=interval, CHAOS_SHORT=1).
	$(GO) build -o bin/ ./cmd/klingfan
	cd chaos && $(GO) build -o ../bin/klingchaos ./cmd/klingchaos
	./bin/klingchaos

.PHONY: demo
demo: ## klingfan + klingsim on loopback: lossy callbacks, listen, reconcile (DEMO_SECONDS=60, DEMO_HTTP, DEMO_GRPC, DEMO_SIM).
	$(GO) build -o bin/ ./cmd/klingfan ./cmd/klingctl ./cmd/klingsim
	BIN=./bin ./scripts/demo.sh
