#!/usr/bin/env bash
# The one GPU check for the CUDA paths (issue 2: rate reduction; issue 3: the CPP head; issue 4: the CLIP
# towers). Two halves:
#
#   scripts/gpu_check.sh --bundle   on the build machine (no GPU needed): builds the CUDA test binaries and
#                                   the benchmarks, copies them into target/gpu-bundle/ (carry that folder).
#   scripts/gpu_check.sh [AREA...]  on the GPU machine, from the repository root: builds nothing; runs the
#                                   bundled tests and benchmarks of each AREA and prints a table.
#                                   rate (the default): kernel compile with the local NVRTC, rate kernels vs
#                                     the CPU (src/rate/cuda/tests.rs, `on_gpu`), CLIP nn kernels vs f64
#                                     restatements, the CUDA CPP head vs the
#                                     CPU head (the library's `on_gpu` unit tests, src/cluster/head/cuda/tests.rs,
#                                     and tests/clusterer_cuda.rs), bench_rate_cuda and
#                                     tools/bench/rate_cuda_torch.py.
#                                   cluster: kernel compile, the CUDA CPP head vs the CPU head,
#                                     bench_cluster_cuda and tools/bench/cluster_cuda_torch.py (AMP).
#                                   clip: kernel compile, CLIP nn kernels, the CUDA towers vs transformers'
#                                     goldens and the CPU (tests/clip_cuda.rs), bench_clip_cuda and
#                                     tools/bench/clip_cuda_torch.py (transformers + SDPA, fp16).
#
# Each area's step time limits add up to at most 590 s, so one area fits one 600 s device command.
# Exit status: non-zero if any test fails or a test reports SKIP (a GPU check that skipped proves nothing).
set -uo pipefail
cd "$(dirname "$0")/.."
BUNDLE=target/gpu-bundle

if [ "${1:-}" = "--bundle" ]; then
  set -e
  rm -rf "$BUNDLE" && mkdir -p "$BUNDLE"
  # The test executable cargo builds for `cargo test --release ARGS --no-run`.
  test_exe() {
    cargo test --release "$@" --no-run --message-format=json 2>/dev/null | python3 -c 'import json,sys
for l in sys.stdin:
    try: m=json.loads(l)
    except Exception: continue
    if m.get("reason")=="compiler-artifact" and m.get("executable") and m["profile"]["test"]: print(m["executable"])' | tail -1
  }
  for t in kernels_compile clip_cuda clusterer_cuda; do
    exe=$(test_exe --test "$t")
    [ -n "$exe" ] || { echo "could not build tests/$t.rs"; exit 1; }
    cp "$exe" "$BUNDLE/$t"
  done
  # The library's unit tests: each `on_gpu` module shares its checks with an `on_emulator` twin.
  exe=$(test_exe --lib)
  [ -n "$exe" ] || { echo "could not build the library's unit tests"; exit 1; }
  cp "$exe" "$BUNDLE/lib_tests"
  cargo build --release --example bench_rate_cuda --example bench_clip_cuda --example bench_cluster_cuda
  cp target/release/examples/bench_rate_cuda target/release/examples/bench_clip_cuda target/release/examples/bench_cluster_cuda "$BUNDLE/"
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

areas=("$@")
[ ${#areas[@]} -eq 0 ] && areas=(rate)
have_torch() { command -v python3 >/dev/null && python3 -c 'import torch' 2>/dev/null; }
: >"$LOG/bench_torch.out"

# Kernel compile with the machine's own NVRTC (what the library uses at run time), then CUDA vs CPU.
RATECLUST_REQUIRE_NVRTC=1 run_step kernels_compile 45 "$BUNDLE/kernels_compile" --nocapture
run_step clip_kernels 60 "$BUNDLE/lib_tests" clip::cuda::tests::on_gpu:: --nocapture --test-threads=1
for area in "${areas[@]}"; do
  case $area in
    rate)
      run_step rate_cuda 240 "$BUNDLE/lib_tests" rate::cuda::tests::on_gpu:: --nocapture --test-threads=1
      run_step head_cuda 30 "$BUNDLE/lib_tests" cluster::head::cuda::tests::on_gpu:: --nocapture --test-threads=1
      run_step clusterer_cuda 25 "$BUNDLE/clusterer_cuda" --nocapture --test-threads=1
      run_step bench_ours 80 "$BUNDLE/bench_rate_cuda"
      if have_torch; then run_step bench_torch 125 python3 tools/bench/rate_cuda_torch.py
      else echo "=== bench_torch: python3 with torch not available, PyTorch column left empty"; fi
      ;;
    clip)
      # tests/clip_cuda.rs reads tests/fixtures/clip_model/ relative to the repository root it runs from.
      run_step clip_cuda 90 "$BUNDLE/clip_cuda" --nocapture --test-threads=1
      run_step bench_ours_clip 200 "$BUNDLE/bench_clip_cuda"
      if have_torch && python3 -c 'import transformers' 2>/dev/null; then
        run_step bench_torch_clip 200 python3 tools/bench/clip_cuda_torch.py
      else echo "=== bench_torch_clip: python3 with torch + transformers not available, PyTorch column left empty"; fi
      ;;
    cluster)
      # Skips the head test when the rate area already ran it in this call.
      if [[ " ${areas[*]} " != *" rate "* ]]; then
        run_step head_cuda 30 "$BUNDLE/lib_tests" cluster::head::cuda::tests::on_gpu:: --nocapture --test-threads=1
        run_step clusterer_cuda 25 "$BUNDLE/clusterer_cuda" --nocapture --test-threads=1
      fi
      run_step bench_ours_cluster 150 "$BUNDLE/bench_cluster_cuda"
      if have_torch; then run_step bench_torch_cluster 250 python3 tools/bench/cluster_cuda_torch.py
      else echo "=== bench_torch_cluster: python3 with torch not available, PyTorch column left empty"; fi
      ;;
    *) echo "unknown area '$area' (expected rate, cluster or clip)"; status=1 ;;
  esac
done

echo
echo "GPU benchmark (ms per op or per image; goals from issues 2, 3 and 4)"
awk -F'\t' '
  $1 == "BENCH" { if (FILENAME ~ /bench_ours/) ours[$2] = $3; else torch[$2] = $3; if (!($2 in seen)) { seen[$2] = 1; order[n++] = $2 } }
  END {
    goal["cuda_logdet_1024x128x128"] = "<= 0.2"; goal["cuda_sinkhorn_n4096"] = "<= 0.7"
    goal["cuda_sinkhorn_n16384"] = "<= 6"; goal["cuda_mlc_b1024_d128_fwd_bwd"] = "<= 2"
    goal["cuda_vit_b32_image_b256"] = "<= 0.0403"; goal["cuda_vit_l14_image_b256"] = "<= 0.465"
    goal["cuda_train_step_b1024_in768_h4096_d128"] = "<= 4"; goal["cuda_train_step_b1024_in768_h2048_d1024"] = "<= 60"
    goal["cuda_assign_1.28M_768_k1000"] = "< 1000"
    printf "%-32s %12s %12s %9s %8s\n", "case", "ours", "pytorch", "speedup", "goal"
    for (i = 0; i < n; i++) {
      c = order[i]; o = (c in ours) ? ours[c] : "-"; t = (c in torch) ? torch[c] : "-"
      s = (o != "-" && t != "-" && o > 0) ? sprintf("%.2fx", t / o) : "-"
      printf "%-32s %12s %12s %9s %8s\n", c, o, t, s, (c in goal) ? goal[c] : ""
    }
  }' "$LOG"/bench_ours*.out "$LOG"/bench_torch*.out
echo
[ $status -eq 0 ] && echo "GPU CHECK: PASS" || echo "GPU CHECK: FAIL (see the steps above)"
exit $status
