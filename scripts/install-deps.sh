#!/usr/bin/env bash
# Installs the Debian packages Sigil's build and tests need, when they are missing: the
# OpenSSL development files (the default build links them; libpq is built from source), the
# PostgreSQL client and
# server (the outage test runs a private cluster with its initdb and pg_ctl),
# Chromium with its WebDriver (the browser test), and Debian's Python JOSE library (jwcrypto,
# for /usr/bin/python3): the JWE tests decrypt Sigil's tokens with an implementation of its own.
set -euo pipefail
need=()
for pkg in pkg-config libssl-dev postgresql-client postgresql chromium chromium-driver python3-jwcrypto; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0
echo "== installing ${need[*]}"
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
$sudo apt-get update -q
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
