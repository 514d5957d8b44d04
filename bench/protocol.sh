#!/usr/bin/env bash
# Protocol benchmarks, run by hand (never in CI): client_credentials with DPoP proofs (ES256
# proof keys, ES256 access tokens, server nonces), pushed authorization requests, and device-code
# polling — Sigil (release build, SQLite) and node-oidc-provider (bench/peer/start-protocol.mjs,
# the same features on) loaded one after the other in one sitting with the same wrk settings, as
# bench/run.sh and ../shared/bench/peer-bench.sh do. Compare ratios, not absolutes.
#
# Usage:  bash bench/protocol.sh            DUR=5s WARMUP=1s bash bench/protocol.sh (quick)
#
# Env knobs (defaults in brackets): DUR [15s] THREADS [2] CONNS [50] WARMUP [3s]
#   QUIET_WAIT_S [180]  PIN [0]  ONLY [all: "dpop par device_poll"]  PORT [3100] (node: PORT+1)
#   DPOP_RATE [20000]   proofs made per second of wrk time (each proof is single use: a run that
#                       outpaces them replays, and the replays show as non-2xx)
#   CACHE_DIR [~/.cache/sigil-peer-bench]  where peer-bench.sh installed oidc-provider
#
# Tests, each on both servers: dpop (POST /token, client_credentials, `DPoP` proof with the
# server's nonce; every answer must be a 200 with token_type DPoP), par (POST to the PAR
# endpoint, HTTP Basic, a code request with PKCE; every answer a 201), device_poll (POST /token
# with the device_code of a pending device authorization: the answers are 400
# authorization_pending / slow_down by design — the figure is the polling throughput).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
SHARED_BENCH="$(cd "${SHARED_BENCH:-$ROOT/../shared/bench}" && pwd)"
CACHE_DIR="${CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sigil-peer-bench}"
OP_DIR="$CACHE_DIR/node-oidc-provider"
DUR="${DUR:-15s}"; THREADS="${THREADS:-2}"; CONNS="${CONNS:-50}"; WARMUP="${WARMUP:-3s}"
QUIET_WAIT_S="${QUIET_WAIT_S:-180}"; PIN="${PIN:-0}"; ONLY="${ONLY:-}"; PORT="${PORT:-3100}"
DPOP_RATE="${DPOP_RATE:-20000}"
WORK_DIR="$(mktemp -d -t sigil-protocol-bench-XXXXXX)"
RESULTS_DIR="${RESULTS_DIR:-$WORK_DIR/results}"
SIGIL="$ROOT/target/release/sigil"
CLK_TCK="$(getconf CLK_TCK)"
REDIRECT="http://127.0.0.1:9999/cb"
DEVICE_GRANT="urn:ietf:params:oauth:grant-type:device_code"
# A fixed PKCE challenge is enough: nothing redeems these requests.
PAR_BODY="response_type=code&client_id=bench&redirect_uri=http%3A%2F%2F127.0.0.1%3A9999%2Fcb&scope=openid&state=s&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
export SIGIL_LOG__LEVEL="${SIGIL_LOG__LEVEL:-warn}"

mkdir -p "$RESULTS_DIR"
SUMMARY="$RESULTS_DIR/summary.jsonl"; : > "$SUMMARY"
if [ "$PIN" = 1 ]; then SRV_PIN=(taskset -c 1); WRK_PIN=(taskset -c 0); else SRV_PIN=(); WRK_PIN=(); fi
source "$HERE/lib.sh"
trap cleanup EXIT
trap 'exit 130' INT TERM
secs() { local d=$1; case $d in *ms) echo 1;; *s) echo "${d%s}";; *m) echo $(( ${d%m} * 60 ));; *) echo "$d";; esac; }

command -v wrk >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q wrk; }
[ -f "$OP_DIR/node_modules/oidc-provider/package.json" ] \
  || die "oidc-provider is not installed in $OP_DIR: run ../shared/bench/peer-bench.sh once (ONLY=discovery CEILING=0 is enough)"
cp "$HERE/peer/start-protocol.mjs" "$OP_DIR/"
echo "== building sigil (release)"
(cd "$ROOT" && cargo build --release --bin sigil)

# One server's three runs. $1 = name prefix, $2 = pid, $3 = issuer; CLIENT_ID/CLIENT_SECRET set.
run_all() {
  local who=$1 pid=$2 issuer=$3 token par device
  token="$issuer/token"
  par=$(curl -sf "$issuer/.well-known/openid-configuration" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pushed_authorization_request_endpoint"])')
  device=$(curl -sf "$issuer/.well-known/openid-configuration" | python3 -c 'import json,sys; print(json.load(sys.stdin)["device_authorization_endpoint"])')
  if wanted dpop; then
    local warm run
    warm=$(( DPOP_RATE * $(secs "$WARMUP") )); run=$(( DPOP_RATE * $(secs "$DUR") ))
    echo "   making $warm + $run DPoP proofs for $token"
    WRK_BODY="grant_type=client_credentials&scope=api%3Aread" node "$HERE/dpop-proofs.mjs" "$token" "$warm" "$WORK_DIR/warm.proofs"
    WRK_BODY="grant_type=client_credentials&scope=api%3Aread" node "$HERE/dpop-proofs.mjs" "$token" "$run" "$WORK_DIR/run.proofs"
    export WRK_BODY="grant_type=client_credentials&scope=api%3Aread"
    LINES_WARM="$WORK_DIR/warm.proofs" LINES_RUN="$WORK_DIR/run.proofs" measure "${who}_dpop" "$pid" "$token" "$HERE/wrk-lines.lua"
    rm -f "$WORK_DIR/warm.proofs" "$WORK_DIR/run.proofs"
  fi
  if wanted par; then
    curl -sf -u "$CLIENT_ID:$CLIENT_SECRET" --data "$PAR_BODY" "$par" | grep -q request_uri || die "$who: PAR does not answer a request_uri"
    export WRK_BODY="$PAR_BODY"
    measure "${who}_par" "$pid" "$par" "$SHARED_BENCH/wrk-client-credentials.lua"
  fi
  if wanted device_poll; then
    local code
    code=$(curl -sf -u "$CLIENT_ID:$CLIENT_SECRET" --data "scope=openid" "$device" | python3 -c 'import json,sys; print(json.load(sys.stdin)["device_code"])') \
      || die "$who: no device_code from $device"
    export WRK_BODY="grant_type=$DEVICE_GRANT&device_code=$code"
    curl -s -u "$CLIENT_ID:$CLIENT_SECRET" --data "$WRK_BODY" "$token" > "$RESULTS_DIR/${who}_device_poll.sample.json"
    grep -q authorization_pending "$RESULTS_DIR/${who}_device_poll.sample.json" || die "$who: first poll: $(cat "$RESULTS_DIR/${who}_device_poll.sample.json")"
    measure "${who}_device_poll" "$pid" "$token" "$SHARED_BENCH/wrk-client-credentials.lua"
    curl -s -u "$CLIENT_ID:$CLIENT_SECRET" --data "$WRK_BODY" "$token" > "$RESULTS_DIR/${who}_device_poll.last.json"
  fi
  unset WRK_BODY
}

# ---------------------------------------------------------------- Sigil
ISSUER="http://127.0.0.1:$PORT"
cat > "$WORK_DIR/sigil.toml" <<TOML
issuer = "$ISSUER"
bind = "127.0.0.1:$PORT"
database_url = "sqlite://$WORK_DIR/sigil.db"

[tokens]
access_token_alg = "ES256"
TOML
sig() { "$SIGIL" --config "$WORK_DIR/sigil.toml" "$@"; }
sig migrate > "$RESULTS_DIR/migrate.log" 2>&1 || { cat "$RESULTS_DIR/migrate.log" >&2; die "sigil migrate"; }
printf '{"grant_types":["authorization_code","client_credentials","%s"],"redirect_uris":["%s"],"scope":"openid api:read","client_name":"bench"}' "$DEVICE_GRANT" "$REDIRECT" \
  | sig client add --client-id bench --metadata - > "$RESULTS_DIR/client.json" 2> "$RESULTS_DIR/client.err" \
  || { cat "$RESULTS_DIR/client.err" >&2; die "sigil client add"; }
CLIENT_ID=bench
CLIENT_SECRET=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["client_secret"])' "$RESULTS_DIR/client.json")
export CLIENT_ID CLIENT_SECRET
{ "$SIGIL" --version; wrk --version 2>&1 | head -1 || true; echo "git $(git -C "$ROOT" rev-parse --short HEAD)"; } > "$RESULTS_DIR/versions.txt"
port_free "$PORT" || die "port $PORT busy"
"${SRV_PIN[@]}" "$SIGIL" --config "$WORK_DIR/sigil.toml" serve > "$RESULTS_DIR/sigil.log" 2>&1 &
SIGIL_PID=$!; PIDS+=("$SIGIL_PID")
wait_http "$ISSUER/readyz" 30 || { cat "$RESULTS_DIR/sigil.log" >&2; die "sigil did not start"; }
echo "== sigil: wrk -t$THREADS -c$CONNS -d$DUR (warm-up $WARMUP each)"
run_all sigil "$SIGIL_PID" "$ISSUER"
stop_pid "$SIGIL_PID"

# ---------------------------------------------------------------- node-oidc-provider
NODE_PORT=$((PORT + 1)); NODE_ISSUER="http://127.0.0.1:$NODE_PORT"
CLIENT_SECRET='bench-secret-0123456789abcdef0123456789abcdef'
export CLIENT_SECRET
port_free "$NODE_PORT" || die "port $NODE_PORT busy"
(cd "$OP_DIR" && NODE_ENV=production PORT=$NODE_PORT CLIENT_SECRET="$CLIENT_SECRET" exec "${SRV_PIN[@]}" node start-protocol.mjs) > "$RESULTS_DIR/node.log" 2>&1 &
NODE_PID=$!; PIDS+=("$NODE_PID")
wait_http "$NODE_ISSUER/.well-known/openid-configuration" 30 || { cat "$RESULTS_DIR/node.log" >&2; die "oidc-provider did not start"; }
node -p "'oidc-provider ' + require('$OP_DIR/node_modules/oidc-provider/package.json').version + ' on node ' + process.version" >> "$RESULTS_DIR/versions.txt"
echo "== node-oidc-provider"
run_all node "$NODE_PID" "$NODE_ISSUER"
stop_pid "$NODE_PID"

# ---------------------------------------------------------------- report
echo
echo "== results ($(nproc) cores shared by wrk and the server; PIN=$PIN; wrk -t$THREADS -c$CONNS -d$DUR; dir $RESULTS_DIR)"
cat "$RESULTS_DIR/versions.txt"
python3 - "$SUMMARY" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {d["name"]: d for d in rows}
print(f"| {'test':<18} | {'req/s':>8} | {'p50 ms':>7} | {'p99 ms':>7} | {'non-2xx':>8} | {'srv CPU%':>8} | {'wrk CPU%':>8} | {'peak RSS MiB':>12} |")
print("|" + "|".join("-" * (w + 2) for w in (18, 8, 7, 7, 8, 8, 8, 12)) + "|")
for d in rows:
    print(f"| {d['name']:<18} | {d['rps']:>8.0f} | {d['p50_us']/1000:>7.2f} | {d['p99_us']/1000:>7.2f} | {d['non2xx']:>8} | {d['srv_cpu_pct']:>8} | {d['wrk_cpu_pct']:>8} | {d['peak_rss_mib']:>12} |")
for t in ("dpop", "par", "device_poll"):
    a, b = by.get(f"sigil_{t}"), by.get(f"node_{t}")
    if a and b and b["rps"]:
        print(f"{t}: Sigil / node-oidc-provider = {a['rps'] / b['rps']:.1f}x")
bad = [d["name"] for d in rows if not d["name"].endswith("device_poll") and d["non2xx"]]
if bad:
    print("WARNING: non-2xx answers in " + ", ".join(bad) + " (for dpop: too few proofs, raise DPOP_RATE)")
PY
