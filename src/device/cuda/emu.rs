//! A CPU emulator of the CUDA backend, so that CI (no GPU) checks every CUDA path's orchestration against
//! the CPU reference: every GEMM's operands, leading dimensions, offsets and batch strides (through the same
//! row-major → column-major translation the real cuBLAS call uses), and every kernel launch.
//!
//! This is the backend half: device memory, buffers, cuBLAS, and the dispatch of launches. The kernels are
//! restated next to their orchestration by each domain (`rate/cuda/emu.rs` for `kernels/rate*.cu` and
//! `kernels/linalg.cu`, `cluster/head/cuda/emu.rs` for `kernels/head.cu`) as a [`KernelSet`], and a test
//! builds its emulator with the sets it needs; so the backend depends on no domain.
//!
//! Memory is one flat arena addressed like device memory. Fresh "uninitialised" buffers are filled with
//! NaN, so reading before writing poisons the result; every buffer is followed by guard words that must
//! be intact at the end (catches out-of-bounds writes), and out-of-bounds reads return NaN.

use super::{CmGemm, Gpu, GpuBuf, KArg, KernelFile, RmGemm};
use crate::error::Result;
use std::sync::{Mutex, MutexGuard};

/// The kernels of some `kernels/*.cu` files, restated sequentially on the CPU: runs `kernel` (with the
/// launch's grid, block size, shared bytes and arguments) and returns true, or returns false when
/// `kernel` is not one of them.
pub(crate) type KernelSet = fn(&Emu, &str, (u32, u32, u32), u32, u32, &[KArg]) -> bool;

const BASE: u64 = 1 << 20;
const GUARD: usize = 16;
const GUARD_BITS: u32 = 0x7fc0_dead; // a NaN
const NAN_BITS: u32 = 0x7fc0_0000;
/// Two f16 NaNs: what a fresh f16 buffer holds.
const HALF_NAN_BITS: u32 = 0x7e00_7e00;

pub(crate) struct Emu {
    /// Behind a mutex so that the emulator is `Send + Sync` like a real device (models that hold their
    /// device in an `Arc` can hold it); tests use it from one thread.
    mem: Mutex<Vec<u32>>,
    /// (start word, length) of every allocation, to check the guards.
    allocs: Mutex<Vec<(usize, usize)>>,
    /// The kernel files this emulator can run, each registered by its domain.
    kernels: Vec<KernelSet>,
}

impl Emu {
    /// An emulator running the kernels of `kernels` (e.g. the rate kernels, plus the head's for the CPP
    /// head's tests).
    pub(crate) fn new(kernels: &[KernelSet]) -> Self {
        Emu { mem: Mutex::new(Vec::new()), allocs: Mutex::new(Vec::new()), kernels: kernels.to_vec() }
    }

    fn mem(&self) -> MutexGuard<'_, Vec<u32>> {
        lock(&self.mem)
    }

    fn alloc(&self, len: usize, fill: u32) -> u64 {
        let mut mem = self.mem();
        let start = mem.len();
        let len = len.max(1);
        mem.resize(start + len, fill);
        mem.resize(start + len + GUARD, GUARD_BITS);
        lock(&self.allocs).push((start, len));
        BASE + 4 * start as u64
    }

    fn word(&self, addr: u64) -> usize {
        assert!(addr >= BASE && (addr - BASE) % 4 == 0, "misaligned or NULL device address {addr:#x}");
        ((addr - BASE) / 4) as usize
    }

    pub(crate) fn rf(&self, addr: u64, i: usize) -> f32 {
        let w = self.word(addr) + i;
        self.mem().get(w).map(|&b| f32::from_bits(b)).unwrap_or(f32::NAN)
    }

    pub(crate) fn wf(&self, addr: u64, i: usize, v: f32) {
        let w = self.word(addr) + i;
        let mut mem = self.mem();
        assert!(w < mem.len(), "write past the end of emulated memory");
        mem[w] = v.to_bits();
    }

    pub(crate) fn ri(&self, addr: u64, i: usize) -> i32 {
        self.mem()[self.word(addr) + i] as i32
    }

    pub(crate) fn wi(&self, addr: u64, i: usize, v: i32) {
        let w = self.word(addr) + i;
        self.mem()[w] = v as u32;
    }

    /// Element `i` of the f16 array at byte address `addr` (2-byte aligned: f16 sub-blocks start at any
    /// element), as f32. Out-of-bounds reads return NaN.
    pub(crate) fn rh(&self, addr: u64, i: usize) -> f32 {
        let (w, shift) = self.half_at(addr, i);
        self.mem().get(w).map_or(f32::NAN, |&b| half::f16::from_bits((b >> shift) as u16).to_f32())
    }

    /// Stores `v` rounded to f16 (round to nearest even, as the kernels' `cvt.rn.f16.f32`).
    pub(crate) fn wh(&self, addr: u64, i: usize, v: f32) {
        let (w, shift) = self.half_at(addr, i);
        let mut mem = self.mem();
        assert!(w < mem.len(), "write past the end of emulated memory");
        mem[w] = (mem[w] & !(0xffff << shift)) | ((half::f16::from_f32(v).to_bits() as u32) << shift);
    }

    fn half_at(&self, addr: u64, i: usize) -> (usize, u32) {
        assert!(addr >= BASE && addr % 2 == 0, "misaligned or NULL f16 address {addr:#x}");
        let byte = (addr - BASE) as usize + 2 * i;
        (byte / 4, 8 * (byte % 4) as u32)
    }

    /// Panics if any buffer's guard words were overwritten.
    pub(crate) fn check_guards(&self) {
        let mem = self.mem();
        for &(start, len) in lock(&self.allocs).iter() {
            for g in 0..GUARD {
                assert_eq!(mem[start + len + g], GUARD_BITS, "write past the end of the buffer at word {start} (length {len})");
            }
        }
    }

    /// A column-major product; `half_ab` / `half_c`: A and B / C hold f16 (accumulation in f64 either way,
    /// C rounded to its type).
    fn gemm_cm(&self, g: &CmGemm, half_ab: bool, half_c: bool) {
        let (m, n, k) = (g.m as usize, g.n as usize, g.k as usize);
        let read = |p: u64, i: usize, half: bool| if half { self.rh(p, i) } else { self.rf(p, i) };
        for bi in 0..g.batch as usize {
            let a = |r: usize, c: usize| read(g.a, bi * g.stride_a as usize + r + c * g.lda as usize, half_ab);
            let b = |r: usize, c: usize| read(g.b, bi * g.stride_b as usize + r + c * g.ldb as usize, half_ab);
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
                        g.alpha as f64 * acc + g.beta as f64 * read(g.c, ci, half_c) as f64
                    };
                    if half_c { self.wh(g.c, ci, v as f32) } else { self.wf(g.c, ci, v as f32) }
                }
            }
        }
    }
}

/// A poisoned lock means an earlier assertion failed mid-kernel; the memory is still what it was.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
            self.gemm_cm(&cm, false, false);
        }
        Ok(())
    }
    fn alloc_f16(&self, len: usize, _what: &str) -> Result<GpuBuf<half::f16>> {
        Ok(GpuBuf::emulated(self.alloc(len.div_ceil(2), HALF_NAN_BITS), len))
    }
    fn upload_f16(&self, host: &[half::f16], what: &str) -> Result<GpuBuf<half::f16>> {
        let buf = self.alloc_f16(host.len(), what)?;
        for (i, &v) in host.iter().enumerate() {
            self.wh(buf.ptr(), i, v.to_f32());
        }
        Ok(buf)
    }
    fn download_f16(&self, buf: &GpuBuf<half::f16>, _what: &str) -> Result<Vec<half::f16>> {
        Ok((0..buf.len()).map(|i| half::f16::from_f32(self.rh(buf.ptr(), i))).collect())
    }
    fn gemm_f16(&self, g: &RmGemm, c_f16: bool) -> Result<()> {
        if let Some(cm) = g.to_column_major()? {
            self.gemm_cm(&cm, true, c_f16);
        }
        Ok(())
    }
    fn sync(&self, _after: &str) -> Result<()> {
        Ok(())
    }
    fn describe(&self) -> String {
        "the CUDA emulator".into()
    }

    fn launch(&self, file: &'static KernelFile, kernel: &'static str, grid: (u32, u32, u32), block: u32, shared: u32, a: &[KArg]) -> Result<()> {
        let declared = file.source.contains(&format!("void {kernel}(")) || file.source.contains(&format!("\n{kernel}("));
        assert!(declared, "kernel {kernel} is not in kernels/{}.cu", file.name);
        assert!(self.kernels.iter().any(|run| run(self, kernel, grid, block, shared, a)), "the emulator has no kernel {kernel}");
        Ok(())
    }
}
