#!/usr/bin/env bash
# Sigil's test command: every test, on SQLite and on PostgreSQL, plus the headless Chromium
# test. Installs what is missing first. SIGIL_TEST_POSTGRES_URL names a PostgreSQL server the
# tests may create databases on (default: the local one, trust authentication).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export SIGIL_TEST_POSTGRES_URL="${SIGIL_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
exec cargo test "$@"
