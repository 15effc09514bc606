//! Benchmark of CLIP input handling: JPEG decoding, preprocessing (resize + crop + normalise) and
//! tokenisation. Prints `BENCH<TAB><case><TAB><ms per op>`; the reference (Pillow + transformers'
//! `CLIPImageProcessorPil` / `CLIPTokenizer`) is `tools/bench/clip_io_torch.py`, same case names.
//!
//!     cargo run --release --example bench_clip_io

use std::path::PathBuf;
use std::time::Instant;

use rateclust::image_io::{decode_bytes, RgbImage8};
use rateclust::clip::preprocess::{preprocess, PreprocessConfig};
use rateclust::clip::tokenizer::Tokenizer;

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clip_io").join(rel)
}

/// Median milliseconds per call over `reps` calls (after one warm-up call).
fn time_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    t[reps / 2]
}

/// The same deterministic 1920×1080 frame as the reference script builds with NumPy.
fn synthetic_frame() -> RgbImage8 {
    let (w, h) = (1920, 1080);
    let mut data = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                data.push(((x * 7 + y * 13 + c * 50) % 256) as u8);
            }
        }
    }
    RgbImage8::new(w, h, data).unwrap()
}

fn main() {
    let cfg = PreprocessConfig::default();
    let kafka = std::fs::read(fixture("franz-kafka.jpg")).unwrap();
    let ms = time_ms(21, || {
        decode_bytes(&kafka).unwrap();
    });
    println!("BENCH\tdecode_jpeg_450x655\t{ms:.3}");

    let img = decode_bytes(&kafka).unwrap();
    let ms = time_ms(51, || {
        preprocess(&img, &cfg).unwrap();
    });
    println!("BENCH\tpreprocess_450x655_to_224\t{ms:.3}");

    let frame = synthetic_frame();
    let ms = time_ms(21, || {
        preprocess(&frame, &cfg).unwrap();
    });
    println!("BENCH\tpreprocess_1920x1080_to_224\t{ms:.3}");

    let tok = Tokenizer::from_bpe_gz(&fixture("bpe_simple_vocab_16e6_clip.txt.gz")).unwrap();
    let texts: Vec<String> = (0..1000).map(|i| format!("a photo of a thing number {i}, a kind of object")).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let ms = time_ms(11, || {
        tok.encode_batch(&refs, 77).unwrap();
    });
    println!("BENCH\ttokenize_1000_prompts_77\t{ms:.3}");
}
