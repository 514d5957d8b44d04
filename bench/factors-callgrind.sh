#!/usr/bin/env bash
# What the second step costs a sign-in, in instructions: the release server runs under
# valgrind's callgrind (which counts user-space instructions exactly, whatever else the machine
# is doing — unlike rates, which move 2× with load), signs in N password-only users, then N
# TOTP users (password + /login/factor), each in a fresh server, beside a server that signs in
# no one; per sign-in = (total − baseline) / N. Also reports what the audit event written at each
# sign-in costs (the inclusive count of the function that stores it). Run by hand, never in CI.
#
# Usage:  bash bench/factors-callgrind.sh            (N=10; needs valgrind)
#         N=5 SIGIL=path/to/sigil BENCH=path/to/factor_bench bash bench/factors-callgrind.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
N="${N:-10}"; PORT="${PORT:-3520}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
SIGIL="${SIGIL:-$TARGET/release/sigil}"; BENCH="${BENCH:-$TARGET/release/examples/factor_bench}"
ISSUER="http://127.0.0.1:$PORT"; WORK="$(mktemp -d -t sigil-factor-cg-XXXXXX)"
die() { echo "FAIL: $*" >&2; exit 1; }
[ -n "${NO_BUILD:-}" ] || (cd "$ROOT" && cargo build --release --bin sigil --example factor_bench)
command -v valgrind >/dev/null || die "valgrind is missing"
PID=""
cleanup() { [ -z "$PID" ] || kill -TERM "$PID" 2>/dev/null || true; }
trap cleanup EXIT
cat > "$WORK/sigil.toml" <<CONF
issuer = "$ISSUER"
bind = "127.0.0.1:$PORT"
database_url = "sqlite://$WORK/sigil.db"
[log]
level = "warn"
CONF
sig() { "$SIGIL" --config "$WORK/sigil.toml" "$@"; }
sig migrate > /dev/null 2>&1 || die "migrate"
printf '%s' '{"redirect_uris":["http://127.0.0.1:9/cb"],"grant_types":["authorization_code"],"scope":"openid","skip_consent":true,"client_name":"bench"}' \
  | sig client add --client-id bench --metadata - > "$WORK/client.json" || die "client add"
export CLIENT_SECRET; CLIENT_SECRET=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["client_secret"])' "$WORK/client.json")
export BENCH_PASSWORD; BENCH_PASSWORD="$(head -c18 /dev/urandom | base64 | tr -d '/+=')"
"$BENCH" setup --config "$WORK/sigil.toml" --pw-users "$N" --totp-users "$N" --secrets "$WORK/secrets" > /dev/null || die "setup"

# run KIND: a server under callgrind, N sign-ins of KIND (none for "none"); prints its total
run() {
  local kind=$1 out="$WORK/callgrind.$1"
  valgrind --tool=callgrind --callgrind-out-file="$out" "$SIGIL" --config "$WORK/sigil.toml" serve \
    > "$WORK/$kind.log" 2>&1 &
  PID=$!
  local deadline=$(( $(date +%s) + 120 ))
  until curl -sf -o /dev/null "$ISSUER/readyz"; do
    [ "$(date +%s)" -lt "$deadline" ] || die "no /readyz under valgrind"; sleep 0.5; done
  for i in $(seq 1 "$N"); do
    case $kind in
      password) "$BENCH" once --issuer "$ISSUER" --username "pw$i" > /dev/null || die "password sign-in $i" ;;
      totp) sed -n "${i}p" "$WORK/secrets" > "$WORK/one"
            "$BENCH" once --issuer "$ISSUER" --secrets "$WORK/one" > /dev/null || die "TOTP sign-in $i" ;;
    esac
  done
  kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  awk '/^(summary|totals):/ { print $2; exit }' "$out"
}
base=$(run none); pw=$(run password); totp=$(run totp)
# The audit event each sign-in writes (sigil::audit::Event::record, never inlined), inclusive
audit=$(callgrind_annotate --inclusive=yes --threshold=100 "$WORK/callgrind.password" 2>/dev/null \
  | awk '/audit::Event::record/ { gsub(",", "", $1); print $1; exit }')
python3 - "$N" "$base" "$pw" "$totp" "${audit:-0}" <<'PY'
import sys
n, base, pw, totp, audit = int(sys.argv[1]), *map(int, sys.argv[2:])
p, t = (pw - base) / n, (totp - base) / n
print(f"instructions per sign-in (user space, callgrind, {n} each): password-only {p/1e6:.1f} M, "
      f"TOTP {t/1e6:.1f} M; the second step costs {100 * (t - p) / p:.2f}% extra (goal < 5)")
print(f"the sign-in's audit event (Event::record, inclusive): {audit / n / 1e3:.0f} k instructions "
      f"= {100 * audit / n / p:.2f}% of a password-only sign-in (goal < 5)")
PY
