//! The C++ wrapper examples/cpp/rateclust.hpp through examples/cpp/cluster_demo.cpp, against both the shared
//! and the static library: a fit that separates an easy union of subspaces, save/load giving the same labels,
//! errors surfacing as rateclust::Error with the status and message, embeddings with the tiny CLIP fixture,
//! and an exception thrown in a progress callback reaching the caller.

mod common;
use common::*;

/// Parses the number after `key` in a line like "metrics: acc 0.9988 nmi ...".
fn number_after(text: &str, key: &str) -> f64 {
    let rest = &text[text.find(key).unwrap_or_else(|| panic!("no '{key}' in output:\n{text}")) + key.len()..];
    rest.split_whitespace().next().unwrap().parse().unwrap_or_else(|e| panic!("'{key}' not followed by a number ({e}):\n{text}"))
}

#[test]
fn cpp_wrapper_demo_runs_with_both_link_modes() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let model = fixture("clip_model/tiny");
    let image = fixture("clip_model/image.png");
    for link in BOTH {
        let exe = build_example("cpp/cluster_demo.cpp", link);
        let out = run_example(&exe, &[dir.to_str().unwrap(), model.to_str().unwrap(), image.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("fitted: k = 4, dim = 24"), "{text}");
        assert!(number_after(&text, "progress calls:") > 0.0, "{text}");
        let acc = number_after(&text, "metrics: acc");
        assert!(acc >= 0.9, "accuracy {acc} on the easy synthetic data:\n{text}");
        assert!(text.contains("save/load: same labels for all 800 points"), "{text}");
        assert!(text.contains("expected error (status 1): invalid argument: features have dimension 25"), "{text}");
        assert!(text.contains("expected error (status 3): I/O error"), "{text}");
        assert!(text.contains("embedded 3 texts and 2 images of dim 24"), "{text}");
        assert!(text.contains("cluster 0 is named"), "{text}");
        assert!(text.contains("embedded 2 raw frames (RGB8 == BGR8)"), "{text}");
        assert!(text.contains("set_k: now "), "{text}");
        assert!(text.contains("default vocabulary: 998 names, first 'tench'"), "{text}");
        assert!(text.contains("callback exception propagated: stop here"), "{text}");
        assert!(text.trim_end().ends_with("ok"), "{text}");
    }
}
