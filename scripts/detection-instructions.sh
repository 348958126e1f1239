#!/usr/bin/env bash
# Instructions per `Engine::assess` (all built-in packs) on the benchmark texts,
# counted by callgrind: repeatable on a shared machine, where time is not.
# Steady state: the count of 31 runs minus that of 11, over 20 (the first runs
# also pay for compiling the packs and warming the lazy DFAs).
set -euo pipefail
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/portcullis/target}"
if ! command -v valgrind >/dev/null; then
  echo "valgrind is not installed: apt-get install -y valgrind" >&2
  exit 1
fi
cargo build --release -q -p portcullis-policy --example assess_instructions
bin="$CARGO_TARGET_DIR/release/examples/assess_instructions"
count() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null \
    '--toggle-collect=*Engine*assess*' "$bin" "$1" "$2" 2>&1 |
    awk '/Collected/ { gsub(",", "", $4); print $4 }'
}
printf '%-10s %15s %12s\n' text instructions per-byte
for text in 1024 prompt 16384; do
  low=$(count 11 "$text")
  high=$(count 31 "$text")
  per=$(((high - low) / 20))
  bytes=$([ "$text" = prompt ] && echo 2048 || echo "$text")
  awk -v t="$text" -v n="$per" -v b="$bytes" 'BEGIN { printf "%-10s %15d %12.1f\n", t, n, n / b }'
done
