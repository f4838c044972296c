#!/usr/bin/env bash
# Builds the envtest control plane (kube-apiserver, etcd) from the Go module proxy.
#
# The usual download site for envtest binaries is not reachable from our build
# machines, so we compile them from source. The result goes into the folder
# setup-envtest itself uses, so the two are interchangeable. Builds happen in a
# temporary folder and are moved into place at the end: an interrupted build
# never leaves a half-written binary behind.
#
# Prints the assets folder on stdout (for KUBEBUILDER_ASSETS); progress on stderr.
set -euo pipefail

K8S_VERSION="${ENVTEST_K8S_VERSION:-1.37.2}"
ETCD_VERSION="${ENVTEST_ETCD_VERSION:-3.7.3}"
GOOS_ARCH="$(go env GOOS)-$(go env GOARCH)"

if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
  if [[ -x "${KUBEBUILDER_ASSETS}/kube-apiserver" && -x "${KUBEBUILDER_ASSETS}/etcd" ]]; then
    echo "${KUBEBUILDER_ASSETS}"
    exit 0
  fi
  echo "KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS} lacks kube-apiserver or etcd" >&2
  exit 1
fi

DEST="${XDG_DATA_HOME:-$HOME/.local/share}/kubebuilder-envtest/k8s/${K8S_VERSION}-${GOOS_ARCH}"
if [[ -x "${DEST}/kube-apiserver" && -x "${DEST}/etcd" ]]; then
  echo "${DEST}"
  exit 0
fi

mkdir -p "${DEST}"
WORK="$(mktemp -d "${DEST}.build.XXXXXX")"
trap 'rm -rf "${WORK}"' EXIT

log() { printf '[envtest] %s\n' "$*" >&2; }

build_etcd() {
  local mod="${WORK}/etcd"
  mkdir -p "${mod}"
  (
    cd "${mod}"
    go mod init envtest-etcd >/dev/null 2>&1
    go mod edit -require="go.etcd.io/etcd/server/v3@v${ETCD_VERSION}"
    GOFLAGS=-mod=mod go mod download go.etcd.io/etcd/server/v3
    GOFLAGS=-mod=mod go get "go.etcd.io/etcd/server/v3@v${ETCD_VERSION}" >&2
    CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -o "${WORK}/bin/etcd" go.etcd.io/etcd/server/v3
  )
}

build_apiserver() {
  local mod="${WORK}/kube"
  mkdir -p "${mod}"
  (
    cd "${mod}"
    go mod init envtest-kube-apiserver >/dev/null 2>&1
    go mod edit -require="k8s.io/kubernetes@v${K8S_VERSION}"
    # k8s.io/kubernetes replaces its staging modules with local paths; a consumer
    # must pin each one to the published tag instead. Read the list from the
    # downloaded go.mod so it never goes stale.
    local gomod
    gomod="$(GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@v${K8S_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
    local staging
    staging="$(sed -n 's#^[[:space:]]*\(k8s.io/[^[:space:]]*\) => \./staging/src/.*#\1#p' "${gomod}")"
    local minor="${K8S_VERSION#1.}"
    for m in ${staging}; do
      go mod edit -replace="${m}=${m}@v0.${minor}"
    done
    GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true
    local major="${K8S_VERSION%%.*}"
    local minorv="${minor%%.*}"
    GOFLAGS=-mod=mod go get "k8s.io/kubernetes/cmd/kube-apiserver@v${K8S_VERSION}" >&2
    CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath \
      -ldflags "-X k8s.io/component-base/version.gitVersion=v${K8S_VERSION} -X k8s.io/component-base/version.gitMajor=${major} -X k8s.io/component-base/version.gitMinor=${minorv}" \
      -o "${WORK}/bin/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
  )
}

# Each binary is moved into place as soon as it is whole, so an interrupted
# kube-apiserver build keeps the finished etcd.
mkdir -p "${WORK}/bin"
if [[ ! -x "${DEST}/etcd" ]]; then
  log "building etcd v${ETCD_VERSION} from the Go module proxy (about a minute)"
  build_etcd
  mv -f "${WORK}/bin/etcd" "${DEST}/etcd"
fi
if [[ ! -x "${DEST}/kube-apiserver" ]]; then
  log "building kube-apiserver v${K8S_VERSION} from the Go module proxy (about 10 minutes the first time)"
  build_apiserver
  mv -f "${WORK}/bin/kube-apiserver" "${DEST}/kube-apiserver"
fi
log "envtest binaries ready in ${DEST}"
echo "${DEST}"
