# source-constant-contact: Airbyte source for the Constant Contact V3 API.
#
#   docker build -t airbyte/source-constant-contact:dev .
#   docker run --rm airbyte/source-constant-contact:dev spec
#
# Builds unchanged with Docker (crates from crates.io) and with
# shared/tools/local-image.sh (offline: it adds vendor/ and a .cargo/config.toml
# to the context, which the COPY steps below carry along).
#
# RUST_VERSION defaults to the toolchain the project is developed and tested
# with (`rustc --version`); the crate's MSRV is `rust-version` in Cargo.toml.
ARG RUST_VERSION=1.95.0

# --- dependency manifest --------------------------------------------------------
# Only what decides the dependencies: the workspace's Cargo.toml files (the
# connector's at the root, the fake API's in fake-api/), Cargo.lock and, when
# present, .cargo/ and vendor/. Docker caches COPY --from by content, so the
# dependency layer below is reused until one of these changes.
FROM debian:bookworm-slim AS manifest
WORKDIR /build
COPY . .
RUN find . -mindepth 1 -maxdepth 1 \
        ! -name Cargo.toml ! -name Cargo.lock ! -name .cargo ! -name vendor ! -name fake-api \
        -exec rm -rf {} + \
 && find fake-api -mindepth 1 -maxdepth 1 ! -name Cargo.toml -exec rm -rf {} +

# --- build ------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /build
COPY --from=manifest /build/ ./
# Dependencies alone, against placeholder sources for both workspace crates
# (the connector's default `sandbox` feature links the fake API's library);
# then forget the placeholders so the real build below always recompiles the
# two crates themselves.
RUN mkdir -p src fake-api/src \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && echo 'fn main() {}' > fake-api/src/main.rs && touch fake-api/src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src fake-api/src \
           target/release/source-constant-contact* target/release/libsource_constant_contact* \
           target/release/deps/source_constant_contact-* target/release/deps/libsource_constant_contact-* \
           target/release/deps/constant_contact_fake-* target/release/deps/libconstant_contact_fake-* \
           target/release/.fingerprint/source-constant-contact-* \
           target/release/.fingerprint/constant-contact-fake-*
COPY . .
RUN cargo build --release --locked \
 && install -m 0755 target/release/source-constant-contact /usr/local/bin/source-constant-contact

# --- runtime ----------------------------------------------------------------------
# No ca-certificates: TLS is rustls with the webpki-roots bundle compiled in.
FROM debian:bookworm-slim
LABEL io.airbyte.name="airbyte/source-constant-contact" \
      io.airbyte.version="0.1.0" \
      org.opencontainers.image.title="source-constant-contact" \
      org.opencontainers.image.description="Airbyte source for the Constant Contact V3 API" \
      org.opencontainers.image.licenses="MIT"
RUN useradd --uid 10001 --user-group --create-home --home-dir /airbyte \
        --shell /usr/sbin/nologin airbyte
COPY --from=build /usr/local/bin/source-constant-contact /usr/local/bin/source-constant-contact
ENV AIRBYTE_ENTRYPOINT="/usr/local/bin/source-constant-contact"
WORKDIR /airbyte
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/source-constant-contact"]
