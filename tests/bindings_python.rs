//! The Python ctypes binding examples/python/rateclust.py through examples/python/demo.py, with plain python3
//! (no numpy) loading the freshly built shared library: a fit that separates an easy union of subspaces,
//! save/load giving the same labels, errors raised as RateclustError with status and message, embeddings
//! with the tiny CLIP fixture, and an exception raised in a progress callback reaching the caller.

mod common;
use common::*;
use std::process::Command;

fn number_after(text: &str, key: &str) -> f64 {
    let rest = &text[text.find(key).unwrap_or_else(|| panic!("no '{key}' in output:\n{text}")) + key.len()..];
    rest.split_whitespace().next().unwrap().parse().unwrap_or_else(|e| panic!("'{key}' not followed by a number ({e}):\n{text}"))
}

#[test]
fn python_ctypes_demo_runs_against_the_shared_library() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let model = fixture("clip_model/tiny");
    let image = fixture("clip_model/image.png");
    let out = Command::new("python3")
        .arg(repo().join("examples/python/demo.py"))
        .args([&dir, &model, &image])
        .env("RATECLUST_LIB", shared_library())
        // The demo must work from a plain interpreter: no site-packages from a virtualenv.
        .env_remove("PYTHONPATH")
        .output()
        .expect("running python3 (the Python binding test needs python3 on PATH; CI has it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo.py failed ({}):\nstdout:\n{text}\nstderr:\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("fitted: k = 4, dim = 24"), "{text}");
    assert!(number_after(&text, "progress calls:") > 0.0, "{text}");
    let acc = number_after(&text, "metrics: acc");
    assert!(acc >= 0.9, "accuracy {acc} on the easy synthetic data:\n{text}");
    assert!(text.contains("save/load: same labels for all 800 points"), "{text}");
    assert!(text.contains("expected error (INVALID_ARGUMENT): invalid argument: features have dimension 25"), "{text}");
    assert!(text.contains("expected error (NON_FINITE): non-finite input: features[5]"), "{text}");
    assert!(text.contains("expected error (IO): I/O error"), "{text}");
    assert!(text.contains("embedded 3 texts and 2 images of dim 24"), "{text}");
    assert!(text.contains("cluster 0 is named"), "{text}");
    assert!(text.contains("callback exception propagated: stop here"), "{text}");
    assert!(text.trim_end().ends_with("ok"), "{text}");
}
