#!/usr/bin/env bash
# Sigil purge soak, run by hand (never in CI): SECURITY.md 27 / DESIGN.md "Maintenance" say every
# table with expiring rows stays the size of its live data. This runs a release build of Sigil
# with short lifetimes while a load driver (Python, standard library only) keeps creating rows,
# and samples the row count of every table every 30 s: after each table's first lifetime its
# count must be flat, which is judged independently of the load's pace: no sample may hold
# more rows than the load created within the table's lifetime (plus 40 s for the purge
# interval), the bound shown as "max/bound".
#
# Lifetimes: login.request_ttl = 1m, login.window = 1m, sessions.idle_timeout = 1m,
# sessions.lifetime = 2m, tokens.refresh_ttl = 5m, maintenance.interval = 10s. Codes live 60 s.
# A grant lives until no token of it can be valid: the longest access token (15 min) plus the
# clock skew after its last token, so the grants table settles only after ~17 min (DUR=25m shows
# it; the other tables settle within 6 min).
#
# Load (each kind paced on its own thread):
#   sign-ins      GET /authorize (PKCE S256) -> login page -> POST /login -> code -> POST /token:
#                 a new session, grant, code and refresh token each time; the refresh token joins
#                 a pool (at most POOL tokens; older ones are left to expire)
#   abandoned     GET /authorize from a fresh browser, each from its own address behind the
#                 trusted proxy (X-Forwarded-For), never finished: a parked request each; every
#                 FAIL_EVERY-th also posts a wrong password for an unknown user (login failures)
#   refreshes     POST /token grant_type=refresh_token on a pooled token; the new one goes back
#
# Usage:  bash bench/purge-soak.sh                     (from anywhere; 10 minutes on SQLite)
#         DUR=25m bash bench/purge-soak.sh             (long enough for grants to settle too)
#         BACKEND=postgres bash bench/purge-soak.sh
#
# Builds `sigil` (release) unless SIGIL is given, works in a fresh temporary directory (on
# PostgreSQL in a fresh database sigil_soak_<random> on PG_URL's server, dropped at the end),
# registers client "soak" (skip_consent), adds user "soak", starts `sigil serve`, runs the load
# and the sampler, stops the server by its PID.
#
# Env knobs (defaults in brackets):
#   DUR [10m]  SAMPLE_S [30]  BACKEND [sqlite] (or postgres)  PORT [3400]
#   SIGNINS [2]  ABANDONS [5]  REFRESHES [5]   per second each
#   FAIL_EVERY [3]  POOL [200]
#   PG_URL [postgres://postgres@127.0.0.1:5432/postgres]   where CREATE/DROP DATABASE run
#   SIGIL [CARGO_TARGET_DIR or REPO/target]/release/sigil
#   RESULTS_DIR [WORK_DIR/results]   samples.jsonl, the server log, the driver's output
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"

DUR="${DUR:-10m}"; SAMPLE_S="${SAMPLE_S:-30}"; BACKEND="${BACKEND:-sqlite}"; PORT="${PORT:-3400}"
SIGNINS="${SIGNINS:-2}"; ABANDONS="${ABANDONS:-5}"; REFRESHES="${REFRESHES:-5}"
FAIL_EVERY="${FAIL_EVERY:-3}"; POOL="${POOL:-200}"
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
WORK_DIR="$(mktemp -d -t sigil-purge-soak-XXXXXX)"
RESULTS_DIR="${RESULTS_DIR:-$WORK_DIR/results}"
ISSUER="http://127.0.0.1:$PORT"
REDIRECT_URI="http://127.0.0.1:9/cb"
BUILT_SIGIL="${CARGO_TARGET_DIR:-$ROOT/target}/release/sigil"
SIGIL="${SIGIL:-$BUILT_SIGIL}"

mkdir -p "$RESULTS_DIR"
die() { echo "FAIL: $*" >&2; exit 1; }
for tool in curl python3; do command -v "$tool" >/dev/null 2>&1 || die "$tool is needed"; done
case "$DUR" in *m) DUR_S=$(( ${DUR%m} * 60 ));; *s) DUR_S=${DUR%s};; *) die "DUR is like 10m or 600s";; esac
case "$BACKEND" in
  sqlite) ;;
  postgres) command -v psql >/dev/null 2>&1 || die "psql is needed for BACKEND=postgres"
            psql "$PG_URL" -v ON_ERROR_STOP=1 -Atqc 'SELECT 1' >/dev/null || die "cannot reach $PG_URL" ;;
  *) die "BACKEND is sqlite or postgres" ;;
esac

if [ "$SIGIL" = "$BUILT_SIGIL" ]; then
  echo "== building sigil (release)"
  (cd "$ROOT" && cargo build --release --bin sigil)
fi

# ---------------------------------------------------------------- process helpers (as flow.sh)
PIDS=(); PG_DB=""
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  if [ -n "$PG_DB" ]; then
    psql "$PG_URL" -qc "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >/dev/null 2>&1 \
      || echo "   (could not drop database $PG_DB; drop it by hand)" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_http() { # url timeout_s -> 0 when a 200 arrives
  local url=$1 deadline=$(( $(date +%s) + $2 ))
  until curl -sf -o /dev/null "$url"; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1; sleep 0.05
  done
}

# ---------------------------------------------------------------- set up
dir="$WORK_DIR/$BACKEND"; mkdir -p "$dir"; key_env=()
if [ "$BACKEND" = postgres ]; then
  PG_DB="sigil_soak_$(head -c6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  psql "$PG_URL" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE \"$PG_DB\"" >/dev/null || die "CREATE DATABASE"
  db_url="${PG_URL%/*}/$PG_DB"
  key_env=("SIGIL_MASTER_KEY=$(head -c32 /dev/urandom | base64)")
else
  db_url="sqlite://$dir/sigil.db"
fi
cat > "$dir/sigil.toml" <<EOF
issuer = "$ISSUER"
bind = "127.0.0.1:$PORT"
database_url = "$db_url"

[log]
level = "warn"

[login]
request_ttl = "1m"
window = "1m"

[sessions]
idle_timeout = "1m"
lifetime = "2m"

[tokens]
refresh_ttl = "5m"

[maintenance]
interval = "10s"

[http]
trusted_proxies = ["127.0.0.1/32"]
EOF
sig() { env "${key_env[@]}" "$SIGIL" --config "$dir/sigil.toml" "$@"; }
echo "== $BACKEND: work dir $dir${PG_DB:+, database $PG_DB}; $DUR, samples every ${SAMPLE_S}s"
sig migrate > "$RESULTS_DIR/migrate.log" 2>&1 || { cat "$RESULTS_DIR/migrate.log" >&2; die "sigil migrate"; }
printf '%s' '{"redirect_uris":["'"$REDIRECT_URI"'"],"grant_types":["authorization_code","refresh_token"],"scope":"openid offline_access","skip_consent":true,"client_name":"soak"}' \
  | sig client add --client-id soak --metadata - > "$RESULTS_DIR/client.json" 2> "$RESULTS_DIR/client.err" \
  || { cat "$RESULTS_DIR/client.err" >&2; die "sigil client add"; }
secret=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["client_secret"])' "$RESULTS_DIR/client.json")
pw="$(head -c18 /dev/urandom | base64 | tr -d '/+=')"
printf '%s' "$pw" | sig user add soak --password-stdin > /dev/null 2> "$RESULTS_DIR/user.err" \
  || { cat "$RESULTS_DIR/user.err" >&2; die "sigil user add"; }

port_free "$PORT" || die "port $PORT busy"
env "${key_env[@]}" "$SIGIL" --config "$dir/sigil.toml" serve >> "$RESULTS_DIR/sigil.log" 2>&1 &
pid=$!; PIDS+=("$pid")
wait_http "$ISSUER/readyz" 30 || { cat "$RESULTS_DIR/sigil.log" >&2; die "no 200 on /readyz within 30 s"; }
echo "   sigil pid $pid ($("$SIGIL" --version 2>/dev/null | head -n1); git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'))"

# ---------------------------------------------------------------- load and samples
export ISSUER REDIRECT_URI DUR_S SAMPLE_S SIGNINS ABANDONS REFRESHES FAIL_EVERY POOL BACKEND PG_URL
export DB_URL="$db_url" SERVER_PID="$pid" SAMPLES="$RESULTS_DIR/samples.jsonl"
CLIENT_SECRET="$secret" SOAK_PASSWORD="$pw" python3 - <<'EOF' 2>&1 | tee "$RESULTS_DIR/driver.txt"
import base64, hashlib, http.client, json, os, random, re, secrets, sqlite3, subprocess
import threading, time, urllib.parse

E = os.environ
ISSUER, REDIRECT = E["ISSUER"], E["REDIRECT_URI"]
DUR, EVERY = int(E["DUR_S"]), int(E["SAMPLE_S"])
SECRET, PASSWORD = E["CLIENT_SECRET"], E["SOAK_PASSWORD"]
HOST = urllib.parse.urlsplit(ISSUER).netloc
TABLES = ["auth_requests", "sessions", "authorization_codes", "refresh_tokens", "grants",
          "login_failures", "trusted_devices", "revoked_tokens", "client_assertions"]
# What creates each table's rows (load counters x rows each) and how long a row may live: a
# table is flat when every sample holds no more rows than were created within that lifetime
# plus SLACK (a purge interval, the run, the sample's own 30 s), whatever the load did.
LIFE = {"auth_requests": ({"abandon": 1}, 60), "sessions": ({"signin": 1}, 60),
        "authorization_codes": ({"signin": 1}, 60), "refresh_tokens": ({"signin": 1, "refresh": 1}, 300),
        "grants": ({"signin": 1}, 60 + 900 + 60), "login_failures": ({"fail": 2}, 60)}
SLACK = 40
BASIC = "Basic " + base64.b64encode(f"soak:{SECRET}".encode()).decode()

def request(method, url, headers=None, body=None):
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(HOST, timeout=30)
    h = {"Connection": "close", **(headers or {})}
    if body is not None:
        body = urllib.parse.urlencode(body)
        h["Content-Type"] = "application/x-www-form-urlencoded"
    c.request(method, u.path + ("?" + u.query if u.query else ""), body=body, headers=h)
    r = c.getresponse()
    data = r.read().decode("utf-8", "replace")
    out = (r.status, r.getheader("Location", ""), r.headers.get_all("Set-Cookie") or [], data)
    c.close()
    return out

class Browser:
    def __init__(self, address=None):
        self.cookies, self.address = {}, address
    def go(self, method, url, body=None, headers=None):
        h = dict(headers or {})
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if self.address:
            h["X-Forwarded-For"] = self.address
        status, location, set_cookies, data = request(method, url, h, body)
        for sc in set_cookies:
            name, _, value = sc.split(";", 1)[0].partition("=")
            self.cookies[name.strip()] = value.strip()
        if location.startswith("/"):
            location = ISSUER + location
        return status, location, data

def hidden(html, name):
    m = re.search(r'name="%s" value="([^"]*)"' % name, html)
    return m.group(1) if m else None

def authorize(b):
    verifier = secrets.token_urlsafe(32)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    q = urllib.parse.urlencode({"client_id": "soak", "redirect_uri": REDIRECT, "response_type": "code",
                                "scope": "openid offline_access", "state": "s", "nonce": "n",
                                "code_challenge": challenge, "code_challenge_method": "S256"})
    status, location, _ = b.go("GET", f"{ISSUER}/authorize?{q}")
    if status != 303 or "/login?" not in location:
        raise RuntimeError(f"authorize: {status} {location[:80]}")
    return verifier, location

def login_form(b, login_url, username, password):
    status, _, html = b.go("GET", login_url)
    if status != 200:
        raise RuntimeError(f"login page: {status}")
    form = {"request": hidden(html, "request"), "csrf_token": hidden(html, "csrf_token"),
            "username": username, "password": password}
    return b.go("POST", f"{ISSUER}/login", form)

pool, pool_lock = [], threading.Lock()
counts = {k: 0 for k in ("signin", "abandon", "fail", "refresh")}
errors = {}

def error(kind, e):
    key = f"{kind}: {e}"[:120]
    errors[key] = errors.get(key, 0) + 1

def sign_in():
    b = Browser()
    verifier, login = authorize(b)
    status, location, _ = login_form(b, login, "soak", PASSWORD)
    for _ in range(5):
        if status != 303 or location.startswith(REDIRECT):
            break
        status, location, _ = b.go("GET", location)
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query).get("code", [None])[0]
    if not code:
        raise RuntimeError(f"no code: {status} {location[:80]}")
    status, _, _, body = request("POST", f"{ISSUER}/token", {"Authorization": BASIC},
                                 {"grant_type": "authorization_code", "code": code,
                                  "redirect_uri": REDIRECT, "code_verifier": verifier})
    if status != 200:
        raise RuntimeError(f"token: {status} {body[:80]}")
    with pool_lock:
        pool.append(json.loads(body)["refresh_token"])
        del pool[:-int(E["POOL"])]
    counts["signin"] += 1

def abandon():
    n = counts["abandon"]
    b = Browser(f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}")
    _, login = authorize(b)
    counts["abandon"] += 1
    if n % int(E["FAIL_EVERY"]) == 0:
        status, _, _ = login_form(b, login, f"ghost-{secrets.token_hex(4)}", "wrong")
        if status != 401:
            raise RuntimeError(f"wrong password: {status}")
        counts["fail"] += 1

def refresh():
    with pool_lock:
        token = pool.pop(0) if pool else None
    if token is None:
        return
    status, _, _, body = request("POST", f"{ISSUER}/token", {"Authorization": BASIC},
                                 {"grant_type": "refresh_token", "refresh_token": token})
    if status != 200:
        raise RuntimeError(f"refresh: {status} {body[:80]}")
    with pool_lock:
        pool.append(json.loads(body)["refresh_token"])
    counts["refresh"] += 1

start = time.time()
def paced(kind, fn, rate):
    i = 0
    while rate > 0 and time.time() - start < DUR:
        wait = start + i / rate - time.time()
        if wait > 0:
            time.sleep(wait)
        i += 1
        try:
            fn()
        except Exception as e:
            error(kind, e)

def row_counts():
    if E["BACKEND"] == "sqlite":
        path = E["DB_URL"].removeprefix("sqlite://")
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            got = {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}
        finally:
            db.close()
        size = sum(os.path.getsize(path + s) for s in ("", "-wal") if os.path.exists(path + s))
    else:
        sql = " UNION ALL ".join(f"SELECT '{t}', COUNT(*) FROM {t}" for t in TABLES)
        sql += " UNION ALL SELECT 'size', pg_database_size(current_database())"
        out = subprocess.run(["psql", E["DB_URL"], "-Atqc", sql], capture_output=True, text=True, check=True)
        got = dict((k, int(v)) for k, v in (l.split("|") for l in out.stdout.split()))
        size = got.pop("size")
    return got, size

def purged():
    try:
        _, _, _, text = request("GET", f"{ISSUER}/metrics")
    except Exception:
        return {}
    m = re.findall(r'sigil_purged_rows_total\{table="(\w+)"\} (\d+)', text)
    f = re.findall(r'sigil_purge_failures_total\{table="(\w+)"\} (\d+)', text)
    return {"purged": {t: int(n) for t, n in m}, "failures": sum(int(n) for _, n in f)}

def rss_mib():
    for line in open(f"/proc/{E['SERVER_PID']}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024

threads = [threading.Thread(target=paced, args=a, daemon=True) for a in
           (("signin", sign_in, float(E["SIGNINS"])), ("abandon", abandon, float(E["ABANDONS"])),
            ("refresh", refresh, float(E["REFRESHES"])))]
for t in threads:
    t.start()
samples = []
short = {"auth_requests": "auth_req", "sessions": "sessions", "authorization_codes": "codes",
         "refresh_tokens": "refresh", "grants": "grants", "login_failures": "failures",
         "trusted_devices": "devices", "revoked_tokens": "revoked", "client_assertions": "assert"}
print(" t(s) " + "".join(f"{short[t]:>9}" for t in TABLES) + "   db KiB  RSS MiB  purged  fails  sign-ins abandoned refreshes")
with open(E["SAMPLES"], "w") as out:
    for k in range(DUR // EVERY + 1):
        time.sleep(max(0, start + k * EVERY - time.time()))
        got, size = row_counts()
        m = purged()
        s = {"t": k * EVERY, "rows": got, "db_bytes": size, "rss_mib": rss_mib(), **m, **dict(counts)}
        samples.append(s)
        out.write(json.dumps(s) + "\n"); out.flush()
        print(f"{s['t']:5d} " + "".join(f"{got[t]:9d}" for t in TABLES)
              + f" {size // 1024:8d} {s['rss_mib']:8d} {sum(m.get('purged', {}).values()):7d} {m.get('failures', 0):6d}"
              + f" {counts['signin']:9d} {counts['abandon']:9d} {counts['refresh']:9d}", flush=True)
for t in threads:
    t.join(timeout=60)

print()
print(f"load: {counts['signin']} sign-ins, {counts['abandon']} abandoned authorizations "
      f"({counts['fail']} with a wrong password), {counts['refresh']} refreshes in {DUR} s")
for k, n in sorted(errors.items(), key=lambda x: -x[1]):
    print(f"   errors: {n} x {k}")
print()
print(f"{'table':20} {'judged from':>11} {'min':>7} {'max':>7} {'final':>7} {'max/bound':>9}  verdict")
bad = []
for t in TABLES:
    makers, life = LIFE.get(t, ({}, 0))
    judged, worst, over = [], 0.0, 0
    for s in samples:
        # The latest sample at least a lifetime plus the slack before this one.
        before = [p for p in samples if p["t"] <= s["t"] - life - SLACK]
        if not before:
            continue
        made = sum(n * (s[k] - before[-1][k]) for k, n in makers.items())
        bound = made + 5
        judged.append(s["rows"][t])
        worst = max(worst, s["rows"][t] / bound)
        over += s["rows"][t] > bound
    if len(judged) < 2:
        print(f"{t:20}  (run longer than {life + SLACK + 2 * EVERY} s to judge)")
        continue
    first = life + SLACK + EVERY - 1
    verdict = "flat" if over == 0 else f"GROWING ({over} samples over)"
    if over:
        bad.append(t)
    print(f"{t:20} {first // EVERY * EVERY:10d}s {min(judged):7d} {max(judged):7d} {judged[-1]:7d} {worst:9.2f}  {verdict}")
last = samples[-1]
print(f"\npurged rows by table: {json.dumps(last.get('purged', {}))}; purge failures: {last.get('failures')}")
print("verdict: " + ("every judged table is flat" if not bad else "growing: " + ", ".join(bad)))
EOF
kill -0 "$pid" 2>/dev/null || die "sigil died during the soak"
if grep -qE 'WARN|ERROR' "$RESULTS_DIR/sigil.log"; then
  echo "   server warnings/errors ($RESULTS_DIR/sigil.log):"
  grep -E 'WARN|ERROR' "$RESULTS_DIR/sigil.log" | sed -E 's/^[^ ]+ +//' | sort | uniq -c | sort -rn | head -n 10
fi
echo "== results in $RESULTS_DIR"
