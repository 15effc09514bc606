//! Cholesky factorisation, log-determinants and inverses of symmetric positive-definite (SPD) matrices,
//! one at a time and batched (rayon over the batch, each factorisation sequential on its thread).
//!
//! The coding rates (docs/design.md §1) are log-dets of I + αZᵀDZ; their gradients need the inverse
//! (d logdet M = tr(M⁻¹ dM)), so the batched form returns both. Built on faer's blocked left-looking LLᵀ.

use super::Real;
use crate::error::{Error, Result};
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::{factor, inverse};
use faer::{MatMut, MatRef, Par};
use rayon::prelude::*;

fn check_square<T>(a: &[T], n: usize, what: &str) -> Result<()> {
    if n == 0 {
        return Err(crate::invalid_arg!("{what}: matrix size n must be ≥ 1"));
    }
    match n.checked_mul(n) {
        Some(nn) if nn == a.len() => Ok(()),
        _ => Err(crate::invalid_arg!("{what}: buffer has {} elements, expected n·n = {n}·{n}", a.len())),
    }
}

/// Factors the lower triangle of `a` (column-major view, n×n) in place with no parallelism. Because the
/// matrices are symmetric, a row-major buffer viewed column-major is the same matrix; the factor then sits in
/// the column-major lower triangle (= the row-major upper triangle, i.e. Lᵀ read row-major).
fn factor_col_major<T: Real>(a: &mut [T], n: usize, what: &str) -> Result<()> {
    let view = MatMut::from_column_major_slice_mut(a, n, n);
    factor_view(view, what)
}

fn factor_view<T: Real>(view: MatMut<'_, T>, what: &str) -> Result<()> {
    let n = view.nrows();
    let mut buf = MemBuffer::new(factor::cholesky_in_place_scratch::<T>(n, Par::Seq, Default::default()));
    factor::cholesky_in_place(view, Default::default(), Par::Seq, MemStack::new(&mut buf), Default::default())
        .map(|_| ())
        .map_err(|e| match e {
            factor::LltError::NonPositivePivot { index } => Error::Numerical(format!(
                "{what}: matrix is not symmetric positive definite (non-positive Cholesky pivot at index {index} of {n})"
            )),
        })
}

/// Σ 2·log L_kk over the diagonal of a factor stored in `a` (n×n, either layout).
fn logdet_from_factor<T: Real>(a: &[T], n: usize) -> T {
    let mut s = T::zero();
    for k in 0..n {
        s += a[k * n + k].ln();
    }
    s + s
}

/// Replaces `a` (row-major n×n, SPD) by its lower Cholesky factor L (A = LLᵀ); the strict upper triangle is
/// zeroed. Fails with `Error::Numerical` naming the pivot if `a` is not positive definite (only the lower
/// triangle of `a` is read).
pub fn cholesky_in_place<T: Real>(a: &mut [T], n: usize) -> Result<()> {
    check_square(a, n, "cholesky_in_place")?;
    // A row-major lower-triangular view: the transpose of a column-major view (see linalg::gemm on why not
    // faer's row-major constructor).
    let view = MatMut::from_column_major_slice_mut(a, n, n).transpose_mut();
    factor_view(view, "cholesky_in_place")?;
    for i in 0..n {
        a[i * n + i + 1..(i + 1) * n].iter_mut().for_each(|x| *x = T::zero());
    }
    Ok(())
}

/// log det A of one symmetric positive-definite matrix (row-major n×n; only its upper triangle is read).
/// `Error::Numerical` naming the pivot if it is not positive definite.
pub fn logdet_spd<T: Real>(a: &[T], n: usize) -> Result<T> {
    check_square(a, n, "logdet_spd")?;
    let mut work = a.to_vec();
    factor_col_major(&mut work, n, "logdet_spd")?;
    Ok(logdet_from_factor(&work, n))
}

/// For one SPD matrix `a` (n×n, symmetric; its row-major upper triangle is read): returns log det A and
/// writes the row-major upper triangle of A⁻¹ into `work` (n·n elements; its strict lower triangle is left
/// unspecified). `a` is overwritten by the Cholesky factor. The cheapest way to the inverse when the caller
/// only needs one triangle of it (the packed coding rates).
pub fn logdet_inverse_upper<T: Real>(a: &mut [T], n: usize, work: &mut [T], what: &str) -> Result<T> {
    check_square(a, n, what)?;
    factor_col_major(a, n, what)?;
    let logdet = logdet_from_factor(a, n);
    let mut buf = MemBuffer::new(inverse::inverse_scratch::<T>(n, Par::Seq));
    let l = MatRef::from_column_major_slice(a, n, n);
    let out = MatMut::from_column_major_slice_mut(&mut work[..n * n], n, n);
    // faer writes the column-major lower triangle of the inverse, i.e. the row-major upper one.
    inverse::inverse(out, l, Par::Seq, MemStack::new(&mut buf));
    Ok(logdet)
}

/// For one SPD matrix `a` (n×n, symmetric; its row-major upper triangle is read): returns log det A and
/// overwrites `a` with A⁻¹ (full symmetric matrix). `work` must hold n·n elements (scratch).
pub fn logdet_inverse_in_place<T: Real>(a: &mut [T], n: usize, work: &mut [T], what: &str) -> Result<T> {
    let logdet = logdet_inverse_upper(a, n, work, what)?;
    // Mirror the upper triangle into both halves of `a`, in tiles so that the transposed writes stay in cache.
    const B: usize = 16;
    for i0 in (0..n).step_by(B) {
        for j0 in (i0..n).step_by(B) {
            for i in i0..(i0 + B).min(n) {
                for j in j0.max(i)..(j0 + B).min(n) {
                    let v = work[i * n + j];
                    a[i * n + j] = v;
                    a[j * n + i] = v;
                }
            }
        }
    }
    Ok(logdet)
}

/// For one SPD matrix `a` (n×n, symmetric): returns log det A and overwrites `a` with L⁻¹, row-major lower
/// triangular (strict upper triangle zeroed), where A = LLᵀ. `work` must hold n·n elements (scratch).
///
/// Why not A⁻¹: products with A⁻¹ lose accuracy as cond(A)² for vectors in A's stiff directions (the case
/// in the rate gradients, where z_i lies in the span of the Gram matrix), while going through L⁻¹ twice
/// (x L⁻ᵀ L⁻¹) loses only about cond(A), like a triangular solve; this is what keeps f32 within 1e-3.
pub fn logdet_lower_inverse_in_place<T: Real>(a: &mut [T], n: usize, work: &mut [T], what: &str) -> Result<T> {
    check_square(a, n, what)?;
    factor_col_major(a, n, what)?;
    let logdet = logdet_from_factor(a, n);
    {
        let l = MatRef::from_column_major_slice(a, n, n);
        let out = MatMut::from_column_major_slice_mut(&mut work[..n * n], n, n);
        faer::linalg::triangular_inverse::invert_lower_triangular(out, l, Par::Seq);
    }
    // work holds L⁻¹ column-major: (i, j) at work[i + j·n] for i ≥ j.
    for i in 0..n {
        for j in 0..=i {
            a[i * n + j] = work[i + j * n];
        }
        a[i * n + i + 1..(i + 1) * n].iter_mut().for_each(|x| *x = T::zero());
    }
    Ok(logdet)
}

/// Batched log-det and inverse: `mats` holds `batch` SPD n×n matrices back to back; each is replaced by its
/// inverse and the log-dets are returned. Parallel over the batch. The error names the first failing matrix.
pub fn logdet_inverse_batch<T: Real>(mats: &mut [T], n: usize, batch: usize) -> Result<Vec<T>> {
    if n == 0 || mats.len() != n * n * batch {
        return Err(crate::invalid_arg!(
            "logdet_inverse_batch: buffer has {} elements, expected batch·n·n = {batch}·{n}·{n} with n ≥ 1",
            mats.len()
        ));
    }
    let mut out = vec![T::zero(); batch];
    mats.par_chunks_mut(n * n).zip(out.par_iter_mut()).enumerate().try_for_each_init(
        || vec![T::zero(); n * n],
        |work, (b, (m, o))| -> Result<()> {
            *o = logdet_inverse_in_place(m, n, work, &format!("matrix {b} of the batch"))?;
            Ok(())
        },
    )?;
    Ok(out)
}

/// Batched log-dets only (no inverse): `mats` (batch × n × n) is overwritten by the Cholesky factors.
pub fn logdet_batch_in_place<T: Real>(mats: &mut [T], n: usize, batch: usize) -> Result<Vec<T>> {
    if n == 0 || mats.len() != n * n * batch {
        return Err(crate::invalid_arg!(
            "logdet_batch_in_place: buffer has {} elements, expected batch·n·n = {batch}·{n}·{n} with n ≥ 1",
            mats.len()
        ));
    }
    let mut out = vec![T::zero(); batch];
    mats.par_chunks_mut(n * n).zip(out.par_iter_mut()).enumerate().try_for_each(|(b, (m, o))| -> Result<()> {
        factor_col_major(m, n, &format!("matrix {b} of the batch"))?;
        *o = logdet_from_factor(m, n);
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn random_spd(n: usize, rng: &mut Rng) -> Vec<f64> {
        let b: Vec<f64> = (0..n * n).map(|_| rng.normal()).collect();
        let mut a = vec![0.0; n * n];
        crate::linalg::gemm(n, n, n, 1.0, &b, n, crate::linalg::Trans::No, &b, n, crate::linalg::Trans::Yes, 0.0, &mut a, n);
        for i in 0..n {
            a[i * n + i] += n as f64;
        }
        a
    }

    #[test]
    fn factor_reconstructs_and_logdet_matches_product_of_pivots() {
        let mut rng = Rng::new(7);
        for n in [1, 3, 17, 70] {
            let a = random_spd(n, &mut rng);
            let mut l = a.clone();
            cholesky_in_place(&mut l, n).unwrap();
            let mut llt = vec![0.0; n * n];
            crate::linalg::gemm(n, n, n, 1.0, &l, n, crate::linalg::Trans::No, &l, n, crate::linalg::Trans::Yes, 0.0, &mut llt, n);
            for i in 0..n * n {
                assert!((llt[i] - a[i]).abs() < 1e-9 * (1.0 + a[i].abs()), "n={n} at {i}");
            }
            let ld: f64 = (0..n).map(|k| 2.0 * l[k * n + k].ln()).sum();
            assert!((logdet_spd(&a, n).unwrap() - ld).abs() < 1e-10 * (1.0 + ld.abs()));
        }
    }

    #[test]
    fn batch_inverse_is_inverse() {
        let mut rng = Rng::new(3);
        let n = 33;
        let mats: Vec<f64> = (0..4).flat_map(|_| random_spd(n, &mut rng)).collect();
        let mut inv = mats.clone();
        let ld = logdet_inverse_batch(&mut inv, n, 4).unwrap();
        for b in 0..4 {
            let a = &mats[b * n * n..(b + 1) * n * n];
            assert!((ld[b] - logdet_spd(a, n).unwrap()).abs() < 1e-10);
            let mut p = vec![0.0; n * n];
            crate::linalg::gemm(n, n, n, 1.0, a, n, crate::linalg::Trans::No, &inv[b * n * n..(b + 1) * n * n], n, crate::linalg::Trans::No, 0.0, &mut p, n);
            for i in 0..n {
                for j in 0..n {
                    let e = if i == j { 1.0 } else { 0.0 };
                    assert!((p[i * n + j] - e).abs() < 1e-10, "batch {b} ({i},{j}) = {}", p[i * n + j]);
                }
            }
        }
    }

    #[test]
    fn lower_inverse_inverts_the_factor() {
        let mut rng = Rng::new(5);
        let n = 21;
        let a = random_spd(n, &mut rng);
        let mut li = a.clone();
        let mut work = vec![0.0; n * n];
        let ld = logdet_lower_inverse_in_place(&mut li, n, &mut work, "test").unwrap();
        assert!((ld - logdet_spd(&a, n).unwrap()).abs() < 1e-10);
        // L⁻ᵀ L⁻¹ = A⁻¹, so A · (L⁻ᵀ L⁻¹) = I.
        let mut ainv = vec![0.0; n * n];
        crate::linalg::gemm(n, n, n, 1.0, &li, n, crate::linalg::Trans::Yes, &li, n, crate::linalg::Trans::No, 0.0, &mut ainv, n);
        let mut p = vec![0.0; n * n];
        crate::linalg::gemm(n, n, n, 1.0, &a, n, crate::linalg::Trans::No, &ainv, n, crate::linalg::Trans::No, 0.0, &mut p, n);
        for i in 0..n {
            for j in 0..n {
                assert!((p[i * n + j] - if i == j { 1.0 } else { 0.0 }).abs() < 1e-10);
                if j > i {
                    assert_eq!(li[i * n + j], 0.0);
                }
            }
        }
    }

    #[test]
    fn documented_triangles_are_the_ones_read() {
        let mut rng = Rng::new(13);
        let n = 9;
        let a = random_spd(n, &mut rng);
        let want = logdet_spd(&a, n).unwrap();
        // logdet_spd reads the row-major upper triangle: garbage below the diagonal changes nothing.
        let mut upper = a.clone();
        for i in 0..n {
            for j in 0..i {
                upper[i * n + j] = f64::NAN;
            }
        }
        assert_eq!(logdet_spd(&upper, n).unwrap(), want);
        // cholesky_in_place reads the lower triangle.
        let mut lower = a.clone();
        for i in 0..n {
            for j in i + 1..n {
                lower[i * n + j] = f64::NAN;
            }
        }
        cholesky_in_place(&mut lower, n).unwrap();
        let ld: f64 = (0..n).map(|k| 2.0 * lower[k * n + k].ln()).sum();
        assert!((ld - want).abs() < 1e-12);
    }

    #[test]
    fn not_spd_is_a_numerical_error_naming_the_pivot() {
        let a = vec![1.0, 2.0, 2.0, 1.0];
        let e = logdet_spd(&a, 2).unwrap_err();
        assert!(matches!(e, Error::Numerical(_)));
        assert!(e.to_string().contains("pivot at index 1"), "{e}");
        let mut m = vec![1.0, 0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 1.0];
        let e = logdet_inverse_batch(&mut m, 2, 2).unwrap_err();
        assert!(e.to_string().contains("matrix 1"), "{e}");
        assert!(matches!(logdet_spd(&[1.0; 3], 2), Err(Error::InvalidArgument(_))));
    }
}
