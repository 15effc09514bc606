//! The transformer encoder both towers share: transformers `CLIPEncoder` / `CLIPEncoderLayer`.

use super::config::{Activation, EncoderConfig};
use super::layers::{attention, attention_groups, LayerNorm, Linear, Precision};
use super::weights::Tensors;
use crate::error::Result;
use crate::linalg::qgemm::QuantizedRows;
use crate::scratch::grow;

/// transformers `CLIPEncoderLayer`: LN1 → self-attention → residual, LN2 → MLP → residual.
/// Q, K and V are one fused `[3d, d]` projection (one GEMM instead of three).
pub struct EncoderLayer {
    pub(crate) ln1: LayerNorm,
    pub(crate) qkv: Linear,
    pub(crate) out_proj: Linear,
    pub(crate) ln2: LayerNorm,
    pub(crate) fc1: Linear,
    pub(crate) fc2: Linear,
}

/// transformers `CLIPEncoder`: a stack of [`EncoderLayer`]s.
pub struct Encoder {
    pub cfg: EncoderConfig,
    pub(crate) layers: Vec<EncoderLayer>,
}

/// Activation buffers for one forward pass over `tokens` stacked tokens, reused by every layer. They only
/// grow ([`Workspace::ensure`]), so a workspace kept between forward passes of one size allocates once.
#[derive(Default)]
pub struct Workspace {
    /// LayerNorm output, then the attention output (same shape `[tokens, d]`).
    pub(crate) h: Vec<f32>,
    pub(crate) qkv: Vec<f32>,
    pub(crate) heads: Vec<f32>,
    pub(crate) mlp: Vec<f32>,
    /// Attention score matrices, one `seq × seq` per run of (item, head) tasks.
    scores: Vec<f32>,
    /// Each int8 layer's quantized input (unused in f32).
    pub(crate) quant: QuantizedRows,
}

impl Workspace {
    pub fn new(cfg: &EncoderConfig, tokens: usize) -> Self {
        let mut ws = Workspace::default();
        ws.ensure(cfg, tokens);
        ws
    }

    /// Bytes the buffers hold.
    pub fn bytes(&self) -> usize {
        4 * [&self.h, &self.qkv, &self.heads, &self.mlp, &self.scores].iter().map(|v| v.capacity()).sum::<usize>() + self.quant.bytes()
    }

    /// Makes room for a forward pass over `tokens` tokens (the score matrices are sized by
    /// [`Encoder::forward`], which knows the sequence length).
    pub fn ensure(&mut self, cfg: &EncoderConfig, tokens: usize) {
        let d = cfg.hidden_size;
        grow(&mut self.h, tokens * d);
        grow(&mut self.qkv, tokens * 3 * d);
        grow(&mut self.heads, tokens * d);
        grow(&mut self.mlp, tokens * cfg.intermediate_size);
    }
}

/// Loads `{prefix}weight` / `{prefix}bias` of a LayerNorm of width `d`.
pub fn load_layer_norm(t: &Tensors, prefix: &str, d: usize, eps: f32) -> Result<LayerNorm> {
    Ok(LayerNorm { gamma: t.get(&format!("{prefix}weight"), &[d])?, beta: t.get(&format!("{prefix}bias"), &[d])?, eps })
}

/// Loads an `nn.Linear(in_dim, out_dim)` at `{prefix}weight` (and `{prefix}bias` if `bias`).
pub fn load_linear(t: &Tensors, prefix: &str, in_dim: usize, out_dim: usize, bias: bool) -> Result<Linear> {
    let weight = t.get(&format!("{prefix}weight"), &[out_dim, in_dim])?;
    let bias = if bias { Some(t.get(&format!("{prefix}bias"), &[out_dim])?) } else { None };
    Ok(Linear::new(weight, bias, in_dim, out_dim))
}

/// Deepest encoder whose fc2 layers run in int8 under [`Precision::Int8`]. fc2 reads the GELU output, the
/// input int8 represents worst (most values squeezed near 0, a long positive tail), and its error adds up
/// layer by layer: at 12 layers (ViT-B/32, both towers) the embeddings keep centred cosine ≥ 0.996 to f32,
/// at 24 (ViT-L/14's vision tower) only 0.985, below the 0.99 bar; with fc2 in f32 there, 0.992. fc2 is a
/// third of a layer's products, so deeper towers keep about two thirds of the int8 speed-up.
pub const INT8_FC2_MAX_LAYERS: usize = 12;

/// The precision of fc2 in an encoder of `layers` layers loaded in `precision` (see [`INT8_FC2_MAX_LAYERS`]).
fn fc2_precision(precision: Precision, layers: usize) -> Precision {
    if precision == Precision::Int8 && layers > INT8_FC2_MAX_LAYERS {
        Precision::F32
    } else {
        precision
    }
}

impl Encoder {
    /// Loads `{prefix}layers.{i}.…` for every layer of `cfg`, its linear layers in `precision` (each
    /// quantized as soon as it is read, so that the f32 weights of one layer at most are held at once).
    pub fn load(t: &Tensors, prefix: &str, cfg: &EncoderConfig, precision: Precision) -> Result<Self> {
        let (d, m, eps) = (cfg.hidden_size, cfg.intermediate_size, cfg.layer_norm_eps);
        let layers = (0..cfg.num_layers)
            .map(|i| {
                let p = format!("{prefix}layers.{i}.");
                let linear = |name: &str, in_dim: usize, out_dim: usize, precision: Precision| {
                    load_linear(t, &format!("{p}{name}."), in_dim, out_dim, true)?.into_precision(precision)
                };
                // Q, K and V stacked into one [3d, d] weight.
                let (mut w, mut b) = (Vec::with_capacity(3 * d * d), Vec::with_capacity(3 * d));
                for name in ["q_proj", "k_proj", "v_proj"] {
                    w.extend(t.get(&format!("{p}self_attn.{name}.weight"), &[d, d])?);
                    b.extend(t.get(&format!("{p}self_attn.{name}.bias"), &[d])?);
                }
                let qkv = Linear::new(w, Some(b), d, 3 * d).into_precision(precision)?;
                Ok(EncoderLayer {
                    ln1: load_layer_norm(t, &format!("{p}layer_norm1."), d, eps)?,
                    qkv,
                    out_proj: linear("self_attn.out_proj", d, d, precision)?,
                    ln2: load_layer_norm(t, &format!("{p}layer_norm2."), d, eps)?,
                    fc1: linear("mlp.fc1", d, m, precision)?,
                    fc2: linear("mlp.fc2", m, d, fc2_precision(precision, cfg.num_layers))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Encoder { cfg: cfg.clone(), layers })
    }

    /// Runs every layer over `x` (`[batch·seq, d]`, updated in place). `causal` applies the text tower's
    /// causal mask. `keep` lists the rows the caller reads afterwards (its pooled tokens): only they are
    /// sure to hold the final state, because the last layer runs its attention output projection and MLP
    /// on them alone. A row's MLP reads only that row and nothing reads the others later, so this saves
    /// about 6 % of a 12-layer tower's products with identical kept rows. If `trace` is given, every row
    /// is computed and the state after each layer is appended to it (transformers' `hidden_states[1..]`).
    #[allow(clippy::too_many_arguments)]
    pub fn forward(&self, x: &mut [f32], batch: usize, seq: usize, causal: bool, keep: &[usize], ws: &mut Workspace, mut trace: Option<&mut Vec<Vec<f32>>>) {
        let (d, m) = (self.cfg.hidden_size, self.cfg.intermediate_size);
        let tokens = batch * seq;
        debug_assert_eq!(x.len(), tokens * d);
        ws.ensure(&self.cfg, tokens);
        let score_len = attention_groups(batch, self.cfg.num_heads) * seq * seq;
        grow(&mut ws.scores, score_len);
        let scores = &mut ws.scores[..score_len];
        let h = &mut ws.h[..tokens * d];
        let qkv = &mut ws.qkv[..tokens * 3 * d];
        let heads = &mut ws.heads[..tokens * d];
        let mlp = &mut ws.mlp[..tokens * m];
        let last = self.layers.len().saturating_sub(1);
        for (i, layer) in self.layers.iter().enumerate() {
            // mirrors CLIPEncoderLayer.forward
            layer.ln1.forward(x, h);
            layer.qkv.forward(h, qkv, &mut ws.quant);
            attention(qkv, batch, seq, self.cfg.num_heads, causal, h, heads, scores);
            if i == last && trace.is_none() && keep.len() < tokens {
                // The kept rows of the attention output and the residual stream, gathered into buffers
                // attention no longer needs, finish the layer there and go back into `x`.
                let k = keep.len();
                let (hk, xk) = (&mut qkv[..k * d], &mut heads[..k * d]);
                for (r, &row) in keep.iter().enumerate() {
                    hk[r * d..][..d].copy_from_slice(&h[row * d..][..d]);
                    xk[r * d..][..d].copy_from_slice(&x[row * d..][..d]);
                }
                layer.finish(hk, xk, &mut mlp[..k * m], self.cfg.activation, &mut ws.quant);
                for (r, &row) in keep.iter().enumerate() {
                    x[row * d..][..d].copy_from_slice(&xk[r * d..][..d]);
                }
                break;
            }
            layer.finish(h, x, mlp, self.cfg.activation, &mut ws.quant);
            if let Some(tr) = trace.as_deref_mut() {
                tr.push(x.to_vec());
            }
        }
    }
}

impl EncoderLayer {
    /// The layer after attention: `x += out_proj(attn)`, then `x += fc2(act(fc1(ln2(x))))`. `attn` is
    /// overwritten (it holds ln2's output).
    fn finish(&self, attn: &mut [f32], x: &mut [f32], mlp: &mut [f32], act: Activation, q: &mut QuantizedRows) {
        self.out_proj.forward_residual(attn, x, q);
        self.ln2.forward(x, attn);
        self.fc1.forward_act(attn, mlp, act, q);
        self.fc2.forward_residual(mlp, x, q);
    }
}
