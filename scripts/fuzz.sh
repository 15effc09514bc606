#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer + AddressSanitizer) of every parser that reads untrusted bytes:
# fuzz/fuzz_targets/*.rs. What `cargo fuzz run` does, without installing cargo-fuzz: the same compiler flags,
# with RUSTC_BOOTSTRAP=1 so that the stable toolchain accepts -Zsanitizer.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 30 s, every target)
#
# Each target starts from its committed seed corpus fuzz/corpus/<target>/ (new inputs go to
# fuzz/target/corpus/<target>/, not into the repository). A crash stops the script with the input saved
# under fuzz/artifacts/<target>/; turn it into a regression test in tests/fuzz_regressions.rs.
# Prints one line per target: executions, corpus size, result.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-30}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(decode_image raw_frame parse_npy load_clusterer clip_config tokenize)
triple=$(rustc -vV | sed -n 's/^host: //p')
export RUSTC_BOOTSTRAP=1
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Zsanitizer=address -Cdebug-assertions -Coverflow-checks"
echo "building the fuzz targets (release, ASan, $triple)"
cargo build -q --release --target "$triple" --bins
mkdir -p artifacts
status=0
failed=0
for t in "${targets[@]}"; do
  mkdir -p "target/corpus/$t" "artifacts/$t"
  log="target/$t.log"
  set +e
  # -rss_limit_mb: an input that makes the parser allocate more than this is a finding (a bomb not refused).
  "target/$triple/release/$t" "target/corpus/$t" "corpus/$t" -max_total_time="$secs" -rss_limit_mb=2048 \
    -max_len=65536 -timeout=20 -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  if [ "$rc" -eq 0 ]; then
    echo "fuzz $t: ${runs:-?} executions in ${secs}s, corpus $(ls "target/corpus/$t" | wc -l) new + $(ls "corpus/$t" | wc -l) seeds, no crash"
  else
    echo "fuzz $t: FAILED (exit $rc) after ${runs:-?} executions; input in fuzz/artifacts/$t/:"
    grep -m5 -E "ERROR|panicked|SUMMARY|leak|out-of-memory|timeout" "$log" || tail -20 "$log"
    status=1
    failed=$((failed + 1))
  fi
done
# The same counts as a cargo-style line, so scripts/test.sh's closing summary includes the fuzz targets.
echo "test result: fuzz. $(( ${#targets[@]} - failed )) passed; $failed failed; 0 ignored; 0 measured; 0 filtered out (libFuzzer, ${secs}s per target)"
exit $status
