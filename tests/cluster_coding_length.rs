//! Coding length against a numpy float64 recomputation (tools/golden/cluster_core_goldens.py →
//! coding_length.json, cl_*_z.npy), and its behaviour as a model-selection criterion.

mod common;

use rateclust::cluster::algorithms::coding_length::coding_length;
use rateclust::io::npy::read_npy;
use rateclust::rng::Rng;
use rateclust::Status;

#[derive(serde::Deserialize)]
struct Case {
    z: String,
    labels: Vec<usize>,
    eps_sq: f64,
    value: f64,
}

#[test]
fn matches_numpy_float64() {
    let text = std::fs::read_to_string(common::fixture("cluster_core/coding_length.json")).unwrap();
    let cases: Vec<Case> = serde_json::from_str(&text).unwrap();
    assert_eq!(cases.len(), 8);
    for c in &cases {
        let (z, n, d) = read_npy(&common::fixture(&format!("cluster_core/{}", c.z))).unwrap().to_f32_matrix(&c.z).unwrap();
        let got = coding_length(&z, n, d, &c.labels, c.eps_sq).unwrap();
        let rel = (got - c.value).abs() / c.value.abs();
        assert!(rel < 1e-12, "{} eps² {}: {got} vs numpy {} (rel {rel:e})", c.z, c.eps_sq, c.value);
        // Label values are only names: relabelling (with gaps) gives the same length.
        let renamed: Vec<usize> = c.labels.iter().map(|&l| 1000 - 7 * l).collect();
        let again = coding_length(&z, n, d, &renamed, c.eps_sq).unwrap();
        assert!((again - got).abs() <= 1e-12 * got.abs());
    }
}

#[test]
fn prefers_the_true_number_of_subspaces() {
    // Points on 4 random 3-dimensional subspaces of R^24: the true partition codes shorter than merging
    // two subspaces or splitting one at random.
    let (d, dim, per, k) = (24usize, 3usize, 100usize, 4usize);
    let mut rng = Rng::new(11);
    let mut z = Vec::new();
    let mut truth = Vec::new();
    for c in 0..k {
        let basis: Vec<f64> = (0..dim * d).map(|_| rng.normal()).collect();
        for _ in 0..per {
            let coef: Vec<f64> = (0..dim).map(|_| rng.normal()).collect();
            let mut row: Vec<f64> = (0..d).map(|t| (0..dim).map(|a| coef[a] * basis[a * d + t]).sum()).collect();
            let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
            row.iter_mut().for_each(|v| *v /= norm);
            z.extend(row.iter().map(|&v| v as f32));
            truth.push(c);
        }
    }
    let n = k * per;
    let true_len = coding_length(&z, n, d, &truth, 0.1).unwrap();
    let merged: Vec<usize> = truth.iter().map(|&c| c.min(2)).collect();
    let split: Vec<usize> = truth.iter().enumerate().map(|(i, &c)| if c == 0 && i % 2 == 0 { 9 } else { c }).collect();
    let merged_len = coding_length(&z, n, d, &merged, 0.1).unwrap();
    let split_len = coding_length(&z, n, d, &split, 0.1).unwrap();
    assert!(true_len < merged_len && true_len < split_len, "true {true_len}, merged {merged_len}, split {split_len}");
}

#[test]
fn bad_input_is_a_clear_error() {
    let z = vec![0.5f32; 12];
    let l = vec![0usize, 1, 0, 1];
    assert_eq!(coding_length(&z, 4, 3, &l[..3], 0.1).unwrap_err().status(), Status::InvalidArgument);
    assert_eq!(coding_length(&z, 4, 4, &l, 0.1).unwrap_err().status(), Status::InvalidArgument);
    assert_eq!(coding_length(&z, 4, 3, &l, 0.0).unwrap_err().status(), Status::InvalidArgument);
    assert_eq!(coding_length(&z, 4, 3, &l, f64::NAN).unwrap_err().status(), Status::InvalidArgument);
    let mut bad = z.clone();
    bad[5] = f32::INFINITY;
    assert_eq!(coding_length(&bad, 4, 3, &l, 0.1).unwrap_err().status(), Status::NonFinite);
}
