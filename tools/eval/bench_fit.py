#!/usr/bin/env python3
"""The fit-time benchmark of issue 13: a default `rateclust fit --k K` of a feature set against k-means++ with 10
restarts (rateclust's own, examples/eval_kmeans_dev.rs's `kmeans`, through the `kmeans` line below, and
scikit-learn's `KMeans(n_init=10)`) on the same L2-normalised features, in the same run, with the fit's time
split by stage (the CLI's "time by stage" line: head training incl. Sinkhorn, spectral clustering of Π,
consensus, neighbour refinement, other = input normalisation and principal directions) and the `assign` time.

    bench_fit.py FEATURES.npy K [--repeat 3]      (scripts/bench_fit.sh runs it on the dev set)
"""
import argparse, os, re, subprocess, sys, tempfile, time
import numpy as np
from sklearn.cluster import KMeans

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.join(ROOT, "target", "release", "rateclust")
KM = os.path.join(ROOT, "target", "release", "examples", "kmeans_npy")


def run(cmd):
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr}")
    return time.perf_counter() - t, r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("features")
    ap.add_argument("k", type=int)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    X = np.load(a.features).astype(np.float32)
    Xn = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    tmp = tempfile.mkdtemp()
    model, labels = os.path.join(tmp, "m.safetensors"), os.path.join(tmp, "l.npy")
    rows = []
    for rep in range(a.repeat):
        fit_s, r = run([BIN, "fit", "--features", a.features, "--k", str(a.k), "--out", model, "--device", "cpu"])
        stages = dict((s, float(t)) for s, t in re.findall(r"(\S+) ([0-9.]+)", re.search(r"time by stage \(s\): (.*)", r.stderr).group(1)))
        assign_s, _ = run([BIN, "assign", "--clusterer", model, "--features", a.features, "--out", labels, "--device", "cpu"])
        km_s, _ = run([KM, a.features, str(a.k)])
        t = time.perf_counter()
        KMeans(a.k, n_init=10, random_state=rep).fit(Xn)
        sk_s = time.perf_counter() - t
        rows.append((fit_s, stages, assign_s, km_s, sk_s))
    print(f"features {a.features}: n = {X.shape[0]}, dim = {X.shape[1]}, k = {a.k}; {os.cpu_count()} CPUs; median of {a.repeat}")
    med = lambda v: float(np.median(v))  # noqa: E731
    names = list(rows[0][1])
    print("| what | seconds |")
    print("|---|---|")
    print(f"| rateclust fit, defaults (process wall time, incl. reading the .npy) | {med([r[0] for r in rows]):.2f} |")
    for s in names:
        print(f"| … stage {s} | {med([r[1].get(s, 0.0) for r in rows]):.2f} |")
    print(f"| rateclust assign (all n) | {med([r[2] for r in rows]):.2f} |")
    print(f"| rateclust k-means++ ×10 (process wall time) | {med([r[3] for r in rows]):.2f} |")
    print(f"| scikit-learn KMeans(n_init=10) | {med([r[4] for r in rows]):.2f} |")
    print(f"| ratio fit / scikit-learn k-means | {med([r[0] for r in rows]) / med([r[4] for r in rows]):.2f} |")


if __name__ == "__main__":
    main()
