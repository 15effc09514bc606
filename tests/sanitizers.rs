//! The C and C++ callers under AddressSanitizer and UndefinedBehaviorSanitizer: each example is compiled with
//! `-fsanitize=address,undefined` (gcc's runtime then checks every allocation, including the library's,
//! for overflows, use after free, double free and leaks at exit) and run with the arguments its own test
//! uses; any sanitizer report fails the test. The Rust library itself is not instrumented (its bounds are
//! checked by Rust; its parsers are fuzzed under ASan by scripts/fuzz.sh).

mod common;
use common::*;
use std::process::Command;

#[test]
fn c_and_cpp_examples_run_clean_under_asan_and_ubsan() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sanitizers");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let model = fixture("clip_model/tiny");
    let image = fixture("clip_model/image.png");
    let (d, m, i) = (dir.to_str().unwrap(), model.to_str().unwrap(), image.to_str().unwrap());
    let flags: Vec<String> = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=all", "-g"].map(String::from).to_vec();
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("c/device_info.c", vec![]),
        ("c/mlc_loss.c", vec![]),
        ("c/label.c", vec![]),
        ("c/cluster.c", vec![d]),
        ("c/embed.c", vec![m, i]),
        ("cpp/cluster_demo.cpp", vec![d, m, i]),
    ];
    for (src, args) in cases {
        let exe = build_example_with(src, Link::Dynamic, &flags);
        let exe = {
            // Keep the sanitised build apart from the plain one build_example makes under the same name.
            let asan = exe.with_file_name(format!("{}-asan", exe.file_name().unwrap().to_string_lossy()));
            std::fs::rename(&exe, &asan).unwrap();
            asan
        };
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
