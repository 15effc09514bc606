//! k-means: greedy k-means++ seeding, Lloyd iterations, `n_init` restarts keeping the lowest inertia.
//!
//! Mirrors scikit-learn's `KMeans(algorithm="lloyd")`: greedy k-means++ with 2 + ⌊ln k⌋ candidates per
//! step, tolerance `tol` relative to the mean per-feature variance of the data (convergence when the total
//! squared centre shift falls below it, or when no label changes), empty clusters re-seeded with the
//! points farthest from their centres. Randomness comes only from [`Rng`], and every reduction runs over
//! fixed chunks in a fixed order, so a seed gives the same result on every run.
//!
//! Squared distances use ‖x‖² − 2 x·c + ‖c‖² with the products from [`crate::linalg::gemm`]; the reported
//! inertia is recomputed exactly in f64 from the differences.

use crate::error::{check_finite, Result};
use crate::invalid_arg;
use crate::linalg::{gemm, Trans};
use crate::rng::Rng;
use rayon::prelude::*;

/// Rows per block in distance computations: bounds the temporary n×k distance matrix (block × k floats)
/// and is the unit of parallel work.
const BLOCK_ROWS: usize = 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct KMeansParams {
    /// Number of clusters (1 ≤ k ≤ n).
    pub k: usize,
    /// Independent k-means++ restarts; the result with the lowest inertia is kept.
    pub n_init: usize,
    /// Maximum Lloyd iterations per restart.
    pub max_iter: usize,
    /// Convergence tolerance on the total squared centre shift, relative to the mean feature variance.
    pub tol: f64,
    pub seed: u64,
}

impl Default for KMeansParams {
    fn default() -> Self {
        KMeansParams { k: 8, n_init: 10, max_iter: 300, tol: 1e-4, seed: 42 }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct KMeansResult {
    /// Cluster of each point, in 0..k.
    pub labels: Vec<usize>,
    /// k×d row-major centres (the means of their clusters).
    pub centers: Vec<f32>,
    /// Sum of squared distances of the points to their centres.
    pub inertia: f64,
    /// Lloyd iterations run by the kept restart.
    pub n_iter: usize,
}

/// Clusters the rows of `x` (n×d, row-major) into `params.k` groups.
pub fn kmeans(x: &[f32], n: usize, d: usize, params: &KMeansParams) -> Result<KMeansResult> {
    kmeans_cancellable(x, n, d, params, &mut || Ok(()))
}

/// Lloyd iterations between two calls of a caller's cancellation check: an iteration over n points costs
/// n·k·d multiply-adds, so even a million points with k = 100 at d = 512 answer a cancel well within a second.
const CHECK_EVERY_ITERS: usize = 4;

/// [`kmeans`] that asks `check` before every restart and every few Lloyd iterations whether to go on; an
/// error from `check` (typically `Error::Cancelled` from a progress callback) ends the call with it.
pub fn kmeans_cancellable(
    x: &[f32],
    n: usize,
    d: usize,
    params: &KMeansParams,
    check: &mut dyn FnMut() -> Result<()>,
) -> Result<KMeansResult> {
    let k = params.k;
    if d == 0 || n == 0 {
        return Err(invalid_arg!("k-means needs a non-empty n×d matrix, got n = {n}, d = {d}"));
    }
    if x.len() != n * d {
        return Err(invalid_arg!("k-means input has {} values, expected n·d = {n}·{d}", x.len()));
    }
    if k == 0 || k > n {
        return Err(invalid_arg!("k-means: k = {k} must be between 1 and the number of points n = {n}"));
    }
    if params.n_init == 0 || params.max_iter == 0 {
        return Err(invalid_arg!("k-means: n_init ({}) and max_iter ({}) must be at least 1", params.n_init, params.max_iter));
    }
    if !(params.tol.is_finite() && params.tol >= 0.0) {
        return Err(invalid_arg!("k-means: tol = {} must be finite and ≥ 0", params.tol));
    }
    check_finite("k-means input", x)?;

    let x_sq = row_sq_norms(x, d);
    let tol = params.tol * mean_variance(x, n, d);
    let mut master = Rng::new(params.seed);
    let mut best: Option<KMeansResult> = None;
    for _ in 0..params.n_init {
        check()?;
        let mut rng = Rng::new(master.next_u64());
        let init = kmeans_plus_plus(x, &x_sq, n, d, k, &mut rng);
        let run = lloyd(x, &x_sq, n, d, k, init, params.max_iter, tol, check)?;
        if best.as_ref().is_none_or(|b| run.inertia < b.inertia) {
            best = Some(run);
        }
    }
    Ok(best.expect("n_init ≥ 1"))
}

/// Nearest centre of every row of `x` (n×d) among `centers` (k×d), with its squared distance.
pub fn nearest_center(x: &[f32], n: usize, d: usize, centers: &[f32], k: usize) -> Result<(Vec<usize>, Vec<f32>)> {
    if x.len() != n * d || centers.len() != k * d || k == 0 {
        return Err(invalid_arg!(
            "nearest_center: x has {} values (n·d = {n}·{d}), centers {} (k·d = {k}·{d}), k must be ≥ 1",
            x.len(),
            centers.len()
        ));
    }
    check_finite("nearest_center input", x)?;
    check_finite("nearest_center centers", centers)?;
    Ok(assign(x, &row_sq_norms(x, d), n, d, centers, k))
}

fn row_sq_norms(x: &[f32], d: usize) -> Vec<f32> {
    x.par_chunks(d).map(|r| r.iter().map(|&v| v * v).sum()).collect()
}

/// Mean over features of the per-feature variance (sklearn's `_tolerance`).
fn mean_variance(x: &[f32], n: usize, d: usize) -> f64 {
    let mut mean = vec![0.0f64; d];
    for r in x.chunks(d) {
        mean.iter_mut().zip(r).for_each(|(m, &v)| *m += v as f64);
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut var = 0.0;
    for r in x.chunks(d) {
        var += r.iter().zip(&mean).map(|(&v, m)| (v as f64 - m).powi(2)).sum::<f64>();
    }
    var / (n * d) as f64
}

/// Squared distances of rows `x` (m×d) to `c` (k×d) into `out` (m×k): ‖x‖² − 2x·c + ‖c‖², clamped at 0.
fn sq_dists(x: &[f32], x_sq: &[f32], m: usize, d: usize, c: &[f32], c_sq: &[f32], k: usize, out: &mut [f32]) {
    gemm(m, k, d, -2.0f32, x, d, Trans::No, c, d, Trans::Yes, 0.0, out, k);
    for (row, &xs) in out.chunks_mut(k).zip(x_sq) {
        row.iter_mut().zip(c_sq).for_each(|(v, &cs)| *v = (*v + xs + cs).max(0.0));
    }
}

/// Labels and squared distances to the nearest centre, block by block in parallel.
fn assign(x: &[f32], x_sq: &[f32], n: usize, d: usize, centers: &[f32], k: usize) -> (Vec<usize>, Vec<f32>) {
    let c_sq = row_sq_norms(centers, d);
    let mut labels = vec![0usize; n];
    let mut dist = vec![0f32; n];
    labels
        .par_chunks_mut(BLOCK_ROWS)
        .zip(dist.par_chunks_mut(BLOCK_ROWS))
        .enumerate()
        .for_each(|(b, (lab, dst))| {
            let r0 = b * BLOCK_ROWS;
            let m = lab.len();
            let mut buf = vec![0f32; m * k];
            sq_dists(&x[r0 * d..(r0 + m) * d], &x_sq[r0..r0 + m], m, d, centers, &c_sq, k, &mut buf);
            for (i, row) in buf.chunks(k).enumerate() {
                let (j, v) = row.iter().enumerate().fold((0, f32::INFINITY), |a, (j, &v)| if v < a.1 { (j, v) } else { a });
                lab[i] = j;
                dst[i] = v;
            }
        });
    (labels, dist)
}

/// Greedy k-means++ (Arthur & Vassilvitskii; the greedy variant scikit-learn uses): each new centre is the
/// best, by resulting potential, of 2 + ⌊ln k⌋ points drawn with probability ∝ squared distance.
fn kmeans_plus_plus(x: &[f32], x_sq: &[f32], n: usize, d: usize, k: usize, rng: &mut Rng) -> Vec<f32> {
    let trials = 2 + (k as f64).ln() as usize;
    let mut centers = Vec::with_capacity(k * d);
    let first = rng.below(n);
    centers.extend_from_slice(&x[first * d..(first + 1) * d]);
    let mut closest = dists_to_points(x, x_sq, n, d, &[first]);
    for _ in 1..k {
        let pot: f64 = closest.iter().map(|&v| v as f64).sum();
        let mut cum = Vec::with_capacity(n);
        let mut acc = 0.0f64;
        for &v in &closest {
            acc += v as f64;
            cum.push(acc);
        }
        let cands: Vec<usize> = (0..trials)
            .map(|_| {
                if pot > 0.0 {
                    let r = rng.uniform() * pot;
                    cum.partition_point(|&c| c <= r).min(n - 1)
                } else {
                    // All points coincide with a centre: any point is as good as another.
                    rng.below(n)
                }
            })
            .collect();
        let cand_d = dists_to_points(x, x_sq, n, d, &cands); // n × trials
        let t = cands.len();
        let (mut best_t, mut best_pot) = (0, f64::INFINITY);
        for ci in 0..t {
            let p: f64 = (0..n).map(|i| closest[i].min(cand_d[i * t + ci]) as f64).sum();
            if p < best_pot {
                best_pot = p;
                best_t = ci;
            }
        }
        for i in 0..n {
            closest[i] = closest[i].min(cand_d[i * t + best_t]);
        }
        let c = cands[best_t];
        centers.extend_from_slice(&x[c * d..(c + 1) * d]);
    }
    centers
}

/// n×|idx| squared distances from every row to the rows `idx`.
fn dists_to_points(x: &[f32], x_sq: &[f32], n: usize, d: usize, idx: &[usize]) -> Vec<f32> {
    let t = idx.len();
    let c: Vec<f32> = idx.iter().flat_map(|&i| x[i * d..(i + 1) * d].iter().copied()).collect();
    let c_sq: Vec<f32> = idx.iter().map(|&i| x_sq[i]).collect();
    let mut out = vec![0f32; n * t];
    out.par_chunks_mut(BLOCK_ROWS * t).enumerate().for_each(|(b, o)| {
        let r0 = b * BLOCK_ROWS;
        let m = o.len() / t;
        sq_dists(&x[r0 * d..(r0 + m) * d], &x_sq[r0..r0 + m], m, d, &c, &c_sq, t, o);
    });
    out
}

/// Per-cluster sums and counts. Each block of rows is summed in f32 (short sums, vectorised), block sums
/// are added in f64 in block order, so the result is deterministic and accurate for any n.
fn cluster_sums(x: &[f32], labels: &[usize], d: usize, k: usize) -> (Vec<f64>, Vec<usize>) {
    let partial: Vec<(Vec<f32>, Vec<usize>)> = x
        .par_chunks(BLOCK_ROWS * d)
        .zip(labels.par_chunks(BLOCK_ROWS))
        .map(|(xb, lb)| {
            let mut s = vec![0.0f32; k * d];
            let mut c = vec![0usize; k];
            for (row, &l) in xb.chunks_exact(d).zip(lb) {
                c[l] += 1;
                s[l * d..(l + 1) * d].iter_mut().zip(row).for_each(|(a, &v)| *a += v);
            }
            (s, c)
        })
        .collect();
    let mut sums = vec![0.0f64; k * d];
    let mut counts = vec![0usize; k];
    for (s, c) in partial {
        sums.iter_mut().zip(&s).for_each(|(a, &b)| *a += b as f64);
        counts.iter_mut().zip(&c).for_each(|(a, b)| *a += b);
    }
    (sums, counts)
}

/// Lloyd iterations from `centers` until the labels stop changing, the squared centre shift is ≤ `tol`,
/// or `max_iter`.
#[allow(clippy::too_many_arguments)]
#[allow(clippy::too_many_arguments)]
fn lloyd(
    x: &[f32],
    x_sq: &[f32],
    n: usize,
    d: usize,
    k: usize,
    mut centers: Vec<f32>,
    max_iter: usize,
    tol: f64,
    check: &mut dyn FnMut() -> Result<()>,
) -> Result<KMeansResult> {
    let mut labels: Vec<usize> = Vec::new();
    let mut n_iter = 0;
    for it in 0..max_iter {
        if it > 0 && it % CHECK_EVERY_ITERS == 0 {
            check()?;
        }
        n_iter = it + 1;
        let (new_labels, dist) = assign(x, x_sq, n, d, &centers, k);
        if new_labels == labels {
            break; // strict convergence: the centres are already the means of these labels
        }
        labels = new_labels;
        let (mut sums, mut counts) = cluster_sums(x, &labels, d, k);
        relocate_empty(x, d, &dist, &mut labels, &mut sums, &mut counts);
        let mut shift = 0.0f64;
        for j in 0..k {
            for t in 0..d {
                let c = (sums[j * d + t] / counts[j] as f64) as f32;
                shift += ((c - centers[j * d + t]) as f64).powi(2);
                centers[j * d + t] = c;
            }
        }
        if shift <= tol {
            // Converged on the centre shift: labels must describe the final centres.
            labels = assign(x, x_sq, n, d, &centers, k).0;
            break;
        }
    }
    let inertia = x
        .par_chunks(d)
        .zip(labels.par_iter())
        .map(|(r, &l)| r.iter().zip(&centers[l * d..(l + 1) * d]).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum::<f64>())
        .collect::<Vec<f64>>()
        .iter()
        .sum();
    Ok(KMeansResult { labels, centers, inertia, n_iter })
}

/// Gives each empty cluster the point farthest from its centre (taken from a cluster with > 1 member),
/// as scikit-learn's `_relocate_empty_clusters` does.
fn relocate_empty(x: &[f32], d: usize, dist: &[f32], labels: &mut [usize], sums: &mut [f64], counts: &mut [usize]) {
    let empty: Vec<usize> = (0..counts.len()).filter(|&j| counts[j] == 0).collect();
    if empty.is_empty() {
        return;
    }
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by(|&a, &b| dist[b].total_cmp(&dist[a]).then(a.cmp(&b)));
    let mut far = order.into_iter();
    for j in empty {
        let Some(i) = far.by_ref().find(|&i| counts[labels[i]] > 1) else { return };
        let old = labels[i];
        let row = &x[i * d..(i + 1) * d];
        for t in 0..d {
            sums[old * d + t] -= row[t] as f64;
            sums[j * d + t] = row[t] as f64;
        }
        counts[old] -= 1;
        counts[j] = 1;
        labels[i] = j;
    }
}
