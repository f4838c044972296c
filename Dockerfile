# syntax=docker/dockerfile:1
# The operator image: a static binary on distroless, running as non-root.
#   make docker-build IMG=ghcr.io/aepoperator/capillary-operator:v0.1.0
# Without Docker, `make image` builds the release image (hack/image): the same
# binary (same flags, same version stamp; internal/release's tests hold this
# file to them) in an otherwise empty image.
# Multi-platform: docker buildx build --platform linux/amd64,linux/arm64 -t $IMG .

# Build on the host's platform and cross-compile: no emulation needed.
FROM --platform=$BUILDPLATFORM golang:1.26 AS builder
ARG TARGETOS=linux
ARG TARGETARCH=amd64
# The version stamp (make docker-build passes git's view of the checkout).
ARG VERSION=dev
ARG REVISION=unknown
WORKDIR /workspace

# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download

# Only what the manager binary is built from (see .dockerignore).
COPY main.go ./
COPY api/ api/
COPY controllers/ controllers/
COPY internal/ internal/

RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} GOFLAGS=-mod=readonly \
    go build -trimpath -buildvcs=false -ldflags="-s -w -X github.com/aepoperator/capillary-operator/internal/version.Version=${VERSION} -X github.com/aepoperator/capillary-operator/internal/version.Revision=${REVISION}" -o /out/manager .

# distroless/static: CA certificates and tzdata, no shell, no package manager.
FROM gcr.io/distroless/static:nonroot
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="capillary-operator" \
      org.opencontainers.image.description="Kubernetes operator connecting Capillary to Adobe Experience Platform" \
      org.opencontainers.image.source="https://github.com/aepoperator/capillary-operator" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
WORKDIR /
COPY --from=builder /out/manager /manager
# The nonroot user of distroless (matches runAsUser in the manifests).
USER 65532:65532
ENTRYPOINT ["/manager"]
