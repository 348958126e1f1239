#!/usr/bin/env bash
# make fuzz: every cargo-fuzz target in fuzz/ for FUZZ_SECONDS each (default 30),
# bounded by libFuzzer's -max_total_time. Stable Rust: RUSTC_BOOTSTRAP=1 lets
# cargo-fuzz pass its -Z flags. Knobs: FUZZ_SECONDS, FUZZ_TARGETS (space-separated),
# FUZZ_SANITIZER (address, the default, or none), FUZZ_TIMEOUT (s per input, 10).
# Seeds come from fuzz/corpus/<target> (committed, never written to); new corpus
# entries go to $CARGO_TARGET_DIR/fuzz-corpus/<target>, crashes to fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/portcullis/target}"
export RUSTC_BOOTSTRAP=1
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
FUZZ_SANITIZER=${FUZZ_SANITIZER:-address}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-10}
FUZZ_TARGETS=${FUZZ_TARGETS:-normalize decoders pack_loader redact_restore engine_scan}

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz not found; installing it (once, a few minutes)..." >&2
  cargo install cargo-fuzz --locked
fi

# Debug assertions on (-a): integer overflow panics instead of wrapping.
cargo fuzz build -a --sanitizer "$FUZZ_SANITIZER"

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
failed=()
summary=()
for t in $FUZZ_TARGETS; do
  work=$CARGO_TARGET_DIR/fuzz-corpus/$t
  mkdir -p "$work" "fuzz/artifacts/$t"
  echo "== fuzz $t for ${FUZZ_SECONDS}s" >&2
  if cargo fuzz run -a --sanitizer "$FUZZ_SANITIZER" "$t" "$work" "fuzz/corpus/$t" -- \
      -max_total_time="$FUZZ_SECONDS" -timeout="$FUZZ_TIMEOUT" -print_final_stats=1 \
      > "$logs/$t.log" 2>&1; then
    status=ok
  else
    status=FAILED
    failed+=("$t")
    grep -E "panicked|ERROR|SUMMARY|Test unit written" "$logs/$t.log" | head -20 >&2 || true
  fi
  runs=$(awk '/stat::number_of_executed_units/ {print $2}' "$logs/$t.log" | tail -1)
  secs=$(sed -nE 's/^Done [0-9]+ runs in ([0-9]+) second.*/\1/p' "$logs/$t.log" | tail -1)
  cov=$(grep -E '^#[0-9]+' "$logs/$t.log" | tail -1 | sed -nE 's/.*cov: ([0-9]+).*corp: ([0-9]+).*/cov \1, corpus \2/p')
  [ "${secs:-0}" -gt 0 ] 2>/dev/null || secs=1
  rate=$(( ${runs:-0} / secs ))
  summary+=("$(printf '%-15s %-6s %9s runs %4ss %8s exec/s  %s' "$t" "$status" "${runs:-?}" "${secs:-?}" "$rate" "$cov")")
done
echo >&2
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz failures: ${failed[*]} (reproducers in fuzz/artifacts/)" >&2
  exit 1
fi
