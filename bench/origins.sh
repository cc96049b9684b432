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

# RULES=1: a realistic rule set of 21 http-request/http-response rules (header rewriting,
# a map look-up, ACL denies, a variable, rate tracking by a stick table with a deny on the
# rate, which the benchmark never reaches) in the frontend, the same for HAProxy and fulcrum.
rules_block() {
  printf 'localhost gold\n127.0.0.1 silver\nexample.com bronze\n' > "$WORK/hosts.map"
  echo "    http-request set-header X-Tier %[req.hdr(host),lower,field(1,:),map($WORK/hosts.map,none)]"
  cat <<'RULES'
    stick-table type ip size 100k expire 30s store http_req_rate(10s)
    acl is_api path_beg /api
    acl is_static path_end .css .js .png
    http-request track-sc0 src
    http-request deny deny_status 429 if { sc_http_req_rate(0) gt 100000000 }
    http-request deny if { path_beg /admin } !{ src 10.0.0.0/8 }
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Real-IP %[src]
    http-request set-header X-Request-Host %[req.hdr(host),lower,field(1,:)]
    http-request del-header X-Api-Key
    http-request set-var(txn.path) path
    http-request set-header X-Api 1 if is_api
    http-request set-header X-Static 1 if is_static
    http-request add-header X-Client-Port %[src_port]
    http-request replace-header User-Agent ^(wrk)$ \1-bench
    http-request set-header X-Len %[var(txn.path),length]
    http-response set-header X-Frame-Options DENY
    http-response set-header X-Content-Type-Options nosniff
    http-response set-header Strict-Transport-Security "max-age=31536000"
    http-response del-header Server
    http-response set-header X-Path %[var(txn.path)]
    http-response add-header X-Rate %[sc_http_req_rate(0)]
RULES
}

bench_cfg() {
  proxy_defaults
  cat <<CFG
frontend fe
    bind 127.0.0.1:$1
CFG
  [ -n "${RULES:-}" ] && rules_block
  cat <<CFG
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
