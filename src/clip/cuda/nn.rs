//! Launch wrappers for `kernels/nn.cu`: the CLIP towers' non-GEMM steps on CUDA.
//!
//! Every wrapper checks its buffers' lengths against the shapes it is given before launching (a short
//! buffer is an `InvalidArgument`, never an out-of-bounds access) and only queues work on the device's
//! stream; nothing is synchronised or copied back. f16 tensors are `GpuBuf<half::f16>` (bit-compatible
//! with the kernels' raw 16-bit storage). Layouts are those of the CPU engine: row-major
//! `[tokens, features]`, QKV from one product as `[q | k | v]` columns, head `h` at columns `h·hd`.

use crate::device::cuda::{i32_of, Gpu, GpuBuf, KArg, KernelFile};
use crate::error::{Error, Result};
use half::f16;

pub static NN: KernelFile = KernelFile { name: "nn", source: include_str!("../../../kernels/nn.cu") };
pub(crate) const THREADS: u32 = 256;
/// Query rows per attention block (ATT_WARPS in the kernel) and the largest head dimension it takes.
const ATT_WARPS: usize = 4;
const ATT_MAX_HD: usize = 128;

/// The MLP activation (transformers `hidden_act`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NnActivation {
    /// x · sigmoid(1.702 x) (`quick_gelu`, OpenAI CLIP).
    QuickGelu = 0,
    /// ½ x (1 + erf(x/√2)) (`gelu`, exact).
    Gelu = 1,
}

/// A buffer shorter than the shapes need is an `InvalidArgument`, never an out-of-bounds access.
pub(super) fn need<T>(buf: &GpuBuf<T>, len: usize, what: &str) -> Result<()> {
    if buf.len() < len {
        return Err(Error::InvalidArgument(format!("{what}: device buffer holds {} elements, {len} needed", buf.len())));
    }
    Ok(())
}

fn count(dims: &[usize], what: &str) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |a, &b| a.checked_mul(b))
        .filter(|&n| n > 0)
        .ok_or_else(|| Error::InvalidArgument(format!("{what}: shape {dims:?} is empty or overflows")))
}

/// Blocks of [`THREADS`] covering `n` elements, one per thread (shared with the CLIP towers).
pub(crate) fn grid_for(n: usize, what: &str) -> Result<(u32, u32, u32)> {
    let blocks = u32::try_from(n.div_ceil(THREADS as usize))
        .map_err(|_| Error::InvalidArgument(format!("{what}: {n} elements exceed one CUDA grid")))?;
    Ok((blocks, 1, 1))
}

fn rows_grid(rows: usize, what: &str) -> Result<(u32, u32, u32)> {
    let r = u32::try_from(rows).map_err(|_| Error::InvalidArgument(format!("{what}: {rows} rows exceed one CUDA grid")))?;
    Ok((r, 1, 1))
}

/// Planar f32 pixels `[b, 3, h, w]` → f16 patch rows `[b·(h/p)·(w/p), 3·p·p]` (column order of the
/// patch-embedding weight `[d, 3, p, p]` flattened), so the patch embedding is one GEMM.
pub(crate) fn patches_im2col(gpu: &dyn Gpu, pixels: &GpuBuf<f32>, b: usize, h: usize, w: usize, p: usize, out: &mut GpuBuf<f16>) -> Result<()> {
    if p == 0 || h % p != 0 || w % p != 0 {
        return Err(Error::InvalidArgument(format!("image {h}×{w} is not a whole number of {p}×{p} patches")));
    }
    need(pixels, count(&[b, 3, h, w], "pixels")?, "patches_im2col input")?;
    let total = count(&[b, h / p, w / p, 3, p, p], "patches")?;
    need(out, total, "patches_im2col output")?;
    let args = [pixels.arg(), KArg::I32(i32_of(b, "batch")?), KArg::I32(i32_of(h, "height")?), KArg::I32(i32_of(w, "width")?), KArg::I32(i32_of(p, "patch")?), out.arg()];
    gpu.launch(&NN, "patches_im2col", grid_for(total, "patches")?, THREADS, 0, &args)
}

#[allow(clippy::too_many_arguments)]
/// Class token + patch embeddings + position embeddings → the residual stream `[b·(1+np), d]` f32.
pub(crate) fn vision_tokens(gpu: &dyn Gpu, patch_emb: &GpuBuf<f32>, cls: &GpuBuf<f32>, pos: &GpuBuf<f32>, b: usize, np: usize, d: usize, out: &mut GpuBuf<f32>) -> Result<()> {
    need(patch_emb, count(&[b, np, d], "patch embeddings")?, "vision_tokens patch embeddings")?;
    need(cls, d, "class embedding")?;
    need(pos, count(&[np + 1, d], "position embeddings")?, "position embeddings")?;
    let total = count(&[b, np + 1, d], "tokens")?;
    need(out, total, "vision_tokens output")?;
    let args = [patch_emb.arg(), cls.arg(), pos.arg(), KArg::I32(i32_of(b, "batch")?), KArg::I32(i32_of(np, "patches")?), KArg::I32(i32_of(d, "width")?), out.arg()];
    gpu.launch(&NN, "vision_tokens", grid_for(total, "tokens")?, THREADS, 0, &args)
}

/// LayerNorm of `rows` rows of width `d` into f32 and/or f16 outputs (at least one).
#[allow(clippy::too_many_arguments)]
pub(crate) fn layer_norm(
    gpu: &dyn Gpu,
    x: &GpuBuf<f32>,
    rows: usize,
    d: usize,
    gamma: &GpuBuf<f32>,
    beta: &GpuBuf<f32>,
    eps: f32,
    out32: Option<&mut GpuBuf<f32>>,
    out16: Option<&mut GpuBuf<f16>>,
) -> Result<()> {
    let n = count(&[rows, d], "layer_norm")?;
    need(x, n, "layer_norm input")?;
    need(gamma, d, "layer_norm weight")?;
    need(beta, d, "layer_norm bias")?;
    if out32.is_none() && out16.is_none() {
        return Err(Error::InvalidArgument("layer_norm needs an f32 or an f16 output".into()));
    }
    let p32 = match out32 {
        Some(o) => {
            need(o, n, "layer_norm f32 output")?;
            o.ptr()
        }
        None => 0,
    };
    let p16 = match out16 {
        Some(o) => {
            need(o, n, "layer_norm f16 output")?;
            o.ptr()
        }
        None => 0,
    };
    let args = [x.arg(), KArg::I32(i32_of(d, "width")?), gamma.arg(), beta.arg(), KArg::F32(eps), KArg::Ptr(p32), KArg::Ptr(p16)];
    gpu.launch(&NN, "layer_norm", rows_grid(rows, "layer_norm")?, THREADS, 0, &args)
}

/// `out = act(x + bias)` in f16, x a GEMM's f32 output `[rows, n]` (bias and activation optional).
pub(crate) fn bias_act_to_f16(gpu: &dyn Gpu, x: &GpuBuf<f32>, bias: Option<&GpuBuf<f32>>, rows: usize, n: usize, act: Option<NnActivation>, out: &mut GpuBuf<f16>) -> Result<()> {
    let total = count(&[rows, n], "bias_act")?;
    need(x, total, "bias_act input")?;
    need(out, total, "bias_act output")?;
    if let Some(b) = bias {
        need(b, n, "bias")?;
    }
    let args = [
        x.arg(),
        KArg::Ptr(bias.map_or(0, |b| b.ptr())),
        KArg::I64(rows as i64),
        KArg::I32(i32_of(n, "width")?),
        KArg::I32(act.map_or(-1, |a| a as i32)),
        out.arg(),
    ];
    gpu.launch(&NN, "bias_act_to_f16", grid_for(total, "bias_act")?, THREADS, 0, &args)
}

/// `resid += x + bias` (f32 `[rows, n]`).
pub(crate) fn bias_residual(gpu: &dyn Gpu, x: &GpuBuf<f32>, bias: Option<&GpuBuf<f32>>, rows: usize, n: usize, resid: &mut GpuBuf<f32>) -> Result<()> {
    let total = count(&[rows, n], "bias_residual")?;
    need(x, total, "bias_residual input")?;
    need(resid, total, "residual stream")?;
    if let Some(b) = bias {
        need(b, n, "bias")?;
    }
    let args = [x.arg(), KArg::Ptr(bias.map_or(0, |b| b.ptr())), KArg::I64(rows as i64), KArg::I32(i32_of(n, "width")?), resid.arg()];
    gpu.launch(&NN, "bias_residual", grid_for(total, "bias_residual")?, THREADS, 0, &args)
}

/// Row softmax of f32 scores `[rows, n]` into f16 probabilities `out` (one warp per row); `causal` gives
/// row r's keys after position r % n probability 0. The middle step of a GEMM-based attention.
pub(crate) fn softmax_rows_to_f16(gpu: &dyn Gpu, x: &GpuBuf<f32>, rows: usize, n: usize, causal: bool, out: &mut GpuBuf<f16>) -> Result<()> {
    let total = count(&[rows, n], "softmax")?;
    need(x, total, "softmax input")?;
    need(out, total, "softmax output")?;
    let rows_per_block = THREADS as usize / 32;
    let blocks = u32::try_from(rows.div_ceil(rows_per_block)).map_err(|_| Error::InvalidArgument(format!("softmax: {rows} rows exceed one CUDA grid")))?;
    let args = [x.arg(), KArg::I64(rows as i64), KArg::I32(i32_of(n, "width")?), KArg::I32(causal as i32), out.arg()];
    gpu.launch(&NN, "softmax_rows_to_f16", (blocks, 1, 1), THREADS, 0, &args)
}

/// Fused multi-head attention: `qkv` `[b·seq, 3·heads·hd]` f16 → `out` `[b·seq, heads·hd]` f16,
/// softmax(Q Kᵀ / √hd (+ causal mask)) V per item and head (transformers `CLIPAttention.forward`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention(gpu: &dyn Gpu, qkv: &GpuBuf<f16>, b: usize, seq: usize, heads: usize, hd: usize, causal: bool, out: &mut GpuBuf<f16>) -> Result<()> {
    if hd == 0 || hd > ATT_MAX_HD {
        return Err(Error::InvalidArgument(format!("attention head dimension {hd} must be in 1..={ATT_MAX_HD}")));
    }
    let d = heads * hd;
    need(qkv, count(&[b, seq, 3 * d], "qkv")?, "attention qkv")?;
    need(out, count(&[b, seq, d], "attention output")?, "attention output")?;
    let gx = u32::try_from(b * heads).map_err(|_| Error::InvalidArgument("attention: batch·heads too large".into()))?;
    let gy = u32::try_from(seq.div_ceil(ATT_WARPS)).map_err(|_| Error::InvalidArgument("attention: sequence too long".into()))?;
    let scale = (hd as f32).powf(-0.5);
    let args = [
        qkv.arg(),
        KArg::I32(i32_of(seq, "sequence")?),
        KArg::I32(i32_of(heads, "heads")?),
        KArg::I32(i32_of(hd, "head dim")?),
        KArg::I32(causal as i32),
        KArg::F32(scale),
        out.arg(),
    ];
    gpu.launch(&NN, "attention_fused", (gx, gy, 1), (32 * ATT_WARPS) as u32, 0, &args)
}
