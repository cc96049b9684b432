#!/usr/bin/env bash
# A profile-guided release build of fulcrum: target/pgo/fulcrum.
#
#   scripts/build-pgo.sh
#
# 1. builds an instrumented fulcrum (-Cprofile-generate) in target/pgo-gen;
# 2. trains it for about 20 s on loopback against nginx origins: keep-alive and
#    `Connection: close` GETs, POSTs with bodies, path-routed requests to a second backend
#    with leastconn, health checks and an access log (every load loop is bounded by wrk -d);
# 3. merges the profile with llvm-profdata and builds fulcrum again with -Cprofile-use.
#
# The training is a mix of what a front door sees, not the benchmark alone. Same sources,
# same Cargo.lock, same features as `cargo build --release`: only the code layout, inlining
# and branch weights change. Needs nginx, wrk and an llvm-profdata that reads the raw
# profiles of rustc's LLVM (Debian's llvm-19 reads those of rustc 1.95's LLVM 22; the script
# installs it with apt-get when it is missing and it runs as root).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. bench/origins.sh

# Newest first: an older llvm-profdata (Debian's default is 14) cannot read newer raw profiles.
candidates() { for v in 22 21 20 19; do command -v "llvm-profdata-$v" || true; done; command -v llvm-profdata || true; }
need=()
command -v nginx >/dev/null || need+=(nginx)
command -v wrk >/dev/null || need+=(wrk)
candidates | grep -q 'llvm-profdata-' || need+=(llvm-19)
if ((${#need[@]})); then
  [ "$(id -u)" -eq 0 ] || { echo "build-pgo: missing ${need[*]} (apt-get install -y ${need[*]})"; exit 1; }
  echo "build-pgo: installing ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

GEN=$ROOT/target/pgo-gen
RAW=$GEN/profiles
echo "build-pgo: instrumented build (target/pgo-gen)" >&2
CARGO_TARGET_DIR=$GEN RUSTFLAGS="-Cprofile-generate=$RAW" cargo build --release -q -p fulcrum
rm -rf "$RAW"   # stale profiles, and the build scripts' (they ran instrumented too)

WORK=$(mktemp -d /tmp/fulcrum-pgo.XXXXXX)
trap stop_all EXIT
O1=18281 O2=18282 FA=18290 FB=18291
origin_conf "$WORK" $O1 $O2 > "$WORK/origin.conf"
{ proxy_defaults; cat <<CFG; } > "$WORK/train.cfg"
frontend plain
    bind 127.0.0.1:$FA
    default_backend web
frontend routed
    bind 127.0.0.1:$FB
    option httplog
    log stdout local0
    acl api path_beg /api
    use_backend api if api
    default_backend web
backend web
    balance roundrobin
    server o1 127.0.0.1:$O1
    server o2 127.0.0.1:$O2
backend api
    balance leastconn
    http-reuse safe
    option httpchk GET /health
    server a1 127.0.0.1:$O1 check inter 1s
    server a2 127.0.0.1:$O2 check inter 1s
CFG
cat > "$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = string.rep("x", 2048)
wrk.headers["Content-Type"] = "application/octet-stream"
LUA
nginx -c "$WORK/origin.conf" -e "$WORK/error.log" & PIDS+=($!)
"$GEN/release/fulcrum" run -c "$WORK/train.cfg" >/dev/null 2>"$WORK/fulcrum.log" & FPID=$!; PIDS+=($FPID)
sleep 1.5
curl -sf "http://127.0.0.1:$FA/" >/dev/null || { echo "build-pgo: the instrumented fulcrum is not answering"; cat "$WORK/fulcrum.log"; exit 1; }
echo "build-pgo: training (about 20 s)" >&2
wrk -t1 -c50 -d5s "http://127.0.0.1:$FA/" >/dev/null
wrk -t1 -c50 -d5s -H "Connection: close" "http://127.0.0.1:$FA/" >/dev/null
wrk -t1 -c20 -d3s "http://127.0.0.1:$FB/api/items?id=7" >/dev/null
wrk -t1 -c20 -d3s -s "$WORK/post.lua" "http://127.0.0.1:$FB/upload" >/dev/null
wrk -t1 -c20 -d2s -H "Connection: close" "http://127.0.0.1:$FB/index.html" >/dev/null
kill -TERM "$FPID"
wait "$FPID" 2>/dev/null || true
ls "$RAW"/*.profraw >/dev/null 2>&1 || { echo "build-pgo: no profile was written"; exit 1; }
merged=""
for c in $(candidates); do
  if "$c" merge -o "$GEN/fulcrum.profdata" "$RAW"/*.profraw 2>"$WORK/merge.err"; then merged=$c; break; fi
done
[ -n "$merged" ] || { echo "build-pgo: no llvm-profdata here reads these profiles:"; cat "$WORK/merge.err"; exit 1; }
echo "build-pgo: profile merged by $merged" >&2

# Named by its content: cargo rebuilds when RUSTFLAGS change, so a new profile is never
# mistaken for the last one.
PROFILE=$GEN/fulcrum-$(sha256sum "$GEN/fulcrum.profdata" | cut -c1-12).profdata
find "$GEN" -maxdepth 1 -name 'fulcrum-*.profdata' ! -path "$PROFILE" -delete
mv "$GEN/fulcrum.profdata" "$PROFILE"
echo "build-pgo: optimized build (target/pgo)" >&2
CARGO_TARGET_DIR=$ROOT/target/pgo-use RUSTFLAGS="-Cprofile-use=$PROFILE" cargo build --release -q -p fulcrum
mkdir -p target/pgo
cp target/pgo-use/release/fulcrum target/pgo/fulcrum
echo "build-pgo: target/pgo/fulcrum"
