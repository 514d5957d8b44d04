#!/usr/bin/env bash
# Sigil browser-flow benchmark, run by hand (never in CI), on SQLite and on PostgreSQL. Drives a
# release build of Sigil with examples/flow_bench.rs (reqwest, one cookie jar and connection per
# worker) and measures, per backend:
#   auth_code_flow         whole authorization-code flows with an existing session, per second:
#                          GET /authorize prompt=none (S256) -> 303 with a code -> POST /token
#                          (client_secret_basic, code_verifier) -> 200; p50/p99 of a whole flow
#   refresh                POST /token grant_type=refresh_token per second, each worker keeping
#                          its rotated token
#   discovery_under_login  p99 of GET /.well-known/openid-configuration from a paced stream, idle
#                          and while LOGINS workers loop full password sign-ins (argon2id);
#                          DESIGN.md "Performance" wants loaded <= 2 x idle
# See the top of examples/flow_bench.rs for the exact requests.
#
# Usage:  bash bench/flow.sh                  (from anywhere; the repo root is found from this file)
#         DUR=3s WARMUP=1s BACKENDS=sqlite bash bench/flow.sh         (a quick check)
#
# Builds `sigil` and the flow_bench example (release). Per backend it works in a fresh temporary
# directory (config with log level warn, master key), on PostgreSQL in a fresh database
# sigil_bench_<random> created on PG_URL's server and dropped at the end; runs `sigil migrate`,
# registers client "bench" (authorization_code + refresh_token, skip_consent), adds user "bench"
# with a random password, starts `sigil serve`, waits for /readyz, runs flow_bench, stops the
# server. Every server it starts is stopped by its PID on exit.
#
# Env knobs (defaults in brackets):
#   DUR [15s]  WARMUP [2s] (unrecorded, before each measurement)  CONC [32] (flow and refresh workers)
#   LOGINS [16]           workers looping password sign-ins during the loaded discovery phase
#   DISC_CLIENTS [4]  DISC_RATE [250]   paced discovery stream: clients x requests/s each
#   BACKENDS ["sqlite postgres"]   ONLY ["flow refresh discovery"]   PORT [3300]
#   PG_URL [postgres://postgres@127.0.0.1:5432/postgres]   where CREATE/DROP DATABASE run
#   QUIET_WAIT_S [180]    before each measurement wait (at most this long) until the machine is
#                         idle (<15% busy over 1 s), as bench/run.sh does; 0 = don't wait
#   PIN [0]               1 = server pinned to CPU 1, flow_bench to CPU 0 (taskset)
#   GEN_NICE []           run flow_bench under `nice -n GEN_NICE` (e.g. -10, as root): its threads
#                         then win the CPU over the server's argon2 threads, so less of the loaded
#                         discovery latency is the load generator's own scheduling delay
#   RESULTS_DIR [WORK_DIR/results]  summary.jsonl, flow_bench outputs, server logs
#
# The load generator shares the machine with the server (2 cores here): every figure comes with
# the CPU split over its window (server, flow_bench, everything else; % of one core) and the
# server's peak RSS (VmHWM, reset through clear_refs when the window opens).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"

DUR="${DUR:-15s}"; WARMUP="${WARMUP:-2s}"; CONC="${CONC:-32}"; LOGINS="${LOGINS:-16}"
DISC_CLIENTS="${DISC_CLIENTS:-4}"; DISC_RATE="${DISC_RATE:-250}"
BACKENDS="${BACKENDS:-sqlite postgres}"; ONLY="${ONLY:-flow refresh discovery}"; PORT="${PORT:-3300}"
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
QUIET_WAIT_S="${QUIET_WAIT_S:-180}"; PIN="${PIN:-0}"; GEN_NICE="${GEN_NICE:-}"
WORK_DIR="$(mktemp -d -t sigil-flow-bench-XXXXXX)"
RESULTS_DIR="${RESULTS_DIR:-$WORK_DIR/results}"
ISSUER="http://127.0.0.1:$PORT"
SIGIL="$ROOT/target/release/sigil"
FLOW_BENCH="$ROOT/target/release/examples/flow_bench"
REDIRECT_URI="http://127.0.0.1:9/cb"

mkdir -p "$RESULTS_DIR"
SUMMARY="$RESULTS_DIR/summary.jsonl"; : > "$SUMMARY"
if [ "$PIN" = 1 ]; then SRV_PIN=(taskset -c 1); GEN_PIN=(taskset -c 0); else SRV_PIN=(); GEN_PIN=(); fi
[ -z "$GEN_NICE" ] || GEN_PIN=(nice -n "$GEN_NICE" "${GEN_PIN[@]}")
die() { echo "FAIL: $*" >&2; exit 1; }

for tool in curl python3; do command -v "$tool" >/dev/null 2>&1 || die "$tool is needed"; done
for b in $BACKENDS; do
  case "$b" in
    sqlite) ;;
    postgres) command -v psql >/dev/null 2>&1 || die "psql is needed for the postgres backend"
              psql "$PG_URL" -v ON_ERROR_STOP=1 -Atqc 'SELECT 1' >/dev/null \
                || die "cannot reach PostgreSQL at $PG_URL (set PG_URL, or BACKENDS=sqlite)" ;;
    *) die "unknown backend $b (sqlite, postgres)" ;;
  esac
done

# ---------------------------------------------------------------- build
echo "== building sigil and examples/flow_bench (release)"
(cd "$ROOT" && cargo build --release --bin sigil --example flow_bench)

# ---------------------------------------------------------------- process helpers (as run.sh)
PIDS=(); PG_DBS=()
drop_db() { # name
  psql "$PG_URL" -qc "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" >/dev/null 2>&1 \
    || psql "$PG_URL" -qc "DROP DATABASE IF EXISTS \"$1\"" >/dev/null 2>&1 \
    || echo "   (could not drop database $1; drop it by hand)" >&2
}
cleanup() {
  local p d
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  for d in "${PG_DBS[@]}"; do drop_db "$d"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_http() { # url timeout_s -> 0 when a 200 arrives
  local url=$1 deadline=$(( $(date +%s) + $2 ))
  until curl -sf -o /dev/null "$url"; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1; sleep 0.01
  done
}
stop_pid() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true
  local keep=() p; for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done; PIDS=("${keep[@]}"); }
kb() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }

# ---------------------------------------------------------------- one backend
run_backend() { # sqlite | postgres
  local backend=$1 dir="$WORK_DIR/$1" db_url db="" key_env=() out="$RESULTS_DIR/$1.flow_bench.txt"
  mkdir -p "$dir"
  if [ "$backend" = postgres ]; then
    db="sigil_bench_$(head -c6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    psql "$PG_URL" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE \"$db\"" >/dev/null || die "CREATE DATABASE $db"
    PG_DBS+=("$db")
    db_url="${PG_URL%/*}/$db"
    # PostgreSQL needs the master key from the configuration (every node must share it).
    key_env=("SIGIL_MASTER_KEY=$(head -c32 /dev/urandom | base64)")
  else
    db_url="sqlite://$dir/sigil.db"      # the master key goes to sigil.master.key beside it
  fi
  cat > "$dir/sigil.toml" <<EOF
issuer = "$ISSUER"
bind = "127.0.0.1:$PORT"
database_url = "$db_url"

[log]
level = "warn"
EOF
  sig() { env "${key_env[@]}" "$SIGIL" --config "$dir/sigil.toml" "$@"; }

  echo "== $backend: work dir $dir${db:+, database $db}"
  sig migrate > "$RESULTS_DIR/$backend.migrate.log" 2>&1 \
    || { cat "$RESULTS_DIR/$backend.migrate.log" >&2; die "sigil migrate ($backend)"; }
  printf '%s' '{"redirect_uris":["'"$REDIRECT_URI"'"],"grant_types":["authorization_code","refresh_token"],"scope":"openid profile email offline_access","skip_consent":true,"client_name":"bench"}' \
    | sig client add --client-id bench --metadata - > "$RESULTS_DIR/$backend.client.json" 2> "$RESULTS_DIR/$backend.client.err" \
    || { cat "$RESULTS_DIR/$backend.client.err" "$RESULTS_DIR/$backend.client.json" >&2; die "sigil client add ($backend)"; }
  local secret pw
  secret=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["client_secret"])' "$RESULTS_DIR/$backend.client.json") \
    || die "no client_secret in the output of client add: $(cat "$RESULTS_DIR/$backend.client.json")"
  pw="$(head -c18 /dev/urandom | base64 | tr -d '/+=')"
  printf '%s' "$pw" | sig user add bench --password-stdin > "$RESULTS_DIR/$backend.user.json" 2> "$RESULTS_DIR/$backend.user.err" \
    || { cat "$RESULTS_DIR/$backend.user.err" >&2; die "sigil user add ($backend)"; }

  port_free "$PORT" || die "port $PORT busy"
  env "${key_env[@]}" "${SRV_PIN[@]}" "$SIGIL" --config "$dir/sigil.toml" serve >> "$RESULTS_DIR/$backend.sigil.log" 2>&1 &
  local pid=$!; PIDS+=("$pid")
  wait_http "$ISSUER/readyz" 30 || { cat "$RESULTS_DIR/$backend.sigil.log" >&2; die "sigil did not answer 200 on /readyz within 30 s ($backend)"; }
  kill -0 "$pid" 2>/dev/null || { cat "$RESULTS_DIR/$backend.sigil.log" >&2; die "sigil exited (another process on port $PORT?)"; }
  sleep 0.5; local idle_kb; idle_kb=$(kb "$pid" VmRSS)

  # Secrets through the environment, not argv.
  CLIENT_SECRET="$secret" BENCH_PASSWORD="$pw" "${GEN_PIN[@]}" "$FLOW_BENCH" \
    --issuer "$ISSUER" --client-id bench --username bench --redirect-uri "$REDIRECT_URI" \
    --duration "$DUR" --warmup "$WARMUP" --concurrency "$CONC" --logins "$LOGINS" \
    --discovery-clients "$DISC_CLIENTS" --discovery-rate "$DISC_RATE" --only "$ONLY" \
    --label "$backend" --server-pid "$pid" --quiet-wait "$QUIET_WAIT_S" 2> >(tee "$out.err" >&2) | tee "$out"
  kill -0 "$pid" 2>/dev/null || { tail -n 50 "$RESULTS_DIR/$backend.sigil.log" >&2; die "sigil died during the run ($backend)"; }
  grep '^{' "$out" >> "$SUMMARY" || true
  local end_kb; end_kb=$(kb "$pid" VmRSS)
  echo "{\"name\":\"rss\",\"label\":\"$backend\",\"idle_after_start_mib\":$((idle_kb / 1024)),\"end_mib\":$((end_kb / 1024))}" >> "$SUMMARY"
  stop_pid "$pid"
  if grep -qiE '"level":"(WARN|ERROR)"|\b(WARN|ERROR)\b' "$RESULTS_DIR/$backend.sigil.log"; then
    echo "   server warnings/errors ($RESULTS_DIR/$backend.sigil.log):"; grep -iE 'WARN|ERROR' "$RESULTS_DIR/$backend.sigil.log" | sort | uniq -c | sort -rn | head -n 10
  fi
  if [ -n "$db" ]; then
    drop_db "$db"
    local keep=() d; for d in "${PG_DBS[@]}"; do [ "$d" = "$db" ] || keep+=("$d"); done; PG_DBS=("${keep[@]}")
  fi
}

{ "$SIGIL" --version; echo "git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (with local changes)')"; } > "$RESULTS_DIR/versions.txt"
for backend in $BACKENDS; do run_backend "$backend"; done

# ---------------------------------------------------------------- report
echo
echo "== results ($(nproc) cores shared by flow_bench and the server; PIN=$PIN; DUR=$DUR WARMUP=$WARMUP CONC=$CONC LOGINS=$LOGINS discovery ${DISC_CLIENTS}x${DISC_RATE}/s; dir $RESULTS_DIR)"
cat "$RESULTS_DIR/versions.txt"
python3 - "$SUMMARY" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def f(x): return "-" if x is None else (f"{x:.2f}" if isinstance(x, float) else str(x))
hdr = ("measurement", "backend", "per s", "p50 ms", "p99 ms", "errors", "srv CPU%", "gen CPU%", "other CPU%", "peak RSS MiB")
w = (24, 8, 9, 8, 8, 6, 8, 8, 10, 12)
line = lambda cells: "| " + " | ".join(str(c).ljust(n) if i < 2 else str(c).rjust(n) for i, (c, n) in enumerate(zip(cells, w))) + " |"
print(); print(line(hdr)); print("|" + "|".join("-" * (n + 2) for n in w) + "|")
notes, bad = [], []
for d in rows:
    b = d.get("label", "")
    def row(name, s, cpu):
        print(line((name, b, f(s.get("per_s")), f(s.get("p50_ms")), f(s.get("p99_ms")), f(s.get("errors")),
                    f(cpu.get("srv_cpu_pct")), f(cpu.get("gen_cpu_pct")), f(cpu.get("other_cpu_pct")), f(cpu.get("peak_rss_mib")))))
        if s.get("errors") or s.get("first_error"): bad.append(f"{b} {name}: {s.get('errors')} errors; first: {s.get('first_error')}")
    if d["name"] == "auth_code_flow": row("auth_code_flow (flows)", d["flow"], d)
    elif d["name"] == "refresh": row("refresh (grants)", d["refresh"], d)
    elif d["name"] == "discovery_under_login":
        row("discovery idle", d["idle"], d["idle"])
        row(f"discovery + {d['login_workers']} logins", d["loaded"], d["loaded"])
        row("  sign-ins (whole)", d["logins"], {})
        r = d.get("p99_ratio")
        notes.append(f"{b}: discovery p99 idle {f(d['idle']['p99_ms'])} ms, during sign-ins {f(d['loaded']['p99_ms'])} ms: "
                     f"ratio {f(r)} (target <= 2: {'met' if d.get('target_met') else 'NOT met'}); "
                     f"measured from the schedule {f(d['idle'].get('p99_from_schedule_ms'))} -> {f(d['loaded'].get('p99_from_schedule_ms'))} ms")
    elif d["name"] == "rss":
        notes.append(f"{b}: sigil RSS idle after start {d['idle_after_start_mib']} MiB, at the end {d['end_mib']} MiB")
print("(latency = a whole flow / one refresh / one discovery GET / a whole sign-in; CPU% = % of one core over the window, 200% = both cores on a 2-core machine; gen = flow_bench; other = everything else)")
print()
for n in notes: print(n)
for x in bad: print("WARNING: " + x)
EOF
