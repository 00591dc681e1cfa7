# approvd: the push-approval relay, as a container image.
#
#   podman build -t approvd .                       # compile in a Rust image, then a slim runtime
#   podman build --target runtime-prebuilt \
#     --build-arg APPROVD_BINARY=approvd -t approvd CONTEXT_WITH_BINARY
#                                                   # wrap a binary built elsewhere (no Rust image)
#
# The image runs as an unprivileged user, keeps its only state (the generated handle key, when
# no --handle-key-file is given) in the /var/lib/approvd volume, and works with a read-only root
# filesystem. deploy/test-image builds and runs it in podman on every test run.

ARG RUST_IMAGE=docker.io/library/rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim

# ---- builder: dependencies first (a cached layer), then the workspace ----
FROM ${RUST_IMAGE} AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY proto/Cargo.toml proto/Cargo.toml
COPY client/Cargo.toml client/Cargo.toml
COPY relay/Cargo.toml relay/build.rs relay/
COPY agent/Cargo.toml agent/Cargo.toml
COPY cli/Cargo.toml cli/Cargo.toml
COPY tests/Cargo.toml tests/Cargo.toml
COPY loadtest/Cargo.toml loadtest/Cargo.toml
COPY examples/signin-web/Cargo.toml examples/signin-web/Cargo.toml
COPY deploy/pam/Cargo.toml deploy/pam/Cargo.toml
COPY fuzz-targets/Cargo.toml fuzz-targets/Cargo.toml
# Empty targets so the manifests load; this layer only changes when a manifest or the lock does.
RUN for crate in proto client relay agent tests loadtest examples/signin-web deploy/pam fuzz-targets; do \
      mkdir -p $crate/src && echo > $crate/src/lib.rs; done \
 && for bin in cli/src/main.rs examples/signin-web/src/main.rs loadtest/src/main.rs; do \
      mkdir -p "$(dirname "$bin")" && echo 'fn main() {}' > "$bin"; done \
 && cargo fetch --locked
COPY . .
ARG APPROVD_GIT_SHA=unknown
RUN --mount=type=cache,target=/src/target \
    APPROVD_GIT_SHA=${APPROVD_GIT_SHA} cargo build --release --locked -p approvd --bin approvd \
 && install -m 0755 target/release/approvd /usr/local/bin/approvd

# ---- runtime-base: what both final images share ----
FROM ${RUNTIME_IMAGE} AS runtime-base
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/approvd --shell /usr/sbin/nologin approvd \
 && install -d -o approvd -g approvd -m 0700 /var/lib/approvd
# Options come from APPROVD_* variables (or flags after the image name); see docs/operations.md.
ENV APPROVD_BIND=0.0.0.0:8080 \
    APPROVD_DATA_DIR=/var/lib/approvd
VOLUME ["/var/lib/approvd"]
WORKDIR /var/lib/approvd
USER 10001:10001
EXPOSE 8080
# No curl in the image: the binary probes itself (it reads APPROVD_BIND for the port).
HEALTHCHECK --interval=10s --timeout=4s --start-period=5s --retries=3 \
    CMD ["approvd", "healthcheck"]
ENTRYPOINT ["approvd"]
CMD ["serve"]

# ---- runtime-prebuilt: an already built binary from the build context ----
FROM runtime-base AS runtime-prebuilt
ARG APPROVD_BINARY=target/release/approvd
COPY --chmod=0755 ${APPROVD_BINARY} /usr/local/bin/approvd

# ---- runtime (default): the binary compiled by the builder stage ----
FROM runtime-base AS runtime
COPY --from=builder /usr/local/bin/approvd /usr/local/bin/approvd
