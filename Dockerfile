# syntax=docker/dockerfile:1.7
# One multi-stage build for every metal-harness binary. Dependencies are compiled in their own layer
# (cargo-chef), so a source change rebuilds only the workspace crates. The runtime is distroless
# (glibc + CA certificates, no shell), runs as uid 65532 and works with a read-only root filesystem.
# Without registry access, hack/container-images.sh builds the same runtime stages (everything below the
# "runtime images" line) from a base made locally with debootstrap and binaries built on the host.
#
#   docker build --target metal-operator -t metal-harness/metal-operator:dev .
#   docker build --target sim-boot       -t metal-harness/sim-boot:dev .
#   docker build --target sim-bmc        -t metal-harness/sim-bmc:dev .
#   docker build --target conformance    -t metal-harness/conformance:dev .
#   docker build --target apiserver      -t metal-harness/apiserver:dev .
#   docker build --target metal-harness  -t metal-harness/metal-harness:dev .
#   docker build --build-arg BIN=sim-boot -t metal-harness/sim-boot:dev .   # same, via the default target

ARG RUST_VERSION=1.95
ARG CARGO_CHEF_VERSION=0.1.71
# The runtime base: glibc, CA certificates, a `nonroot` user 65532, nothing else.
ARG BASE_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS chef
ARG CARGO_CHEF_VERSION
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
WORKDIR /src

# The dependency graph only (Cargo.toml/Cargo.lock skeleton): changes to source files do not invalidate it.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    cargo build --release --locked \
      --bin metal-operator --bin sim-boot --bin sim-bmc --bin sim-bmc-netboot --bin conformance --bin apiserver \
      --bin metal-harness \
 && mkdir -p /out \
 && cp target/release/metal-operator target/release/sim-boot target/release/sim-bmc target/release/sim-bmc-netboot \
       target/release/conformance target/release/apiserver target/release/metal-harness /out/

# ---- runtime images: hack/container-images.sh reuses the runtime stage and each image's stage, with `COPY --from=builder
# /out/X` read as `COPY X` from a directory of host-built binaries; keep them free of other build stages.
FROM ${BASE_IMAGE} AS runtime
USER 65532:65532
WORKDIR /

FROM runtime AS metal-operator
COPY --from=builder /out/metal-operator /usr/local/bin/metal-operator
EXPOSE 8080 8081 10000
ENTRYPOINT ["/usr/local/bin/metal-operator"]

FROM runtime AS sim-boot
COPY --from=builder /out/sim-boot /usr/local/bin/sim-boot
EXPOSE 8082 5000
ENTRYPOINT ["/usr/local/bin/sim-boot"]

# sim-bmc's flags, with machines that network-boot from the fleet file's bootNetwork URLs (crate netboot);
# plain `sim-bmc` machines have no boot server, so discovery could never finish in a cluster.
FROM runtime AS sim-bmc
COPY --from=builder /out/sim-bmc-netboot /usr/local/bin/sim-bmc-netboot
EXPOSE 8000 9000
ENTRYPOINT ["/usr/local/bin/sim-bmc-netboot"]

FROM runtime AS conformance
COPY --from=builder /out/conformance /usr/local/bin/conformance
ENTRYPOINT ["/usr/local/bin/conformance"]

FROM runtime AS apiserver
COPY --from=builder /out/apiserver /usr/local/bin/apiserver
EXPOSE 6443
ENTRYPOINT ["/usr/local/bin/apiserver"]

FROM runtime AS metal-harness
COPY --from=builder /out/metal-harness /usr/local/bin/metal-harness
ENTRYPOINT ["/usr/local/bin/metal-harness"]

# Default target: the binary named by --build-arg BIN (metal-operator unless set).
FROM runtime AS by-arg
ARG BIN=metal-operator
COPY --from=builder /out/${BIN} /usr/local/bin/app
ENTRYPOINT ["/usr/local/bin/app"]
