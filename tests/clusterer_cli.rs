//! The `rateclust` command line: synth → fit → assign → select-k → eval end to end, and a clear message
//! with a non-zero exit code for each kind of bad input.

mod common;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rateclust")).args(args).output().expect("running rateclust")
}

fn ok(args: &[&str]) -> String {
    let o = cli(args);
    assert!(o.status.success(), "rateclust {args:?} failed:\n{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn fails(args: &[&str], needle: &str) {
    let o = cli(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "rateclust {args:?} should fail");
    assert!(err.contains("error: ") && err.contains(needle), "rateclust {args:?}: message should mention '{needle}':\n{err}");
}

fn tmp() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

const FIT_SMALL: [&str; 14] = ["--hidden", "96", "--zdim", "24", "--batch", "200", "--steps", "32", "--warmup", "8", "--lr", "0.001", "--device", "cpu"];

#[test]
fn fit_assign_select_k_eval_end_to_end() {
    let d = tmp();
    let (x, y, m, lab) = (d.join("x.npy"), d.join("y.npy"), d.join("m.safetensors"), d.join("labels.npy"));
    ok(&["synth", "--out", s(&x), "--labels-out", s(&y), "--n", "800", "--dim", "32", "--k", "4", "--rank", "3", "--noise", "0.02"]);
    let mut fit = vec!["fit", "--features", s(&x), "--k", "4", "--out", s(&m)];
    fit.extend(FIT_SMALL);
    ok(&fit);
    ok(&["assign", "--clusterer", s(&m), "--features", s(&x), "--out", s(&lab)]);
    let ev: serde_json::Value = serde_json::from_str(&ok(&["eval", "--pred", s(&lab), "--truth", s(&y)])).unwrap();
    assert!(ev["acc"].as_f64().unwrap() >= 0.95, "{ev}");
    assert!(ev["nmi"].is_f64() && ev["ari"].is_f64());
    let sk: serde_json::Value = serde_json::from_str(&ok(&["select-k", "--clusterer", s(&m), "--features", s(&x), "--candidates", "2,4,6", "--device", "cpu"])).unwrap();
    assert_eq!(sk["candidates"].as_array().unwrap().len(), 3, "{sk}");
    assert_eq!(sk["coding_length"].as_array().unwrap().len(), 3, "{sk}");
    assert!(sk["best_k"].as_u64().is_some(), "{sk}");
    // Another k without retraining: 2 clusters now.
    let m2 = d.join("m2.safetensors");
    ok(&["recluster", "--clusterer", s(&m), "--features", s(&x), "--k", "2", "--out", s(&m2), "--device", "cpu"]);
    ok(&["assign", "--clusterer", s(&m2), "--features", s(&x), "--out", s(&lab)]);
    let ev2: serde_json::Value = serde_json::from_str(&ok(&["eval", "--pred", s(&lab), "--truth", s(&y)])).unwrap();
    assert!(ev2["acc"].as_f64().unwrap() <= 0.51, "2 clusters cannot label 4 balanced classes better than 0.5: {ev2}");
    // Labels and confidences into one file would lose the labels: refused, and the labels stay.
    let before = std::fs::read(&lab).unwrap();
    fails(&["assign", "--clusterer", s(&m2), "--features", s(&x), "--out", s(&lab), "--confidence", s(&lab)], "same file");
    assert_eq!(std::fs::read(&lab).unwrap(), before);
}

#[test]
fn bad_input_fails_with_a_clear_message() {
    let d = tmp();
    let npy = |n: &str| common::fixture(&format!("cluster_core/npy/{n}.npy"));
    let out = d.join("out.safetensors");
    let fit = |feat: &Path, k: &str, needle: &str| {
        let mut a = vec!["fit", "--features", s(feat), "--k", k, "--out", s(&out)];
        a.extend(FIT_SMALL);
        fails(&a, needle);
    };
    fit(&npy("bad_nan"), "2", "non-finite");
    fit(&npy("bad_3d"), "2", "2-d");
    fit(&npy("bad_empty"), "2", "empty");
    fit(&npy("bad_uint8"), "2", "dtype");
    fit(&npy("f32"), "1", "at least 2");
    fit(&npy("f32"), "4", "n < k");
    fit(&d.join("missing.npy"), "2", "missing.npy");
    fails(&["fit", "--k", "2"], "--features");
    fails(&["fit", "--features", "x.npy", "--k", "two", "--out", "m"], "--k");
    fails(&["nonsense"], "unknown command");

    // A clusterer fitted on 32-d features refuses 4-d ones; eval refuses float labels.
    let (x, y, m) = (d.join("x.npy"), d.join("y.npy"), d.join("m.safetensors"));
    ok(&["synth", "--out", s(&x), "--labels-out", s(&y), "--n", "400", "--dim", "32", "--k", "4", "--rank", "3"]);
    let mut f = vec!["fit", "--features", s(&x), "--k", "4", "--out", s(&m), "--spectral-sample", "400"];
    f.extend(FIT_SMALL);
    ok(&f);
    fails(&["assign", "--clusterer", s(&m), "--features", s(&npy("f32")), "--out", s(&d.join("l.npy"))], "dimension");
    fails(&["select-k", "--clusterer", s(&m), "--features", s(&x), "--candidates", "1,3"], "candidate");
    fails(&["eval", "--pred", s(&x), "--truth", s(&y)], "labels");
    fails(&["assign", "--clusterer", s(&npy("f32")), "--features", s(&x), "--out", s(&d.join("l.npy"))], "format");
}
