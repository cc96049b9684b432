#!/usr/bin/env bash
# Memory per client connection, HAProxy and fulcrum side by side on the same haproxy.cfg.
#
#   bench/memory.sh [RUNS] [CONNS]      (defaults: 3 runs of 8000 connections per proxy and mode)
#
# idle:   CONNS keep-alive connections, one request answered on each (nginx origin), then held
#         open: the RSS growth of the proxy divided by CONNS.
# active: CONNS connections each with a request in flight, held by a slow origin that answers
#         none until all have reached it: client and server side of every exchange at once.
# Each measure starts a fresh proxy process. Runs alternate haproxy, fulcrum, haproxy, ...
# Prints every measure, the medians and fulcrum's ratio to HAProxy.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/origins.sh
RUNS=${1:-3}
N=${2:-8000}
PROXIES=${PROXIES:-haproxy fulcrum}
MODES=${MODES:-idle active}
FULCRUM=${FULCRUM_BIN:-target/release/fulcrum}
WORK=$(mktemp -d /tmp/fulcrum-mem.XXXXXX)
trap stop_all EXIT

for cmd in haproxy nginx python3; do
  command -v "$cmd" >/dev/null || { echo "bench: $cmd missing (apt-get install -y haproxy nginx python3)"; exit 1; }
done
[ -n "${FULCRUM_BIN:-}" ] || cargo build --release -q -p fulcrum
# Both sides of N exchanges, in the proxy and in the load script: 2N descriptors each.
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -gt $((2 * N + 1000)) ] || { echo "bench: need $((2 * N + 1000)) descriptors, the hard limit is $(ulimit -Hn)"; exit 1; }

O1=18181 O2=18182 PORT=18190 SLOW=18191
mkdir -p "$WORK/origin"
origin_conf "$WORK/origin" $O1 $O2 > "$WORK/origin/nginx.conf"
nginx -c "$WORK/origin/nginx.conf" -e "$WORK/origin/error.log" &
PIDS+=($!)

config() { # MODE -> haproxy.cfg: idle connections wait up to 300 s; the active backend is the slow origin
  local origin1=$O1 origin2=$O2
  [ "$1" = active ] && origin1=$SLOW origin2=$SLOW
  cat <<CFG
global
    nbthread 1
    maxconn $((N + 500))
defaults
    mode http
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-request 300s
    timeout http-keep-alive 300s
    http-reuse always
    option forwardfor
frontend fe
    bind 127.0.0.1:$PORT
    default_backend origins
backend origins
    balance roundrobin
    server o1 127.0.0.1:$origin1
    server o2 127.0.0.1:$origin2
CFG
}

measure() { # PROXY MODE -> per-connection bytes
  local proxy=$1 mode=$2 pid
  config "$mode" > "$WORK/$mode.cfg"
  case $proxy in
    haproxy) haproxy -f "$WORK/$mode.cfg" -db >"$WORK/$proxy.log" 2>&1 & ;;
    *) "$FULCRUM" run -c "$WORK/$mode.cfg" >"$WORK/$proxy.log" 2>&1 & ;;
  esac
  pid=$!
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.1
  done
  local line
  line=$(timeout 180 python3 bench/conns.py "$mode" "$PORT" "$pid" "$N" "$SLOW")
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  echo "$proxy $mode $line" >&2
  echo "$line" | sed 's/.*per_conn_bytes=//'
}

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "machine: $(nproc) CPUs, $(awk '/model name/ { $1 = $2 = $3 = ""; print; exit }' /proc/cpuinfo | sed 's/^ *//'), $(uname -r)"
echo "haproxy: $(haproxy -v | head -1)"
echo "fulcrum: $($FULCRUM --version 2>/dev/null || echo "$FULCRUM") ($(git rev-parse --short HEAD))"
echo "connections: $N per measure, $RUNS runs"
declare -A results
for mode in $MODES; do
  for run in $(seq "$RUNS"); do
    for proxy in $PROXIES; do
      results[$proxy.$mode]+="$(measure "$proxy" "$mode") "
    done
  done
done
echo
printf '%-8s %-8s %12s   %s\n' mode proxy "median B/conn" "runs"
for mode in $MODES; do
  for proxy in $PROXIES; do
    m=$(echo "${results[$proxy.$mode]}" | tr ' ' '\n' | grep . | median)
    printf '%-8s %-8s %12s   %s\n' "$mode" "$proxy" "$m" "${results[$proxy.$mode]}"
    eval "med_${proxy}_$mode=$m"
  done
  h=med_haproxy_$mode f=med_fulcrum_$mode
  [ -n "${!h:-}" ] && [ -n "${!f:-}" ] && awk -v f="${!f}" -v h="${!h}" -v m="$mode" 'BEGIN { printf "%-8s fulcrum/haproxy = %.2f\n", m, f / h }'
done
