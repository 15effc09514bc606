//! The built-in CLIP engine: config, weights, preprocessing, tokenizer, vision and text towers.
//! Image decoding and resizing, which are not CLIP-specific, live in [`crate::image_io`].

pub mod config;
pub mod cuda;
pub mod encoder;
pub mod hub;
pub mod layers;
pub mod model;
pub mod preprocess;
pub mod text;
pub mod tokenizer;
pub mod vision;
pub mod weights;

pub use config::{Activation, ClipConfig, TextConfig, VisionConfig};
pub use layers::Precision;
pub use model::{ClipModel, EmbedOptions, LoadOptions, Towers};
