# Build stage: compile a release binary with the full toolchain.
FROM rust:1.89-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY migrations migrations
COPY benches benches
RUN cargo build --release --locked --bin rouse

# Runtime stage: a small Debian with CA certificates (providers are reached over TLS).
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/rouse --create-home rouse
COPY --from=build /src/target/release/rouse /usr/local/bin/rouse
COPY rotations /etc/rouse/rotations
ENV ROUSE_LISTEN=0.0.0.0:8080 \
    ROUSE_DATABASE_URL=sqlite:///var/lib/rouse/rouse.db \
    ROUSE_ROTATIONS_DIR=/etc/rouse/rotations
VOLUME ["/var/lib/rouse"]
USER rouse
WORKDIR /var/lib/rouse
EXPOSE 8080
ENTRYPOINT ["rouse"]
CMD ["serve"]
