#!/usr/bin/env bash
# Sign-ins per second with a TOTP second step beside password-only ones, and idle RSS (issue
# 11), run by hand (never in CI), on SQLite by default. Drives a release build of Sigil with
# examples/factor_bench.rs (see its top for the exact requests) and reports:
#   rss       a fresh server on a new, empty SQLite database (one client, one password user and
#             one TOTP user, added before it starts): VmRSS 2 s after /readyz (goal < 20 MiB),
#             right after one password sign-in, right after one TOTP sign-in, and 15 s later
#             (the password threads let argon2's memory go after 10 s idle)
#   signins   ROUNDS rounds, each: WORKERS browsers signing in password-only users for WARMUP +
#             DUR, then TOTP users (password + /login/factor) the same way; rates, p50/p99, the
#             server's CPU per sign-in, the load average; the TOTP rate over the password-only
#             rate (goal >= 0.95, i.e. the second step costs < 5% extra)
#
# Usage:  bash bench/factors.sh
#         DUR=5s ROUNDS=1 TOTP_USERS=500 bash bench/factors.sh         (a quick check)
#
# Env knobs [defaults]: WORKERS [8]  DUR [20s]  WARMUP [3s]  ROUNDS [2]  ONLY ["rss signins"]
#   PW_USERS [500]  TOTP_USERS [4000] (each TOTP code counts once per user and 30 s step: at
#   ~150 sign-ins/s a round of 23 s takes about 1,200 users, three sign-ins each)
#   BACKEND [sqlite|postgres; sqlite] (the RSS check is always SQLite)  PORT [3500]
#   PG_URL [postgres://postgres@127.0.0.1:5432/postgres]  QUIET_WAIT_S [0]
#   CARGO_TARGET_DIR [ROOT/target]  RESULTS_DIR [WORK_DIR/results]  NO_BUILD [] (1 = use the
#   binaries already built)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
WORKERS="${WORKERS:-8}"; DUR="${DUR:-20s}"; WARMUP="${WARMUP:-3s}"; ROUNDS="${ROUNDS:-2}"
ONLY="${ONLY:-rss signins}"; PW_USERS="${PW_USERS:-500}"; TOTP_USERS="${TOTP_USERS:-4000}"
BACKEND="${BACKEND:-sqlite}"; PORT="${PORT:-3500}"; QUIET_WAIT_S="${QUIET_WAIT_S:-0}"
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
WORK_DIR="$(mktemp -d -t sigil-factor-bench-XXXXXX)"
RESULTS_DIR="${RESULTS_DIR:-$WORK_DIR/results}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
ISSUER="http://127.0.0.1:$PORT"
SIGIL="$TARGET/release/sigil"
BENCH="$TARGET/release/examples/factor_bench"
REDIRECT_URI="http://127.0.0.1:9/cb"
mkdir -p "$RESULTS_DIR"
SUMMARY="$RESULTS_DIR/summary.jsonl"; : > "$SUMMARY"
die() { echo "FAIL: $*" >&2; exit 1; }

if [ -z "${NO_BUILD:-}" ]; then
  echo "== building sigil and examples/factor_bench (release)"
  (cd "$ROOT" && cargo build --release --bin sigil --example factor_bench)
fi

PID=""; DB=""
cleanup() {
  [ -z "$PID" ] || { kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }
  [ -z "$DB" ] || psql "$PG_URL" -qc "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
wait_http() { local deadline=$(( $(date +%s) + $2 )); until curl -sf -o /dev/null "$1"; do
  [ "$(date +%s)" -lt "$deadline" ] || return 1; sleep 0.05; done; }
kb() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
stop_server() { kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; PID=""; }

# write_config DIR DB_URL: the server's configuration (127.0.0.1 trusted as a proxy: each
# browser of the bench comes from an address of its own through X-Forwarded-For).
write_config() {
  cat > "$1/sigil.toml" <<EOF
issuer = "$ISSUER"
bind = "127.0.0.1:$PORT"
database_url = "$2"

[http]
trusted_proxies = ["127.0.0.1"]

[log]
level = "warn"
EOF
}

# prepare DIR: migrate, client "bench" (skip_consent); sets SECRET
prepare() {
  sig "$1" migrate > "$RESULTS_DIR/migrate.log" 2>&1 || { cat "$RESULTS_DIR/migrate.log" >&2; die "sigil migrate"; }
  printf '%s' '{"redirect_uris":["'"$REDIRECT_URI"'"],"grant_types":["authorization_code"],"scope":"openid","skip_consent":true,"client_name":"bench"}' \
    | sig "$1" client add --client-id bench --metadata - > "$1/client.json" || die "client add"
  SECRET=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["client_secret"])' "$1/client.json")
}
key_env=()
sig() { local dir=$1; shift; env "${key_env[@]}" "$SIGIL" --config "$dir/sigil.toml" "$@"; }
serve() { # DIR LOG
  env "${key_env[@]}" "$SIGIL" --config "$1/sigil.toml" serve >> "$2" 2>&1 &
  PID=$!
  wait_http "$ISSUER/readyz" 30 || { cat "$2" >&2; die "no /readyz"; }
  kill -0 "$PID" 2>/dev/null || { cat "$2" >&2; die "sigil exited (port $PORT busy?)"; }
}
PW="$(head -c18 /dev/urandom | base64 | tr -d '/+=')"
export BENCH_PASSWORD="$PW"
{ "$SIGIL" --version; echo "git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (with local changes)')"; } > "$RESULTS_DIR/versions.txt"

if [[ " $ONLY " == *" rss "* ]]; then
  dir="$WORK_DIR/rss"; mkdir -p "$dir"
  write_config "$dir" "sqlite://$dir/sigil.db"
  prepare "$dir"
  "$BENCH" setup --config "$dir/sigil.toml" --pw-users 1 --totp-users 1 --secrets "$dir/secrets" \
    || die "factor_bench setup (rss)"
  echo "== rss: a fresh server on an empty SQLite database"
  serve "$dir" "$RESULTS_DIR/rss.sigil.log"
  sleep 2; idle=$(kb "$PID" VmRSS)
  CLIENT_SECRET="$SECRET" "$BENCH" once --issuer "$ISSUER" --username pw1 || die "one password sign-in"
  after_pw=$(kb "$PID" VmRSS)
  CLIENT_SECRET="$SECRET" "$BENCH" once --issuer "$ISSUER" --secrets "$dir/secrets" || die "one TOTP sign-in"
  after_totp=$(kb "$PID" VmRSS)
  sleep 15; later=$(kb "$PID" VmRSS); hwm=$(kb "$PID" VmHWM)
  echo "{\"name\":\"rss\",\"idle_mib\":$(mib "$idle"),\"after_password_signin_mib\":$(mib "$after_pw"),\"after_totp_signin_mib\":$(mib "$after_totp"),\"15s_later_mib\":$(mib "$later"),\"hwm_mib\":$(mib "$hwm")}" \
    | tee -a "$SUMMARY"
  stop_server
fi

if [[ " $ONLY " == *" signins "* ]]; then
  dir="$WORK_DIR/signins"; mkdir -p "$dir"
  if [ "$BACKEND" = postgres ]; then
    DB="sigil_factors_$(head -c6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    psql "$PG_URL" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE \"$DB\"" >/dev/null || die "CREATE DATABASE"
    db_url="${PG_URL%/*}/$DB"; key_env=("SIGIL_MASTER_KEY=$(head -c32 /dev/urandom | base64)")
  else
    db_url="sqlite://$dir/sigil.db"
  fi
  write_config "$dir" "$db_url"
  prepare "$dir"
  echo "== adding $PW_USERS password-only and $TOTP_USERS TOTP users ($BACKEND)"
  env "${key_env[@]}" "$BENCH" setup --config "$dir/sigil.toml" --pw-users "$PW_USERS" \
    --totp-users "$TOTP_USERS" --secrets "$dir/secrets" || die "factor_bench setup"
  serve "$dir" "$RESULTS_DIR/sigil.log"
  sleep 0.5
  CLIENT_SECRET="$SECRET" "$BENCH" run --issuer "$ISSUER" --secrets "$dir/secrets" \
    --pw-users "$PW_USERS" --workers "$WORKERS" --duration "$DUR" --warmup "$WARMUP" \
    --rounds "$ROUNDS" --quiet-wait "$QUIET_WAIT_S" --server-pid "$PID" --label "$BACKEND" \
    2> >(tee "$RESULTS_DIR/run.err" >&2) | tee "$RESULTS_DIR/run.out"
  kill -0 "$PID" 2>/dev/null || { tail -n 50 "$RESULTS_DIR/sigil.log" >&2; die "sigil died"; }
  grep '^{' "$RESULTS_DIR/run.out" >> "$SUMMARY" || true
  curl -s "$ISSUER/metrics" | grep -E '^sigil_(password|login)' > "$RESULTS_DIR/metrics" || true
  stop_server
  if grep -qiE 'WARN|ERROR' "$RESULTS_DIR/sigil.log"; then
    echo "   server warnings/errors ($RESULTS_DIR/sigil.log):"; grep -iE 'WARN|ERROR' "$RESULTS_DIR/sigil.log" | sort | uniq -c | sort -rn | head -n 5
  fi
fi

echo
echo "== results ($(nproc) cores shared by the load generator and the server; $RESULTS_DIR)"
cat "$RESULTS_DIR/versions.txt"
python3 - "$SUMMARY" <<'EOF'
import json, sys
for d in (json.loads(l) for l in open(sys.argv[1]) if l.strip()):
    if d["name"] == "rss":
        print(f"[rss, sqlite] idle {d['idle_mib']} MiB (goal < 20); after one password sign-in {d['after_password_signin_mib']} MiB,"
              f" after one TOTP sign-in {d['after_totp_signin_mib']} MiB, 15 s later {d['15s_later_mib']} MiB (peak {d['hwm_mib']})")
    elif d["name"] in ("password", "totp"):
        s = d["signins"]
        extra = ""
        if d["name"] == "totp":
            t = d["second_step"]
            extra = f"; second step alone p50 {t['p50_ms']} ms, p99 {t['p99_ms']} ms; stalls {d['stalls']}"
        print(f"[{d['label']} round {d['round']}] {d['name']:8} {d['per_s']:7}/s  p50 {s['p50_ms']} ms  p99 {s['p99_ms']} ms  errors {s['errors']}"
              f"  server CPU {s.get('srv_cpu_pct')}% = {s.get('srv_cpu_ms_per_signin')} ms/sign-in  gen {s.get('gen_cpu_pct')}%  other {s.get('other_cpu_pct')}%"
              f"  load {d['load_before']} -> {d['load_after']}{extra}")
        if s.get("first_error"): print(f"   first error: {s['first_error']}")
    elif d["name"] == "summary":
        print(f"[{d['label']}] TOTP / password-only: {d['totp_over_password']} (per round {d['totp_over_password_per_round']});"
              f" the second step costs {d['extra_cost_pct']}% extra (goal < 5: {'met' if d['goal_met'] else 'NOT met'})")
EOF
