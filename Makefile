# The project's vocabulary: `make run` and `make test` are the two commands of the README;
# ARCHITECTURE.md says what each target covers.
SHELL := /bin/bash
# sudo's secure_path lacks Go's directory, and make 4.3 does not pass exported variables to
# $(shell): give the go command its PATH explicitly.
export PATH := $(PATH):/usr/local/go/bin
GOBIN := $(shell PATH="$(PATH)" go env GOPATH 2>/dev/null || echo $(HOME)/go)/bin
export PATH := $(PATH):$(GOBIN)
DIST := _build/otelcol-codexray
# Go test timeout per package; the whole `make test` stays well under 20 minutes.
TEST_TIMEOUT ?= 15m
LOGHUB_DIR ?= ../shared/loghub2k
# The testbed daemons are shared by overlapping runs; this make process is one user of them.
OWNER := $(shell echo $$PPID)

# golangci-lint, pinned: `make lint` installs this version when another one (or none) is found.
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT := $(GOBIN)/golangci-lint

.PHONY: all run test unit e2e-k8s build generate check-generated bench bench-logpatterns soak lint deps deps-build deps-generate testbed-up testbed-down clean

all: build

## deps: install what is missing for every target (Debian packages, ocb, crictl); idempotent
deps:
	@bash scripts/install-deps.sh test

deps-build:
	@bash scripts/install-deps.sh build

deps-generate:
	@bash scripts/install-deps.sh generate

## build: build the otelcol-codexray distribution with ocb into _build/ (build toolchain only)
build: deps-build
	@echo "building $(DIST) with ocb (the first build downloads ~350 MB of modules)"
	@env "dist.go=$(CURDIR)/scripts/ocb-go.sh" $(GOBIN)/builder --config builder-config.yaml >_build.log 2>&1 || \
		{ tail -30 _build.log; echo "ocb failed; full log in _build.log" >&2; exit 1; }
	@echo "built $(DIST)"

## run: build and run the agent with config/default.yaml (as root)
run: build
	@bash scripts/run.sh

## unit: the tests that need no root, daemon or kernel feature; no installs; well under a minute
unit:
	@CODEXRAY_UNIT_ONLY=1 go test -short -count=1 ./...

## test: every test, the privileged ones included (CODEXRAY_REQUIRE_PRIVILEGED=1 makes their skips failures)
test: deps build
	@bash scripts/check-generated.sh
	@bash scripts/testbed.sh up $(OWNER)
	@set -o pipefail; CODEXRAY_DIST=$(CURDIR)/$(DIST) go test -count=1 -timeout $(TEST_TIMEOUT) ./... ; rc=$$?; \
		bash scripts/testbed.sh down $(OWNER); exit $$rc

## e2e-k8s: the agent's DaemonSet on a real single-node Kubernetes cluster (test/k8s); the
## Kubernetes binaries are built once from the Go module proxy and cached (scripts/k8s-binaries.sh)
e2e-k8s: deps build
	@bin=$$(bash scripts/k8s-binaries.sh) && \
		CODEXRAY_K8S_BIN=$$bin CODEXRAY_DIST=$(CURDIR)/$(DIST) go test -tags e2ek8s -count=1 -timeout 30m -v ./test/k8s/...

## generate: regenerate bpf2go objects, internal/metadata and documentation.md
generate: deps-generate
	go generate ./...

check-generated: deps-generate
	@bash scripts/check-generated.sh

## bench: Go benchmarks (benchstat-friendly) and the end-to-end load scripts
bench: deps
	@bash scripts/testbed.sh up $(OWNER)
	@set -o pipefail; rc=0; \
		go test -run '^$$' -bench . -benchmem -count 1 ./... | tee bench.out || rc=1; \
		echo "== eBPF tracer overhead (L7 capture on): 50,000 loopback connect/accept/close cycles, untraced vs traced"; \
		go run ./cmd/connbench -n 50000 -rounds 3 || rc=1; \
		echo "== L7 overhead: HTTP/1.1 keep-alive requests/s (wrk), without vs with the agent; RSS after 1 M requests"; \
		go run ./cmd/connbench -http -http-seconds 2 -http-rounds 21 -http-requests 1000000 || rc=1; \
		$(MAKE) --no-print-directory bench-logpatterns || rc=1; \
		echo "== log-pattern memory: 10 million unique lines"; \
		go run ./cmd/loghub-score -dir $(LOGHUB_DIR) -flood 10000000 || rc=1; \
		bash scripts/testbed.sh down $(OWNER); exit $$rc

## soak: churn soak of the built agent: 1,000 containers created and removed over 10 minutes,
## then its state must return to the baseline (root; ~20 minutes; SOAK_FLAGS=-h for options)
soak: deps build
	@bash scripts/testbed.sh up $(OWNER)
	@set -o pipefail; go run ./test/soak -dist $(DIST) $(SOAK_FLAGS) | tee soak.out; rc=$$?; \
		bash scripts/testbed.sh down $(OWNER); exit $$rc

## bench-logpatterns: score the log-pattern extractor on ../shared/loghub2k
bench-logpatterns:
	go run ./cmd/loghub-score -dir $(LOGHUB_DIR)

## lint: golangci-lint at GOLANGCI_LINT_VERSION with .golangci.yml (installed when missing)
lint:
	@$(GOLANGCI_LINT) version 2>/dev/null | grep -q "version $(GOLANGCI_LINT_VERSION:v%=%) " || \
		{ echo "installing golangci-lint $(GOLANGCI_LINT_VERSION)"; go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION); }
	$(GOLANGCI_LINT) run --allow-serial-runners ./...

# By hand: the daemons stay up until `make testbed-down` (this shell is their user).
testbed-up:
	@bash scripts/testbed.sh up "$$(ps -o ppid= -p $$PPID | tr -d " ")"

testbed-down:
	@bash scripts/testbed.sh down "$$(ps -o ppid= -p $$PPID | tr -d " ")"

clean:
	rm -rf _build _build.log bench.out soak.out
