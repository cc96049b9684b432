#!/usr/bin/env bash
# Where the proxy's time goes, HAProxy and fulcrum side by side (see docs/BENCHMARKS.md,
# "Where the time goes"). Same origins and the same haproxy.cfg as bench/http.sh, on other ports.
#
#   bench/profile.sh cpu MODE [SECS]        perf record -e cpu-clock on each proxy in turn:
#                                           samples per 1,000 requests, user/kernel, top symbol diffs
#   bench/profile.sh syscalls MODE [SECS]   syscalls and wakeups per request (tracepoints)
#   bench/profile.sh callgrind MODE [SECS]  fulcrum under valgrind: instructions per request and
#                                           the top functions by self cost (deterministic; for A/B);
#                                           KEEP=FILE keeps the profile; TARGET=haproxy counts
#                                           HAProxy's instead, on the same config and load
#
# MODE is keep or close. Needs root (perf tracepoints), perf, wrk, haproxy, nginx, valgrind for
# callgrind. The proxies are pinned to CPU 0, wrk and the origins to CPU 1. Everything started
# here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/origins.sh
CMD=${1:?usage: bench/profile.sh cpu|syscalls|callgrind keep|close [SECS]}
MODE=${2:?mode: keep or close}
SECS=${3:-8}
HDR=()
[ "$MODE" = close ] && HDR=(-H "Connection: close")
# FULCRUM_BIN=path profiles another build (an A/B against the one in target/).
if [ -n "${FULCRUM_BIN:-}" ]; then FULCRUM=$FULCRUM_BIN; else cargo build --release -q -p fulcrum; FULCRUM=$PWD/target/release/fulcrum; fi
WORK=$(mktemp -d /tmp/fulcrum-profile.XXXXXX)
trap stop_all EXIT
O1=18181 O2=18182 HP=18190 FP=18192

origin_conf "$WORK" $O1 $O2 > "$WORK/origin.conf"
bench_cfg $HP $O1 $O2 > "$WORK/haproxy.cfg"
bench_cfg $FP $O1 $O2 > "$WORK/fulcrum.cfg"
taskset -c 1 nginx -c "$WORK/origin.conf" -e "$WORK/error.log" & PIDS+=($!)

requests() { awk '/requests in/ {print $1}' <<<"$1"; }

if [ "$CMD" = callgrind ]; then
  command -v valgrind >/dev/null || { echo "profile: valgrind missing (apt-get install -y valgrind)"; exit 1; }
  if [ "${TARGET:-fulcrum}" = haproxy ]; then
    NAME=haproxy; RUN=(haproxy -f "$WORK/fulcrum.cfg" -db)
  else
    NAME=fulcrum; RUN=("$FULCRUM" run -c "$WORK/fulcrum.cfg")
  fi
  valgrind --tool=callgrind --compress-strings=no --compress-pos=no \
    --callgrind-out-file="$WORK/cg.%p" "${RUN[@]}" 2>"$WORK/cg.log" & VG=$!; PIDS+=($VG)
  sleep 6
  taskset -c 1 wrk -t1 -c20 -d1s "${HDR[@]}" "http://127.0.0.1:$FP/" >/dev/null   # warm up
  callgrind_control -z "$VG" >/dev/null 2>&1
  out=$(taskset -c 1 wrk -t1 -c20 -d"${SECS}s" "${HDR[@]}" "http://127.0.0.1:$FP/")
  callgrind_control -d "$MODE" "$VG" >/dev/null 2>&1
  sleep 1
  # KEEP=FILE keeps the profile for callgrind_annotate (--inclusive=yes, --tree=caller).
  [ -n "${KEEP:-}" ] && cp "$(ls -t "$WORK"/cg.*.* | head -1)" "$KEEP"
  python3 - "$(ls -t "$WORK"/cg.*.* | head -1)" "$(requests "$out")" "$NAME" <<'PY'
import collections, re, sys
path, n, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
cost = collections.Counter(); fn = None; call = False
for line in open(path, errors="replace"):
    if line.startswith("fn="): fn = line[3:].strip(); continue
    if line.startswith("calls="): call = True; continue
    if line[:1].isdigit() or line[:1] in "+-*":
        parts = line.split()
        if len(parts) >= 2 and fn and parts[1].isdigit():
            if call: call = False          # inclusive cost of a call: not this function's own
            else: cost[fn] += int(parts[1])
def short(f):
    for _ in range(4): f = re.sub(r"<[^<>]*>", "", f)
    return f[:120]
print(f"{name} under callgrind, wrk -c20: {n} requests, {sum(cost.values()) // n} instructions per request")
for f, v in cost.most_common(30): print(f"{v / n:8.0f}  {short(f)}")
PY
  exit 0
fi

taskset -c 0 haproxy -f "$WORK/haproxy.cfg" -db >/dev/null 2>&1 & HPID=$!; PIDS+=($HPID)
taskset -c 0 "$FULCRUM" run -c "$WORK/fulcrum.cfg" 2>"$WORK/fulcrum.log" & FPID=$!; PIDS+=($FPID)
sleep 1
for p in $HP $FP; do curl -sf "http://127.0.0.1:$p/" >/dev/null || { echo "profile: :$p not answering"; exit 1; }; done

case $CMD in
  cpu)
    for name in haproxy fulcrum; do
      pid=$HPID port=$HP; [ $name = fulcrum ] && pid=$FPID port=$FP
      out=$(perf record -F 9999 -p "$pid" -o "$WORK/$name.data" -- \
        taskset -c 1 wrk -t1 -c50 -d"${SECS}s" "${HDR[@]}" "http://127.0.0.1:$port/" 2>/dev/null)
      echo "$name $(requests "$out")" > "$WORK/$name.n"
    done
    python3 - "$WORK" <<'PY'
import collections, re, subprocess, sys
work = sys.argv[1]; res = {}
for n in ("haproxy", "fulcrum"):
    reqs = int(open(f"{work}/{n}.n").read().split()[1])
    out = subprocess.run(["perf", "report", "-i", f"{work}/{n}.data", "--no-children", "--sort", "sym",
                          "--stdio", "-F", "sample,sym"], capture_output=True, text=True).stdout
    c = collections.Counter()
    for line in out.splitlines():
        m = re.match(r"\s*(\d+)\s+\[(.)\]\s+(.*)", line)
        if m: c[(m.group(2), m.group(3).strip()[:90])] += int(m.group(1))
    tot = sum(c.values()); k = sum(v for (s, _), v in c.items() if s == "k")
    res[n] = (reqs, c)
    print(f"{n}: {reqs} requests; samples per 1k requests: total {1000*tot/reqs:.1f}, kernel {1000*k/reqs:.1f}, user {1000*(tot-k)/reqs:.1f}")
(hr, hc), (fr, fc) = res["haproxy"], res["fulcrum"]
rows = sorted(((1000*fc[x]/fr - 1000*hc[x]/hr, x) for x in set(hc) | set(fc)), reverse=True)
print("fulcrum minus HAProxy, samples per 1k requests:")
for d, x in rows[:25] + rows[-10:]:
    print(f"{d:7.2f}  fulcrum {1000*fc[x]/fr:6.2f}  haproxy {1000*hc[x]/hr:6.2f}  [{x[0]}] {x[1]}")
PY
    ;;
  syscalls)
    EV='syscalls:sys_enter_write,syscalls:sys_enter_accept4,syscalls:sys_enter_recvfrom,syscalls:sys_enter_sendto,syscalls:sys_enter_epoll_ctl,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_shutdown,syscalls:sys_enter_close,syscalls:sys_enter_setsockopt,sched:sched_waking'
    for name in haproxy fulcrum; do
      pid=$HPID port=$HP; [ $name = fulcrum ] && pid=$FPID port=$FP
      out=$(perf stat -e "$EV" -p "$pid" -x, -o "$WORK/$name.stat" -- taskset -c 1 wrk -t1 -c50 -d"${SECS}s" "${HDR[@]}" "http://127.0.0.1:$port/")
      n=$(requests "$out")
      echo "$name ($n requests), per request: $(awk -F, -v n="$n" '$1 ~ /^[0-9]+$/ {e=$3; sub(/^(syscalls:sys_enter_|sched:sched_)/, "", e); printf "%s %.3f  ", e, $1/n}' "$WORK/$name.stat")"
    done
    ;;
  *) echo "profile: unknown command $CMD"; exit 1 ;;
esac
