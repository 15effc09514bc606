//! CPU building blocks of the CLIP towers: linear layers, LayerNorm, the two activations, and fused
//! multi-head attention. Each mirrors the transformers module named in its doc comment.
//!
//! Layout: activations are row-major `[tokens, features]` f32 slices, tokens of all images/texts of a
//! batch stacked, so every linear layer is ONE big [`gemm`] (the crate's single GEMM path). Elementwise
//! kernels are compiled twice — generic and with AVX-512 — and picked at run time (`linalg::rows::simd!`), since the
//! crate is built for baseline x86-64. Buffers are owned by the caller (the tower's per-forward
//! [`Workspace`](super::encoder::Workspace)): nothing here allocates per token.
//!
//! A CUDA backend later mirrors these functions one for one (same shapes and fusions: bias+activation,
//! bias+residual, QKV in one product, attention per (item, head)), with the weights uploaded once.

use super::config::Activation;
use crate::error::Result;
use crate::invalid_arg;
use crate::linalg::exp::exp_f32;
use crate::linalg::qgemm::{qgemm, QuantizedMatrix, QuantizedRows};
use crate::linalg::rows::simd;
use crate::linalg::{gemm, Trans};
use rayon::prelude::*;


/// Rows per rayon task for elementwise work: large enough to amortise scheduling.
const ROWS_PER_TASK: usize = 16;

// ---------------------------------------------------------------------------------------------------
// Scalar math, written branch-free so that loops over it vectorise.

/// erfc(a) for a ≥ 0 with relative error < 1.2e-7 everywhere (Numerical Recipes `erfcc`, a Chebyshev
/// fit): relative accuracy matters because GELU of negative inputs is ½·x·erfc(|x|/√2), a small number.
#[inline(always)]
fn erfc_pos(a: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.5 * a);
    let p = -1.265_512_2
        + t * (1.000_023_7
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06 + t * (0.278_868_07 + t * (-1.135_204 + t * (1.488_515_9 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    t * exp_f32(-a * a + p)
}

/// transformers `QuickGELUActivation`: x · sigmoid(1.702 x).
#[inline(always)]
pub(crate) fn quick_gelu(x: f32) -> f32 {
    x / (1.0 + exp_f32(-1.702 * x))
}

/// transformers `GELUActivation` (torch `gelu`, exact): ½ x (1 + erf(x / √2)), written with erfc so that
/// neither sign loses precision to cancellation.
#[inline(always)]
pub(crate) fn gelu(x: f32) -> f32 {
    let c = erfc_pos(x.abs() * std::f32::consts::FRAC_1_SQRT_2);
    let one_plus_erf = if x < 0.0 { c } else { 2.0 - c };
    0.5 * x * one_plus_erf
}

/// Sum with 16 independent accumulators (vectorises; strict left-to-right order would not).
#[inline(always)]
fn sum16(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for i in 0..16 {
            acc[i] += c[i];
        }
    }
    let mut s: f32 = chunks.remainder().iter().sum();
    for a in acc {
        s += a;
    }
    s
}

/// Sum of squared deviations from `mean`, 16 accumulators.
#[inline(always)]
fn sq_dev16(x: &[f32], mean: f32) -> f32 {
    let mut acc = [0.0f32; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for i in 0..16 {
            let d = c[i] - mean;
            acc[i] += d * d;
        }
    }
    let mut s: f32 = chunks.remainder().iter().map(|v| (v - mean) * (v - mean)).sum();
    for a in acc {
        s += a;
    }
    s
}

#[inline(always)]
fn max16(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for i in 0..16 {
            acc[i] = if c[i] > acc[i] { c[i] } else { acc[i] };
        }
    }
    let mut m = chunks.remainder().iter().fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
    for a in acc {
        m = if a > m { a } else { m };
    }
    m
}

// ---------------------------------------------------------------------------------------------------
// Elementwise kernels (one row block each; callers parallelise over rows).

simd! {
    /// rows of `x` (width `d`) → LayerNorm into `out` (same shape).
    fn layer_norm_rows(x: &[f32], out: &mut [f32], d: usize, gamma: &[f32], beta: &[f32], eps: f32) {
        for (xr, yr) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            let mean = sum16(xr) / d as f32;
            let var = sq_dev16(xr, mean) / d as f32;
            let rstd = 1.0 / (var + eps).sqrt();
            for i in 0..d {
                yr[i] = (xr[i] - mean) * rstd * gamma[i] + beta[i];
            }
        }
    }
}

simd! {
    /// y ← y + bias, row by row (width `bias.len()`).
    fn add_bias_rows(y: &mut [f32], bias: &[f32]) {
        let d = bias.len();
        for row in y.chunks_exact_mut(d) {
            for i in 0..d {
                row[i] += bias[i];
            }
        }
    }
}

simd! {
    /// y ← quick_gelu(y + bias), row by row.
    fn bias_quick_gelu_rows(y: &mut [f32], bias: &[f32]) {
        let d = bias.len();
        for row in y.chunks_exact_mut(d) {
            for i in 0..d {
                row[i] = quick_gelu(row[i] + bias[i]);
            }
        }
    }
}

simd! {
    /// y ← quick_gelu(y).
    fn quick_gelu_in_place(y: &mut [f32]) {
        for v in y.iter_mut() {
            *v = quick_gelu(*v);
        }
    }
}

simd! {
    /// y ← gelu(y).
    fn gelu_in_place(y: &mut [f32]) {
        for v in y.iter_mut() {
            *v = gelu(*v);
        }
    }
}

simd! {
    /// y ← gelu(y + bias), row by row.
    fn bias_gelu_rows(y: &mut [f32], bias: &[f32]) {
        let d = bias.len();
        for row in y.chunks_exact_mut(d) {
            for i in 0..d {
                row[i] = gelu(row[i] + bias[i]);
            }
        }
    }
}

simd! {
    /// Softmax of each row of `s` (row stride `n`) over its first `valid(i)` entries, zeroing the rest:
    /// `causal` keeps j ≤ i (the text tower's causal mask), otherwise all n.
    fn softmax_rows(s: &mut [f32], n: usize, causal: bool) {
        if n <= 16 {
            // Short rows (text prompts): one 16-lane register's worth, padded with −∞ (whose exp is 0),
            // so every loop has a constant length and vectorises without a scalar tail.
            for (i, row) in s.chunks_exact_mut(n).enumerate() {
                let valid = if causal { i + 1 } else { n };
                let mut v = [f32::NEG_INFINITY; 16];
                v[..valid].copy_from_slice(&row[..valid]);
                let m = max16(&v);
                for x in v.iter_mut() {
                    *x = exp_f32(*x - m);
                }
                let inv = 1.0 / sum16(&v);
                for (o, x) in row.iter_mut().zip(v) {
                    *o = x * inv;
                }
            }
            return;
        }
        for (i, row) in s.chunks_exact_mut(n).enumerate() {
            let valid = if causal { i + 1 } else { n };
            let (live, masked) = row.split_at_mut(valid.min(n));
            let m = max16(live);
            for v in live.iter_mut() {
                *v = exp_f32(*v - m);
            }
            let inv = 1.0 / sum16(live);
            for v in live.iter_mut() {
                *v *= inv;
            }
            for v in masked.iter_mut() {
                *v = 0.0;
            }
        }
    }
}


/// Runs `f` on blocks of rows of `y` (width `d`) in parallel.
fn par_rows(y: &mut [f32], d: usize, f: impl Fn(&mut [f32]) + Sync + Send) {
    y.par_chunks_mut(d * ROWS_PER_TASK).for_each(f);
}

// ---------------------------------------------------------------------------------------------------
// Modules.

/// torch `nn.LayerNorm` over the last dimension.
pub struct LayerNorm {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub eps: f32,
}

impl LayerNorm {
    /// `out[r] = LN(x[r])` for `x.len() / d` rows.
    pub fn forward(&self, x: &[f32], out: &mut [f32]) {
        let d = self.gamma.len();
        debug_assert_eq!(x.len(), out.len());
        x.par_chunks(d * ROWS_PER_TASK)
            .zip(out.par_chunks_mut(d * ROWS_PER_TASK))
            .for_each(|(xb, yb)| layer_norm_rows(xb, yb, d, &self.gamma, &self.beta, self.eps));
    }
}

/// How a model's linear layers store their weights and multiply (chosen when the model is loaded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// f32 weights and products: the reference.
    #[default]
    F32,
    /// int8 weights (symmetric, per output channel) and activations (asymmetric, per token), products
    /// summed in i32 with AVX-512 VNNI when the CPU has it (`linalg::qgemm`): a quarter of the weight
    /// memory. Only the encoder layers' linear layers: attention, LayerNorm, the activations, the patch
    /// embedding and the final projections stay f32. CPU only.
    ///
    /// Accuracy (ViT-B/32, random weights): embeddings keep cosine ≥ 0.9998 to f32. What tells inputs apart
    /// is kept when inputs differ more than int8's noise (centred cosine ≥ 0.996 on noise images,
    /// `tests/clip_int8.rs`), not when they barely differ: on 60 consecutive video frames whose f32
    /// embeddings agree to 0.99999 it drops to 0.88, most of the loss from the MLP's two layers. Towers
    /// deeper than 12 layers (ViT-L/14's vision tower) keep their MLP's second layer (fc2) in f32, because
    /// the error adds up with depth (`encoder::INT8_FC2_MAX_LAYERS`; docs/clip_cpu.md).
    Int8,
}

impl std::str::FromStr for Precision {
    type Err = crate::Error;

    /// `f32` or `int8`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(Precision::F32),
            "int8" => Ok(Precision::Int8),
            _ => Err(invalid_arg!("unknown precision `{s}` (f32 or int8)")),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::Int8 => "int8",
        })
    }
}

/// The weight of a [`Linear`], in its model's [`Precision`].
pub enum Weight {
    /// `[out, in]` as in the checkpoint.
    F32(Vec<f32>),
    /// Quantized and packed for `qgemm` (the f32 weight is not kept).
    Int8(QuantizedMatrix),
}

/// torch `nn.Linear`: y = x Wᵀ + b with W stored `[out, in]` as in the checkpoint.
///
/// Every forward method takes a [`QuantizedRows`] workspace, which int8 layers quantize x into (f32 layers
/// leave it alone), so that steady-state calls allocate nothing in either precision.
pub struct Linear {
    pub weight: Weight,
    pub bias: Option<Vec<f32>>,
    pub in_dim: usize,
    pub out_dim: usize,
}

impl Linear {
    /// An f32 layer with W `[out_dim, in_dim]`.
    pub fn new(weight: Vec<f32>, bias: Option<Vec<f32>>, in_dim: usize, out_dim: usize) -> Self {
        debug_assert_eq!(weight.len(), in_dim * out_dim);
        Linear { weight: Weight::F32(weight), bias, in_dim, out_dim }
    }

    /// The layer in `precision`: `Int8` quantizes an f32 weight (and drops it); a layer already in
    /// `precision` is returned as it is. An int8 layer cannot become f32 again (an `InvalidArgument` error).
    pub fn into_precision(self, precision: Precision) -> Result<Self> {
        let weight = match (self.weight, precision) {
            (Weight::F32(w), Precision::Int8) => Weight::Int8(QuantizedMatrix::quantize(&w, self.out_dim, self.in_dim)?),
            (Weight::Int8(_), Precision::F32) => return Err(invalid_arg!("an int8 layer has no f32 weight to go back to")),
            (w, _) => w,
        };
        Ok(Linear { weight, ..self })
    }

    /// The f32 weight, if the layer has one (not in [`Precision::Int8`]).
    pub fn f32_weight(&self) -> Option<&[f32]> {
        match &self.weight {
            Weight::F32(w) => Some(w),
            Weight::Int8(_) => None,
        }
    }

    /// Bytes of the weight and bias.
    pub fn bytes(&self) -> usize {
        let w = match &self.weight {
            Weight::F32(w) => 4 * w.len(),
            Weight::Int8(q) => q.bytes(),
        };
        w + 4 * self.bias.as_ref().map_or(0, |b| b.len())
    }

    /// y (rows × out) ← x (rows × in) Wᵀ + b.
    pub fn forward(&self, x: &[f32], y: &mut [f32], q: &mut QuantizedRows) {
        self.affine(x, y, q, false)
    }

    /// y ← y + x Wᵀ + b: the residual connection fused into the product (β = 1).
    pub fn forward_residual(&self, x: &[f32], y: &mut [f32], q: &mut QuantizedRows) {
        self.affine(x, y, q, true)
    }

    /// y ← x Wᵀ + b, plus y's old value when `accumulate`.
    fn affine(&self, x: &[f32], y: &mut [f32], q: &mut QuantizedRows, accumulate: bool) {
        match &self.weight {
            Weight::F32(w) => {
                self.product(w, x, y, if accumulate { 1.0 } else { 0.0 });
                if let Some(b) = &self.bias {
                    par_rows(y, self.out_dim, |blk| add_bias_rows(blk, b));
                }
            }
            Weight::Int8(w) => self.quantized_product(w, x, y, accumulate, None, q),
        }
    }

    /// y ← act(x Wᵀ + b): transformers `CLIPMLP.fc1` followed by its activation, in one pass over y.
    pub fn forward_act(&self, x: &[f32], y: &mut [f32], act: Activation, q: &mut QuantizedRows) {
        match &self.weight {
            // int8: bias and activation fused into the product's output (the same operations, so the
            // same bits as the f32 path's separate pass).
            Weight::Int8(w) => {
                let act: fn(&mut [f32]) = match act {
                    Activation::QuickGelu => quick_gelu_in_place,
                    Activation::Gelu => gelu_in_place,
                };
                self.quantized_product(w, x, y, false, Some(act), q)
            }
            Weight::F32(w) => {
                self.product(w, x, y, 0.0);
                let zero;
                let b: &[f32] = match &self.bias {
                    Some(b) => b,
                    None => {
                        zero = vec![0.0; self.out_dim];
                        &zero
                    }
                };
                match act {
                    Activation::QuickGelu => par_rows(y, self.out_dim, |blk| bias_quick_gelu_rows(blk, b)),
                    Activation::Gelu => par_rows(y, self.out_dim, |blk| bias_gelu_rows(blk, b)),
                }
            }
        }
    }

    fn product(&self, w: &[f32], x: &[f32], y: &mut [f32], beta: f32) {
        let rows = x.len() / self.in_dim;
        debug_assert_eq!(x.len(), rows * self.in_dim);
        debug_assert_eq!(y.len(), rows * self.out_dim);
        gemm(rows, self.out_dim, self.in_dim, 1.0, x, self.in_dim, Trans::No, w, self.in_dim, Trans::Yes, beta, y, self.out_dim);
    }

    /// y ← x Wᵀ (+ bias) (+ y if `accumulate`) with x quantized into `q`.
    /// y ← act(x·Wᵀ + bias (+ y)) with the int8 weight `w`, x quantized into `q` first.
    fn quantized_product(&self, w: &QuantizedMatrix, x: &[f32], y: &mut [f32], accumulate: bool, act: Option<fn(&mut [f32])>, q: &mut QuantizedRows) {
        let rows = x.len() / self.in_dim;
        q.quantize(x, rows, self.in_dim);
        qgemm(q, w, self.bias.as_deref(), accumulate, act, y);
    }
}

/// How many `seq × seq` score matrices [`attention`] over `batch × heads` (item, head) tasks can use: two
/// runs of tasks per thread of the current pool (so that work stealing evens out uneven progress), at most
/// one per task.
pub fn attention_groups(batch: usize, heads: usize) -> usize {
    (2 * rayon::current_num_threads()).clamp(1, (batch * heads).max(1))
}

/// Scaled dot-product attention for every (item, head): mirrors transformers `eager_attention_forward`
/// (softmax(Q Kᵀ · head_dim^-½ + mask) V) with the mask being causal or none.
///
/// `qkv` is `[batch·seq, 3·d]` (Q | K | V from one fused projection); the result goes to `out`
/// `[batch·seq, d]` with heads concatenated as `attn_output.reshape(…, -1)` does. `heads_buf`
/// (`batch·seq·d`) holds the per-head results head-major so that each (item, head) task owns one
/// contiguous block. `scores` holds one or more `seq × seq` score matrices (see [`attention_groups`]): the
/// (item, head) tasks are split into that many runs of consecutive tasks, run in parallel, each reusing
/// its own score matrix; which matrix a task uses does not change its result.
#[allow(clippy::too_many_arguments)]
pub fn attention(qkv: &[f32], batch: usize, seq: usize, heads: usize, causal: bool, out: &mut [f32], heads_buf: &mut [f32], scores: &mut [f32]) {
    let d = out.len() / (batch * seq);
    let hd = d / heads;
    let scale = (hd as f32).powf(-0.5);
    debug_assert_eq!(qkv.len(), batch * seq * 3 * d);
    let tasks = batch * heads;
    let groups = (scores.len() / (seq * seq)).clamp(1, tasks.max(1));
    assert!(scores.len() >= seq * seq, "attention needs at least one {seq}×{seq} score matrix");
    let per_group = tasks.div_ceil(groups);
    heads_buf[..batch * seq * d]
        .par_chunks_mut(per_group * seq * hd)
        .zip(scores.par_chunks_mut(seq * seq))
        .enumerate()
        .for_each(|(g, (block, scores))| {
            for (i, o) in block.chunks_mut(seq * hd).enumerate() {
                let task = g * per_group + i;
                let (b, h) = (task / heads, task % heads);
                let base = b * seq * 3 * d + h * hd;
                // S = (Q Kᵀ)·scale; Q, K, V are strided views into qkv (row stride 3d).
                gemm(seq, seq, hd, scale, &qkv[base..], 3 * d, Trans::No, &qkv[base + d..], 3 * d, Trans::Yes, 0.0, scores, seq);
                softmax_rows(scores, seq, causal);
                // O = P V
                gemm(seq, hd, seq, 1.0, scores, seq, Trans::No, &qkv[base + 2 * d..], 3 * d, Trans::No, 0.0, o, hd);
            }
        });
    // [b, h, t, :] → [b, t, h·hd + :]
    out.par_chunks_mut(seq * d).enumerate().for_each(|(b, ob)| {
        for h in 0..heads {
            let src = &heads_buf[(b * heads + h) * seq * hd..][..seq * hd];
            for t in 0..seq {
                ob[t * d + h * hd..][..hd].copy_from_slice(&src[t * hd..][..hd]);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activations_match_f64_formulas() {
        let erf64 = |x: f64| {
            // erf by its Taylor series (|x| ≤ 4 converges in f64 to ~1e-13 absolute, enough for the
            // relative bound on the negative tail of gelu)
            let mut sum = 0.0;
            let mut term = x;
            let mut n = 0;
            while term.abs() > 1e-17 || n < 5 {
                sum += term / (2 * n + 1) as f64;
                n += 1;
                term *= -x * x / n as f64;
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        };
        let mut v: Vec<f32> = (-80..=80).map(|i| i as f32 * 0.05).collect();
        let x = v.clone();
        let zero = vec![0.0; v.len()];
        bias_gelu_rows(&mut v, &zero);
        for (a, &xi) in v.iter().zip(&x) {
            let r = 0.5 * xi as f64 * (1.0 + erf64(xi as f64 / 2f64.sqrt()));
            assert!((*a as f64 - r).abs() < 1e-6 * r.abs() + 1e-9, "gelu({xi}) = {a}, want {r}");
        }
        let mut v = x.clone();
        bias_quick_gelu_rows(&mut v, &zero);
        for (a, &xi) in v.iter().zip(&x) {
            let r = xi as f64 / (1.0 + (-1.702 * xi as f64).exp());
            assert!((*a as f64 - r).abs() < 2e-7 * (1.0 + r.abs()), "quick_gelu({xi}) = {a}, want {r}");
        }
        // Relative accuracy wherever the result is a normal f32 (through the whole range of exp's
        // exponent), and NaN passed through.
        let x: Vec<f32> = (-200..=200).map(|i| i as f32 * 0.37).chain([3e-20, -3e-20]).collect();
        let mut v = x.clone();
        let zero = vec![0.0; v.len()];
        bias_quick_gelu_rows(&mut v, &zero);
        for (a, &xi) in v.iter().zip(&x) {
            let r = xi as f64 / (1.0 + (-1.702 * xi as f64).exp());
            // f32 rounding of 1.702·x alone moves e^(1.702·x) by up to |1.702·x|·6e-8 relative.
            let tol = (3e-7 + 1.2e-7 * (1.702 * xi.abs() as f64)) * r.abs() + 1e-30;
            assert!((*a as f64 - r).abs() <= tol, "quick_gelu({xi}) = {a}, want {r}");
        }
        let mut nan = [f32::NAN];
        bias_quick_gelu_rows(&mut nan, &[0.0]);
        assert!(nan[0].is_nan());
    }

    #[test]
    fn attention_matches_naive_f64() {
        let (batch, seq, heads, hd) = (2, 7, 3, 5);
        let d = heads * hd;
        let mut rng = crate::rng::Rng::new(3);
        let qkv: Vec<f32> = (0..batch * seq * 3 * d).map(|_| rng.normal() as f32).collect();
        for causal in [false, true] {
            let mut out = vec![0.0; batch * seq * d];
            let mut buf = vec![0.0; batch * seq * d];
            let mut scores = vec![0.0; attention_groups(batch, heads) * seq * seq];
            attention(&qkv, batch, seq, heads, causal, &mut out, &mut buf, &mut scores);
            let mut one = vec![0.0; batch * seq * d];
            attention(&qkv, batch, seq, heads, causal, &mut one, &mut buf, &mut scores[..seq * seq]);
            assert_eq!(one, out, "one score matrix for every task gives the same result");
            for b in 0..batch {
                for h in 0..heads {
                    for i in 0..seq {
                        let q = |t: usize, c: usize| qkv[(b * seq + t) * 3 * d + c * d + h * hd..][..hd].to_vec();
                        let n = if causal { i + 1 } else { seq };
                        let s: Vec<f64> = (0..n)
                            .map(|j| q(i, 0).iter().zip(q(j, 1)).map(|(a, b)| *a as f64 * b as f64).sum::<f64>() / (hd as f64).sqrt())
                            .collect();
                        let m = s.iter().cloned().fold(f64::MIN, f64::max);
                        let z: f64 = s.iter().map(|v| (v - m).exp()).sum();
                        for c in 0..hd {
                            let r: f64 = (0..n).map(|j| (s[j] - m).exp() / z * q(j, 2)[c] as f64).sum();
                            let got = out[(b * seq + i) * d + h * hd + c] as f64;
                            assert!((got - r).abs() < 1e-5, "causal={causal} b={b} h={h} i={i} c={c}: {got} vs {r}");
                        }
                    }
                }
            }
        }
    }

    /// int8 `forward_act` fuses bias and activation into the product's output; the bits are those of the
    /// product followed by the separate bias + activation pass (the f32 path's), for both activations.
    #[test]
    fn fused_int8_activation_gives_the_separate_pass_bits() {
        let (rows, k, n) = (37, 70, 45);
        let mut rng = crate::rng::Rng::new(9);
        let mut draw = |len: usize, s: f64| -> Vec<f32> { (0..len).map(|_| (rng.normal() * s) as f32).collect() };
        let (x, w, b) = (draw(rows * k, 1.0), draw(n * k, 0.1), draw(n, 0.5));
        let lin = Linear::new(w, Some(b.clone()), k, n).into_precision(Precision::Int8).unwrap();
        let Weight::Int8(qw) = &lin.weight else { panic!("int8 weight expected") };
        for act in [Activation::QuickGelu, Activation::Gelu] {
            let mut q = QuantizedRows::default();
            let mut fused = vec![0.0; rows * n];
            lin.forward_act(&x, &mut fused, act, &mut q);
            let mut separate = vec![0.0; rows * n];
            q.quantize(&x, rows, k);
            qgemm(&q, qw, None, false, None, &mut separate);
            match act {
                Activation::QuickGelu => bias_quick_gelu_rows(&mut separate, &b),
                Activation::Gelu => bias_gelu_rows(&mut separate, &b),
            }
            assert!(fused.iter().zip(&separate).all(|(f, s)| f.to_bits() == s.to_bits()), "{act:?}");
        }
    }

    #[test]
    fn layer_norm_matches_f64() {
        let d = 37;
        let mut rng = crate::rng::Rng::new(5);
        let x: Vec<f32> = (0..3 * d).map(|_| (rng.normal() * 3.0 + 1.0) as f32).collect();
        let ln = LayerNorm { gamma: (0..d).map(|i| 1.0 + i as f32 * 0.01).collect(), beta: (0..d).map(|i| i as f32 * -0.02).collect(), eps: 1e-5 };
        let mut y = vec![0.0; x.len()];
        ln.forward(&x, &mut y);
        for r in 0..3 {
            let row: Vec<f64> = x[r * d..][..d].iter().map(|&v| v as f64).collect();
            let mean = row.iter().sum::<f64>() / d as f64;
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d as f64;
            for i in 0..d {
                let want = (row[i] - mean) / (var + 1e-5).sqrt() * ln.gamma[i] as f64 + ln.beta[i] as f64;
                assert!((y[r * d + i] as f64 - want).abs() < 1e-5, "row {r} col {i}");
            }
        }
    }
}
