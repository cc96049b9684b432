# Sourced by bench/http.sh and bench/profile.sh: the nginx origins both measure against.
#   origin_conf DIR PORT1 PORT2 > nginx.conf   (one worker, keep-alive, a fixed 42-byte body)
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
