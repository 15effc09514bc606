//! The Python ctypes binding examples/python/rateclust.py through examples/python/demo.py, with plain python3
//! (no numpy) loading the freshly built shared library: a fit that separates an easy union of subspaces,
//! save/load giving the same labels, errors raised as RateclustError with status and message, embeddings
//! with the tiny CLIP fixture, and an exception raised in a progress callback reaching the caller.

mod common;
use common::*;
use std::process::Command;

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
    assert_bindings_demo_output(&text);
    assert!(text.contains("expected error (INVALID_ARGUMENT): invalid argument: features have dimension 25"), "{text}");
    assert!(text.contains("expected error (NON_FINITE): non-finite input: features[5]"), "{text}");
    assert!(text.contains("expected error (IO): I/O error"), "{text}");
}

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

/// The ctypes structures in rateclust.py are hand-written mirrors of the header: a field added, removed or
/// reordered in Rust must fail here rather than corrupt memory in Python.
#[test]
fn python_ctypes_structs_match_the_c_layout() {
    use rateclust::ffi::{clip::*, cluster::*, label::*};
    let script = r#"
import ctypes, sys
sys.path.insert(0, sys.argv[1])
import rateclust as r
for s in (r.FitParams, r.EmbedParams, r.Frame, r.LabelParams):
    print(ctypes.sizeof(s), " ".join("%d:%d" % (getattr(s, f).offset, getattr(s, f).size) for f, _ in s._fields_))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(repo().join("examples/python"))
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
        rust_layout!(rateclust_embed_params; normalize, pooled, batch_size, progress, progress_user_data),
        rust_layout!(rateclust_frame; data, width, height, stride_bytes, format),
        rust_layout!(rateclust_label_params; logit_scale, top),
    ];
    let python: Vec<&str> = python.lines().collect();
    assert_eq!(python, rust, "ctypes layouts (left) differ from the C ABI (right)");
}
