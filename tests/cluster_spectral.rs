//! Spectral clustering recovers block-structured affinities exactly, its embedding matches numpy's
//! (tools/golden/cluster_core_goldens.py → spectral_*.npy); bad input is refused.

mod common;

use rateclust::cluster::algorithms::metrics::ari;
use rateclust::cluster::algorithms::spectral::{spectral_clustering, spectral_embedding};
use rateclust::io::npy::{read_npy, NpyData};
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
    let e = spectral_clustering(&vec![0.0; 100], 10, 2, 10, 0).unwrap_err();
    assert_eq!(e.status(), Status::Numerical);
    assert!(e.to_string().contains("zero off the diagonal"), "{e}");
    // Only self-affinity: no graph either.
    let eye: Vec<f32> = (0..100).map(|i| if i % 11 == 0 { 1.0 } else { 0.0 }).collect();
    assert_eq!(spectral_clustering(&eye, 10, 2, 10, 0).unwrap_err().status(), Status::Numerical);
}

#[test]
fn self_affinity_is_ignored() {
    // A dominant diagonal (what a sharp Sinkhorn plan has) must not change the clustering.
    let (mut a, truth) = block_affinity(&[40, 30, 30], 0.3, 0.25, 7);
    let n = truth.len();
    let base = spectral_clustering(&a, n, 3, 10, 42).unwrap();
    assert_eq!(ari(&labels_i64(&base), &truth).unwrap(), 1.0);
    for i in 0..n {
        a[i * n + i] = 1000.0 * (1 + i % 3) as f32;
    }
    assert_eq!(spectral_clustering(&a, n, 3, 10, 42).unwrap(), base);
}

#[test]
fn an_isolated_point_does_not_break_the_others() {
    let (mut a, truth) = block_affinity(&[20, 20, 20], 0.5, 0.1, 6);
    let n = truth.len();
    // Point 0 has no affinity to anything (zero degree): it gets some label, the rest stay exact.
    for j in 0..n {
        a[j] = 0.0;
        a[j * n] = 0.0;
    }
    let l = spectral_clustering(&a, n, 3, 10, 42).unwrap();
    assert!(l[0] < 3);
    assert_eq!(ari(&labels_i64(&l[1..]), &truth[1..]).unwrap(), 1.0);
}

#[test]
fn embedding_matches_numpy_up_to_rotation() {
    let (a, n, n2) = read_npy(&common::fixture("cluster_core/spectral_affinity.npy")).unwrap().to_f32_matrix("affinity").unwrap();
    assert_eq!(n, n2);
    let want = read_npy(&common::fixture("cluster_core/spectral_embedding.npy")).unwrap();
    let k = want.shape[1];
    let NpyData::F64(want) = want.data else { panic!("float64 expected") };
    let got = spectral_embedding(&a, n, k).unwrap();
    // Eigenvectors are defined up to a rotation of the basis; the Gram matrix E Eᵀ of the row-normalised
    // embedding is not.
    let mut worst: f64 = 0.0;
    for i in 0..n {
        for j in 0..n {
            let g: f64 = (0..k).map(|t| got[i * k + t] * got[j * k + t]).sum();
            let w: f64 = (0..k).map(|t| want[i * k + t] * want[j * k + t]).sum();
            worst = worst.max((g - w).abs());
        }
    }
    assert!(worst < 1e-6, "max |E Eᵀ − E_np E_npᵀ| = {worst:e}");
    let truth = read_npy(&common::fixture("cluster_core/spectral_truth.npy")).unwrap().to_i64_vec("truth").unwrap();
    let l = spectral_clustering(&a, n, k, 10, 42).unwrap();
    assert_eq!(ari(&labels_i64(&l), &truth).unwrap(), 1.0);
}

#[derive(serde::Deserialize)]
struct Reference {
    k: usize,
    acc: f64,
    nmi: f64,
    ari: f64,
    labels: Vec<i64>,
}

#[test]
fn agrees_with_the_reference_protocol_on_a_sinkhorn_plan() {
    // Π of noisy union-of-subspaces features, clustered by the reference CPP pipeline (scipy Laplacian,
    // ARPACK, sklearn k-means): our scores match its mean scores, and our labels largely match its labels.
    let pi = read_npy(&common::fixture("cluster_core/spectral_ref_pi.npy")).unwrap();
    let (pi, n, _) = pi.to_f32_matrix("spectral_ref_pi").unwrap();
    let truth = read_npy(&common::fixture("cluster_core/spectral_ref_truth.npy")).unwrap().to_i64_vec("truth").unwrap();
    let r: Reference =
        serde_json::from_str(&std::fs::read_to_string(common::fixture("cluster_core/spectral_ref.json")).unwrap()).unwrap();
    let l = labels_i64(&spectral_clustering(&pi, n, r.k, 10, 42).unwrap());
    let s = rateclust::cluster::algorithms::metrics::scores(&l, &truth).unwrap();
    println!("ours ACC {:.4} NMI {:.4} ARI {:.4}; reference ACC {:.4} NMI {:.4} ARI {:.4}", s.acc, s.nmi, s.ari, r.acc, r.nmi, r.ari);
    assert!((s.acc - r.acc).abs() < 0.02 && (s.nmi - r.nmi).abs() < 0.02 && (s.ari - r.ari).abs() < 0.02);
    let agreement = ari(&l, &r.labels).unwrap();
    assert!(agreement > 0.95, "ARI between our labels and the reference's: {agreement}");
}
