//! `Precision::Int8` against our own f32 engine on a full-size random-weight ViT-B/32 (both towers, the
//! real shapes): every image and text embedding keeps cosine ≥ 0.999 to its f32 one, and ≥ 0.99 after
//! centring (each set minus its own batch mean), which is the part that tells inputs apart: random-weight
//! embeddings of different inputs share a large common direction that plain cosine would credit.
//!
//! The inputs are noise images and random token ids, so that every embedding differs from the others
//! only by what the input changes; an int8 path that kept the common direction but lost the rest would
//! fail the centred bar.

#[path = "../examples/common/clip_random.rs"]
#[allow(dead_code)]
mod clip_random;
mod common;

use clip_random::random_checkpoint;
use common::fixture;
use rateclust::clip::{ClipConfig, ClipModel, EmbedOptions, LoadOptions, Precision, Towers};
use rateclust::rng::Rng;
use rateclust::{DeviceKind, Error};

/// Cosine of each row pair of `a` and `b` (`d` columns), after subtracting each matrix's column means when
/// `centre`.
fn cosines(a: &[f32], b: &[f32], d: usize, centre: bool) -> Vec<f64> {
    let n = a.len() / d;
    let mean = |m: &[f32]| -> Vec<f64> {
        (0..d).map(|j| if centre { (0..n).map(|i| m[i * d + j] as f64).sum::<f64>() / n as f64 } else { 0.0 }).collect()
    };
    let (ma, mb) = (mean(a), mean(b));
    (0..n)
        .map(|i| {
            let x: Vec<f64> = (0..d).map(|j| a[i * d + j] as f64 - ma[j]).collect();
            let y: Vec<f64> = (0..d).map(|j| b[i * d + j] as f64 - mb[j]).collect();
            let dot: f64 = x.iter().zip(&y).map(|(p, q)| p * q).sum();
            let nx: f64 = x.iter().map(|p| p * p).sum::<f64>().sqrt();
            let ny: f64 = y.iter().map(|q| q * q).sum::<f64>().sqrt();
            dot / (nx * ny)
        })
        .collect()
}

fn min(v: &[f64]) -> f64 {
    v.iter().cloned().fold(f64::INFINITY, f64::min)
}

/// Checks both bars (plain cosine ≥ 0.999, centred ≥ 0.99); prints the minima (visible with --nocapture)
/// so that a run reports its margins.
fn check(what: &str, f32_rows: &[f32], int8_rows: &[f32], d: usize) {
    assert_eq!(f32_rows.len(), int8_rows.len());
    assert!(int8_rows.iter().all(|v| v.is_finite()), "{what}: non-finite int8 embedding");
    let (plain, centred) = (min(&cosines(f32_rows, int8_rows, d, false)), min(&cosines(f32_rows, int8_rows, d, true)));
    // How far apart the inputs are: the same measure between different f32 rows (rows i and i+1).
    let n = f32_rows.len() / d;
    let shifted: Vec<f32> = f32_rows[d..].iter().chain(&f32_rows[..d]).copied().collect();
    let between = cosines(f32_rows, &shifted, d, true).iter().sum::<f64>() / n as f64;
    println!("{what}: min cosine {plain:.5}, min centred cosine {centred:.5} (f32 rows against each other, centred: {between:.3})");
    assert!(plain >= 0.999, "{what}: min cosine to f32 {plain}");
    assert!(centred >= 0.99, "{what}: min centred cosine to f32 {centred}");
}

#[test]
fn int8_embeddings_match_f32_on_a_random_vit_b32() {
    let cfg = ClipConfig::from_json(r#"{"model_type": "clip", "projection_dim": 512}"#).unwrap();
    let file = random_checkpoint(&cfg, 7);
    let f32_model = ClipModel::from_tensors(cfg.clone(), &file).unwrap();
    let int8_model = ClipModel::from_tensors_with(cfg.clone(), &file, Precision::Int8).unwrap();
    drop(file);
    assert_eq!((f32_model.precision(), int8_model.precision()), (Precision::F32, Precision::Int8));
    let d = cfg.projection_dim;
    let mut rng = Rng::new(3);

    let n = 12;
    let pixels: Vec<f32> = (0..n * 3 * 224 * 224).map(|_| rng.normal() as f32).collect();
    let opts = EmbedOptions::default();
    let want = f32_model.embed_pixels(&pixels, n, &opts).unwrap();
    let got = int8_model.embed_pixels(&pixels, n, &opts).unwrap();
    check("images", &want, &got, d);

    // "a photo of a …" with 1 to 12 random tokens, and a few long ones (up to the 77-token context).
    let ids: Vec<Vec<u32>> = (0..24)
        .map(|i| {
            let extra = if i % 6 == 5 { 60 + rng.below(10) } else { 1 + rng.below(12) };
            let mut v = vec![49406, 320, 1125, 539, 320];
            v.extend((0..extra).map(|_| 1000 + rng.below(40000) as u32));
            v.push(49407);
            v
        })
        .collect();
    let refs: Vec<&[u32]> = ids.iter().map(|v| v.as_slice()).collect();
    let want = f32_model.embed_token_ids(&refs, &opts).unwrap();
    let got = int8_model.embed_token_ids(&refs, &opts).unwrap();
    check("texts", &want, &got, d);
}

/// Int8 is a CPU precision: asking for CUDA with it is refused before loading, `auto` stays on the CPU and
/// says why, and the loaded model embeds.
#[test]
fn int8_loads_on_the_cpu_only() {
    let dir = fixture("clip_model/tiny");
    let opts = |device| LoadOptions { device, towers: Towers::Both, precision: Precision::Int8 };
    let Err(e) = ClipModel::load_with(&dir, &opts(DeviceKind::Cuda)) else { panic!("int8 on CUDA must be refused") };
    assert!(matches!(e, Error::InvalidArgument(_)) && e.to_string().contains("CPU only"), "{e}");
    let m = ClipModel::load_with(&dir, &opts(DeviceKind::Auto)).unwrap();
    assert!(!m.on_cuda() && m.device().contains("int8"), "{}", m.device());
    assert_eq!(m.precision(), Precision::Int8);
    let s = m.image_size().unwrap();
    let e = m.embed_pixels(&vec![0.5; 3 * s * s], 1, &EmbedOptions::default()).unwrap();
    assert!(e.iter().all(|v| v.is_finite()) && e.iter().any(|&v| v != 0.0));
    let mut m = m;
    assert!(m.use_device(DeviceKind::Cuda).is_err());
    assert_eq!("int8".parse::<Precision>().unwrap(), Precision::Int8);
    assert!("fp16".parse::<Precision>().is_err());
}

/// The same bars on a full-size random ViT-L/14 vision tower (openai/clip-vit-large-patch14 shapes: 24
/// layers of width 1024, 257 tokens, quick_gelu), where int8 error has twice as many layers to accumulate;
/// such towers keep fc2 in f32 (`INT8_FC2_MAX_LAYERS`: all-int8 gave a centred cosine of 0.985 here).
#[test]
fn int8_embeddings_match_f32_on_a_random_vit_l14_vision_tower() {
    let cfg = ClipConfig::from_json(
        r#"{"model_type": "clip_vision_model", "hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
            "num_attention_heads": 16, "patch_size": 14, "image_size": 224, "projection_dim": 768}"#,
    )
    .unwrap();
    let file = random_checkpoint(&cfg, 5);
    let f32_model = ClipModel::from_tensors(cfg.clone(), &file).unwrap();
    let int8_model = ClipModel::from_tensors_with(cfg.clone(), &file, Precision::Int8).unwrap();
    drop(file);
    let n = 6;
    let mut rng = Rng::new(4);
    let pixels: Vec<f32> = (0..n * 3 * 224 * 224).map(|_| rng.normal() as f32).collect();
    let opts = EmbedOptions::default();
    let want = f32_model.embed_pixels(&pixels, n, &opts).unwrap();
    let got = int8_model.embed_pixels(&pixels, n, &opts).unwrap();
    check("ViT-L/14 images", &want, &got, cfg.projection_dim);
}
