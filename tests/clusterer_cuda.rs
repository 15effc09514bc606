//! The `Clusterer` with its head on CUDA against the CPU: the labels of `Clusterer::assign_on` on CUDA vs
//! `assign_with` on the CPU, and a whole `Clusterer::fit` on CUDA. The head's operations themselves
//! (forward, backward, steps, the training loop) are checked against the CPU's by
//! `src/cluster/head/cuda/tests.rs`, on the kernel emulator in CI and on a GPU.
//!
//! Needs a GPU: on a machine without one every test prints `SKIP: no CUDA device (<reason>)` and returns.

mod common;

use common::cuda_or_skip;
use rateclust::cluster::clusterer::Clusterer;
use rateclust::cluster::head::cuda::EVAL_CHUNK;
use rateclust::cluster::params::{AssignRule, FitParams};
use rateclust::cluster::synthetic::{union_of_subspaces, SubspaceSpec};
use rateclust::device::Device;
use rateclust::progress::NoProgress;

/// A model fitted on the CPU labels the same points (nearly) identically with the head on the GPU.
#[test]
fn assign_on_cuda_agrees_with_cpu() {
    let Some((device, _)) = cuda_or_skip() else { return };
    let spec = SubspaceSpec { n: 1200, dim: 48, k: 4, rank: 3, noise: 0.02, seed: 1 };
    let (x, _) = union_of_subspaces(&spec).unwrap();
    let params = FitParams { k: 4, hidden: 128, zdim: 32, batch: 200, steps: 24, warmup: 10, lr: 0.001, lr_cluster: 0.001, spectral_sample: 600, ..FitParams::default() };
    let clusterer = Clusterer::fit(&x, spec.n, spec.dim, &params, &Device::Cpu, &mut NoProgress).unwrap();
    // Tile the points past one GPU chunk, so the pipelined path runs more than one chunk.
    let reps = EVAL_CHUNK / spec.n + 2;
    let xs: Vec<f32> = (0..reps).flat_map(|_| x.iter().copied()).collect();
    let n = reps * spec.n;
    for rule in [AssignRule::Subspace, AssignRule::PrototypeZ, AssignRule::PrototypeC] {
        let a = clusterer.assign_with(rule, &xs, n, &mut NoProgress).unwrap();
        let b = clusterer.assign_on(&device, rule, &xs, n, &mut NoProgress).unwrap();
        let same = a.labels.iter().zip(&b.labels).filter(|(p, q)| p == q).count() as f64 / n as f64;
        println!("{rule:?}: {:.4} of {n} labels identical", same);
        assert!(same >= 0.98, "{rule:?}: only {same:.4} of the labels agree");
    }
}

/// `Clusterer::fit` on CUDA (training, the spectral sample's forward and Π on the device) recovers a union
/// of subspaces as the CPU fit does (tests/clusterer_fit.rs: accuracy ≥ 0.99).
#[test]
fn fit_on_cuda_recovers_union_of_subspaces() {
    let Some((device, _)) = cuda_or_skip() else { return };
    let spec = SubspaceSpec { n: 1200, dim: 48, k: 4, rank: 3, noise: 0.02, seed: 2 };
    let (x, y) = union_of_subspaces(&spec).unwrap();
    let params = FitParams { k: 4, hidden: 128, zdim: 32, batch: 200, steps: 48, warmup: 10, lr: 0.001, lr_cluster: 0.001, spectral_sample: 600, ..FitParams::default() };
    let clusterer = Clusterer::fit(&x, spec.n, spec.dim, &params, &device, &mut NoProgress).unwrap();
    assert_eq!(clusterer.losses.len(), 8 * (spec.n / 200));
    assert!(clusterer.losses.iter().all(|l| l.is_finite()));
    let a = clusterer.assign_on(&device, AssignRule::Subspace, &x, spec.n, &mut NoProgress).unwrap();
    let acc = rateclust::cluster::algorithms::metrics::accuracy(&a.labels, &y).unwrap();
    println!("fit on CUDA: accuracy {acc:.4}");
    assert!(acc >= 0.99, "accuracy {acc}");
}
