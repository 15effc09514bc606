//! The built-in CLIP engine: config, weights, preprocessing, tokenizer, vision and text towers.
