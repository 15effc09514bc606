//! The CUDA CPP head (`cluster::head::cuda`) against the CPU head (`cluster::head`, f32): evaluation and
//! training-mode forward, one full backward's gradients, one training step's parameter update, a 20-step
//! loss trajectory through the warm-up, the head copy and the MLC phase, `train`, the labels of
//! `Clusterer::assign_on` on CUDA vs `assign_with` on the CPU, and a whole `Clusterer::fit` on CUDA.
//!
//! Tolerances are sized for TF32 products (10-bit mantissa, f32 accumulation, ~5e-4 relative rounding per
//! input): forward outputs 1e-2 and gradients / updates 3e-2 in relative Frobenius norm
//! (‖cuda − cpu‖ / ‖cpu‖; element-wise relative error is meaningless near zero), losses 1e-2 relative per
//! step, assignment labels ≥ 98 % identical. The orchestration itself (every GEMM's operands and offsets,
//! kernel arguments, chunking) is checked exactly in CI on the kernel emulator
//! (`src/cluster/head/cuda/emu.rs`); this file checks the CUDA code (kernels, barriers, cuBLAS) on a GPU.
//!
//! Needs a GPU: on a machine without one every test prints `SKIP: no CUDA device (<reason>)` and returns.

mod common;

use common::cuda_or_skip;
use rateclust::cluster::head::{Head, HeadDims, B1, BETA, GAMMA, N_PARAMS, PARAM_NAMES};
use rateclust::cluster::head::cuda::{CudaHead, StepConfig, EVAL_CHUNK};
use rateclust::cluster::clusterer::Clusterer;
use rateclust::cluster::params::{AssignRule, FitParams};
use rateclust::cluster::synthetic::{union_of_subspaces, SubspaceSpec};
use rateclust::cluster::head::train::{train, BatchOrder, Trainer};
use rateclust::device::cuda::CudaDevice;
use rateclust::device::Device;
use rateclust::progress::NoProgress;
use rateclust::rng::Rng;
use std::sync::Arc;

const TOL_FWD: f64 = 1e-2;
const TOL_GRAD: f64 = 3e-2;
const TOL_LOSS: f64 = 1e-2;

fn rel_norm(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num: f64 = a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|&y| (y as f64).powi(2)).sum();
    (num / den.max(1e-30)).sqrt()
}

fn norm(v: &[f32]) -> f64 {
    v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt()
}

/// A head with non-trivial BatchNorm parameters and running statistics.
fn head(dims: HeadDims, seed: u64) -> Head<f32> {
    let mut h = Head::<f32>::new(dims, seed).unwrap();
    let mut rng = Rng::new(seed + 1);
    h.p[GAMMA].iter_mut().for_each(|g| *g = 0.5 + rng.uniform() as f32);
    h.p[BETA].iter_mut().for_each(|b| *b = 0.3 * rng.normal() as f32);
    h.running_mean.iter_mut().for_each(|v| *v = 0.1 * rng.normal() as f32);
    h.running_var.iter_mut().for_each(|v| *v = 0.5 + rng.uniform() as f32);
    h
}

fn normal(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.normal() as f32).collect()
}

/// Gradients of both sides, `None` in the same places; ∂b1 (exactly 0 through training-mode BatchNorm,
/// rounding noise on both sides) on the scale of ∂β.
fn check_grads(what: &str, gpu: &[Option<Vec<f32>>], cpu: &[Option<Vec<f32>>]) {
    for i in 0..N_PARAMS {
        match (&gpu[i], &cpu[i]) {
            (Some(a), Some(b)) if i == B1 => {
                let diff: Vec<f32> = a.iter().zip(b).map(|(x, y)| x - y).collect();
                let scale = norm(cpu[BETA].as_ref().unwrap());
                assert!(norm(&diff) < TOL_GRAD * scale, "{what}: ∂{} differs by {} (|∂β| = {scale})", PARAM_NAMES[i], norm(&diff));
            }
            (Some(a), Some(b)) => {
                let e = rel_norm(a, b);
                println!("{what}: ∂{} rel {e:.2e}", PARAM_NAMES[i]);
                assert!(e < TOL_GRAD, "{what}: ∂{} rel {e:.2e}", PARAM_NAMES[i]);
            }
            (None, None) => {}
            _ => panic!("{what}: ∂{} present on one side only", PARAM_NAMES[i]),
        }
    }
}

#[test]
fn eval_forward_matches_cpu_across_chunks() {
    let Some((_, dev)) = cuda_or_skip() else { return };
    let dims = HeadDims { input: 48, hidden: 96, zdim: 16 };
    let h = head(dims, 1);
    // More rows than one chunk, the last chunk partial.
    let n = EVAL_CHUNK + 1234;
    let x = normal(&mut Rng::new(2), n * dims.input);
    let ch = CudaHead::from_head(&dev, &h).unwrap();
    let (z, c) = ch.forward_eval(&x, n, true).unwrap();
    let (zc, cc) = h.forward_eval(&x, n, true).unwrap();
    let (ez, ec) = (rel_norm(&z, &zc), rel_norm(&c, &cc));
    println!("eval forward n = {n}: Z rel {ez:.2e}, C rel {ec:.2e}");
    assert!(ez < TOL_FWD && ec < TOL_FWD);
    let (z1, c1) = ch.forward_eval(&x[..100 * dims.input], 100, false).unwrap();
    assert!(c1.is_empty() && rel_norm(&z1, &zc[..100 * dims.zdim]) < TOL_FWD);
    // The copy back is exact.
    let back = ch.to_head().unwrap();
    for i in 0..N_PARAMS {
        assert_eq!(back.p[i], h.p[i], "{} changed on the round trip", PARAM_NAMES[i]);
    }
}

fn forward_backward_case(dev: &Arc<CudaDevice>, dims: HeadDims, m: usize, with_c: bool) {
    let mut h = head(dims, 3);
    let mut rng = Rng::new(4);
    let x = normal(&mut rng, m * dims.input);
    let gz = normal(&mut rng, m * dims.zdim);
    let gc = normal(&mut rng, m * dims.zdim);
    let mut ch = CudaHead::from_head(dev, &h).unwrap();
    let (z, c, grads) = ch.forward_backward(&x, m, &gz, with_c.then_some(&gc[..])).unwrap();
    let cache = h.forward_train(&x, m).unwrap();
    let what = format!("m {m} {dims:?} with_c {with_c}");
    let (ez, ec) = (rel_norm(&z, &cache.z), rel_norm(&c, &cache.c));
    println!("{what}: train-mode Z rel {ez:.2e}, C rel {ec:.2e}");
    assert!(ez < TOL_FWD && ec < TOL_FWD, "{what}: train-mode forward");
    let cpu = h.backward(&x, cache, &gz, with_c.then_some(&gc[..])).unwrap();
    check_grads(&what, &grads, &cpu);
    let back = ch.to_head().unwrap();
    assert!(rel_norm(&back.running_mean, &h.running_mean) < TOL_FWD, "{what}: running mean");
    assert!(rel_norm(&back.running_var, &h.running_var) < TOL_FWD, "{what}: running var");
}

#[test]
fn train_forward_and_gradients_match_cpu() {
    let Some((_, dev)) = cuda_or_skip() else { return };
    // hidden 200: a partial 32-column block in the column kernels; d 24 < 32 threads of a row block.
    forward_backward_case(&dev, HeadDims { input: 64, hidden: 200, zdim: 24 }, 300, true);
    forward_backward_case(&dev, HeadDims { input: 64, hidden: 200, zdim: 24 }, 300, false);
    // The benchmark shape.
    forward_backward_case(&dev, HeadDims { input: 768, hidden: 4096, zdim: 128 }, 1024, true);
}

/// One full step (loss, backward, SGD) past the warm-up: the parameter change against `Trainer::step`.
#[test]
fn one_training_step_updates_like_cpu() {
    let Some((_, dev)) = cuda_or_skip() else { return };
    let dims = HeadDims { input: 64, hidden: 256, zdim: 32 };
    let m = 256;
    for single_head in [false, true] {
        let params = FitParams { warmup: 1, single_head, hidden: dims.hidden, zdim: dims.zdim, batch: m, lr: 0.05, lr_cluster: 0.05, ..FitParams::default() };
        let start = head(dims, 5);
        let x = normal(&mut Rng::new(6), m * dims.input);
        let mut ch = CudaHead::from_head(&dev, &start).unwrap();
        let xb = ch.upload_batch(&x).unwrap();
        let cfg = StepConfig::new(&params);
        // Step 0 is the warm-up (TCR) and ends with the head copy; step 1 is an MLC step.
        let mut cpu = start.clone();
        // The reference computes its loss on the CPU too.
        let mut trainer = Trainer::<f32>::new(&params, &Device::Cpu);
        for step in 0..2 {
            let lg = ch.step(&cfg, &xb, m, step).unwrap();
            let lc = trainer.step(&mut cpu, &x, m, step).unwrap();
            println!("single_head {single_head} step {step}: loss {lg} vs CPU {lc}");
            assert!((lg - lc).abs() < TOL_LOSS * (1.0 + lc.abs()), "single_head {single_head} step {step}: loss {lg} vs {lc}");
        }
        let back = ch.to_head().unwrap();
        for i in 0..N_PARAMS {
            if i == B1 {
                continue; // its gradient is rounding noise (see check_grads); weight decay dominates its change
            }
            let da: Vec<f32> = back.p[i].iter().zip(&start.p[i]).map(|(a, b)| a - b).collect();
            let db: Vec<f32> = cpu.p[i].iter().zip(&start.p[i]).map(|(a, b)| a - b).collect();
            let e = rel_norm(&da, &db);
            println!("single_head {single_head}: change of {} rel {e:.2e}", PARAM_NAMES[i]);
            assert!(e < TOL_GRAD, "single_head {single_head}: change of {} rel {e:.2e}", PARAM_NAMES[i]);
        }
    }
}

/// 20 steps of `train` (features on the device, batches gathered there) against the CPU with the same
/// batches: warm-up to step 5, head copy, then MLC.
#[test]
fn twenty_step_loss_trajectory_follows_cpu() {
    let Some((device, _)) = cuda_or_skip() else { return };
    let dims = HeadDims { input: 48, hidden: 256, zdim: 32 };
    let (n, m) = (2000, 200);
    let params = FitParams { warmup: 5, hidden: dims.hidden, zdim: dims.zdim, batch: m, lr: 0.01, lr_cluster: 0.01, ..FitParams::default() };
    let spec = SubspaceSpec { n, dim: dims.input, k: 4, rank: 3, noise: 0.02, seed: 7 };
    let (x, _) = union_of_subspaces(&spec).unwrap();
    let mut rng = Rng::new(8);
    let mut order: Vec<usize> = (0..n).collect();
    let batches: Vec<Vec<usize>> = (0..20)
        .map(|_| {
            rng.shuffle(&mut order);
            order[..m].to_vec()
        })
        .collect();
    let start = Head::<f32>::new(dims, 9).unwrap();
    let mut cpu = start.clone();
    let lc = train(&mut cpu, &x, n, &params, &Device::Cpu, BatchOrder::Explicit(&batches), &mut NoProgress).unwrap().losses;
    let mut gpu = start.clone();
    let lg = train(&mut gpu, &x, n, &params, &device, BatchOrder::Explicit(&batches), &mut NoProgress).unwrap().losses;
    assert_eq!(lg.len(), 20);
    for (s, (a, b)) in lg.iter().zip(&lc).enumerate() {
        println!("step {s:2}: CUDA {a:.6} CPU {b:.6}");
        assert!((a - b).abs() < TOL_LOSS * (1.0 + b.abs()), "step {s}: loss {a} vs CPU {b}");
    }
}

/// A model fitted on the CPU labels the same points (nearly) identically with the head on the GPU.
#[test]
fn assign_on_cuda_agrees_with_cpu() {
    let Some((device, _)) = cuda_or_skip() else { return };
    let spec = SubspaceSpec { n: 1200, dim: 48, k: 4, rank: 3, noise: 0.02, seed: 1 };
    let (x, _) = union_of_subspaces(&spec).unwrap();
    let params = FitParams { k: 4, hidden: 128, zdim: 32, batch: 200, steps: 24, warmup: 10, lr: 0.001, lr_cluster: 0.001, spectral_sample: 600, ..FitParams::default() };
    let model = Clusterer::fit(&x, spec.n, spec.dim, &params, &Device::Cpu, &mut NoProgress).unwrap();
    // Tile the points past one GPU chunk, so the pipelined path runs more than one chunk.
    let reps = EVAL_CHUNK / spec.n + 2;
    let xs: Vec<f32> = (0..reps).flat_map(|_| x.iter().copied()).collect();
    let n = reps * spec.n;
    for rule in [AssignRule::Subspace, AssignRule::PrototypeZ, AssignRule::PrototypeC] {
        let a = model.assign_with(rule, &xs, n, &mut NoProgress).unwrap();
        let b = model.assign_on(&device, rule, &xs, n, &mut NoProgress).unwrap();
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
    let model = Clusterer::fit(&x, spec.n, spec.dim, &params, &device, &mut NoProgress).unwrap();
    assert_eq!(model.losses.len(), 8 * (spec.n / 200));
    assert!(model.losses.iter().all(|l| l.is_finite()));
    let a = model.assign_on(&device, AssignRule::Subspace, &x, spec.n, &mut NoProgress).unwrap();
    let acc = rateclust::cluster::algorithms::metrics::accuracy(&a.labels, &y).unwrap();
    println!("fit on CUDA: accuracy {acc:.4}");
    assert!(acc >= 0.99, "accuracy {acc}");
}
