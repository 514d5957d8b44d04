#!/usr/bin/env bash
# Sigil benchmark, run by hand (never in CI). Loads a release build of Sigil with wrk on
# loopback, with the same wrk settings and Lua scripts as ../shared/bench/peer-bench.sh, plus a
# "ceiling": a bare actix-web handler (examples/bare_actix.rs) returning the exact bytes Sigil
# returned for discovery and JWKS. DESIGN.md "Performance" asks discovery/JWKS for at least 80%
# of that ceiling. Run it in the same sitting as peer-bench.sh and compare ratios, not absolutes.
#
# Usage:  bash bench/run.sh        (from anywhere; the repo root is found from this file)
#         DUR=2s WARMUP=1s STARTUP_TRIALS=2 bash bench/run.sh       (a quick check)
#
# Installs wrk (apt) when missing, builds `sigil` and the bare_actix example (release), works in
# a fresh temporary directory (config, SQLite database, master key), registers client "bench"
# (client_credentials, scope api:read), measures cold starts, then runs wrk. Every server it
# starts is stopped by its PID on exit.
#
# Env knobs (defaults in brackets):
#   DUR [15s]  THREADS [2]  CONNS [50]  WARMUP [3s] (unrecorded wrk run before each test)
#   STARTUP_TRIALS [5]    cold starts of `sigil serve` on the migrated database -> first 200 from /readyz
#   PORT [3100]           Sigil's port; the bare actix-web ceiling uses PORT+1
#   ONLY [all]            space-separated test names, e.g. "discovery bare_actix_discovery"
#   RESULTS_DIR [WORK_DIR/results]  summary.jsonl, wrk outputs, server logs, saved bodies
#   QUIET_WAIT_S [180]    before each test wait (at most this long) until the machine is idle
#                         (<15% busy over 1 s), as peer-bench.sh does; 0 = don't wait
#   PIN [0]               1 = server pinned to CPU 1, wrk to CPU 0 (taskset)
#   SHARED_BENCH [REPO/../shared/bench]  where wrk-get.lua and wrk-client-credentials.lua live
#
# Tests: discovery, jwks, token_cc_es256 (server started with tokens.access_token_alg = ES256),
# introspection_es256, token_cc_rs256 (restarted with RS256), introspection_rs256,
# bare_actix_discovery, bare_actix_jwks.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
SHARED_BENCH="${SHARED_BENCH:-$ROOT/../shared/bench}"
[ -f "$SHARED_BENCH/wrk-get.lua" ] && [ -f "$SHARED_BENCH/wrk-client-credentials.lua" ] \
  || { echo "wrk scripts not found in $SHARED_BENCH (set SHARED_BENCH)" >&2; exit 1; }
SHARED_BENCH="$(cd "$SHARED_BENCH" && pwd)"

DUR="${DUR:-15s}"; THREADS="${THREADS:-2}"; CONNS="${CONNS:-50}"; WARMUP="${WARMUP:-3s}"
STARTUP_TRIALS="${STARTUP_TRIALS:-5}"; PORT="${PORT:-3100}"; BARE_PORT=$((PORT + 1))
QUIET_WAIT_S="${QUIET_WAIT_S:-180}"; PIN="${PIN:-0}"; ONLY="${ONLY:-}"
WORK_DIR="$(mktemp -d -t sigil-bench-XXXXXX)"
RESULTS_DIR="${RESULTS_DIR:-$WORK_DIR/results}"
ISSUER="http://127.0.0.1:$PORT"
BARE_URL="http://127.0.0.1:$BARE_PORT"
CONFIG="$WORK_DIR/sigil.toml"
SIGIL="$ROOT/target/release/sigil"
BARE="$ROOT/target/release/examples/bare_actix"
TOKEN_BODY="grant_type=client_credentials&scope=api%3Aread"
CLK_TCK="$(getconf CLK_TCK)"
export SIGIL_LOG__LEVEL="${SIGIL_LOG__LEVEL:-warn}"

mkdir -p "$RESULTS_DIR"
SUMMARY="$RESULTS_DIR/summary.jsonl"; : > "$SUMMARY"
if [ "$PIN" = 1 ]; then SRV_PIN=(taskset -c 1); WRK_PIN=(taskset -c 0); else SRV_PIN=(); WRK_PIN=(); fi
source "$HERE/lib.sh"

# ---------------------------------------------------------------- install and build
if ! command -v wrk >/dev/null 2>&1; then
  echo "== installing wrk (apt)"; apt-get update -q && apt-get install -y -q wrk
fi
for tool in curl python3; do command -v "$tool" >/dev/null 2>&1 || die "$tool is needed"; done
echo "== building sigil and examples/bare_actix (release)"
(cd "$ROOT" && cargo build --release --bin sigil --example bare_actix)

# ---------------------------------------------------------------- process helpers (bench/lib.sh)
trap cleanup EXIT
trap 'exit 130' INT TERM

write_config() { # access_token_alg
  cat > "$CONFIG" <<EOF
issuer = "$ISSUER"
bind = "127.0.0.1:$PORT"
database_url = "sqlite://$WORK_DIR/sigil.db"

[tokens]
access_token_alg = "$1"
EOF
}

start_sigil() { # log_name -> sets SIGIL_PID
  port_free "$PORT" || die "port $PORT busy"
  "${SRV_PIN[@]}" "$SIGIL" --config "$CONFIG" serve >> "$RESULTS_DIR/$1.log" 2>&1 &
  SIGIL_PID=$!; PIDS+=("$SIGIL_PID")
}
sigil_ready() { # log_name
  wait_http "$ISSUER/readyz" 30 || { cat "$RESULTS_DIR/$1.log" >&2; die "sigil did not answer 200 on /readyz within 30 s"; }
  kill -0 "$SIGIL_PID" 2>/dev/null || { cat "$RESULTS_DIR/$1.log" >&2; die "sigil exited (another process on port $PORT?)"; }
}

start_bare() { # body_file log_name -> sets BARE_PID
  port_free "$BARE_PORT" || die "port $BARE_PORT busy"
  BODY_FILE="$1" PORT="$BARE_PORT" "${SRV_PIN[@]}" "$BARE" > "$RESULTS_DIR/$2.log" 2>&1 &
  BARE_PID=$!; PIDS+=("$BARE_PID")
  wait_http "$BARE_URL/" 10 || { cat "$RESULTS_DIR/$2.log" >&2; die "bare_actix did not start"; }
}

check_token() { # expected_alg: one real request, must be a 200 with an access_token signed with alg
  local code
  code=$(curl -s -o "$RESULTS_DIR/token-$1.json" -D "$RESULTS_DIR/token-$1.headers" -w '%{http_code}' \
    -u "$CLIENT_ID:$CLIENT_SECRET" -H 'Content-Type: application/x-www-form-urlencoded' \
    --data "$TOKEN_BODY" "$ISSUER/token") || die "token request failed to connect"
  if [ "$code" != 200 ]; then
    echo "token endpoint answered $code:" >&2; cat "$RESULTS_DIR/token-$1.headers" "$RESULTS_DIR/token-$1.json" >&2; echo >&2
    die "token endpoint did not answer 200 ($1)"
  fi
  python3 - "$RESULTS_DIR/token-$1.json" "$1" <<'EOF' || die "token response is not as expected ($1)"
import base64, json, sys
d = json.load(open(sys.argv[1]))
at = d.get("access_token")
if not isinstance(at, str) or at.count(".") != 2:
    sys.exit(f"no JWT access_token in {d}")
seg = at.split(".")[0]
hdr = json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))
if hdr.get("alg") != sys.argv[2]:
    sys.exit(f"access token header {hdr}, expected alg {sys.argv[2]}")
print(f"   token check: 200, token_type={d.get('token_type')}, expires_in={d.get('expires_in')}, "
      f"scope={d.get('scope')}, header={json.dumps(hdr)}, {len(at)}-char JWT")
EOF
}

# ---------------------------------------------------------------- wrk runs
bench() { # name pid url lua [WRK_BODY]
  wanted "$1" || return 0
  if [ -n "${5:-}" ]; then export WRK_BODY="$5"; else unset WRK_BODY; fi
  measure "$1" "$2" "$3" "$SHARED_BENCH/$4"
}

# Introspect one fresh client_credentials access token again and again, as peer-bench.sh does
# for node-oidc-provider (RFC 7662, HTTP Basic as the resource server's credentials).
bench_introspection() { # name
  wanted "$1" || return 0
  local at
  at=$(curl -sf -u "$CLIENT_ID:$CLIENT_SECRET" --data "$TOKEN_BODY" "$ISSUER/token" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])') || die "no token to introspect"
  curl -sf -u "$CLIENT_ID:$CLIENT_SECRET" --data "token=$at" "$ISSUER/introspect" > "$RESULTS_DIR/$1-sample.json"
  grep -q '"active":true' "$RESULTS_DIR/$1-sample.json" || die "introspection of a fresh token is not active: $(cat "$RESULTS_DIR/$1-sample.json")"
  bench "$1" "$SIGIL_PID" "$ISSUER/introspect" wrk-client-credentials.lua "token=$at"
}

# ---------------------------------------------------------------- set-up: database, keys, client
echo "== work dir $WORK_DIR, results $RESULTS_DIR"
write_config ES256
"$SIGIL" --config "$CONFIG" migrate > "$RESULTS_DIR/migrate.log" 2>&1 || { cat "$RESULTS_DIR/migrate.log" >&2; die "sigil migrate"; }
echo '{"grant_types":["client_credentials"],"scope":"api:read","client_name":"bench"}' \
  | "$SIGIL" --config "$CONFIG" client add --client-id bench --metadata - > "$RESULTS_DIR/client.json" 2> "$RESULTS_DIR/client.err" \
  || { cat "$RESULTS_DIR/client.err" "$RESULTS_DIR/client.json" >&2; die "sigil client add"; }
CLIENT_ID=bench
CLIENT_SECRET=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["client_secret"])' "$RESULTS_DIR/client.json") \
  || die "no client_secret in the output of client add: $(cat "$RESULTS_DIR/client.json")"
# wrk-client-credentials.lua puts id:secret into HTTP Basic as is (no form-encoding, RFC 6749 §2.3.1).
[[ "$CLIENT_SECRET" =~ ^[A-Za-z0-9._~-]+$ ]] || die "client_secret has characters that need form-encoding"
export CLIENT_ID CLIENT_SECRET
{ "$SIGIL" --version; wrk --version 2>&1 | head -1 || true; echo "git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (with local changes)')"; } > "$RESULTS_DIR/versions.txt"

# ---------------------------------------------------------------- startup time
echo "== startup: $STARTUP_TRIALS cold starts (spawn sigil serve -> first 200 from /readyz)"
: > "$RESULTS_DIR/startup.txt"
for i in $(seq 1 "$STARTUP_TRIALS"); do
  wait_quiet
  t0=$(date +%s%N); start_sigil sigil-startup
  sigil_ready sigil-startup
  t1=$(date +%s%N)
  echo "startup_ms=$(( (t1 - t0) / 1000000 )) rss_kb=$(kb "$SIGIL_PID" VmRSS)" | tee -a "$RESULTS_DIR/startup.txt"
  stop_pid "$SIGIL_PID"
done

# ---------------------------------------------------------------- Sigil, ES256 access tokens
echo "== sigil (access_token_alg ES256): wrk -t$THREADS -c$CONNS -d$DUR (warm-up $WARMUP each), PIN=$PIN"
write_config ES256
start_sigil sigil-es256; sigil_ready sigil-es256
sleep 0.5; IDLE_RSS_KB=$(kb "$SIGIL_PID" VmRSS)
curl -sf -o "$RESULTS_DIR/discovery.json" "$ISSUER/.well-known/openid-configuration" || die "discovery is not a 200"
curl -sf -o "$RESULTS_DIR/jwks.json" "$ISSUER/jwks" || die "/jwks is not a 200"
python3 -c 'import json,sys; [json.load(open(f)) for f in sys.argv[1:]]' "$RESULTS_DIR/discovery.json" "$RESULTS_DIR/jwks.json" \
  || die "discovery or JWKS is not JSON"
echo "   discovery $(wc -c < "$RESULTS_DIR/discovery.json") bytes, jwks $(wc -c < "$RESULTS_DIR/jwks.json") bytes"
bench discovery "$SIGIL_PID" "$ISSUER/.well-known/openid-configuration" wrk-get.lua
bench jwks      "$SIGIL_PID" "$ISSUER/jwks" wrk-get.lua
if wanted token_cc_es256; then
  check_token ES256
  bench token_cc_es256 "$SIGIL_PID" "$ISSUER/token" wrk-client-credentials.lua "$TOKEN_BODY"
fi
bench_introspection introspection_es256
END_RSS_KB=$(kb "$SIGIL_PID" VmRSS)
stop_pid "$SIGIL_PID"

# ---------------------------------------------------------------- Sigil, RS256 access tokens
if wanted token_cc_rs256; then
  echo "== sigil (access_token_alg RS256)"
  write_config RS256
  start_sigil sigil-rs256; sigil_ready sigil-rs256
  check_token RS256
  bench token_cc_rs256 "$SIGIL_PID" "$ISSUER/token" wrk-client-credentials.lua "$TOKEN_BODY"
  bench_introspection introspection_rs256
  stop_pid "$SIGIL_PID"
fi

# ---------------------------------------------------------------- ceilings: bare actix-web, same bytes
wanted_any bare_actix_discovery bare_actix_jwks && echo "== ceilings: bare actix-web returning Sigil's exact bytes"
for which in discovery jwks; do
  name="bare_actix_$which"
  wanted "$name" || continue
  start_bare "$RESULTS_DIR/$which.json" "$name"
  curl -sf "$BARE_URL/" | cmp -s - "$RESULTS_DIR/$which.json" || die "bare_actix does not return the saved $which bytes"
  bench "$name" "$BARE_PID" "$BARE_URL/" wrk-get.lua
  stop_pid "$BARE_PID"
done

# ---------------------------------------------------------------- report
echo
echo "== results ($(nproc) cores shared by wrk and the server; PIN=$PIN; wrk -t$THREADS -c$CONNS -d$DUR; dir $RESULTS_DIR)"
cat "$RESULTS_DIR/versions.txt"
python3 - "$SUMMARY" "$RESULTS_DIR/startup.txt" "$IDLE_RSS_KB" "$END_RSS_KB" <<'EOF'
import json, re, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {d["name"]: d for d in rows}
cols = (22, 8, 7, 7, 7, 8, 8, 10, 12)
print()
print(f"| {'test':<22} | {'req/s':>8} | {'p50 ms':>7} | {'p99 ms':>7} | {'non-2xx':>7} | {'srv CPU%':>8} | {'wrk CPU%':>8} | {'other CPU%':>10} | {'peak RSS MiB':>12} |")
print("|" + "|".join("-" * (w + 2) for w in cols) + "|")
for d in rows:
    print(f"| {d['name']:<22} | {d['rps']:>8.0f} | {d['p50_us']/1000:>7.2f} | {d['p99_us']/1000:>7.2f} | {d['non2xx']:>7} | {d['srv_cpu_pct']:>8} | {d['wrk_cpu_pct']:>8} | {d['other_cpu_pct']:>10} | {d['peak_rss_mib']:>12} |")
print("(CPU% = % of one core over the run; 200% = both cores on a 2-core machine. other = everything besides server and wrk.)")
print()
for ep in ("discovery", "jwks"):
    a, b = by.get(ep), by.get(f"bare_actix_{ep}")
    if a and b and b["rps"] > 0:
        r = a["rps"] / b["rps"]
        print(f"{ep}/bare_actix_{ep}: {r:.2f} ({a['rps']:.0f} / {b['rps']:.0f} req/s; target >= 0.80: {'met' if r >= 0.8 else 'NOT met'})")
bad = [d["name"] for d in rows if d["non2xx"] or d["err_connect"] or d["err_read"] or d["err_write"] or d["err_timeout"]]
if bad:
    print("WARNING: non-2xx answers or socket errors in: " + ", ".join(bad))
st = [l for l in open(sys.argv[2]) if l.strip()]
ms = [int(re.search(r"startup_ms=(\d+)", l).group(1)) for l in st]
rss = [int(re.search(r"rss_kb=(\d+)", l).group(1)) for l in st]
if ms:
    print(f"startup to first 200 on /readyz: median {statistics.median(ms)} ms (min {min(ms)}, max {max(ms)}, n={len(ms)});"
          f" RSS when ready median {statistics.median(rss)/1024:.1f} MiB")
print(f"sigil RSS: idle after start {int(sys.argv[3])/1024:.1f} MiB, after the ES256 server's runs {int(sys.argv[4])/1024:.1f} MiB")
EOF
