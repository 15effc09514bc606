#!/usr/bin/env bash
# The fit-time benchmark of issue 13 on the dev set (10k × 1280, k = 10): rateclust's default fit by stage and
# its assign, against k-means++ ×10 (rateclust's and scikit-learn's) in the same run (tools/eval/bench_fit.py).
# Needs the evaluation venv of scripts/eval.sh (scikit-learn); not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
home=${RATECLUST_EVAL_HOME:-$HOME/.cache/rateclust-eval}
py="$home/venv/bin/python"
[ -x "$py" ] || { echo "run scripts/eval.sh once first (it creates $home/venv)"; exit 2; }
cargo build --release --bin rateclust --example kmeans_npy
x=target/eval/dev10k_x.npy
mkdir -p target/eval
[ -e "$x" ] || "$py" -c "import numpy as np; d='../shared/data/fmnist_effnet_dev'; np.save('$x', np.concatenate([np.load(f'{d}/fmnist_train10k_features_f16_part{i}.npy') for i in (0, 1)]).astype(np.float32))"
"$py" tools/eval/bench_fit.py "$x" 10 "$@"
