//! CLIP tower throughput on the CPU, f32, random weights in the real configurations (generated here, loaded
//! through the same safetensors path as a checkpoint). Reference: `tools/bench/clip_torch.py` (same cases).
//!
//!   cargo run --release --example bench_clip [case ...]
//!
//! Cases: `vit_b32_image` (ViT-B/32 vision tower, 224 px, batch 32), `vit_l14_image` (ViT-L/14, batch 8),
//! `vit_b32_text_short` (ViT-B/32 text tower on "a photo of a {label}" prompts, batch 64).
//! Prints `BENCH<TAB>case<TAB>milliseconds per item` (best of the timed repetitions).

use rateclust::clip::weights::TensorFile;
use rateclust::clip::{ClipConfig, ClipModel, EmbedOptions};
use rateclust::rng::Rng;
use safetensors::{Dtype, View};
use std::borrow::Cow;
use std::time::Instant;

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
fn random_checkpoint(cfg: &ClipConfig, seed: u64) -> TensorFile {
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
    let bytes = safetensors::serialize(tensors.iter().map(|(n, t)| (n.clone(), t)), None).expect("serialize");
    TensorFile::from_bytes("random checkpoint", bytes)
}

fn vision_config(json: &str) -> ClipConfig {
    ClipConfig::from_json(json).expect("config")
}

/// Times `f` (which processes `items` items) `reps` times after one warm-up; prints the best ms/item.
fn bench(case: &str, items: usize, reps: usize, mut f: impl FnMut()) {
    f();
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64() * 1e3 / items as f64);
    }
    println!("BENCH\t{case}\t{best:.3}");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let want = |c: &str| args.is_empty() || args.iter().any(|a| a == c);
    let mut rng = Rng::new(11);
    eprintln!("threads: {}", rayon::current_num_threads());

    if want("vit_b32_image") || want("vit_b32_text_short") {
        // openai/clip-vit-base-patch32
        let cfg = vision_config(r#"{"model_type": "clip", "projection_dim": 512}"#);
        let model = ClipModel::from_tensors(cfg.clone(), &random_checkpoint(&cfg, 1)).unwrap();
        if want("vit_b32_image") {
            let n = 32;
            let pixels: Vec<f32> = (0..n * 3 * 224 * 224).map(|_| rng.normal() as f32).collect();
            let opts = EmbedOptions { batch_size: n, ..Default::default() };
            bench("vit_b32_image", n, 3, || {
                std::hint::black_box(model.embed_pixels(&pixels, n, &opts).unwrap());
            });
        }
        if want("vit_b32_text_short") {
            // "a photo of a {label}": sot, a, photo, of, a, 1–3 label tokens, eot (ids of the real CLIP BPE
            // for the prefix; label tokens drawn at random).
            let n = 256;
            let ids: Vec<Vec<u32>> = (0..n)
                .map(|_| {
                    let mut v = vec![49406, 320, 1125, 539, 320];
                    for _ in 0..1 + rng.below(3) {
                        v.push(1000 + rng.below(40000) as u32);
                    }
                    v.push(49407);
                    v
                })
                .collect();
            let refs: Vec<&[u32]> = ids.iter().map(|v| v.as_slice()).collect();
            let opts = EmbedOptions { batch_size: 64, ..Default::default() };
            bench("vit_b32_text_short", n, 3, || {
                std::hint::black_box(model.embed_token_ids(&refs, &opts).unwrap());
            });
        }
    }
    if want("vit_l14_image") {
        // openai/clip-vit-large-patch14 vision tower
        let cfg = vision_config(
            r#"{"model_type": "clip_vision_model", "hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
                "num_attention_heads": 16, "patch_size": 14, "image_size": 224, "projection_dim": 768}"#,
        );
        let model = ClipModel::from_tensors(cfg.clone(), &random_checkpoint(&cfg, 2)).unwrap();
        let n = 8;
        let pixels: Vec<f32> = (0..n * 3 * 224 * 224).map(|_| rng.normal() as f32).collect();
        let opts = EmbedOptions { batch_size: n, ..Default::default() };
        bench("vit_l14_image", n, 1, || {
            std::hint::black_box(model.embed_pixels(&pixels, n, &opts).unwrap());
        });
    }
}
