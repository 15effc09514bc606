//! `.npy` files: header parsing, dtype and shape checks, and the conversions the CLI applies.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = rateclust::io::npy::parse_npy(data, "fuzz") {
        let _ = a.to_f32_matrix("fuzz");
        let _ = a.to_i64_vec("fuzz");
    }
});
