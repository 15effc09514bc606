//! The Go (cgo) example examples/go/cluster_demo against the freshly built shared library: a fit that
//! separates an easy union of subspaces, save/load giving the same labels, and a failed call surfacing as a
//! Go error with the status and message. scripts/test.sh installs Go (Debian's golang-go) when it is missing.

mod common;
use common::*;
use std::process::Command;

#[test]
fn go_cgo_demo_runs_against_the_shared_library() {
    let tmp = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let lib_dir = shared_library().parent().unwrap().to_path_buf();
    let exe = tmp.join("go-cluster-demo");
    let build = Command::new("go")
        .args(["build", "-o"])
        .arg(&exe)
        .arg("./cluster_demo")
        .current_dir(repo().join("examples/go"))
        .env("CGO_ENABLED", "1")
        .env("CGO_LDFLAGS", format!("-L{0} -Wl,-rpath,{0}", lib_dir.display()))
        // Self-contained and offline: a cache under target/, no module downloads (the example has no deps).
        .env("GOCACHE", tmp.join("go-cache"))
        .env("GOPATH", tmp.join("go-path"))
        .env("GOPROXY", "off")
        .env("GOFLAGS", "-mod=mod")
        .output()
        .expect("running `go` (the Go binding test needs a Go toolchain with cgo; scripts/test.sh installs golang-go)");
    assert!(build.status.success(), "go build failed:\n{}", String::from_utf8_lossy(&build.stderr));

    let out = Command::new(&exe).arg(&tmp).output().expect("running the Go demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "Go demo failed ({}):\n{text}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    let acc: f64 = text
        .split("metrics: acc ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no accuracy in output:\n{text}"));
    assert!(acc >= 0.9, "accuracy {acc} on the easy synthetic data:\n{text}");
    assert!(text.contains("save/load: same labels for all 800 points"), "{text}");
    assert!(text.contains("expected error: rateclust status 1: invalid argument: features have dimension 25"), "{text}");
    assert!(text.trim_end().ends_with("ok"), "{text}");
}
