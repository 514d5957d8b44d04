#!/usr/bin/env bash
# Installs the Debian packages Sigil's build and tests need, when they are missing: the
# OpenSSL and libpq development files (the default build links them), the PostgreSQL client,
# and Chromium with its WebDriver (the browser test).
set -euo pipefail
need=()
for pkg in pkg-config libssl-dev libpq-dev postgresql-client chromium chromium-driver; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0
echo "== installing ${need[*]}"
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
$sudo apt-get update -q
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
