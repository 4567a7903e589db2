# Multi-stage build: compile in the official Rust image, run in a small non-root image.
FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits do not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked --bin velochat || true
COPY . .
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin velochat

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/velochat /usr/local/bin/velochat
# The SQLite file lives in a writable volume; use a postgres:// DATABASE_URL for replicas.
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
