//! The vision tower: transformers `CLIPVisionTransformer` (`CLIPVisionModel.forward`), block by block.

use super::config::VisionConfig;
use super::encoder::{load_layer_norm, Encoder, Workspace};
use crate::scratch::grow;
use super::layers::{LayerNorm, Precision};
use super::weights::Tensors;
use crate::error::Result;
use crate::linalg::{gemm, Trans};
use rayon::prelude::*;

pub struct VisionTower {
    pub cfg: VisionConfig,
    /// Conv2d(3, d, kernel = stride = patch, bias = False) weight as a `[d, 3·p·p]` matrix.
    pub(crate) patch_weight: Vec<f32>,
    pub(crate) class_embedding: Vec<f32>,
    /// `[seq, d]`
    pub(crate) position_embedding: Vec<f32>,
    pub(crate) pre_layrnorm: LayerNorm,
    pub(crate) encoder: Encoder,
    pub(crate) post_layernorm: LayerNorm,
}

impl VisionTower {
    /// Loads `{prefix}embeddings.…`, `{prefix}pre_layrnorm.…`, `{prefix}encoder.…`, `{prefix}post_layernorm.…`,
    /// the encoder's linear layers in `precision`.
    pub fn load(t: &Tensors, prefix: &str, cfg: &VisionConfig, precision: Precision) -> Result<Self> {
        let d = cfg.encoder.hidden_size;
        let p = cfg.patch_size;
        let eps = cfg.encoder.layer_norm_eps;
        Ok(VisionTower {
            patch_weight: t.get(&format!("{prefix}embeddings.patch_embedding.weight"), &[d, cfg.num_channels, p, p])?,
            class_embedding: t.get(&format!("{prefix}embeddings.class_embedding"), &[d])?,
            position_embedding: t.get(&format!("{prefix}embeddings.position_embedding.weight"), &[cfg.seq_len(), d])?,
            pre_layrnorm: load_layer_norm(t, &format!("{prefix}pre_layrnorm."), d, eps)?,
            encoder: Encoder::load(t, &format!("{prefix}encoder."), &cfg.encoder, precision)?,
            post_layernorm: load_layer_norm(t, &format!("{prefix}post_layernorm."), d, eps)?,
            cfg: cfg.clone(),
        })
    }

    /// Values per image in the pixel tensor: 3 × image_size × image_size (CHW, already normalised).
    pub fn pixels_per_image(&self) -> usize {
        self.cfg.num_channels * self.cfg.image_size * self.cfg.image_size
    }

    /// Pooled output (`pooler_output`: post_layernorm of the class token) for `n` images given as
    /// `[n, 3, H, W]` pixel values. `trace` receives transformers' `hidden_states` (the encoder input
    /// after pre_layrnorm, then each layer's output), each `[n·seq, d]`.
    pub fn forward(&self, pixels: &[f32], n: usize, trace: Option<&mut Vec<Vec<f32>>>) -> Vec<f32> {
        self.forward_with(pixels, n, trace, &mut VisionScratch::default()).to_vec()
    }

    /// [`VisionTower::forward`] with every buffer taken from `ws`: the pooled rows (`[n, d]`) live in `ws`
    /// until its next use. A workspace that already served a batch at least as large allocates nothing
    /// (without `trace`).
    pub fn forward_with<'w>(&self, pixels: &[f32], n: usize, mut trace: Option<&mut Vec<Vec<f32>>>, ws: &'w mut VisionScratch) -> &'w [f32] {
        let cfg = &self.cfg;
        let d = cfg.encoder.hidden_size;
        let (p, g, s, c) = (cfg.patch_size, cfg.grid(), cfg.image_size, cfg.num_channels);
        let seq = cfg.seq_len();
        let npatch = g * g;
        let kdim = c * p * p;
        assert_eq!(pixels.len(), n * self.pixels_per_image());
        ws.encoder.ensure(&cfg.encoder, n * seq);
        grow(&mut ws.cols, n * npatch * kdim);
        grow(&mut ws.x, n * seq * d);
        grow(&mut ws.pooled, 2 * n * d);

        // CLIPVisionEmbeddings: the stride-p convolution as one GEMM over all patches of all images
        // (im2col: each patch flattened in the weight's (channel, ky, kx) order).
        let cols = &mut ws.cols[..n * npatch * kdim];
        cols.par_chunks_mut(npatch * kdim).enumerate().for_each(|(img, out)| {
            let src = &pixels[img * c * s * s..][..c * s * s];
            for gy in 0..g {
                for gx in 0..g {
                    let row = &mut out[(gy * g + gx) * kdim..][..kdim];
                    for ch in 0..c {
                        for ky in 0..p {
                            let from = &src[ch * s * s + (gy * p + ky) * s + gx * p..][..p];
                            row[(ch * p + ky) * p..][..p].copy_from_slice(from);
                        }
                    }
                }
            }
        });
        // The patch embeddings and the summed embeddings borrow encoder buffers that the encoder
        // overwrites before reading (`heads` holds n·npatch·d ≤ n·seq·d values, `h` n·seq·d).
        let patches = &mut ws.encoder.heads[..n * npatch * d];
        gemm(n * npatch, d, kdim, 1.0, cols, kdim, Trans::No, &self.patch_weight, kdim, Trans::Yes, 0.0, patches, d);
        let patches = &*patches;

        // [class | patches] + position embeddings, then pre_layrnorm.
        let emb = &mut ws.encoder.h[..n * seq * d];
        emb.par_chunks_mut(seq * d).enumerate().for_each(|(img, e)| {
            for t in 0..seq {
                let pos = &self.position_embedding[t * d..][..d];
                let src = if t == 0 { &self.class_embedding[..] } else { &patches[(img * npatch + t - 1) * d..][..d] };
                for ((o, a), b) in e[t * d..][..d].iter_mut().zip(src).zip(pos) {
                    *o = a + b;
                }
            }
        });
        let x = &mut ws.x[..n * seq * d];
        self.pre_layrnorm.forward(emb, x);
        if let Some(tr) = trace.as_deref_mut() {
            tr.push(x.to_vec());
        }

        // The class tokens are what gets pooled (`clear` keeps the capacity: no allocation once warm).
        ws.keep.clear();
        ws.keep.extend((0..n).map(|i| i * seq));
        self.encoder.forward(x, n, seq, false, &ws.keep, &mut ws.encoder, trace);

        // pooled_output = post_layernorm(last_hidden_state[:, 0, :])
        let (cls, pooled) = ws.pooled[..2 * n * d].split_at_mut(n * d);
        for (i, row) in cls.chunks_exact_mut(d).enumerate() {
            row.copy_from_slice(&x[i * seq * d..][..d]);
        }
        self.post_layernorm.forward(cls, pooled);
        pooled
    }
}

/// Every buffer of one [`VisionTower::forward_with`] pass (im2col columns, hidden states, the encoder's
/// workspace, class tokens and pooled rows). Buffers only grow, so reusing a workspace for batches no larger
/// than before allocates nothing.
#[derive(Default)]
pub struct VisionScratch {
    encoder: Workspace,
    cols: Vec<f32>,
    x: Vec<f32>,
    /// Class tokens (`[n, d]`), then the pooled rows (`[n, d]`).
    pooled: Vec<f32>,
    /// The class tokens' rows in the stacked tokens.
    keep: Vec<usize>,
}

impl VisionScratch {
    /// Bytes the buffers hold.
    pub fn bytes(&self) -> usize {
        self.encoder.bytes() + 4 * (self.cols.capacity() + self.x.capacity() + self.pooled.capacity()) + 8 * self.keep.capacity()
    }
}
