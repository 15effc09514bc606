#!/usr/bin/env bash
# The one GPU check for the CUDA rate-reduction path (issue 2). Two halves:
#
#   scripts/gpu_check.sh --bundle   on the build machine (no GPU needed): builds the CUDA test binaries and
#                                   the benchmark, copies them into target/gpu-bundle/ (carry that folder).
#   scripts/gpu_check.sh            on the GPU machine, from the repository root: builds nothing; runs the
#                                   bundled tests (rate kernels vs the CPU, CLIP nn kernels vs f64
#                                   restatements, kernel compile with the local NVRTC), our
#                                   benchmark and tools/bench/rate_cuda_torch.py, and prints a table.
#
# Step time limits add up to 590 s, so the whole check fits one 600 s device command.
# Exit status: non-zero if any test fails or a test reports SKIP (a GPU check that skipped proves nothing).
set -uo pipefail
cd "$(dirname "$0")/.."
BUNDLE=target/gpu-bundle

if [ "${1:-}" = "--bundle" ]; then
  set -e
  rm -rf "$BUNDLE" && mkdir -p "$BUNDLE"
  for t in rate_cuda cuda_nn kernels_compile; do
    exe=$(cargo test --release --test "$t" --no-run --message-format=json 2>/dev/null \
      | python3 -c 'import json,sys
for l in sys.stdin:
    try: m=json.loads(l)
    except Exception: continue
    if m.get("reason")=="compiler-artifact" and m.get("executable") and m["target"]["kind"]==["test"]: print(m["executable"])' | tail -1)
    [ -n "$exe" ] || { echo "could not build tests/$t.rs"; exit 1; }
    cp "$exe" "$BUNDLE/$t"
  done
  cargo build --release --example bench_rate_cuda
  cp target/release/examples/bench_rate_cuda "$BUNDLE/"
  strip "$BUNDLE"/* 2>/dev/null || true
  du -sh "$BUNDLE"; ls -l "$BUNDLE"
  echo "bundle ready: carry $BUNDLE to the GPU machine and run scripts/gpu_check.sh there"
  exit 0
fi

[ -d "$BUNDLE" ] || { echo "no $BUNDLE: run scripts/gpu_check.sh --bundle on the build machine and carry it"; exit 2; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "(nvidia-smi unavailable)"
LOG=$(mktemp -d)
status=0

run_step() {  # name, timeout seconds, command...
  local name=$1 limit=$2; shift 2
  echo "=== $name"
  local t0=$SECONDS
  timeout "$limit" "$@" >"$LOG/$name.out" 2>&1
  local rc=$?
  cat "$LOG/$name.out"
  echo "=== $name: exit $rc in $((SECONDS - t0)) s"
  if [ $rc -ne 0 ]; then status=1; fi
  if grep -q 'SKIP:' "$LOG/$name.out"; then echo "=== $name SKIPPED: counted as a failure of the GPU check"; status=1; fi
}

# Kernel compile with the machine's own NVRTC (what the library uses at run time), then CUDA vs CPU.
RATECLUST_REQUIRE_NVRTC=1 run_step kernels_compile 45 "$BUNDLE/kernels_compile" --nocapture
run_step rate_cuda 270 "$BUNDLE/rate_cuda" --nocapture --test-threads=1
run_step cuda_nn 45 "$BUNDLE/cuda_nn" --nocapture --test-threads=1
run_step bench_ours 90 "$BUNDLE/bench_rate_cuda"
if command -v python3 >/dev/null && python3 -c 'import torch' 2>/dev/null; then
  run_step bench_torch 140 python3 tools/bench/rate_cuda_torch.py
else
  echo "=== bench_torch: python3 with torch not available, PyTorch column left empty"
  : >"$LOG/bench_torch.out"
fi

echo
echo "GPU benchmark (ms per op; goals from issue 2)"
awk -F'\t' '
  $1 == "BENCH" { if (FILENAME ~ /bench_ours/) ours[$2] = $3; else torch[$2] = $3; if (!($2 in seen)) { seen[$2] = 1; order[n++] = $2 } }
  END {
    goal["cuda_logdet_1024x128x128"] = "<= 0.2"; goal["cuda_sinkhorn_n4096"] = "<= 0.7"
    goal["cuda_sinkhorn_n16384"] = "<= 6"; goal["cuda_mlc_b1024_d128_fwd_bwd"] = "<= 2"
    printf "%-32s %12s %12s %9s %8s\n", "case", "ours", "pytorch", "speedup", "goal"
    for (i = 0; i < n; i++) {
      c = order[i]; o = (c in ours) ? ours[c] : "-"; t = (c in torch) ? torch[c] : "-"
      s = (o != "-" && t != "-" && o > 0) ? sprintf("%.2fx", t / o) : "-"
      printf "%-32s %12s %12s %9s %8s\n", c, o, t, s, (c in goal) ? goal[c] : ""
    }
  }' "$LOG/bench_ours.out" "$LOG/bench_torch.out"
echo
[ $status -eq 0 ] && echo "GPU CHECK: PASS" || echo "GPU CHECK: FAIL (see the steps above)"
exit $status
