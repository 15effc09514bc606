//! The CLIP towers on CUDA: the same forward pass as the CPU towers
//! (`vision.rs`, `text.rs`, `encoder.rs`, which mirror transformers block by block), with
//!
//! * weights uploaded once: every linear layer's matrix as f16 (`[out, in]`, row-major as in the
//!   checkpoint), biases, LayerNorm parameters and the embedding tables as f32;
//! * matrix products through cuBLAS (`Gpu::gemm_f16`: f16 operands, f32 accumulation, f32 or f16 output);
//! * everything else in the hand-written kernels of `kernels/nn.cu` (pixels → patches, token assembly,
//!   LayerNorm, bias + activation, bias + residual, fused attention) and `kernels/clip.cu` (text
//!   embeddings, gathering the pooled tokens);
//! * the residual stream in f32, GEMM inputs in f16;
//! * one host → device copy per batch (pixels or token ids) and one device → host copy (the pooled or
//!   projected rows): no round-trips between layers.
//!
//! Everything goes through the device seam (`&dyn Gpu`), so the kernel emulator runs the same code in CI
//! (`tests.rs`, `emu.rs`).
//!
//! Activation buffers are allocated once and grown when a larger batch comes; calls on one model are
//! serialised (they share the device's one stream anyway).

use super::config::Activation;
use super::encoder::Encoder;
use super::layers::{LayerNorm, Linear};
use super::text::TextTower;
use super::vision::VisionTower;
pub mod nn;

use crate::device::cuda::{i32_of, Gpu, GpuBuf, KArg, KernelFile, RmGemm};
use nn::{grid_for, need, NnActivation, THREADS};
use crate::error::{Error, Result};
use half::f16;
use std::sync::{Arc, Mutex};

pub static CLIP: KernelFile = KernelFile { name: "clip", source: include_str!("../../kernels/clip.cu") };
/// Longest sequence [`CudaAttention::Auto`] gives the fused kernel (ViT-B/32's 50 tokens, the text
/// tower's ≤ 77); longer ones (ViT-B/16's 197, ViT-L/14's 257) go through cuBLAS, whose tensor cores
/// outrun the fused kernel's scalar f32 dot products once every block re-reads many keys. A guess to be
/// settled by `examples/bench_clip_cuda.rs` on a GPU.
const FUSED_MAX_SEQ: usize = 128;
/// The fused kernel's largest head dimension (`ATT_MAX_HD` in kernels/nn.cu).
const FUSED_MAX_HD: usize = 128;

/// How the CUDA towers compute attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CudaAttention {
    /// Fused for short sequences (≤ 128 tokens, head dim ≤ 128), cuBLAS otherwise.
    #[default]
    Auto,
    /// The fused kernel of kernels/nn.cu (scores never stored; head dim ≤ 128).
    Fused,
    /// scale·Q Kᵀ and P V as cuBLAS strided-batched GEMMs (f16 in, f32 accumulate) around a row softmax.
    Gemm,
}

impl CudaAttention {
    fn use_gemm(self, seq: usize, hd: usize) -> bool {
        match self {
            CudaAttention::Gemm => true,
            CudaAttention::Fused => hd > FUSED_MAX_HD,
            CudaAttention::Auto => seq > FUSED_MAX_SEQ || hd > FUSED_MAX_HD,
        }
    }
}

/// A LayerNorm's parameters on the device.
struct DevLayerNorm {
    gamma: GpuBuf<f32>,
    beta: GpuBuf<f32>,
    eps: f32,
}

impl DevLayerNorm {
    fn upload(gpu: &dyn Gpu, ln: &LayerNorm, what: &str) -> Result<Self> {
        Ok(DevLayerNorm {
            gamma: gpu.upload_f32(&ln.gamma, &format!("{what}.weight"))?,
            beta: gpu.upload_f32(&ln.beta, &format!("{what}.bias"))?,
            eps: ln.eps,
        })
    }

    fn forward(&self, gpu: &dyn Gpu, x: &GpuBuf<f32>, rows: usize, out32: Option<&mut GpuBuf<f32>>, out16: Option<&mut GpuBuf<f16>>) -> Result<()> {
        nn::layer_norm(gpu, x, rows, self.gamma.len(), &self.gamma, &self.beta, self.eps, out32, out16)
    }
}

/// An `nn.Linear` on the device: weight `[out, in]` in f16, bias in f32.
struct DevLinear {
    weight: GpuBuf<f16>,
    bias: Option<GpuBuf<f32>>,
    in_dim: usize,
    out_dim: usize,
}

impl DevLinear {
    fn upload(gpu: &dyn Gpu, l: &Linear, what: &str) -> Result<Self> {
        let w = l.f32_weight().ok_or_else(|| crate::invalid_arg!("{what}: int8 weights do not go to the GPU (load the model in f32)"))?;
        let w16: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect();
        Ok(DevLinear {
            weight: gpu.upload_f16(&w16, &format!("{what}.weight (f16)"))?,
            bias: l.bias.as_ref().map(|b| gpu.upload_f32(b, &format!("{what}.bias"))).transpose()?,
            in_dim: l.in_dim,
            out_dim: l.out_dim,
        })
    }

    /// `y = x · Wᵀ` (no bias: the kernel after the product adds it), x `[rows, in]` f16, y `[rows, out]` f32.
    fn matmul(&self, gpu: &dyn Gpu, x: &GpuBuf<f16>, rows: usize, y: &mut GpuBuf<f32>) -> Result<()> {
        need(x, rows * self.in_dim, "linear input")?;
        need(y, rows * self.out_dim, "linear output")?;
        gpu.gemm_f16(
            &RmGemm {
                ta: false,
                tb: true,
                m: rows,
                n: self.out_dim,
                k: self.in_dim,
                alpha: 1.0,
                a: (x.ptr(), self.in_dim, 0),
                b: (self.weight.ptr(), self.in_dim, 0),
                beta: 0.0,
                c: (y.ptr(), self.out_dim, 0),
                batch: 1,
            },
            false,
        )
    }
}

/// One `CLIPEncoderLayer` on the device (Q, K, V fused into one `[3d, d]` product as on the CPU).
struct DevLayer {
    ln1: DevLayerNorm,
    qkv: DevLinear,
    out_proj: DevLinear,
    ln2: DevLayerNorm,
    fc1: DevLinear,
    fc2: DevLinear,
}

/// `CLIPEncoder` on the device.
struct DevEncoder {
    layers: Vec<DevLayer>,
    d: usize,
    mlp: usize,
    heads: usize,
    act: NnActivation,
}

impl DevEncoder {
    fn upload(gpu: &dyn Gpu, enc: &Encoder, what: &str) -> Result<Self> {
        let cfg = &enc.cfg;
        if cfg.num_heads == 0 || cfg.hidden_size % cfg.num_heads != 0 {
            return Err(Error::Format(format!("{what}: hidden_size {} is not a multiple of num_attention_heads {}", cfg.hidden_size, cfg.num_heads)));
        }
        let layers = enc
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let p = format!("{what}.layers.{i}");
                Ok(DevLayer {
                    ln1: DevLayerNorm::upload(gpu, &l.ln1, &format!("{p}.layer_norm1"))?,
                    qkv: DevLinear::upload(gpu, &l.qkv, &format!("{p}.self_attn.qkv"))?,
                    out_proj: DevLinear::upload(gpu, &l.out_proj, &format!("{p}.self_attn.out_proj"))?,
                    ln2: DevLayerNorm::upload(gpu, &l.ln2, &format!("{p}.layer_norm2"))?,
                    fc1: DevLinear::upload(gpu, &l.fc1, &format!("{p}.mlp.fc1"))?,
                    fc2: DevLinear::upload(gpu, &l.fc2, &format!("{p}.mlp.fc2"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let act = match cfg.activation {
            Activation::QuickGelu => NnActivation::QuickGelu,
            Activation::Gelu => NnActivation::Gelu,
        };
        Ok(DevEncoder { layers, d: cfg.hidden_size, mlp: cfg.intermediate_size, heads: cfg.num_heads, act })
    }

    /// Mirrors `Encoder::forward` (CLIPEncoderLayer.forward per layer) on `ws.x` (`[batch·seq, d]`).
    fn forward(&self, gpu: &dyn Gpu, ws: &mut Workspace, batch: usize, seq: usize, causal: bool, attn: CudaAttention) -> Result<()> {
        let (d, m) = (self.d, self.mlp);
        let t = batch * seq;
        let hd = d / self.heads;
        let gemm_attention = attn.use_gemm(seq, hd);
        let Workspace { x, h16, tmp32, big16, scores32, probs16, .. } = ws;
        for l in &self.layers {
            // x + attn(ln1(x))
            l.ln1.forward(gpu, x, t, None, Some(h16))?;
            l.qkv.matmul(gpu, h16, t, tmp32)?;
            nn::bias_act_to_f16(gpu, tmp32, l.qkv.bias.as_ref(), t, 3 * d, None, big16)?;
            if gemm_attention {
                attention_gemm(gpu, big16, batch, seq, self.heads, hd, causal, scores32, probs16, h16)?;
            } else {
                nn::attention(gpu, big16, batch, seq, self.heads, hd, causal, h16)?;
            }
            l.out_proj.matmul(gpu, h16, t, tmp32)?;
            nn::bias_residual(gpu, tmp32, l.out_proj.bias.as_ref(), t, d, x)?;
            // x + fc2(act(fc1(ln2(x))))
            l.ln2.forward(gpu, x, t, None, Some(h16))?;
            l.fc1.matmul(gpu, h16, t, tmp32)?;
            nn::bias_act_to_f16(gpu, tmp32, l.fc1.bias.as_ref(), t, m, Some(self.act), big16)?;
            l.fc2.matmul(gpu, big16, t, tmp32)?;
            nn::bias_residual(gpu, tmp32, l.fc2.bias.as_ref(), t, d, x)?;
        }
        Ok(())
    }
}

/// Mirrors transformers `CLIPAttention.forward` with cuBLAS: for each head, `scores = hd^-½ · Q Kᵀ`
/// (strided-batched over the items, f32 out), then a row softmax (causal mask applied there) to f16, then
/// `out = P V` written straight into the head's columns of `out` (f16). Layouts as in `nn::attention`:
/// `qkv` `[b·seq, 3d]` with head h of q, k, v at columns h·hd, d + h·hd, 2d + h·hd; scores
/// `[heads, b, seq, seq]`.
#[allow(clippy::too_many_arguments)]
fn attention_gemm(
    gpu: &dyn Gpu,
    qkv: &GpuBuf<f16>,
    b: usize,
    seq: usize,
    heads: usize,
    hd: usize,
    causal: bool,
    scores: &mut GpuBuf<f32>,
    probs: &mut GpuBuf<f16>,
    out: &mut GpuBuf<f16>,
) -> Result<()> {
    let d = heads * hd;
    let ss = seq * seq;
    need(qkv, b * seq * 3 * d, "attention qkv")?;
    need(scores, heads * b * ss, "attention scores")?;
    need(probs, heads * b * ss, "attention probabilities")?;
    need(out, b * seq * d, "attention output")?;
    let scale = (hd as f32).powf(-0.5);
    for h in 0..heads {
        gpu.gemm_f16(
            &RmGemm {
                ta: false,
                tb: true,
                m: seq,
                n: seq,
                k: hd,
                alpha: scale,
                a: (qkv.at(h * hd), 3 * d, seq * 3 * d),
                b: (qkv.at(d + h * hd), 3 * d, seq * 3 * d),
                beta: 0.0,
                c: (scores.at(h * b * ss), seq, ss),
                batch: b,
            },
            false,
        )?;
    }
    nn::softmax_rows_to_f16(gpu, scores, heads * b * seq, seq, causal, probs)?;
    for h in 0..heads {
        gpu.gemm_f16(
            &RmGemm {
                ta: false,
                tb: false,
                m: seq,
                n: hd,
                k: seq,
                alpha: 1.0,
                a: (probs.at(h * b * ss), seq, ss),
                b: (qkv.at(2 * d + h * hd), 3 * d, seq * 3 * d),
                beta: 0.0,
                c: (out.at(h * hd), d, seq * d),
                batch: b,
            },
            true,
        )?;
    }
    Ok(())
}

/// Buffer sizes (elements) a forward pass needs.
#[derive(Debug, Clone, Copy)]
struct WsSizes {
    /// Stacked tokens and pooled items of the largest pass.
    tokens: usize,
    items: usize,
    d: usize,
    /// Elements per token of the widest intermediate (3d or the MLP width).
    wide: usize,
    /// f16 scratch: QKV / MLP activations / im2col patches.
    big: usize,
    /// Projected width.
    proj: usize,
    /// Attention scores (GEMM attention only, else 0).
    att: usize,
}

/// Activation buffers for up to `tokens` stacked tokens and `items` pooled rows.
struct Workspace {
    tokens: usize,
    items: usize,
    /// Residual stream `[tokens, d]` f32.
    x: GpuBuf<f32>,
    /// LayerNorm output (GEMM input), then the attention output: `[tokens, d]` f16.
    h16: GpuBuf<f16>,
    /// Every GEMM's f32 output: `[tokens, max(3d, mlp, d)]` (also the patch embeddings).
    tmp32: GpuBuf<f32>,
    /// QKV or the activated MLP hidden state in f16 (also the im2col patches).
    big16: GpuBuf<f16>,
    /// Pooled rows before / after the final LayerNorm, f32 and f16, and the projection's output.
    pooled_raw: GpuBuf<f32>,
    pooled32: GpuBuf<f32>,
    pooled16: GpuBuf<f16>,
    proj32: GpuBuf<f32>,
    /// GEMM attention: scores `[heads, b, seq, seq]` f32 and probabilities f16 (1 element otherwise).
    scores32: GpuBuf<f32>,
    probs16: GpuBuf<f16>,
}

impl Workspace {
    fn new(gpu: &dyn Gpu, z: &WsSizes) -> Result<Self> {
        let f32s = |len: usize, what: &str| gpu.alloc_f32(len, false, what);
        Ok(Workspace {
            tokens: z.tokens,
            items: z.items,
            x: f32s(z.tokens * z.d, "CLIP residual stream")?,
            h16: gpu.alloc_f16(z.tokens * z.d, "CLIP LayerNorm/attention output")?,
            tmp32: f32s(z.tokens * z.wide, "CLIP GEMM output")?,
            big16: gpu.alloc_f16(z.big, "CLIP QKV/MLP activations")?,
            pooled_raw: f32s(z.items * z.d, "CLIP pooled tokens")?,
            pooled32: f32s(z.items * z.d, "CLIP pooled output")?,
            pooled16: gpu.alloc_f16(z.items * z.d, "CLIP pooled output (f16)")?,
            proj32: f32s(z.items * z.proj.max(1), "CLIP projected embeddings")?,
            scores32: f32s(z.att, "CLIP attention scores")?,
            probs16: gpu.alloc_f16(z.att, "CLIP attention probabilities")?,
        })
    }

    fn fits(&self, z: &WsSizes) -> bool {
        self.tokens >= z.tokens
            && self.items >= z.items
            && self.x.len() >= z.tokens * z.d
            && self.tmp32.len() >= z.tokens * z.wide
            && self.big16.len() >= z.big
            && self.pooled_raw.len() >= z.items * z.d
            && self.proj32.len() >= z.items * z.proj.max(1)
            && self.scores32.len() >= z.att
    }
}

/// `CLIPVisionTransformer` on the device.
struct DevVision {
    patch_weight: DevLinear,
    class_embedding: GpuBuf<f32>,
    position_embedding: GpuBuf<f32>,
    pre_layrnorm: DevLayerNorm,
    encoder: DevEncoder,
    post_layernorm: DevLayerNorm,
    image_size: usize,
    patch: usize,
}

/// `CLIPTextTransformer` on the device.
struct DevText {
    token_embedding: GpuBuf<f32>,
    position_embedding: GpuBuf<f32>,
    encoder: DevEncoder,
    final_layer_norm: DevLayerNorm,
    max_positions: usize,
}

/// Both towers (either may be absent) and their projections, resident on one GPU: a
/// [`CudaDevice`](crate::device::cuda::CudaDevice), or in the crate's tests the kernel emulator.
pub(crate) struct CudaClip {
    dev: Arc<dyn Gpu + Send + Sync>,
    vision: Option<DevVision>,
    text: Option<DevText>,
    visual_projection: Option<DevLinear>,
    text_projection: Option<DevLinear>,
    ws: Mutex<Option<Workspace>>,
    attention: CudaAttention,
}

impl CudaClip {
    /// Uploads the weights of the CPU towers (f16 matrices, f32 vectors) to `dev`.
    pub fn upload(
        dev: Arc<dyn Gpu + Send + Sync>,
        vision: Option<&VisionTower>,
        text: Option<&TextTower>,
        visual_projection: Option<&Linear>,
        text_projection: Option<&Linear>,
    ) -> Result<Self> {
        let gpu: &dyn Gpu = &*dev;
        let vision = vision
            .map(|v| -> Result<DevVision> {
                let c = &v.cfg;
                if c.num_channels != 3 {
                    return Err(Error::Format(format!("vision_config.num_channels = {}: the CUDA path takes RGB (3) only", c.num_channels)));
                }
                let d = c.encoder.hidden_size;
                let patch = Linear::new(v.patch_weight.clone(), None, 3 * c.patch_size * c.patch_size, d);
                Ok(DevVision {
                    patch_weight: DevLinear::upload(gpu, &patch, "vision_model.embeddings.patch_embedding")?,
                    class_embedding: gpu.upload_f32(&v.class_embedding, "vision_model.embeddings.class_embedding")?,
                    position_embedding: gpu.upload_f32(&v.position_embedding, "vision_model.embeddings.position_embedding")?,
                    pre_layrnorm: DevLayerNorm::upload(gpu, &v.pre_layrnorm, "vision_model.pre_layrnorm")?,
                    encoder: DevEncoder::upload(gpu, &v.encoder, "vision_model.encoder")?,
                    post_layernorm: DevLayerNorm::upload(gpu, &v.post_layernorm, "vision_model.post_layernorm")?,
                    image_size: c.image_size,
                    patch: c.patch_size,
                })
            })
            .transpose()?;
        let text = text
            .map(|t| -> Result<DevText> {
                Ok(DevText {
                    token_embedding: gpu.upload_f32(&t.token_embedding, "text_model.embeddings.token_embedding")?,
                    position_embedding: gpu.upload_f32(&t.position_embedding, "text_model.embeddings.position_embedding")?,
                    encoder: DevEncoder::upload(gpu, &t.encoder, "text_model.encoder")?,
                    final_layer_norm: DevLayerNorm::upload(gpu, &t.final_layer_norm, "text_model.final_layer_norm")?,
                    max_positions: t.cfg.max_position_embeddings,
                })
            })
            .transpose()?;
        let visual_projection = visual_projection.map(|l| DevLinear::upload(gpu, l, "visual_projection")).transpose()?;
        let text_projection = text_projection.map(|l| DevLinear::upload(gpu, l, "text_projection")).transpose()?;
        // A fault in any copy above surfaces here rather than in the first embed call.
        dev.sync("uploading the CLIP weights")?;
        Ok(CudaClip { dev, vision, text, visual_projection, text_projection, ws: Mutex::new(None), attention: CudaAttention::Auto })
    }

    fn gpu(&self) -> &dyn Gpu {
        &*self.dev
    }

    /// The device the weights live on, e.g. `cuda:0 NVIDIA H100 80GB HBM3 (sm_90)`.
    pub fn describe(&self) -> String {
        self.dev.describe()
    }

    /// Chooses how attention is computed (default [`CudaAttention::Auto`]).
    pub fn set_attention(&mut self, attention: CudaAttention) {
        self.attention = attention;
    }

    /// Runs `f` with a workspace of at least the given sizes (reusing the last one when it fits).
    fn with_ws<T>(&self, z: WsSizes, f: impl FnOnce(&mut Workspace) -> Result<T>) -> Result<T> {
        let mut guard = self.ws.lock().map_err(|_| Error::Internal("CLIP CUDA workspace lock poisoned".into()))?;
        if !guard.as_ref().is_some_and(|w| w.fits(&z)) {
            // Free the old buffers before allocating the larger ones.
            *guard = None;
            *guard = Some(Workspace::new(self.gpu(), &z)?);
        }
        f(guard.as_mut().expect("workspace allocated above"))
    }

    /// Pooled (`pooled = true`) or projected rows of `n` images `[n, 3, S, S]` (normalised pixels, as
    /// [`super::ClipModel::embed_pixels`] takes them), `batch` images per forward pass. Not normalised.
    /// Mirrors `VisionTower::forward` + the projection.
    pub fn embed_pixels(&self, pixels: &[f32], n: usize, batch: usize, pooled: bool) -> Result<Vec<f32>> {
        let v = self.vision.as_ref().ok_or_else(|| Error::InvalidArgument("this model has no vision tower".into()))?;
        let (s, p) = (v.image_size, v.patch);
        let per = 3 * s * s;
        if pixels.len() != n * per {
            return Err(Error::InvalidArgument(format!("pixels: {} values for {n} images, expected {}", pixels.len(), n * per)));
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        let proj = if pooled { None } else { self.visual_projection.as_ref() };
        let enc = &v.encoder;
        let d = enc.d;
        let (g, kdim) = (s / p, 3 * p * p);
        let (np, seq) = (g * g, g * g + 1);
        let bmax = batch.max(1).min(n);
        let wide = (3 * d).max(enc.mlp).max(d);
        let big = (bmax * seq * wide).max(bmax * np * kdim);
        let out_dim = proj.map_or(d, |l| l.out_dim);
        let dev = self.gpu();
        let mut out = Vec::with_capacity(n * out_dim);
        let att = if self.attention.use_gemm(seq, d / enc.heads) { enc.heads * bmax * seq * seq } else { 0 };
        let sizes = WsSizes { tokens: bmax * seq, items: bmax, d, wide, big, proj: out_dim, att };
        self.with_ws(sizes, |ws| {
            for start in (0..n).step_by(bmax) {
                let b = bmax.min(n - start);
                let px = dev.upload_f32(&pixels[start * per..(start + b) * per], "pixel values")?;
                // CLIPVisionEmbeddings: the stride-p convolution as one GEMM over every patch (im2col).
                nn::patches_im2col(dev, &px, b, s, s, p, &mut ws.big16)?;
                v.patch_weight.matmul(dev, &ws.big16, b * np, &mut ws.tmp32)?;
                nn::vision_tokens(dev, &ws.tmp32, &v.class_embedding, &v.position_embedding, b, np, d, &mut ws.x)?;
                // pre_layrnorm (into tmp32, then back into the residual stream).
                v.pre_layrnorm.forward(dev, &ws.x, b * seq, Some(&mut ws.tmp32), None)?;
                dev.copy_f32(ws.x.ptr(), ws.tmp32.ptr(), b * seq * d, "the pre-LayerNorm output")?;
                enc.forward(dev, ws, b, seq, false, self.attention)?;
                // pooler_output = post_layernorm(last_hidden_state[:, 0, :])
                let rows: Vec<i32> = (0..b).map(|i| i32_of(i * seq, "token row")).collect::<Result<_>>()?;
                self.pool_and_project(ws, &rows, d, &v.post_layernorm, proj, &mut out)?;
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Pooled or projected rows of token id sequences already checked by `TextTower::pool_positions`
    /// (`pools[i]` = sequence i's end-of-text position), `batch` sequences per forward pass, in input
    /// order. Each pass computes positions up to its own latest pooling position (the causal mask makes
    /// later ones irrelevant), so sequences are processed sorted by that position, as on the CPU.
    /// Mirrors `TextTower::forward` + the projection.
    pub fn embed_token_ids(&self, ids: &[&[u32]], pools: &[usize], batch: usize, pooled: bool) -> Result<Vec<f32>> {
        let t = self.text.as_ref().ok_or_else(|| Error::InvalidArgument("this model has no text tower".into()))?;
        if pools.len() != ids.len() {
            return Err(Error::Internal("embed_token_ids: one pooling position per sequence needed".into()));
        }
        let n = ids.len();
        let proj = if pooled { None } else { self.text_projection.as_ref() };
        let enc = &t.encoder;
        let d = enc.d;
        let out_dim = proj.map_or(d, |l| l.out_dim);
        if n == 0 {
            return Ok(Vec::new());
        }
        let max_len = pools.iter().max().map_or(1, |p| p + 1);
        if max_len > t.max_positions {
            return Err(Error::InvalidArgument(format!("a token sequence pools at position {} ≥ max_position_embeddings {}", max_len - 1, t.max_positions)));
        }
        let bmax = batch.max(1).min(n);
        let wide = (3 * d).max(enc.mlp).max(d);
        let big = bmax * max_len * wide;
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| pools[i]);
        let dev = self.gpu();
        let mut sorted_rows = Vec::with_capacity(n * out_dim);
        // Passes are at most max_len long; GEMM attention needs scores for the longest one.
        let att = if self.attention.use_gemm(max_len, d / enc.heads) { enc.heads * bmax * max_len * max_len } else { 0 };
        let sizes = WsSizes { tokens: bmax * max_len, items: bmax, d, wide, big, proj: out_dim, att };
        self.with_ws(sizes, |ws| {
            for chunk in order.chunks(bmax) {
                let b = chunk.len();
                let len = chunk.iter().map(|&i| pools[i]).max().unwrap_or(0) + 1;
                // Positions past a sequence's own end hold its end-of-text token (as on the CPU).
                let mut host = Vec::with_capacity(b * len);
                for &i in chunk {
                    let seq = ids[i];
                    for pos in 0..len {
                        host.push(i32_of(*seq.get(pos).unwrap_or(&seq[pools[i]]) as usize, "token id")?);
                    }
                }
                let ids_dev = dev.upload_i32(&host, "token ids")?;
                self.text_tokens(t, &ids_dev, b, len, &mut ws.x)?;
                enc.forward(dev, ws, b, len, true, self.attention)?;
                let rows: Vec<i32> = chunk.iter().enumerate().map(|(r, &i)| i32_of(r * len + pools[i], "token row")).collect::<Result<_>>()?;
                self.pool_and_project(ws, &rows, d, &t.final_layer_norm, proj, &mut sorted_rows)?;
            }
            Ok(())
        })?;
        let mut out = vec![0.0f32; n * out_dim];
        for (r, &i) in order.iter().enumerate() {
            out[i * out_dim..][..out_dim].copy_from_slice(&sorted_rows[r * out_dim..][..out_dim]);
        }
        Ok(out)
    }

    /// CLIPTextEmbeddings on the device: `x[r·len + t] = token_embedding[ids] + position_embedding[t]`.
    fn text_tokens(&self, t: &DevText, ids: &GpuBuf<i32>, b: usize, len: usize, x: &mut GpuBuf<f32>) -> Result<()> {
        let d = t.encoder.d;
        need(ids, b * len, "token ids")?;
        need(x, b * len * d, "text embeddings output")?;
        need(&t.position_embedding, len * d, "position embeddings")?;
        let args = [
            ids.arg(),
            t.token_embedding.arg(),
            t.position_embedding.arg(),
            KArg::I64(b as i64),
            KArg::I32(i32_of(len, "sequence length")?),
            KArg::I32(i32_of(d, "width")?),
            x.arg(),
        ];
        let dev = self.gpu();
        dev.launch(&CLIP, "text_tokens", grid_for(b * len * d, "text embeddings")?, THREADS, 0, &args)
    }

    /// Gathers the pooled rows of the residual stream, applies the final LayerNorm and (optionally) the
    /// projection, and appends the result to `out` (the one device → host copy of a pass).
    fn pool_and_project(&self, ws: &mut Workspace, rows: &[i32], d: usize, ln: &DevLayerNorm, proj: Option<&DevLinear>, out: &mut Vec<f32>) -> Result<()> {
        let dev = self.gpu();
        let b = rows.len();
        need(&ws.pooled_raw, b * d, "pooled rows")?;
        let rows_dev = dev.upload_i32(rows, "pooled row indices")?;
        let args = [ws.x.arg(), rows_dev.arg(), KArg::I64(b as i64), KArg::I32(i32_of(d, "width")?), ws.pooled_raw.arg()];
        dev.launch(&CLIP, "gather_rows", grid_for(b * d, "pooled rows")?, THREADS, 0, &args)?;
        let host = match proj {
            Some(p) => {
                ln.forward(dev, &ws.pooled_raw, b, None, Some(&mut ws.pooled16))?;
                p.matmul(dev, &ws.pooled16, b, &mut ws.proj32)?;
                let mut v = dev.download_f32(&ws.proj32, "projected embeddings")?;
                v.truncate(b * p.out_dim);
                v
            }
            None => {
                ln.forward(dev, &ws.pooled_raw, b, Some(&mut ws.pooled32), None)?;
                let mut v = dev.download_f32(&ws.pooled32, "pooled output")?;
                v.truncate(b * d);
                v
            }
        };
        out.extend_from_slice(&host);
        Ok(())
    }
}

// The model is shared across threads (C API, rayon): the device state must be too.
const _: () = {
    const fn is<T: Send + Sync>() {}
    is::<CudaClip>()
};

#[cfg(test)]
mod emu;
#[cfg(test)]
mod tests;
