#!/usr/bin/env bash
# Side-by-side L4 benchmark: HAProxy `mode tcp` (without and with `option splice-auto`), nginx
# `stream` and fulcrum running the same haproxy.cfg, on loopback.
#
#   bench/tcp.sh [RUNS] [SECONDS] [IDLE_CONNS]     (defaults: 5 runs of 10 s; 8000 idle connections)
#
# The proxy under test is pinned to CPU 0; the load and the servers to CPU 1. Runs are
# interleaved and rotated as in bench/http.sh. Measures, per proxy:
#   stream1, stream4: iperf3 bulk throughput through the proxy (1 and 4 parallel streams), and
#                     the proxy's CPU: Gbit/s per proxy CPU-second is the fair comparison when
#                     the load side (one CPU for the iperf3 client and server) saturates first;
#   connrate:         short TCP connections carrying one HTTP request each (wrk with
#                     `Connection: close` through the proxy to nginx origins): connections/s and
#                     connections per proxy CPU-second;
#   memory:           RSS growth of a fresh proxy holding IDLE_CONNS idle connections (one
#                     request answered on each, then nothing; both sides open), per connection.
# Prints medians, ratios to HAProxy (without splice) and the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/origins.sh
RUNS=${1:-5}
SECS=${2:-10}
IDLE=${3:-8000}
PROXIES=${PROXIES:-haproxy haproxy-splice nginx fulcrum}
MODES=${MODES:-stream1 stream4 connrate memory}
WORK=$(mktemp -d /tmp/fulcrum-tcp.XXXXXX)
trap stop_all EXIT

for cmd in haproxy nginx wrk iperf3 taskset python3; do
  command -v "$cmd" >/dev/null || { echo "bench: $cmd missing (apt-get install -y haproxy nginx libnginx-mod-stream wrk iperf3 util-linux python3)"; exit 1; }
done
STREAM_MODULE=$(ls /usr/lib/nginx/modules/ngx_stream_module.so 2>/dev/null || true)
[ -n "$STREAM_MODULE" ] || { echo "bench: nginx's stream module missing (apt-get install -y libnginx-mod-stream)"; exit 1; }
cargo build --release -q -p fulcrum
FULCRUM=target/release/fulcrum
ulimit -n "$(ulimit -Hn)"

O1=18281 O2=18282 IPERF=18283
declare -A BASE=([haproxy]=18300 [haproxy-splice]=18310 [nginx]=18320 [fulcrum]=18330)

mkdir -p "$WORK/origin"
origin_conf "$WORK/origin" $O1 $O2 > "$WORK/origin/nginx.conf"
taskset -c 1 nginx -c "$WORK/origin/nginx.conf" -e "$WORK/origin/error.log" &
PIDS+=($!)
taskset -c 1 iperf3 -s -p $IPERF -1 >/dev/null 2>&1 &   # restarted per run below
IPERF_PID=$!

tcp_cfg() { # BASE_PORT [extra defaults line] [extra global line] (the descriptor hard limit here is 20000: maxconn and pipes fit in it)
  cat <<CFG
global
    nbthread 1
    maxconn 8500
${3:-}
defaults
    mode tcp
    timeout connect 5s
    timeout client 300s
    timeout server 300s
${2:-}
frontend bulk
    bind 127.0.0.1:$1
    default_backend bulk
backend bulk
    server iperf 127.0.0.1:$IPERF
frontend web
    bind 127.0.0.1:$(($1 + 1))
    default_backend web
backend web
    balance roundrobin
    server o1 127.0.0.1:$O1
    server o2 127.0.0.1:$O2
CFG
}

nginx_cfg() { # BASE_PORT DIR
  cat <<NGX
load_module $STREAM_MODULE;
worker_processes 1;
daemon off;
pid $2/nginx.pid;
error_log $2/error.log warn;
worker_rlimit_nofile 19000;
events { worker_connections 18000; }
stream {
  upstream bulk { server 127.0.0.1:$IPERF; }
  upstream web { server 127.0.0.1:$O1; server 127.0.0.1:$O2; }
  server { listen 127.0.0.1:$1 reuseport backlog=4096; proxy_pass bulk; proxy_timeout 300s; }
  server { listen 127.0.0.1:$(($1 + 1)) reuseport backlog=4096; proxy_pass web; proxy_timeout 300s; }
}
NGX
}

start_proxy() { # NAME -> PID in $PROXY_PID
  local name=$1 base=${BASE[$1]}
  case $name in
    haproxy) tcp_cfg "$base" > "$WORK/$name.cfg"; taskset -c 0 haproxy -f "$WORK/$name.cfg" -db >/dev/null 2>&1 & ;;
    haproxy-splice) tcp_cfg "$base" "    option splice-auto" "    maxpipes 1000" > "$WORK/$name.cfg"; taskset -c 0 haproxy -f "$WORK/$name.cfg" -db >/dev/null 2>&1 & ;;
    nginx) mkdir -p "$WORK/ngx"; nginx_cfg "$base" "$WORK/ngx" > "$WORK/ngx/nginx.conf"; taskset -c 0 nginx -c "$WORK/ngx/nginx.conf" -e "$WORK/ngx/error.log" & ;;
    fulcrum) tcp_cfg "$base" > "$WORK/$name.cfg"; taskset -c 0 "$FULCRUM" run -c "$WORK/$name.cfg" 2>"$WORK/fulcrum.log" & ;;
  esac
  PROXY_PID=$!
  for _ in $(seq 1 50); do
    (exec 3<>/dev/tcp/127.0.0.1/$((base + 1))) 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench: $name does not listen"; exit 1
}

stop_proxy() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }


measure() { # MODE NAME
  local mode=$1 name=$2 base=${BASE[$2]}
  start_proxy "$name"
  local pid=$PROXY_PID value cpu c0 c1
  case $mode in
    stream1|stream4)
      local streams=${mode#stream}
      kill "$IPERF_PID" 2>/dev/null || true; wait "$IPERF_PID" 2>/dev/null || true
      taskset -c 1 iperf3 -s -p $IPERF -1 >/dev/null 2>&1 &
      IPERF_PID=$!
      sleep 0.3
      c0=$(cpu_ticks "$pid")
      value=$(taskset -c 1 iperf3 -c 127.0.0.1 -p "$base" -t "$SECS" -P "$streams" -J 2>/dev/null |
        python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9, 3))')
      c1=$(cpu_ticks "$pid")
      ;;
    connrate)
      c0=$(cpu_ticks "$pid")
      value=$(taskset -c 1 wrk -t1 -c50 -d"${SECS}s" -H "Connection: close" "http://127.0.0.1:$((base + 1))/" | awk '/Requests\/sec/ {print $2}')
      c1=$(cpu_ticks "$pid")
      ;;
    memory)
      value=$(python3 ../shared/tools/idle_conns.py $((base + 1)) "$pid" "$IDLE" | sed -n 's/.*per_conn_bytes=\([0-9]*\).*/\1/p')
      c0=0 c1=0
      ;;
  esac
  cpu=$(awk -v a="$c0" -v b="$c1" -v hz="$HZ" -v s="$SECS" 'BEGIN {printf "%.3f", (b-a)/hz/s}')
  stop_proxy "$pid"
  echo "$mode $name $value $cpu" >> "$WORK/results"
  printf '  %-8s %-15s %12s  proxy CPU %s\n' "$mode" "$name" "$value" "$cpu"
}

echo "machine: $(nproc) CPUs, $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ *//'), kernel $(uname -r)"
echo "versions: $(haproxy -v | head -1 | cut -d' ' -f1-3), $(nginx -v 2>&1), $(iperf3 --version | head -1 | cut -d' ' -f1-2), fulcrum $($FULCRUM --version | cut -d' ' -f2)"
echo "$RUNS interleaved runs of ${SECS}s per mode; memory with $IDLE idle connections"
read -r -a ORDER <<<"$PROXIES"
for mode in $MODES; do
  for r in $(seq 1 "$RUNS"); do
    echo "run $r/$RUNS ($mode)"
    for i in $(seq 0 $((${#ORDER[@]} - 1))); do
      measure "$mode" "${ORDER[$(( (i + r - 1) % ${#ORDER[@]} ))]}"
    done
  done
done

echo
python3 - "$WORK/results" "$MODES" "$PROXIES" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1])]
modes, proxies = sys.argv[2].split(), sys.argv[3].split()
unit = {"stream1": "Gbit/s", "stream4": "Gbit/s", "connrate": "conn/s", "memory": "bytes/conn"}
def vals(mode, name, i):
    return [float(r[i]) for r in rows if r[0] == mode and r[1] == name and r[2] not in ("", "None")]
print("| mode | proxy | median | ratio to HAProxy | min–max | proxy CPU | per CPU-second | ratio to HAProxy |")
print("|---|---|---|---|---|---|---|---|")
for mode in modes:
    base = vals(mode, "haproxy", 2)
    bcpu = vals(mode, "haproxy", 3)
    if not base:
        continue
    b = st.median(base)
    bpc = st.median([v / c for v, c in zip(base, bcpu) if c > 0]) if any(c > 0 for c in bcpu) else 0
    for name in proxies:
        v = vals(mode, name, 2)
        c = vals(mode, name, 3)
        if not v:
            continue
        m = st.median(v)
        pcs = [x / y for x, y in zip(v, c) if y > 0]
        pc = st.median(pcs) if pcs else 0
        per = f"{pc:,.2f}" if pc else "–"
        ratio_pc = f"{pc / bpc:.2f}" if pc and bpc else "–"
        print(f"| {mode} ({unit[mode]}) | {name} | {m:,.3f} | {m / b:.2f} | {min(v):,.3f}–{max(v):,.3f} | {st.median(c) if c else 0:.2f} | {per} | {ratio_pc} |")
PY
