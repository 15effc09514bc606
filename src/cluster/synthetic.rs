//! A synthetic feature set for tests, the demo and benchmarks: a union of k random low-dimensional linear
//! subspaces of R^dim (the data model MCR²/CPP is built for), with Gaussian noise.

use crate::error::Result;
use crate::rng::Rng;

/// Settings of [`union_of_subspaces`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SubspaceSpec {
    pub n: usize,
    pub dim: usize,
    pub k: usize,
    /// Dimension of each subspace.
    pub rank: usize,
    /// Standard deviation of the isotropic noise added to each coordinate (signal coordinates have
    /// variance 1/rank per basis direction, so a row's signal norm is about 1).
    pub noise: f64,
    pub seed: u64,
}

/// n points (row-major n×dim f32) and their subspace index (0..k). Point i lies on subspace i mod k before
/// the rows are shuffled, so the clusters are balanced. Each subspace has a random orthonormal basis
/// (Gram–Schmidt of Gaussian vectors).
pub fn union_of_subspaces(spec: &SubspaceSpec) -> Result<(Vec<f32>, Vec<i64>)> {
    let SubspaceSpec { n, dim, k, rank, noise, seed } = *spec;
    if n == 0 || dim == 0 || k == 0 || rank == 0 || rank > dim {
        return Err(crate::invalid_arg!("synthetic subspaces: need n, dim, k, rank > 0 and rank ≤ dim (got {n}, {dim}, {k}, {rank})"));
    }
    if !(noise.is_finite() && noise >= 0.0) {
        return Err(crate::invalid_arg!("synthetic subspaces: noise must be ≥ 0, got {noise}"));
    }
    let mut rng = Rng::new(seed);
    let bases: Vec<Vec<f64>> = (0..k)
        .map(|_| {
            let mut b: Vec<f64> = Vec::with_capacity(rank * dim);
            for q in 0..rank {
                let mut v: Vec<f64> = (0..dim).map(|_| rng.normal()).collect();
                for p in 0..q {
                    let u = &b[p * dim..(p + 1) * dim];
                    let dot: f64 = v.iter().zip(u).map(|(a, b)| a * b).sum();
                    v.iter_mut().zip(u).for_each(|(a, b)| *a -= dot * b);
                }
                let nrm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
                b.extend(v.iter().map(|a| a / nrm));
            }
            b
        })
        .collect();
    let mut order: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut order);
    let mut x = vec![0.0f32; n * dim];
    let mut labels = vec![0i64; n];
    let coef_sd = 1.0 / (rank as f64).sqrt();
    for (row, &i) in order.iter().enumerate() {
        let j = i % k;
        labels[row] = j as i64;
        let b = &bases[j];
        let mut v: Vec<f64> = (0..dim).map(|_| noise * rng.normal()).collect();
        for q in 0..rank {
            let a = coef_sd * rng.normal();
            v.iter_mut().zip(&b[q * dim..(q + 1) * dim]).for_each(|(x, u)| *x += a * u);
        }
        x[row * dim..(row + 1) * dim].iter_mut().zip(&v).for_each(|(o, &s)| *o = s as f32);
    }
    Ok((x, labels))
}
