//! Raw frames as a C caller hands them over (width, height, stride and pixel format taken from the first
//! 13 bytes, the rest the pixels): conversion refuses what does not fit instead of reading out of bounds.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rateclust::ffi::mirror::CEnum;
use rateclust::image_io::{from_raw, PixelFormat};

fuzz_target!(|data: &[u8]| {
    if data.len() < 13 {
        return;
    }
    let w = u32::from_le_bytes(data[0..4].try_into().unwrap()) as usize % 4096;
    let h = u32::from_le_bytes(data[4..8].try_into().unwrap()) as usize % 4096;
    let stride = u32::from_le_bytes(data[8..12].try_into().unwrap()) as usize;
    let Some(format) = PixelFormat::from_c(data[12] as u32 % 8) else { return };
    if let Ok(img) = from_raw(&data[13..], w, h, stride, format) {
        assert_eq!(img.data.len(), img.width * img.height * 3);
    }
});
