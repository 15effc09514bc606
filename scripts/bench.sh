#!/usr/bin/env bash
# Benchmarks: ours vs the PyTorch reference, measured in the same run on this machine, printed as a table.
#
#   scripts/bench.sh [AREA ...]      AREA: rate, cluster, clip, clip_io, or a GPU area: rate_cuda, clip_cuda,
#                                    cluster_cuda
#                                    (default: every CPU area; GPU areas run only when named)
#
# Each area has a Rust benchmark `examples/bench_<area>.rs` and a reference script `tools/bench/<area>_torch.py`;
# both print `BENCH<TAB><case><TAB><milliseconds per op>` lines with the same case names. The reference side
# needs a Python with torch (and transformers for clip): set PYTHON to it (default: python3). Without torch the
# reference column says so instead of inventing a number.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
areas=("$@")
if [ ${#areas[@]} -eq 0 ]; then
  for f in examples/bench_*.rs; do a=${f#examples/bench_}; a=${a%.rs}; [[ $a == *_cuda ]] || areas+=("$a"); done
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cargo build --release --examples -q
for a in "${areas[@]}"; do
  echo "== $a: ours" >&2
  cargo run --release -q --example "bench_$a" | tee -a "$tmp/ours.txt" >&2
  if [ -f "tools/bench/${a}_torch.py" ]; then
    if "$PY" -c "import torch" 2>/dev/null; then
      echo "== $a: PyTorch ($("$PY" -c 'import torch; print(torch.__version__)'))" >&2
      "$PY" "tools/bench/${a}_torch.py" | tee -a "$tmp/ref.txt" >&2
    else
      echo "== $a: PyTorch not measured: '$PY' cannot import torch (set PYTHON=...)" >&2
    fi
  fi
done
echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
printf '| %-40s | %12s | %12s | %8s |\n' case "ours (ms)" "PyTorch (ms)" speed-up
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..42})" "$(printf -- '-%.0s' {1..14})" "$(printf -- '-%.0s' {1..14})" "$(printf -- '-%.0s' {1..10})"
touch "$tmp/ref.txt"
grep -h '^BENCH' "$tmp/ours.txt" | while IFS=$'\t' read -r _ case ms; do
  ref=$(awk -F'\t' -v c="$case" '$1=="BENCH" && $2==c {print $3}' "$tmp/ref.txt" | tail -n1)
  if [ -n "$ref" ]; then
    speed=$(awk -v a="$ms" -v b="$ref" 'BEGIN { printf "%.2fx", b / a }')
  else
    ref="n/a"; speed="-"
  fi
  printf '| %-40s | %12s | %12s | %8s |\n' "$case" "$ms" "$ref" "$speed"
done
