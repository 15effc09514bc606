//! The rate stage's C API, exercised from C (`examples/c/mlc_loss.c`) against both the shared and the
//! static library: the gradient against finite differences computed in C, f32 against f64, error paths.

mod common;
use common::*;

#[test]
fn c_example_mlc_loss_runs_with_both_link_modes() {
    for link in BOTH {
        let exe = build_example("c/mlc_loss.c", link);
        let out = run_example(&exe, &[]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("max |finite difference - gradient|"), "{text}");
        assert!(text.contains("NULL z -> status 1"), "{text}");
        assert!(text.contains("NaN in z -> status 2"), "{text}");
        assert!(text.contains("sinkhorn_gradient = 7 -> status 1"), "{text}");
        assert!(text.trim_end().ends_with("ok"), "{text}");
    }
}
