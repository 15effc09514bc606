"""Does the coding length of the *input* features rank partitions from different CPP heads like their accuracy?

The evidence behind `FitParams::head_restarts` (src/cluster/restart_select.rs), restated in NumPy independently
of the Rust code. For each run directory written by

    cargo run --release --example eval_dev -- --data ../shared/data/fmnist_effnet_dev --dump RUN key=value ...

it partitions every point by k-means (10 restarts) on the run's C (close to the model's own labels), adds plain
k-means on the L2-normalised input, and prints ACC / NMI next to the coding length (Ma et al. 2007, ε² = 0.1)
of the input under each partition: on all n points, and on 2048-point samples after centring, projecting on
the top-128 principal directions and row-normalising (what the library scores). Lower coding length should go
with higher accuracy.

    /work/venv/bin/python tools/dev/score_partitions.py --data ../shared/data/fmnist_effnet_dev RUN1 RUN2 ...
"""
import argparse

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score


def accuracy(y, p):
    k = max(y.max(), p.max()) + 1
    w = np.zeros((k, k))
    np.add.at(w, (p, y), 1)
    r, c = linear_sum_assignment(-w)
    return w[r, c].sum() / len(y)


def coding_length(e, labels, eps_sq=0.1):
    n, d = e.shape
    total = 0.0
    for j in np.unique(labels):
        ej = e[labels == j]
        nj = len(ej)
        total += (nj + d) / 2 * np.linalg.slogdet(np.eye(d) + d / (eps_sq * nj) * ej.T @ ej)[1] - nj * np.log(nj / n)
    return total


def projected(xs, r=128):
    xc = xs - xs.mean(0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    p = xc @ vt[:r].T
    return p / np.linalg.norm(p, axis=1, keepdims=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("runs", nargs="+")
    a = ap.parse_args()
    x = np.concatenate([np.load(f"{a.data}/fmnist_train10k_features_f16_part{i}.npy").astype(np.float64) for i in (0, 1)])
    y = np.load(f"{a.data}/fmnist_train10k_labels.npy")
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    parts = {run: KMeans(10, n_init=10, random_state=0).fit_predict(np.load(f"{run}/c.npy")) for run in a.runs}
    parts["k-means on input"] = KMeans(10, n_init=10, random_state=0).fit_predict(xn)
    rng = np.random.default_rng(0)
    samples = [rng.choice(len(y), 2048, replace=False) for _ in range(a.samples)]
    proj = [projected(xn[s]) for s in samples]
    print(f"{'partition':<28} {'ACC':>6} {'NMI':>6} {'L(all, PCA128)':>15} " + " ".join(f"{'L(sample ' + str(i) + ')':>12}" for i in range(a.samples)))
    full = projected(xn)
    for name, p in parts.items():
        ls = " ".join(f"{coding_length(pr, p[s]):12.0f}" for pr, s in zip(proj, samples))
        print(f"{name:<28} {accuracy(y, p):6.4f} {normalized_mutual_info_score(y, p):6.4f} {coding_length(full, p):15.0f} {ls}", flush=True)


if __name__ == "__main__":
    main()
