//! Saved clusterers (safetensors + JSON metadata): a file that loads must also label points without a
//! crash.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rateclust::cluster::clusterer::Clusterer;
use rateclust::progress::NoProgress;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Clusterer::from_bytes(data) {
        let dim = m.input_dim();
        if dim <= 4096 {
            let x: Vec<f32> = (0..2 * dim).map(|i| ((i * 7919) % 13) as f32 - 6.0).collect();
            let _ = m.assign(&x, 2, &mut NoProgress);
        }
    }
});
