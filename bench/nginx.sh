#!/usr/bin/env bash
# Sigil behind nginx, by hand (never in CI): contrib/nginx/sigil.conf, filled in, in front of two
# release-built `sigil serve` nodes on one fresh PostgreSQL database, all on this machine.
#
#  1. discovery and the token endpoint (client_credentials, ES256 access tokens) with wrk,
#     direct to one node (plain HTTP) against through nginx (TLS, two nodes);
#  2. the token endpoint and discovery through nginx while node A is SIGKILLed KILL_AT into the
#     run and started again RESTART_AFTER later: wrk's non-2xx answers and socket errors are
#     the failed requests, and nginx's error log says which of them were in flight on the
#     killed node ("while reading response header from upstream"); a per-second timeline of
#     answers and of the node that gave them comes from nginx's access log.
#
# Usage:  bash bench/nginx.sh
#         DUR=5s WARMUP=1s KILL_DUR=12s bash bench/nginx.sh        (a quick check)
# Needs: target/release/sigil (built here when missing, or CARGO_TARGET_DIR's), Debian's nginx,
# wrk (apt, installed when missing), openssl, curl, psql, python3, and a PostgreSQL server.
#
# Env knobs (defaults in brackets):
#   DUR [15s]  THREADS [2]  CONNS [50]  WARMUP [3s]     wrk, as bench/run.sh
#   KILL_DUR [20s]  KILL_AT [5]  RESTART_AFTER [5]       the kill-and-restart runs (seconds)
#   PG_URL [postgres://postgres@127.0.0.1:5432/postgres] a database is created and dropped there
#   BASE_PORT [3200]      nodes on BASE_PORT+1, +2; nginx HTTPS on +3, HTTP on +4
#   QUIET_WAIT_S [60]     before each run wait (at most this long) for an idle machine
#   BIN [target/release/sigil]   the sigil binary (not a SIGIL_ variable: Sigil reads those)
#   RESULTS_DIR [WORK_DIR/results]
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
SHARED_BENCH="${SHARED_BENCH:-$ROOT/../shared/bench}"
[ -f "$SHARED_BENCH/wrk-get.lua" ] || { echo "wrk scripts not found in $SHARED_BENCH (set SHARED_BENCH)" >&2; exit 1; }
SHARED_BENCH="$(cd "$SHARED_BENCH" && pwd)"

DUR="${DUR:-15s}"; THREADS="${THREADS:-2}"; CONNS="${CONNS:-50}"; WARMUP="${WARMUP:-3s}"
KILL_DUR="${KILL_DUR:-20s}"; KILL_AT="${KILL_AT:-5}"; RESTART_AFTER="${RESTART_AFTER:-5}"
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
BASE_PORT="${BASE_PORT:-3200}"; QUIET_WAIT_S="${QUIET_WAIT_S:-60}"; ONLY=""
PORT_A=$((BASE_PORT + 1)); PORT_B=$((BASE_PORT + 2)); HTTPS_PORT=$((BASE_PORT + 3)); HTTP_PORT=$((BASE_PORT + 4))
WORK_DIR="$(mktemp -d -t sigil-nginx-bench-XXXXXX)"
RESULTS_DIR="${RESULTS_DIR:-$WORK_DIR/results}"
SIGIL="${BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/sigil}"
ISSUER="https://localhost:$HTTPS_PORT"
PROXY="https://127.0.0.1:$HTTPS_PORT"       # wrk and curl connect by address (nginx listens on IPv4)
DB="sigil_bench_$$"
CLK_TCK="$(getconf CLK_TCK)"; WRK_PIN=()
export SIGIL_LOG__LEVEL="${SIGIL_LOG__LEVEL:-warn}"
mkdir -p "$RESULTS_DIR"; SUMMARY="$RESULTS_DIR/summary.jsonl"; : > "$SUMMARY"
source "$HERE/lib.sh"

command -v wrk >/dev/null 2>&1 || { echo "== installing wrk (apt)"; apt-get update -q && apt-get install -y -q wrk; }
for tool in /usr/sbin/nginx openssl curl psql python3; do command -v "$tool" >/dev/null 2>&1 || die "$tool is needed"; done
if [ ! -x "$SIGIL" ]; then echo "== building sigil (release)"; (cd "$ROOT" && cargo build --release --bin sigil); fi

NGINX_PID=""; declare -A NODE_PID
finish() {
  cleanup
  psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
}
trap finish EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- set-up
echo "== work dir $WORK_DIR, results $RESULTS_DIR"
for p in $PORT_A $PORT_B $HTTPS_PORT $HTTP_PORT; do port_free "$p" || die "port $p busy (set BASE_PORT)"; done
psql "$PG_URL" -qc "CREATE DATABASE $DB" || die "cannot create a database at $PG_URL"
DB_URL="$(python3 -c 'import sys, urllib.parse as u; p = u.urlparse(sys.argv[1]); print(p._replace(path="/" + sys.argv[2]).geturl())' "$PG_URL" "$DB")"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$WORK_DIR/server.key" -out "$WORK_DIR/server.crt" 2>/dev/null
openssl rand -base64 32 > "$WORK_DIR/master.key"; chmod 600 "$WORK_DIR/master.key"
chmod 755 "$WORK_DIR"    # nginx's workers (another user when run as root) reach the prefix
cat > "$WORK_DIR/sigil.toml" <<EOF
issuer = "$ISSUER"
database_url = "$DB_URL"
master_key_file = "$WORK_DIR/master.key"

[http]
trusted_proxies = ["127.0.0.1/32"]

[tokens]
access_token_alg = "ES256"
EOF

# contrib/nginx/sigil.conf as shipped, placeholders filled in; a main configuration in place of
# Debian's /etc/nginx/nginx.conf (worker_processes auto, as Debian's), logging every answer with
# its time and node for the timelines (buffered, as a busy site would).
sed -e "s|{{SERVER_NAME}}|localhost|g" -e "s|{{ISSUER}}|$ISSUER|g" \
    -e "s|{{HTTPS_LISTEN}}|127.0.0.1:$HTTPS_PORT|g" -e "s|{{HTTP_LISTEN}}|127.0.0.1:$HTTP_PORT|g" \
    -e "s|{{TLS_CERT}}|$WORK_DIR/server.crt|g" -e "s|{{TLS_KEY}}|$WORK_DIR/server.key|g" \
    -e "s|{{SIGIL_NODE_A}}|127.0.0.1:$PORT_A|g" -e "s|{{SIGIL_NODE_B}}|127.0.0.1:$PORT_B|g" \
    "$ROOT/contrib/nginx/sigil.conf" > "$WORK_DIR/sigil.conf"
! grep -n '{{' "$WORK_DIR/sigil.conf" || die "a placeholder was left in sigil.conf"
cat > "$WORK_DIR/nginx.conf" <<EOF
worker_processes auto;
pid $WORK_DIR/nginx.pid;
error_log $RESULTS_DIR/nginx-error.log info;
events { worker_connections 1024; }
http {
    log_format timeline '\$msec \$status \$upstream_addr';
    access_log $RESULTS_DIR/nginx-access.log timeline buffer=64k flush=1s;
    client_body_temp_path $WORK_DIR/client_body;
    proxy_temp_path $WORK_DIR/proxy;
    fastcgi_temp_path $WORK_DIR/fastcgi;
    uwsgi_temp_path $WORK_DIR/uwsgi;
    scgi_temp_path $WORK_DIR/scgi;
    include $WORK_DIR/sigil.conf;
}
EOF
NGINX_ARGS=(-p "$WORK_DIR" -e "$RESULTS_DIR/nginx-error.log" -c "$WORK_DIR/nginx.conf")
/usr/sbin/nginx -t "${NGINX_ARGS[@]}" 2> "$RESULTS_DIR/nginx-t.log" || { cat "$RESULTS_DIR/nginx-t.log" >&2; die "nginx -t"; }

"$SIGIL" --config "$WORK_DIR/sigil.toml" migrate > "$RESULTS_DIR/migrate.log" 2>&1 || { cat "$RESULTS_DIR/migrate.log" >&2; die "sigil migrate"; }
echo '{"grant_types":["client_credentials"],"scope":"api:read","client_name":"bench"}' \
  | "$SIGIL" --config "$WORK_DIR/sigil.toml" client add --client-id bench --metadata - > "$RESULTS_DIR/client.json" \
  || die "sigil client add"
CLIENT_ID=bench
CLIENT_SECRET=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["client_secret"])' "$RESULTS_DIR/client.json")
[[ "$CLIENT_SECRET" =~ ^[A-Za-z0-9._~-]+$ ]] || die "client_secret has characters that need form-encoding"
export CLIENT_ID CLIENT_SECRET
export WRK_BODY="grant_type=client_credentials&scope=api%3Aread"

start_node() { # A|B
  local port; [ "$1" = A ] && port=$PORT_A || port=$PORT_B
  SIGIL_BIND="127.0.0.1:$port" "$SIGIL" --config "$WORK_DIR/sigil.toml" serve >> "$RESULTS_DIR/node-$1.log" 2>&1 &
  NODE_PID[$1]=$!; PIDS+=("${NODE_PID[$1]}")
  wait_http "http://127.0.0.1:$port/readyz" 30 || { cat "$RESULTS_DIR/node-$1.log" >&2; die "node $1 did not become ready"; }
}
kill_node() { # A|B: SIGKILL, as a crash or the OOM killer would
  local pid=${NODE_PID[$1]} keep=() p
  kill -KILL "$pid"; wait "$pid" 2>/dev/null || true
  for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done; PIDS=("${keep[@]}")
}
start_node A; start_node B
/usr/sbin/nginx "${NGINX_ARGS[@]}" -g 'daemon off;' 2>> "$RESULTS_DIR/nginx-error.log" &
NGINX_PID=$!; PIDS+=("$NGINX_PID")
deadline=$(( $(date +%s) + 10 ))
until curl -skf -o /dev/null "$PROXY/readyz"; do [ "$(date +%s)" -lt "$deadline" ] || die "nginx did not answer"; sleep 0.1; done
code=$(curl -sk -o /dev/null -w '%{http_code}' -u "$CLIENT_ID:$CLIENT_SECRET" --data "$WRK_BODY" "$PROXY/token")
[ "$code" = 200 ] || die "token through nginx answered $code"
{ "$SIGIL" --version; /usr/sbin/nginx -v 2>&1; wrk --version 2>&1 | head -1 || true
  echo "git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"; echo "$(nproc) cores"; } > "$RESULTS_DIR/versions.txt"

# ---------------------------------------------------------------- 1. direct against through nginx
run() { # name url lua — a warm-up, then the recorded run; one JSON line into $SUMMARY
  local name=$1 url=$2 lua=$SHARED_BENCH/$3 b0 t0 b1 t1 w
  wait_quiet
  wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" -s "$lua" "$url" > /dev/null
  read -r b0 t0 < <(sys_busy_total)
  wrk -t"$THREADS" -c"$CONNS" -d"$DUR" --latency -s "$lua" "$url" > "$RESULTS_DIR/$name.wrk.txt"
  read -r b1 t1 < <(sys_busy_total)
  w=$(sed -n 's/^WRKJSON //p' "$RESULTS_DIR/$name.wrk.txt"); [ -n "$w" ] || die "no WRKJSON from wrk ($name)"
  python3 -c 'import json,sys,os; d=json.loads(sys.argv[2]); d["name"]=sys.argv[1]
d["machine_cpu_pct"]=round((int(sys.argv[4])-int(sys.argv[3]))/max(1,int(sys.argv[6])-int(sys.argv[5]))*100*os.cpu_count(),1)
print(json.dumps(d))' "$name" "$w" "$b0" "$b1" "$t0" "$t1" >> "$SUMMARY"
  tail -n1 "$SUMMARY" | python3 -c 'import json,sys; d=json.load(sys.stdin); e=d["err_connect"]+d["err_read"]+d["err_write"]+d["err_timeout"]
print("   %-26s %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  non-2xx %d  socket errors %d  machine CPU %s%%" % (d["name"], d["rps"], d["p50_us"]/1000, d["p99_us"]/1000, d["non2xx"], e, d["machine_cpu_pct"]))'
}
echo "== wrk -t$THREADS -c$CONNS -d$DUR (warm-up $WARMUP): direct to node A, then through nginx to A and B"
run discovery_direct "http://127.0.0.1:$PORT_A/.well-known/openid-configuration" wrk-get.lua
run discovery_nginx  "$PROXY/.well-known/openid-configuration" wrk-get.lua
run token_cc_direct  "http://127.0.0.1:$PORT_A/token" wrk-client-credentials.lua
run token_cc_nginx   "$PROXY/token" wrk-client-credentials.lua

# ---------------------------------------------------------------- 2. kill and restart under load
kill_run() { # name url lua
  local name=$1 url=$2 lua=$SHARED_BENCH/$3 wrk_pid t_kill t_back
  wait_quiet
  local err_from; err_from=$(wc -l < "$RESULTS_DIR/nginx-error.log")
  local t_start; t_start=$(date +%s.%N)
  wrk -t"$THREADS" -c"$CONNS" -d"$KILL_DUR" --latency -s "$lua" "$url" > "$RESULTS_DIR/$name.wrk.txt" &
  wrk_pid=$!
  sleep "$KILL_AT"
  kill_node A; t_kill=$(date +%s.%N)
  sleep "$RESTART_AFTER"
  start_node A; t_back=$(date +%s.%N)
  wait "$wrk_pid"; local t_end; t_end=$(date +%s.%N)
  sleep 1.5     # the access log's buffer is flushed every second
  local w; w=$(sed -n 's/^WRKJSON //p' "$RESULTS_DIR/$name.wrk.txt"); [ -n "$w" ] || die "no WRKJSON from wrk ($name)"
  tail -n +"$((err_from + 1))" "$RESULTS_DIR/nginx-error.log" > "$RESULTS_DIR/$name.nginx-error.log"
  python3 - "$name" "$w" "$t_start" "$t_kill" "$t_back" "$t_end" "127.0.0.1:$PORT_A" "127.0.0.1:$PORT_B" \
    "$RESULTS_DIR/nginx-access.log" "$RESULTS_DIR/$name.nginx-error.log" >> "$SUMMARY" <<'EOF'
import json, sys, collections
name, w, t0, tk, tb, te, a, b, access, errors = sys.argv[1:]
d = json.loads(w); t0, tk, tb, te = float(t0), float(tk), float(tb), float(te)
err_lines = open(errors).read().splitlines()
in_flight = sum(1 for l in err_lines if "[error]" in l and "while reading response header from upstream" in l and a in l)
refused = sum(1 for l in err_lines if "Connection refused" in l)
per_s = collections.OrderedDict()
for line in open(access):
    ts, status, ups = line.split(" ", 2)
    ts = float(ts)
    if ts < t0 or ts > te:
        continue
    s = int(ts - t0)
    row = per_s.setdefault(s, collections.Counter())
    row["all"] += 1
    if not status.startswith("2"):
        row["failed"] += 1
    node = ups.strip().split(", ")[-1]
    row["A" if node == a else "B" if node == b else "other"] += 1
d.update(name=name, kill_at_s=round(tk - t0, 2), back_at_s=round(tb - t0, 2),
         nginx_in_flight_on_killed=in_flight, nginx_refused_then_retried=refused,
         timeline=[[s, r["all"], r["failed"], r["A"], r["B"]] for s, r in per_s.items()])
print(json.dumps(d))
EOF
  tail -n1 "$SUMMARY" | python3 -c 'import json,sys; d=json.load(sys.stdin); e=d["err_connect"]+d["err_read"]+d["err_write"]+d["err_timeout"]
print("   %-26s %8.0f req/s  %d requests, non-2xx %d, socket errors %d; nginx: %d in flight on the killed node, %d refused connections passed on to B; killed at %.1f s, ready again at %.1f s" % (d["name"], d["rps"], d["requests"], d["non2xx"], e, d["nginx_in_flight_on_killed"], d["nginx_refused_then_retried"], d["kill_at_s"], d["back_at_s"]))
print("     second: answers (failed) A/B")
for s, n, f, a, b in d["timeline"]:
    print("     %3d: %6d (%d) %d/%d" % (s, n, f, a, b))'
}
echo "== through nginx for $KILL_DUR: node A SIGKILLed at ${KILL_AT} s, started again ${RESTART_AFTER} s later"
kill_run kill_token_cc "$PROXY/token" wrk-client-credentials.lua
kill_run kill_discovery "$PROXY/.well-known/openid-configuration" wrk-get.lua

echo
echo "== results (dir $RESULTS_DIR)"
cat "$RESULTS_DIR/versions.txt"
python3 - "$SUMMARY" <<'EOF'
import json, sys
rows = {d["name"]: d for d in (json.loads(l) for l in open(sys.argv[1]) if l.strip())}
print("| test | req/s | p50 ms | p99 ms | non-2xx | socket errors | machine CPU % |")
print("|---|---:|---:|---:|---:|---:|---:|")
for d in rows.values():
    e = d["err_connect"] + d["err_read"] + d["err_write"] + d["err_timeout"]
    print(f"| {d['name']} | {d['rps']:.0f} | {d['p50_us']/1000:.2f} | {d['p99_us']/1000:.2f} | {d['non2xx']} | {e} | {d.get('machine_cpu_pct', '')} |")
for ep in ("discovery", "token_cc"):
    a, b = rows.get(f"{ep}_direct"), rows.get(f"{ep}_nginx")
    if a and b:
        print(f"{ep}: through nginx (TLS, two nodes) / direct (one node): {b['rps'] / a['rps']:.2f}")
for n in ("kill_token_cc", "kill_discovery"):
    d = rows.get(n)
    if d:
        e = d["err_connect"] + d["err_read"] + d["err_write"] + d["err_timeout"]
        failed = d["non2xx"] + e
        verdict = "every failure was in flight on the killed node" if failed <= d["nginx_in_flight_on_killed"] else "MORE failures than requests in flight on the killed node"
        print(f"{n}: {d['requests']} requests, {failed} failed, {d['nginx_in_flight_on_killed']} in flight on the killed node: {verdict}")
EOF
