#!/usr/bin/env bash
# Runs each cargo-fuzz target of fuzz/ for SECONDS (default 60), one after the other, or
# JOBS of them at once. Not part of CI: run it after changing a parser, and for at least ten
# minutes per target before a release. Corpora start from fuzz/seeds/, examples/ and the VRRP
# captures of crates/vrrp/tests/fixtures/, and grow in fuzz/corpus/ (not committed); a crash
# lands in fuzz/artifacts/TARGET/ and the script exits non-zero: turn it into a regression test.
#
#   scripts/fuzz.sh [SECONDS]          TARGETS="request_head chunked" JOBS=2 scripts/fuzz.sh 600
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}
JOBS=${JOBS:-1}
ALL="haproxy_cfg keepalived_conf toml_config vrrp_packet request_head response_head chunked stats_query check_response tls_hello proxy_header ipvsadm_rules crt_list h2_frames sample_expr peers_messages"
TARGETS=${TARGETS:-$ALL}

rustup toolchain list | grep -q '^nightly' || { echo "fuzz.sh: needs the nightly toolchain (rustup toolchain install nightly)"; exit 1; }
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz

seed() { # TARGET -> fuzz/corpus/TARGET, filled once from what the project has
  local t=$1 dir=fuzz/corpus/$1
  mkdir -p "$dir"
  [ -d "fuzz/seeds/$t" ] && cp -n fuzz/seeds/"$t"/* "$dir"/ 2>/dev/null || true
  case $t in
    haproxy_cfg) cp -n examples/*.cfg "$dir"/ ;;
    keepalived_conf) cp -n examples/*.conf "$dir"/ ;;
    toml_config) cp -n examples/*.toml "$dir"/ ;;
    vrrp_packet)
      for f in crates/vrrp/tests/fixtures/*.txt; do
        for kind in ip payload; do
          local hex; hex=$(awk -v k="$kind" '$1 == k { print $2 }' "$f")
          [ -n "$hex" ] && echo "$hex" | xxd -r -p > "$dir/$(basename "$f" .txt).$kind"
        done
      done ;;
  esac
}

for t in $TARGETS; do cargo +nightly fuzz build --fuzz-dir fuzz -O "$t" 2>/dev/null; done
status=0
run() {
  local t=$1
  seed "$t"
  if cargo +nightly fuzz run --fuzz-dir fuzz -O "$t" "fuzz/corpus/$t" -- \
      -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"fuzz/$t.log" 2>&1; then
    echo "fuzz.sh: $t: $(grep -E 'stat::number_of_executed_units' "fuzz/$t.log" | awk '{print $2}') runs in ${SECS}s, no crash, corpus $(ls "fuzz/corpus/$t" | wc -l) inputs"
  else
    echo "fuzz.sh: $t FAILED: see fuzz/$t.log and fuzz/artifacts/$t/"
    return 1
  fi
}
running=0
for t in $TARGETS; do
  run "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$JOBS" ]; then wait -n || status=1; running=$((running - 1)); fi
done
while [ "$running" -gt 0 ]; do wait -n || status=1; running=$((running - 1)); done
exit $status
