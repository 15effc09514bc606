//! Encoded images (JPEG, PNG, WebP, anything) through the decoder and its size limits: an error or an image,
//! never a crash, an abort or a huge allocation.
//!
//! Decoded with a budget of 2^16 pixels (the `max_image_pixels` a caller can set) rather than the default
//! 179 Mpx: mutated headers quickly claim large frames whose missing data decodes as zeros, and at 2^20
//! pixels such inputs (~300 ms each under ASan) held the target at ~20 inputs/s. The budget check itself is
//! exercised here; the default value by tests/clip_preprocess.rs.
#![no_main]
use libfuzzer_sys::fuzz_target;

const FUZZ_MAX_PIXELS: u64 = 1 << 16;

fuzz_target!(|data: &[u8]| {
    if let Ok(img) = rateclust::image_io::decode_bytes_within(data, FUZZ_MAX_PIXELS) {
        assert_eq!(img.data.len(), img.width * img.height * 3);
        assert!(img.width as u64 * img.height as u64 <= FUZZ_MAX_PIXELS);
    }
});
