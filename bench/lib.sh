# Shared by Sigil's wrk benchmarks (run.sh, protocol.sh): process helpers as in
# ../shared/bench/peer-bench.sh, and `measure`, one recorded wrk run with its CPU and memory
# figures appended to $SUMMARY. Expects THREADS CONNS DUR WARMUP QUIET_WAIT_S RESULTS_DIR
# SUMMARY CLK_TCK WRK_PIN ONLY to be set by the script that sources it.
wanted() { [ -z "$ONLY" ] || [[ " $ONLY " == *" $1 "* ]]; }
wanted_any() { local t; for t in "$@"; do wanted "$t" && return 0; done; return 1; }
die() { echo "FAIL: $*" >&2; exit 1; }

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_http() { # url timeout_s -> 0 when a 200 arrives
  local url=$1 deadline=$(( $(date +%s) + $2 ))
  until curl -sf -o /dev/null "$url"; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1; sleep 0.01
  done
}
stop_pid() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true
  local keep=() p; for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done; PIDS=("${keep[@]}"); }
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; } # utime+stime
sys_busy_total() { awk '/^cpu / { print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9 }' /proc/stat; }
wait_quiet() { # wait until <15% of the machine is busy over 1 s, at most QUIET_WAIT_S
  [ "$QUIET_WAIT_S" -gt 0 ] || return 0
  local deadline=$(( $(date +%s) + QUIET_WAIT_S )) b0 t0 b1 t1 pct
  while :; do
    read -r b0 t0 < <(sys_busy_total); sleep 1; read -r b1 t1 < <(sys_busy_total)
    pct=$(( (b1 - b0) * 100 / (t1 - t0 > 0 ? t1 - t0 : 1) ))
    [ "$pct" -lt 15 ] && return 0
    if [ "$(date +%s)" -ge "$deadline" ]; then echo "   (machine still ${pct}% busy; measuring anyway)"; return 0; fi
  done
}
kb() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }

measure() { # name pid url lua_path — a warm-up run, then the recorded one. Single-use lines
  # (bench/wrk-lines.lua) come from LINES_WARM for the warm-up and LINES_RUN for the record.
  local name=$1 pid=$2 url=$3 lua=$4
  wait_quiet
  LINES_FILE="${LINES_WARM:-}" WRK_THREADS="$THREADS" "${WRK_PIN[@]}" wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" -s "$lua" "$url" > /dev/null
  { echo 5 > "/proc/$pid/clear_refs"; } 2>/dev/null || true    # reset VmHWM to current RSS
  local c0 sb0 st0 sb1 st1 c1 hwm rss w wu ws we
  c0=$(cpu_ticks "$pid"); read -r sb0 st0 < <(sys_busy_total)
  LINES_FILE="${LINES_RUN:-}" WRK_THREADS="$THREADS" /usr/bin/time -f '%U %S %e' -o "$RESULTS_DIR/$name.wrktime" \
    "${WRK_PIN[@]}" wrk -t"$THREADS" -c"$CONNS" -d"$DUR" --latency -s "$lua" "$url" > "$RESULTS_DIR/$name.wrk.txt"
  c1=$(cpu_ticks "$pid"); read -r sb1 st1 < <(sys_busy_total)
  kill -0 "$pid" 2>/dev/null || die "server for $name died during the run"
  hwm=$(kb "$pid" VmHWM); rss=$(kb "$pid" VmRSS)
  w=$(sed -n 's/^WRKJSON //p' "$RESULTS_DIR/$name.wrk.txt")
  [ -n "$w" ] || { cat "$RESULTS_DIR/$name.wrk.txt" >&2; die "no WRKJSON line from wrk ($name)"; }
  read -r wu ws we < "$RESULTS_DIR/$name.wrktime"
  python3 - "$name" "$w" "$c0" "$c1" "$CLK_TCK" "$hwm" "$rss" "$wu" "$ws" "$url" "$sb0" "$st0" "$sb1" "$st1" >> "$SUMMARY" <<'EOF'
import json, sys, os
name, w, c0, c1, tck, hwm, rss, wu, ws, url, sb0, st0, sb1, st1 = sys.argv[1:]
d = json.loads(w); secs = d["duration_us"] / 1e6
srv = (int(c1) - int(c0)) / int(tck) / secs * 100
wrk = (float(wu) + float(ws)) / secs * 100
busy = (int(sb1) - int(sb0)) / max(1, int(st1) - int(st0)) * 100 * os.cpu_count()  # "% of one core"
d.update(name=name, url=url, srv_cpu_pct=round(srv, 1), wrk_cpu_pct=round(wrk, 1),
         other_cpu_pct=round(max(0.0, busy - srv - wrk), 1),
         peak_rss_mib=round(int(hwm) / 1024, 1), end_rss_mib=round(int(rss) / 1024, 1))
print(json.dumps(d))
EOF
  tail -n1 "$SUMMARY" | python3 -c 'import json,sys; d=json.load(sys.stdin); e=d["err_connect"]+d["err_read"]+d["err_write"]+d["err_timeout"]; print("   %-22s %9.0f req/s  p50 %.2f ms  p99 %.2f ms  non2xx %d  socket errors %d  srv CPU %s%%  wrk CPU %s%%  other CPU %s%%  peak RSS %s MiB" % (d["name"], d["rps"], d["p50_us"]/1000, d["p99_us"]/1000, d["non2xx"], e, d["srv_cpu_pct"], d["wrk_cpu_pct"], d["other_cpu_pct"], d["peak_rss_mib"]))'
}
