//! CLIP tower throughput on the CPU, f32 and int8 (`Precision::Int8`), random weights in the real
//! configurations (generated here, loaded through the same safetensors path as a checkpoint). Reference:
//! `tools/bench/clip_torch.py` (same f32 cases).
//!
//!   cargo run --release --example bench_clip [case ...]
//!
//! Cases: `vit_b32_image` (ViT-B/32 vision tower, 224 px, batch 32), `vit_b32_image_one` (one image a call), `vit_l14_image` (ViT-L/14, batch 8),
//! `vit_b32_text_short` (ViT-B/32 text tower on "a photo of a {label}" prompts, batch 64); each ViT-B/32 case
//! and `vit_l14_image` also as `…_int8` (the linear layers in int8; L/14 keeps fc2 in f32).
//! Prints `PASS<TAB>case<TAB>milliseconds per item` for every timed repetition and
//! `BENCH<TAB>case<TAB>milliseconds per item` (best of them).
//!
//!   cargo run --release --example bench_clip -- --write-model DIR
//!
//! writes the ViT-B/32 checkpoint the `vit_b32_*` cases use (`config.json` + `model.safetensors`, the same bytes,
//! seed 1) to DIR and exits, so that other engines (`tools/bench/clip_cpu_peers.py`) load the same weights.

#[path = "common/clip_random.rs"]
mod clip_random;
use clip_random::{random_checkpoint, random_safetensors};
use rateclust::clip::{ClipConfig, ClipModel, EmbedOptions, Precision};
use rateclust::rng::Rng;
use std::time::Instant;

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
        let ms = t.elapsed().as_secs_f64() * 1e3 / items as f64;
        println!("PASS\t{case}\t{ms:.3}");
        best = best.min(ms);
    }
    println!("BENCH\t{case}\t{best:.3}");
}

/// The ViT-B/32 configuration of the `vit_b32_*` cases (openai/clip-vit-base-patch32 shapes, HF defaults).
const B32_CONFIG: &str = r#"{"model_type": "clip", "projection_dim": 512}"#;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--write-model") {
        let dir = std::path::PathBuf::from(args.get(i + 1).expect("--write-model DIR"));
        std::fs::create_dir_all(&dir).expect("create the model directory");
        let cfg = vision_config(B32_CONFIG);
        std::fs::write(dir.join("model.safetensors"), random_safetensors(&cfg, 1)).expect("write model.safetensors");
        // transformers needs `architectures` to pick CLIPModel; everything else is the defaults both sides share.
        std::fs::write(dir.join("config.json"), r#"{"model_type": "clip", "architectures": ["CLIPModel"], "projection_dim": 512}"#)
            .expect("write config.json");
        eprintln!("wrote {}", dir.display());
        return;
    }
    let want = |c: &str| args.is_empty() || args.iter().any(|a| a == c);
    let mut rng = Rng::new(11);
    eprintln!("threads: {}", rayon::current_num_threads());

    for (precision, suffix) in [(Precision::F32, ""), (Precision::Int8, "_int8")] {
        let case = |c: &str| format!("{c}{suffix}");
        if !(want(&case("vit_b32_image")) || want(&case("vit_b32_image_one")) || want(&case("vit_b32_text_short"))) {
            continue;
        }
        // openai/clip-vit-base-patch32
        let cfg = vision_config(B32_CONFIG);
        let model = ClipModel::from_tensors_with(cfg.clone(), &random_checkpoint(&cfg, 1), precision).unwrap();
        if want(&case("vit_b32_image")) {
            let n = 32;
            let pixels: Vec<f32> = (0..n * 3 * 224 * 224).map(|_| rng.normal() as f32).collect();
            let opts = EmbedOptions { batch_size: n, ..Default::default() };
            bench(&case("vit_b32_image"), n, 3, || {
                std::hint::black_box(model.embed_pixels(&pixels, n, &opts).unwrap());
            });
        }
        if want(&case("vit_b32_image_one")) {
            // One image a call: the latency a media pipeline sees per frame.
            let pixels: Vec<f32> = (0..3 * 224 * 224).map(|_| rng.normal() as f32).collect();
            let mut out = vec![0.0f32; model.output_dim(true, &EmbedOptions::default())];
            bench(&case("vit_b32_image_one"), 1, 10, || {
                model.embed_pixels_into(&pixels, 1, &EmbedOptions::default(), &mut out).unwrap();
                std::hint::black_box(&out);
            });
        }
        if want(&case("vit_b32_text_short")) {
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
            bench(&case("vit_b32_text_short"), n, 3, || {
                std::hint::black_box(model.embed_token_ids(&refs, &opts).unwrap());
            });
        }
    }
    for (precision, case) in [(Precision::F32, "vit_l14_image"), (Precision::Int8, "vit_l14_image_int8")] {
        if !want(case) {
            continue;
        }
        // openai/clip-vit-large-patch14 vision tower
        let cfg = vision_config(
            r#"{"model_type": "clip_vision_model", "hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
                "num_attention_heads": 16, "patch_size": 14, "image_size": 224, "projection_dim": 768}"#,
        );
        let model = ClipModel::from_tensors_with(cfg.clone(), &random_checkpoint(&cfg, 2), precision).unwrap();
        let n = 8;
        let pixels: Vec<f32> = (0..n * 3 * 224 * 224).map(|_| rng.normal() as f32).collect();
        let opts = EmbedOptions { batch_size: n, ..Default::default() };
        bench(case, n, 1, || {
            std::hint::black_box(model.embed_pixels(&pixels, n, &opts).unwrap());
        });
    }
}
