#!/usr/bin/env bash
# Side-by-side TLS benchmark: HAProxy 2.6 (Debian's, OpenSSL 3.0), nginx and fulcrum
# terminating TLS 1.3 with one ECDSA P-256 certificate in front of the same two nginx origins.
#
#   bench/tls.sh [RUNS] [SECONDS]      (defaults: 5 runs of 10 s)
#
# The proxy is pinned to CPU 0, wrk and the origins to CPU 1; runs are interleaved and
# rotated as in bench/http.sh. Modes:
#   handshake: every request on a new connection with a full handshake (wrk with
#              `Connection: close`; wrk does not resume sessions): handshakes per proxy CPU-second;
#   keepalive: HTTPS keep-alive, 50 connections: req/s, p99, req/s per proxy CPU-second;
#   resume:    every request on a new connection that resumes the previous connection's TLS 1.3
#              session (a ticket), with bench/tls_resume.py in 3 processes (wrk and
#              `openssl s_time` do not resume TLS 1.3): resumed handshakes per proxy CPU-second
#              (the Python client, not the proxy, limits the rate);
#   h2:        HTTP/2 over TLS (ALPN h2) with h2load: 4 connections, 25 streams each in
#              flight: req/s and req/s per proxy CPU-second (h2load reports no p99).
# Prints medians and ratios to HAProxy, and the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/origins.sh
RUNS=${1:-5}
SECS=${2:-10}
PROXIES=${PROXIES:-haproxy nginx fulcrum}
MODES=${MODES:-handshake resume keepalive h2}
WORK=$(mktemp -d /tmp/fulcrum-tls.XXXXXX)
trap stop_all EXIT
for cmd in haproxy nginx wrk h2load openssl taskset python3; do
  command -v "$cmd" >/dev/null || { echo "bench: $cmd missing (apt-get install -y haproxy nginx wrk nghttp2-client openssl util-linux python3)"; exit 1; }
done
cargo build --release -q -p fulcrum
FULCRUM=target/release/fulcrum

O1=18481 O2=18482
declare -A PORT=([haproxy]=18500 [nginx]=18501 [fulcrum]=18502)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=bench.example \
  -addext subjectAltName=DNS:bench.example -keyout "$WORK/site.key" -out "$WORK/site.crt" 2>/dev/null
cat "$WORK/site.crt" "$WORK/site.key" > "$WORK/site.pem"

mkdir -p "$WORK/origin"
origin_conf "$WORK/origin" $O1 $O2 > "$WORK/origin/nginx.conf"
taskset -c 1 nginx -c "$WORK/origin/nginx.conf" -e "$WORK/origin/error.log" &
PIDS+=($!)

# The same haproxy.cfg for HAProxy and fulcrum: TLS 1.3 only, resumption off (full handshakes)
# but in the resume mode (tickets, as both proxies do by default).
tls_cfg() { # PORT MODE
  local cache="    tune.ssl.cachesize 0" tickets="no-tls-tickets"
  if [ "${2:-}" = resume ]; then cache="" tickets=""; fi
  cat <<CFG
global
    nbthread 1
    maxconn 8000
$cache
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    http-reuse always
frontend fe
    bind 127.0.0.1:$1 ssl crt $WORK/site.pem ssl-min-ver TLSv1.3 $tickets alpn h2,http/1.1
    default_backend origins
backend origins
    balance roundrobin
    server o1 127.0.0.1:$O1
    server o2 127.0.0.1:$O2
CFG
}

nginx_cfg() { # PORT DIR MODE
  local resume="off"
  [ "${3:-}" = resume ] && resume="on"
  cat <<NGX
worker_processes 1;
daemon off;
pid $2/nginx.pid;
error_log $2/error.log warn;
events { worker_connections 8000; }
http {
  access_log off;
  upstream origins { server 127.0.0.1:$O1; server 127.0.0.1:$O2; keepalive 64; }
  server {
    listen 127.0.0.1:$1 ssl http2 reuseport backlog=4096;
    ssl_certificate $WORK/site.crt;
    ssl_certificate_key $WORK/site.key;
    ssl_protocols TLSv1.3;
    ssl_session_tickets $resume;
    ssl_session_cache $( [ "$resume" = on ] && echo "shared:SSL:10m" || echo off );
    keepalive_requests 1000000;
    location / { proxy_pass http://origins; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
  client_body_temp_path $2; proxy_temp_path $2; fastcgi_temp_path $2; uwsgi_temp_path $2; scgi_temp_path $2;
}
NGX
}

start_proxy() { # NAME MODE -> PROXY_PID
  local name=$1 port=${PORT[$1]} mode=$2
  case $name in
    haproxy) tls_cfg "$port" "$mode" > "$WORK/h.cfg"; taskset -c 0 haproxy -f "$WORK/h.cfg" -db >/dev/null 2>&1 & ;;
    nginx) mkdir -p "$WORK/ngx"; nginx_cfg "$port" "$WORK/ngx" "$mode" > "$WORK/ngx/nginx.conf"; taskset -c 0 nginx -c "$WORK/ngx/nginx.conf" -e "$WORK/ngx/error.log" & ;;
    fulcrum) tls_cfg "$port" "$mode" > "$WORK/f.cfg"; taskset -c 0 "$FULCRUM" run -c "$WORK/f.cfg" 2>"$WORK/fulcrum.log" & ;;
  esac
  PROXY_PID=$!
  for _ in $(seq 1 50); do
    (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench: $name does not listen"; exit 1
}

to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000}; printf "%.3f", v}'; }

measure() { # MODE NAME
  local mode=$1 name=$2 port=${PORT[$2]} hdr=()
  [ "$mode" = handshake ] && hdr=(-H "Connection: close")
  start_proxy "$name" "$mode"
  local pid=$PROXY_PID c0 c1 out
  c0=$(cpu_ticks "$pid")
  local rps p99 cpu errs
  if [ "$mode" = resume ]; then
    out=$(taskset -c 1 python3 bench/tls_resume.py 127.0.0.1 "$port" "$SECS" 3 2>&1)
    c1=$(cpu_ticks "$pid")
    rps=$(awk -v s="$SECS" '/^handshakes/ {printf "%.1f", $4 / s}' <<<"$out")
    p99=0
    errs="$out"
  elif [ "$mode" = h2 ]; then
    out=$(taskset -c 1 h2load -c 4 -m 25 -D "$SECS" "https://127.0.0.1:$port/" 2>&1)
    c1=$(cpu_ticks "$pid")
    rps=$(awk '/^finished in/ {print $4}' <<<"$out")
    p99=0
    errs=$(awk '/^requests:/ {print}' <<<"$out")
  else
    out=$(taskset -c 1 wrk -t1 -c50 -d"${SECS}s" --latency "${hdr[@]}" "https://127.0.0.1:$port/" 2>&1)
    c1=$(cpu_ticks "$pid")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out" | to_ms)
    errs=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
  fi
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  cpu=$(awk -v a="$c0" -v b="$c1" -v hz="$HZ" -v s="$SECS" 'BEGIN {printf "%.3f", (b-a)/hz/s}')
  echo "$mode $name $rps $p99 $cpu" >> "$WORK/results"
  printf '  %-9s %-8s %10s req/s  p99 %8s ms  proxy CPU %s  %s\n' "$mode" "$name" "$rps" "$p99" "$cpu" "$errs"
}

echo "machine: $(nproc) CPUs, $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ *//'), kernel $(uname -r)"
echo "versions: $(haproxy -v | head -1 | cut -d' ' -f1-3) ($(haproxy -vv | sed -n "s/.*Running on OpenSSL version : \\(OpenSSL [0-9.]*\\).*/\\1/p")), $(nginx -v 2>&1), fulcrum $($FULCRUM --version | cut -d' ' -f2) (rustls, ring)"
echo "$RUNS interleaved runs of ${SECS}s per mode; TLS 1.3, ECDSA P-256, no resumption"
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
def col(mode, name, i):
    return [float(r[i]) for r in rows if r[0] == mode and r[1] == name and len(r) > i and r[i] not in ("", "None")]
print("| mode | proxy | req/s (median) | ratio to HAProxy | p99 ms | proxy CPU | per CPU-second | ratio to HAProxy |")
print("|---|---|---|---|---|---|---|---|")
for mode in modes:
    base = col(mode, "haproxy", 2)
    if not base:
        continue
    bpc = st.median([v / c for v, c in zip(base, col(mode, "haproxy", 4)) if c > 0])
    for name in proxies:
        v, p, c = col(mode, name, 2), col(mode, name, 3), col(mode, name, 4)
        if not v:
            continue
        pc = st.median([x / y for x, y in zip(v, c) if y > 0])
        print(f"| {mode} | {name} | {st.median(v):,.0f} | {st.median(v) / st.median(base):.2f} | {st.median(p):.2f} | {st.median(c):.2f} | {pc:,.0f} | {pc / bpc:.2f} |")
PY
