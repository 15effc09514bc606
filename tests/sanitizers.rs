//! The C and C++ callers under AddressSanitizer and UndefinedBehaviorSanitizer, and under valgrind's memcheck.
//!
//! Sanitizers: each example is compiled with
//! `-fsanitize=address,undefined` (gcc's runtime then checks every allocation, including the library's,
//! for overflows, use after free, double free and leaks at exit) and run with the arguments its own test
//! uses; any sanitizer report fails the test. The Rust library itself is not instrumented (its bounds are
//! checked by Rust; its parsers are fuzzed under ASan by scripts/fuzz.sh).

mod common;
use common::*;
use std::process::Command;

/// `build_example` writes `<stem>-dyn`, the same path for both tests of this file, which run in parallel:
/// each builds under this lock and moves its executable to a name of its own before letting go.
static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Builds `examples/<src>` with `flags` and moves the executable to `<name>-<suffix>`.
fn build_apart(src: &str, flags: &[String], suffix: &str) -> std::path::PathBuf {
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let exe = build_example_with(src, Link::Dynamic, flags);
    let apart = exe.with_file_name(format!("{}-{suffix}", exe.file_name().unwrap().to_string_lossy()));
    std::fs::rename(&exe, &apart).unwrap();
    apart
}

/// Every C/C++ example with the arguments its own test uses; `dir` is a scratch directory.
fn cases<'a>(dir: &'a str, model: &'a str, image: &'a str) -> Vec<(&'static str, Vec<&'a str>)> {
    vec![
        ("c/device_info.c", vec![]),
        ("c/mlc_loss.c", vec![]),
        ("c/label.c", vec![]),
        ("c/cluster.c", vec![dir]),
        ("c/embed.c", vec![model, image]),
        ("cpp/cluster_demo.cpp", vec![dir, model, image]),
    ]
}

/// The same programs, unmodified, under valgrind's memcheck: invalid reads and writes, use of uninitialised
/// values, bad frees and definite leaks in the library or the caller fail the test. valgrind emulates no
/// AVX-512, so the GEMM kernels take their AVX2 path here. "Possibly lost" blocks are the rayon worker threads
/// still running at exit, not leaks.
#[test]
fn c_and_cpp_examples_run_clean_under_valgrind() {
    if Command::new("valgrind").arg("--version").output().is_err() {
        return skip("valgrind is not installed (scripts/test.sh installs it)");
    }
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("valgrind");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let model = fixture("clip_model/tiny");
    let image = fixture("clip_model/image.png");
    let (d, m, i) = (dir.to_str().unwrap(), model.to_str().unwrap(), image.to_str().unwrap());
    // The C++ demo repeats cluster.c's fit through the header-only wrapper (ASan/UBSan run it below); under
    // valgrind's serialised threads each fit takes minutes on 2 cores, so it runs once.
    for (src, args) in cases(d, m, i).into_iter().filter(|(src, _)| !src.starts_with("cpp/")) {
        let exe = build_apart(src, &[], "valgrind");
        let lib = shared_library();
        let out = Command::new("valgrind")
            .args(["-q", "--error-exitcode=99", "--leak-check=full", "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite"])
            .arg(&exe)
            .args(&args)
            .env("LD_LIBRARY_PATH", lib.parent().unwrap())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{src} under valgrind ({}; 99 = memcheck errors):\n{stderr}", out.status);
        println!("{src}: valgrind memcheck clean");
    }
}

#[test]
fn c_and_cpp_examples_run_clean_under_asan_and_ubsan() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sanitizers");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let model = fixture("clip_model/tiny");
    let image = fixture("clip_model/image.png");
    let (d, m, i) = (dir.to_str().unwrap(), model.to_str().unwrap(), image.to_str().unwrap());
    let flags: Vec<String> = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=all", "-g"].map(String::from).to_vec();
    for (src, args) in cases(d, m, i) {
        // Kept apart from the plain build other tests make under the same name.
        let exe = build_apart(src, &flags, "asan");
        let lib = shared_library();
        let out = Command::new(&exe)
            .args(&args)
            .env("LD_LIBRARY_PATH", lib.parent().unwrap())
            // Leaks are reported at exit; Rust's global thread pool and thread-locals stay reachable, so
            // they are not leaks.
            .env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:exitcode=86")
            .env("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !stderr.contains("AddressSanitizer") && !stderr.contains("runtime error:") && !stderr.contains("LeakSanitizer"),
            "{src} under ASan/UBSan ({}):\n{stderr}",
            out.status
        );
    }
}
