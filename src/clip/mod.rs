//! The built-in CLIP engine: config, weights, preprocessing, tokenizer, vision and text towers.

pub mod image;
pub mod preprocess;
pub mod resize;
pub mod tokenizer;
