//! Per-cluster scores (soft memberships) behind `assign`'s labels: `Clusterer::scores`, the C export
//! `rateclust_assign_scores` and `rateclust assign --scores`. With the default rule each row is the fraction
//! of the point's 10 nearest fitted points in each cluster: rows sum to 1 and their argmax is the label
//! wherever the vote has a single winner; with the subspace rule the argmax is always the label.

use rateclust::cluster::clusterer::Clusterer;
use rateclust::cluster::params::{AssignRule, FitParams};
use rateclust::cluster::synthetic::{union_of_subspaces, SubspaceSpec};
use rateclust::progress::NoProgress;
use rateclust::Device;

fn argmax_unique(row: &[f32]) -> Option<usize> {
    let best = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let at: Vec<usize> = (0..row.len()).filter(|&j| row[j] == best).collect();
    (at.len() == 1).then(|| at[0])
}

#[test]
fn scores_agree_with_labels_for_every_rule_and_every_entry_point() {
    let spec = SubspaceSpec { n: 600, dim: 32, k: 4, rank: 3, noise: 0.1, seed: 21 };
    let (x, _) = union_of_subspaces(&spec).unwrap();
    let p = FitParams { k: 4, seed: 5, ..FitParams::default() };
    let mut clusterer = Clusterer::fit(&x, spec.n, spec.dim, &p, &Device::Cpu, &mut NoProgress).unwrap();
    assert_eq!(clusterer.params.assign_rule, AssignRule::NeighborsInput);
    let (n, k) = (spec.n, 4);

    let a = clusterer.assign(&x, n, &mut NoProgress).unwrap();
    let s = clusterer.scores(&x, n, &mut NoProgress).unwrap();
    assert_eq!(s.len(), n * k);
    let mut unique = 0;
    for (i, row) in s.chunks(k).enumerate() {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "row {i} sums to {}", row.iter().sum::<f32>());
        assert!(row.iter().all(|&v| (0.0..=1.0).contains(&v)));
        if let Some(j) = argmax_unique(row) {
            assert_eq!(j as i64, a.labels[i], "row {i}: {row:?}");
            unique += 1;
        }
    }
    assert!(unique > n * 9 / 10, "only {unique} rows with a single winner");

    // The C export, on the saved model loaded through C, writes the same numbers; a short buffer is refused.
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("assign_scores");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    clusterer.save(&dir.join("m.safetensors")).unwrap();
    let path = std::ffi::CString::new(dir.join("m.safetensors").to_str().unwrap()).unwrap();
    let mut c = std::ptr::null_mut();
    assert_eq!(rateclust::ffi::cluster::rateclust_clusterer_load(path.as_ptr(), &mut c), rateclust::Status::Ok);
    let mut out = vec![0.0f32; n * k];
    let st = rateclust::ffi::cluster::rateclust_assign_scores(c, x.as_ptr(), n, spec.dim, out.as_mut_ptr(), out.len(), None, std::ptr::null_mut());
    assert_eq!(st, rateclust::Status::Ok);
    assert_eq!(out, s);
    let st = rateclust::ffi::cluster::rateclust_assign_scores(c, x.as_ptr(), n, spec.dim, out.as_mut_ptr(), n * k - 1, None, std::ptr::null_mut());
    assert_eq!(st, rateclust::Status::InvalidArgument);
    rateclust::ffi::cluster::rateclust_clusterer_free(c);

    // The subspace rule: squared projections; the argmax is the label, always.
    clusterer.params.assign_rule = AssignRule::Subspace;
    let a = clusterer.assign(&x, n, &mut NoProgress).unwrap();
    let s = clusterer.scores(&x, n, &mut NoProgress).unwrap();
    for (i, row) in s.chunks(k).enumerate() {
        let best = (0..k).fold(0, |b, j| if row[j] > row[b] { j } else { b });
        assert_eq!(best as i64, a.labels[i], "row {i}: {row:?}");
    }

    // The CLI writes an n×k float32 .npy.
    clusterer.params.assign_rule = AssignRule::NeighborsInput;
    rateclust::io::npy::write_npy_f32(&dir.join("x.npy"), &x, &[n, spec.dim]).unwrap();
    let r = std::process::Command::new(env!("CARGO_BIN_EXE_rateclust"))
        .args(["assign", "--device", "cpu", "--clusterer", "m.safetensors", "--features", "x.npy", "--out", "l.npy", "--scores", "s.npy"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let (cli, rows, cols) = rateclust::io::npy::read_npy(&dir.join("s.npy")).unwrap().to_f32_matrix("scores").unwrap();
    assert_eq!((rows, cols), (n, k));
    assert_eq!(cli, clusterer.scores(&x, n, &mut NoProgress).unwrap());
}
