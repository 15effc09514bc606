//! Spectral clustering recovers block-structured affinities exactly; bad input is refused.

use rateclust::cluster::metrics::ari;
use rateclust::cluster::spectral::spectral_clustering;
use rateclust::rng::Rng;
use rateclust::Status;

/// A shuffled, noisy, nonsymmetric affinity with `sizes.len()` blocks: within-block entries in
/// [in_lo, in_lo + 0.5), between-block entries in [0, out_hi).
fn block_affinity(sizes: &[usize], in_lo: f32, out_hi: f32, seed: u64) -> (Vec<f32>, Vec<i64>) {
    let mut rng = Rng::new(seed);
    let mut truth: Vec<i64> = sizes.iter().enumerate().flat_map(|(c, &s)| std::iter::repeat_n(c as i64, s)).collect();
    rng.shuffle(&mut truth);
    let n = truth.len();
    let a = (0..n * n)
        .map(|idx| {
            let (i, j) = (idx / n, idx % n);
            let u = rng.uniform() as f32;
            if truth[i] == truth[j] {
                in_lo + 0.5 * u
            } else {
                out_hi * u
            }
        })
        .collect();
    (a, truth)
}

fn labels_i64(l: &[usize]) -> Vec<i64> {
    l.iter().map(|&v| v as i64).collect()
}

#[test]
fn recovers_blocks_exactly() {
    for (sizes, in_lo, out_hi, seed) in [
        (vec![30, 30, 30], 0.5, 0.3, 1),             // small (full eigensolver path)
        (vec![200, 150, 100, 80, 60, 40, 30], 0.3, 0.25, 2), // uneven sizes, weak contrast, n = 660 (top-k path)
        (vec![100; 10], 0.0, 0.0, 3),                 // perfectly separated: eigenvalue 1 ten times
    ] {
        let (a, truth) = block_affinity(&sizes, in_lo, out_hi, seed);
        let n = truth.len();
        let k = sizes.len();
        let l = spectral_clustering(&a, n, k, 10, 42).unwrap();
        assert!(l.iter().all(|&v| v < k));
        assert_eq!(ari(&labels_i64(&l), &truth).unwrap(), 1.0, "sizes {sizes:?}");
        assert_eq!(spectral_clustering(&a, n, k, 10, 42).unwrap(), l, "deterministic");
    }
}

#[test]
fn bad_input_is_a_clear_error() {
    let (a, _) = block_affinity(&[5, 5], 0.5, 0.1, 4);
    let e = spectral_clustering(&a, 10, 1, 10, 0).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
    assert!(e.to_string().contains("k = 1"), "{e}");
    assert_eq!(spectral_clustering(&a, 10, 11, 10, 0).unwrap_err().status(), Status::InvalidArgument);
    assert_eq!(spectral_clustering(&a, 9, 2, 10, 0).unwrap_err().status(), Status::InvalidArgument);
    let mut b = a.clone();
    b[13] = f32::NAN;
    assert_eq!(spectral_clustering(&b, 10, 2, 10, 0).unwrap_err().status(), Status::NonFinite);
    b[13] = -0.5;
    let e = spectral_clustering(&b, 10, 2, 10, 0).unwrap_err();
    assert!(e.to_string().contains("negative") && e.to_string().contains("[1, 3]"), "{e}");
    assert_eq!(spectral_clustering(&a, 10, 2, 0, 0).unwrap_err().status(), Status::InvalidArgument);
}
