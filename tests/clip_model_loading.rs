//! Loading CLIP checkpoints: every weight dtype, single-tower layouts, and clear errors for broken
//! directories (missing or mis-shaped tensors, truncated files, bad config).

mod common;
use common::fixture;
use rateclust::clip::{ClipModel, EmbedOptions};
use rateclust::Error;
use safetensors::{Dtype, SafeTensors, View};
use std::borrow::Cow;
use std::path::{Path, PathBuf};

struct Owned {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for &Owned {
    fn dtype(&self) -> Dtype {
        self.dtype
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

/// The tiny model's tensors as f32 values (name, shape, values).
fn tiny_tensors() -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(fixture("clip_model/tiny/model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(name, t)| {
            assert_eq!(t.dtype(), Dtype::F16);
            let v = t.data().chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect();
            (name, t.shape().to_vec(), v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn encode(values: &[f32], dtype: Dtype) -> Vec<u8> {
    match dtype {
        Dtype::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        Dtype::F16 => values.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect(),
        Dtype::BF16 => values.iter().flat_map(|v| half::bf16::from_f32(*v).to_le_bytes()).collect(),
        other => panic!("{other:?}"),
    }
}

/// A fresh model directory holding `config` and the given tensors in `dtype`.
fn write_dir(name: &str, config: &str, tensors: &[(String, Vec<usize>, Vec<f32>)], dtype: Dtype) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("clip_model_loading").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), config).unwrap();
    let owned: Vec<(String, Owned)> = tensors
        .iter()
        .map(|(n, s, v)| (n.clone(), Owned { dtype, shape: s.clone(), bytes: encode(v, dtype) }))
        .collect();
    let bytes = safetensors::serialize(owned.iter().map(|(n, t)| (n.clone(), t)), None).unwrap();
    std::fs::write(dir.join("model.safetensors"), bytes).unwrap();
    dir
}

fn tiny_config() -> String {
    std::fs::read_to_string(fixture("clip_model/tiny/config.json")).unwrap()
}

fn pixels(n: usize) -> Vec<f32> {
    (0..n * 3 * 32 * 32).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect()
}

const IDS: [&[u32]; 2] = [&[49406, 320, 1125, 539, 320, 2368, 49407], &[49406, 1929, 49407]];
const RAW: EmbedOptions = EmbedOptions { normalize: false, pooled: false, batch_size: 8, max_image_pixels: rateclust::image_io::MAX_IMAGE_PIXELS };

fn embed_both(dir: &Path) -> (Vec<f32>, Vec<f32>) {
    let m = ClipModel::load(dir).unwrap_or_else(|e| panic!("loading {}: {e}", dir.display()));
    (m.embed_pixels(&pixels(2), 2, &RAW).unwrap(), m.embed_token_ids(&IDS, &RAW).unwrap())
}

#[test]
fn f32_and_bf16_weights_load_like_f16() {
    let t = tiny_tensors();
    let reference = embed_both(&fixture("clip_model/tiny"));
    // f16 → f32 is exact: identical results.
    let f32_dir = write_dir("f32", &tiny_config(), &t, Dtype::F32);
    assert_eq!(embed_both(&f32_dir), reference);
    // bf16: the same values rounded to bf16, stored once as bf16 and once as f32, must agree exactly.
    let rounded: Vec<_> = t.iter().map(|(n, s, v)| (n.clone(), s.clone(), v.iter().map(|x| half::bf16::from_f32(*x).to_f32()).collect())).collect();
    let bf16_dir = write_dir("bf16", &tiny_config(), &rounded, Dtype::BF16);
    let bf16_as_f32 = write_dir("bf16_as_f32", &tiny_config(), &rounded, Dtype::F32);
    assert_eq!(embed_both(&bf16_dir), embed_both(&bf16_as_f32));
}

#[test]
fn text_only_checkpoint_matches_the_full_model() {
    let t: Vec<_> = tiny_tensors().into_iter().filter(|(n, _, _)| n.starts_with("text_model.") || n.starts_with("text_projection.")).collect();
    let full: serde_json::Value = serde_json::from_str(&tiny_config()).unwrap();
    let mut text_cfg = full["text_config"].clone();
    text_cfg["projection_dim"] = 24.into();
    let dir = write_dir("text_only", &text_cfg.to_string(), &t, Dtype::F16);
    let m = ClipModel::load(&dir).unwrap();
    assert!(m.has_text() && !m.has_vision());
    assert_eq!(m.embed_dim(), 24);
    let reference = embed_both(&fixture("clip_model/tiny")).1;
    assert_eq!(m.embed_token_ids(&IDS, &RAW).unwrap(), reference);
    let e = m.embed_pixels(&pixels(1), 1, &RAW).unwrap_err();
    assert!(e.to_string().contains("no vision tower"), "{e}");
}

#[test]
fn vision_tower_without_projection_returns_pooled_output() {
    // CLIPVisionModel: no visual_projection; the embedding is the pooled output.
    let t: Vec<_> = tiny_tensors().into_iter().filter(|(n, _, _)| n.starts_with("vision_model.")).collect();
    let full: serde_json::Value = serde_json::from_str(&tiny_config()).unwrap();
    let dir = write_dir("vision_no_proj", &full["vision_config"].to_string(), &t, Dtype::F16);
    let m = ClipModel::load(&dir).unwrap();
    assert_eq!(m.embed_dim(), 48);
    let full_model = ClipModel::load(fixture("clip_model/tiny")).unwrap();
    let pooled = full_model.embed_pixels(&pixels(2), 2, &EmbedOptions { pooled: true, ..RAW }).unwrap();
    assert_eq!(m.embed_pixels(&pixels(2), 2, &RAW).unwrap(), pooled);
}

fn load_err(dir: &Path) -> Error {
    match ClipModel::load(dir) {
        Ok(_) => panic!("{} loaded but should not", dir.display()),
        Err(e) => e,
    }
}

fn assert_format(e: &Error, needles: &[&str]) {
    assert!(matches!(e, Error::Format(_)), "expected a format error, got {e}");
    for n in needles {
        assert!(e.to_string().contains(n), "message should mention {n:?}: {e}");
    }
}

#[test]
fn missing_tensor_is_named() {
    let t: Vec<_> = tiny_tensors().into_iter().filter(|(n, _, _)| n != "text_model.encoder.layers.1.mlp.fc2.bias").collect();
    let dir = write_dir("missing", &tiny_config(), &t, Dtype::F16);
    assert_format(&load_err(&dir), &["text_model.encoder.layers.1.mlp.fc2.bias", "missing"]);
    let t: Vec<_> = tiny_tensors().into_iter().filter(|(n, _, _)| n != "visual_projection.weight").collect();
    let dir = write_dir("missing_proj", &tiny_config(), &t, Dtype::F16);
    assert_format(&load_err(&dir), &["visual_projection.weight"]);
}

#[test]
fn mis_shaped_tensor_is_named() {
    let mut t = tiny_tensors();
    let i = t.iter().position(|(n, _, _)| n == "vision_model.embeddings.position_embedding.weight").unwrap();
    t[i].1 = vec![16, 48];
    t[i].2.truncate(16 * 48);
    let dir = write_dir("bad_shape", &tiny_config(), &t, Dtype::F16);
    assert_format(&load_err(&dir), &["vision_model.embeddings.position_embedding.weight", "[16, 48]", "[17, 48]"]);
    // A config that does not match the weights fails the same way.
    let cfg = tiny_config().replace("\"intermediate_size\": 96", "\"intermediate_size\": 128");
    let dir = write_dir("bad_config_shape", &cfg, &tiny_tensors(), Dtype::F16);
    assert_format(&load_err(&dir), &["vision_model.encoder.layers.0.mlp.fc1.weight", "[96, 48]"]);
}

#[test]
fn truncated_safetensors_is_a_format_error() {
    let dir = write_dir("truncated", &tiny_config(), &tiny_tensors(), Dtype::F16);
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    for keep in [bytes.len() - 1000, 100, 5] {
        std::fs::write(&path, &bytes[..keep]).unwrap();
        assert_format(&load_err(&dir), &["model.safetensors"]);
    }
}

#[test]
fn bad_or_missing_files_are_reported() {
    let cfg = tiny_config().replace("\"hidden_act\": \"gelu\"", "\"hidden_act\": \"swish\"");
    let dir = write_dir("bad_act", &cfg, &tiny_tensors(), Dtype::F16);
    assert_format(&load_err(&dir), &["vision_config.hidden_act", "swish"]);
    let dir = write_dir("no_weights", &tiny_config(), &[], Dtype::F16);
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    assert_format(&load_err(&dir), &["model.safetensors", "not found"]);
    let e = load_err(Path::new("/nonexistent/clip/dir"));
    assert!(matches!(e, Error::Io { .. }), "{e}");
    assert!(e.to_string().contains("config.json"), "{e}");
}

#[test]
fn bad_inputs_are_invalid_arguments() {
    let m = ClipModel::load(fixture("clip_model/tiny")).unwrap();
    let e = m.embed_pixels(&pixels(2)[1..], 2, &RAW).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)) && e.to_string().contains("3 × 32 × 32"), "{e}");
    let mut nan = pixels(1);
    nan[5] = f32::NAN;
    assert!(matches!(m.embed_pixels(&nan, 1, &RAW).unwrap_err(), Error::NonFinite(_)));
    let e = m.embed_token_ids(&[&[49406, 320]], &RAW).unwrap_err();
    assert!(e.to_string().contains("no end-of-text token"), "{e}");
    let e = m.embed_token_ids(&[&[49406, 60000, 49407]], &RAW).unwrap_err();
    assert!(e.to_string().contains("60000"), "{e}");
    let long: Vec<u32> = std::iter::repeat_n(320, 80).chain([49407]).collect();
    let e = m.embed_token_ids(&[&long], &RAW).unwrap_err();
    assert!(e.to_string().contains("max_position_embeddings"), "{e}");
    assert!(m.embed_token_ids(&[], &RAW).unwrap().is_empty());
    assert!(m.embed_pixels(&[], 0, &RAW).unwrap().is_empty());
}

/// Loading one tower gives that tower's embeddings bit for bit, and asking the missing tower is an error
/// naming it; asking for a tower the checkpoint does not have fails at load.
#[test]
fn one_tower_loads_embed_like_both_and_refuse_the_other() {
    use rateclust::clip::Towers;
    use rateclust::DeviceKind;
    let dir = fixture("clip_model/tiny");
    let (images, texts) = embed_both(&dir);
    let vision = ClipModel::load_towers(&dir, DeviceKind::Cpu, Towers::Images).unwrap();
    assert_eq!(vision.embed_pixels(&pixels(2), 2, &RAW).unwrap(), images);
    let e = vision.embed_token_ids(&IDS, &RAW).unwrap_err();
    assert!(e.to_string().contains("no text tower"), "{e}");
    let text = ClipModel::load_towers(&dir, DeviceKind::Cpu, Towers::Texts).unwrap();
    assert_eq!(text.embed_token_ids(&IDS, &RAW).unwrap(), texts);
    assert!(text.embed_pixels(&pixels(2), 2, &RAW).unwrap_err().to_string().contains("no vision tower"));
    let Err(e) = ClipModel::load_towers(fixture("clip_model/tiny_vision"), DeviceKind::Cpu, Towers::Texts) else { panic!("a vision-only model has no text tower") };
    assert!(matches!(e, Error::InvalidArgument(_)) && e.to_string().contains("no text tower"), "{e}");
}
