# Multi-stage build: compile in the official Rust image, run in a small non-root image.
FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits do not rebuild them.
COPY Cargo.toml Cargo.lock ./
# The manifest names the test target too, so its file must exist for this dependency-only build.
RUN mkdir -p src tests/api && echo 'fn main() {}' > src/main.rs && touch src/lib.rs tests/api/main.rs \
    && cargo build --release --locked --bin velochat
COPY . .
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin velochat \
    && mkdir -p /data

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/velochat /usr/local/bin/velochat
# The SQLite file lives in a volume the non-root user (65532 in distroless) can write; use a
# postgres:// DATABASE_URL for replicas.
COPY --from=build --chown=65532:65532 /data /data
WORKDIR /data
VOLUME ["/data"]
ENV VELOCHAT_ADDR=0.0.0.0:8080 \
    DATABASE_URL=sqlite:///data/velochat.db
EXPOSE 8080
USER nonroot:nonroot
# distroless has no curl: the binary checks itself.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["/usr/local/bin/velochat", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/velochat"]
CMD ["serve"]
