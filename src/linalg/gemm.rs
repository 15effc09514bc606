//! The single CPU matrix-product entry point: C ← α·op(A)·op(B) + β·C on row-major slices.
//!
//! Everything that multiplies matrices on the CPU (coding rates, the clustering head, the CLIP towers)
//! calls this function, so there is one place to tune and one place to check.

use super::Real;
use faer::{Accum, MatMut, MatRef, Par};

/// Whether an operand is used as stored or transposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trans {
    No,
    Yes,
}

/// Parallelism for a product of this many multiply-adds: small products stay on the calling thread,
/// which matters when the caller already runs many of them in parallel (batched small matrices).
fn par_for(flops: usize) -> Par {
    if flops < 64 * 64 * 64 || rayon::current_thread_index().is_some() {
        Par::Seq
    } else {
        Par::rayon(0)
    }
}

/// C (m×n, row stride `ldc`) ← α·op(A)·op(B) + β·C, all row-major.
///
/// `a` holds op(A) as stored: m×k if `ta == No`, k×m if `ta == Yes`, with row stride `lda`; likewise `b`.
/// `beta == 0` overwrites C (its old contents may be garbage, even NaN).
#[allow(clippy::too_many_arguments)]
pub fn gemm<T: Real>(
    m: usize,
    n: usize,
    k: usize,
    alpha: T,
    a: &[T],
    lda: usize,
    ta: Trans,
    b: &[T],
    ldb: usize,
    tb: Trans,
    beta: T,
    c: &mut [T],
    ldc: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    let (ar, ac) = if ta == Trans::No { (m, k) } else { (k, m) };
    let (br, bc) = if tb == Trans::No { (k, n) } else { (n, k) };
    let a_view = MatRef::from_row_major_slice_with_stride(&a[..span(ar, ac, lda)], ar, ac, lda);
    let b_view = MatRef::from_row_major_slice_with_stride(&b[..span(br, bc, ldb)], br, bc, ldb);
    let a_op = if ta == Trans::No { a_view } else { a_view.transpose() };
    let b_op = if tb == Trans::No { b_view } else { b_view.transpose() };
    if beta != T::zero() && beta != T::one() {
        for row in c.chunks_mut(ldc).take(m) {
            row[..n].iter_mut().for_each(|x| *x *= beta);
        }
    }
    let cspan = span(m, n, ldc);
    // Built as the transpose of a column-major view: faer 0.24.4's `from_row_major_slice_with_stride_mut`
    // swaps the strides (it builds a column-major view), which our gemm test caught.
    let mut c_view = MatMut::from_column_major_slice_with_stride_mut(&mut c[..cspan], n, m, ldc).transpose_mut();
    let accum = if beta == T::zero() { Accum::Replace } else { Accum::Add };
    if k == 0 {
        if accum == Accum::Replace {
            c_view.fill(T::zero());
        }
        return;
    }
    faer::linalg::matmul::matmul(c_view, accum, a_op, b_op, alpha, par_for(m * n * k));
}

/// Number of slice elements a rows×cols row-major matrix with row stride `ld` spans.
fn span(rows: usize, cols: usize, ld: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * ld + cols
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, n: usize, k: usize, a: &[f64], ta: Trans, b: &[f64], tb: Trans) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                for p in 0..k {
                    let av = if ta == Trans::No { a[i * k + p] } else { a[p * m + i] };
                    let bv = if tb == Trans::No { b[p * n + j] } else { b[j * k + p] };
                    c[i * n + j] += av * bv;
                }
            }
        }
        c
    }

    #[test]
    fn matches_naive_product_for_all_transpositions() {
        let (m, n, k) = (7, 5, 9);
        let a: Vec<f64> = (0..m * k).map(|i| ((i * 37 % 11) as f64) - 5.0).collect();
        let b: Vec<f64> = (0..k * n).map(|i| ((i * 13 % 7) as f64) * 0.5 - 1.0).collect();
        for ta in [Trans::No, Trans::Yes] {
            for tb in [Trans::No, Trans::Yes] {
                let lda = if ta == Trans::No { k } else { m };
                let ldb = if tb == Trans::No { n } else { k };
                let mut c = vec![1.0; m * n];
                gemm(m, n, k, 2.0, &a, lda, ta, &b, ldb, tb, 0.5, &mut c, n);
                let r = naive(m, n, k, &a, ta, &b, tb);
                for i in 0..m * n {
                    assert!((c[i] - (2.0 * r[i] + 0.5)).abs() < 1e-9, "{ta:?} {tb:?} at {i}: {} vs {}", c[i], 2.0 * r[i] + 0.5);
                }
            }
        }
    }
}
