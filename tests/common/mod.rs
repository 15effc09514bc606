//! Shared helpers for integration tests: compiling and running the C/C++ examples against the
//! library's cdylib and staticlib, locating fixtures, and opening the GPU (or skipping) in the CUDA tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[allow(unused_imports)]
pub use rateclust::testing::{cuda_or_skip, fixture, skip};

/// How a C program links the library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// `librateclust.so`, found at run time through `LD_LIBRARY_PATH`.
    Dynamic,
    /// `librateclust.a` plus the system libraries Rust's std needs.
    Static,
}

pub const BOTH: [Link; 2] = [Link::Dynamic, Link::Static];

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The profile directory holding `librateclust.{so,a}` (the test binary lives in its `deps/`).
pub fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>").to_path_buf();
    for name in ["librateclust.so", "librateclust.a"] {
        assert!(
            dir.join(name).exists() || dir.join("deps").join(name).exists(),
            "{name} not found in {} — build the library first (cargo build/test builds it)",
            dir.display()
        );
    }
    dir
}

/// The library file this test run was built against: `cargo test` refreshes `deps/` but does not copy the
/// cdylib/staticlib up to the profile directory, so `deps/` comes first.
fn lib_file(name: &str) -> PathBuf {
    let dir = lib_dir();
    let in_deps = dir.join("deps").join(name);
    if in_deps.exists() {
        in_deps
    } else {
        dir.join(name)
    }
}

/// Compiles `examples/<rel>` (C if it ends in `.c`, C++ if `.cpp`) against the library; returns the executable.
pub fn build_example(rel: &str, link: Link) -> PathBuf {
    build_example_with(rel, link, &[])
}

/// [`build_example`] with extra compiler arguments after the library (e.g. `pkg-config --cflags --libs` output).
pub fn build_example_with(rel: &str, link: Link, extra: &[String]) -> PathBuf {
    let src = repo().join("examples").join(rel);
    let is_cpp = rel.ends_with(".cpp");
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("c-examples");
    std::fs::create_dir_all(&out_dir).unwrap();
    let stem = src.file_stem().unwrap().to_string_lossy().to_string();
    let exe = out_dir.join(format!("{stem}-{}", if link == Link::Dynamic { "dyn" } else { "static" }));
    let mut cmd = Command::new(if is_cpp { "g++" } else { "gcc" });
    cmd.arg(if is_cpp { "-std=c++17" } else { "-std=c11" })
        .args(["-Wall", "-Wextra", "-Werror", "-O1", "-I"])
        .arg(repo().join("include"))
        .arg(&src)
        .arg("-o")
        .arg(&exe);
    match link {
        Link::Dynamic => {
            cmd.arg(format!("-L{}", lib_file("librateclust.so").parent().unwrap().display())).arg("-lrateclust");
        }
        Link::Static => {
            cmd.arg(lib_file("librateclust.a")).args(["-lpthread", "-ldl", "-lm", "-lrt", "-lutil", "-lgcc_s", "-lc"]);
        }
    }
    cmd.arg("-lm").args(extra);
    let out = cmd.output().expect("running the C compiler (gcc/g++ must be installed)");
    assert!(
        out.status.success(),
        "compiling {rel} ({link:?}) failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// Runs a compiled example with the library on the loader path; panics with its output if it fails.
pub fn run_example(exe: &Path, args: &[&str]) -> Output {
    let out = Command::new(exe)
        .args(args)
        .env("LD_LIBRARY_PATH", lib_file("librateclust.so").parent().unwrap())
        .output()
        .expect("running a compiled example");
    assert!(
        out.status.success(),
        "{} {:?} exited with {}:\nstdout:\n{}\nstderr:\n{}",
        exe.display(),
        args,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The shared library (`librateclust.so`) this test run was built against, for callers that load it at run
/// time (Python ctypes through `RATECLUST_LIB`).
pub fn shared_library() -> PathBuf {
    lib_file("librateclust.so")
}

/// The number printed right after `key` in a program's output.
pub fn number_after(text: &str, key: &str) -> f64 {
    let rest = &text[text.find(key).unwrap_or_else(|| panic!("no '{key}' in output:\n{text}")) + key.len()..];
    rest.split_whitespace().next().unwrap().parse().unwrap_or_else(|e| panic!("'{key}' not followed by a number ({e}):\n{text}"))
}

/// What every bindings demo (C++ `cluster_demo.cpp`, Python `demo.py`) prints when it worked: the same script in
/// each language. Language-specific lines (how an error's status is spelled) are checked by the caller.
pub fn assert_bindings_demo_output(text: &str) {
    assert!(text.contains("fitted: k = 4, dim = 24"), "{text}");
    assert!(number_after(text, "progress calls:") > 0.0, "{text}");
    let acc = number_after(text, "metrics: acc");
    assert!(acc >= 0.9, "accuracy {acc} on the easy synthetic data:\n{text}");
    assert!(text.contains("save/load: same labels for all 800 points"), "{text}");
    assert!(text.contains("embedded 3 texts and 2 images of dim 24"), "{text}");
    assert!(text.contains("cluster 0 is named"), "{text}");
    assert!(text.contains("embedded 2 raw frames (RGB8 == BGR8)"), "{text}");
    assert!(text.contains("set_k: now "), "{text}");
    assert!(text.contains("default vocabulary: 998 names, first 'tench'"), "{text}");
    assert!(text.contains("callback exception propagated: stop here"), "{text}");
    assert!(text.trim_end().ends_with("ok"), "{text}");
}
