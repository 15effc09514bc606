//! Random CLIP checkpoints in the real configurations for the benchmarks (`bench_clip`, `bench_clip_cuda`) and
//! tests that need products large enough to run in parallel (`tests/clip_alloc_free.rs`):
//! HF tensor names, f16, loaded through the same safetensors path as a real checkpoint.

use rateclust::clip::weights::TensorFile;
use rateclust::clip::ClipConfig;
use rateclust::rng::Rng;
use safetensors::{Dtype, View};
use std::borrow::Cow;

struct F16Tensor {
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for &F16Tensor {
    fn dtype(&self) -> Dtype {
        Dtype::F16
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Random f16 weights with HF CLIP names for `cfg` (std 0.02 matrices, LayerNorm weight 1).
#[allow(dead_code)] // each including target uses one of the two forms
pub fn random_checkpoint(cfg: &ClipConfig, seed: u64) -> TensorFile {
    TensorFile::from_bytes("random checkpoint", random_safetensors(cfg, seed)).expect("a valid checkpoint")
}

/// [`random_checkpoint`] as the bytes of a `model.safetensors` file.
pub fn random_safetensors(cfg: &ClipConfig, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut tensors: Vec<(String, F16Tensor)> = Vec::new();
    let mut add = |name: String, shape: Vec<usize>, kind: u8| {
        let n: usize = shape.iter().product();
        let mut bytes = Vec::with_capacity(2 * n);
        for _ in 0..n {
            let v = match kind {
                b'1' => 1.0,
                b'0' => 0.0,
                _ => rng.normal() as f32 * 0.02,
            };
            bytes.extend_from_slice(&half::f16::from_f32(v).to_le_bytes());
        }
        tensors.push((name, F16Tensor { shape, bytes }));
    };
    let encoder = |add: &mut dyn FnMut(String, Vec<usize>, u8), p: &str, d: usize, m: usize, layers: usize| {
        for i in 0..layers {
            let l = format!("{p}encoder.layers.{i}.");
            for q in ["q_proj", "k_proj", "v_proj", "out_proj"] {
                add(format!("{l}self_attn.{q}.weight"), vec![d, d], b'r');
                add(format!("{l}self_attn.{q}.bias"), vec![d], b'0');
            }
            for ln in ["layer_norm1", "layer_norm2"] {
                add(format!("{l}{ln}.weight"), vec![d], b'1');
                add(format!("{l}{ln}.bias"), vec![d], b'0');
            }
            add(format!("{l}mlp.fc1.weight"), vec![m, d], b'r');
            add(format!("{l}mlp.fc1.bias"), vec![m], b'0');
            add(format!("{l}mlp.fc2.weight"), vec![d, m], b'r');
            add(format!("{l}mlp.fc2.bias"), vec![d], b'0');
        }
    };
    if let Some(v) = &cfg.vision {
        let (d, p) = (v.encoder.hidden_size, v.patch_size);
        add("vision_model.embeddings.class_embedding".into(), vec![d], b'r');
        add("vision_model.embeddings.patch_embedding.weight".into(), vec![d, 3, p, p], b'r');
        add("vision_model.embeddings.position_embedding.weight".into(), vec![v.seq_len(), d], b'r');
        for ln in ["pre_layrnorm", "post_layernorm"] {
            add(format!("vision_model.{ln}.weight"), vec![d], b'1');
            add(format!("vision_model.{ln}.bias"), vec![d], b'0');
        }
        encoder(&mut add, "vision_model.", d, v.encoder.intermediate_size, v.encoder.num_layers);
        add("visual_projection.weight".into(), vec![cfg.projection_dim, d], b'r');
    }
    if let Some(t) = &cfg.text {
        let d = t.encoder.hidden_size;
        add("text_model.embeddings.token_embedding.weight".into(), vec![t.vocab_size, d], b'r');
        add("text_model.embeddings.position_embedding.weight".into(), vec![t.max_position_embeddings, d], b'r');
        add("text_model.final_layer_norm.weight".into(), vec![d], b'1');
        add("text_model.final_layer_norm.bias".into(), vec![d], b'0');
        encoder(&mut add, "text_model.", d, t.encoder.intermediate_size, t.encoder.num_layers);
        add("text_projection.weight".into(), vec![cfg.projection_dim, d], b'r');
    }
    safetensors::serialize(tensors.iter().map(|(n, t)| (n.clone(), t)), None).expect("serialize")
}
