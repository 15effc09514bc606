//! Symmetric eigendecomposition (faer's self-adjoint EVD: Householder tridiagonalisation, then
//! divide and conquer), for spectral clustering and anything else that needs eigenvectors of a
//! symmetric matrix. Same contract as `numpy.linalg.eigh`: eigenvalues ascending, eigenvectors in columns.

use super::Real;
use crate::error::{check_finite, Error, Result};
use crate::invalid_arg;
use faer::{MatRef, Side};

/// Eigenvalues (ascending) and eigenvectors of the symmetric n×n row-major matrix `a`.
///
/// Only the lower triangle of `a` is read (the matrix is assumed symmetric). The eigenvectors come back
/// n×n row-major with eigenvector i in column i (`v[r * n + i]`), orthonormal.
pub fn eigh<T: Real>(a: &[T], n: usize) -> Result<(Vec<T>, Vec<T>)> {
    if n == 0 {
        return Err(invalid_arg!("eigh: the matrix is empty (n = 0)"));
    }
    if a.len() != n * n {
        return Err(invalid_arg!("eigh: matrix has {} values, expected n² = {}", a.len(), n * n));
    }
    check_finite("eigh matrix", &a.iter().map(|v| v.to_f64()).collect::<Vec<_>>())?;
    let view = MatRef::from_row_major_slice(a, n, n);
    let evd = view
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| Error::Numerical(format!("eigh of a {n}×{n} matrix did not converge: {e:?}")))?;
    let s = evd.S();
    let u = evd.U();
    let values: Vec<T> = (0..n).map(|i| s[i]).collect();
    let mut vectors = vec![T::zero(); n * n];
    for r in 0..n {
        for c in 0..n {
            vectors[r * n + c] = u[(r, c)];
        }
    }
    Ok((values, vectors))
}

/// The `k` largest eigenvalues (descending) and their eigenvectors (n×k row-major, eigenvector i in
/// column i) of the symmetric n×n matrix `a` whose spectrum lies in `[lo, hi]` (e.g. [−1, 1] for a
/// normalised affinity D^{-1/2} A D^{-1/2} with A ≥ 0).
///
/// Chebyshev-filtered subspace iteration (Zhou & Saad 2007) with Rayleigh–Ritz on a block of p > k
/// vectors: each pass costs a few n×n×p GEMMs instead of the O(n³) full decomposition, and a block method
/// resolves repeated eigenvalues (k perfectly separated clusters give eigenvalue 1 k times), where a
/// single-vector Krylov method would not. Converged when every wanted Ritz pair has residual
/// ‖A v − θ v‖ ≤ `tol`·max(|lo|, |hi|); if it has not converged after a bounded number of passes, the full
/// [`eigh`] answers instead, so the result is always accurate. Small matrices go straight to [`eigh`].
pub fn eigh_top_k(a: &[f64], n: usize, k: usize, lo: f64, hi: f64, tol: f64) -> Result<(Vec<f64>, Vec<f64>)> {
    if n == 0 || k == 0 || k > n {
        return Err(invalid_arg!("eigh_top_k: need 1 ≤ k ≤ n, got k = {k}, n = {n}"));
    }
    if a.len() != n * n {
        return Err(invalid_arg!("eigh_top_k: matrix has {} values, expected n² = {}", a.len(), n * n));
    }
    if !(lo.is_finite() && hi.is_finite() && lo < hi && tol > 0.0) {
        return Err(invalid_arg!("eigh_top_k: need a finite spectrum bound lo < hi and tol > 0, got [{lo}, {hi}], tol {tol}"));
    }
    let p = (2 * k).max(k + 8).min(n);
    if n <= 4 * p || n <= 256 {
        return full_top_k(a, n, k);
    }
    check_finite("eigh_top_k matrix", a)?;
    match subspace_iteration(a, n, k, p, lo, hi, tol * lo.abs().max(hi.abs())) {
        Some(r) => Ok(r),
        None => full_top_k(a, n, k),
    }
}

fn full_top_k(a: &[f64], n: usize, k: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let (w, v) = eigh(a, n)?;
    let vals = (0..k).map(|i| w[n - 1 - i]).collect();
    let mut vecs = vec![0.0; n * k];
    for r in 0..n {
        for i in 0..k {
            vecs[r * k + i] = v[r * n + n - 1 - i];
        }
    }
    Ok((vals, vecs))
}

/// Orthonormalises the columns of the n×p row-major `q` in place (modified Gram–Schmidt, twice for
/// stability). Returns false if the block lost rank.
fn orthonormalise(q: &mut [f64], n: usize, p: usize) -> bool {
    for _pass in 0..2 {
        for j in 0..p {
            for i in 0..j {
                let dot: f64 = (0..n).map(|r| q[r * p + i] * q[r * p + j]).sum();
                (0..n).for_each(|r| q[r * p + j] -= dot * q[r * p + i]);
            }
            let norm = (0..n).map(|r| q[r * p + j].powi(2)).sum::<f64>().sqrt();
            if !(norm > 1e-300) {
                return false;
            }
            (0..n).for_each(|r| q[r * p + j] /= norm);
        }
    }
    true
}

fn subspace_iteration(a: &[f64], n: usize, k: usize, p: usize, lo: f64, hi: f64, abs_tol: f64) -> Option<(Vec<f64>, Vec<f64>)> {
    use super::{gemm, Trans};
    const DEGREE: usize = 10;
    const MAX_PASSES: usize = 60;
    // A fixed start: the result must not depend on a caller's random state.
    let mut rng = crate::rng::Rng::new(0x5eed_e16b);
    let mut q: Vec<f64> = (0..n * p).map(|_| rng.normal()).collect();
    if !orthonormalise(&mut q, n, p) {
        return None;
    }
    let mut aq = vec![0.0; n * p];
    let mut h = vec![0.0; p * p];
    let (mut y0, mut y1, mut y2) = (vec![0.0; n * p], vec![0.0; n * p], vec![0.0; n * p]);
    let mut rotated = vec![0.0; n * p];
    for _pass in 0..MAX_PASSES {
        // Rayleigh–Ritz: H = Qᵀ A Q, rotate Q (and AQ) onto H's eigenvectors, largest first.
        gemm(n, p, n, 1.0, a, n, Trans::No, &q, p, Trans::No, 0.0, &mut aq, p);
        gemm(p, p, n, 1.0, &q, p, Trans::Yes, &aq, p, Trans::No, 0.0, &mut h, p);
        for i in 0..p {
            for j in 0..i {
                let s = 0.5 * (h[i * p + j] + h[j * p + i]);
                h[i * p + j] = s;
                h[j * p + i] = s;
            }
        }
        let (theta, w) = eigh(&h, p).ok()?;
        let mut w_desc = vec![0.0; p * p];
        for r in 0..p {
            for c in 0..p {
                w_desc[r * p + c] = w[r * p + p - 1 - c];
            }
        }
        let theta: Vec<f64> = theta.into_iter().rev().collect();
        gemm(n, p, p, 1.0, &q, p, Trans::No, &w_desc, p, Trans::No, 0.0, &mut rotated, p);
        std::mem::swap(&mut q, &mut rotated);
        gemm(n, p, p, 1.0, &aq, p, Trans::No, &w_desc, p, Trans::No, 0.0, &mut rotated, p);
        std::mem::swap(&mut aq, &mut rotated);
        let worst = (0..k)
            .map(|i| (0..n).map(|r| (aq[r * p + i] - theta[i] * q[r * p + i]).powi(2)).sum::<f64>().sqrt())
            .fold(0.0f64, f64::max);
        if worst <= abs_tol {
            let vecs = (0..n).flat_map(|r| q[r * p..r * p + k].to_vec()).collect();
            return Some((theta[..k].to_vec(), vecs));
        }
        // Chebyshev filter damping [lo, b], b = the smallest Ritz value (an upper estimate of the unwanted
        // part of the spectrum), amplifying everything above it: Y_{j+1} = 2(A − c)Y_j / e − Y_{j−1}.
        let b = theta[p - 1].max(lo + 1e-3 * (hi - lo));
        if b >= theta[k - 1] {
            return None; // no gap between wanted and unwanted Ritz values: let the full solver answer
        }
        let (c, e) = ((b + lo) / 2.0, (b - lo) / 2.0);
        y0.copy_from_slice(&q);
        // Y1 = (A − c) Q / e, starting from the A·Q already computed.
        for i in 0..n * p {
            y1[i] = (aq[i] - c * q[i]) / e;
        }
        for _ in 1..DEGREE {
            gemm(n, p, n, 2.0 / e, a, n, Trans::No, &y1, p, Trans::No, 0.0, &mut y2, p);
            for i in 0..n * p {
                y2[i] -= 2.0 * c / e * y1[i] + y0[i];
            }
            std::mem::swap(&mut y0, &mut y1);
            std::mem::swap(&mut y1, &mut y2);
        }
        q.copy_from_slice(&y1);
        if !orthonormalise(&mut q, n, p) {
            return None;
        }
    }
    None
}
