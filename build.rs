//! Generates the C header `include/rateclust.h` from the Rust sources with cbindgen.
//!
//! The header is always written to `$OUT_DIR/rateclust.h` (the library embeds it so that a test can compare
//! it with the committed file). Ordinary builds never touch the source tree: the committed
//! `include/rateclust.h` is rewritten only on request (`RATECLUST_WRITE_HEADER=1`, which `scripts/header.sh`
//! sets), via a temporary file and a rename. A stale committed header fails the `header_is_current` test.

use std::path::PathBuf;

fn main() {
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=RATECLUST_WRITE_HEADER");

    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("reading cbindgen.toml");
    let generated = cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen could not generate include/rateclust.h");
    let mut text = Vec::new();
    generated.write(&mut text);
    std::fs::write(out_dir.join("rateclust.h"), &text).expect("writing $OUT_DIR/rateclust.h");

    if std::env::var_os("RATECLUST_WRITE_HEADER").is_some_and(|v| v == "1") {
        let target = crate_dir.join("include").join("rateclust.h");
        if std::fs::read(&target).ok().as_deref() != Some(&text[..]) {
            let tmp = crate_dir.join("include").join(".rateclust.h.tmp");
            std::fs::create_dir_all(crate_dir.join("include")).expect("creating include/");
            std::fs::write(&tmp, &text).expect("writing include/.rateclust.h.tmp");
            std::fs::rename(&tmp, &target).expect("renaming the generated header into include/");
        }
    }
}
