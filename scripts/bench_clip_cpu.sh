#!/usr/bin/env bash
# Our CLIP on the CPU (examples/bench_clip.rs, f32 and int8) against its CPU peers (tools/bench/clip_cpu_peers.py:
# PyTorch f32 / bf16 autocast, ONNX Runtime f32 / int8) on the same random-weight ViT-B/32, 2 threads, in one run:
# ROUNDS rounds (default 3), each running ours then the peers (the order flips every other round), every timed
# pass kept. Prints every pass, the median, the ratio of each median to our f32 and our int8 median for the same
# workload (>1: slower than ours), each peer's accuracy against PyTorch f32, and peak RSS.
#
#   scripts/bench_clip_cpu.sh       (ROUNDS=n; PY=path/to/python for another interpreter. Without PY, a missing
#                                    target/peers-venv is created first: torch transformers onnx onnxscript
#                                    onnxruntime numpy safetensors from PyPI, about 6 GB with torch's CUDA wheels)
#
# Peak RSS: ours is /usr/bin/time's "maximum resident set size" of a `bench_clip <case>` process (one case each,
# which includes the in-memory f16 checkpoint it builds and loads from); a peer's is ru_maxrss of its own
# subprocess (the interpreter, torch or onnxruntime, the model, both cases). The max over the rounds is shown.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
py=${PY:-target/peers-venv/bin/python}
if [ -z "${PY:-}" ] && [ ! -x "$py" ]; then
  python3 -m venv target/peers-venv
  target/peers-venv/bin/pip install torch transformers onnx onnxscript onnxruntime numpy safetensors
fi
work=target/bench_clip_peers
out=$work/log.txt
export RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2
mkdir -p "$work"

cargo build --release --example bench_clip
bin=target/release/examples/bench_clip
[ -f "$work/model/model.safetensors" ] || "$bin" --write-model "$work/model"

ours() {
  for c in vit_b32_image vit_b32_image_int8 vit_b32_text_short vit_b32_text_short_int8; do
    /usr/bin/time -f "TIMERSS $c %M" "$bin" "$c" 2>"$work/time.txt" | sed "s/^/R$1\t/"
    grep '^TIMERSS' "$work/time.txt" | awk -v r="$1" '{printf "R%s\tRSS\t%s\t%.0f\n", r, $2, $3/1024}'
  done
}
peers() {
  if "$py" -c 'import numpy' 2>/dev/null; then
    "$py" tools/bench/clip_cpu_peers.py --model "$work/model" --work "$work" | sed "s/^/R$1\t/"
  else
    echo -e "R$1\tFAIL\tall peers\tno python with numpy at $py"
  fi
}

: >"$out"
{
  echo "# $(date -u +%FT%TZ) $(uname -m) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) nproc=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg)"
  for r in $(seq 1 "$rounds"); do
    if [ $((r % 2)) -eq 1 ]; then ours "$r"; peers "$r"; else peers "$r"; ours "$r"; fi
    echo "# round $r done $(date -u +%TZ) load=$(cut -d' ' -f1-3 /proc/loadavg)"
  done
} 2>&1 | tee -a "$out"

python3 - "$out" <<'EOF'
import statistics, sys
passes, rss, acc, fail = {}, {}, {}, []
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    if len(f) < 3 or not f[0].startswith("R"):
        continue
    kind = f[1]
    if kind == "PASS":
        passes.setdefault(f[2], []).append(float(f[3]))
    elif kind == "RSS":
        rss[f[2]] = max(rss.get(f[2], 0), float(f[3]))
    elif kind == "ACC":
        acc[f[2]] = (float(f[3]), float(f[4]))
    elif kind == "FAIL":
        fail.append(f"{f[2]}: {f[3] if len(f) > 3 else ''}")
def base(case):
    for w in ["vit_b32_image", "vit_b32_text_short"]:
        if case.startswith(w):
            return w
def peer_rss(case):
    if case in rss:  # ours: one process per case
        return rss[case]
    for p in ["torch_f32", "torch_bf16", "ort_f32", "ort_int8pc", "ort_int8"]:
        if case.endswith("_" + p):
            return rss.get(p)
print("\ncase\tpasses (ms/item)\tmedian\tvs our f32\tvs our int8\tmin cos\tmin centred cos\tpeak RSS MiB")
for case in sorted(passes, key=lambda c: (base(c), c != base(c), c != base(c) + "_int8", c)):
    med = statistics.median(passes[case])
    w = base(case)
    f32 = statistics.median(passes[w]) if w in passes else None
    i8 = statistics.median(passes[w + "_int8"]) if w + "_int8" in passes else None
    a = acc.get(case, ("", ""))
    r = peer_rss(case)
    print("\t".join([case, " ".join(f"{p:.2f}" for p in passes[case]), f"{med:.2f}",
                     f"{med / f32:.2f}" if f32 else "", f"{med / i8:.2f}" if i8 else "",
                     f"{a[0]:.5f}" if a[0] != "" else "", f"{a[1]:.5f}" if a[1] != "" else "",
                     f"{r:.0f}" if r else ""]))
for f in sorted(set(fail)):
    print("did not run:", f)
EOF
