//! The head's CUDA backend against its CPU backend ([`Host`], f32), each check written once and run twice:
//! on the kernel emulator in CI (products computed exactly, so tight tolerances check the orchestration:
//! every product's operands, the kernels' arguments and grids, chunking), and on a GPU where there is one
//! (TF32 products; this checks the kernels themselves). scripts/gpu_check.sh runs the `on_gpu` module.

use super::super::train::{run, Batches, Trainer};
use super::forward_backward as fwd_bwd;
use super::super::{Head, HeadDims, HeadOf, Host, B1, BETA, GAMMA, N_PARAMS, PARAM_NAMES};
use super::EVAL_CHUNK;
use crate::cluster::params::FitParams;
use crate::cluster::synthetic::{union_of_subspaces, SubspaceSpec};
use crate::device::cuda::emu::Emu;
use crate::device::cuda::Gpu;
use crate::progress::NoProgress;
use crate::rng::Rng;
use crate::testing::cuda_or_skip;

/// Tolerances in relative Frobenius norm (‖device − cpu‖ / ‖cpu‖; element-wise relative error is
/// meaningless near zero).
struct Tol {
    fwd: f64,
    grad: f64,
    /// Loss per step (relative).
    loss: f64,
    /// Parameter change over a few steps.
    change: f64,
    /// Parameter change over the whole training loop (`None`: compare its losses only; TF32 rounding
    /// compounds over 20 steps).
    loop_change: Option<f64>,
}

/// The emulator sums products exactly (f64), so the device path agrees with the CPU's f32 to rounding.
const EMULATOR: Tol = Tol { fwd: 1e-4, grad: 1e-4, loss: 1e-3, change: 1e-3, loop_change: Some(1e-3) };
/// TF32 products (10-bit mantissa, f32 accumulation, ~5e-4 relative rounding per input).
const GPU: Tol = Tol { fwd: 1e-2, grad: 3e-2, loss: 1e-2, change: 3e-2, loop_change: None };

fn rel_norm(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num: f64 = a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum();
    (num / norm(b).powi(2).max(1e-30)).sqrt()
}

fn norm(v: &[f32]) -> f64 {
    v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt()
}

/// Compares `a` with `b`; for the first bias, on the scale of `beta_scale` instead: it feeds
/// training-mode BatchNorm, which removes it, so its exact gradient is 0 and both sides hold rounding noise.
fn check_param(what: &str, i: usize, a: &[f32], b: &[f32], beta_scale: f64, tol: f64) {
    if i == B1 {
        let diff: Vec<f32> = a.iter().zip(b).map(|(x, y)| x - y).collect();
        assert!(norm(&diff) < tol * beta_scale, "{what} ∂{}: |diff| {} vs |∂β| {beta_scale}", PARAM_NAMES[i], norm(&diff));
    } else {
        let e = rel_norm(a, b);
        println!("{what}: {} rel {e:.2e}", PARAM_NAMES[i]);
        assert!(e < tol, "{what}: {} rel {e:.2e}", PARAM_NAMES[i]);
    }
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

/// Evaluation forward of n rows in chunks of `chunk` (the last partial), with and without C; the copy
/// to the device and back is exact.
fn eval_forward(g: &dyn Gpu, tol: &Tol, dims: HeadDims, n: usize, chunk: usize) {
    let h = head(dims, 3);
    let x = normal(&mut Rng::new(4), n * dims.input);
    let dh = HeadOf::upload(g, &h).unwrap();
    let (z, c) = dh.forward_eval_in_chunks(g, &x, n, true, chunk).unwrap();
    let (zc, cc) = h.forward_eval(&Host::new(), &x, n, true).unwrap();
    let (ez, ec) = (rel_norm(&z, &zc), rel_norm(&c, &cc));
    println!("eval forward n = {n}: Z rel {ez:.2e}, C rel {ec:.2e}");
    assert!(ez < tol.fwd && ec < tol.fwd);
    let (z1, c1) = dh.forward_eval_in_chunks(g, &x, n, false, chunk).unwrap();
    assert!(c1.is_empty() && rel_norm(&z1, &zc) < tol.fwd);
    let back = dh.download(g).unwrap();
    for (name, (a, b)) in PARAM_NAMES.iter().zip(back.p.iter().zip(&h.p)) {
        assert_eq!(a, b, "{name} changed on the round trip");
    }
}

/// One training-mode forward and backward with given ∂Z (and ∂C): outputs, every gradient (present in
/// the same places) and the running statistics.
fn forward_backward(g: &dyn Gpu, tol: &Tol, dims: HeadDims, m: usize) {
    for with_c in [true, false] {
        let mut cpu = head(dims, 5);
        let mut rng = Rng::new(6);
        let x = normal(&mut rng, m * dims.input);
        let gz = normal(&mut rng, m * dims.zdim);
        let gc = normal(&mut rng, m * dims.zdim);
        let gc = with_c.then_some(&gc[..]);
        let mut dh = HeadOf::upload(g, &cpu).unwrap();
        let (z, c, grads) = fwd_bwd(g, &mut dh, &x, m, &gz, gc).unwrap();
        let (zc, cc, want) = fwd_bwd(&Host::new(), &mut cpu, &x, m, &gz, gc).unwrap();
        let what = format!("m {m} {dims:?} with_c {with_c}");
        assert!(rel_norm(&z, &zc) < tol.fwd && rel_norm(&c, &cc) < tol.fwd, "{what}: train-mode Z/C");
        let beta_scale = norm(want[BETA].as_ref().unwrap());
        for i in 0..N_PARAMS {
            match (&grads[i], &want[i]) {
                (Some(a), Some(b)) => check_param(&what, i, a, b, beta_scale, tol.grad),
                (None, None) => {}
                _ => panic!("{what}: ∂{} present on one side only", PARAM_NAMES[i]),
            }
        }
        let back = dh.download(g).unwrap();
        assert!(rel_norm(&back.running_mean, &cpu.running_mean) < tol.fwd && rel_norm(&back.running_var, &cpu.running_var) < tol.fwd, "{what}: running statistics");
    }
}

/// `steps` whole training steps through the warm-up (step 0), the head copy and the MLC phase, two-head
/// and single-head: losses and what the steps changed in each parameter (the parameters themselves would
/// hide a wrong update) against `Trainer::step` on the CPU.
fn training_steps(g: &dyn Gpu, tol: &Tol, dims: HeadDims, m: usize, steps: usize) {
    for single_head in [false, true] {
        // A large learning rate so that the parameters move well beyond f32 rounding.
        let params = FitParams { warmup: 0, single_head, hidden: dims.hidden, zdim: dims.zdim, batch: m, lr: 0.05, lr_cluster: 0.05, ..FitParams::default() };
        let start = head(dims, 8);
        let mut cpu = start.clone();
        let mut dh = HeadOf::upload(g, &start).unwrap();
        let (mut on_cpu, mut on_device) = (Trainer::<Host<f32>>::new(&params), Trainer::<dyn Gpu>::new(&params));
        let mut rng = Rng::new(9);
        for step in 0..steps {
            let x = normal(&mut rng, m * dims.input);
            let lg = on_device.step(g, &mut dh, &g.upload_f32(&x, "batch").unwrap(), m, step).unwrap();
            let lc = on_cpu.step(&Host::new(), &mut cpu, &x, m, step).unwrap();
            assert!((lg - lc).abs() < tol.loss * (1.0 + lc.abs()), "single_head {single_head} step {step}: loss {lg} vs CPU {lc}");
        }
        let back = dh.download(g).unwrap();
        let delta = |h: &Head<f32>, i: usize| h.p[i].iter().zip(&start.p[i]).map(|(a, b)| a - b).collect::<Vec<f32>>();
        let beta_scale = norm(&delta(&cpu, BETA));
        for i in 0..N_PARAMS {
            check_param(&format!("single_head {single_head}: change of"), i, &delta(&back, i), &delta(&cpu, i), beta_scale, tol.change);
        }
    }
}

/// The training loop (features on the device once, batches gathered there) against the CPU's with the
/// same batches of a union of subspaces, through the warm-up and the head copy.
fn train_loop(g: &dyn Gpu, tol: &Tol, dims: HeadDims, n: usize, m: usize, steps: usize) {
    let params = FitParams { warmup: steps / 4, hidden: dims.hidden, zdim: dims.zdim, batch: m, lr: 0.01, lr_cluster: 0.01, ..FitParams::default() };
    let spec = SubspaceSpec { n, dim: dims.input, k: 4, rank: 3, noise: 0.02, seed: 7 };
    let (x, _) = union_of_subspaces(&spec).unwrap();
    let mut rng = Rng::new(11);
    let mut order: Vec<usize> = (0..n).collect();
    let batches: Vec<Vec<usize>> = (0..steps)
        .map(|_| {
            rng.shuffle(&mut order);
            order[..m].to_vec()
        })
        .collect();
    let replay = || Batches { total: batches.len(), iter: Box::new(batches.iter().cloned()) };
    let start = head(dims, 12);
    let mut cpu = start.clone();
    let lc = run(&Host::new(), &mut cpu, &x, n, &params, replay(), &mut NoProgress).unwrap();
    let mut dh = HeadOf::upload(g, &start).unwrap();
    let lg = run(g, &mut dh, &x, n, &params, replay(), &mut NoProgress).unwrap();
    assert_eq!(lg.len(), steps);
    for (s, (a, b)) in lg.iter().zip(&lc).enumerate() {
        println!("step {s:2}: device {a:.6} CPU {b:.6}");
        assert!((a - b).abs() < tol.loss * (1.0 + b.abs()), "step {s}: loss {a} vs CPU {b}");
    }
    let Some(change) = tol.loop_change else { return };
    let back = dh.download(g).unwrap();
    let delta = |h: &Head<f32>, i: usize| h.p[i].iter().zip(&start.p[i]).map(|(a, b)| a - b).collect::<Vec<f32>>();
    let beta_scale = norm(&delta(&cpu, BETA));
    for i in 0..N_PARAMS {
        check_param("train: change of", i, &delta(&back, i), &delta(&cpu, i), beta_scale, change);
    }
}

mod on_emulator {
    use super::*;

    fn run(check: impl FnOnce(&dyn Gpu, &Tol)) {
        let emu = Emu::new(&[crate::rate::cuda::emu::launch, super::super::emu::launch]);
        check(&emu, &EMULATOR);
        emu.check_guards();
    }

    // hidden 45 / 40 / 33: column kernels with a partial second 32-column block; d < 32 threads of a row block.
    #[test]
    fn eval_forward() {
        // 23 rows in chunks of 10: two full chunks and a partial one.
        run(|g, tol| super::eval_forward(g, tol, HeadDims { input: 7, hidden: 45, zdim: 5 }, 23, 10));
    }

    #[test]
    fn forward_backward() {
        run(|g, tol| super::forward_backward(g, tol, HeadDims { input: 7, hidden: 45, zdim: 5 }, 9));
    }

    #[test]
    fn training_steps() {
        run(|g, tol| super::training_steps(g, tol, HeadDims { input: 6, hidden: 40, zdim: 4 }, 12, 4));
    }

    #[test]
    fn train_loop() {
        run(|g, tol| super::train_loop(g, tol, HeadDims { input: 5, hidden: 33, zdim: 4 }, 40, 10, 6));
    }
}

mod on_gpu {
    use super::*;

    /// Runs `check` on a GPU, or records the test as skipped when there is none.
    fn run(check: impl FnOnce(&dyn Gpu, &Tol)) {
        if let Some((_, dev)) = cuda_or_skip() {
            check(&*dev, &GPU);
        }
    }

    #[test]
    fn eval_forward() {
        // More rows than one chunk, the last chunk partial.
        run(|g, tol| super::eval_forward(g, tol, HeadDims { input: 48, hidden: 96, zdim: 16 }, EVAL_CHUNK + 1234, EVAL_CHUNK));
    }

    #[test]
    fn forward_backward() {
        run(|g, tol| {
            // hidden 200: a partial 32-column block in the column kernels; d 24 < 32 threads of a row block.
            super::forward_backward(g, tol, HeadDims { input: 64, hidden: 200, zdim: 24 }, 300);
            // The benchmark's shape.
            super::forward_backward(g, tol, HeadDims { input: 768, hidden: 4096, zdim: 128 }, 1024);
        });
    }

    #[test]
    fn training_steps() {
        run(|g, tol| super::training_steps(g, tol, HeadDims { input: 64, hidden: 256, zdim: 32 }, 256, 3));
    }

    #[test]
    fn train_loop() {
        run(|g, tol| super::train_loop(g, tol, HeadDims { input: 48, hidden: 256, zdim: 32 }, 2000, 200, 20));
    }
}
