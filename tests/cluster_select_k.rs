//! `k` = 0 (automatic) chooses the number of clusters in the same fit, by the minimum of the input-space
//! coding length (src/cluster/select_k.rs): the true k of unions of k ∈ {3, 6, 10, 20} random subspaces
//! (80 points each), from 3 seeds each, with every other setting at its default. The acceptance test of
//! issue 13's automatic k; about 2.5 minutes on 2 cores in release.

use rateclust::cluster::clusterer::Clusterer;
use rateclust::cluster::params::FitParams;
use rateclust::cluster::synthetic::{union_of_subspaces, SubspaceSpec};
use rateclust::progress::NoProgress;
use rateclust::Device;

#[test]
fn auto_k_finds_the_number_of_subspaces() {
    let mut wrong = Vec::new();
    for k in [3usize, 6, 10, 20] {
        for seed in [1u64, 2, 3] {
            let spec = SubspaceSpec { n: 80 * k, dim: 64, k, rank: 3, noise: 0.02, seed: 100 + seed };
            let (x, _) = union_of_subspaces(&spec).unwrap();
            let p = FitParams { k: 0, k_max: (k + 5).min(25), seed, ..FitParams::default() };
            let clusterer = Clusterer::fit(&x, spec.n, spec.dim, &p, &Device::Cpu, &mut NoProgress).unwrap();
            let curve = clusterer.k_curve.as_ref().expect("k = 0 records the curve");
            eprintln!("k {k} seed {seed}: chose {} — {:?}", curve.best_k, curve.coding_length.iter().map(|v| v.round()).collect::<Vec<_>>());
            assert_eq!(clusterer.k(), curve.best_k);
            if curve.best_k != k {
                wrong.push((k, seed, curve.best_k));
            }
        }
    }
    assert!(wrong.is_empty(), "wrong k (true, seed, chosen): {wrong:?}");
}
