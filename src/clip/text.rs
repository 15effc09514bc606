//! The text tower: transformers `CLIPTextTransformer` (`CLIPTextModel.forward`), block by block.
//!
//! Because of the causal mask, the hidden state at position t depends only on tokens 0..=t, so the
//! pooled (end-of-text) state needs positions up to the batch's latest pooling position only: shorter
//! batches cost proportionally less than transformers' fixed 77 positions, with identical results.

use super::config::TextConfig;
use super::encoder::{load_layer_norm, Encoder, Workspace};
use crate::scratch::grow;
use super::layers::{LayerNorm, Precision};
use super::weights::Tensors;
use crate::error::Result;
use crate::invalid_arg;
use rayon::prelude::*;

pub struct TextTower {
    pub cfg: TextConfig,
    /// `[vocab, d]`
    pub(crate) token_embedding: Vec<f32>,
    /// `[max_positions, d]`
    pub(crate) position_embedding: Vec<f32>,
    pub(crate) encoder: Encoder,
    pub(crate) final_layer_norm: LayerNorm,
}

/// Where transformers pools a sequence (`CLIPTextModel.forward`): at `argmax(input_ids)` (first maximum)
/// when `eos_token_id == 2` (configs saved before transformers PR #24773), else at the first
/// `eos_token_id`. `None` if the sequence has no end-of-text token — transformers would silently pool
/// position 0 there; we report it instead, since it always means the ids were not made by the tokenizer.
pub fn pool_index(ids: &[u32], eos_token_id: i64) -> Option<usize> {
    if ids.is_empty() {
        return None;
    }
    if eos_token_id == 2 {
        let mut best = 0;
        for (i, &t) in ids.iter().enumerate() {
            if t > ids[best] {
                best = i;
            }
        }
        Some(best)
    } else {
        ids.iter().position(|&t| t as i64 == eos_token_id)
    }
}

impl TextTower {
    /// Loads `{prefix}embeddings.…`, `{prefix}encoder.…`, `{prefix}final_layer_norm.…`, the encoder's linear
    /// layers in `precision`.
    pub fn load(t: &Tensors, prefix: &str, cfg: &TextConfig, precision: Precision) -> Result<Self> {
        let d = cfg.encoder.hidden_size;
        Ok(TextTower {
            token_embedding: t.get(&format!("{prefix}embeddings.token_embedding.weight"), &[cfg.vocab_size, d])?,
            position_embedding: t.get(&format!("{prefix}embeddings.position_embedding.weight"), &[cfg.max_position_embeddings, d])?,
            encoder: Encoder::load(t, &format!("{prefix}encoder."), &cfg.encoder, precision)?,
            final_layer_norm: load_layer_norm(t, &format!("{prefix}final_layer_norm."), d, cfg.encoder.layer_norm_eps)?,
            cfg: cfg.clone(),
        })
    }

    /// Checks a batch of token id sequences and returns each one's pooling position.
    pub fn pool_positions(&self, ids: &[&[u32]]) -> Result<Vec<usize>> {
        ids.iter().enumerate().map(|(i, seq)| self.pool_position(i, seq)).collect()
    }

    /// Checks token id sequence number `i` and returns its pooling position.
    fn pool_position(&self, i: usize, seq: &[u32]) -> Result<usize> {
        if seq.len() > self.cfg.max_position_embeddings {
            return Err(invalid_arg!(
                "token sequence {i} has {} tokens; the model takes at most {} (max_position_embeddings)",
                seq.len(),
                self.cfg.max_position_embeddings
            ));
        }
        if let Some(&bad) = seq.iter().find(|&&t| t as usize >= self.cfg.vocab_size) {
            return Err(invalid_arg!("token sequence {i} holds id {bad}, outside the vocabulary (size {})", self.cfg.vocab_size));
        }
        pool_index(seq, self.cfg.eos_token_id).ok_or_else(|| invalid_arg!("token sequence {i} has no end-of-text token (id {})", self.cfg.eos_token_id))
    }

    /// Pooled output (`pooler_output`: final_layer_norm at the end-of-text position) for a batch of token
    /// id sequences (any lengths ≤ max_position_embeddings, no padding needed). `trace` receives
    /// transformers' `hidden_states` (embeddings, then each layer's output) over the first
    /// `max(pool position) + 1` positions of each sequence, `[n·len, d]`; the length is returned with it.
    pub fn forward(&self, ids: &[&[u32]], trace: Option<&mut Vec<Vec<f32>>>) -> Result<(Vec<f32>, usize)> {
        let mut ws = TextScratch::default();
        let (pooled, len) = self.forward_with(ids, trace, &mut ws)?;
        Ok((pooled.to_vec(), len))
    }

    /// [`TextTower::forward`] with every buffer taken from `ws`: the pooled rows (`[n, d]`) live in `ws`
    /// until its next use. A workspace that already served as many tokens allocates nothing (without
    /// `trace`).
    pub fn forward_with<'w>(&self, ids: &[&[u32]], mut trace: Option<&mut Vec<Vec<f32>>>, ws: &'w mut TextScratch) -> Result<(&'w [f32], usize)> {
        ws.pools.clear();
        for (i, seq) in ids.iter().enumerate() {
            ws.pools.push(self.pool_position(i, seq)?);
        }
        let n = ids.len();
        let d = self.cfg.encoder.hidden_size;
        let Some(len) = ws.pools.iter().max().map(|p| p + 1) else {
            return Ok((&[], 0));
        };

        // CLIPTextEmbeddings: token + position embeddings. Positions past a sequence's own end (when it is
        // shorter than `len`) are filled with its end-of-text token; causality keeps them from mattering.
        grow(&mut ws.x, n * len * d);
        let x = &mut ws.x[..n * len * d];
        x.par_chunks_mut(len * d).zip(ids.par_iter()).zip(ws.pools.par_iter()).for_each(|((xs, seq), &pool)| {
            for t in 0..len {
                let tok = *seq.get(t).unwrap_or(&seq[pool]) as usize;
                let te = &self.token_embedding[tok * d..][..d];
                let pe = &self.position_embedding[t * d..][..d];
                for ((o, a), b) in xs[t * d..][..d].iter_mut().zip(te).zip(pe) {
                    *o = a + b;
                }
            }
        });
        if let Some(tr) = trace.as_deref_mut() {
            tr.push(x.to_vec());
        }
        ws.keep.clear();
        ws.keep.extend(ws.pools.iter().enumerate().map(|(i, &p)| i * len + p));
        self.encoder.forward(x, n, len, true, &ws.keep, &mut ws.encoder, trace);

        // final_layer_norm is per token, so apply it to the pooled rows only.
        grow(&mut ws.pooled, 2 * n * d);
        let (rows, pooled) = ws.pooled[..2 * n * d].split_at_mut(n * d);
        for (row, &r) in rows.chunks_exact_mut(d).zip(&ws.keep) {
            row.copy_from_slice(&x[r * d..][..d]);
        }
        self.final_layer_norm.forward(rows, pooled);
        Ok((pooled, len))
    }
}

/// Every buffer of one [`TextTower::forward_with`] pass (embeddings and hidden states, the encoder's
/// workspace, pooling positions, pooled rows). Buffers only grow, so reusing a workspace for passes no
/// larger than before allocates nothing.
#[derive(Default)]
pub struct TextScratch {
    encoder: Workspace,
    x: Vec<f32>,
    /// Each sequence's pooling position, then its row in the stacked tokens.
    pools: Vec<usize>,
    keep: Vec<usize>,
    /// Pooled rows before (`[n, d]`), then after the final LayerNorm (`[n, d]`).
    pooled: Vec<f32>,
}

impl TextScratch {
    /// Bytes the buffers hold.
    pub fn bytes(&self) -> usize {
        self.encoder.bytes() + 4 * (self.x.capacity() + self.pooled.capacity()) + 8 * (self.pools.capacity() + self.keep.capacity())
    }
}

#[cfg(test)]
mod tests {
    use super::pool_index;

    #[test]
    fn pooling_position_follows_transformers() {
        // new configs: first eos (padding may repeat it)
        assert_eq!(pool_index(&[49406, 320, 1125, 49407, 49407, 49407], 49407), Some(3));
        // legacy eos_token_id == 2: argmax of the ids, first maximum
        assert_eq!(pool_index(&[49406, 320, 49407, 0, 49407], 2), Some(2));
        assert_eq!(pool_index(&[49406, 320, 1125], 49407), None);
        assert_eq!(pool_index(&[], 49407), None);
    }
}
