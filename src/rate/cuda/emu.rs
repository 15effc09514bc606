//! The rate kernels (`kernels/rate*.cu`, `kernels/linalg.cu`) restated on the CPU for the CUDA emulator
//! (`device::cuda::emu`), on which `tests.rs` runs the CUDA rate path against the CPU reference in CI.
//!
//! Each kernel below restates its `kernels/*.cu` counterpart sequentially (same indexing, same loop
//! order for the in-place factorisation), covering exactly the threads the launch configuration provides,
//! so an undersized grid shows up as missing results. What it cannot check is the CUDA code itself
//! (races, barriers): that is the same tests on a GPU.

use crate::device::cuda::emu::{flt, int, long, ptr, Emu};
use crate::device::cuda::KArg;

fn unpack(q: usize) -> (usize, usize) {
    let mut a = (((8 * q + 1) as f64).sqrt() as usize).saturating_sub(1) / 2;
    while (a + 1) * (a + 2) / 2 <= q {
        a += 1;
    }
    while a * (a + 1) / 2 > q {
        a -= 1;
    }
    (a, q - a * (a + 1) / 2)
}

fn lse(xs: impl Iterator<Item = f32>) -> f32 {
    let v: Vec<f32> = xs.collect();
    let mx = v.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    mx + v.iter().map(|x| (x - mx).exp()).sum::<f32>().ln()
}

/// Runs a rate or linear-algebra kernel on the emulator; `false` if `kernel` is not one of them.
pub(crate) fn launch(e: &Emu, kernel: &str, grid: (u32, u32, u32), block: u32, shared: u32, a: &[KArg]) -> bool {
        let (gx, gy) = (grid.0 as usize, grid.1 as usize);
        let threads = gx * block as usize; // threads along x, for the flat kernels
        match kernel {
            "outer_pack" => {
                let (z, d, zp) = (ptr(a, 0), int(a, 1) as usize, ptr(a, 2));
                assert!(shared as usize >= 4 * d, "outer_pack needs d floats of shared memory");
                let p = d * (d + 1) / 2;
                for i in 0..gx {
                    for q in 0..p {
                        let (r, c) = unpack(q);
                        e.wf(zp, i * p + q, e.rf(z, i * d + r) * e.rf(z, i * d + c));
                    }
                }
            }
            "sym_unpack" => {
                let (gp, alpha, add_id, d, out) = (ptr(a, 0), ptr(a, 1), int(a, 2), int(a, 3) as usize, ptr(a, 4));
                let p = d * (d + 1) / 2;
                for k in 0..gy {
                    for idx in 0..threads.min(d * d) {
                        let (r, c) = (idx / d, idx % d);
                        let (hi, lo) = (r.max(c), r.min(c));
                        let s = if alpha != 0 { e.rf(alpha, k) } else { 1.0 };
                        let mut v = s * e.rf(gp, k * p + hi * (hi + 1) / 2 + lo);
                        if add_id != 0 && r == c {
                            v += 1.0;
                        }
                        e.wf(out, k * d * d + idx, v);
                    }
                }
            }
            "sym_pack_weighted" => {
                let (mm, d, w) = (ptr(a, 0), int(a, 1) as usize, ptr(a, 2));
                let p = d * (d + 1) / 2;
                for k in 0..gy {
                    for q in 0..threads.min(p) {
                        let (r, c) = unpack(q);
                        let v = e.rf(mm, k * d * d + r * d + c);
                        e.wf(w, k * p + q, if r == c { v } else { 2.0 * v });
                    }
                }
            }
            "batched_trace" => {
                let (mm, d, tr) = (ptr(a, 0), int(a, 1) as usize, ptr(a, 2));
                for k in 0..gx {
                    e.wf(tr, k, (0..d).map(|i| e.rf(mm, k * d * d + i * d + i)).sum());
                }
            }
            "packed_symv" => {
                let (bw, z, d, scale, out) = (ptr(a, 0), ptr(a, 1), int(a, 2) as usize, flt(a, 3), ptr(a, 4));
                assert!(shared as usize >= 8 * d, "packed_symv needs 2d floats of shared memory");
                let p = d * (d + 1) / 2;
                for i in 0..gx {
                    let mut acc = vec![0.0f32; d];
                    for q in 0..p {
                        let (r, c) = unpack(q);
                        let w = e.rf(bw, i * p + q);
                        if r == c {
                            acc[r] += w * e.rf(z, i * d + r);
                        } else {
                            acc[r] += 0.5 * w * e.rf(z, i * d + c);
                            acc[c] += 0.5 * w * e.rf(z, i * d + r);
                        }
                    }
                    for (r, v) in acc.iter().enumerate() {
                        e.wf(out, i * d + r, scale * v);
                    }
                }
            }
            "chol_inv_small" => chol_inv_small(e, gx, block, a),
            "sinkhorn_half_step" => {
                let (am, n, w, eta, lm, out) = (ptr(a, 0), int(a, 1) as usize, ptr(a, 2), flt(a, 3), flt(a, 4), ptr(a, 5));
                for i in 0..gx {
                    let l = lse((0..n).map(|j| (e.rf(am, i * n + j).abs() + e.rf(w, j)) / eta));
                    e.wf(out, i, eta * lm - eta * l);
                }
            }
            "sinkhorn_plan" => {
                let (am, n, u, v, eta, scale, pi, rs) = (ptr(a, 0), int(a, 1) as usize, ptr(a, 2), ptr(a, 3), flt(a, 4), flt(a, 5), ptr(a, 6), ptr(a, 7));
                for i in 0..gx {
                    let mut sq = 0.0;
                    for j in 0..n {
                        let p = scale * ((e.rf(am, i * n + j).abs() + e.rf(u, i) + e.rf(v, j)) / eta).exp();
                        e.wf(pi, i * n + j, p);
                        sq += p * p;
                    }
                    if rs != 0 {
                        e.wf(rs, i, sq);
                    }
                }
            }
            "sinkhorn_backward_ref" => {
                let (am, pi, qe, colterm, u, vp) = (ptr(a, 0), ptr(a, 1), ptr(a, 2), ptr(a, 3), ptr(a, 4), ptr(a, 5));
                let (n, eta, gamma, lambda, qs) = (int(a, 6) as usize, flt(a, 7), flt(a, 8), flt(a, 9), flt(a, 10));
                for i in 0..gx {
                    let g = |j: usize| gamma * (e.rf(colterm, j) + qs * e.rf(qe, i * n + j)) + lambda * e.rf(pi, i * n + j);
                    let r: f32 = (0..n).map(|j| g(j) * e.rf(pi, i * n + j)).sum();
                    let row: Vec<f32> = (0..n)
                        .map(|j| {
                            let av = e.rf(am, i * n + j);
                            let sm = n as f32 * ((av.abs() + e.rf(u, i) + e.rf(vp, j)) / eta).exp();
                            let kbar = (g(j) * e.rf(pi, i * n + j) - r * sm) / eta;
                            kbar * if av > 0.0 { 1.0 } else if av < 0.0 { -1.0 } else { 0.0 }
                        })
                        .collect();
                    for (j, v) in row.into_iter().enumerate() {
                        e.wf(qe, i * n + j, v);
                    }
                }
            }
            "sinkhorn_backward_final" => {
                let (pi, qk, colterm) = (ptr(a, 0), ptr(a, 1), ptr(a, 2));
                let (n, eta, gamma, lambda, qs, ubar) = (int(a, 3) as usize, flt(a, 4), flt(a, 5), flt(a, 6), flt(a, 7), ptr(a, 8));
                for i in 0..gx {
                    let mut r = 0.0;
                    for j in 0..n {
                        let p = e.rf(pi, i * n + j);
                        let h = (gamma * (e.rf(colterm, j) + qs * e.rf(qk, i * n + j)) + lambda * p) * p;
                        e.wf(qk, i * n + j, h / eta);
                        r += h;
                    }
                    e.wf(ubar, i, r / eta);
                }
            }
            "sinkhorn_step_backward" => {
                let (am, n, x, xbar, y, eta, kbar, ybar) = (ptr(a, 0), int(a, 1) as usize, ptr(a, 2), ptr(a, 3), ptr(a, 4), flt(a, 5), ptr(a, 6), ptr(a, 7));
                // Blocks run in any order on the GPU; each reads only x, x_bar, y and A, and writes its own
                // row of K_bar and its own y_bar entry, so any sequential order is equivalent.
                for r in 0..gx {
                    let mut acc = 0.0;
                    for c in 0..n {
                        let k = e.rf(am, r * n + c).abs();
                        let kb = e.rf(kbar, r * n + c) - e.rf(xbar, r) * n as f32 * ((k + e.rf(x, r) + e.rf(y, c)) / eta).exp();
                        e.wf(kbar, r * n + c, kb);
                        acc += e.rf(xbar, c) * n as f32 * ((k + e.rf(x, c) + e.rf(y, r)) / eta).exp();
                    }
                    e.wf(ybar, r, e.rf(ybar, r) - acc);
                }
            }
            "apply_abs_sign" => {
                let (am, kbar, total) = (ptr(a, 0), ptr(a, 1), long(a, 2) as usize);
                for i in 0..threads.min(total) {
                    let s = e.rf(am, i);
                    let sg = if s > 0.0 { 1.0 } else if s < 0.0 { -1.0 } else { 0.0 };
                    e.wf(kbar, i, e.rf(kbar, i) * sg);
                }
            }
            "rate_colterm" => {
                let (ld, tr, m, d, out) = (ptr(a, 0), ptr(a, 1), int(a, 2) as usize, int(a, 3) as f32, ptr(a, 4));
                for j in 0..threads.min(m) {
                    e.wf(out, j, (e.rf(ld, j) - d + e.rf(tr, j)) / (2.0 * m as f32));
                }
            }
            "rate_alpha" => {
                let (cs, m, d, eps, alpha) = (ptr(a, 0), int(a, 1) as usize, int(a, 2) as f32, flt(a, 3), ptr(a, 4));
                for j in 0..threads.min(m) {
                    let t = e.rf(cs, j) + 1e-8;
                    e.wf(cs, j, t);
                    e.wf(alpha, j, d / (t * eps));
                }
            }
            _ => return false,
        }
    true
}

/// Sequential restatement of `chol_inv_small` (same packed storage, same operation order).
fn chol_inv_small(e: &Emu, batch: usize, block: u32, a: &[KArg]) {
    assert_eq!(block, 256, "chol_inv_small needs 256 threads");
    let (am, a_stride, lda, packed, alpha, add_id) = (ptr(a, 0), long(a, 1) as usize, int(a, 2) as usize, int(a, 3), ptr(a, 4), int(a, 5));
    let (lout, l_stride, ldl, xout, x_stride, ldx) = (ptr(a, 6), long(a, 7) as usize, int(a, 8) as usize, ptr(a, 9), long(a, 10) as usize, int(a, 11) as usize);
    let (logdet, accumulate, not_pd, n) = (ptr(a, 12), int(a, 13), ptr(a, 14), int(a, 15) as usize);
    assert!((1..=128).contains(&n), "chol_inv_small takes n in 1..=128, got {n}");
    let pk = |i: usize, j: usize| i * (i + 1) / 2 + j;
    for b in 0..batch {
        let s = if alpha != 0 { e.rf(alpha, b) } else { 1.0 };
        let mut sm = vec![0.0f32; n * (n + 1) / 2];
        for (q, slot) in sm.iter_mut().enumerate() {
            let (i, j) = unpack(q);
            let mut v = if packed != 0 { e.rf(am, b * a_stride + q) } else { e.rf(am, b * a_stride + i * lda + j) };
            v *= s;
            if add_id != 0 && i == j {
                v += 1.0;
            }
            *slot = v;
        }
        let mut bad = false;
        let mut ld = 0.0f32;
        for k in 0..n {
            let piv = sm[pk(k, k)];
            let ok = piv > 0.0;
            let l = if ok { piv.sqrt() } else { 1.0 };
            for i in k + 1..n {
                sm[pk(i, k)] *= 1.0 / l;
            }
            bad |= !ok;
            sm[pk(k, k)] = l;
            ld += l.ln();
            for i in k + 1..n {
                for j in k + 1..=i {
                    sm[pk(i, j)] -= sm[pk(i, k)] * sm[pk(j, k)];
                }
            }
        }
        let prev = if accumulate != 0 { e.rf(logdet, b) } else { 0.0 };
        e.wf(logdet, b, prev + 2.0 * ld);
        if bad {
            e.wi(not_pd, b, 1);
        }
        if lout != 0 {
            for i in 0..n {
                for j in 0..n {
                    e.wf(lout, b * l_stride + i * ldl + j, if j <= i { sm[pk(i, j)] } else { 0.0 });
                }
            }
        }
        if xout == 0 {
            continue;
        }
        for j in (0..n).rev() {
            let djj = 1.0 / sm[pk(j, j)];
            let tmp: Vec<f32> = (j + 1..n).map(|i| (j + 1..=i).map(|k| sm[pk(i, k)] * sm[pk(k, j)]).sum()).collect();
            for (t, i) in (j + 1..n).enumerate() {
                sm[pk(i, j)] = -tmp[t] * djj;
            }
            sm[pk(j, j)] = djj;
        }
        for i in 0..n {
            for j in 0..n {
                e.wf(xout, b * x_stride + i * ldx + j, if j <= i { sm[pk(i, j)] } else { 0.0 });
            }
        }
    }
}
