//! A CPU emulator of the CUDA rate kernels and of cuBLAS, so that CI (no GPU) checks the CUDA path's
//! orchestration against the CPU reference: every GEMM's operands, leading dimensions, offsets and batch
//! strides (through the same row-major → column-major translation the real cuBLAS call uses), the chunking
//! over columns of Π, the blocked Cholesky with partial tiles, and the gradient formulas.
//!
//! Each kernel below restates its `kernels/*.cu` counterpart sequentially (same indexing, same loop
//! order for the in-place factorisation), covering exactly the threads the launch configuration provides,
//! so an undersized grid shows up as missing results. What it cannot check is the CUDA code itself
//! (races, barriers): that is `tests/rate_cuda.rs` on a GPU.
//!
//! Memory is one flat arena addressed like device memory. Fresh "uninitialised" buffers are filled with
//! NaN, so reading before writing poisons the result; every buffer is followed by guard words that must
//! be intact at the end (catches out-of-bounds writes), and out-of-bounds reads return NaN.

use super::*;
use crate::device::cuda::CmGemm;
use std::cell::RefCell;

const BASE: u64 = 1 << 20;
const GUARD: usize = 16;
const GUARD_BITS: u32 = 0x7fc0_dead; // a NaN
const NAN_BITS: u32 = 0x7fc0_0000;

pub(crate) struct Emu {
    mem: RefCell<Vec<u32>>,
    /// (start word, length) of every allocation, to check the guards.
    allocs: RefCell<Vec<(usize, usize)>>,
}

impl Emu {
    pub(crate) fn new() -> Self {
        Emu { mem: RefCell::new(Vec::new()), allocs: RefCell::new(Vec::new()) }
    }

    fn alloc(&self, len: usize, fill: u32) -> u64 {
        let mut mem = self.mem.borrow_mut();
        let start = mem.len();
        let len = len.max(1);
        mem.resize(start + len, fill);
        mem.resize(start + len + GUARD, GUARD_BITS);
        self.allocs.borrow_mut().push((start, len));
        BASE + 4 * start as u64
    }

    fn word(&self, addr: u64) -> usize {
        assert!(addr >= BASE && (addr - BASE) % 4 == 0, "misaligned or NULL device address {addr:#x}");
        ((addr - BASE) / 4) as usize
    }

    pub(crate) fn rf(&self, addr: u64, i: usize) -> f32 {
        let w = self.word(addr) + i;
        self.mem.borrow().get(w).map(|&b| f32::from_bits(b)).unwrap_or(f32::NAN)
    }

    pub(crate) fn wf(&self, addr: u64, i: usize, v: f32) {
        let w = self.word(addr) + i;
        let mut mem = self.mem.borrow_mut();
        assert!(w < mem.len(), "write past the end of emulated memory");
        mem[w] = v.to_bits();
    }

    pub(crate) fn ri(&self, addr: u64, i: usize) -> i32 {
        self.mem.borrow()[self.word(addr) + i] as i32
    }

    fn wi(&self, addr: u64, i: usize, v: i32) {
        let w = self.word(addr) + i;
        self.mem.borrow_mut()[w] = v as u32;
    }

    /// Panics if any buffer's guard words were overwritten.
    pub(crate) fn check_guards(&self) {
        let mem = self.mem.borrow();
        for &(start, len) in self.allocs.borrow().iter() {
            for g in 0..GUARD {
                assert_eq!(mem[start + len + g], GUARD_BITS, "write past the end of the buffer at word {start} (length {len})");
            }
        }
    }

    fn gemm_cm(&self, g: &CmGemm) {
        let (m, n, k) = (g.m as usize, g.n as usize, g.k as usize);
        for bi in 0..g.batch as usize {
            let a = |r: usize, c: usize| self.rf(g.a, bi * g.stride_a as usize + r + c * g.lda as usize);
            let b = |r: usize, c: usize| self.rf(g.b, bi * g.stride_b as usize + r + c * g.ldb as usize);
            for j in 0..n {
                for i in 0..m {
                    let mut acc = 0.0f64;
                    for l in 0..k {
                        let x = if g.trans_a { a(l, i) } else { a(i, l) };
                        let y = if g.trans_b { b(j, l) } else { b(l, j) };
                        acc += x as f64 * y as f64;
                    }
                    let ci = bi * g.stride_c as usize + i + j * g.ldc as usize;
                    let v = if g.beta == 0.0 {
                        g.alpha as f64 * acc
                    } else {
                        g.alpha as f64 * acc + g.beta as f64 * self.rf(g.c, ci) as f64
                    };
                    self.wf(g.c, ci, v as f32);
                }
            }
        }
    }
}

pub(crate) fn ptr(a: &[KArg], i: usize) -> u64 {
    match a[i] {
        KArg::Ptr(p) => p,
        other => panic!("argument {i} should be a pointer, got {other:?}"),
    }
}
pub(crate) fn int(a: &[KArg], i: usize) -> i32 {
    match a[i] {
        KArg::I32(x) => x,
        other => panic!("argument {i} should be an int, got {other:?}"),
    }
}
pub(crate) fn long(a: &[KArg], i: usize) -> i64 {
    match a[i] {
        KArg::I64(x) => x,
        other => panic!("argument {i} should be a long long, got {other:?}"),
    }
}
pub(crate) fn flt(a: &[KArg], i: usize) -> f32 {
    match a[i] {
        KArg::F32(x) => x,
        other => panic!("argument {i} should be a float, got {other:?}"),
    }
}

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

impl Gpu for Emu {
    fn alloc_f32(&self, len: usize, zeroed: bool, _what: &str) -> Result<GpuBuf<f32>> {
        Ok(GpuBuf::emulated(self.alloc(len, if zeroed { 0 } else { NAN_BITS }), len))
    }
    fn alloc_i32(&self, len: usize, _what: &str) -> Result<GpuBuf<i32>> {
        Ok(GpuBuf::emulated(self.alloc(len, 0), len))
    }
    fn upload_f32(&self, host: &[f32], _what: &str) -> Result<GpuBuf<f32>> {
        let p = self.alloc(host.len(), NAN_BITS);
        for (i, &v) in host.iter().enumerate() {
            self.wf(p, i, v);
        }
        Ok(GpuBuf::emulated(p, host.len()))
    }
    fn upload_i32(&self, host: &[i32], _what: &str) -> Result<GpuBuf<i32>> {
        let p = self.alloc(host.len(), NAN_BITS);
        for (i, &v) in host.iter().enumerate() {
            self.wi(p, i, v);
        }
        Ok(GpuBuf::emulated(p, host.len()))
    }
    fn download_f32(&self, buf: &GpuBuf<f32>, _what: &str) -> Result<Vec<f32>> {
        Ok((0..buf.len()).map(|i| self.rf(buf.ptr(), i)).collect())
    }
    fn download_i32(&self, buf: &GpuBuf<i32>, _what: &str) -> Result<Vec<i32>> {
        Ok((0..buf.len()).map(|i| self.ri(buf.ptr(), i)).collect())
    }
    fn copy_f32(&self, dst: u64, src: u64, len: usize, _what: &str) -> Result<()> {
        for i in 0..len {
            self.wf(dst, i, self.rf(src, i));
        }
        Ok(())
    }
    fn zero_f32(&self, dst: u64, len: usize) -> Result<()> {
        for i in 0..len {
            self.wf(dst, i, 0.0);
        }
        Ok(())
    }
    fn gemm(&self, g: &RmGemm) -> Result<()> {
        if let Some(cm) = g.to_column_major()? {
            self.gemm_cm(&cm);
        }
        Ok(())
    }

    fn launch(&self, file: &'static str, kernel: &'static str, grid: (u32, u32, u32), block: u32, shared: u32, a: &[KArg]) -> Result<()> {
        let declared = |src: &str| src.contains(&format!("void {kernel}(")) || src.contains(&format!("\n{kernel}("));
        assert!(
            crate::device::cuda::KERNEL_SOURCES.iter().any(|(f, src)| *f == file && declared(src)),
            "kernel {kernel} is not in kernels/{file}.cu"
        );
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
                        self.wf(zp, i * p + q, self.rf(z, i * d + r) * self.rf(z, i * d + c));
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
                        let s = if alpha != 0 { self.rf(alpha, k) } else { 1.0 };
                        let mut v = s * self.rf(gp, k * p + hi * (hi + 1) / 2 + lo);
                        if add_id != 0 && r == c {
                            v += 1.0;
                        }
                        self.wf(out, k * d * d + idx, v);
                    }
                }
            }
            "sym_pack_weighted" => {
                let (mm, d, w) = (ptr(a, 0), int(a, 1) as usize, ptr(a, 2));
                let p = d * (d + 1) / 2;
                for k in 0..gy {
                    for q in 0..threads.min(p) {
                        let (r, c) = unpack(q);
                        let v = self.rf(mm, k * d * d + r * d + c);
                        self.wf(w, k * p + q, if r == c { v } else { 2.0 * v });
                    }
                }
            }
            "batched_trace" => {
                let (mm, d, tr) = (ptr(a, 0), int(a, 1) as usize, ptr(a, 2));
                for k in 0..gx {
                    self.wf(tr, k, (0..d).map(|i| self.rf(mm, k * d * d + i * d + i)).sum());
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
                        let w = self.rf(bw, i * p + q);
                        if r == c {
                            acc[r] += w * self.rf(z, i * d + r);
                        } else {
                            acc[r] += 0.5 * w * self.rf(z, i * d + c);
                            acc[c] += 0.5 * w * self.rf(z, i * d + r);
                        }
                    }
                    for (r, v) in acc.iter().enumerate() {
                        self.wf(out, i * d + r, scale * v);
                    }
                }
            }
            "chol_inv_small" => self.chol_inv_small(gx, block, a),
            "sinkhorn_half_step" => {
                let (am, n, w, eta, lm, out) = (ptr(a, 0), int(a, 1) as usize, ptr(a, 2), flt(a, 3), flt(a, 4), ptr(a, 5));
                for i in 0..gx {
                    let l = lse((0..n).map(|j| (self.rf(am, i * n + j).abs() + self.rf(w, j)) / eta));
                    self.wf(out, i, eta * lm - eta * l);
                }
            }
            "sinkhorn_plan" => {
                let (am, n, u, v, eta, scale, pi, rs) = (ptr(a, 0), int(a, 1) as usize, ptr(a, 2), ptr(a, 3), flt(a, 4), flt(a, 5), ptr(a, 6), ptr(a, 7));
                for i in 0..gx {
                    let mut sq = 0.0;
                    for j in 0..n {
                        let p = scale * ((self.rf(am, i * n + j).abs() + self.rf(u, i) + self.rf(v, j)) / eta).exp();
                        self.wf(pi, i * n + j, p);
                        sq += p * p;
                    }
                    if rs != 0 {
                        self.wf(rs, i, sq);
                    }
                }
            }
            "sinkhorn_backward_ref" => {
                let (am, pi, qe, colterm, u, vp) = (ptr(a, 0), ptr(a, 1), ptr(a, 2), ptr(a, 3), ptr(a, 4), ptr(a, 5));
                let (n, eta, gamma, lambda, qs) = (int(a, 6) as usize, flt(a, 7), flt(a, 8), flt(a, 9), flt(a, 10));
                for i in 0..gx {
                    let g = |j: usize| gamma * (self.rf(colterm, j) + qs * self.rf(qe, i * n + j)) + lambda * self.rf(pi, i * n + j);
                    let r: f32 = (0..n).map(|j| g(j) * self.rf(pi, i * n + j)).sum();
                    let row: Vec<f32> = (0..n)
                        .map(|j| {
                            let av = self.rf(am, i * n + j);
                            let sm = n as f32 * ((av.abs() + self.rf(u, i) + self.rf(vp, j)) / eta).exp();
                            let kbar = (g(j) * self.rf(pi, i * n + j) - r * sm) / eta;
                            kbar * if av > 0.0 { 1.0 } else if av < 0.0 { -1.0 } else { 0.0 }
                        })
                        .collect();
                    for (j, v) in row.into_iter().enumerate() {
                        self.wf(qe, i * n + j, v);
                    }
                }
            }
            "sinkhorn_backward_final" => {
                let (pi, qk, colterm) = (ptr(a, 0), ptr(a, 1), ptr(a, 2));
                let (n, eta, gamma, lambda, qs, ubar) = (int(a, 3) as usize, flt(a, 4), flt(a, 5), flt(a, 6), flt(a, 7), ptr(a, 8));
                for i in 0..gx {
                    let mut r = 0.0;
                    for j in 0..n {
                        let p = self.rf(pi, i * n + j);
                        let h = (gamma * (self.rf(colterm, j) + qs * self.rf(qk, i * n + j)) + lambda * p) * p;
                        self.wf(qk, i * n + j, h / eta);
                        r += h;
                    }
                    self.wf(ubar, i, r / eta);
                }
            }
            "sinkhorn_step_backward" => {
                let (am, n, x, xbar, y, eta, kbar, ybar) = (ptr(a, 0), int(a, 1) as usize, ptr(a, 2), ptr(a, 3), ptr(a, 4), flt(a, 5), ptr(a, 6), ptr(a, 7));
                // Blocks run in any order on the GPU; each reads only x, x_bar, y and A, and writes its own
                // row of K_bar and its own y_bar entry, so any sequential order is equivalent.
                for r in 0..gx {
                    let mut acc = 0.0;
                    for c in 0..n {
                        let k = self.rf(am, r * n + c).abs();
                        let kb = self.rf(kbar, r * n + c) - self.rf(xbar, r) * n as f32 * ((k + self.rf(x, r) + self.rf(y, c)) / eta).exp();
                        self.wf(kbar, r * n + c, kb);
                        acc += self.rf(xbar, c) * n as f32 * ((k + self.rf(x, c) + self.rf(y, r)) / eta).exp();
                    }
                    self.wf(ybar, r, self.rf(ybar, r) - acc);
                }
            }
            "apply_abs_sign" => {
                let (am, kbar, total) = (ptr(a, 0), ptr(a, 1), long(a, 2) as usize);
                for i in 0..threads.min(total) {
                    let s = self.rf(am, i);
                    let sg = if s > 0.0 { 1.0 } else if s < 0.0 { -1.0 } else { 0.0 };
                    self.wf(kbar, i, self.rf(kbar, i) * sg);
                }
            }
            "rate_colterm" => {
                let (ld, tr, m, d, out) = (ptr(a, 0), ptr(a, 1), int(a, 2) as usize, int(a, 3) as f32, ptr(a, 4));
                for j in 0..threads.min(m) {
                    self.wf(out, j, (self.rf(ld, j) - d + self.rf(tr, j)) / (2.0 * m as f32));
                }
            }
            "rate_alpha" => {
                let (cs, m, d, eps, alpha) = (ptr(a, 0), int(a, 1) as usize, int(a, 2) as f32, flt(a, 3), ptr(a, 4));
                for j in 0..threads.min(m) {
                    let t = self.rf(cs, j) + 1e-8;
                    self.wf(cs, j, t);
                    self.wf(alpha, j, d / (t * eps));
                }
            }
            // kernels/head.cu (the CUDA CPP head) is emulated next to its orchestration.
            other => assert!(crate::cluster::head::cuda::emu::launch(self, other, grid, block, a), "the emulator has no kernel {other}"),
        }
        Ok(())
    }
}

impl Emu {
    /// Sequential restatement of `chol_inv_small` (same packed storage, same operation order).
    fn chol_inv_small(&self, batch: usize, block: u32, a: &[KArg]) {
        assert_eq!(block, 256, "chol_inv_small needs 256 threads");
        let (am, a_stride, lda, packed, alpha, add_id) = (ptr(a, 0), long(a, 1) as usize, int(a, 2) as usize, int(a, 3), ptr(a, 4), int(a, 5));
        let (lout, l_stride, ldl, xout, x_stride, ldx) = (ptr(a, 6), long(a, 7) as usize, int(a, 8) as usize, ptr(a, 9), long(a, 10) as usize, int(a, 11) as usize);
        let (logdet, accumulate, not_pd, n) = (ptr(a, 12), int(a, 13), ptr(a, 14), int(a, 15) as usize);
        assert!((1..=128).contains(&n), "chol_inv_small takes n in 1..=128, got {n}");
        let pk = |i: usize, j: usize| i * (i + 1) / 2 + j;
        for b in 0..batch {
            let s = if alpha != 0 { self.rf(alpha, b) } else { 1.0 };
            let mut sm = vec![0.0f32; n * (n + 1) / 2];
            for (q, slot) in sm.iter_mut().enumerate() {
                let (i, j) = unpack(q);
                let mut v = if packed != 0 { self.rf(am, b * a_stride + q) } else { self.rf(am, b * a_stride + i * lda + j) };
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
            let prev = if accumulate != 0 { self.rf(logdet, b) } else { 0.0 };
            self.wf(logdet, b, prev + 2.0 * ld);
            if bad {
                self.wi(not_pd, b, 1);
            }
            if lout != 0 {
                for i in 0..n {
                    for j in 0..n {
                        self.wf(lout, b * l_stride + i * ldl + j, if j <= i { sm[pk(i, j)] } else { 0.0 });
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
                    self.wf(xout, b * x_stride + i * ldx + j, if j <= i { sm[pk(i, j)] } else { 0.0 });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let emu = Emu::new();
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
            let emu = Emu::new();
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
            let emu = Emu::new();
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
        let emu = Emu::new();
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
