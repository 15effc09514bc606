//! Coding length of a clustering (docs/design.md §1 step 5; Ma et al. 2007, as CPP uses it to choose k):
//!
//!   L = Σ_j [ (n_j + d)/2 · logdet(I + d/(ε² n_j) Z_jᵀ Z_j) + n_j · (−log(n_j / n)) ]
//!
//! the bits (nats) to code each cluster's features up to distortion ε² plus the cluster memberships.
//! The k with the smallest L is preferred. Empty clusters contribute nothing. Computed in f64; the log-det
//! goes through the library's one Cholesky path ([`crate::linalg::cholesky::logdet_spd`]).

use crate::error::{check_finite, Result};
use crate::invalid_arg;
use crate::linalg::cholesky::logdet_spd;
use crate::linalg::{gemm, Trans};
use rayon::prelude::*;
use std::collections::BTreeMap;

/// Coding length of the n×d features `z` (row-major) partitioned by `labels` (any values; one cluster per
/// distinct value), with distortion `eps_sq` (ε², CPP uses 0.1).
pub fn coding_length(z: &[f32], n: usize, d: usize, labels: &[usize], eps_sq: f64) -> Result<f64> {
    if n == 0 || d == 0 {
        return Err(invalid_arg!("coding length: need a non-empty n×d matrix, got n = {n}, d = {d}"));
    }
    if z.len() != n * d {
        return Err(invalid_arg!("coding length: features have {} values, expected n·d = {n}·{d}", z.len()));
    }
    if labels.len() != n {
        return Err(invalid_arg!("coding length: {} labels for {n} feature rows", labels.len()));
    }
    if !(eps_sq.is_finite() && eps_sq > 0.0) {
        return Err(invalid_arg!("coding length: eps_sq = {eps_sq} must be finite and > 0"));
    }
    check_finite("coding length features", z)?;
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, &l) in labels.iter().enumerate() {
        groups.entry(l).or_default().push(i);
    }
    let groups: Vec<Vec<usize>> = groups.into_values().collect();
    let terms: Vec<f64> = groups
        .par_iter()
        .map(|rows| {
            let nj = rows.len();
            cluster_term(&gram(z, rows, d), nj, n, d, eps_sq)
        })
        .collect::<Result<_>>()?;
    // Summed in cluster order, so the value does not depend on thread scheduling.
    Ok(terms.iter().sum())
}

/// Z_jᵀ Z_j (d×d, f64) of the given rows of the n×d features `z`.
pub(crate) fn gram(z: &[f32], rows: &[usize], d: usize) -> Vec<f64> {
    let zj: Vec<f64> = rows.iter().flat_map(|&i| z[i * d..(i + 1) * d].iter().map(|&v| v as f64)).collect();
    let mut g = vec![0.0f64; d * d];
    gemm(d, d, rows.len(), 1.0, &zj, d, Trans::Yes, &zj, d, Trans::No, 0.0, &mut g, d);
    g
}

/// One cluster's term of L from its Gram matrix `gram` = Z_jᵀ Z_j (d×d): (n_j + d)/2 · logdet(I + d/(ε² n_j)
/// Z_jᵀ Z_j) − n_j · log(n_j / n). The one statement of the formula: [`coding_length`] sums it over the
/// clusters, and the cheapest merge (crate::cluster::coding_refine) compares it for pairs of clusters.
pub(crate) fn cluster_term(gram: &[f64], nj: usize, n: usize, d: usize, eps_sq: f64) -> Result<f64> {
    let alpha = d as f64 / (eps_sq * nj as f64);
    let mut m: Vec<f64> = gram.iter().map(|&v| alpha * v).collect();
    (0..d).for_each(|t| m[t * d + t] += 1.0);
    let logdet = logdet_spd(&m, d)?;
    Ok((nj + d) as f64 / 2.0 * logdet - nj as f64 * (nj as f64 / n as f64).ln())
}
