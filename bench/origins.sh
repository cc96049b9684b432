# Sourced by bench/http.sh, bench/profile.sh and scripts/build-pgo.sh: the nginx origins they
# measure against, the haproxy.cfg they run, and the clean-up of what they start.
#   origin_conf DIR PORT1 PORT2 > nginx.conf   (one worker, keep-alive, a fixed 42-byte body)
#   bench_cfg PORT O1 O2 > haproxy.cfg         (the benchmark's config, for HAProxy and fulcrum)
#   proxy_defaults                             (its global and defaults sections alone)
#   cpu_ticks PID                              (CPU ticks of a process and its children; $HZ per s)
#   PIDS+=($!) for each process started; trap stop_all EXIT kills them and removes $WORK
origin_conf() {
  local dir=$1 p1=$2 p2=$3
  cat <<NGX
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  server { listen 127.0.0.1:$p1 reuseport backlog=4096; location / { return 200 "hello from origin one, a small fixed body\n"; } }
  server { listen 127.0.0.1:$p2 reuseport backlog=4096; location / { return 200 "hello from origin two, a small fixed body\n"; } }
  client_body_temp_path $dir; proxy_temp_path $dir;
  fastcgi_temp_path $dir; uwsgi_temp_path $dir; scgi_temp_path $dir;
}
NGX
}

proxy_defaults() {
  cat <<CFG
global
    nbthread 1
    maxconn 8000
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    http-reuse always
    option forwardfor
CFG
}

bench_cfg() {
  proxy_defaults
  cat <<CFG
frontend fe
    bind 127.0.0.1:$1
    default_backend origins
backend origins
    balance roundrobin
    server o1 127.0.0.1:$2
    server o2 127.0.0.1:$3
CFG
}

# Total CPU ticks (user+system) of a process and its children (nginx: the worker is a child
# of the master); HZ ticks per second.
cpu_ticks() {
  local pid=$1 total=0
  for p in $pid $(pgrep -P "$pid" || true); do
    read -r -a f < "/proc/$p/stat"
    total=$((total + f[13] + f[14]))
  done
  echo $total
}
HZ=$(getconf CLK_TCK)

PIDS=()
stop_all() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.3
  rm -rf "$WORK"
}
