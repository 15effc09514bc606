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

/// Multiply-adds below which a product runs on the calling thread as one piece.
const PARALLEL_MIN_FLOPS: usize = 64 * 64 * 64;

/// Fewest multiply-adds one parallel piece gets: below this, splitting costs more (packing the shared
/// operand again, a task hand-over) than a thread gains.
const PIECE_MIN_FLOPS: usize = 1 << 21;

/// Number of pieces a product of `flops` multiply-adds is split into: one per thread of the current rayon
/// pool, fewer when the pieces would get small.
pub(super) fn pieces_for(flops: usize) -> usize {
    if flops < PARALLEL_MIN_FLOPS {
        1
    } else {
        rayon::current_num_threads().min(flops / PIECE_MIN_FLOPS).max(1)
    }
}

/// C ← α·A·B (+ C if `accum` is `Add`), split into `pieces` blocks of C's columns or rows (whichever C
/// has more of), each a single-threaded faer product, run through `rayon::join`.
///
/// Why not faer's own threading (`Par::rayon`): it sets up each product with `rayon::scope` (boxed tasks,
/// so every product allocates), and it multiplies threads when called from a thread that is already one of
/// many running products in parallel. `rayon::join` puts its tasks on the caller's stack and, when every
/// thread is busy, simply runs both halves on the calling thread; so products nest without
/// oversubscription and, run on a pool thread, allocate nothing. The split is along C only (never along
/// the inner dimension), so each element is summed in the same order however many pieces there are.
fn product<T: Real>(c: MatMut<'_, T>, accum: Accum, a: MatRef<'_, T>, b: MatRef<'_, T>, alpha: T, pieces: usize) {
    if pieces <= 1 {
        faer::linalg::matmul::matmul(c, accum, a, b, alpha, Par::Seq);
        return;
    }
    let left = pieces / 2;
    // Block edges on multiples of 16 (one AVX-512 f32 register) where the dimension allows.
    let cut = |len: usize| ((len * left / pieces).div_ceil(16) * 16).clamp(1, len - 1);
    if c.ncols() >= c.nrows() && c.ncols() >= 2 {
        let mid = cut(c.ncols());
        let (c0, c1) = c.split_at_col_mut(mid);
        let (b0, b1) = b.split_at_col(mid);
        rayon::join(|| product(c0, accum, a, b0, alpha, left), || product(c1, accum, a, b1, alpha, pieces - left));
    } else if c.nrows() >= 2 {
        let mid = cut(c.nrows());
        let (c0, c1) = c.split_at_row_mut(mid);
        let (a0, a1) = a.split_at_row(mid);
        rayon::join(|| product(c0, accum, a0, b, alpha, left), || product(c1, accum, a1, b, alpha, pieces - left));
    } else {
        faer::linalg::matmul::matmul(c, accum, a, b, alpha, Par::Seq);
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
    product(c_view, accum, a_op, b_op, alpha, pieces_for(m * n * k));
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

    /// Products split into pieces (columns for wide C, rows for tall C, odd sizes that do not fall on the
    /// 16-element edges) equal the naive product, and every piece count gives the same bits: the split
    /// never touches the summation order.
    #[test]
    fn split_products_match_the_naive_product_bit_for_bit_across_piece_counts() {
        for (m, n, k) in [(37, 301, 129), (301, 37, 64), (1, 250, 33), (250, 1, 17), (2, 2, 5)] {
            let a: Vec<f64> = (0..m * k).map(|i| ((i * 7919 % 1013) as f64) / 500.0 - 1.0).collect();
            let b: Vec<f64> = (0..k * n).map(|i| ((i * 104_729 % 997) as f64) / 400.0 - 1.2).collect();
            let r = naive(m, n, k, &a, Trans::No, &b, Trans::No);
            let mut first: Option<Vec<f64>> = None;
            for pieces in 1..=7 {
                let mut c = vec![f64::NAN; m * n];
                let a_view = MatRef::from_row_major_slice(&a, m, k);
                let b_view = MatRef::from_row_major_slice(&b, k, n);
                let c_view = MatMut::from_column_major_slice_mut(&mut c, n, m).transpose_mut();
                product(c_view, Accum::Replace, a_view, b_view, 1.0, pieces);
                for i in 0..m * n {
                    assert!((c[i] - r[i]).abs() < 1e-9, "{m}×{n}×{k}, {pieces} pieces, at {i}: {} vs {}", c[i], r[i]);
                }
                match &first {
                    None => first = Some(c),
                    Some(f) => assert!(f.iter().zip(&c).all(|(x, y)| x.to_bits() == y.to_bits()), "{m}×{n}×{k}: {pieces} pieces differ from 1"),
                }
            }
        }
    }

    /// The same bit-for-bit check in f32, whose kernels differ from f64's.
    #[test]
    fn split_f32_products_do_not_depend_on_the_piece_count() {
        for (m, n, k) in [(50, 768, 768), (1600, 97, 64), (3, 1000, 40)] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7919 % 1013) as f32) / 500.0 - 1.0).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i * 104_729 % 997) as f32) / 400.0 - 1.2).collect();
            let run = |pieces: usize| {
                let mut c = vec![f32::NAN; m * n];
                let c_view = MatMut::from_column_major_slice_mut(&mut c, n, m).transpose_mut();
                product(c_view, Accum::Replace, MatRef::from_row_major_slice(&a, m, k), MatRef::from_row_major_slice(&b, k, n), 1.0, pieces);
                c
            };
            let one = run(1);
            for pieces in 2..=5 {
                assert!(run(pieces).iter().zip(&one).all(|(x, y)| x.to_bits() == y.to_bits()), "{m}×{n}×{k}: {pieces} pieces differ from 1");
            }
        }
    }
}
