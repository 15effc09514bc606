//! The C++ wrapper examples/cpp/rateclust.hpp through examples/cpp/cluster_demo.cpp, against both the shared
//! and the static library: a fit that separates an easy union of subspaces, save/load giving the same labels,
//! errors surfacing as rateclust::Error with the status and message, embeddings with the tiny CLIP fixture,
//! and an exception thrown in a progress callback reaching the caller.

mod common;
use common::*;

#[test]
fn cpp_wrapper_demo_runs_with_both_link_modes() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let model = fixture("clip_model/tiny");
    let image = fixture("clip_model/image.png");
    for link in BOTH {
        let exe = build_example("cpp/cluster_demo.cpp", link);
        let out = run_example(&exe, &[dir.to_str().unwrap(), model.to_str().unwrap(), image.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_bindings_demo_output(&text);
        assert!(text.contains("expected error (status 1): invalid argument: features have dimension 25"), "{text}");
        assert!(text.contains("expected error (status 3): I/O error"), "{text}");
    }
}
