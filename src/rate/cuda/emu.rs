//! The rate kernels (`kernels/rate*.cu`, `kernels/linalg.cu`) restated on the CPU for the CUDA emulator
//! (`device::cuda::emu`), and the CI tests that run the CUDA rate path's orchestration on it against the
//! CPU reference: the chunking over columns of Π, the blocked Cholesky with partial tiles, and the
//! gradient formulas.
//!
//! Each kernel below restates its `kernels/*.cu` counterpart sequentially (same indexing, same loop
//! order for the in-place factorisation), covering exactly the threads the launch configuration provides,
//! so an undersized grid shows up as missing results. What it cannot check is the CUDA code itself
//! (races, barriers): that is `tests/rate_cuda.rs` on a GPU.

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate::cuda::*;
    use crate::rate::{Objective, RateParams};
    use crate::device::Device;
    use crate::rng::Rng;

    fn features(rng: &mut Rng, m: usize, d: usize) -> Vec<f64> {
        // A union of 3 low-rank groups plus noise, unit rows.
        let rank = 2.min(d);
        let bases: Vec<Vec<f64>> = (0..3).map(|_| (0..rank * d).map(|_| rng.normal()).collect()).collect();
        let mut x = vec![0.0; m * d];
        for (i, row) in x.chunks_mut(d).enumerate() {
            for r in 0..rank {
                let w = rng.normal();
                for (a, v) in row.iter_mut().enumerate() {
                    *v += w * bases[i % 3][r * d + a];
                }
            }
            row.iter_mut().for_each(|v| *v += 0.1 * rng.normal());
            let n = row.iter().map(|v| v * v).sum::<f64>().sqrt();
            row.iter_mut().for_each(|v| *v /= n);
        }
        x
    }

    fn rel_norm(a: &[f32], b: &[f64]) -> f64 {
        assert_eq!(a.len(), b.len());
        let num: f64 = a.iter().zip(b).map(|(&x, &y)| (x as f64 - y).powi(2)).sum();
        let den: f64 = b.iter().map(|y| y * y).sum();
        (num / den).sqrt()
    }

    fn f32s(x: &[f64]) -> Vec<f32> {
        x.iter().map(|&v| v as f32).collect()
    }

    /// The whole CUDA orchestration, on emulated kernels, against the CPU reference in f64.
    fn check(m: usize, d: usize, half_iters: usize, budget: usize, objective: Objective) {
        check_with(m, d, RateParams { sinkhorn_half_iters: half_iters, ..Default::default() }, budget, objective)
    }

    fn check_with(m: usize, d: usize, params: RateParams, budget: usize, objective: Objective) {
        let mut rng = Rng::new((m * 1000 + d) as u64);
        let z = features(&mut rng, m, d);
        let c = features(&mut rng, m, d);
        let cpu = crate::rate::mlc_loss(&Device::Cpu, &z, &c, m, d, &params, objective).unwrap();
        let emu = Emu::new(&[launch]);
        let out = mlc_loss_host_on(&emu, &f32s(&z), &f32s(&c), m, d, &params, objective, budget).unwrap();
        emu.check_guards();
        let tol = 2e-4;
        for (name, g, r) in [("loss", out.loss, cpu.loss), ("R", out.rate, cpu.rate), ("R_c", out.rate_c, cpu.rate_c), ("penalty", out.pi_penalty, cpu.pi_penalty)] {
            let e = (g as f64 - r).abs() / r.abs().max(1e-9);
            assert!(e < tol || (r == 0.0 && g == 0.0), "m={m} d={d} {objective:?}: {name} {g} vs CPU {r} (rel {e:.1e})");
        }
        let ez = rel_norm(&out.grad_z, &cpu.grad_z);
        assert!(ez < tol, "m={m} d={d} {objective:?}: ∂Z rel {ez:.1e}");
        if objective == Objective::Mlc {
            let ec = rel_norm(&out.grad_c, &cpu.grad_c);
            assert!(ec < tol, "m={m} d={d}: ∂C rel {ec:.1e}");
        } else {
            assert!(out.grad_c.is_empty());
        }
    }

    #[test]
    fn small_d_single_chunk() {
        check(24, 10, 5, usize::MAX >> 8, Objective::Mlc);
        check(24, 10, 5, usize::MAX >> 8, Objective::Tcr);
    }

    #[test]
    fn small_d_many_chunks_and_even_half_steps() {
        // A budget of a few matrices forces chunks of 3-4 columns (including a ragged last chunk), and an
        // even number of half-steps makes the last v differ from the one the last row step used.
        let per = SpdWork::bytes_per_matrix(12) + 8 * (12 * 13 / 2);
        check(23, 12, 4, 3 * per + 5, Objective::Mlc);
        check(17, 12, 1, 4 * per, Objective::Mlc);
    }

    #[test]
    fn blocked_cholesky_with_partial_tile() {
        // d = 150: tiles of 64, 64 and 22; two chunks of columns.
        let per = SpdWork::bytes_per_matrix(150) + 8 * (150 * 151 / 2);
        check(12, 150, 5, 7 * per, Objective::Mlc);
        check(10, 150, 5, usize::MAX >> 8, Objective::Tcr);
    }

    #[test]
    fn edge_shapes() {
        // d = 1 (TCR; with unit rows the MLC Z-gradient of d = 1 is exactly 0, nothing to compare);
        // m = 2; d = 128 (largest single-kernel matrix); d = 129 (blocked, a last tile of 1).
        check(2, 3, 5, usize::MAX >> 8, Objective::Mlc);
        check(5, 1, 5, usize::MAX >> 8, Objective::Tcr);
        check(6, 128, 5, usize::MAX >> 8, Objective::Mlc);
        check(5, 129, 5, usize::MAX >> 8, Objective::Mlc);
    }

    #[test]
    fn exact_sinkhorn_gradient() {
        for iters in [1, 4, 5] {
            let p = RateParams { sinkhorn_half_iters: iters, gradient: SinkhornGradient::Exact, eta: 0.3, ..Default::default() };
            check_with(21, 9, p, usize::MAX >> 8, Objective::Mlc);
        }
    }

    #[test]
    fn membership_matches_cpu() {
        let mut rng = Rng::new(5);
        let (m, d) = (19, 6);
        let c = features(&mut rng, m, d);
        for iters in [1, 4, 5] {
            let params = RateParams { sinkhorn_half_iters: iters, ..Default::default() };
            let cpu = crate::rate::membership(&Device::Cpu, &c, m, d, &params).unwrap();
            let emu = Emu::new(&[launch]);
            let pi = membership_on(&emu, &f32s(&c), m, d, &params).unwrap();
            emu.check_guards();
            assert!(rel_norm(&pi, &cpu) < 1e-5, "{iters} half-steps");
        }
    }

    #[test]
    fn spd_factor_full_input_both_paths() {
        for (batch, n) in [(3usize, 40usize), (2, 130)] {
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
            let emu = Emu::new(&[launch]);
            let g: &dyn Gpu = &emu;
            let buf = g.upload_f32(&f32s(&a), "A").unwrap();
            let work = SpdWork::new(g, n, batch, true).unwrap();
            let logdet = g.alloc_f32(batch, true, "logdet").unwrap();
            let not_pd = g.alloc_i32(batch, "flags").unwrap();
            spd_factor(g, &SpdInput::Full(buf.ptr()), batch, &work, logdet.ptr(), not_pd.ptr(), true).unwrap();
            check_pd(g, &not_pd, "test").unwrap();
            let ld = g.download_f32(&logdet, "logdet").unwrap();
            for (x, y) in ld.iter().zip(&ld_cpu) {
                assert!((*x as f64 - y).abs() / y.abs() < 1e-4, "n={n}: logdet {x} vs {y}");
            }
            let inv: Vec<f32> = (0..batch * n * n).map(|i| emu.rf(work.inverse_ptr(), i)).collect();
            assert!(rel_norm(&inv, &cpu) < 1e-4, "n={n}: inverse");
            emu.check_guards();
        }
    }

    #[test]
    fn not_positive_definite_is_a_numerical_error() {
        let emu = Emu::new(&[launch]);
        let g: &dyn Gpu = &emu;
        let buf = g.upload_f32(&[1.0, 2.0, 2.0, 1.0], "A").unwrap();
        let work = SpdWork::new(g, 2, 1, false).unwrap();
        let logdet = g.alloc_f32(1, true, "logdet").unwrap();
        let not_pd = g.alloc_i32(1, "flags").unwrap();
        spd_factor(g, &SpdInput::Full(buf.ptr()), 1, &work, logdet.ptr(), not_pd.ptr(), false).unwrap();
        let err = check_pd(g, &not_pd, "test").unwrap_err();
        assert_eq!(err.status(), crate::Status::Numerical);
    }
}
