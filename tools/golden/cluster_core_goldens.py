"""Golden files for the clustering core (issue 3): .npy I/O, metrics, eigh, k-means, coding length.

Rerun (deterministic; overwrites tests/fixtures/cluster_core/):
    /work/venv/bin/python tools/golden/cluster_core_goldens.py

References, none of them ours:
  * npy/      arrays written by numpy.lib.format in every dtype and version we read, plus files we must
              refuse (big-endian, Fortran order, object, unsupported dtype, 3-d, truncated, empty).
  * metrics.json  sklearn.metrics normalized_mutual_info_score / adjusted_rand_score and the Hungarian
              accuracy from scipy.optimize.linear_sum_assignment, on label vectors including rectangular
              (#clusters != #classes) and degenerate (one cluster, all singletons) cases.
  * eigh_*.npy    numpy.linalg.eigh (LAPACK) of random symmetric matrices, float64.
  * kmeans_blobs.npy + kmeans.json  sklearn KMeans(n_init=10) inertia on Gaussian blobs.
  * coding_length.json  docs/design.md §1 step 5 recomputed in numpy float64 (slogdet).
  * spectral_*.npy  the row-normalised NJW spectral embedding (docs/design.md §1 step 4, diagonal ignored) of a
              noisy, nonsymmetric block affinity, from numpy.linalg.eigh in float64.
  * spectral_ref_*  the reference CPP protocol (LeslieTrue/CPP metrics/clustering.py:
              spectral_clustering_metrics: scipy csgraph.laplacian(normed=True), eigsh of 2I − L, row
              normalisation, sklearn KMeans(n_init=10)) on a Sinkhorn plan Π (docs/design.md §1, η = 0.1) of noisy
              union-of-subspaces features: its mean ACC/NMI/ARI over 10 k-means seeds, and its labels.
Tested by tests/cluster_core_*.rs.
"""
import json
import os

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures", "cluster_core")
OUT = os.path.normpath(OUT)


def path(*p):
    full = os.path.join(OUT, *p)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    return full


def write_npy(name, arr, version=None):
    with open(path("npy", name), "wb") as f:
        np.lib.format.write_array(f, arr, version=version, allow_pickle=True)


def npy_files():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((3, 4))
    # Every supported dtype, as numpy writes it (version 1.0 by default).
    write_npy("f16.npy", base.astype("<f2"))
    write_npy("f32.npy", base.astype("<f4"))
    write_npy("f64.npy", base.astype("<f8"))
    ints = np.arange(-3, 7).astype(np.int64) * 1_000_000_007
    write_npy("i32.npy", (np.arange(-3, 7) * 1000).astype("<i4"))
    write_npy("i64.npy", ints.astype("<i8"))
    # Format versions 2.0 and 3.0.
    write_npy("f32_v2.npy", base.astype("<f4"), version=(2, 0))
    write_npy("f32_v3.npy", base.astype("<f4"), version=(3, 0))
    # Values the reader must round-trip exactly: the expected content, in float64, for all of the above.
    np.savetxt(path("npy", "base.txt"), base, fmt="%.17g")
    # Refused cases.
    write_npy("bad_big_endian.npy", base.astype(">f4"))
    write_npy("bad_fortran.npy", np.asfortranarray(base.astype("<f4")))
    write_npy("bad_object.npy", np.array([1, "a", None], dtype=object))
    write_npy("bad_uint8.npy", np.arange(6, dtype=np.uint8).reshape(2, 3))
    write_npy("bad_3d.npy", np.zeros((2, 3, 4), dtype="<f4"))
    write_npy("bad_nan.npy", np.array([[1.0, np.nan], [0.0, 1.0]], dtype="<f4"))
    full = open(path("npy", "f32.npy"), "rb").read()
    open(path("npy", "bad_truncated.npy"), "wb").write(full[:-5])
    open(path("npy", "bad_empty.npy"), "wb").write(b"")


def hungarian_accuracy(pred, truth):
    pred, truth = np.asarray(pred), np.asarray(truth)
    ps, pi = np.unique(pred, return_inverse=True)
    ts, ti = np.unique(truth, return_inverse=True)
    w = np.zeros((len(ps), len(ts)), dtype=np.int64)
    np.add.at(w, (pi, ti), 1)
    r, c = linear_sum_assignment(-w)
    return float(w[r, c].sum()) / len(pred)


def metrics():
    rng = np.random.default_rng(1)
    cases = []

    def add(name, pred, truth):
        pred = [int(x) for x in pred]
        truth = [int(x) for x in truth]
        cases.append({
            "name": name,
            "pred": pred,
            "truth": truth,
            "acc": hungarian_accuracy(pred, truth),
            "nmi": float(normalized_mutual_info_score(truth, pred)),
            "ari": float(adjusted_rand_score(truth, pred)),
        })

    t = rng.integers(0, 5, 200)
    add("identical_permuted", (t * 7 + 3) % 5 + 10, t)  # a relabelling: all scores 1
    noisy = t.copy()
    flip = rng.random(200) < 0.3
    noisy[flip] = rng.integers(0, 5, flip.sum())
    add("noisy_square", noisy, t)
    add("more_clusters_than_classes", rng.integers(0, 8, 300), rng.integers(0, 3, 300))
    add("fewer_clusters_than_classes", rng.integers(0, 2, 300), rng.integers(0, 6, 300))
    t2 = rng.integers(0, 4, 500)
    add("split_classes", t2 * 2 + (rng.random(500) < 0.5), t2)  # each class split in two clusters
    add("random_large", rng.integers(0, 10, 5000), rng.integers(0, 10, 5000))
    add("negative_and_sparse_ids", rng.choice([-5, 0, 99, 1_000_000], 120), rng.choice([3, -1, 42], 120))
    add("one_cluster", np.zeros(50, dtype=int), rng.integers(0, 3, 50))
    add("all_singletons", np.arange(40), rng.integers(0, 4, 40))
    add("both_one_cluster", np.zeros(10, dtype=int), np.ones(10, dtype=int))
    with open(path("metrics.json"), "w") as f:
        json.dump(cases, f)


def eigh():
    rng = np.random.default_rng(2)
    for n in [1, 5, 64, 200]:
        a = rng.standard_normal((n, n))
        a = (a + a.T) / 2
        w, v = np.linalg.eigh(a)
        np.save(path(f"eigh_{n}_a.npy"), a)
        np.save(path(f"eigh_{n}_w.npy"), w)
        np.save(path(f"eigh_{n}_v.npy"), v)
    # A matrix with a repeated eigenvalue: only the eigenspace is defined.
    q, _ = np.linalg.qr(rng.standard_normal((30, 30)))
    w = np.concatenate([np.full(5, 2.0), np.linspace(-1, 1, 25)])
    a = (q * w) @ q.T
    a = (a + a.T) / 2
    np.save(path("eigh_rep_a.npy"), a)
    np.save(path("eigh_rep_w.npy"), np.linalg.eigh(a)[0])


def kmeans():
    rng = np.random.default_rng(3)
    # Overlapping blobs: the optimum is not trivially found, so the inertia comparison means something.
    centers = rng.standard_normal((8, 16)) * 2.0
    x = np.concatenate([c + rng.standard_normal((150, 16)) for c in centers]).astype(np.float32)
    np.save(path("kmeans_blobs.npy"), x)
    out = {}
    for k in [4, 8, 12]:
        km = KMeans(n_clusters=k, n_init=10, random_state=0).fit(x.astype(np.float64))
        out[str(k)] = float(km.inertia_)
    with open(path("kmeans.json"), "w") as f:
        json.dump({"inertia": out}, f)


def coding_length_ref(z, labels, eps_sq):
    n, d = z.shape
    total = 0.0
    for j in np.unique(labels):
        zj = z[labels == j]
        nj = len(zj)
        m = np.eye(d) + d / (eps_sq * nj) * zj.T @ zj
        sign, logdet = np.linalg.slogdet(m)
        assert sign > 0
        total += (nj + d) / 2 * logdet + nj * (-np.log(nj / n))
    return float(total)


def coding_length():
    rng = np.random.default_rng(4)
    cases = []
    for (n, d, k) in [(60, 8, 3), (300, 32, 5), (500, 16, 1), (40, 64, 4)]:
        z = rng.standard_normal((n, d))
        z /= np.linalg.norm(z, axis=1, keepdims=True)
        z = z.astype(np.float32)
        labels = rng.integers(0, k, n)
        # Leave label k+1 unused so callers' label ranges with empty clusters are exercised.
        name = f"cl_{n}_{d}_{k}"
        np.save(path(name + "_z.npy"), z)
        for eps_sq in [0.1, 0.5]:
            cases.append({
                "z": name + "_z.npy",
                "labels": [int(v) for v in labels],
                "eps_sq": eps_sq,
                "value": coding_length_ref(z.astype(np.float64), labels, eps_sq),
            })
    with open(path("coding_length.json"), "w") as f:
        json.dump(cases, f)


def spectral():
    rng = np.random.default_rng(5)
    sizes = [120, 100, 80, 60, 40]
    truth = np.concatenate([np.full(s, c) for c, s in enumerate(sizes)])
    rng.shuffle(truth)
    n, k = len(truth), len(sizes)
    same = truth[:, None] == truth[None, :]
    a = np.where(same, 0.2 + 0.5 * rng.random((n, n)), 0.3 * rng.random((n, n))).astype(np.float32)
    sym = (a.astype(np.float64) + a.T.astype(np.float64)) / 2
    np.fill_diagonal(sym, 0.0)  # self-loops ignored, as scipy.sparse.csgraph.laplacian does
    dinv = 1 / np.sqrt(sym.sum(axis=1))
    m = sym * dinv[:, None] * dinv[None, :]
    w, v = np.linalg.eigh(m)
    emb = v[:, ::-1][:, :k]
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    np.save(path("spectral_affinity.npy"), a)
    np.save(path("spectral_embedding.npy"), emb)
    np.save(path("spectral_truth.npy"), truth.astype(np.int64))


def sinkhorn_plan(c, eta, half_iters=5):
    """n · Sinkhorn_eta(|C Cᵀ|) exactly as docs/design.md §1 states the reference's log-domain iteration."""
    from scipy.special import logsumexp
    n = len(c)
    k = np.abs(c @ c.T)
    u, v, log_mu = np.zeros(n), np.zeros(n), np.log(1.0 / n)
    for h in range(half_iters):
        if h % 2 == 0:
            u = eta * (log_mu - logsumexp((k + u[:, None] + v[None, :]) / eta, axis=1)) + u
        else:
            v = eta * (log_mu - logsumexp((k + u[:, None] + v[None, :]) / eta, axis=0)) + v
    return np.exp((k + u[:, None] + v[None, :]) / eta) * n


def spectral_reference():
    import scipy.sparse
    import scipy.sparse.csgraph
    import scipy.sparse.linalg
    rng = np.random.default_rng(6)
    sizes, d, dim, sigma, k = [90, 80, 70, 60, 50, 50], 32, 4, 0.3, 6
    xs, ys = [], []
    for c, m in enumerate(sizes):
        basis = np.linalg.qr(rng.standard_normal((d, dim)))[0]
        xs.append(rng.standard_normal((m, dim)) @ basis.T + sigma * rng.standard_normal((m, d)))
        ys += [c] * m
    x, y = np.concatenate(xs), np.array(ys)
    perm = rng.permutation(len(y))
    x, y = x[perm], y[perm]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    n = len(y)
    pi = sinkhorn_plan(x, 0.1).astype(np.float32)
    lap = scipy.sparse.csgraph.laplacian(pi.astype(np.float64), normed=True)
    _, emb = scipy.sparse.linalg.eigsh(2 * scipy.sparse.identity(n) - lap, k=k, which="LM", tol=0,
                                       v0=np.ones(n))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    runs = [KMeans(n_clusters=k, n_init=10, random_state=s).fit(emb).labels_ for s in range(10)]
    out = {
        "k": k,
        "acc": float(np.mean([hungarian_accuracy(p, y) for p in runs])),
        "nmi": float(np.mean([normalized_mutual_info_score(y, p) for p in runs])),
        "ari": float(np.mean([adjusted_rand_score(y, p) for p in runs])),
        "labels": [int(v) for v in runs[0]],
    }
    np.save(path("spectral_ref_pi.npy"), pi)
    np.save(path("spectral_ref_truth.npy"), y.astype(np.int64))
    with open(path("spectral_ref.json"), "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    npy_files()
    metrics()
    eigh()
    kmeans()
    coding_length()
    spectral()
    spectral_reference()
    print("wrote", OUT)
