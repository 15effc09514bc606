#!/usr/bin/env bash
# The main job, end to end on a fresh machine with nothing but cargo: build the `rateclust` CLI, then
#   0. a folder of images → named clusters and a report (`rateclust cluster`), with the tiny CLIP model of the
#      test fixtures (random weights: the clusters follow what a random model sees, mostly colour, and the names are
#      arbitrary;
#      give --model a real Hugging Face CLIP directory, e.g. openai/clip-vit-base-patch32, for real names);
#   1–5. the clustering alone on a feature set with ground truth (a synthetic union of 6 random
#      4-dimensional subspaces of R^64, 3000 points): fit → assign → select-k → eval.
#
#   scripts/demo.sh [WORK_DIR]        (default: target/demo)
#
# With your own features: rateclust fit --features X.npy --k K --out clusterer.safetensors, then
# rateclust assign --clusterer clusterer.safetensors ..., and so on (`rateclust --help`). The small head below
# keeps the demo to about a minute on 2 cores; the defaults are the automatic ones (README, "Defaults").
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-target/demo}
mkdir -p "$work"
echo "== building (cargo build --release; the first build takes several minutes)"
cargo build --release --bin rateclust --example demo_images
bin=target/release/rateclust

echo "== 0. a folder of images → named clusters, assignments.csv, clusters.json, report.html"
rm -rf "$work/photos"
target/release/examples/demo_images "$work/photos"
"$bin" cluster "$work/photos" --model tests/fixtures/clip_model/tiny --out "$work/photos_clustered" --k auto \
  --vocab <(printf 'stripes\ncheckerboard\ngrid\nlines\n') --device cpu
echo "open $work/photos_clustered/report.html in a browser"

echo "== 1. a feature set with known clusters"
"$bin" synth --out "$work/features.npy" --labels-out "$work/truth.npy" --n 3000 --dim 64 --k 6 --rank 4 --noise 0.02 --seed 7

echo "== 2. fit (k = 6)"
"$bin" fit --features "$work/features.npy" --k 6 --out "$work/clusterer.safetensors" \
  --hidden 256 --zdim 32 --batch 500 --steps 60 --warmup 10 --lr 0.001 --device cpu

echo "== 3. label every point"
"$bin" assign --clusterer "$work/clusterer.safetensors" --features "$work/features.npy" --out "$work/labels.npy" \
  --confidence "$work/confidence.npy"

echo "== 4. how many clusters? coding length over candidates (lower is better)"
"$bin" select-k --clusterer "$work/clusterer.safetensors" --features "$work/features.npy" --candidates 3,4,5,6,8,10 --device cpu

echo "== 5. quality against the ground truth"
"$bin" eval --pred "$work/labels.npy" --truth "$work/truth.npy"
