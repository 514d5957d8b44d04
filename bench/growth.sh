#!/usr/bin/env bash
# Sigil over years of data (issue 10), run by hand (never in CI): the code flow, refresh and
# introspection of refresh tokens (examples/flow_bench.rs, measurements flow / refresh /
# introspect) on an empty database, then again after seeding ROWS users and ROWS grants, each
# with a live refresh token, straight into the database. The goal: rates and p99 within 25% of
# the empty database, on SQLite and on PostgreSQL.
#
# Usage:  bash bench/growth.sh
#         ROWS=100000 DUR=5s BACKENDS=sqlite bash bench/growth.sh        (a quick check)
#
# Env knobs [defaults]: ROWS [1000000]  DUR [15s]  WARMUP [2s]  CONC [16]  BACKENDS ["sqlite postgres"]
#   PORT [3500]  PG_URL [postgres://postgres@127.0.0.1:5432/postgres]  RESULTS_DIR [WORK_DIR/results]
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
ROWS="${ROWS:-1000000}"; DUR="${DUR:-15s}"; WARMUP="${WARMUP:-2s}"; CONC="${CONC:-16}"
BACKENDS="${BACKENDS:-sqlite postgres}"; PORT="${PORT:-3500}"
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
WORK_DIR="$(mktemp -d -t sigil-growth-bench-XXXXXX)"
RESULTS_DIR="${RESULTS_DIR:-$WORK_DIR/results}"
ISSUER="http://127.0.0.1:$PORT"
SIGIL="$ROOT/target/release/sigil"
FLOW_BENCH="$ROOT/target/release/examples/flow_bench"
REDIRECT_URI="http://127.0.0.1:9/cb"
mkdir -p "$RESULTS_DIR"
SUMMARY="$RESULTS_DIR/summary.jsonl"; : > "$SUMMARY"
die() { echo "FAIL: $*" >&2; exit 1; }

echo "== building sigil and examples/flow_bench (release)"
(cd "$ROOT" && cargo build --release --bin sigil --example flow_bench)

PID=""; DBS=()
cleanup() {
  [ -z "$PID" ] || { kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }
  local d; for d in "${DBS[@]}"; do psql "$PG_URL" -qc "DROP DATABASE IF EXISTS \"$d\" WITH (FORCE)" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
wait_http() { local deadline=$(( $(date +%s) + $2 )); until curl -sf -o /dev/null "$1"; do
  [ "$(date +%s)" -lt "$deadline" ] || return 1; sleep 0.05; done; }

# The seed, in SQL each backend runs itself: users seedNNNNNNN (the bench user's password
# hash), one grant each for client "bench" with a live refresh token (random hash).
seed_sqlite() { # file
  python3 - "$1" "$ROWS" <<'EOF'
import sqlite3, sys, time
db, rows = sys.argv[1], int(sys.argv[2])
now = int(time.time())
c = sqlite3.connect(db)
c.execute("PRAGMA journal_mode=WAL"); c.execute("PRAGMA synchronous=NORMAL")
phc = c.execute("SELECT password_hash FROM users WHERE username = 'bench'").fetchone()[0]
c.execute("""WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
  INSERT INTO users (id, username, email, email_verified, name, claims, password_hash, is_admin,
                     disabled, tokens_valid_after, created_at, updated_at)
  SELECT printf('seed-%07d', i), printf('seed%07d', i), printf('seed%07d@example.com', i), 1,
         NULL, '{}', ?, 0, 0, 0, ?, ? FROM n""", (rows, phc, now, now))
c.execute("""WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
  INSERT INTO grants (id, user_id, client_id, scope, sid, nonce, auth_time, amr, acr, created_at,
                      revoked_at, resource, expires_at)
  SELECT printf('seed-grant-%07d', i), printf('seed-%07d', i), 'bench', 'openid offline_access',
         lower(hex(randomblob(16))), NULL, ?, 'pwd', 'pwd', ?, NULL, NULL, ? FROM n""",
          (rows, now, now, now + 30 * 86400))
c.execute("""INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at, used_at)
  SELECT lower(hex(randomblob(32))), id, ?, ?, NULL FROM grants WHERE id LIKE 'seed-grant-%'""",
          (now, now + 30 * 86400))
c.commit()
c.execute("ANALYZE")
c.close()
EOF
}
seed_postgres() { # url
  psql "$1" -v ON_ERROR_STOP=1 -q <<EOF
INSERT INTO users (id, username, email, email_verified, name, claims, password_hash, is_admin,
                   disabled, tokens_valid_after, created_at, updated_at)
SELECT 'seed-' || lpad(i::text, 7, '0'), 'seed' || lpad(i::text, 7, '0'),
       'seed' || lpad(i::text, 7, '0') || '@example.com', true, NULL, '{}',
       (SELECT password_hash FROM users WHERE username = 'bench'), false, false, 0,
       extract(epoch FROM now())::bigint, extract(epoch FROM now())::bigint
FROM generate_series(1, $ROWS) AS i;
INSERT INTO grants (id, user_id, client_id, scope, sid, nonce, auth_time, amr, acr, created_at,
                    revoked_at, resource, expires_at)
SELECT 'seed-grant-' || lpad(i::text, 7, '0'), 'seed-' || lpad(i::text, 7, '0'), 'bench',
       'openid offline_access', md5(random()::text), NULL, extract(epoch FROM now())::bigint,
       'pwd', 'pwd', extract(epoch FROM now())::bigint, NULL, NULL,
       extract(epoch FROM now())::bigint + 30 * 86400
FROM generate_series(1, $ROWS) AS i;
INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at, used_at)
SELECT md5(random()::text) || md5(random()::text), id, created_at, expires_at, NULL
FROM grants WHERE id LIKE 'seed-grant-%';
VACUUM ANALYZE;
EOF
}

run_backend() { # sqlite | postgres
  local backend=$1 dir="$WORK_DIR/$1" db_url db="" key_env=()
  mkdir -p "$dir"
  if [ "$backend" = postgres ]; then
    db="sigil_growth_$(head -c6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    psql "$PG_URL" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE \"$db\"" >/dev/null || die "CREATE DATABASE"
    DBS+=("$db"); db_url="${PG_URL%/*}/$db"
    key_env=("SIGIL_MASTER_KEY=$(head -c32 /dev/urandom | base64)")
  else
    db_url="sqlite://$dir/sigil.db"
  fi
  printf 'issuer = "%s"\nbind = "127.0.0.1:%s"\ndatabase_url = "%s"\n\n[log]\nlevel = "warn"\n' \
    "$ISSUER" "$PORT" "$db_url" > "$dir/sigil.toml"
  sig() { env "${key_env[@]}" "$SIGIL" --config "$dir/sigil.toml" "$@"; }
  sig migrate > /dev/null 2>&1 || die "sigil migrate ($backend)"
  printf '%s' '{"redirect_uris":["'"$REDIRECT_URI"'"],"grant_types":["authorization_code","refresh_token"],"scope":"openid offline_access","skip_consent":true}' \
    | sig client add --client-id bench --metadata - > "$dir/client.json" || die "client add"
  local secret pw
  secret=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["client_secret"])' "$dir/client.json")
  pw="$(head -c18 /dev/urandom | base64 | tr -d '/+=')"
  printf '%s' "$pw" | sig user add bench --password-stdin > /dev/null || die "user add"

  for phase in empty seeded; do
    if [ "$phase" = seeded ]; then
      echo "== $backend: seeding $ROWS users, grants and refresh tokens"
      local t0; t0=$(date +%s)
      if [ "$backend" = postgres ]; then seed_postgres "$db_url"; else seed_sqlite "$dir/sigil.db"; fi
      echo "   seeded in $(( $(date +%s) - t0 )) s; database $(if [ "$backend" = postgres ]; then
        psql "$PG_URL" -Atqc "SELECT pg_size_pretty(pg_database_size('$db'))"; else du -ch "$dir"/sigil.db* | tail -n1 | cut -f1; fi)"
    fi
    env "${key_env[@]}" "$SIGIL" --config "$dir/sigil.toml" serve >> "$RESULTS_DIR/$backend.sigil.log" 2>&1 &
    PID=$!
    wait_http "$ISSUER/readyz" 60 || die "no /readyz ($backend)"
    CLIENT_SECRET="$secret" BENCH_PASSWORD="$pw" "$FLOW_BENCH" --issuer "$ISSUER" --client-id bench \
      --username bench --redirect-uri "$REDIRECT_URI" --duration "$DUR" --warmup "$WARMUP" \
      --concurrency "$CONC" --only "flow refresh introspect" --label "$backend/$phase" \
      --server-pid "$PID" --quiet-wait 120 2> "$RESULTS_DIR/$backend.$phase.err" \
      | tee "$RESULTS_DIR/$backend.$phase.out" | grep -v '^{' || true
    grep '^{' "$RESULTS_DIR/$backend.$phase.out" >> "$SUMMARY" || die "flow_bench ($backend $phase): $(tail -n 5 "$RESULTS_DIR/$backend.$phase.err")"
    kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  done
}

for backend in $BACKENDS; do run_backend "$backend"; done

echo
echo "== results: empty database against $ROWS users and grants with refresh tokens ($RESULTS_DIR)"
python3 - "$SUMMARY" <<'EOF'
import json, sys
rows = {}
for d in (json.loads(l) for l in open(sys.argv[1]) if l.strip()):
    backend, phase = d["label"].split("/")
    key = {"auth_code_flow": "flow", "refresh": "refresh", "introspect": "introspect"}[d["name"]]
    rows.setdefault((backend, d["name"]), {})[phase] = d[key]
for (backend, name), p in rows.items():
    e, s = p.get("empty"), p.get("seeded")
    if not e or not s: continue
    rate = s["per_s"] / e["per_s"] if e["per_s"] else float("nan")
    p99 = s["p99_ms"] / e["p99_ms"] if e["p99_ms"] else float("nan")
    ok = rate >= 0.75 and p99 <= 1.25
    print(f"{backend:8} {name:15} empty {e['per_s']:>9}/s p99 {e['p99_ms']:>7} ms | seeded {s['per_s']:>9}/s p99 {s['p99_ms']:>7} ms"
          f" | rate {rate:.2f}x, p99 {p99:.2f}x ({'within 25%' if ok else 'NOT within 25%'})"
          + (f"; errors {s['errors']}" if s.get("errors") else ""))
EOF
