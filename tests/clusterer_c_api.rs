//! The cluster C API from C (examples/c/cluster.c), against both the shared and the static library:
//! fit → assign → save → load → same labels → metrics → select k, and the error paths.

mod common;
use common::*;

#[test]
fn c_example_cluster_runs_with_both_link_modes() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    for link in BOTH {
        let exe = build_example("c/cluster.c", link);
        let out = run_example(&exe, &[dir.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("save/load: same labels"), "{text}");
        assert!(text.contains("expected error: non-finite input"), "{text}");
        assert!(text.contains("expected error: format error"), "{text}");
        assert!(text.contains("fitted on dimension"), "{text}");
        assert!(text.trim_end().ends_with("ok"), "{text}");
    }
}
