# invstream in a container image: built with Rust, run on a slim Debian as a user without
# privileges. From the repository root:
#   docker build --build-arg GIT_COMMIT=$(git rev-parse --short HEAD) -t invstream .
#   docker run --rm --network host invstream produce
# (the build context has no .git: GIT_COMMIT is what `invstream --version` names, else unknown).
# docker-compose.yml runs it beside the broker: `docker-compose --profile tools run --rm invstream`.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# The vendored client crates are path dependencies: the whole workspace is copied.
COPY . .
ARG GIT_COMMIT=
ENV INVSTREAM_GIT_COMMIT=$GIT_COMMIT CARGO_PROFILE_RELEASE_STRIP=symbols
RUN cargo build --release --locked --bin invstream \
    && cp target/release/invstream /usr/local/bin/invstream

FROM debian:bookworm-slim
# CA certificates, for brokers whose TLS certificate a public CA signed
# (--tls-ca-cert /etc/ssl/certs/ca-certificates.crt).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --create-home --home-dir /home/invstream invstream
COPY --from=build /usr/local/bin/invstream /usr/local/bin/invstream
USER invstream
# Files a run writes (--plot, --hdr-log, bench exports) land here: mount a volume to keep them.
WORKDIR /home/invstream
ENTRYPOINT ["invstream"]
CMD ["--help"]
