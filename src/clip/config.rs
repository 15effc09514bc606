//! The Hugging Face CLIP `config.json`: `CLIPConfig` (model_type `clip`, with `text_config` and
//! `vision_config`), or a single tower's `CLIPVisionConfig` (`clip_vision_model`, e.g. a saved
//! `CLIPVisionModelWithProjection`) or `CLIPTextConfig` (`clip_text_model`).
//!
//! Missing fields take transformers' defaults (`configuration_clip.py`), exactly as `from_pretrained`
//! does, because real checkpoints omit many of them. Values we cannot run (an unknown activation, a
//! hidden size not divisible by the head count, …) are a [`Error::Format`] naming the field.

use crate::error::{Error, Result};
use serde_json::{Map, Value};
use std::path::Path;

/// The MLP nonlinearity (`hidden_act`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `x · sigmoid(1.702 x)` (transformers `QuickGELUActivation`; OpenAI CLIP).
    QuickGelu,
    /// The exact, erf-based GELU (transformers `gelu`; e.g. LAION / OpenCLIP ViT-H and bigG).
    Gelu,
}

/// What both towers share: the transformer encoder's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderConfig {
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub intermediate_size: usize,
    pub activation: Activation,
    pub layer_norm_eps: f32,
}

impl EncoderConfig {
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }
}

/// `CLIPVisionConfig`.
#[derive(Debug, Clone, PartialEq)]
pub struct VisionConfig {
    pub encoder: EncoderConfig,
    pub image_size: usize,
    pub patch_size: usize,
    pub num_channels: usize,
    /// Only meaningful for a vision-only model (`CLIPVisionModelWithProjection`); a `CLIPConfig` has one
    /// top-level `projection_dim`.
    pub projection_dim: usize,
}

impl VisionConfig {
    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }
    /// Tokens per image: the class token plus one per patch.
    pub fn seq_len(&self) -> usize {
        self.grid() * self.grid() + 1
    }
}

/// `CLIPTextConfig`.
#[derive(Debug, Clone, PartialEq)]
pub struct TextConfig {
    pub encoder: EncoderConfig,
    pub vocab_size: usize,
    pub max_position_embeddings: usize,
    /// Where the text is pooled: transformers pools at `argmax(input_ids)` when this is 2 (configs saved
    /// before transformers PR #24773), otherwise at the first occurrence of this id.
    pub eos_token_id: i64,
    pub bos_token_id: i64,
    pub projection_dim: usize,
}

/// Which towers a checkpoint holds, and the joint settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipConfig {
    pub vision: Option<VisionConfig>,
    pub text: Option<TextConfig>,
    /// The shared embedding size of a `CLIPModel`; for a single tower, that tower's `projection_dim`.
    pub projection_dim: usize,
    pub logit_scale_init_value: f32,
}

impl ClipConfig {
    /// Reads and validates `config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json(&text).map_err(|e| match e {
            Error::Format(m) => Error::Format(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Parses a `config.json` text.
    pub fn from_json(text: &str) -> Result<Self> {
        let v: Value = serde_json::from_str(text).map_err(|e| Error::Format(format!("config.json is not valid JSON: {e}")))?;
        let root = v.as_object().ok_or_else(|| Error::Format("config.json: expected a JSON object".into()))?;
        let model_type = match root.get("model_type") {
            Some(Value::String(s)) => Some(s.as_str()),
            None | Some(Value::Null) => None,
            Some(other) => return Err(Error::Format(format!("field `model_type`: expected a string, got {other}"))),
        };
        // Older CLIPConfig files carry `text_config_dict` / `vision_config_dict` (transformers reads both).
        let sub = |key: &str| -> Result<Option<&Map<String, Value>>> {
            match root.get(key).or_else(|| root.get(&format!("{key}_dict"))) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Object(m)) => Ok(Some(m)),
                Some(other) => Err(Error::Format(format!("field `{key}`: expected an object, got {other}"))),
            }
        };
        match model_type {
            Some("clip") | None if root.contains_key("text_config") || root.contains_key("vision_config") || model_type.is_some() => {
                let empty = Map::new();
                let vision = parse_vision(sub("vision_config")?.unwrap_or(&empty), "vision_config.")?;
                let text = parse_text(sub("text_config")?.unwrap_or(&empty), "text_config.")?;
                let projection_dim = get_usize(root, "projection_dim", "", 512)?;
                let logit_scale_init_value = get_f64(root, "logit_scale_init_value", "", 2.6592)? as f32;
                Ok(ClipConfig { vision: Some(vision), text: Some(text), projection_dim, logit_scale_init_value })
            }
            Some("clip_vision_model") => {
                let vision = parse_vision(root, "")?;
                Ok(ClipConfig { projection_dim: vision.projection_dim, vision: Some(vision), text: None, logit_scale_init_value: 2.6592 })
            }
            Some("clip_text_model") => {
                let text = parse_text(root, "")?;
                Ok(ClipConfig { projection_dim: text.projection_dim, vision: None, text: Some(text), logit_scale_init_value: 2.6592 })
            }
            Some(other) => Err(Error::Format(format!(
                "field `model_type`: '{other}' is not a CLIP model (expected clip, clip_vision_model or clip_text_model)"
            ))),
            None => Err(Error::Format("config.json has no `model_type` and no `text_config`/`vision_config`".into())),
        }
    }
}

fn parse_encoder(m: &Map<String, Value>, prefix: &str, d: [usize; 4]) -> Result<EncoderConfig> {
    let hidden_size = get_usize(m, "hidden_size", prefix, d[0])?;
    let num_layers = get_usize(m, "num_hidden_layers", prefix, d[1])?;
    let num_heads = get_usize(m, "num_attention_heads", prefix, d[2])?;
    let intermediate_size = get_usize(m, "intermediate_size", prefix, d[3])?;
    for (name, v) in [("hidden_size", hidden_size), ("num_attention_heads", num_heads), ("intermediate_size", intermediate_size)] {
        if v == 0 {
            return Err(Error::Format(format!("field `{prefix}{name}` must be positive")));
        }
    }
    if hidden_size % num_heads != 0 {
        return Err(Error::Format(format!(
            "field `{prefix}hidden_size` ({hidden_size}) is not divisible by `{prefix}num_attention_heads` ({num_heads})"
        )));
    }
    let activation = match m.get("hidden_act") {
        None | Some(Value::Null) => Activation::QuickGelu,
        Some(Value::String(s)) if s == "quick_gelu" => Activation::QuickGelu,
        Some(Value::String(s)) if s == "gelu" => Activation::Gelu,
        Some(other) => {
            return Err(Error::Format(format!("field `{prefix}hidden_act`: unsupported activation {other} (expected quick_gelu or gelu)")))
        }
    };
    let layer_norm_eps = get_f64(m, "layer_norm_eps", prefix, 1e-5)?;
    if !(layer_norm_eps > 0.0 && layer_norm_eps < 1.0) {
        return Err(Error::Format(format!("field `{prefix}layer_norm_eps` = {layer_norm_eps} is out of range")));
    }
    Ok(EncoderConfig { hidden_size, num_layers, num_heads, intermediate_size, activation, layer_norm_eps: layer_norm_eps as f32 })
}

/// Defaults: transformers `CLIPVisionConfig.__init__` (ViT-B/32).
fn parse_vision(m: &Map<String, Value>, prefix: &str) -> Result<VisionConfig> {
    let encoder = parse_encoder(m, prefix, [768, 12, 12, 3072])?;
    let image_size = get_usize(m, "image_size", prefix, 224)?;
    let patch_size = get_usize(m, "patch_size", prefix, 32)?;
    let num_channels = get_usize(m, "num_channels", prefix, 3)?;
    let projection_dim = get_usize(m, "projection_dim", prefix, 512)?;
    if patch_size == 0 || image_size == 0 || image_size % patch_size != 0 {
        return Err(Error::Format(format!(
            "fields `{prefix}image_size` ({image_size}) and `{prefix}patch_size` ({patch_size}): the image must be a whole number of patches"
        )));
    }
    if num_channels != 3 {
        return Err(Error::Format(format!("field `{prefix}num_channels` = {num_channels}: only RGB (3) is supported")));
    }
    Ok(VisionConfig { encoder, image_size, patch_size, num_channels, projection_dim })
}

/// Defaults: transformers `CLIPTextConfig.__init__`.
fn parse_text(m: &Map<String, Value>, prefix: &str) -> Result<TextConfig> {
    let encoder = parse_encoder(m, prefix, [512, 12, 8, 2048])?;
    let vocab_size = get_usize(m, "vocab_size", prefix, 49408)?;
    let max_position_embeddings = get_usize(m, "max_position_embeddings", prefix, 77)?;
    let eos_token_id = get_i64(m, "eos_token_id", prefix, 49407)?;
    let bos_token_id = get_i64(m, "bos_token_id", prefix, 49406)?;
    let projection_dim = get_usize(m, "projection_dim", prefix, 512)?;
    if vocab_size == 0 || max_position_embeddings == 0 {
        return Err(Error::Format(format!("fields `{prefix}vocab_size` and `{prefix}max_position_embeddings` must be positive")));
    }
    if eos_token_id != 2 && (eos_token_id < 0 || eos_token_id as u64 >= vocab_size as u64) {
        return Err(Error::Format(format!("field `{prefix}eos_token_id` = {eos_token_id} is outside the vocabulary (size {vocab_size})")));
    }
    Ok(TextConfig { encoder, vocab_size, max_position_embeddings, eos_token_id, bos_token_id, projection_dim })
}

fn get_usize(m: &Map<String, Value>, key: &str, prefix: &str, default: usize) -> Result<usize> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .and_then(|x| usize::try_from(x).ok())
            .ok_or_else(|| Error::Format(format!("field `{prefix}{key}`: expected a non-negative integer, got {v}"))),
    }
}

fn get_i64(m: &Map<String, Value>, key: &str, prefix: &str, default: i64) -> Result<i64> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v.as_i64().ok_or_else(|| Error::Format(format!("field `{prefix}{key}`: expected an integer, got {v}"))),
    }
}

fn get_f64(m: &Map<String, Value>, key: &str, prefix: &str, default: f64) -> Result<f64> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_f64()
            .filter(|x| x.is_finite())
            .ok_or_else(|| Error::Format(format!("field `{prefix}{key}`: expected a finite number, got {v}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_clip_config_takes_transformers_defaults() {
        let c = ClipConfig::from_json(r#"{"model_type": "clip"}"#).unwrap();
        let v = c.vision.unwrap();
        let t = c.text.unwrap();
        assert_eq!((v.encoder.hidden_size, v.encoder.num_layers, v.patch_size, v.image_size), (768, 12, 32, 224));
        assert_eq!((t.encoder.hidden_size, t.encoder.num_heads, t.max_position_embeddings, t.eos_token_id), (512, 8, 77, 49407));
        assert_eq!(v.seq_len(), 50);
        assert_eq!(c.projection_dim, 512);
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            (r#"{"model_type": "clip", "vision_config": {"hidden_act": "relu"}}"#, "vision_config.hidden_act"),
            (r#"{"model_type": "clip", "text_config": {"hidden_size": 100, "num_attention_heads": 8}}"#, "text_config.hidden_size"),
            (r#"{"model_type": "clip", "vision_config": {"patch_size": 30}}"#, "vision_config.patch_size"),
            (r#"{"model_type": "clip", "projection_dim": -1}"#, "projection_dim"),
            (r#"{"model_type": "bert"}"#, "model_type"),
            (r#"{"model_type": "clip_text_model", "layer_norm_eps": "x"}"#, "layer_norm_eps"),
            (r#"[1, 2]"#, "JSON object"),
            (r#"{"model_type": "clip""#, "not valid JSON"),
        ];
        for (json, field) in cases {
            let e = ClipConfig::from_json(json).unwrap_err();
            assert!(matches!(e, Error::Format(_)), "{json}: {e}");
            assert!(e.to_string().contains(field), "{json}: message should name {field}: {e}");
        }
    }

    #[test]
    fn single_tower_configs() {
        let c = ClipConfig::from_json(r#"{"model_type": "clip_vision_model", "projection_dim": 768, "hidden_size": 1024, "num_attention_heads": 16, "patch_size": 14}"#).unwrap();
        assert!(c.text.is_none());
        assert_eq!(c.projection_dim, 768);
        assert_eq!(c.vision.unwrap().seq_len(), 257);
        let c = ClipConfig::from_json(r#"{"model_type": "clip_text_model", "eos_token_id": 2}"#).unwrap();
        assert!(c.vision.is_none());
        assert_eq!(c.text.unwrap().eos_token_id, 2);
    }
}
