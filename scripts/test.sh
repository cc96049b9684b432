#!/usr/bin/env bash
# Runs fulcrum's whole test suite. Installs what the tests need when it is missing
# (haproxy, nginx, keepalived; curl, python3, iproute2 and nftables for the VRRP namespace
# tests; redis-server and postgresql, real peers of the protocol health checks; all from
# Debian; h2load, an HTTP/2 load client; python3-grpcio, gRPC's client and server;
# python3-websockets, a WebSocket client and server) - needs root or sudo for that step only.
# Ends with one line:
# passed, failed, ignored, over every test binary.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pair in haproxy:haproxy nginx:nginx keepalived:keepalived curl:curl python3:python3 ip:iproute2 nft:nftables \
  redis-server:redis-server openssl:openssl logger:bsdutils h2load:nghttp2-client; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
# gRPC's Python runtime (Debian's), for the gRPC test's client and server.
/usr/bin/python3 -c "import grpc" >/dev/null 2>&1 || need+=(python3-grpcio)
# A WebSocket client and server (Debian's), for WebSockets over HTTP/2.
/usr/bin/python3 -c "import websockets" >/dev/null 2>&1 || need+=(python3-websockets)
# PostgreSQL's server programs live outside PATH on Debian.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || need+=(postgresql)
if ((${#need[@]})); then
  echo "test.sh: installing ${need[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The binary the integration tests launch is built by cargo test itself.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --all-targets --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1); if ($i ~ /^ignored;?$/) g += $(i-1) } }
     END { printf "test.sh: %d passed, %d failed, %d ignored\n", p, f, g }' "$log"
exit "$status"
