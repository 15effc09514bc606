//! `rateclust cluster`: a folder of images in; assignments.csv, clusters.json, report.html, the fitted clusterer and
//! the feature cache out, on the tiny fixture CLIP model. Undecodable files are listed and skipped; a re-run
//! reuses the cached features; bad folders are clear errors.

mod common;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rateclust")).args(args).output().unwrap()
}

/// A fresh directory per test (tests run in parallel).
fn tmp(test: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cluster_job_cli").join(test);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A w×h image of one colour with a little seeded noise.
fn save_image(path: &Path, rgb: [u8; 3], seed: u64) {
    let mut rng = rateclust::rng::Rng::new(seed);
    let img = image::RgbImage::from_fn(40, 30, |_, _| {
        image::Rgb(rgb.map(|c| (c as i32 + rng.below(21) as i32 - 10).clamp(0, 255) as u8))
    });
    img.save(path).unwrap();
}

#[test]
fn folder_in_named_clusters_and_report_out() {
    let dir = tmp("job");
    let images = dir.join("photos");
    for (sub, rgb) in [("dark", [10u8, 10, 20]), ("light", [240u8, 240, 230])] {
        std::fs::create_dir_all(images.join(sub)).unwrap();
        for i in 0..8 {
            let ext = if i % 2 == 0 { "png" } else { "jpg" };
            save_image(&images.join(sub).join(format!("{i}.{ext}")), rgb, i as u64 + rgb[0] as u64);
        }
    }
    std::fs::write(images.join("broken.jpg"), b"not a jpeg at all").unwrap();
    std::fs::write(images.join("notes.txt"), b"ignored: not an image name").unwrap();
    std::fs::write(dir.join("vocab.txt"), "night\nsnow\n").unwrap();
    let out = dir.join("out");
    let model = common::fixture("clip_model/tiny");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let args = ["cluster", &s(&images), "--model", &s(&model), "--out", &s(&out), "--k", "2", "--device", "cpu", "--vocab", &s(&dir.join("vocab.txt"))];
    let r = run(&args);
    let stderr = String::from_utf8_lossy(&r.stderr).to_string();
    assert!(r.status.success(), "{stderr}");
    assert!(stderr.contains("skipped 1 files"), "{stderr}");

    // assignments.csv: a header and one row per decodable image; each folder is one cluster.
    let csv = std::fs::read_to_string(out.join("assignments.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().skip(1).map(|l| l.split(',').collect()).collect();
    assert_eq!(csv.lines().next().unwrap(), "path,cluster,cluster_name,confidence");
    assert_eq!(rows.len(), 16, "{csv}");
    let cluster_of = |prefix: &str| -> Vec<&str> { rows.iter().filter(|r| r[0].starts_with(prefix)).map(|r| r[1]).collect() };
    let (dark, light) = (cluster_of("dark/"), cluster_of("light/"));
    assert!(dark.iter().all(|c| *c == dark[0]) && light.iter().all(|c| *c == light[0]) && dark[0] != light[0], "{csv}");
    // Names come from the vocabulary; two clusters that won the same caption are told apart by a runner-up
    // (label::distinct), so the two clusters never share a name.
    assert!(rows.iter().all(|r| ["night", "snow", "snow (night)", "night (snow)"].contains(&r[2])), "{csv}");
    let name_of = |prefix: &str| rows.iter().find(|r| r[0].starts_with(prefix)).unwrap()[2];
    assert_ne!(name_of("dark/"), name_of("light/"), "{csv}");

    // clusters.json: k clusters whose sizes add up, names from the vocabulary, central images, the skipped file.
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("clusters.json")).unwrap()).unwrap();
    assert_eq!(doc["k"], 2);
    let sizes: u64 = doc["clusters"].as_array().unwrap().iter().map(|c| c["size"].as_u64().unwrap()).sum();
    assert_eq!(sizes, 16);
    assert_eq!(doc["clusters"][0]["central_images"].as_array().unwrap().len(), 8);
    assert_eq!(doc["skipped"][0]["path"], "broken.jpg");

    // The report is one page with inlined thumbnails and no network reference.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_eq!(html.matches("data:image/jpeg;base64,").count(), 16);
    assert!(html.contains("Cluster 0:") && html.contains("Skipped files") && !html.contains("http"));
    assert!(std::fs::read_to_string(out.join("skipped.txt")).unwrap().starts_with("broken.jpg\t"));
    let files = std::fs::read_to_string(out.join("files.txt")).unwrap();
    assert_eq!(files.lines().count(), 16);
    assert!(out.join("clusterer.safetensors").exists() && out.join("features.npy").exists());
    // The name earlier releases wrote, kept as a deprecated second name of the same file.
    assert_eq!(std::fs::read(out.join("model.safetensors")).unwrap(), std::fs::read(out.join("clusterer.safetensors")).unwrap());

    // A second run reuses the cached features and gives the same assignments.
    let r = run(&args);
    assert!(String::from_utf8_lossy(&r.stderr).contains("reusing the cached features"), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(std::fs::read_to_string(out.join("assignments.csv")).unwrap(), csv);
    // A changed file set invalidates the cache.
    save_image(&images.join("light").join("8.png"), [240, 240, 230], 99);
    let r = run(&args);
    assert!(r.status.success() && !String::from_utf8_lossy(&r.stderr).contains("reusing"), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(std::fs::read_to_string(out.join("assignments.csv")).unwrap().lines().count(), 18);
}

#[test]
fn bad_folders_are_clear_errors() {
    let dir = tmp("bad");
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    let model = common::fixture("clip_model/tiny");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let r = run(&["cluster", &s(&dir.join("missing")), "--model", &s(&model), "--out", &s(&dir.join("o"))]);
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stderr).contains("missing"), "{}", String::from_utf8_lossy(&r.stderr));
    let r = run(&["cluster", &s(&dir.join("empty")), "--model", &s(&model), "--out", &s(&dir.join("o"))]);
    assert!(String::from_utf8_lossy(&r.stderr).contains("no images found"), "{}", String::from_utf8_lossy(&r.stderr));
    let r = run(&["cluster", "--model", &s(&model)]);
    assert_eq!(r.status.code(), Some(2));

    // A folder whose images are all corrupt, --out naming a file, a vocabulary that is not UTF-8, k above
    // the number of images: each a clear message, and what the user had in the output folder stays.
    let junk = dir.join("junk");
    std::fs::create_dir_all(&junk).unwrap();
    for i in 0..3 {
        std::fs::write(junk.join(format!("{i}.jpg")), b"garbage").unwrap();
    }
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("mine.txt"), b"keep me").unwrap();
    let expect = |args: &[&str], code: i32, needle: &str| {
        let r = run(args);
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: message should mention '{needle}': {err}");
    };
    expect(&["cluster", &s(&junk), "--model", &s(&model), "--out", &s(&out), "--quiet"], 1, "0 of the 3 images decode");
    expect(&["cluster", &s(&junk), "--model", &s(&model), "--out", &s(&out.join("mine.txt"))], 2, "not a directory");
    std::fs::write(dir.join("bad_vocab.txt"), b"cat\n\xff\xfe dog\n").unwrap();
    expect(&["cluster", &s(&junk), "--model", &s(&model), "--out", &s(&out), "--vocab", &s(&dir.join("bad_vocab.txt"))], 2, "not UTF-8");
    expect(&["cluster", &s(&junk), "--model", &s(&model), "--out", &s(&out), "--k", "5"], 2, "more than the 3 images");
    assert_eq!(std::fs::read(out.join("mine.txt")).unwrap(), b"keep me");
}
