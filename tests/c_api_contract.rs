//! A contract test for every export, generated from the header: each function declared in
//! `include/rateclust.h` is called from C with every pointer argument NULL and every number 0, and must
//! return the status this table expects for that call (INVALID_ARGUMENT naming the NULL argument, for all
//! that take a handle or a buffer, with a message in `rateclust_last_error()`, which is empty after a success)
//! without crashing; functions that return something else (void, strings,
//! sizes, default parameter structs) must simply return. A new export that is not in `EXPECTED` fails this
//! test, so every export gets a contract the day it is added.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::process::Command;

/// Status name each status-returning export gives for an all-NULL / all-zero call. Where the answer depends on
/// the machine (a GPU present or not), every acceptable answer is listed.
const EXPECTED: &[(&str, &[&str])] = &[
    ("rateclust_model_load", &["INVALID_ARGUMENT"]),
    ("rateclust_model_load_towers", &["INVALID_ARGUMENT"]),
    ("rateclust_model_load_precision", &["INVALID_ARGUMENT"]),
    ("rateclust_model_embed_dim", &["INVALID_ARGUMENT"]),
    ("rateclust_model_output_dim", &["INVALID_ARGUMENT"]),
    ("rateclust_model_image_size", &["INVALID_ARGUMENT"]),
    ("rateclust_embed_image_files", &["INVALID_ARGUMENT"]),
    ("rateclust_embed_images_encoded", &["INVALID_ARGUMENT"]),
    ("rateclust_embed_frames", &["INVALID_ARGUMENT"]),
    ("rateclust_embed_pixels", &["INVALID_ARGUMENT"]),
    ("rateclust_embed_texts", &["INVALID_ARGUMENT"]),
    ("rateclust_fit_preset_params", &["INVALID_ARGUMENT"]),
    ("rateclust_fit", &["INVALID_ARGUMENT"]),
    ("rateclust_clusterer_info", &["INVALID_ARGUMENT"]),
    ("rateclust_clusterer_k_curve", &["INVALID_ARGUMENT"]),
    ("rateclust_assign", &["INVALID_ARGUMENT"]),
    ("rateclust_assign_scores", &["INVALID_ARGUMENT"]),
    ("rateclust_select_k", &["INVALID_ARGUMENT"]),
    ("rateclust_clusterer_set_k", &["INVALID_ARGUMENT"]),
    ("rateclust_metrics", &["INVALID_ARGUMENT"]),
    ("rateclust_clusterer_save", &["INVALID_ARGUMENT"]),
    ("rateclust_clusterer_load", &["INVALID_ARGUMENT"]),
    // GPU 0: there or not.
    ("rateclust_set_gpu", &["OK", "DEVICE"]),
    // Describing the CPU needs no buffer (cap 0: only the length is reported, and `needed` may be NULL).
    ("rateclust_device_info", &["OK"]),
    ("rateclust_cpu_threads", &["INVALID_ARGUMENT"]),
    // 0 = the machine's default: accepted on a fresh process.
    ("rateclust_set_cpu_threads", &["OK"]),
    ("rateclust_label_clusters", &["INVALID_ARGUMENT"]),
    // Index 0 with cap 0 and no buffer: a length query (`needed` may be NULL).
    ("rateclust_default_vocabulary_name", &["OK"]),
    ("rateclust_mlc_loss", &["INVALID_ARGUMENT"]),
    ("rateclust_mlc_loss_f64", &["INVALID_ARGUMENT"]),
    ("rateclust_membership", &["INVALID_ARGUMENT"]),
    ("rateclust_write_report", &["INVALID_ARGUMENT"]),
];

/// The header's function declarations: (return type, name, argument types).
fn declarations(header: &str) -> Vec<(String, String, Vec<String>)> {
    // Comments out, one declaration per ';'.
    let mut text = String::new();
    let mut rest = header;
    while let Some(i) = rest.find("/*") {
        text.push_str(&rest[..i]);
        rest = &rest[i + 2..];
        rest = &rest[rest.find("*/").map_or(rest.len(), |j| j + 2)..];
    }
    text.push_str(rest);
    let text: String = text.lines().filter(|l| !l.trim_start().starts_with('#') && !l.trim_start().starts_with("//")).collect::<Vec<_>>().join(" ");
    let mut out = Vec::new();
    for stmt in text.split([';', '}', '{']) {
        let stmt = stmt.split_whitespace().collect::<Vec<_>>().join(" ");
        if stmt.starts_with("typedef") {
            continue;
        }
        let Some(open) = stmt.find('(') else { continue };
        let head = &stmt[..open];
        let Some(name_at) = head.rfind("rateclust_") else { continue };
        let name = head[name_at..].trim().to_string();
        if name.contains(' ') || !stmt.ends_with(')') {
            continue;
        }
        let ret = head[..name_at].trim().to_string();
        let args = &stmt[open + 1..stmt.len() - 1];
        let args: Vec<String> = if args.trim() == "void" {
            Vec::new()
        } else {
            args.split(',').map(|a| {
                let a = a.trim();
                // Drop the parameter name: the last identifier.
                let cut = a.rfind(|c: char| !(c.is_alphanumeric() || c == '_')).map_or(0, |i| i + 1);
                a[..cut].trim().to_string()
            }).collect()
        };
        out.push((ret, name, args));
    }
    out
}

fn zero_of(ty: &str) -> &'static str {
    if ty.contains('*') || ty == "rateclust_progress_fn" {
        "NULL"
    } else if ty == "bool" {
        "false"
    } else {
        "0"
    }
}

#[test]
fn every_export_rejects_null_arguments_as_its_contract_says() {
    let header = std::fs::read_to_string(repo().join("include/rateclust.h")).unwrap();
    let decls = declarations(&header);
    assert!(decls.len() >= 40, "parsed only {} declarations", decls.len());
    let mut c = String::from("#include <rateclust.h>\n#include <stdio.h>\nint main(void) {\n");
    let mut status_fns = Vec::new();
    for (ret, name, args) in &decls {
        let call = format!("{name}({})", args.iter().map(|a| zero_of(a)).collect::<Vec<_>>().join(", "));
        if ret == "rateclust_status" {
            c += &format!("    {{ int32_t st = (int32_t){call}; printf(\"{name} %s|%s\\n\", rateclust_status_name(st), rateclust_last_error()); }}\n");
            status_fns.push(name.clone());
        } else if ret == "void" {
            c += &format!("    {call};\n    printf(\"{name} returned\\n\");\n");
        } else {
            c += &format!("    (void){call};\n    printf(\"{name} returned\\n\");\n");
        }
    }
    c += "    return 0;\n}\n";
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("c_api_contract");
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("contract.c");
    std::fs::write(&src, &c).unwrap();
    let exe = dir.join("contract");
    let lib = shared_library();
    let cc = Command::new("gcc")
        .args(["-std=c11", "-Wall", "-Werror", "-Wno-unused-value", "-I"])
        .arg(repo().join("include"))
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .arg(format!("-L{}", lib.parent().unwrap().display()))
        .arg("-lrateclust")
        .output()
        .unwrap();
    assert!(cc.status.success(), "compiling the generated contract program failed:\n{}\n{c}", String::from_utf8_lossy(&cc.stderr));
    let out = run_example(&exe, &[]);
    let got: BTreeMap<String, String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())))
        .collect();
    // "STATUS|last error" for status-returning exports: a failure must say why, a success must leave "".
    let mut got_status = BTreeMap::new();
    for (name, v) in &got {
        if let Some((st, msg)) = v.split_once('|') {
            let st = st.trim_start_matches("RATECLUST_STATUS_").to_string();
            assert_eq!(st == "OK", msg.is_empty(), "{name}: status {st} with last error {msg:?}");
            got_status.insert(name.clone(), st);
        }
    }
    let got_all = got;
    let got = got_status;
    // Every declaration ran (a crash would have stopped the program and run_example would have failed).
    for (_, name, _) in &decls {
        assert!(got_all.contains_key(name), "{name} did not return");
    }
    let expected: BTreeMap<&str, &[&str]> = EXPECTED.iter().copied().collect();
    for name in &status_fns {
        let want = expected.get(name.as_str()).unwrap_or_else(|| panic!("{name} is exported but has no contract in tests/c_api_contract.rs EXPECTED"));
        assert!(want.contains(&got[name].as_str()), "{name}: all-NULL call returned {}, contract says {want:?}", got[name]);
    }
    for name in expected.keys() {
        assert!(status_fns.iter().any(|n| n == name), "{name} is in EXPECTED but not exported");
    }
}
