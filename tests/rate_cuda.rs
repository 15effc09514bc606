//! The CUDA rate-reduction path against the CPU reference (`rate::mlc_loss` on `Device::Cpu`, f64):
//! loss parts within 1e-3 relative, gradients within 1e-3 in relative Frobenius norm
//! (‖g_cuda − g_cpu‖ / ‖g_cpu‖; element-wise relative error is meaningless for entries near zero),
//! Sinkhorn Π within 1e-3 relative norm, and the batched log-det / inverse.
//!
//! Shapes cover both Cholesky paths: d ≤ 128 (one shared-memory kernel per matrix) and d > 128 (blocked,
//! including a partial last tile: d = 200), and m up to 4096. Needs a GPU: on a machine without one every
//! test prints `SKIP: no CUDA device (<reason>)` and returns — the only skip the project allows.

mod common;

use common::cuda_or_skip;
use rateclust::device::Device;
use rateclust::rate::{membership, mlc_loss, MlcOutput, Objective, RateParams, SinkhornGradient};
use rateclust::rng::Rng;

const TOL: f64 = 1e-3;

/// m×d with unit rows; `rank` < d draws rows from a union of a few subspaces (as trained features are),
/// which gives Π and the Gram matrices realistic structure.
fn features(rng: &mut Rng, m: usize, d: usize, rank: usize) -> Vec<f64> {
    let groups = 8;
    let bases: Vec<Vec<f64>> = (0..groups).map(|_| (0..rank * d).map(|_| rng.normal()).collect()).collect();
    let mut x = vec![0.0; m * d];
    for (i, row) in x.chunks_mut(d).enumerate() {
        let b = &bases[i % groups];
        for r in 0..rank {
            let w = rng.normal();
            for (a, v) in row.iter_mut().enumerate() {
                *v += w * b[r * d + a];
            }
        }
        for v in row.iter_mut() {
            *v += 0.05 * rng.normal();
        }
        let n = row.iter().map(|v| v * v).sum::<f64>().sqrt();
        row.iter_mut().for_each(|v| *v /= n);
    }
    x
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-12)
}

fn rel_norm(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num: f64 = a.iter().zip(b).map(|(&x, &y)| (x as f64 - y).powi(2)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den.max(1e-300)).sqrt()
}

fn to_f32(x: &[f64]) -> Vec<f32> {
    x.iter().map(|&v| v as f32).collect()
}

fn compare(label: &str, gpu: &MlcOutput<f32>, cpu: &MlcOutput<f64>, objective: Objective) {
    let parts = [("loss", gpu.loss, cpu.loss), ("R", gpu.rate, cpu.rate), ("R_c", gpu.rate_c, cpu.rate_c), ("penalty", gpu.pi_penalty, cpu.pi_penalty)];
    let mut worst = 0.0f64;
    for (name, g, c) in parts {
        if objective == Objective::Tcr && name != "loss" && name != "R" {
            assert_eq!(g, 0.0, "{label}: {name} must be 0 for TCR");
            continue;
        }
        let e = rel(g as f64, c);
        worst = worst.max(e);
        assert!(e <= TOL, "{label}: {name} CUDA {g} vs CPU {c} (relative error {e:.2e})");
    }
    let ez = rel_norm(&gpu.grad_z, &cpu.grad_z);
    assert!(ez <= TOL, "{label}: ∂loss/∂Z relative error {ez:.2e}");
    let ec = if objective == Objective::Mlc {
        let ec = rel_norm(&gpu.grad_c, &cpu.grad_c);
        assert!(ec <= TOL, "{label}: ∂loss/∂C relative error {ec:.2e}");
        ec
    } else {
        assert!(gpu.grad_c.is_empty(), "{label}: TCR gives no ∂/∂C");
        0.0
    };
    println!("{label}: loss {:.6} (CPU {:.6}); worst value rel err {worst:.1e}, ∂Z {ez:.1e}, ∂C {ec:.1e}", gpu.loss, cpu.loss);
}

fn check_shape(dev: &Device, m: usize, d: usize, seed: u64, objective: Objective) {
    check_params(dev, m, d, seed, objective, RateParams::default());
}

fn check_params(dev: &Device, m: usize, d: usize, seed: u64, objective: Objective, params: RateParams) {
    let mut rng = Rng::new(seed);
    let z = features(&mut rng, m, d, 6);
    let c = features(&mut rng, m, d, 6);
    let cpu = mlc_loss(&Device::Cpu, &z, &c, m, d, &params, objective).expect("CPU reference");
    let gpu = mlc_loss(dev, &to_f32(&z), &to_f32(&c), m, d, &params, objective).expect("CUDA path");
    compare(&format!("{objective:?} m={m} d={d} {:?} T={}", params.gradient, params.sinkhorn_half_iters), &gpu, &cpu, objective);
}

#[test]
fn mlc_d128_matches_cpu() {
    let Some((dev, _)) = cuda_or_skip() else { return };
    check_shape(&dev, 1024, 128, 1, Objective::Mlc);
    check_shape(&dev, 1024, 128, 2, Objective::Tcr);
    check_shape(&dev, 37, 5, 3, Objective::Mlc);
}

#[test]
fn exact_sinkhorn_gradient_matches_cpu() {
    let Some((dev, _)) = cuda_or_skip() else { return };
    for iters in [5, 4] {
        let p = RateParams { gradient: SinkhornGradient::Exact, sinkhorn_half_iters: iters, ..Default::default() };
        check_params(&dev, 512, 128, 8, Objective::Mlc, p);
    }
    // Reference gradient with an even number of half-steps (final v differs from the last row step's v).
    check_params(&dev, 512, 64, 9, Objective::Mlc, RateParams { sinkhorn_half_iters: 4, ..Default::default() });
}

#[test]
fn mlc_large_batch_matches_cpu() {
    let Some((dev, _)) = cuda_or_skip() else { return };
    check_shape(&dev, 4096, 128, 4, Objective::Mlc);
}

#[test]
fn mlc_blocked_cholesky_matches_cpu() {
    let Some((dev, _)) = cuda_or_skip() else { return };
    // d > 128: blocked Cholesky; 200 = 3 full tiles of 64 + a partial tile of 8.
    check_shape(&dev, 300, 200, 5, Objective::Mlc);
    check_shape(&dev, 256, 1024, 6, Objective::Mlc);
    check_shape(&dev, 512, 1024, 7, Objective::Tcr);
}

#[test]
fn sinkhorn_membership_matches_cpu() {
    let Some((dev, _)) = cuda_or_skip() else { return };
    for (m, d, iters) in [(4096, 128, 5), (1000, 64, 4), (33, 7, 1)] {
        let mut rng = Rng::new(m as u64);
        let c = features(&mut rng, m, d, 6);
        let params = RateParams { sinkhorn_half_iters: iters, ..Default::default() };
        let cpu = membership(&Device::Cpu, &c, m, d, &params).expect("CPU Π");
        let gpu = membership(&dev, &to_f32(&c), m, d, &params).expect("CUDA Π");
        let e = rel_norm(&gpu, &cpu);
        println!("Sinkhorn m={m} d={d} half-steps={iters}: Π relative error {e:.1e}");
        assert!(e <= TOL, "Sinkhorn m={m}: Π relative error {e:.2e}");
        if iters % 2 == 1 {
            for (i, row) in gpu.chunks(m).enumerate().step_by(97) {
                let s: f64 = row.iter().map(|&x| x as f64).sum();
                assert!((s - 1.0).abs() < 1e-3, "row {i} of Π sums to {s}");
            }
        }
    }
}

#[test]
fn batched_logdet_and_inverse_match_cpu() {
    use rateclust::rate::cuda::SpdSolver;
    let Some((_, cuda)) = cuda_or_skip() else { return };
    for (batch, n) in [(64, 128), (8, 300), (3, 1)] {
        let mut rng = Rng::new(n as u64);
        // A = I + Xᵀ X / n: SPD with a moderate condition number.
        let mut a = vec![0.0f64; batch * n * n];
        for mat in a.chunks_mut(n * n) {
            let x: Vec<f64> = (0..n * n).map(|_| rng.normal()).collect();
            for i in 0..n {
                for j in 0..n {
                    let s: f64 = (0..n).map(|k| x[k * n + i] * x[k * n + j]).sum();
                    mat[i * n + j] = s / n as f64 + if i == j { 1.0 } else { 0.0 };
                }
            }
        }
        let mut cpu = a.clone();
        let ld_cpu = rateclust::linalg::cholesky::logdet_inverse_batch(&mut cpu, n, batch).expect("CPU");
        let buf = cuda.upload(&to_f32(&a), "A").unwrap();
        let solver = SpdSolver::new(&cuda, batch, n, true).unwrap();
        solver.factor(&cuda, &buf).unwrap();
        let ld = solver.logdet(&cuda).unwrap();
        let inv = solver.inverses(&cuda).unwrap();
        for (g, c) in ld.iter().zip(&ld_cpu) {
            assert!(rel(*g as f64, *c) <= TOL, "n={n}: logdet {g} vs {c}");
        }
        let e = rel_norm(&inv, &cpu);
        println!("SPD batch {batch}×{n}: logdet ok, inverse relative error {e:.1e}");
        assert!(e <= TOL, "n={n}: inverse relative error {e:.2e}");
    }
    // A matrix that is not positive definite is an error, not garbage.
    let bad = cuda.upload(&[1.0f32, 2.0, 2.0, 1.0], "A").unwrap();
    let solver = SpdSolver::new(&cuda, 1, 2, false).unwrap();
    solver.factor(&cuda, &bad).unwrap();
    let err = solver.logdet(&cuda).unwrap_err();
    assert_eq!(err.status(), rateclust::Status::Numerical, "{err}");
}

#[test]
fn cuda_rejects_bad_input_cleanly() {
    let Some((dev, _)) = cuda_or_skip() else { return };
    let p = RateParams::default();
    let z = vec![0.1f32; 8];
    assert!(mlc_loss(&dev, &z, &z, 4, 3, &p, Objective::Mlc).is_err(), "size mismatch");
    let mut nan = z.clone();
    nan[3] = f32::NAN;
    assert!(mlc_loss(&dev, &nan, &z, 4, 2, &p, Objective::Mlc).is_err(), "NaN");
}
