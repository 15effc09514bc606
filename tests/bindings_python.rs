//! The Python package's ctypes declarations (python/rateclust/_native.py) against the C ABI, with plain python3 (no
//! numpy) loading the freshly built shared library. The package itself (and examples/python/demo.py, which uses it)
//! is tested by pytest in python/tests, which scripts/test.sh runs after installing it with pip.

mod common;
use common::*;
use std::process::Command;

/// `offset:size` of each field and the struct's size, as ctypes and as Rust's `#[repr(C)]` lay them out.
macro_rules! rust_layout {
    ($ty:ty; $($field:ident),*) => {{
        let fields: Vec<String> = vec![$(format!("{}:{}", std::mem::offset_of!($ty, $field), {
            fn size_of_field<T, F>(_: fn(&T) -> &F) -> usize { std::mem::size_of::<F>() }
            size_of_field(|s: &$ty| &s.$field)
        })),*];
        format!("{} {}", std::mem::size_of::<$ty>(), fields.join(" "))
    }};
}

/// The ctypes structures in python/rateclust/_native.py are hand-written mirrors of the header: a field added, removed or
/// reordered in Rust must fail here rather than corrupt memory in Python.
#[test]
fn python_ctypes_structs_match_the_c_layout() {
    use rateclust::ffi::{clip::*, cluster::*, label::*};
    let script = r#"
import ctypes, sys
sys.path.insert(0, sys.argv[1])
import _native as r  # the declarations alone: no numpy needed
for s in (r.FitParamsC, r.EmbedParamsC, r.FrameC, r.LabelParamsC):
    print(ctypes.sizeof(s), " ".join("%d:%d" % (getattr(s, f).offset, getattr(s, f).size) for f, _ in s._fields_))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(repo().join("python/rateclust"))
        .env("RATECLUST_LIB", shared_library())
        .output()
        .expect("running python3 (the Python binding test needs python3 on PATH; CI has it)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let python = String::from_utf8_lossy(&out.stdout);
    let rust = [
        rust_layout!(rateclust_fit_params; k, k_max, hidden, zdim, eta, eps_sq, gamma, lambda, sinkhorn_half_iters,
            exact_sinkhorn_gradient, batch, steps, warmup, head_restarts, lr, lr_cluster, momentum, weight_decay,
            weight_decay_cluster, seed, single_head, normalize_input, spectral_sample, kmeans_restarts,
            assign_rule, subspace_rank, sample_clustering, kmeans_candidates),
        rust_layout!(rateclust_embed_params; normalize, pooled, batch_size, progress, progress_user_data, max_image_pixels),
        rust_layout!(rateclust_frame; data, width, height, stride_bytes, format),
        rust_layout!(rateclust_label_params; logit_scale, top),
    ];
    let python: Vec<&str> = python.lines().collect();
    assert_eq!(python, rust, "ctypes layouts (left) differ from the C ABI (right)");
}
