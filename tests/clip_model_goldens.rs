//! The CLIP towers against transformers: every stage of a tiny random `CLIPModel` (goldens from
//! `tools/golden/clip_model_goldens.py`) must match with cosine ≥ 0.99999 and relative error ≤ 1e-4 (f32).

mod common;
use common::fixture;
use rateclust::clip::{ClipModel, EmbedOptions};
use safetensors::{Dtype, SafeTensors};

const COS_MIN: f64 = 0.99999;
const REL_MAX: f64 = 1e-4;

struct Goldens {
    bytes: Vec<u8>,
}

impl Goldens {
    fn load() -> Self {
        Goldens { bytes: std::fs::read(fixture("clip_model/goldens.safetensors")).expect("goldens.safetensors") }
    }
    fn f32(&self, name: &str) -> (Vec<f32>, Vec<usize>) {
        let st = SafeTensors::deserialize(&self.bytes).unwrap();
        let t = st.tensor(name).unwrap_or_else(|_| panic!("golden {name}"));
        assert_eq!(t.dtype(), Dtype::F32);
        (t.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect(), t.shape().to_vec())
    }
    fn ids(&self) -> Vec<Vec<u32>> {
        let st = SafeTensors::deserialize(&self.bytes).unwrap();
        let t = st.tensor("input_ids").unwrap();
        assert_eq!(t.dtype(), Dtype::I64);
        let flat: Vec<u32> = t.data().chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap()) as u32).collect();
        flat.chunks(t.shape()[1]).map(|c| c.to_vec()).collect()
    }
}

/// Asserts cosine ≥ COS_MIN and ‖got − want‖ / ‖want‖ ≤ REL_MAX; returns (cosine, relative error).
fn check(what: &str, got: &[f32], want: &[f32]) -> (f64, f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let (mut dot, mut gg, mut ww, mut dd) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for (&g, &w) in got.iter().zip(want) {
        let (g, w) = (g as f64, w as f64);
        dot += g * w;
        gg += g * g;
        ww += w * w;
        dd += (g - w) * (g - w);
    }
    let cos = dot / (gg.sqrt() * ww.sqrt());
    let rel = dd.sqrt() / ww.sqrt();
    assert!(cos >= COS_MIN && rel <= REL_MAX, "{what}: cosine {cos}, relative error {rel}");
    (cos, rel)
}

fn tiny() -> ClipModel {
    ClipModel::load(fixture("clip_model/tiny")).expect("loading the tiny model")
}

const RAW: EmbedOptions = EmbedOptions { normalize: false, pooled: false, batch_size: 32, max_image_pixels: rateclust::image_io::MAX_IMAGE_PIXELS };

#[test]
fn vision_tower_matches_transformers_at_every_layer() {
    let g = Goldens::load();
    let model = tiny();
    let (pixels, shape) = g.f32("pixel_values");
    let n = shape[0];
    let mut trace = Vec::new();
    let pooled = model.vision_tower().unwrap().forward(&pixels, n, Some(&mut trace));
    assert_eq!(trace.len(), 3);
    for (i, h) in trace.iter().enumerate() {
        let (want, _) = g.f32(&format!("vision_hidden_{i}"));
        let per = want.len() / n;
        for img in 0..n {
            check(&format!("vision hidden_states[{i}] image {img}"), &h[img * per..][..per], &want[img * per..][..per]);
        }
    }
    let (want, _) = g.f32("vision_pooled");
    check("vision pooled", &pooled, &want);
    let emb = model.embed_pixels(&pixels, n, &RAW).unwrap();
    let (want, _) = g.f32("image_embeds");
    let d = want.len() / n;
    for img in 0..n {
        let (c, r) = check(&format!("image_embeds[{img}]"), &emb[img * d..][..d], &want[img * d..][..d]);
        eprintln!("image_embeds[{img}]: cosine {c:.9}, relative error {r:.2e}");
    }
    let pooled_out = model.embed_pixels(&pixels, n, &EmbedOptions { pooled: true, ..RAW }).unwrap();
    assert_eq!(pooled_out, pooled);
}

#[test]
fn text_tower_matches_transformers_at_every_layer() {
    let g = Goldens::load();
    let model = tiny();
    let ids = g.ids();
    let refs: Vec<&[u32]> = ids.iter().map(|v| v.as_slice()).collect();
    let text = model.text_tower().unwrap();
    let pools = text.pool_positions(&refs).unwrap();
    assert_eq!(pools[4], 76, "the long text is truncated with the end-of-text token last");
    let mut trace = Vec::new();
    let (pooled, len) = text.forward(&refs, Some(&mut trace)).unwrap();
    assert_eq!(len, 77);
    assert_eq!(trace.len(), 3);
    let d = 24;
    for (i, h) in trace.iter().enumerate() {
        let (want, shape) = g.f32(&format!("text_hidden_{i}"));
        for (s, &p) in pools.iter().enumerate() {
            // positions after the end-of-text token see padding in transformers: compare 0..=p only
            let got = &h[s * len * d..][..(p + 1) * d];
            let w = &want[s * shape[1] * d..][..(p + 1) * d];
            check(&format!("text hidden_states[{i}] text {s}"), got, w);
        }
    }
    let (want, _) = g.f32("text_pooled");
    check("text pooled", &pooled, &want);
    let emb = model.embed_token_ids(&refs, &RAW).unwrap();
    let (want, _) = g.f32("text_embeds");
    for s in 0..ids.len() {
        let (c, r) = check(&format!("text_embeds[{s}]"), &emb[s * d..][..d], &want[s * d..][..d]);
        eprintln!("text_embeds[{s}]: cosine {c:.9}, relative error {r:.2e}");
    }
}

#[test]
fn short_batches_compute_only_up_to_their_end_of_text() {
    let g = Goldens::load();
    let model = tiny();
    let ids = g.ids();
    // Unpadded sequences: cut each at its end-of-text token.
    let cut: Vec<Vec<u32>> = ids.iter().map(|s| s[..=s.iter().position(|&t| t == 49407).unwrap()].to_vec()).collect();
    let refs: Vec<&[u32]> = cut[..2].iter().map(|v| v.as_slice()).collect();
    let (_, len) = model.text_tower().unwrap().forward(&refs, None).unwrap();
    assert_eq!(len, cut[0].len().max(cut[1].len()));
    let all: Vec<&[u32]> = cut.iter().map(|v| v.as_slice()).collect();
    let (want, _) = g.f32("text_embeds");
    for bs in [1, 2, 5] {
        let emb = model.embed_token_ids(&all, &EmbedOptions { batch_size: bs, ..RAW }).unwrap();
        check(&format!("text_embeds, unpadded, batch size {bs}"), &emb, &want);
    }
}

#[test]
fn logits_and_normalisation_match_transformers() {
    let g = Goldens::load();
    let model = tiny();
    let (pixels, shape) = g.f32("pixel_values");
    let ids = g.ids();
    let refs: Vec<&[u32]> = ids.iter().map(|v| v.as_slice()).collect();
    let img = model.embed_pixels(&pixels, shape[0], &EmbedOptions::default()).unwrap();
    let txt = model.embed_token_ids(&refs, &EmbedOptions::default()).unwrap();
    for row in img.chunks(24).chain(txt.chunks(24)) {
        let norm: f32 = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "normalised row has norm {norm}");
    }
    let logits = model.logits_per_image(&img, &txt).unwrap();
    let (want, _) = g.f32("logits_per_image");
    check("logits_per_image", &logits, &want);
    let (scale, _) = g.f32("logit_scale");
    assert_eq!(model.logit_scale(), Some(scale[0]));
}

#[test]
fn image_batch_size_does_not_change_results() {
    let g = Goldens::load();
    let model = tiny();
    let (pixels, shape) = g.f32("pixel_values");
    let a = model.embed_pixels(&pixels, shape[0], &EmbedOptions { batch_size: 1, ..RAW }).unwrap();
    let b = model.embed_pixels(&pixels, shape[0], &EmbedOptions { batch_size: 2, ..RAW }).unwrap();
    let (want, _) = g.f32("image_embeds");
    check("batch size 1", &a, &want);
    check("batch size 2", &b, &want);
}

#[test]
fn vision_only_checkpoint_in_f32_matches_the_full_model() {
    let g = Goldens::load();
    let model = ClipModel::load(fixture("clip_model/tiny_vision")).unwrap();
    assert!(model.has_vision() && !model.has_text());
    assert_eq!(model.embed_dim(), 24);
    let (pixels, shape) = g.f32("pixel_values");
    let emb = model.embed_pixels(&pixels, shape[0], &RAW).unwrap();
    let (want, _) = g.f32("image_embeds");
    check("vision-only image_embeds", &emb, &want);
    let e = model.embed_token_ids(&[&[49406, 49407]], &RAW).unwrap_err();
    assert!(e.to_string().contains("no text tower"), "{e}");
}

#[test]
fn texts_through_the_tokenizer_match_transformers() {
    let g = Goldens::load();
    let model = tiny();
    let (_, meta) = SafeTensors::read_metadata(&g.bytes).unwrap();
    let texts: Vec<String> = serde_json::from_str(&meta.metadata().as_ref().unwrap()["texts"]).unwrap();
    let refs: Vec<&str> = texts.iter().map(|s| s.as_str()).collect();
    // Our tokenizer gives transformers' ids up to each end-of-text token.
    let tok = model.tokenizer().expect("tiny/ has vocab.json + merges.txt");
    for (text, want) in refs.iter().zip(g.ids()) {
        let got = tok.encode(text);
        assert_eq!(got[..], want[..got.len()], "token ids of {text:?}");
    }
    let emb = model.embed_texts(&refs, &RAW, &mut rateclust::progress::NoProgress).unwrap();
    let (want, _) = g.f32("text_embeds");
    check("text_embeds from strings", &emb, &want);
}

#[test]
fn image_file_through_preprocessing_matches_transformers() {
    let g = Goldens::load();
    let model = tiny();
    let mut seen = Vec::new();
    let mut progress = |stage: &str, done: u64, total: u64| {
        seen.push((stage.to_string(), done, total));
        true
    };
    let emb = model.embed_image_files(&[fixture("clip_model/image.png")], &RAW, &mut progress).unwrap();
    let (want, _) = g.f32("file_image_embeds");
    check("image.png embedding", &emb, &want);
    assert_eq!(seen.last().unwrap(), &("embed images".to_string(), 1, 1));
    // Cancelling from the progress callback stops the call.
    let e = model.embed_image_files(&[fixture("clip_model/image.png")], &RAW, &mut |_: &str, _: u64, _: u64| false).unwrap_err();
    assert!(matches!(e, rateclust::Error::Cancelled), "{e}");
}
