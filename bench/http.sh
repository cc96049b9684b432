#!/usr/bin/env bash
# Side-by-side L7 benchmark: HAProxy, nginx-as-proxy and fulcrum in front of the same nginx
# origins, on loopback. fulcrum runs the very haproxy.cfg HAProxy runs.
#
#   bench/http.sh [RUNS] [SECONDS]      (defaults: 5 runs of 10 s per proxy and mode)
#
# The proxy under test is pinned to CPU 0, wrk and the origins to CPU 1. Runs are interleaved
# (haproxy, nginx, fulcrum, haproxy, ...) so drift hits all three alike. Prints medians of
# req/s, p50 and p99 and ratios to HAProxy, for keep-alive and for `Connection: close`
# (a new client connection per request; there the load side saturates, so req/s per proxy
# CPU-second is the fair comparison), and paced keep-alive (each connection waits 1 ms between
# an answer and its next request: the same offered load, about 30k req/s, below what either
# proxy can do, so latency percentiles compare the proxies and not how hard each pushes the
# load side, which shares its CPU with the origins).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/origins.sh
RUNS=${1:-5}
SECS=${2:-10}
CONNS=${CONNS:-50}
# PROXIES="haproxy fulcrum" skips nginx (quicker runs while working on fulcrum).
# FULCRUM_B=path/to/other/fulcrum adds that build as "fulcrum-b" (A/B of a change, HAProxy as control).
# PGO=1 builds the profile-guided binary (scripts/build-pgo.sh) and adds it as "fulcrum-pgo".
PROXIES=${PROXIES:-haproxy nginx fulcrum}
FULCRUM_B=${FULCRUM_B:-}
B_NAME=fulcrum-b
if [ -n "${PGO:-}" ]; then
  scripts/build-pgo.sh >&2
  FULCRUM_B=$PWD/target/pgo/fulcrum B_NAME=fulcrum-pgo
fi
[ -n "$FULCRUM_B" ] && PROXIES="$PROXIES $B_NAME"

MODES=${MODES:-keepalive close paced}
WORK=$(mktemp -d /tmp/fulcrum-bench.XXXXXX)
trap stop_all EXIT

for cmd in haproxy nginx wrk taskset; do
  command -v "$cmd" >/dev/null || { echo "bench: $cmd missing (apt-get install -y haproxy nginx wrk util-linux)"; exit 1; }
done
cargo build --release -q -p fulcrum
FULCRUM=target/release/fulcrum

O1=18081 O2=18082 HP=18090 NP=18091 FP=18092 BP=18093

# --- origins: nginx, small fixed body --------------------------------------------------------
mkdir -p "$WORK/nginx-origin" "$WORK/nginx-proxy"
origin_conf "$WORK/nginx-origin" $O1 $O2 > "$WORK/nginx-origin/nginx.conf"
taskset -c 1 nginx -c "$WORK/nginx-origin/nginx.conf" -e "$WORK/nginx-origin/error.log" &
PIDS+=($!)

# --- the haproxy.cfg both HAProxy and fulcrum run ---------------------------------------------
bench_cfg $HP $O1 $O2 > "$WORK/haproxy.cfg"
bench_cfg $FP $O1 $O2 > "$WORK/fulcrum.cfg"
bench_cfg $BP $O1 $O2 > "$WORK/fulcrum-b.cfg"

cat > "$WORK/nginx-proxy/nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $WORK/nginx-proxy/nginx.pid;
error_log $WORK/nginx-proxy/error.log warn;
events { worker_connections 20000; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream origins { server 127.0.0.1:$O1; server 127.0.0.1:$O2; keepalive 256; }
  server {
    listen 127.0.0.1:$NP reuseport backlog=4096;
    location / {
      proxy_pass http://origins;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
  client_body_temp_path $WORK/nginx-proxy; proxy_temp_path $WORK/nginx-proxy;
  fastcgi_temp_path $WORK/nginx-proxy; uwsgi_temp_path $WORK/nginx-proxy; scgi_temp_path $WORK/nginx-proxy;
}
NGX

taskset -c 0 haproxy -f "$WORK/haproxy.cfg" -db >/dev/null 2>&1 &
HAPROXY_PID=$!; PIDS+=($HAPROXY_PID)
taskset -c 0 nginx -c "$WORK/nginx-proxy/nginx.conf" -e "$WORK/nginx-proxy/error.log" &
NGINX_PID=$!; PIDS+=($NGINX_PID)
taskset -c 0 "$FULCRUM" run -c "$WORK/fulcrum.cfg" 2>"$WORK/fulcrum.log" &
FULCRUM_PID=$!; PIDS+=($FULCRUM_PID)
PORTS="$HP $NP $FP"
if [ -n "$FULCRUM_B" ]; then
  taskset -c 0 "$FULCRUM_B" run -c "$WORK/fulcrum-b.cfg" 2>"$WORK/fulcrum-b.log" &
  FULCRUM_B_PID=$!; PIDS+=($FULCRUM_B_PID); PORTS="$PORTS $BP"
fi
sleep 1.5
for p in $PORTS; do
  curl -sf "http://127.0.0.1:$p/" >/dev/null || { echo "bench: proxy on :$p is not answering"; cat "$WORK/fulcrum.log"; exit 1; }
done

# perf counters per request when perf can read them (root, or perf_event_paranoid <= 1).
PERF=""
# (A guest without a virtual PMU answers "<not supported>": no counters then.)
if command -v perf >/dev/null && perf stat -e instructions:u -x, -- true 2>&1 >/dev/null | grep -q '^[0-9]'; then PERF=1; fi

# wrk's latency percentiles in ms
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000}; printf "%.3f", v}'; }

run_one() { # name port pid mode
  local name=$1 port=$2 pid=$3 mode=$4 hdr=()
  [ "$mode" = close ] && hdr=(-H "Connection: close")
  [ "$mode" = paced ] && hdr=(-s bench/paced.lua)
  local c0; c0=$(cpu_ticks "$pid")
  local out
  if [ -n "$PERF" ]; then
    # Hardware counters of the proxy process over the run: instructions do not depend on
    # how busy the host is, so they compare the proxies' work per request without the noise.
    # nginx: count the worker (a child of the master) as well.
    local pids; pids=$(echo "$pid" $(pgrep -P "$pid" || true) | tr ' ' ',')
    out=$(perf stat -e instructions:u,instructions:k,cycles:u,cycles:k -p "$pids" -x, -o "$WORK/perf.out" -- \
      taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" --latency "${hdr[@]}" "http://127.0.0.1:$port/" 2>&1)
  else
    out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" --latency "${hdr[@]}" "http://127.0.0.1:$port/" 2>&1)
  fi
  local c1; c1=$(cpu_ticks "$pid")
  local rps p50 p99 errs
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out" | to_ms)
  p99=$(awk '$1=="99%" {print $2}' <<<"$out" | to_ms)
  errs=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
  local cpu; cpu=$(awk -v a="$c0" -v b="$c1" -v hz="$HZ" -v s="$SECS" 'BEGIN {printf "%.3f", (b-a)/hz/s}')
  local per_cpu; per_cpu=$(awk -v r="$rps" -v c="$cpu" 'BEGIN {if (c>0) printf "%.0f", r/c; else print 0}')
  local counters="0 0 0 0"
  if [ -n "$PERF" ]; then
    local reqs; reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    counters=$(awk -F, -v n="$reqs" '{v[$3]=$1} END {if (n>0) printf "%.0f %.0f %.0f %.0f", v["instructions:u"]/n, v["instructions:k"]/n, v["cycles:u"]/n, v["cycles:k"]/n; else print "0 0 0 0"}' "$WORK/perf.out")
  fi
  echo "$mode $name $rps $p50 $p99 $cpu $per_cpu $counters" >> "$WORK/results"
  local inst=""
  [ -n "$PERF" ] && inst="inst/req u+k $(cut -d' ' -f1-2 <<<"$counters")"
  printf '  %-6s %-11s %10s req/s  p50 %7s ms  p99 %7s ms  proxy CPU %5s  req/s per CPU %8s  %s %s\n' "$mode" "$name" "$rps" "$p50" "$p99" "$cpu" "$per_cpu" "$inst" "$errs"
}

echo "machine: $(nproc) CPUs, $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ *//'), kernel $(uname -r)"
echo "versions: $(haproxy -v | head -1 | cut -d' ' -f1-3), $(nginx -v 2>&1), fulcrum $($FULCRUM --version | cut -d' ' -f2)"
echo "wrk -t1 -c$CONNS -d${SECS}s; $RUNS interleaved runs per mode"
read -r -a ORDER <<<"$PROXIES"
for mode in $MODES; do
  for r in $(seq 1 "$RUNS"); do
    echo "run $r/$RUNS ($mode)"
    # The order rotates every round, so that no proxy always runs first (or right after the
    # same neighbour) while the host drifts.
    for i in $(seq 0 $((${#ORDER[@]} - 1))); do
      p=${ORDER[$(( (i + r - 1) % ${#ORDER[@]} ))]}
      case $p in
        haproxy) run_one haproxy $HP $HAPROXY_PID $mode ;;
        nginx) run_one nginx $NP $NGINX_PID $mode ;;
        fulcrum) run_one fulcrum $FP $FULCRUM_PID $mode ;;
        "$B_NAME") run_one "$B_NAME" $BP $FULCRUM_B_PID $mode ;;
      esac
    done
  done
done

echo
echo "| mode | proxy | req/s (median) | ratio to HAProxy | p50 ms | p99 ms | proxy CPU | req/s per CPU-second | ratio to HAProxy |"
echo "|---|---|---|---|---|---|---|---|---|"
python3 - "$WORK/results" "$MODES" "$PROXIES" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1])]
modes, proxies = sys.argv[2].split(), sys.argv[3].split()
def col(mode, name, i):
    return [float(r[i]) for r in rows if r[0] == mode and r[1] == name]
def med(mode, name, i):
    return st.median(col(mode, name, i))
for mode in modes:
    base_rps = med(mode, "haproxy", 2); base_pc = med(mode, "haproxy", 6)
    for name in proxies:
        rps = med(mode, name, 2); pc = med(mode, name, 6)
        print(f"| {mode} | {name} | {rps:,.0f} | {rps/base_rps:.2f} | {med(mode,name,3):.3f} | {med(mode,name,4):.3f} | {med(mode,name,5):.2f} | {pc:,.0f} | {pc/base_pc:.2f} |")
if any(len(r) > 7 and float(r[7]) > 0 for r in rows):
    print()
    print("Work per request, from the proxy's hardware counters (medians; instructions do not depend on the host's load):")
    print()
    print("| mode | proxy | instructions/req user | kernel | total | ratio to HAProxy | cycles/req user | kernel | total | ratio to HAProxy |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for mode in modes:
        bi = med(mode, "haproxy", 7) + med(mode, "haproxy", 8); bc = med(mode, "haproxy", 9) + med(mode, "haproxy", 10)
        for name in proxies:
            iu, ik, cu, ck = (med(mode, name, i) for i in (7, 8, 9, 10))
            print(f"| {mode} | {name} | {iu:,.0f} | {ik:,.0f} | {iu+ik:,.0f} | {(iu+ik)/bi:.2f} | {cu:,.0f} | {ck:,.0f} | {cu+ck:,.0f} | {(cu+ck)/bc:.2f} |")
# Paired: each round's runs are back to back, so the ratio within a round cancels the drift
# of the machine between rounds. Median and spread of those per-round ratios, and a 95 %
# bootstrap interval of the median (resampling rounds; fixed seed, so reruns of the same data
# print the same interval).
import random
def ci(r, n=4000):
    rng = random.Random(1)
    meds = sorted(st.median(rng.choices(r, k=len(r))) for _ in range(n))
    return meds[int(0.025 * n)], meds[int(0.975 * n) - 1]
print()
print("Per-round ratios to HAProxy (runs back to back within a round): median [min-max], 95 % interval of the median")
for mode in modes:
    for name in proxies:
        if name == "haproxy":
            continue
        for label, i in (("req/s", 2), ("p99", 4), ("req/s per CPU", 6)):
            r = [a / b for a, b in zip(col(mode, name, i), col(mode, "haproxy", i)) if b > 0]
            if r:
                lo, hi = ci(r)
                print(f"  {mode:9} {name:11} {label:14} {st.median(r):.3f}  [{min(r):.3f}-{max(r):.3f}]  CI {lo:.3f}-{hi:.3f}  n={len(r)}")
PY
