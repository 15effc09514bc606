//! CPU restatement of `kernels/nn.cu` and `kernels/clip.cu` for the CUDA emulator (`device::cuda::emu`),
//! on which `tests.rs` runs the CUDA towers against the CPU towers in CI.
//!
//! Each kernel is restated sequentially from its CUDA text (same arguments; f16 stores rounded to nearest
//! as `cvt.rn.f16.f32`; reductions in f64, where the kernels reduce in f32 in another order); launches are
//! checked for the grid coverage and block shape the kernel relies on. What this cannot check is the
//! CUDA code itself (shuffles, shared-memory tiles, barriers): the same tests on a GPU do.

use crate::clip::layers::{gelu, quick_gelu};
use crate::device::cuda::emu::{flt, int, long, ptr, Emu};
use crate::device::cuda::KArg;

/// Runs a `kernels/nn.cu` or `kernels/clip.cu` kernel on the emulator; `false` if `kernel` is neither's.
pub(crate) fn launch(e: &Emu, kernel: &str, grid: (u32, u32, u32), block: u32, _shared: u32, a: &[KArg]) -> bool {
    let threads = grid.0 as usize * grid.1 as usize * grid.2 as usize * block as usize;
    let covers = |n: usize| assert!(grid.1 == 1 && grid.2 == 1 && threads >= n, "{kernel}: grid {grid:?} × {block} covers {threads} of {n} elements");
    let one_block_per_row = |rows: usize| {
        assert!(block % 32 == 0 && block <= 1024, "{kernel}: block {block} must be a multiple of 32, ≤ 1024");
        assert_eq!(grid, (rows as u32, 1, 1), "{kernel}: one block per row");
    };
    match kernel {
        "text_tokens" => {
            let (ids, tok, pos, b, len, d, out) = (ptr(a, 0), ptr(a, 1), ptr(a, 2), long(a, 3) as usize, int(a, 4) as usize, int(a, 5) as usize, ptr(a, 6));
            covers(b * len * d);
            for i in 0..b * len * d {
                let (row, f) = (i / d, i % d);
                let id = e.ri(ids, row) as usize;
                e.wf(out, i, e.rf(tok, id * d + f) + e.rf(pos, (row % len) * d + f));
            }
        }
        "gather_rows" => {
            let (src, rows, n, d, out) = (ptr(a, 0), ptr(a, 1), long(a, 2) as usize, int(a, 3) as usize, ptr(a, 4));
            covers(n * d);
            for i in 0..n * d {
                e.wf(out, i, e.rf(src, e.ri(rows, i / d) as usize * d + i % d));
            }
        }
        "patches_im2col" => {
            let (pixels, b, h, w, p, out) = (ptr(a, 0), int(a, 1) as usize, int(a, 2) as usize, int(a, 3) as usize, int(a, 4) as usize, ptr(a, 5));
            let (gh, gw, cols) = (h / p, w / p, 3 * p * p);
            covers(b * gh * gw * cols);
            for i in 0..b * gh * gw * cols {
                let (row, col) = (i / cols, i % cols);
                let (img, patch) = (row / (gh * gw), row % (gh * gw));
                let (py, px) = (patch / gw, patch % gw);
                let (c, ky, kx) = (col / (p * p), (col / p) % p, col % p);
                e.wh(out, i, e.rf(pixels, ((img * 3 + c) * h + py * p + ky) * w + px * p + kx));
            }
        }
        "vision_tokens" => {
            let (emb, cls, pos, b, np, d, out) = (ptr(a, 0), ptr(a, 1), ptr(a, 2), int(a, 3) as usize, int(a, 4) as usize, int(a, 5) as usize, ptr(a, 6));
            let per_item = (1 + np) * d;
            covers(b * per_item);
            for i in 0..b * per_item {
                let (item, t, f) = (i / per_item, (i % per_item) / d, i % d);
                let v = if t == 0 { e.rf(cls, f) } else { e.rf(emb, (item * np + t - 1) * d + f) };
                e.wf(out, i, v + e.rf(pos, t * d + f));
            }
        }
        "layer_norm" => {
            let (x, d, gamma, beta, eps, out32, out16) = (ptr(a, 0), int(a, 1) as usize, ptr(a, 2), ptr(a, 3), flt(a, 4), ptr(a, 5), ptr(a, 6));
            let rows = grid.0 as usize;
            one_block_per_row(rows);
            for r in 0..rows {
                let row: Vec<f64> = (0..d).map(|j| e.rf(x, r * d + j) as f64).collect();
                let mean = row.iter().sum::<f64>() / d as f64;
                let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d as f64;
                let rstd = 1.0 / (var + eps as f64).sqrt();
                for (j, v) in row.iter().enumerate() {
                    let y = ((v - mean) * rstd) as f32 * e.rf(gamma, j) + e.rf(beta, j);
                    if out32 != 0 {
                        e.wf(out32, r * d + j, y);
                    }
                    if out16 != 0 {
                        e.wh(out16, r * d + j, y);
                    }
                }
            }
        }
        "bias_act_to_f16" | "bias_residual" => {
            let (x, bias, rows, n, out) = (ptr(a, 0), ptr(a, 1), long(a, 2) as usize, int(a, 3) as usize, ptr(a, a.len() - 1));
            covers(rows * n);
            for i in 0..rows * n {
                let v = e.rf(x, i) + if bias != 0 { e.rf(bias, i % n) } else { 0.0 };
                if kernel == "bias_residual" {
                    e.wf(out, i, e.rf(out, i) + v);
                } else {
                    let v = match int(a, 4) {
                        act if act < 0 => v,
                        0 => quick_gelu(v),
                        _ => gelu(v),
                    };
                    e.wh(out, i, v);
                }
            }
        }
        "softmax_rows_to_f16" => {
            let (x, rows, n, causal, out) = (ptr(a, 0), long(a, 1) as usize, int(a, 2) as usize, int(a, 3) != 0, ptr(a, 4));
            assert!(block % 32 == 0 && grid.1 == 1 && grid.0 as usize * (block as usize / 32) >= rows, "{kernel}: one warp per row");
            for r in 0..rows {
                let limit = if causal { r % n + 1 } else { n };
                let probs = softmax(&(0..limit).map(|j| e.rf(x, r * n + j) as f64).collect::<Vec<_>>());
                for j in 0..n {
                    e.wh(out, r * n + j, probs.get(j).copied().unwrap_or(0.0) as f32);
                }
            }
        }
        "attention_fused" => {
            let (qkv, seq, heads, hd, causal, scale, out) = (ptr(a, 0), int(a, 1) as usize, int(a, 2) as usize, int(a, 3) as usize, int(a, 4) != 0, flt(a, 5) as f64, ptr(a, 6));
            let warps = block as usize / 32;
            assert!(block % 32 == 0 && grid.1 as usize * warps >= seq && grid.2 == 1, "{kernel}: grid {grid:?} × {block} does not cover {seq} queries");
            let (d, items) = (heads * hd, grid.0 as usize / heads);
            assert_eq!(items * heads, grid.0 as usize, "{kernel}: grid.x must be items × heads");
            let at = |item: usize, t: usize, col: usize| e.rh(qkv, (item * seq + t) * 3 * d + col) as f64;
            for item in 0..items {
                for h in 0..heads {
                    for q in 0..seq {
                        let keys = if causal { q + 1 } else { seq };
                        let scores: Vec<f64> = (0..keys).map(|k| (0..hd).map(|c| at(item, q, h * hd + c) * scale * at(item, k, d + h * hd + c)).sum()).collect();
                        let p = softmax(&scores);
                        for c in 0..hd {
                            let v: f64 = (0..keys).map(|k| p[k] * at(item, k, 2 * d + h * hd + c)).sum();
                            e.wh(out, (item * seq + q) * d + h * hd + c, v as f32);
                        }
                    }
                }
            }
        }
        _ => return false,
    }
    true
}

fn softmax(s: &[f64]) -> Vec<f64> {
    let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = s.iter().map(|v| (v - m).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.iter().map(|v| v / sum).collect()
}
