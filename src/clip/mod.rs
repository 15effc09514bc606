//! The built-in CLIP engine: config, weights, preprocessing, tokenizer, vision and text towers.

pub mod config;
pub mod encoder;
pub mod layers;
pub mod model;
pub mod text;
pub mod vision;
pub mod weights;

pub use config::{Activation, ClipConfig, TextConfig, VisionConfig};
pub use model::{ClipModel, EmbedOptions};
