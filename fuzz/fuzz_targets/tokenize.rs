//! Any text through the CLIP tokenizer (the tiny fixture model's vocabulary): bounded work and at most the
//! context length of tokens, whatever the input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rateclust::clip::tokenizer::Tokenizer;
use std::sync::OnceLock;

fn tokenizer() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/clip_model/tiny");
        Tokenizer::from_dir(&dir).expect("the tiny fixture's tokenizer")
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let t = tokenizer();
    let ids = t.encode(&text);
    assert!(ids.len() <= t.context_length());
});
