# Sigil in a container. UNTESTED: no container engine runs where Sigil is developed and tested
# (see README, "Install: Debian package, systemd, container"); the health check's command was
# run by hand against the real binary, the image never built.
#
#   docker build -t sigil .
#   docker run -d -p 8080:8080 -v sigil-data:/var/lib/sigil \
#     -e SIGIL_ISSUER=https://id.example.com sigil
#
# The database (SQLite) and its master key live in the volume /var/lib/sigil: back them up
# together. Configure through SIGIL_* variables, or mount a file and name it:
#   -v ./sigil.toml:/etc/sigil/sigil.toml:ro -e SIGIL_CONFIG=/etc/sigil/sigil.toml
# Management commands run in the same container: docker exec CONTAINER sigil user list

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin sigil

FROM debian:bookworm-slim
# The binary links OpenSSL 3 and glibc (SQLite and libpq are built in); CA certificates for the
# requests Sigil makes (client jwks_uri, back-channel logout).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libssl3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --user-group --uid 10001 --home-dir /var/lib/sigil \
        --shell /usr/sbin/nologin sigil \
    && install -d -o sigil -g sigil -m 0700 /var/lib/sigil
COPY --from=build /src/target/release/sigil /usr/bin/sigil

USER sigil:sigil
WORKDIR /var/lib/sigil
# Listen on every interface of the container; the issuer (SIGIL_ISSUER) must be set by whoever
# runs the image, to the URL browsers use.
ENV SIGIL_BIND=0.0.0.0:8080 \
    SIGIL_DATABASE_URL=sqlite:///var/lib/sigil/sigil.db
VOLUME /var/lib/sigil
EXPOSE 8080

# /readyz answers 200 once the database is reachable. The slim image has no curl; bash (always
# there) speaks the one request over /dev/tcp. Plain HTTP on port 8080: adjust it if
# SIGIL_BIND moves the port, and drop it when Sigil serves TLS itself (tls.cert).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /readyz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]

ENTRYPOINT ["/usr/bin/sigil"]
CMD ["serve"]
