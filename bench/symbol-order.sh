#!/usr/bin/env bash
# Regenerates contrib/symbol-order.txt, the order in which the release build lays out Sigil's
# functions (build.rs hands it to LLD as --symbol-ordering-file). The kernel maps a binary's code
# a folio at a time, so what an idle server keeps resident is every folio that holds one function
# it ran; with the functions a start and an idle server run packed together at the front of
# .text, those are a few folios instead of two thirds of the code.
#
# The release server runs under valgrind's callgrind, which records every function executed:
#   1. `serve` on an empty database (first start: migrations, master key, signing keys);
#   2. `serve` again on that database, /readyz, a few seconds idle — what every start runs;
#   3. the common requests: discovery, JWKS, /authorize and the login page, client_credentials,
#      introspection, revocation, userinfo's refusal, metrics.
# The file lists the functions of (2) first, then those only (1) ran, then those only (3) ran.
# Symbols that a later build no longer has are skipped by the linker, so the file goes stale
# slowly; rerun this after large changes. Run by hand, never in CI.
#
# Usage:  bash bench/symbol-order.sh         (builds the release binary; needs valgrind)
#         NO_BUILD=1 SIGIL=path/to/sigil bash bench/symbol-order.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
PORT="${PORT:-3530}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
SIGIL="${SIGIL:-$TARGET/release/sigil}"
OUT="${OUT:-$ROOT/contrib/symbol-order.txt}"
ISSUER="http://127.0.0.1:$PORT"; WORK="$(mktemp -d -t sigil-order-XXXXXX)"
die() { echo "FAIL: $*" >&2; exit 1; }
[ -n "${NO_BUILD:-}" ] || (cd "$ROOT" && cargo build --release --bin sigil)
command -v valgrind >/dev/null || die "valgrind is missing"
PID=""
cleanup() { [ -z "$PID" ] || kill -TERM "$PID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
cat > "$WORK/sigil.toml" <<CONF
issuer = "$ISSUER"
bind = "127.0.0.1:$PORT"
database_url = "sqlite://$WORK/sigil.db"
CONF

start() { # phase: a server under callgrind, up once /readyz answers
  valgrind --tool=callgrind --demangle=no --dump-instr=no --callgrind-out-file="$WORK/cg.$1" \
    "$SIGIL" --config "$WORK/sigil.toml" serve > "$WORK/$1.log" 2>&1 &
  PID=$!
  local deadline=$(( $(date +%s) + 180 ))
  until curl -sf -o /dev/null "$ISSUER/readyz"; do
    [ "$(date +%s)" -lt "$deadline" ] || die "no /readyz under valgrind ($1)"; sleep 0.5; done
}
stop() { kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; PID=""; }

start first; stop
start idle; sleep 5; stop

printf '%s' '{"grant_types":["client_credentials"],"scope":"api","client_name":"order"}' \
  | "$SIGIL" --config "$WORK/sigil.toml" client add --client-id order --metadata - > "$WORK/client.json" \
  || die "client add"
SECRET=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["client_secret"])' "$WORK/client.json")
start requests
for _ in 1 2 3; do
  curl -sf -o /dev/null "$ISSUER/.well-known/openid-configuration"
  curl -sf -o /dev/null "$ISSUER/jwks"
  curl -s -o /dev/null "$ISSUER/authorize?client_id=order&response_type=code&scope=openid&redirect_uri=http://x/cb"
  curl -s -o /dev/null "$ISSUER/login"
  TOKEN=$(curl -s -u "order:$SECRET" -d grant_type=client_credentials -d scope=api "$ISSUER/token" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin).get("access_token",""))')
  [ -n "$TOKEN" ] || die "no client_credentials token"
  curl -s -o /dev/null -u "order:$SECRET" -d "token=$TOKEN" "$ISSUER/introspect"
  curl -s -o /dev/null -H "Authorization: Bearer $TOKEN" "$ISSUER/userinfo"
  curl -s -o /dev/null -u "order:$SECRET" -d "token=$TOKEN" "$ISSUER/revoke"
  curl -s -o /dev/null "$ISSUER/metrics"
done
stop

# Functions of the sigil object in each profile, in the order callgrind first wrote them.
RUSTC_V="$(rustc -V)"; COMMIT="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
python3 - "$WORK" "$SIGIL" "$OUT" "$RUSTC_V" "$COMMIT" <<'PY'
import re, sys, os
work, sigil, out, rustc, commit = sys.argv[1], os.path.realpath(sys.argv[2]), *sys.argv[3:]
def functions(path):
    obs, fns, cur_ob, seen = {}, {}, None, []
    names = set()
    def name_of(table, ref):
        m = re.match(r'\((\d+)\)(?: (.*))?$', ref)
        if not m:
            return ref
        if m.group(2) is not None:
            table[m.group(1)] = m.group(2)
        return table.get(m.group(1))
    for line in open(path, errors='replace'):
        line = line.rstrip('\n')
        if line.startswith('ob='):
            cur_ob = name_of(obs, line[3:])
        elif line.startswith(('cob=',)):
            name_of(obs, line[4:])
        elif line.startswith('cfn='):
            name_of(fns, line[4:])
        elif line.startswith('fn='):
            fn = name_of(fns, line[3:])
            fn = fn and re.sub(r"'\d+$", '', fn)   # callgrind's mark for a recursion level
            if cur_ob and os.path.realpath(cur_ob) == sigil and fn and not fn.startswith('0x') \
                    and fn not in names:
                names.add(fn); seen.append(fn)
    return seen
idle, first, reqs = (functions(f'{work}/cg.{p}') for p in ('idle', 'first', 'requests'))
order, have = [], set()
for group in (idle, first, reqs):
    for fn in group:
        if fn not in have:
            have.add(fn); order.append(fn)
with open(out, 'w') as f:
    f.write(f"# The order of Sigil's functions in a release build (build.rs: LLD --symbol-ordering-file),\n"
            f"# made by bench/symbol-order.sh at {commit} with {rustc}. The names carry hashes\n"
            f"# that change with the compiler and the dependencies' versions: remake it when they change.\n")
    f.write(''.join(fn + '\n' for fn in order))
print(f'{len(order)} functions: {len(idle)} idle, {len(order) - len(idle)} more from the first start and requests -> {out}')
PY
