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
