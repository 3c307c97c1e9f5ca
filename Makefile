# klingfan: `make run` starts the gateway, `make test` runs every check CI runs.

GO      ?= go
BUF     := $(GO) tool -modfile=tools/go.mod buf
# golangci-lint is pinned in a module of its own, tools/golangci-lint/go.mod,
# not in tools/go.mod: its many dependencies would otherwise raise the
# versions that buf and the protoc plugins build with, and so change gen/.
GOLANGCI := $(GO) tool -modfile=tools/golangci-lint/go.mod golangci-lint
DATA    ?= ./data
GENERATED := gen internal/openapi/spec

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets.
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: run
run: build ## Start the gateway with the embedded store under ./data.
	./bin/klingfan serve --data-dir $(DATA)

.PHONY: build
build: ## Build klingfan, klingctl and klingsim into ./bin.
	$(GO) build -o bin/ ./cmd/...

.PHONY: test
test: lint check-generate ## Lint, prove gen/ is reproducible, run every test with -race.
	$(GO) test -race -timeout 25m ./...
	cd chaos && $(GO) test -race -timeout 10m ./...

.PHONY: test-short
test-short: ## Run the tests without lint and the generate check.
	$(GO) test -race -short ./...

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

lint: ## buf lint, buf format, buf breaking, go vet, golangci-lint (.golangci.yml), gofmt.
	$(BUF) lint
	$(BUF) breaking --against "$$(git rev-parse --path-format=absolute --git-common-dir)#ref=$(BREAKING_BASE)"
	$(BUF) format -d --exit-code
	$(GO) vet ./...
	$(GOLANGCI) run ./...
	cd chaos && $(GO) vet ./... && $(GO) tool -modfile=../tools/golangci-lint/go.mod golangci-lint run ./...
	@out=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# bench: the key micro-benchmarks (BENCHTIME each), then the klingbench load
# harness on the real server; BENCHFLAGS go to klingbench (e.g. -full,
# -cpuprofile DIR, -phases ingest). Writes BENCHMARKS.md and bench/results.json.
BENCHTIME  ?= 200ms
BENCHFLAGS ?=
MICROBENCH := ^(BenchmarkPublish|BenchmarkEncodeSubscribeResponse|BenchmarkServeHTTP|BenchmarkKlingSignature|BenchmarkStandardWebhooks|BenchmarkParse|BenchmarkMatch|BenchmarkMatchStreamsApart)$$

.PHONY: bench
bench: ## Micro-benchmarks + load harness (under 10 min): writes BENCHMARKS.md and bench/results.json.
	@set -e; micro=$$(mktemp); trap 'rm -f "$$micro" "$$micro.rc"' EXIT; \
	{ $(GO) test -p 1 -run='^$$' -benchmem -benchtime=$(BENCHTIME) -bench='$(MICROBENCH)' \
	    ./internal/hub ./internal/ingest ./internal/verify ./internal/normalize ./internal/eventexpr 2>&1; echo $$? > "$$micro.rc"; } | tee "$$micro"; \
	test "$$(cat "$$micro.rc")" = 0; \
	$(GO) build -o bin/klingbench ./cmd/klingbench; \
	./bin/klingbench -micro "$$micro" -out BENCHMARKS.md -json bench/results.json $(BENCHFLAGS)

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
	GOOS= GOARCH= $(GO) run ./cmd/klingimage -arch $$($(GO) env GOARCH) -klingfan bin/image/klingfan -klingctl bin/image/klingctl -tag $(IMAGE_TAG) -o $(IMAGE)

.PHONY: clean
clean: ## Remove build output (not the data directory).
	rm -rf bin

.PHONY: cluster
cluster: build ## Demo cluster mode: three NATS nodes plus replicas on :8080/:9090 and :8081/:9091, until Ctrl-C.
	BIN=./bin DATA=$(DATA) ./scripts/cluster.sh

.PHONY: test-cluster
test-cluster: ## Run the cluster harness in its long form (more load, repeated NATS node kills).
	KLINGFAN_CLUSTER_LONG=1 $(GO) test -race -count=1 -v -timeout 20m ./internal/natscluster

.PHONY: demo
demo: build ## klingfan + klingsim on loopback: lossy callbacks, listen, reconcile (DEMO_SECONDS, default 60).
	BIN=./bin ./scripts/demo.sh
