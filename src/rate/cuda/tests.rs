//! The CUDA rate-reduction path against the CPU reference (`rate::mlc_loss` on the CPU, f64), each check
//! written once and run twice: on the kernel emulator in CI (products and kernels restated exactly, so tight
//! tolerances check the orchestration: chunking by memory budget, both Cholesky paths, Sinkhorn's steps and
//! its backward) and on a GPU where there is one (this checks the kernels themselves, at the shapes
//! training uses). scripts/gpu_check.sh runs the `on_gpu` module.
//!
//! Loss parts are compared relative to the CPU's, gradients and Π in relative Frobenius norm
//! (‖g_cuda − g_cpu‖ / ‖g_cpu‖; element-wise relative error is meaningless for entries near zero).

use super::{check_pd, membership, mlc_loss, spd_factor, SpdInput, SpdWork, CHUNK_BUDGET_BYTES};
use crate::device::cuda::Gpu;
use crate::device::Device;
use crate::rate::{Objective, RateParams, SinkhornGradient};
use crate::rng::Rng;

/// m×d with unit rows drawn from a union of `groups` subspaces of rank `rank` (at most d) plus noise (as
/// trained features are), which gives Π and the Gram matrices realistic structure.
fn features(rng: &mut Rng, m: usize, d: usize, groups: usize, rank: usize, noise: f64) -> Vec<f64> {
    let rank = rank.min(d);
    let bases: Vec<Vec<f64>> = (0..groups).map(|_| (0..rank * d).map(|_| rng.normal()).collect()).collect();
    let mut x = vec![0.0; m * d];
    for (i, row) in x.chunks_mut(d).enumerate() {
        for r in 0..rank {
            let w = rng.normal();
            for (a, v) in row.iter_mut().enumerate() {
                *v += w * bases[i % groups][r * d + a];
            }
        }
        row.iter_mut().for_each(|v| *v += noise * rng.normal());
        let n = row.iter().map(|v| v * v).sum::<f64>().sqrt();
        row.iter_mut().for_each(|v| *v /= n);
    }
    x
}

fn rel_norm(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num: f64 = a.iter().zip(b).map(|(&x, &y)| (x as f64 - y).powi(2)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den.max(1e-300)).sqrt()
}

fn f32s(x: &[f64]) -> Vec<f32> {
    x.iter().map(|&v| v as f32).collect()
}

/// Z and C: 8 groups of rank 6, noise 0.05; below 32 points 3 groups of rank 2, noise 0.1, so that each
/// group still has several members.
fn inputs(m: usize, d: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut rng = Rng::new(seed);
    let (groups, rank, noise) = if m < 32 { (3, 2, 0.1) } else { (8, 6, 0.05) };
    (features(&mut rng, m, d, groups, rank, noise), features(&mut rng, m, d, groups, rank, noise))
}

/// The loss (MLC or TCR) with workspaces of `budget` bytes: its parts and both gradients against the CPU.
#[allow(clippy::too_many_arguments)]
fn loss_matches_cpu(g: &dyn Gpu, tol: f64, m: usize, d: usize, seed: u64, params: RateParams, budget: usize, objective: Objective) {
    let (z, c) = inputs(m, d, seed);
    let cpu = crate::rate::mlc_loss(&Device::Cpu, &z, &c, m, d, &params, objective).unwrap();
    let zb = g.upload_f32(&f32s(&z), "Z").unwrap();
    let cb = (objective == Objective::Mlc).then(|| g.upload_f32(&f32s(&c), "C").unwrap());
    let out = mlc_loss(g, &zb, cb.as_ref(), m, d, &params, budget).unwrap().into_host(g).unwrap();
    let label = format!("{objective:?} m={m} d={d} {:?} T={}", params.gradient, params.sinkhorn_half_iters);
    for (name, got, want) in [("loss", out.loss, cpu.loss), ("R", out.rate, cpu.rate), ("R_c", out.rate_c, cpu.rate_c), ("penalty", out.pi_penalty, cpu.pi_penalty)] {
        if objective == Objective::Tcr && name != "loss" && name != "R" {
            assert_eq!(got, 0.0, "{label}: {name} must be 0 for TCR");
            continue;
        }
        let e = (got as f64 - want).abs() / want.abs().max(1e-9);
        assert!(e < tol, "{label}: {name} {got} vs CPU {want} (rel {e:.1e})");
    }
    let ez = rel_norm(&out.grad_z, &cpu.grad_z);
    assert!(ez < tol, "{label}: ∂Z rel {ez:.1e}");
    if objective == Objective::Mlc {
        let ec = rel_norm(&out.grad_c, &cpu.grad_c);
        assert!(ec < tol, "{label}: ∂C rel {ec:.1e}");
    } else {
        assert!(out.grad_c.is_empty(), "{label}: TCR gives no ∂/∂C");
    }
    println!("{label}: loss {:.6} (CPU {:.6}), ∂Z rel {ez:.1e}", out.loss, cpu.loss);
}

/// Π = m · Sinkhorn(|C Cᵀ|) against the CPU; after an odd number of half-steps (a row step last) its rows
/// sum to 1.
fn membership_matches_cpu(g: &dyn Gpu, tol: f64, m: usize, d: usize, iters: usize) {
    let (c, _) = inputs(m, d, m as u64);
    let params = RateParams { sinkhorn_half_iters: iters, ..Default::default() };
    let cpu = crate::rate::membership(&Device::Cpu, &c, m, d, &params).unwrap();
    let pi = membership(g, &f32s(&c), m, d, &params).unwrap();
    let e = rel_norm(&pi, &cpu);
    println!("Sinkhorn m={m} d={d} half-steps={iters}: Π rel {e:.1e}");
    assert!(e < tol, "Sinkhorn m={m} d={d} half-steps={iters}: Π rel {e:.2e}");
    if iters % 2 == 1 {
        for (i, row) in pi.chunks(m).enumerate().step_by(97) {
            let s: f64 = row.iter().map(|&x| x as f64).sum();
            assert!((s - 1.0).abs() < 1e-3, "row {i} of Π sums to {s}");
        }
    }
}

/// Batched log-determinants and inverses of full SPD matrices (A = I + XᵀX/n) against the CPU's; a
/// matrix that is not positive definite is a numerical error, not garbage.
fn spd_matches_cpu(g: &dyn Gpu, tol: f64, batch: usize, n: usize) {
    let mut rng = Rng::new(n as u64);
    let mut a = vec![0.0f64; batch * n * n];
    for mat in a.chunks_mut(n * n) {
        let x: Vec<f64> = (0..n * n).map(|_| rng.normal()).collect();
        for i in 0..n {
            for j in 0..n {
                mat[i * n + j] = (0..n).map(|k| x[k * n + i] * x[k * n + j]).sum::<f64>() / n as f64 + if i == j { 1.0 } else { 0.0 };
            }
        }
    }
    let mut cpu = a.clone();
    let ld_cpu = crate::linalg::cholesky::logdet_inverse_batch(&mut cpu, n, batch).unwrap();
    let buf = g.upload_f32(&f32s(&a), "A").unwrap();
    let work = SpdWork::new(g, n, batch, true).unwrap();
    let logdet = g.alloc_f32(batch, true, "logdet").unwrap();
    let not_pd = g.alloc_i32(batch, "flags").unwrap();
    spd_factor(g, &SpdInput::Full(buf.ptr()), batch, &work, logdet.ptr(), not_pd.ptr(), true).unwrap();
    check_pd(g, &not_pd, "test").unwrap();
    for (x, y) in g.download_f32(&logdet, "logdet").unwrap().iter().zip(&ld_cpu) {
        assert!((*x as f64 - y).abs() / y.abs().max(1e-12) < tol, "n={n}: logdet {x} vs {y}");
    }
    let inv = g.alloc_f32(batch * n * n, false, "inverses").unwrap();
    g.copy_f32(inv.ptr(), work.inverse_ptr(), batch * n * n, "inverses").unwrap();
    let e = rel_norm(&g.download_f32(&inv, "inverses").unwrap(), &cpu);
    println!("SPD batch {batch}×{n}: inverse rel {e:.1e}");
    assert!(e < tol, "n={n}: inverse rel {e:.2e}");

    let bad = g.upload_f32(&[1.0, 2.0, 2.0, 1.0], "A").unwrap();
    let work = SpdWork::new(g, 2, 1, false).unwrap();
    let not_pd = g.alloc_i32(1, "flags").unwrap();
    spd_factor(g, &SpdInput::Full(bad.ptr()), 1, &work, logdet.ptr(), not_pd.ptr(), false).unwrap();
    assert_eq!(check_pd(g, &not_pd, "test").unwrap_err().status(), crate::Status::Numerical);
}

fn half_steps(iters: usize) -> RateParams {
    RateParams { sinkhorn_half_iters: iters, ..Default::default() }
}

fn exact(iters: usize) -> RateParams {
    RateParams { sinkhorn_half_iters: iters, gradient: SinkhornGradient::Exact, ..Default::default() }
}

mod on_emulator {
    use super::*;
    use crate::device::cuda::emu::Emu;

    /// Products summed exactly, so the f32 path agrees with the f64 CPU to f32 rounding.
    const TOL: f64 = 2e-4;
    /// No chunking.
    const ALL: usize = usize::MAX >> 8;

    fn run(check: impl FnOnce(&dyn Gpu)) {
        let emu = Emu::new(&[crate::rate::cuda::emu::launch]);
        check(&emu);
        emu.check_guards();
    }

    #[test]
    fn small_d_single_chunk() {
        run(|g| loss_matches_cpu(g, TOL, 24, 10, 1, half_steps(5), ALL, Objective::Mlc));
        run(|g| loss_matches_cpu(g, TOL, 24, 10, 2, half_steps(5), ALL, Objective::Tcr));
    }

    #[test]
    fn small_d_many_chunks_and_even_half_steps() {
        // A budget of a few matrices forces chunks of 3-4 columns (including a ragged last chunk), and an
        // even number of half-steps makes the last v differ from the one the last row step used.
        let per = SpdWork::bytes_per_matrix(12) + 8 * (12 * 13 / 2);
        run(|g| loss_matches_cpu(g, TOL, 23, 12, 3, half_steps(4), 3 * per + 5, Objective::Mlc));
        run(|g| loss_matches_cpu(g, TOL, 17, 12, 4, half_steps(1), 4 * per, Objective::Mlc));
    }

    #[test]
    fn blocked_cholesky_with_partial_tile() {
        // d = 150: tiles of 64, 64 and 22; two chunks of columns.
        let per = SpdWork::bytes_per_matrix(150) + 8 * (150 * 151 / 2);
        run(|g| loss_matches_cpu(g, TOL, 12, 150, 5, half_steps(5), 7 * per, Objective::Mlc));
        run(|g| loss_matches_cpu(g, TOL, 10, 150, 6, half_steps(5), ALL, Objective::Tcr));
    }

    #[test]
    fn edge_shapes() {
        // m = 2; d = 1 (TCR; with unit rows the MLC Z-gradient of d = 1 is exactly 0, nothing to compare);
        // d = 128 (largest single-kernel matrix); d = 129 (blocked, a last tile of 1).
        run(|g| loss_matches_cpu(g, TOL, 2, 3, 7, half_steps(5), ALL, Objective::Mlc));
        run(|g| loss_matches_cpu(g, TOL, 5, 1, 8, half_steps(5), ALL, Objective::Tcr));
        run(|g| loss_matches_cpu(g, TOL, 6, 128, 9, half_steps(5), ALL, Objective::Mlc));
        run(|g| loss_matches_cpu(g, TOL, 5, 129, 10, half_steps(5), ALL, Objective::Mlc));
    }

    #[test]
    fn exact_sinkhorn_gradient() {
        for iters in [1, 4, 5] {
            run(|g| loss_matches_cpu(g, TOL, 21, 9, 11, RateParams { eta: 0.3, ..exact(iters) }, ALL, Objective::Mlc));
        }
    }

    #[test]
    fn membership() {
        for iters in [1, 4, 5] {
            run(|g| membership_matches_cpu(g, 1e-5, 19, 6, iters));
        }
    }

    #[test]
    fn spd_factor_both_paths() {
        // n = 40: one shared-memory kernel per matrix; n = 130: blocked, a last tile of 2.
        run(|g| spd_matches_cpu(g, 1e-4, 3, 40));
        run(|g| spd_matches_cpu(g, 1e-4, 2, 130));
    }
}

mod on_gpu {
    use super::*;
    use crate::testing::cuda_or_skip;

    const TOL: f64 = 1e-3;

    fn run(check: impl FnOnce(&dyn Gpu)) {
        if let Some((_, dev)) = cuda_or_skip() {
            check(&*dev);
        }
    }

    fn shape(g: &dyn Gpu, m: usize, d: usize, seed: u64, params: RateParams, objective: Objective) {
        loss_matches_cpu(g, TOL, m, d, seed, params, CHUNK_BUDGET_BYTES, objective);
    }

    #[test]
    fn mlc_d128() {
        run(|g| {
            shape(g, 1024, 128, 1, half_steps(5), Objective::Mlc);
            shape(g, 1024, 128, 2, half_steps(5), Objective::Tcr);
            shape(g, 37, 5, 3, half_steps(5), Objective::Mlc);
        });
    }

    #[test]
    fn exact_sinkhorn_gradient() {
        run(|g| {
            shape(g, 512, 128, 8, exact(5), Objective::Mlc);
            shape(g, 512, 128, 8, exact(4), Objective::Mlc);
            // The reference gradient with an even number of half-steps.
            shape(g, 512, 64, 9, half_steps(4), Objective::Mlc);
        });
    }

    #[test]
    fn mlc_large_batch() {
        run(|g| shape(g, 4096, 128, 4, half_steps(5), Objective::Mlc));
    }

    #[test]
    fn mlc_blocked_cholesky() {
        run(|g| {
            // d > 128: blocked Cholesky; 200 = 3 full tiles of 64 + a partial tile of 8.
            shape(g, 300, 200, 5, half_steps(5), Objective::Mlc);
            shape(g, 256, 1024, 6, half_steps(5), Objective::Mlc);
            shape(g, 512, 1024, 7, half_steps(5), Objective::Tcr);
        });
    }

    #[test]
    fn membership() {
        run(|g| {
            for (m, d, iters) in [(4096, 128, 5), (1000, 64, 4), (33, 7, 1)] {
                membership_matches_cpu(g, TOL, m, d, iters);
            }
        });
    }

    #[test]
    fn spd_factor_both_paths() {
        run(|g| {
            for (batch, n) in [(64, 128), (8, 300), (3, 1)] {
                spd_matches_cpu(g, TOL, batch, n);
            }
        });
    }

    /// The public entry on a CUDA `Device` (conversion, upload, validation) agrees with the CPU and
    /// refuses bad input with an error.
    #[test]
    fn public_entry_point() {
        let Some((device, _)) = cuda_or_skip() else { return };
        let (m, d) = (64, 16);
        let (z, c) = inputs(m, d, 12);
        let p = RateParams::default();
        let cpu = crate::rate::mlc_loss(&Device::Cpu, &z, &c, m, d, &p, Objective::Mlc).unwrap();
        let gpu = crate::rate::mlc_loss(&device, &f32s(&z), &f32s(&c), m, d, &p, Objective::Mlc).unwrap();
        assert!((gpu.loss as f64 - cpu.loss).abs() < TOL * cpu.loss.abs().max(1.0), "loss {} vs {}", gpu.loss, cpu.loss);
        assert!(rel_norm(&gpu.grad_z, &cpu.grad_z) < TOL && rel_norm(&gpu.grad_c, &cpu.grad_c) < TOL);
        let small = vec![0.1f32; 8];
        assert!(crate::rate::mlc_loss(&device, &small, &small, 4, 3, &p, Objective::Mlc).is_err(), "size mismatch");
        let mut nan = small.clone();
        nan[3] = f32::NAN;
        assert!(crate::rate::mlc_loss(&device, &nan, &small, 4, 2, &p, Objective::Mlc).is_err(), "NaN");
    }
}
