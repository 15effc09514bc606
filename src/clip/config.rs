//! The Hugging Face CLIP `config.json`: `CLIPConfig` (model_type `clip`, with `text_config` and
//! `vision_config`), or a single tower's `CLIPVisionConfig` (`clip_vision_model`, e.g. a saved
//! `CLIPVisionModelWithProjection`) or `CLIPTextConfig` (`clip_text_model`).
//!
//! Missing fields take transformers' defaults (`configuration_clip.py`), exactly as `from_pretrained`
//! does, because real checkpoints omit many of them. Values we cannot run (an unknown activation, a
//! hidden size not divisible by the head count, …) are a [`Error::Format`] naming the field.

use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use serde::Deserialize;
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
        // serde_json refuses numbers that overflow f64, so every float read below is finite.
        let v: Value = serde_json::from_str(text).map_err(|e| Error::Format(format!("config.json is not valid JSON: {e}")))?;
        let root = v.as_object().ok_or_else(|| Error::Format("config.json: expected a JSON object".into()))?;
        // The top level is read by hand: its shape depends on `model_type` and on which keys are present
        // at all (a null `text_config` still marks a CLIPConfig and hides `text_config_dict`), which
        // serde's `Option` cannot tell from a missing key.
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
        let logit_scale_init_value = LOGIT_SCALE_INIT as f32;
        match model_type {
            Some("clip") | None if root.contains_key("text_config") || root.contains_key("vision_config") || model_type.is_some() => {
                let empty = Map::new();
                let vision = parse::<VisionJson>(sub("vision_config")?.unwrap_or(&empty), "vision_config.")?.check("vision_config.")?;
                let text = parse::<TextJson>(sub("text_config")?.unwrap_or(&empty), "text_config.")?.check("text_config.")?;
                let top = parse::<ClipJson>(root, "")?;
                Ok(ClipConfig {
                    vision: Some(vision),
                    text: Some(text),
                    projection_dim: top.projection_dim,
                    logit_scale_init_value: top.logit_scale_init_value as f32,
                })
            }
            Some("clip_vision_model") => {
                let vision = parse::<VisionJson>(root, "")?.check("")?;
                Ok(ClipConfig { projection_dim: vision.projection_dim, vision: Some(vision), text: None, logit_scale_init_value })
            }
            Some("clip_text_model") => {
                let text = parse::<TextJson>(root, "")?.check("")?;
                Ok(ClipConfig { projection_dim: text.projection_dim, vision: None, text: Some(text), logit_scale_init_value })
            }
            Some(other) => Err(Error::Format(format!(
                "field `model_type`: '{other}' is not a CLIP model (expected clip, clip_vision_model or clip_text_model)"
            ))),
            None => Err(Error::Format("config.json has no `model_type` and no `text_config`/`vision_config`".into())),
        }
    }
}

/// Reads one (sub-)config object into `T` (unknown fields ignored). A null value counts as missing, as in
/// transformers (`None` means "the default"). serde's error does not say which field it was reading, so on
/// failure the fields are tried one at a time to name it.
fn parse<T: DeserializeOwned>(m: &Map<String, Value>, prefix: &str) -> Result<T> {
    let m: Map<String, Value> = m.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), v.clone())).collect();
    serde_json::from_value(Value::Object(m.clone())).map_err(|e| {
        let alone =
            |(k, v): (String, Value)| serde_json::from_value::<T>(Value::Object(Map::from_iter([(k.clone(), v)]))).err().map(|e| (k, e));
        match m.into_iter().find_map(alone) {
            Some((k, e)) => Error::Format(format!("field `{prefix}{k}`: {e}")),
            None => Error::Format(format!("config.json: {e}")),
        }
    })
}

// Defaults: the `__init__` signatures of transformers' `CLIPConfig`, `CLIPVisionConfig` (ViT-B/32) and
// `CLIPTextConfig`.
const LOGIT_SCALE_INIT: f64 = 2.6592;
#[rustfmt::skip]
mod default {
    pub fn n<const N: usize>() -> usize { N }
    pub fn id<const N: i64>() -> i64 { N }
    pub fn eps() -> f64 { 1e-5 }
    pub fn logit_scale() -> f64 { super::LOGIT_SCALE_INIT }
    pub fn quick_gelu() -> String { "quick_gelu".into() }
}

#[rustfmt::skip]
#[derive(Deserialize)]
struct ClipJson {
    #[serde(default = "default::n::<512>")] projection_dim: usize,
    #[serde(default = "default::logit_scale")] logit_scale_init_value: f64,
}

/// The encoder fields both towers have; the const parameters are the tower's defaults for the four sizes.
#[rustfmt::skip]
#[derive(Deserialize)]
struct EncoderJson<const HIDDEN: usize, const LAYERS: usize, const HEADS: usize, const MLP: usize> {
    #[serde(default = "default::n::<HIDDEN>")] hidden_size: usize,
    #[serde(default = "default::n::<LAYERS>")] num_hidden_layers: usize,
    #[serde(default = "default::n::<HEADS>")] num_attention_heads: usize,
    #[serde(default = "default::n::<MLP>")] intermediate_size: usize,
    #[serde(default = "default::quick_gelu")] hidden_act: String,
    #[serde(default = "default::eps")] layer_norm_eps: f64,
}

#[rustfmt::skip]
#[derive(Deserialize)]
struct VisionJson {
    #[serde(flatten)] encoder: EncoderJson<768, 12, 12, 3072>,
    #[serde(default = "default::n::<224>")] image_size: usize,
    #[serde(default = "default::n::<32>")] patch_size: usize,
    #[serde(default = "default::n::<3>")] num_channels: usize,
    #[serde(default = "default::n::<512>")] projection_dim: usize,
}

#[rustfmt::skip]
#[derive(Deserialize)]
struct TextJson {
    #[serde(flatten)] encoder: EncoderJson<512, 12, 8, 2048>,
    #[serde(default = "default::n::<49408>")] vocab_size: usize,
    #[serde(default = "default::n::<77>")] max_position_embeddings: usize,
    #[serde(default = "default::id::<49407>")] eos_token_id: i64,
    #[serde(default = "default::id::<49406>")] bos_token_id: i64,
    #[serde(default = "default::n::<512>")] projection_dim: usize,
}

impl<const A: usize, const B: usize, const C: usize, const D: usize> EncoderJson<A, B, C, D> {
    fn check(self, prefix: &str) -> Result<EncoderConfig> {
        let EncoderJson { hidden_size, num_hidden_layers: num_layers, num_attention_heads: num_heads, intermediate_size, .. } = self;
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
        let layer_norm_eps = self.layer_norm_eps;
        if !(layer_norm_eps > 0.0 && layer_norm_eps < 1.0) {
            return Err(Error::Format(format!("field `{prefix}layer_norm_eps` = {layer_norm_eps} is out of range")));
        }
        let activation = match self.hidden_act.as_str() {
            "quick_gelu" => Activation::QuickGelu,
            "gelu" => Activation::Gelu,
            other => {
                return Err(Error::Format(format!(
                    "field `{prefix}hidden_act`: unsupported activation '{other}' (expected quick_gelu or gelu)"
                )))
            }
        };
        Ok(EncoderConfig { hidden_size, num_layers, num_heads, intermediate_size, activation, layer_norm_eps: layer_norm_eps as f32 })
    }
}

impl VisionJson {
    fn check(self, prefix: &str) -> Result<VisionConfig> {
        let VisionJson { encoder, image_size, patch_size, num_channels, projection_dim } = self;
        let encoder = encoder.check(prefix)?;
        if patch_size == 0 || image_size == 0 || image_size % patch_size != 0 {
            return Err(Error::Format(format!(
                "fields `{prefix}image_size` ({image_size}) and `{prefix}patch_size` ({patch_size}): the image must be a whole number of patches"
            )));
        }
        // An image is 3 · image_size² values: refuse a size whose product overflows rather than wrap.
        if image_size.checked_mul(image_size).and_then(|n| n.checked_mul(3)).is_none() {
            return Err(Error::Format(format!("field `{prefix}image_size` = {image_size} is too large")));
        }
        if num_channels != 3 {
            return Err(Error::Format(format!("field `{prefix}num_channels` = {num_channels}: only RGB (3) is supported")));
        }
        Ok(VisionConfig { encoder, image_size, patch_size, num_channels, projection_dim })
    }
}

impl TextJson {
    fn check(self, prefix: &str) -> Result<TextConfig> {
        let TextJson { encoder, vocab_size, max_position_embeddings, eos_token_id, bos_token_id, projection_dim } = self;
        let encoder = encoder.check(prefix)?;
        if vocab_size == 0 || max_position_embeddings == 0 {
            return Err(Error::Format(format!("fields `{prefix}vocab_size` and `{prefix}max_position_embeddings` must be positive")));
        }
        if eos_token_id != 2 && (eos_token_id < 0 || eos_token_id as u64 >= vocab_size as u64) {
            return Err(Error::Format(format!(
                "field `{prefix}eos_token_id` = {eos_token_id} is outside the vocabulary (size {vocab_size})"
            )));
        }
        Ok(TextConfig { encoder, vocab_size, max_position_embeddings, eos_token_id, bos_token_id, projection_dim })
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
            (r#"{"model_type": "clip_text_model", "num_hidden_layers": 1.5}"#, "num_hidden_layers"),
            (r#"{"model_type": "clip_text_model", "eos_token_id": 99999999999999999999}"#, "eos_token_id"),
            (r#"{"model_type": "clip", "vision_config": {"hidden_size": 0}}"#, "vision_config.hidden_size"),
            (r#"{"model_type": "clip", "vision_config": {"image_size": 4294967296, "patch_size": 1}}"#, "vision_config.image_size"),
            (r#"{"model_type": "clip", "text_config": []}"#, "text_config"),
            (r#"{"model_type": "clip", "logit_scale_init_value": 1e400}"#, "not valid JSON"),
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

    #[test]
    fn nulls_take_defaults_unknown_fields_are_ignored_and_old_dict_keys_are_read() {
        let c = ClipConfig::from_json(
            r#"{"model_type": null, "projection_dim": null, "architectures": ["CLIPModel"], "text_config_dict": {"hidden_act": "gelu",
                "layer_norm_eps": null, "dropout": 0.0}, "vision_config": {"hidden_size": null, "hidden_act": null, "initializer_range": 0.02}}"#,
        )
        .unwrap();
        let (v, t) = (c.vision.unwrap(), c.text.unwrap());
        assert_eq!((c.projection_dim, v.encoder.hidden_size, v.encoder.activation), (512, 768, Activation::QuickGelu));
        assert_eq!((t.encoder.activation, t.encoder.layer_norm_eps, c.logit_scale_init_value), (Activation::Gelu, 1e-5, 2.6592));
    }
}
