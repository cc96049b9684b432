#!/usr/bin/env bash
# VRRP failover: how long a client loses the service on the VIP when the master dies (kill -9)
# or stops (SIGTERM), for a fulcrum pair and a keepalived 2.2.7 pair with the same timers.
#
#   sudo bench/failover.sh [RUNS]        (default 5 runs per cell; needs root, ip netns, python3)
#
# Each run builds its own lab: a bridge in a "switch" namespace, two nodes (vr0: 10.213.60.1/.2)
# and a client (10.213.60.200), all inside namespaces created here and deleted afterwards; nothing
# touches the host's interfaces. Both nodes serve HTTP on :8000. The client connects to
# VIP:8000 every 10 ms (20 ms connect timeout, bounded run time); the outage is the longest gap
# between two successful requests. The master's service is stopped together with its VRRP
# daemon (as a crashed or stopped balancer node), so only a working failover restores service. Node 0 (priority 150) is master, node 1 (100) takes over.
set -euo pipefail

RUNS=${1:-5}
IMPLS=${IMPLS:-fulcrum keepalived}   # e.g. IMPLS=keepalived STOPS=KILL to rerun one cell
STOPS=${STOPS:-KILL TERM}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
FULCRUM=${FULCRUM:-$ROOT/target/release/fulcrum}  # VRRP is not CPU-bound: FULCRUM=target/debug/fulcrum is fine
KEEPALIVED=${KEEPALIVED:-/usr/sbin/keepalived}
PY=/usr/bin/python3
NET=10.213.60
VIP=$NET.100
TAG=fob$$
WORK=$(mktemp -d /tmp/fulcrum-failover.XXXXXX)

if [ "$(id -u)" != 0 ] || ! ip netns add "$TAG-probe" 2>/dev/null; then
    echo "SKIPPED: bench/failover.sh needs root and ip netns" >&2
    exit 0
fi
ip netns del "$TAG-probe"
if [ ! -x "$FULCRUM" ]; then
    (cd "$ROOT" && cargo build --release -p fulcrum >&2)
fi

cleanup() {
    for ns in $(ip netns list | awk '{print $1}' | grep "^$TAG-" || true); do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
}
trap 'cleanup; rm -rf "$WORK"' EXIT

lab_up() {
    ip netns add "$TAG-sw"
    ip -n "$TAG-sw" link add br0 type bridge
    ip -n "$TAG-sw" link set br0 up
    local i host
    for i in 0 1 c; do
        ip netns add "$TAG-$i"
        ip -n "$TAG-$i" link set lo up
        # Created inside the switch namespace, the peer moved into the node: never on the host.
        ip -n "$TAG-sw" link add "p$i" type veth peer name vr0 netns "$TAG-$i"
        ip -n "$TAG-sw" link set "p$i" master br0 up
        host=$([ "$i" = c ] && echo 200 || echo $((i + 1)))
        ip -n "$TAG-$i" addr add "$NET.$host/24" dev vr0
        ip -n "$TAG-$i" link set vr0 up
    done
    for i in 0 1; do
        mkdir -p "$WORK/www$i" && echo "node$i" > "$WORK/www$i/index.html"
        ip netns exec "$TAG-$i" $PY -m http.server 8000 --bind 0.0.0.0 --directory "$WORK/www$i" >/dev/null 2>&1 &
        echo $! > "$WORK/www$i.pid"
    done
}

conf() { # priority version advert_int
    local auth=""
    [ "$2" = 2 ] && auth="    authentication {
        auth_type PASS
        auth_pass s3cret
    }"
    cat <<CONF
vrrp_instance VI_1 {
    state BACKUP
    interface vr0
    virtual_router_id 60
    priority $1
    advert_int $3
    version $2
$auth
    virtual_ipaddress {
        $VIP/24
    }
}
CONF
}

start_node() { # impl node priority version advert_int
    local f="$WORK/$1-$2.conf"
    conf "$3" "$4" "$5" > "$f"
    if [ "$1" = fulcrum ]; then
        ip netns exec "$TAG-$2" "$FULCRUM" run -c "$f" > "$WORK/$1-$2.log" 2>&1 &
        echo $! > "$WORK/$1-$2.pid"
    else
        rm -f "$WORK/ka-$2.pid" "$WORK/vrrp-$2.pid"
        ip netns exec "$TAG-$2" "$KEEPALIVED" -n -l -D -f "$f" -p "$WORK/ka-$2.pid" -r "$WORK/vrrp-$2.pid" --vrrp \
            > "$WORK/$1-$2.log" 2>&1 &
        echo $! > "$WORK/$1-$2.pid"
    fi
}

stop_master() { # impl signal
    local pids
    pids=$(cat "$WORK/$1-0.pid")
    # keepalived: its VRRP child first, then the parent (the child has a parent-death signal,
    # SIGTERM: killed second, it sometimes shuts down gracefully before its SIGKILL lands).
    [ "$1" = keepalived ] && [ -f "$WORK/vrrp-0.pid" ] && pids="$(cat "$WORK/vrrp-0.pid") $pids"
    [ "$2" = TERM ] && [ "$1" = keepalived ] && pids=$(cat "$WORK/$1-0.pid")
    # The service on node 0 stops with its balancer (fulcrum is the proxy; a keepalived node's
    # haproxy dies with it), so the client cannot be served by a dead node that kept the VIP.
    pids="$pids $(cat "$WORK/www0.pid")"
    kill -"$2" $pids 2>/dev/null || true
}

wait_vip_on() { # node, bounded to 15 s
    local n
    for n in $(seq 1 1500); do
        ip -n "$TAG-$1" -o addr show dev vr0 | grep -q " $VIP/" && return 0
        sleep 0.01
    done
    echo "VIP never reached node $1" >&2
    return 1
}

CLIENT='
import socket, sys, time
vip, port, duration = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
start = time.monotonic(); last_ok = None; gap = 0.0
while time.monotonic() - start < duration:
    t = time.monotonic()
    try:
        s = socket.create_connection((vip, port), timeout=0.02)
        s.settimeout(0.05); s.sendall(b"GET / HTTP/1.0\r\n\r\n"); ok = bool(s.recv(64)); s.close()
    except OSError:
        ok = False
    if ok:
        if last_ok is not None:
            gap = max(gap, t - last_ok)
        last_ok = t
    time.sleep(max(0.0, 0.01 - (time.monotonic() - t)))
print(round(gap * 1000))
'

one_run() { # impl version advert_int signal duration
    cleanup
    lab_up
    start_node "$1" 1 100 "$2" "$3"
    start_node "$1" 0 150 "$2" "$3"
    wait_vip_on 0
    sleep 1
    ip netns exec "$TAG-c" $PY -c "$CLIENT" "$VIP" 8000 "$5" > "$WORK/gap" &
    local client=$!
    sleep 1.5
    stop_master "$1" "$4"
    wait $client
    cat "$WORK/gap"
}

median() { sort -n | awk '{a[NR]=$1} END {if (NR == 0) print "-"; else if (NR % 2) print a[(NR+1)/2]; else print int((a[NR/2]+a[NR/2+1])/2)}'; }

printf '%-10s %-14s %-9s %10s   %s\n' impl timers stop "median ms" "runs (ms)"
for timers in "3 0.1 6" "2 1 10"; do
    set -- $timers
    version=$1 advert=$2 duration=$3
    for sig in $STOPS; do
        for impl in $IMPLS; do
            results=()
            for _ in $(seq 1 "$RUNS"); do
                results+=("$(one_run "$impl" "$version" "$advert" "$sig" "$duration")")
            done
            med=$(printf '%s\n' "${results[@]}" | median)
            printf '%-10s %-14s %-9s %10s   %s\n' "$impl" "v$version ${advert}s" "$([ $sig = KILL ] && echo kill-9 || echo SIGTERM)" \
                "$med" "${results[*]}"
        done
    done
done
