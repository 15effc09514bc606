//! The C boundary's conventions, exercised from C against both the shared and the static library,
//! and the committed header checked against the one cbindgen generates from the current sources.

mod common;
use common::*;

#[test]
fn header_is_current() {
    let committed = std::fs::read_to_string(repo().join("include/rateclust.h")).expect("include/rateclust.h");
    assert!(
        committed == rateclust::GENERATED_HEADER,
        "include/rateclust.h is stale: run scripts/header.sh to regenerate it, then commit it"
    );
}

#[test]
fn header_exports_only_prefixed_symbols() {
    for line in rateclust::GENERATED_HEADER.lines() {
        if let Some(open) = line.find('(') {
            if line.starts_with(' ') || line.starts_with('*') || line.starts_with('#') || line.starts_with('/') {
                continue;
            }
            // A function-pointer typedef `typedef int (*rateclust_x_fn)(...)`: its name is inside the parentheses.
            let name = if line.starts_with("typedef") && line[open..].starts_with("(*") {
                line[open + 2..].split(')').next().unwrap()
            } else {
                line[..open].split_whitespace().last().unwrap().trim_start_matches('*')
            };
            assert!(name.starts_with("rateclust_"), "exported function without the rateclust_ prefix: {name}");
        }
    }
}

#[test]
fn header_defines_are_prefixed_and_abi_version_matches() {
    for line in rateclust::GENERATED_HEADER.lines().filter(|l| l.starts_with("#define")) {
        let name = line.split_whitespace().nth(1).unwrap();
        assert!(name.starts_with("RATECLUST_"), "unprefixed macro in the header: {line}");
    }
    let want = format!("#define RATECLUST_ABI_VERSION {}", rateclust::RATECLUST_ABI_VERSION);
    assert!(rateclust::GENERATED_HEADER.contains(&want), "header ABI macro differs from the crate's: {want}");
    let version: Vec<&str> = env!("CARGO_PKG_VERSION").split('.').collect();
    for (part, value) in ["MAJOR", "MINOR", "PATCH"].iter().zip(&version) {
        let want = format!("#define RATECLUST_VERSION_{part} {value}");
        assert!(rateclust::GENERATED_HEADER.contains(&want), "header version macro differs from Cargo.toml: {want}");
    }
}

#[test]
fn c_example_device_info_runs_with_both_link_modes() {
    for link in BOTH {
        let exe = build_example("c/device_info.c", link);
        let out = run_example(&exe, &[]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(&format!("rateclust {}", env!("CARGO_PKG_VERSION"))), "{text}");
        assert!(text.contains("auto device: "), "{text}");
        assert!(text.contains("cpu threads: "), "{text}");
    }
}

#[test]
fn header_compiles_as_cpp() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let src = dir.join("header_check.cpp");
    std::fs::write(&src, "#include <rateclust.h>\nint main() { return rateclust_version() == nullptr; }\n").unwrap();
    let out = std::process::Command::new("g++")
        .args(["-std=c++17", "-Wall", "-Werror", "-fsyntax-only", "-I"])
        .arg(repo().join("include"))
        .arg(&src)
        .output()
        .expect("g++");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `rateclust_status_name` gives every status the name the header declares for its value, and a fixed
/// name for values that are not a status.
#[test]
fn status_names_match_the_header() {
    let name = |s: i32| unsafe { std::ffi::CStr::from_ptr(rateclust::ffi::core::rateclust_status_name(s)) }.to_str().unwrap().to_string();
    let mut seen = 0;
    for line in rateclust::GENERATED_HEADER.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("RATECLUST_STATUS_") {
            let (ident, value) = rest.split_once(" = ").unwrap();
            let value: i32 = value.trim_end_matches(',').parse().unwrap();
            assert_eq!(name(value), format!("RATECLUST_STATUS_{ident}"));
            seen += 1;
        }
    }
    assert_eq!(seen, 10);
    assert_eq!(name(-1), "RATECLUST_STATUS_UNKNOWN");
    assert_eq!(name(10), "RATECLUST_STATUS_UNKNOWN");
}
