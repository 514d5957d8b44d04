#!/usr/bin/env bash
# Installs the Debian packages Sigil's build and tests need, when they are missing: the
# OpenSSL development files (the default build links them; libpq is built from source), the
# PostgreSQL client and
# server (the outage test runs a private cluster with its initdb and pg_ctl),
# Chromium with its WebDriver (the browser test), and Debian's Python JOSE library (jwcrypto,
# for /usr/bin/python3): the JWE tests decrypt Sigil's tokens with an implementation of its own.
# Client-library tests: Authlib (Debian's python3-authlib) and openid-client from npm, pinned
# by tests/node/package-lock.json, with the machine's Node.js (Debian's when it has none).
# Prometheus (with promtool): tests/api/prometheus.rs scrapes a live Sigil and checks the
# alert rules in contrib/prometheus/.
# The package test: dpkg, systemd (systemd-analyze), binutils (strip) and cargo-deb, which is
# not in Debian and is compiled once, without optimisation (1.5 minutes against 4.7 for its
# LTO release build): the test packs with the system's gzip, so cargo-deb's own speed does not
# matter.
# nginx: the proxy test runs contrib/nginx/sigil.conf in front of two nodes.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo deb --version >/dev/null 2>&1; then
  echo "== cargo install cargo-deb"
  cargo install cargo-deb --locked --version 3.8.0 --debug
fi
install_node_modules() {
  if [ ! -d tests/node/node_modules/openid-client ]; then
    echo "== npm ci (tests/node: openid-client)"
    npm ci --prefix tests/node --no-audit --no-fund
  fi
}
need=()
for pkg in pkg-config libssl-dev postgresql-client postgresql chromium chromium-driver python3-jwcrypto python3-authlib python3-requests prometheus systemd binutils nginx; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
command -v node >/dev/null || need+=(nodejs npm)
if [ ${#need[@]} -eq 0 ]; then
  install_node_modules
  exit 0
fi
echo "== installing ${need[*]}"
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
$sudo apt-get update -q
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
install_node_modules
