//! CPU emulation of `kernels/head.cu` for the CUDA emulator (`device::cuda::emu`), on which `tests.rs`
//! runs the head's CUDA backend against the CPU one in CI.
//!
//! Each kernel is restated sequentially from its CUDA text (same arguments, same arithmetic types);
//! launches are checked for the block size and grid coverage the kernel relies on. As with the rate
//! emulator, what this cannot check is the CUDA code itself (barriers, races): the same tests on a GPU.

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
