//! Encoded images (JPEG, PNG, WebP, anything) through the decoder and its size limits: an error or an image,
//! never a crash, an abort or a huge allocation.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(img) = rateclust::clip::image::decode_bytes(data) {
        assert_eq!(img.data.len(), img.width * img.height * 3);
    }
});
