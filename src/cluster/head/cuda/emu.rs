//! CPU emulation of `kernels/head.cu` for the CUDA emulator (`device::cuda::emu`), and the CI tests
//! that run the CUDA head's orchestration ([`super::DeviceHead`]) on it against the CPU head.
//!
//! Each kernel is restated sequentially from its CUDA text (same arguments, same arithmetic types);
//! launches are checked for the block size and grid coverage the kernel relies on. As with the rate
//! emulator, what this cannot check is the CUDA code itself (barriers, races): tests/head_cuda.rs on a GPU.

use crate::device::cuda::KArg;
use crate::device::cuda::emu::{flt, int, long, ptr, Emu};

/// Runs a `kernels/head.cu` kernel on the emulator; `false` if `kernel` is not one of them.
pub(crate) fn launch(e: &Emu, kernel: &str, grid: (u32, u32, u32), block: u32, _shared: u32, a: &[KArg]) -> bool {
    let gx = grid.0 as usize;
    assert!(gx >= 1 && grid.1 == 1 && grid.2 == 1 && block >= 1, "{kernel}: grid {grid:?}, block {block}");
    let columns = |cols: usize| {
        assert_eq!(block, 256, "{kernel} is written for 256 threads (32 columns × 8 lanes)");
        assert!(gx * 32 >= cols, "{kernel}: grid {gx} covers {} of {cols} columns", gx * 32);
    };
    let rows_cover = |rows: usize| {
        assert!(block % 32 == 0 && block <= 1024, "{kernel}: block {block} must be a multiple of 32, ≤ 1024");
        assert!(gx >= rows, "{kernel}: grid {gx} covers {gx} of {rows} rows");
    };
    match kernel {
        "head_bias_act" => {
            let (y, b, total, cols, relu) = (ptr(a, 0), ptr(a, 1), long(a, 2) as usize, int(a, 3) as usize, int(a, 4) != 0);
            for i in 0..total {
                let mut v = e.rf(y, i) + e.rf(b, i % cols);
                if relu && v < 0.0 {
                    v = 0.0;
                }
                e.wf(y, i, v);
            }
        }
        "head_bn_train_fwd" => {
            let (x, r1, gamma, beta, invstd_out, rm, rv) = (ptr(a, 0), ptr(a, 1), ptr(a, 2), ptr(a, 3), ptr(a, 4), ptr(a, 5), ptr(a, 6));
            let (m, h) = (int(a, 7) as usize, int(a, 8) as usize);
            columns(h);
            for col in 0..h {
                let mean = (0..m).map(|r| e.rf(x, r * h + col) as f64).sum::<f64>() / m as f64;
                let var = (0..m).map(|r| (e.rf(x, r * h + col) as f64 - mean).powi(2)).sum::<f64>() / m as f64;
                let invstd = (1.0 / (var + 1e-5).sqrt()) as f32;
                let meanf = mean as f32;
                e.wf(invstd_out, col, invstd);
                let mom = 0.1f32;
                let unbias = m as f64 / (m as f64 - 1.0);
                e.wf(rm, col, (1.0 - mom) * e.rf(rm, col) + mom * meanf);
                e.wf(rv, col, (1.0 - mom) * e.rf(rv, col) + mom * (var * unbias) as f32);
                let (g, be) = (e.rf(gamma, col), e.rf(beta, col));
                for r in 0..m {
                    let i = r * h + col;
                    let xh = (e.rf(x, i) - meanf) * invstd;
                    e.wf(x, i, xh);
                    e.wf(r1, i, (g * xh + be).max(0.0));
                }
            }
        }
        "head_bn_eval_relu" => {
            let (x, b1, gamma, beta, rm, rv) = (ptr(a, 0), ptr(a, 1), ptr(a, 2), ptr(a, 3), ptr(a, 4), ptr(a, 5));
            let (total, h) = (long(a, 6) as usize, int(a, 7) as usize);
            for i in 0..total {
                let j = i % h;
                let scale = e.rf(gamma, j) / (e.rf(rv, j) + 1e-5f32).sqrt();
                let shift = e.rf(beta, j) - e.rf(rm, j) * scale;
                e.wf(x, i, ((e.rf(x, i) + e.rf(b1, j)) * scale + shift).max(0.0));
            }
        }
        "head_l2norm_rows" => {
            let (y, norms, rows, d) = (ptr(a, 0), ptr(a, 1), int(a, 2) as usize, int(a, 3) as usize);
            rows_cover(rows);
            for r in 0..rows {
                let n = (0..d).map(|k| e.rf(y, r * d + k).powi(2)).sum::<f32>().sqrt().max(1e-12);
                for k in 0..d {
                    e.wf(y, r * d + k, e.rf(y, r * d + k) / n);
                }
                if norms != 0 {
                    e.wf(norms, r, n);
                }
            }
        }
        "head_l2norm_rows_bwd" => {
            let (y, norms, gy1, gy2, gx) = (ptr(a, 0), ptr(a, 1), ptr(a, 2), ptr(a, 3), ptr(a, 4));
            let (rows, d) = (int(a, 5) as usize, int(a, 6) as usize);
            rows_cover(rows);
            let grad = |i: usize| if gy2 != 0 { e.rf(gy1, i) + e.rf(gy2, i) } else { e.rf(gy1, i) };
            for r in 0..rows {
                let o = r * d;
                let dot: f32 = (0..d).map(|k| e.rf(y, o + k) * grad(o + k)).sum();
                let n = e.rf(norms, r);
                for k in 0..d {
                    e.wf(gx, o + k, (grad(o + k) - e.rf(y, o + k) * dot) / n);
                }
            }
        }
        "head_col_sums" => {
            let (x, m, cols, out) = (ptr(a, 0), int(a, 1) as usize, int(a, 2) as usize, ptr(a, 3));
            columns(cols);
            for c in 0..cols {
                e.wf(out, c, (0..m).map(|r| e.rf(x, r * cols + c) as f64).sum::<f64>() as f32);
            }
        }
        "head_relu_mask" => {
            let (g, out, total) = (ptr(a, 0), ptr(a, 1), long(a, 2) as usize);
            for i in 0..total {
                if e.rf(out, i) <= 0.0 {
                    e.wf(g, i, 0.0);
                }
            }
        }
        "head_bn_bwd" => {
            let (xhat, g, r1, gamma, invstd, ggamma, gbeta) = (ptr(a, 0), ptr(a, 1), ptr(a, 2), ptr(a, 3), ptr(a, 4), ptr(a, 5), ptr(a, 6));
            let (m, h) = (int(a, 7) as usize, int(a, 8) as usize);
            columns(h);
            for col in 0..h {
                let gy = |i: usize| if e.rf(r1, i) > 0.0 { e.rf(g, i) } else { 0.0 };
                let sg: f64 = (0..m).map(|r| gy(r * h + col) as f64).sum();
                let sgx: f64 = (0..m).map(|r| (gy(r * h + col) * e.rf(xhat, r * h + col)) as f64).sum();
                e.wf(ggamma, col, sgx as f32);
                e.wf(gbeta, col, sg as f32);
                let inv_m = 1.0 / m as f64;
                let coef = e.rf(gamma, col) * e.rf(invstd, col);
                let (mean_gy, mean_gyx) = ((sg * inv_m) as f32, (sgx * inv_m) as f32);
                for r in 0..m {
                    let i = r * h + col;
                    e.wf(xhat, i, coef * (gy(i) - mean_gy - e.rf(xhat, i) * mean_gyx));
                }
            }
        }
        "head_sgd" => {
            let (p, buf, g, n) = (ptr(a, 0), ptr(a, 1), ptr(a, 2), long(a, 3) as usize);
            let (lr, mu, wd, first) = (flt(a, 4), flt(a, 5), flt(a, 6), int(a, 7) != 0);
            for i in 0..n {
                let gk = e.rf(g, i) + wd * e.rf(p, i);
                let b = if first { gk } else { mu * e.rf(buf, i) + gk };
                e.wf(buf, i, b);
                e.wf(p, i, e.rf(p, i) - lr * b);
            }
        }
        "head_gather_rows" => {
            let (x, idx, rows, cols, out) = (ptr(a, 0), ptr(a, 1), int(a, 2) as usize, int(a, 3) as usize, ptr(a, 4));
            for r in 0..rows {
                let src = e.ri(idx, r) as usize;
                for c in 0..cols {
                    e.wf(out, r * cols + c, e.rf(x, src * cols + c));
                }
            }
        }
        _ => return false,
    }
    true
}

#[cfg(test)]
mod tests {
    use super::super::{forward_backward_on, DeviceHead, StepConfig};
    use crate::cluster::head::{Head, HeadDims, B1, BETA, GAMMA, N_PARAMS, PARAM_NAMES};
    use crate::cluster::params::FitParams;
    use crate::cluster::head::train::Trainer;
    use crate::device::cuda::Gpu;
    use crate::device::Device;
    use crate::device::cuda::emu::Emu;
    use crate::rng::Rng;

    fn rel_norm(a: &[f32], b: &[f32]) -> f64 {
        assert_eq!(a.len(), b.len());
        let num: f64 = a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum();
        let den: f64 = b.iter().map(|&y| (y as f64).powi(2)).sum();
        (num / den.max(1e-30)).sqrt()
    }

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

    /// The emulator computes products exactly (f64 sums), so CUDA-path orchestration vs CPU agrees to f32
    /// rounding: 1e-4 in relative Frobenius norm.
    const TOL: f64 = 1e-4;

    #[test]
    fn eval_forward_matches_cpu_over_chunks() {
        let dims = HeadDims { input: 7, hidden: 45, zdim: 5 };
        let h = head(dims, 3);
        let mut rng = Rng::new(4);
        let n = 23;
        let x = normal(&mut rng, n * dims.input);
        let emu = Emu::new(&[crate::rate::cuda::emu::launch, super::launch]);
        let dh = DeviceHead::upload(&emu, &h).unwrap();
        // 23 rows in chunks of 10: two full chunks and a partial one.
        let (z, c) = dh.forward_eval(&emu, &x, n, true, 10).unwrap();
        let (zc, cc) = h.forward_eval(&x, n, true).unwrap();
        assert!(rel_norm(&z, &zc) < TOL, "Z {}", rel_norm(&z, &zc));
        assert!(rel_norm(&c, &cc) < TOL, "C {}", rel_norm(&c, &cc));
        let (z1, c1) = dh.forward_eval(&emu, &x, n, false, 64).unwrap();
        assert!(c1.is_empty() && rel_norm(&z1, &zc) < TOL);
        emu.check_guards();
    }

    #[test]
    fn train_forward_and_backward_match_cpu() {
        // hidden 45: two column blocks, the second partial.
        let dims = HeadDims { input: 7, hidden: 45, zdim: 5 };
        let m = 9;
        for with_c in [true, false] {
            let mut h = head(dims, 5);
            let mut rng = Rng::new(6);
            let x = normal(&mut rng, m * dims.input);
            let gz = normal(&mut rng, m * dims.zdim);
            let gc = normal(&mut rng, m * dims.zdim);
            let emu = Emu::new(&[crate::rate::cuda::emu::launch, super::launch]);
            let mut dh = DeviceHead::upload(&emu, &h).unwrap();
            let (z, c, grads) = forward_backward_on(&emu, &mut dh, &x, m, &gz, with_c.then_some(&gc[..])).unwrap();
            let cache = h.forward_train(&x, m).unwrap();
            assert!(rel_norm(&z, &cache.z) < TOL && rel_norm(&c, &cache.c) < TOL, "train-mode Z/C");
            let cpu = h.backward(&x, cache, &gz, with_c.then_some(&gc[..])).unwrap();
            let norm = |v: &[f32]| v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
            for i in 0..N_PARAMS {
                match (&grads[i], &cpu[i]) {
                    // The first bias feeds training-mode BatchNorm, which removes it: its exact gradient is 0
                    // and both sides hold rounding noise, so compare on the scale of ∂β instead.
                    (Some(a), Some(b)) if i == B1 => {
                        let diff: Vec<f32> = a.iter().zip(b).map(|(x, y)| x - y).collect();
                        let scale = norm(cpu[BETA].as_ref().unwrap());
                        assert!(norm(&diff) < TOL * scale, "∂{}: |diff| {} vs |∂β| {scale}", PARAM_NAMES[i], norm(&diff));
                    }
                    (Some(a), Some(b)) => assert!(rel_norm(a, b) < TOL, "∂{} rel {}", PARAM_NAMES[i], rel_norm(a, b)),
                    (None, None) => {}
                    _ => panic!("∂{}: presence differs from the CPU", PARAM_NAMES[i]),
                }
            }
            let back = dh.download(&emu).unwrap();
            assert!(rel_norm(&back.running_mean, &h.running_mean) < TOL && rel_norm(&back.running_var, &h.running_var) < TOL, "running statistics");
            emu.check_guards();
        }
    }

    /// Whole training steps through the warm-up, the head copy and the MLC phase (two-head and single-head):
    /// losses and final parameters against `Trainer::step` on the CPU.
    #[test]
    fn training_steps_match_trainer() {
        let dims = HeadDims { input: 6, hidden: 40, zdim: 4 };
        let m = 12;
        for single_head in [false, true] {
            // A large learning rate so that the parameters move well beyond f32 rounding.
            let params = FitParams { warmup: 1, single_head, hidden: dims.hidden, zdim: dims.zdim, batch: m, lr: 0.05, lr_cluster: 0.05, ..FitParams::default() };
            let mut cpu = head(dims, 8);
            let start = cpu.clone();
            let emu = Emu::new(&[crate::rate::cuda::emu::launch, super::launch]);
            let mut dh = DeviceHead::upload(&emu, &cpu).unwrap();
            let cfg = StepConfig::new(&params);
            let mut trainer = Trainer::<f32>::new(&params, &Device::Cpu);
            let mut rng = Rng::new(9);
            for step in 0..4 {
                let x = normal(&mut rng, m * dims.input);
                let xb = emu.upload_f32(&x, "batch").unwrap();
                let lg = dh.step(&emu, &cfg, &xb, m, step).unwrap();
                let lc = trainer.step(&mut cpu, &x, m, step).unwrap();
                assert!((lg - lc).abs() < 1e-3 * (1.0 + lc.abs()), "single_head {single_head} step {step}: loss {lg} vs CPU {lc}");
            }
            let back = dh.download(&emu).unwrap();
            // Compare what the steps changed (the parameters themselves would hide a wrong update).
            let delta = |h: &Head<f32>, i: usize| h.p[i].iter().zip(&start.p[i]).map(|(a, b)| a - b).collect::<Vec<f32>>();
            for i in 0..N_PARAMS {
                let e = rel_norm(&delta(&back, i), &delta(&cpu, i));
                assert!(e < 1e-3, "single_head {single_head}: change of {} over 4 steps, rel {e}", PARAM_NAMES[i]);
            }
            emu.check_guards();
        }
    }

    /// `train` on the device (features uploaded once, batches gathered there) against `train` on the CPU
    /// with the same batches, through the warm-up and the head copy.
    #[test]
    fn train_on_device_matches_cpu_train() {
        use crate::cluster::head::train::{train, BatchOrder};
        use crate::progress::NoProgress;
        let dims = HeadDims { input: 5, hidden: 33, zdim: 4 };
        let (n, m) = (30, 10);
        let params = FitParams { warmup: 2, hidden: dims.hidden, zdim: dims.zdim, batch: m, lr: 0.05, lr_cluster: 0.05, ..FitParams::default() };
        let mut rng = Rng::new(11);
        let x = normal(&mut rng, n * dims.input);
        let mut order: Vec<usize> = (0..n).collect();
        let batches: Vec<Vec<usize>> = (0..5).map(|_| { rng.shuffle(&mut order); order[..m].to_vec() }).collect();
        let start = head(dims, 12);
        let mut cpu = start.clone();
        let log = train(&mut cpu, &x, n, &params, &Device::Cpu, BatchOrder::Explicit(&batches), &mut NoProgress).unwrap();
        let emu = Emu::new(&[crate::rate::cuda::emu::launch, super::launch]);
        let mut dev = start.clone();
        let losses = super::super::train_on(&emu, &mut dev, &x, n, &params, crate::cluster::head::train::Batches { total: batches.len(), iter: Box::new(batches.iter().cloned()) }, &mut NoProgress).unwrap();
        for (s, (a, b)) in losses.iter().zip(&log.losses).enumerate() {
            assert!((a - b).abs() < 1e-3 * (1.0 + b.abs()), "step {s}: loss {a} vs CPU {b}");
        }
        assert_eq!(losses.len(), 5);
        for i in 0..N_PARAMS {
            let da: Vec<f32> = dev.p[i].iter().zip(&start.p[i]).map(|(a, b)| a - b).collect();
            let db: Vec<f32> = cpu.p[i].iter().zip(&start.p[i]).map(|(a, b)| a - b).collect();
            assert!(rel_norm(&da, &db) < 1e-3, "{}: change rel {}", PARAM_NAMES[i], rel_norm(&da, &db));
        }
        emu.check_guards();
    }
}
