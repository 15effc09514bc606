//! Hugging Face CLIP `config.json` text: sizes are validated before anything is built from them.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = rateclust::clip::ClipConfig::from_json(text);
    }
});
