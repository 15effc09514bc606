//! Encoded images (JPEG, PNG, WebP, anything) through the decoder and its size limits: an error or an image,
//! never a crash, an abort or a huge allocation.
//!
//! Decoded with a budget of 2^20 pixels (the `max_image_pixels` a caller can set) rather than the default
//! 179 Mpx: a 64 KB input can legitimately describe a 100-Mpx blank PNG, and decoding those made the target
//! run at ~10 inputs/s. The budget check itself is covered here; the default value by tests/clip_preprocess.rs.
#![no_main]
use libfuzzer_sys::fuzz_target;

const FUZZ_MAX_PIXELS: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    if let Ok(img) = rateclust::clip::image::decode_bytes_within(data, FUZZ_MAX_PIXELS) {
        assert_eq!(img.data.len(), img.width * img.height * 3);
        assert!(img.width as u64 * img.height as u64 <= FUZZ_MAX_PIXELS);
    }
});
