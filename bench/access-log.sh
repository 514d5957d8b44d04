#!/usr/bin/env bash
# What the access log costs (issue 14, item 3), run by hand (never in CI): one release Sigil on
# SQLite, its log going to a file as it would to journald, under wrk on the cheapest endpoint
# (discovery: the log line is the largest share of its work there) and on client_credentials
# at /token (RS256 signing). Each configuration is run ROUNDS times, interleaved (off, human,
# json, off, ...), so that a drift of the machine shows up in every one of them.
#
# Usage:  bash bench/access-log.sh
# Env knobs [defaults]: DUR [10s]  ROUNDS [3]  CONNS [32]  THREADS [1]  PORT [3460]
#   BIN [CARGO_TARGET_DIR or ROOT/target]/release/sigil  SHARED_BENCH [ROOT/../shared/bench]
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
DUR="${DUR:-10s}"; ROUNDS="${ROUNDS:-3}"; CONNS="${CONNS:-32}"; THREADS="${THREADS:-1}"
PORT="${PORT:-3460}"
SIGIL="${BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/sigil}"
SHARED_BENCH="${SHARED_BENCH:-$ROOT/../shared/bench}"
[ -x "$SIGIL" ] || { echo "no release build at $SIGIL (cargo build --release, or set BIN)" >&2; exit 1; }
[ -f "$SHARED_BENCH/wrk-get.lua" ] || { echo "wrk scripts not found in $SHARED_BENCH" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is missing (apt-get install wrk)" >&2; exit 1; }

WORK_DIR="$(mktemp -d -t sigil-access-log-XXXXXX)"
PID=""
cleanup() { [ -z "$PID" ] || kill "$PID" 2>/dev/null || true; rm -rf "$WORK_DIR"; }
trap cleanup EXIT
URL="http://127.0.0.1:$PORT"
export SIGIL_DATABASE_URL="sqlite://$WORK_DIR/sigil.db" SIGIL_ISSUER="$URL" SIGIL_BIND="127.0.0.1:$PORT"

"$SIGIL" migrate > /dev/null
echo '{"grant_types":["client_credentials"],"scope":"api:read","client_name":"bench"}' \
  | "$SIGIL" client add --client-id bench --metadata - > "$WORK_DIR/client.json"
CLIENT_SECRET=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["client_secret"])' "$WORK_DIR/client.json")
export CLIENT_ID=bench CLIENT_SECRET WRK_BODY="grant_type=client_credentials&scope=api%3Aread"

serve() { # access format
  SIGIL_LOG__ACCESS="$1" SIGIL_LOG__FORMAT="$2" "$SIGIL" serve > "$WORK_DIR/sigil.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 100); do curl -fs "$URL/readyz" > /dev/null && return 0; sleep 0.1; done
  cat "$WORK_DIR/sigil.log" >&2; exit 1
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""; }
rps() { # wrk args... → requests/s; any non-2xx answer or socket error stops the run
  local out; out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DUR" "$@" | sed -n 's/^WRKJSON //p')
  python3 -c 'import json,sys; s=json.loads(sys.argv[1]); bad=s["non2xx"]+s["err_connect"]+s["err_read"]+s["err_write"]+s["err_timeout"]; sys.exit("%d failed requests" % bad) if bad else print(round(s["rps"]))' "$out"
}

"$SIGIL" --version
printf '%-22s %-10s %14s %14s %12s\n' configuration round discovery/s token/s "log bytes"
for round in $(seq 1 "$ROUNDS"); do
  for conf in "false human" "true human" "true json"; do
    read -r access format <<< "$conf"
    serve "$access" "$format"
    d=$(rps -s "$SHARED_BENCH/wrk-get.lua" "$URL/.well-known/openid-configuration")
    t=$(rps -s "$SHARED_BENCH/wrk-client-credentials.lua" "$URL/token")
    bytes=$(stat -c %s "$WORK_DIR/sigil.log")
    stop
    label="access=$access"; [ "$access" = false ] || label="$label $format"
    printf '%-22s %-10s %14s %14s %12s\n' "$label" "$round" "$d" "$t" "$bytes"
  done
done
