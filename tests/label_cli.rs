//! `rateclust embed` → `rateclust label` end to end on the tiny fixture CLIP model: clusters whose members are
//! the CLIP embeddings of "a photo of a dog." / "a photo of a car." must be named "dog" / "car" from a
//! vocabulary that also offers "cat"; bad inputs are clear errors.

mod common;
use std::path::PathBuf;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rateclust")).args(args).output().unwrap()
}

fn tmp() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("label_cli");
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn embed_then_label_names_each_cluster() {
    let dir = tmp();
    let model = common::fixture("clip_model/tiny");
    assert!(model.join("config.json").exists(), "fixture model missing at {}", model.display());
    let s = |p: &PathBuf| p.to_str().unwrap().to_string();
    std::fs::write(dir.join("texts.txt"), "a photo of a dog.\na photo of a dog.\na photo of a car.\na photo of a car.\n").unwrap();
    std::fs::write(dir.join("vocab.txt"), "cat\ndog\ncar\n").unwrap();
    rateclust::io::npy::write_npy_i64(&dir.join("labels.npy"), &[0, 0, 1, 1], &[4]).unwrap();

    let out = run(&["embed", "--device", "cpu", "--model", &s(&model), "--texts", &s(&dir.join("texts.txt")), "--out", &s(&dir.join("emb.npy"))]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&[
        "label", "--device", "cpu", "--model", &s(&model), "--features", &s(&dir.join("emb.npy")), "--labels",
        &s(&dir.join("labels.npy")), "--vocab", &s(&dir.join("vocab.txt")), "--top", "2",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains("\"name\": \"dog\"") && lines[0].contains("\"members\": 2"), "{text}");
    assert!(lines[1].contains("\"name\": \"car\""), "{text}");

    // Labels and features of different lengths are refused with a message naming both.
    rateclust::io::npy::write_npy_i64(&dir.join("short.npy"), &[0, 1], &[2]).unwrap();
    let out = run(&["label", "--model", &s(&model), "--features", &s(&dir.join("emb.npy")), "--labels", &s(&dir.join("short.npy"))]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--labels has 2 entries"), "{}", String::from_utf8_lossy(&out.stderr));
}
