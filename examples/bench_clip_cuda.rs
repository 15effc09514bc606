//! CLIP vision tower throughput on CUDA (f16 weights, f32 accumulation), random weights in the real
//! configurations. Reference: `tools/bench/clip_cuda_torch.py` (same cases: transformers + SDPA, fp16).
//!
//!   cargo run --release --example bench_clip_cuda [case ...]
//!
//! Cases: `cuda_vit_b32_image_b256` (ViT-B/32 vision tower + projection, 224 px, batch 256) and
//! `cuda_vit_l14_image_b256` (ViT-L/14, batch 256). Prints `BENCH<TAB>case<TAB>milliseconds per image`
//! (best of the timed repetitions). Each case also runs with the attention forced to the fused kernel and to
//! cuBLAS (`<case>_fused`, `<case>_gemm`: no PyTorch counterpart) to settle `CudaAttention::Auto`'s choice. Our time includes copying the f32 pixels from host memory to the GPU
//! and the embeddings back (what `ClipModel::embed_pixels` does); the PyTorch side starts from pixels
//! already on the GPU. Without a usable GPU it prints a SKIP line and exits with status 0.

#[path = "common/clip_random.rs"]
mod clip_random;
use clip_random::random_checkpoint;
use rateclust::clip::cuda::CudaAttention;
use rateclust::clip::{ClipConfig, ClipModel, EmbedOptions};
use rateclust::device::{Device, DeviceKind};
use rateclust::rng::Rng;
use std::time::Instant;

fn bench(case: &str, items: usize, reps: usize, mut f: impl FnMut()) {
    f();
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64() * 1e3 / items as f64);
    }
    println!("BENCH\t{case}\t{best:.4}");
}

fn run(case: &str, config_json: &str, seed: u64, reps: usize) {
    let cfg = ClipConfig::from_json(config_json).expect("config");
    let mut model = ClipModel::from_tensors(cfg.clone(), &random_checkpoint(&cfg, seed)).expect("random model");
    model.use_device(DeviceKind::Cuda).expect("uploading the model to the GPU");
    eprintln!("{case}: {}", model.device());
    let n = 256;
    let mut rng = Rng::new(seed + 100);
    let pixels: Vec<f32> = (0..n * 3 * 224 * 224).map(|_| rng.normal() as f32).collect();
    let opts = EmbedOptions { batch_size: n, ..Default::default() };
    for (suffix, attn) in [("", CudaAttention::Auto), ("_fused", CudaAttention::Fused), ("_gemm", CudaAttention::Gemm)] {
        model.set_cuda_attention(attn).expect("the model is on the GPU");
        bench(&format!("{case}{suffix}"), n, reps, || {
            std::hint::black_box(model.embed_pixels(&pixels, n, &opts).expect("embed_pixels on CUDA"));
        });
    }
}

fn main() {
    if let Err(e) = Device::open(DeviceKind::Cuda, 0) {
        println!("SKIP: no CUDA device ({e})");
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let want = |c: &str| args.is_empty() || args.iter().any(|a| a == c);
    if want("cuda_vit_b32_image_b256") {
        // openai/clip-vit-base-patch32 vision tower
        run(
            "cuda_vit_b32_image_b256",
            r#"{"model_type": "clip_vision_model", "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                "num_attention_heads": 12, "patch_size": 32, "image_size": 224, "projection_dim": 512}"#,
            1,
            10,
        );
    }
    if want("cuda_vit_l14_image_b256") {
        // openai/clip-vit-large-patch14 vision tower
        run(
            "cuda_vit_l14_image_b256",
            r#"{"model_type": "clip_vision_model", "hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
                "num_attention_heads": 16, "patch_size": 14, "image_size": 224, "projection_dim": 768}"#,
            2,
            5,
        );
    }
}
