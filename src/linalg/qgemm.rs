//! Int8 matrix products for the CLIP towers' linear layers (`Precision::Int8`): y = x·Wᵀ (+ bias, + y)
//! with W quantized once at load and x quantized per call, the integer products summed in i32.
//!
//! Quantization:
//! - weights: symmetric s8 per output channel (row of W): w ≈ s_o·q, q ∈ [-127, 127], s_o = max|w_o| / 127.
//! - activations: asymmetric u8 per row (token): x ≈ s_r·(q − z_r), q ∈ [0, 255] over the row's range
//!   [min(x, 0), max(x, 0)]. Per row rather than per tensor: one token with large activations would
//!   otherwise coarsen every other token's steps (ONNX Runtime's per-tensor dynamic quantization reaches
//!   only 0.94 centred cosine to f32 on ViT-B/32). Asymmetric rather than symmetric: post-GELU rows
//!   (fc2's input) are nearly one-signed, and a zero point gives them the full 256 steps.
//! - product: Σ_k (q_x − z)·q_w = Σ_k q_x·q_w − z·Σ_k q_w. The u8 × s8 sum is what AVX-512 VNNI's
//!   `vpdpbusd` computes (4 products per i32 lane); Σ_k q_w is kept per channel. Every term is exact in i32
//!   for k ≤ [`MAX_K`], so the two kernels below give the same integers and, with the same f32 epilogue,
//!   the same bits.
//!
//! Layout: W is packed at load into blocks of 16 output channels × 4 consecutive k (the 64 bytes one
//! `vpdpbusd` takes), blocks of one group of channels consecutive along k; k is padded to a multiple of 4
//! and the channels to a multiple of 16 with zero weights (zero weights make the padding contribute
//! nothing whatever the activation bytes). Activation rows are padded the same way.
//!
//! Kernels: AVX-512 VNNI when the CPU has it (checked at run time: the crate is built for baseline
//! x86-64), else a portable one over the same layout. Products are split over the rayon pool as
//! [`super::gemm`] splits them (`rayon::join` over blocks of the output, never along k), so they nest
//! under callers that already run in parallel and allocate nothing.

use super::gemm::pieces_for;
use super::rows::simd;
use crate::error::{Error, Result};
use crate::invalid_arg;
use crate::scratch::grow;
use rayon::prelude::*;
use std::ops::Range;

/// Output channels per packed block: one AVX-512 register of i32 sums.
const BLOCK: usize = 16;
/// Consecutive k per packed group: the four u8 × s8 products `vpdpbusd` adds into one i32 lane.
const GROUP: usize = 4;
/// Bytes of one packed (block, group): 16 channels × 4 k.
const GROUP_BYTES: usize = BLOCK * GROUP;
/// Rows of one micro-tile: 6 rows × 4 blocks = 24 accumulator registers, plus 4 for W and 1 for x, of 32.
const TILE_ROWS: usize = 6;
/// Blocks (of 16 channels) of one micro-tile.
const TILE_BLOCKS: usize = 4;
/// Rows whose quantized activations stay in L2 while every column panel passes over them (96 rows ×
/// 3072 bytes = 288 KiB).
const ROW_BLOCK: usize = 96;
/// Rows per rayon task when quantizing activations.
const QUANT_ROWS_PER_TASK: usize = 16;

/// Largest inner dimension: |Σ q_x·q_w| and |z·Σ q_w| are each at most 255·127·k, and their difference must
/// fit in i32 (2·255·127·32768 < 2³¹).
pub const MAX_K: usize = 32_768;

/// Which kernel computes the integer sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// AVX-512 VNNI `vpdpbusd` micro-tiles.
    Vnni,
    /// Plain Rust over the same packed layout, for CPUs without VNNI.
    Portable,
}

impl Kernel {
    /// The fastest kernel this CPU runs.
    pub fn detect() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512vnni") {
            return Kernel::Vnni;
        }
        Kernel::Portable
    }
}

/// A weight matrix W (`n × k`, row-major as `nn.Linear` stores it) quantized per output channel and packed
/// for the kernels.
pub struct QuantizedMatrix {
    n: usize,
    k: usize,
    /// `k` rounded up to a multiple of [`GROUP`].
    kp: usize,
    /// `[n/16 blocks][kp/4 groups][16 channels][4 k]`.
    packed: Vec<i8>,
    /// s_o per channel, padded with zeros to a multiple of 16.
    scale: Vec<f32>,
    /// Σ_k q_w per channel, padded with zeros to a multiple of 16.
    wsum: Vec<i32>,
}

impl QuantizedMatrix {
    /// Quantizes W (`n × k`). Non-finite weights are a format error (they have no int8 value).
    pub fn quantize(w: &[f32], n: usize, k: usize) -> Result<Self> {
        if Some(w.len()) != n.checked_mul(k) {
            return Err(invalid_arg!("weight has {} values, {n} × {k} expected", w.len()));
        }
        if k > MAX_K {
            return Err(invalid_arg!("int8 products take at most {MAX_K} inputs per output, not {k}"));
        }
        if let Some(i) = w.iter().position(|v| !v.is_finite()) {
            return Err(Error::Format(format!("weight value {i} is {}; int8 quantization needs finite weights", w[i])));
        }
        let blocks = n.div_ceil(BLOCK);
        let kp = k.next_multiple_of(GROUP);
        let block_bytes = kp / GROUP * GROUP_BYTES;
        let mut packed = vec![0i8; blocks * block_bytes];
        let mut scale = vec![0.0f32; blocks * BLOCK];
        let mut wsum = vec![0i32; blocks * BLOCK];
        packed
            .par_chunks_mut(block_bytes.max(1))
            .zip(scale.par_chunks_mut(BLOCK))
            .zip(wsum.par_chunks_mut(BLOCK))
            .enumerate()
            .for_each(|(b, ((dst, scale), wsum))| {
                for c in 0..BLOCK.min(n - b * BLOCK) {
                    let row = &w[(b * BLOCK + c) * k..][..k];
                    let amax = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                    let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
                    let mut sum = 0i32;
                    for (j, &v) in row.iter().enumerate() {
                        let q = (v * inv).round().clamp(-127.0, 127.0) as i8;
                        dst[j / GROUP * GROUP_BYTES + c * GROUP + j % GROUP] = q;
                        sum += q as i32;
                    }
                    scale[c] = amax / 127.0;
                    wsum[c] = sum;
                }
            });
        Ok(QuantizedMatrix { n, k, kp, packed, scale, wsum })
    }

    /// Output channels (rows of W).
    pub fn rows(&self) -> usize {
        self.n
    }

    /// Inputs per output (columns of W).
    pub fn cols(&self) -> usize {
        self.k
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.packed.len() + 4 * (self.scale.len() + self.wsum.len())
    }

    /// The quantized weight of channel `o` at input `j` (W[o, j] ≈ scale(o)·q).
    #[cfg(test)]
    fn q(&self, o: usize, j: usize) -> i8 {
        self.packed[(o / BLOCK * (self.kp / GROUP) + j / GROUP) * GROUP_BYTES + o % BLOCK * GROUP + j % GROUP]
    }
}

/// Rows of activations quantized per row, reused from call to call (buffers only grow, so a workspace
/// that served a product at least as large allocates nothing).
#[derive(Default)]
pub struct QuantizedRows {
    rows: usize,
    /// Row length: k rounded up to a multiple of [`GROUP`].
    kp: usize,
    /// `[rows][kp]`, the padding zero.
    data: Vec<u8>,
    /// s_r per row; NaN for a row with a non-finite value, so that the product's row is NaN as in f32.
    scale: Vec<f32>,
    /// z_r per row.
    zero: Vec<i32>,
}

impl QuantizedRows {
    /// Quantizes `rows` rows of `k` values (`x`, row-major), replacing what the buffers held.
    pub fn quantize(&mut self, x: &[f32], rows: usize, k: usize) {
        assert_eq!(x.len(), rows * k, "activations: {} values for {rows} rows of {k}", x.len());
        let kp = k.next_multiple_of(GROUP);
        (self.rows, self.kp) = (rows, kp);
        grow(&mut self.data, rows * kp);
        grow(&mut self.scale, rows);
        grow(&mut self.zero, rows);
        if rows == 0 || k == 0 {
            self.data[..rows * kp].fill(0);
            self.scale[..rows].fill(0.0);
            self.zero[..rows].fill(0);
            return;
        }
        let per = QUANT_ROWS_PER_TASK;
        x.par_chunks(per * k)
            .zip(self.data[..rows * kp].par_chunks_mut(per * kp))
            .zip(self.scale[..rows].par_chunks_mut(per))
            .zip(self.zero[..rows].par_chunks_mut(per))
            .for_each(|(((x, q), s), z)| quantize_rows_fastest(x, k, q, kp, s, z));
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.capacity() + 4 * (self.scale.capacity() + self.zero.capacity())
    }
}

/// Rounds to the nearest integer (ties to even) for |x| < 2²² with the 1.5·2²³ trick: `round()` does not
/// vectorise on baseline x86-64.
#[inline(always)]
fn round_small(x: f32) -> f32 {
    (x + 12_582_912.0) - 12_582_912.0
}

/// [`quantize_rows`] with explicit AVX-512 where the CPU has it (the compiler does not vectorise the
/// float-to-byte conversion: the loop took a third of the time of the products it feeds), else as written.
/// Both give the same bytes, steps and zero points.
fn quantize_rows_fastest(x: &[f32], k: usize, q: &mut [u8], kp: usize, scale: &mut [f32], zero: &mut [i32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512 F, what the function is compiled for; it checks the slice lengths.
        return unsafe { vnni::quantize_rows(x, k, q, kp, scale, zero) };
    }
    quantize_rows(x, k, q, kp, scale, zero)
}

/// The step and zero point of a row whose range is [l, h] (l ≤ 0 ≤ h) and whose non-finite detector sums
/// to `bad`: `None` for a row to store as zeros, with its step (0 for an all-zero row, NaN for a row with a
/// non-finite value, so that the product's row is NaN as in f32).
#[inline(always)]
fn row_step(l: f32, h: f32, bad: f32) -> std::result::Result<(f32, f32), f32> {
    let step = (h - l) / 255.0;
    if !(bad == 0.0 && step > 0.0) {
        return Err(if bad == 0.0 { 0.0 } else { f32::NAN });
    }
    Ok((step, round_small(-l * (1.0 / step)).clamp(0.0, 255.0)))
}

simd! {
    /// Quantizes rows of `x` (width `k`) into `q` (width `kp`, padding zeroed), with each row's step and
    /// zero point.
    fn quantize_rows(x: &[f32], k: usize, q: &mut [u8], kp: usize, scale: &mut [f32], zero: &mut [i32]) {
        for (((xr, qr), s), z) in x.chunks_exact(k).zip(q.chunks_exact_mut(kp)).zip(scale.iter_mut()).zip(zero.iter_mut()) {
            // min, max and a NaN detector (x·0 is NaN exactly for non-finite x), 16 lanes each.
            let (mut lo, mut hi, mut nan) = ([0.0f32; 16], [0.0f32; 16], [0.0f32; 16]);
            let mut chunks = xr.chunks_exact(16);
            for c in &mut chunks {
                for i in 0..16 {
                    lo[i] = if c[i] < lo[i] { c[i] } else { lo[i] };
                    hi[i] = if c[i] > hi[i] { c[i] } else { hi[i] };
                    nan[i] += c[i] * 0.0;
                }
            }
            let (mut l, mut h, mut bad) = (0.0f32, 0.0f32, 0.0f32);
            for &v in chunks.remainder() {
                l = if v < l { v } else { l };
                h = if v > h { v } else { h };
                bad += v * 0.0;
            }
            for i in 0..16 {
                l = if lo[i] < l { lo[i] } else { l };
                h = if hi[i] > h { hi[i] } else { h };
                bad += nan[i];
            }
            let (step, zp) = match row_step(l, h, bad) {
                Ok(sz) => sz,
                Err(empty) => {
                    // All zeros (an exact zero product), or a non-finite value (a NaN row, as f32 would give).
                    qr.fill(0);
                    (*s, *z) = (empty, 0);
                    continue;
                }
            };
            let inv = 1.0 / step;
            for (o, &v) in qr[..k].iter_mut().zip(xr) {
                *o = round_small(v * inv + zp).clamp(0.0, 255.0) as u8;
            }
            qr[k..].fill(0);
            *s = step;
            *z = zp as i32;
        }
    }
}

/// Output rows written through a raw pointer: pieces running in parallel write disjoint rectangles of
/// one row-major matrix, which slices cannot express for column blocks.
#[derive(Clone, Copy)]
struct OutPtr {
    ptr: *mut f32,
    /// Row stride (= columns).
    ld: usize,
    /// Rows the matrix has.
    rows: usize,
}

// SAFETY: an `OutPtr` is only made in `qgemm_with` from a `&mut [f32]` borrowed for the whole product, and
// the pieces that share it (`run`) write disjoint (row range × column range) rectangles of it.
unsafe impl Send for OutPtr {}
// SAFETY: as above; no piece reads what another writes.
unsafe impl Sync for OutPtr {}

/// Everything a piece of one product needs.
#[derive(Clone, Copy)]
struct Job<'a> {
    x: &'a QuantizedRows,
    w: &'a QuantizedMatrix,
    bias: Option<&'a [f32]>,
    accumulate: bool,
    act: Option<Activation>,
    y: OutPtr,
    kernel: Kernel,
}

/// An activation [`qgemm`] applies in place to each stretch of output right after writing it (while it is
/// in L1), instead of in a pass of its own over the whole output.
pub type Activation = fn(&mut [f32]);

/// y (`rows × n`, row-major) ← act(x·Wᵀ dequantized (+ bias) (+ y when `accumulate`)), with the fastest
/// kernel this CPU runs.
pub fn qgemm(x: &QuantizedRows, w: &QuantizedMatrix, bias: Option<&[f32]>, accumulate: bool, act: Option<Activation>, y: &mut [f32]) {
    qgemm_with(Kernel::detect(), x, w, bias, accumulate, act, y)
}

/// [`qgemm`] with a given kernel. Panics if `Vnni` is asked for on a CPU without it, or if the shapes
/// disagree (callers size the buffers).
pub fn qgemm_with(kernel: Kernel, x: &QuantizedRows, w: &QuantizedMatrix, bias: Option<&[f32]>, accumulate: bool, act: Option<Activation>, y: &mut [f32]) {
    assert!(kernel == Kernel::Portable || Kernel::detect() == Kernel::Vnni, "this CPU has no AVX-512 VNNI");
    assert_eq!(x.kp, w.kp, "activations have {} inputs per row (padded), the weight {}", x.kp, w.kp);
    assert_eq!(y.len(), x.rows * w.n, "output has {} values, {} × {} expected", y.len(), x.rows, w.n);
    if let Some(b) = bias {
        assert_eq!(b.len(), w.n, "bias has {} values, {} expected", b.len(), w.n);
    }
    if x.rows == 0 || w.n == 0 {
        return;
    }
    let job = Job { x, w, bias, accumulate, act, y: OutPtr { ptr: y.as_mut_ptr(), ld: w.n, rows: x.rows }, kernel };
    let blocks = w.n.div_ceil(BLOCK);
    run(&job, 0..x.rows, 0..blocks, pieces_for(x.rows * w.n * w.kp));
}

/// Computes rows × blocks of the output in `pieces` parallel pieces, split along whichever of C's
/// dimensions is longer, as [`super::gemm`] does.
fn run(job: &Job, rows: Range<usize>, blocks: Range<usize>, pieces: usize) {
    let left = pieces / 2;
    // Cut at a multiple of `unit` where the length allows (whole micro-tiles on each side).
    let cut = |len: usize, unit: usize| ((len * left / pieces).div_ceil(unit) * unit).clamp(1, len - 1);
    if pieces <= 1 {
        compute(job, rows, blocks);
    } else if blocks.len() * BLOCK >= rows.len() && blocks.len() >= 2 {
        let mid = blocks.start + cut(blocks.len(), TILE_BLOCKS);
        rayon::join(|| run(job, rows.clone(), blocks.start..mid, left), || run(job, rows.clone(), mid..blocks.end, pieces - left));
    } else if rows.len() >= 2 {
        let mid = rows.start + cut(rows.len(), TILE_ROWS);
        rayon::join(|| run(job, rows.start..mid, blocks.clone(), left), || run(job, mid..rows.end, blocks.clone(), pieces - left));
    } else {
        compute(job, rows, blocks);
    }
}

/// One piece on the calling thread: for each block of rows (kept in L2), each panel of up to 4 blocks of
/// channels, each run of up to 6 rows, one micro-tile.
fn compute(job: &Job, rows: Range<usize>, blocks: Range<usize>) {
    for r0 in rows.clone().step_by(ROW_BLOCK) {
        let r_end = (r0 + ROW_BLOCK).min(rows.end);
        for b0 in blocks.clone().step_by(TILE_BLOCKS) {
            let nb = TILE_BLOCKS.min(blocks.end - b0);
            for r in (r0..r_end).step_by(TILE_ROWS) {
                let nr = TILE_ROWS.min(r_end - r);
                match job.kernel {
                    Kernel::Vnni => vnni::tile(job, r, nr, b0, nb),
                    Kernel::Portable => portable_tile(job, r, nr, b0, nb),
                }
                if let Some(act) = job.act {
                    let (c0, c1) = (b0 * BLOCK, ((b0 + nb) * BLOCK).min(job.w.n));
                    for i in r..r + nr {
                        debug_assert!(i < job.y.rows);
                        // SAFETY: row i, columns c0..c1 lie inside the output and inside this piece's
                        // rectangle, which no other piece touches (`OutPtr`); the tile just wrote them.
                        act(unsafe { std::slice::from_raw_parts_mut(job.y.ptr.add(i * job.y.ld + c0), c1 - c0) });
                    }
                }
            }
        }
    }
}

/// The f32 output of one element from its integer sum: (Σ q_x·q_w − z_r·Σ q_w)·(s_r·s_o) (+ bias) (+ y).
/// The VNNI epilogue does the same operations in the same order, so both kernels give the same bits.
#[inline(always)]
fn dequantize(acc: i32, z: i32, wsum: i32, s_r: f32, s_o: f32, bias: Option<f32>, old: Option<f32>) -> f32 {
    let mut v = (acc - z * wsum) as f32 * (s_r * s_o);
    if let Some(b) = bias {
        v += b;
    }
    if let Some(o) = old {
        v += o;
    }
    v
}

simd! {
    /// acc[c] += Σ_j a[j]·b[j / 4][c][j % 4] over one packed block (`b`) and one activation row (`a`).
    fn portable_block(a: &[u8], b: &[i8], acc: &mut [i32; 16]) {
        for (a4, b64) in a.chunks_exact(GROUP).zip(b.chunks_exact(GROUP_BYTES)) {
            for c in 0..BLOCK {
                let mut s = 0i32;
                for t in 0..GROUP {
                    s += a4[t] as i32 * b64[c * GROUP + t] as i32;
                }
                acc[c] += s;
            }
        }
    }
}

/// The portable kernel on rows `r..r + nr`, blocks `b0..b0 + nb`.
fn portable_tile(job: &Job, r: usize, nr: usize, b0: usize, nb: usize) {
    let (x, w) = (job.x, job.w);
    let block_bytes = w.kp / GROUP * GROUP_BYTES;
    for i in r..r + nr {
        let a = &x.data[i * x.kp..][..x.kp];
        for b in b0..b0 + nb {
            let mut acc = [0i32; BLOCK];
            portable_block(a, &w.packed[b * block_bytes..][..block_bytes], &mut acc);
            for (c, &sum) in acc.iter().enumerate().take(w.n - b * BLOCK) {
                let o = b * BLOCK + c;
                // SAFETY: (i, o) lies inside the output (i < rows, o < n = ld), and inside this piece's
                // rectangle, which no other piece writes (`OutPtr`).
                let dst = unsafe { &mut *job.y.ptr.add(i * job.y.ld + o) };
                debug_assert!(i < job.y.rows);
                let old = job.accumulate.then_some(*dst);
                *dst = dequantize(sum, x.zero[i], w.wsum[o], x.scale[i], w.scale[o], job.bias.map(|b| b[o]), old);
            }
        }
    }
}

// The AVX-512 intrinsics are stable since Rust 1.89, under the crate's rust-version (1.91).
#[cfg(target_arch = "x86_64")]
mod vnni {
    use super::{row_step, Job, BLOCK, GROUP, GROUP_BYTES};
    use std::arch::x86_64::*;

    /// [`super::quantize_rows`] 16 values at a time: the same min/max, step and zero point, the same
    /// product then sum (no fused multiply-add), and `vcvtps2dq`'s round to nearest even, which is what
    /// `round_small` computes; so the same bytes.
    ///
    /// Safety: the CPU has AVX-512 F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn quantize_rows(x: &[f32], k: usize, q: &mut [u8], kp: usize, scale: &mut [f32], zero: &mut [i32]) {
        let rows = scale.len().min(zero.len());
        assert!(k > 0 && kp >= k && x.len() >= rows * k && q.len() >= rows * kp, "quantize_rows: buffer sizes");
        let full = k / 16 * 16;
        // Lanes of the last partial vector (fewer than 16).
        let tail: __mmask16 = ((1u32 << (k - full)) - 1) as u16;
        for r in 0..rows {
            let xr = x.as_ptr().add(r * k);
            let (mut lo, mut hi, mut nan) = (_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps());
            let mut i = 0;
            while i < k {
                // Masked-off lanes read as 0, inside every row's range [min(x, 0), max(x, 0)].
                let v = if i < full { _mm512_loadu_ps(xr.add(i)) } else { _mm512_maskz_loadu_ps(tail, xr.add(i)) };
                lo = _mm512_min_ps(lo, v);
                hi = _mm512_max_ps(hi, v);
                nan = _mm512_add_ps(nan, _mm512_mul_ps(v, _mm512_setzero_ps()));
                i += 16;
            }
            let qr = &mut q[r * kp..(r + 1) * kp];
            let (step, zp) = match row_step(_mm512_reduce_min_ps(lo), _mm512_reduce_max_ps(hi), _mm512_reduce_add_ps(nan)) {
                Ok(sz) => sz,
                Err(empty) => {
                    qr.fill(0);
                    (scale[r], zero[r]) = (empty, 0);
                    continue;
                }
            };
            let (inv, zpv) = (_mm512_set1_ps(1.0 / step), _mm512_set1_ps(zp));
            let (byte_lo, byte_hi) = (_mm512_setzero_si512(), _mm512_set1_epi32(255));
            let out = qr.as_mut_ptr() as *mut i8;
            let mut i = 0;
            while i < k {
                let m = if i < full { 0xFFFF } else { tail };
                let v = _mm512_maskz_loadu_ps(m, xr.add(i));
                let t = _mm512_cvtps_epi32(_mm512_add_ps(_mm512_mul_ps(v, inv), zpv));
                _mm512_mask_cvtepi32_storeu_epi8(out.add(i), m, _mm512_min_epi32(_mm512_max_epi32(t, byte_lo), byte_hi));
                i += 16;
            }
            qr[k..].fill(0);
            (scale[r], zero[r]) = (step, zp as i32);
        }
    }

    /// The VNNI micro-tile on rows `r..r + nr` (nr ≤ 6), blocks `b0..b0 + nb` (nb ≤ 4): picks the
    /// instance compiled for that shape (the accumulators must be a fixed set of registers).
    pub(super) fn tile(job: &Job, r: usize, nr: usize, b0: usize, nb: usize) {
        macro_rules! by_blocks {
            ($rows:literal) => {
                match nb {
                    1 => tile_n::<$rows, 1>(job, r, b0),
                    2 => tile_n::<$rows, 2>(job, r, b0),
                    3 => tile_n::<$rows, 3>(job, r, b0),
                    _ => tile_n::<$rows, 4>(job, r, b0),
                }
            };
        }
        debug_assert!((1..=6).contains(&nr) && (1..=4).contains(&nb));
        match nr {
            1 => by_blocks!(1),
            2 => by_blocks!(2),
            3 => by_blocks!(3),
            4 => by_blocks!(4),
            5 => by_blocks!(5),
            _ => by_blocks!(6),
        }
    }

    fn tile_n<const R: usize, const V: usize>(job: &Job, r: usize, b0: usize) {
        assert!(r + R <= job.x.rows && (b0 + V) * BLOCK <= job.w.scale.len());
        // SAFETY: `qgemm_with` checked that the CPU has AVX-512 F and VNNI before choosing this kernel;
        // the bounds just asserted are the ones `tile_unchecked` reads and writes within.
        unsafe { tile_unchecked::<R, V>(job, r, b0) }
    }

    /// R rows × V blocks: for each group of 4 k, V loads of W, R broadcasts of 4 activation bytes, R·V
    /// `vpdpbusd`; then the epilogue of [`super::dequantize`], vector-wide.
    ///
    /// Safety: the CPU has AVX-512 F and VNNI; rows `r..r + R` exist in `job.x`, blocks `b0..b0 + V` in
    /// `job.w`, and this piece owns those rows × the blocks' columns (below n) of the output.
    #[target_feature(enable = "avx512f,avx512vnni")]
    unsafe fn tile_unchecked<const R: usize, const V: usize>(job: &Job, r: usize, b0: usize) {
        let (x, w) = (job.x, job.w);
        let groups = w.kp / GROUP;
        let a = x.data.as_ptr().add(r * x.kp);
        let b = w.packed.as_ptr().add(b0 * groups * GROUP_BYTES);
        let mut acc = [[_mm512_setzero_si512(); V]; R];
        for g in 0..groups {
            let mut wv = [_mm512_setzero_si512(); V];
            for (v, wv) in wv.iter_mut().enumerate() {
                *wv = _mm512_loadu_si512(b.add((v * groups + g) * GROUP_BYTES) as *const __m512i);
            }
            for (i, acc) in acc.iter_mut().enumerate() {
                let xv = _mm512_set1_epi32((a.add(i * x.kp + g * GROUP) as *const i32).read_unaligned());
                for v in 0..V {
                    acc[v] = _mm512_dpbusd_epi32(acc[v], xv, wv[v]);
                }
            }
        }
        for (i, acc) in acc.iter().enumerate() {
            let row = r + i;
            let z = _mm512_set1_epi32(x.zero[row]);
            let s_r = _mm512_set1_ps(x.scale[row]);
            for (v, &acc) in acc.iter().enumerate() {
                let col = (b0 + v) * BLOCK;
                let mask: __mmask16 = if w.n - col >= BLOCK { 0xFFFF } else { (1u16 << (w.n - col)) - 1 };
                let wsum = _mm512_loadu_si512(w.wsum.as_ptr().add(col) as *const __m512i);
                let sums = _mm512_sub_epi32(acc, _mm512_mullo_epi32(z, wsum));
                let s = _mm512_mul_ps(s_r, _mm512_loadu_ps(w.scale.as_ptr().add(col)));
                let mut out = _mm512_mul_ps(_mm512_cvtepi32_ps(sums), s);
                if let Some(bias) = job.bias {
                    out = _mm512_add_ps(out, _mm512_maskz_loadu_ps(mask, bias.as_ptr().add(col)));
                }
                let dst = job.y.ptr.add(row * job.y.ld + col);
                if job.accumulate {
                    out = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, dst), out);
                }
                _mm512_mask_storeu_ps(dst, mask, out);
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod vnni {
    use super::Job;

    /// Never chosen off x86-64 (`Kernel::detect` says `Portable`).
    pub(super) fn tile(job: &Job, r: usize, nr: usize, b0: usize, nb: usize) {
        super::portable_tile(job, r, nr, b0, nb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn random(rng: &mut Rng, len: usize, std: f64) -> Vec<f32> {
        (0..len).map(|_| (rng.normal() * std) as f32).collect()
    }

    /// The kernels this CPU runs.
    fn kernels() -> Vec<Kernel> {
        match Kernel::detect() {
            Kernel::Vnni => vec![Kernel::Vnni, Kernel::Portable],
            Kernel::Portable => {
                eprintln!("note: this CPU has no AVX-512 VNNI; only the portable kernel is tested");
                vec![Kernel::Portable]
            }
        }
    }

    /// The product recomputed from the quantized values: the integer sum in f64 (exact at these sizes),
    /// then the same f32 epilogue.
    fn reference(x: &QuantizedRows, w: &QuantizedMatrix, bias: Option<&[f32]>, old: Option<&[f32]>) -> Vec<f32> {
        let (m, n, k) = (x.rows, w.n, w.k);
        let mut y = vec![0.0f32; m * n];
        for i in 0..m {
            for o in 0..n {
                let z = x.zero[i] as f64;
                let exact: f64 = (0..k).map(|j| (x.data[i * x.kp + j] as f64 - z) * w.q(o, j) as f64).sum();
                let wsum: i64 = (0..k).map(|j| w.q(o, j) as i64).sum();
                assert_eq!(wsum, w.wsum[o] as i64, "Σ q_w of channel {o}");
                let v = exact as i32 as f32 * (x.scale[i] * w.scale[o]);
                let v = if let Some(b) = bias { v + b[o] } else { v };
                y[i * n + o] = if let Some(old) = old { old[i * n + o] + v } else { v };
            }
        }
        y
    }

    /// The AVX-512 quantization gives the bytes, steps and zero points of the loop it replaces: row lengths
    /// off 16, one-signed, mixed, tiny and all-zero rows, a NaN and an infinite row.
    #[test]
    fn vector_quantization_matches_the_loop() {
        if !std::is_x86_feature_detected!("avx512f") {
            eprintln!("note: this CPU has no AVX-512; only the loop is used");
            return;
        }
        let mut rng = Rng::new(23);
        for k in [1, 5, 16, 17, 768, 3071] {
            let rows = 9;
            let mut x = random(&mut rng, rows * k, 2.0);
            x[k..2 * k].iter_mut().for_each(|v| *v = v.abs());
            x[2 * k..3 * k].iter_mut().for_each(|v| *v = -v.abs() * 1e-30);
            x[3 * k..4 * k].fill(0.0);
            x[4 * k + k / 2] = f32::NAN;
            x[5 * k] = f32::INFINITY;
            let kp = k.next_multiple_of(GROUP);
            let (mut q1, mut q2) = (vec![7u8; rows * kp], vec![9u8; rows * kp]);
            let (mut s1, mut s2) = (vec![0.0f32; rows], vec![0.0f32; rows]);
            let (mut z1, mut z2) = (vec![0i32; rows], vec![0i32; rows]);
            quantize_rows(&x, k, &mut q1, kp, &mut s1, &mut z1);
            // SAFETY: checked above that the CPU has AVX-512 F.
            unsafe { vnni::quantize_rows(&x, k, &mut q2, kp, &mut s2, &mut z2) };
            assert_eq!(q1, q2, "k {k}: bytes");
            assert_eq!(z1, z2, "k {k}: zero points");
            assert_eq!(s1.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), s2.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "k {k}: steps");
        }
    }

    /// Both kernels give exactly the recomputed product, with and without bias and accumulation, for shapes
    /// off every block size (rows not a multiple of 6 or 96, channels not of 16 or 64, k not of 4) and k up
    /// to 3072; the product is also close to the f64 product of the unquantized matrices.
    #[test]
    fn kernels_match_the_quantized_product_exactly() {
        let mut rng = Rng::new(17);
        for (m, n, k) in [(1, 1, 1), (7, 17, 5), (13, 70, 33), (101, 130, 768), (5, 48, 3072), (200, 33, 3071)] {
            let x = random(&mut rng, m * k, 1.0);
            let wf = random(&mut rng, n * k, 0.02);
            let bias = random(&mut rng, n, 0.1);
            let old = random(&mut rng, m * n, 1.0);
            let w = QuantizedMatrix::quantize(&wf, n, k).unwrap();
            let mut q = QuantizedRows::default();
            q.quantize(&x, m, k);
            for (b, accumulate) in [(None, false), (Some(&bias[..]), false), (Some(&bias[..]), true)] {
                let want = reference(&q, &w, b, accumulate.then_some(&old[..]));
                for kernel in kernels() {
                    let mut y = if accumulate { old.clone() } else { vec![f32::NAN; m * n] };
                    qgemm_with(kernel, &q, &w, b, accumulate, None, &mut y);
                    for (i, (g, r)) in y.iter().zip(&want).enumerate() {
                        assert_eq!(g.to_bits(), r.to_bits(), "{kernel:?} {m}×{n}×{k} bias={} acc={accumulate} at {i}: {g} vs {r}", b.is_some());
                    }
                    // A fused activation reaches every element exactly once (applied twice, or not at all,
                    // this affine map gives other bits).
                    let mut y = if accumulate { old.clone() } else { vec![f32::NAN; m * n] };
                    qgemm_with(kernel, &q, &w, b, accumulate, Some(|s| s.iter_mut().for_each(|v| *v = *v * 2.0 + 1.0)), &mut y);
                    for (i, (g, r)) in y.iter().zip(&want).enumerate() {
                        assert_eq!(g.to_bits(), (r * 2.0 + 1.0).to_bits(), "{kernel:?} {m}×{n}×{k} with activation at {i}");
                    }
                }
                // Quantization error: each product term is off by at most about half a step of either
                // factor, so the error is a small fraction of the sum of |x|·|w|.
                for i in 0..m {
                    for o in 0..n {
                        let (xr, wr) = (&x[i * k..][..k], &wf[o * k..][..k]);
                        let exact: f64 = xr.iter().zip(wr).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>() + b.map_or(0.0, |b| b[o] as f64);
                        let exact = exact + if accumulate { old[i * n + o] as f64 } else { 0.0 };
                        let mass: f64 = xr.iter().zip(wr).map(|(a, b)| (*a as f64 * *b as f64).abs()).sum();
                        let err = (want[i * n + o] as f64 - exact).abs();
                        assert!(err <= 0.02 * mass + 1e-6, "{m}×{n}×{k} ({i}, {o}): error {err} of mass {mass}");
                    }
                }
            }
        }
    }

    /// Every piece count gives the same bits (the split is along the output only).
    #[test]
    fn split_products_do_not_depend_on_the_piece_count() {
        let (m, n, k) = (150, 300, 96);
        let mut rng = Rng::new(5);
        let w = QuantizedMatrix::quantize(&random(&mut rng, n * k, 0.05), n, k).unwrap();
        let mut q = QuantizedRows::default();
        q.quantize(&random(&mut rng, m * k, 1.0), m, k);
        for kernel in kernels() {
            let mut first = vec![0.0f32; m * n];
            let job = Job { x: &q, w: &w, bias: None, accumulate: false, act: None, y: OutPtr { ptr: first.as_mut_ptr(), ld: n, rows: m }, kernel };
            run(&job, 0..m, 0..n.div_ceil(BLOCK), 1);
            for pieces in 2..=7 {
                let mut y = vec![f32::NAN; m * n];
                let job = Job { y: OutPtr { ptr: y.as_mut_ptr(), ld: n, rows: m }, ..job };
                run(&job, 0..m, 0..n.div_ceil(BLOCK), pieces);
                assert!(y.iter().zip(&first).all(|(a, b)| a.to_bits() == b.to_bits()), "{kernel:?}: {pieces} pieces differ from 1");
            }
        }
    }

    /// Activation rows: each value within half a step of its dequantized value, zero exactly
    /// representable, a zero row an exact zero product, a row with a non-finite value a NaN row.
    #[test]
    fn rows_quantize_within_half_a_step() {
        let (k, mut rng) = (37, Rng::new(9));
        let mut x = random(&mut rng, 4 * k, 2.0);
        x[k..2 * k].iter_mut().for_each(|v| *v = v.abs() + 1.0); // one-signed
        x[2 * k..3 * k].fill(0.0);
        x[3 * k + 5] = f32::INFINITY;
        let mut q = QuantizedRows::default();
        q.quantize(&x, 4, k);
        assert_eq!(q.kp, 40);
        for r in 0..2 {
            let (s, z) = (q.scale[r], q.zero[r]);
            assert!(s > 0.0 && (0..=255).contains(&z));
            for j in 0..k {
                let back = s * (q.data[r * q.kp + j] as i32 - z) as f32;
                assert!((back - x[r * k + j]).abs() <= 0.5001 * s, "row {r} col {j}: {back} vs {}", x[r * k + j]);
            }
            assert!(q.data[r * q.kp + k..(r + 1) * q.kp].iter().all(|&b| b == 0), "padding");
        }
        assert_eq!((q.scale[2], q.zero[2]), (0.0, 0));
        assert!(q.scale[3].is_nan());
        let w = QuantizedMatrix::quantize(&random(&mut rng, 3 * k, 0.1), 3, k).unwrap();
        for kernel in kernels() {
            let mut y = vec![1.0f32; 4 * 3];
            qgemm_with(kernel, &q, &w, None, false, None, &mut y);
            assert!(y[6..9].iter().all(|&v| v == 0.0), "{kernel:?}: zero row gives {:?}", &y[6..9]);
            assert!(y[9..12].iter().all(|v| v.is_nan()), "{kernel:?}: non-finite row gives {:?}", &y[9..12]);
        }
    }

    #[test]
    fn bad_weights_are_errors() {
        assert!(QuantizedMatrix::quantize(&[1.0, f32::NAN], 1, 2).is_err());
        assert!(QuantizedMatrix::quantize(&[1.0; 3], 2, 2).is_err());
        assert!(QuantizedMatrix::quantize(&vec![0.0; MAX_K + 1], 1, MAX_K + 1).is_err());
        // A zero channel quantizes to zeros with scale 0.
        let w = QuantizedMatrix::quantize(&[0.0, 0.0, 1.0, -0.5], 2, 2).unwrap();
        assert_eq!((w.scale[0], w.q(0, 0), w.q(1, 0), w.q(1, 1)), (0.0, 0, 127, -64));
    }
}
