# capillary-operator

# The repository the image is pushed to: make image tags it, make release pins
# install.yaml and the chart to REPO@<digest>.
REPO ?= ghcr.io/aepoperator/capillary-operator
# Image for docker-build.
IMG ?= $(REPO):dev
# The version stamp: the release, the commit (make image and docker-build alike).
VERSION ?= $(shell git describe --tags --always --dirty --abbrev=12 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
# The image's architecture (linux/$(ARCH)).
ARCH ?= amd64

GO ?= go
CONTROLLER_GEN = $(GO) tool controller-gen
STATICCHECK = $(GO) tool staticcheck

# Packages controller-gen reads: the API and the controllers (RBAC markers).
GEN_PATHS = ./api/...;./controllers/...

# Where hack/setup-envtest.sh puts kube-apiserver and etcd (setup-envtest's store).
ENVTEST_ASSETS = $(shell hack/setup-envtest.sh 2>/dev/null || true)

.DEFAULT_GOAL := help

##@ General

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: ## Generate the CRD and RBAC manifests from the markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="$(GEN_PATHS)" output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	cp config/crd/bases/*.yaml dist/chart/files/crds/
	cp config/rbac/role.yaml dist/chart/files/rbac/
	cp config/prometheus/rules.yaml dist/chart/files/prometheus/

.PHONY: generate
generate: ## Generate the DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: fmt
fmt: ## gofmt the code.
	gofmt -l -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## go vet.
	$(GO) vet ./...

.PHONY: lint
lint: vet ## go vet and staticcheck.
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(STATICCHECK) ./...

.PHONY: envtest
envtest: ## Build kube-apiserver and etcd for envtest from the Go module proxy (only when missing).
	@hack/setup-envtest.sh >/dev/null

.PHONY: test
test: envtest ## Unit and envtest integration tests (builds the envtest binaries first if missing).
	KUBEBUILDER_ASSETS="$$(hack/setup-envtest.sh)" $(GO) test ./... -count=1 -timeout 45m

.PHONY: test-chaos
test-chaos: envtest ## The reliability drills at full size, with their figures: chaos (50 resources, faults, 3 restarts; CHAOS_SEED=n replays), leader failover, upgrade, API server faults, a 5-minute Adobe outage, token revocation, namespace teardown, and a 30-minute soak (about 50 minutes in all).
	KUBEBUILDER_ASSETS="$$(hack/setup-envtest.sh)" CHAOS_FULL=1 $(GO) test ./test/chaos/... ./test/ha/... ./test/upgrade/... ./test/apiserver/... ./test/reliability/... ./test/soak/... -p 1 -count=1 -timeout 90m -v -run 'TestChaos|TestLeaderFailover|TestUpgrade|TestAPIServer|TestStatusWrite|TestLongAdobeOutage|TestToken|TestNamespaceTeardown|TestSoak'

.PHONY: bench
bench: envtest ## The scale benchmark (N=100 and 1000, then the limiter phase at 10/s and 50/s: ~40 min; BENCH_FLAGS="-n 5000", ~40 min). Report under test/bench/out; see docs/performance.md.
	KUBEBUILDER_ASSETS="$$(hack/setup-envtest.sh)" $(GO) run ./test/bench $(BENCH_FLAGS)

##@ Build and run

.PHONY: build
build: ## Build the manager and the emulator into bin/.
	$(GO) build -o bin/manager .
	$(GO) build -o bin/aep-emulator ./hack/aep-emulator

.PHONY: run
run: ## Run the manager against the current kubeconfig and the real Adobe endpoints (ARGS=... for flags).
	$(GO) run . $(ARGS)

.PHONY: demo
demo: ## Local control plane + Adobe emulator + the operator + the samples, until Ctrl-C (builds envtest on first use).
	@$(GO) build -o bin/demo ./hack/demo
	@bin/demo $(ARGS)

.PHONY: emulator
emulator: ## Serve the Adobe emulator on 127.0.0.1:8089.
	$(GO) run ./hack/aep-emulator $(ARGS)

.PHONY: image
image: ## Build the image without a container engine: OCI layout and docker tarball in bin/image, prints the digest.
	$(GO) run ./hack/image -out bin/image -repository $(REPO) -arch $(ARCH) -version $(VERSION)

.PHONY: release
release: ## The release in dist/release: image, install.yaml and chart pinned by digest, SBOM, SHA256SUMS.
	$(GO) run ./hack/release -out dist/release -repository $(REPO) -arch $(ARCH) -version $(VERSION)

.PHONY: docker-build
docker-build: ## Build the operator image with Docker (same binary as make image, on distroless).
	docker build --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) -t $(IMG) .
