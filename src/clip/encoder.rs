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

impl Encoder {
    /// Loads `{prefix}layers.{i}.…` for every layer of `cfg`, its linear layers in `precision` (each
    /// quantized as soon as it is read, so that the f32 weights of one layer at most are held at once).
    pub fn load(t: &Tensors, prefix: &str, cfg: &EncoderConfig, precision: Precision) -> Result<Self> {
        let (d, m, eps) = (cfg.hidden_size, cfg.intermediate_size, cfg.layer_norm_eps);
        let layers = (0..cfg.num_layers)
            .map(|i| {
                let p = format!("{prefix}layers.{i}.");
                let linear = |name: &str, in_dim: usize, out_dim: usize| {
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
                    out_proj: linear("self_attn.out_proj", d, d)?,
                    ln2: load_layer_norm(t, &format!("{p}layer_norm2."), d, eps)?,
                    fc1: linear("mlp.fc1", d, m)?,
                    fc2: linear("mlp.fc2", m, d)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Encoder { cfg: cfg.clone(), layers })
    }

    /// Runs every layer over `x` (`[batch·seq, d]`, updated in place). `causal` applies the text tower's
    /// causal mask. If `trace` is given, the state after each layer is appended to it (transformers'
    /// `hidden_states[1..]`).
    pub fn forward(&self, x: &mut [f32], batch: usize, seq: usize, causal: bool, ws: &mut Workspace, mut trace: Option<&mut Vec<Vec<f32>>>) {
        let d = self.cfg.hidden_size;
        let tokens = batch * seq;
        debug_assert_eq!(x.len(), tokens * d);
        ws.ensure(&self.cfg, tokens);
        let score_len = attention_groups(batch, self.cfg.num_heads) * seq * seq;
        grow(&mut ws.scores, score_len);
        let scores = &mut ws.scores[..score_len];
        let h = &mut ws.h[..tokens * d];
        let qkv = &mut ws.qkv[..tokens * 3 * d];
        let heads = &mut ws.heads[..tokens * d];
        let mlp = &mut ws.mlp[..tokens * self.cfg.intermediate_size];
        let act: Activation = self.cfg.activation;
        for layer in &self.layers {
            // mirrors CLIPEncoderLayer.forward
            layer.ln1.forward(x, h);
            layer.qkv.forward(h, qkv, &mut ws.quant);
            attention(qkv, batch, seq, self.cfg.num_heads, causal, h, heads, scores);
            layer.out_proj.forward_residual(h, x, &mut ws.quant);
            layer.ln2.forward(x, h);
            layer.fc1.forward_act(h, mlp, act, &mut ws.quant);
            layer.fc2.forward_residual(mlp, x, &mut ws.quant);
            if let Some(tr) = trace.as_deref_mut() {
                tr.push(x.to_vec());
            }
        }
    }
}
