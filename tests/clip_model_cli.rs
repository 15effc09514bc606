//! `rateclust embed` end to end on the tiny fixture model: rows in sorted-path / line order, values equal
//! to transformers' (goldens), clear errors for bad arguments.

mod common;
use common::fixture;
use rateclust::io::npy::read_npy;
use safetensors::SafeTensors;
use std::path::PathBuf;
use std::process::Command;

fn golden(name: &str) -> Vec<f32> {
    let bytes = std::fs::read(fixture("clip_model/goldens.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let v: Vec<f32> = st.tensor(name).unwrap().data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    v
}

fn normalized_rows(v: &[f32], d: usize) -> Vec<f32> {
    v.chunks(d)
        .flat_map(|r| {
            let n = r.iter().map(|x| x * x).sum::<f32>().sqrt();
            r.iter().map(move |x| x / n).collect::<Vec<_>>()
        })
        .collect()
}

fn tmp(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("clip_model_cli").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn rateclust(args: &[&std::ffi::OsStr]) -> std::process::Output {
    // The CPU: these checks hold f32 results to transformers' goldens at 1e-5 (a GPU computes in f16).
    Command::new(env!("CARGO_BIN_EXE_rateclust")).arg("embed").args(["--device", "cpu"]).args(args).output().unwrap()
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() < 1e-5, "{what}[{i}]: {g} vs {w}");
    }
}

#[test]
fn embeds_a_directory_of_images_in_sorted_order() {
    let dir = tmp("images");
    let imgs = dir.join("imgs");
    std::fs::create_dir_all(&imgs).unwrap();
    // The fixture image and a mirrored copy, named so that sorted order differs from creation order.
    std::fs::copy(fixture("clip_model/image.png"), imgs.join("b.png")).unwrap();
    let mut mirrored = image_mirror(&fixture("clip_model/image.png"));
    std::fs::write(imgs.join("a.PNG"), std::mem::take(&mut mirrored)).unwrap();
    std::fs::write(imgs.join("notes.txt"), "not an image").unwrap();
    let out = dir.join("emb.npy");
    let model = fixture("clip_model/tiny");
    let r = rateclust(&["--model".as_ref(), model.as_os_str(), "--images".as_ref(), imgs.as_os_str(), "--out".as_ref(), out.as_os_str(), "--quiet".as_ref()]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let arr = read_npy(&out).unwrap();
    assert_eq!(arr.shape, vec![2, 24]);
    let (rows, _, _) = arr.to_f32_matrix("emb").unwrap();
    // Row 1 is b.png = the golden image; row 0 (a.PNG, mirrored) must differ from it.
    assert_close(&rows[24..], &normalized_rows(&golden("file_image_embeds"), 24), "b.png");
    assert!(rows[..24].iter().zip(&rows[24..]).any(|(a, b)| (a - b).abs() > 1e-3));
    let files = std::fs::read_to_string(dir.join("emb.files.txt")).unwrap();
    let names: Vec<&str> = files.lines().map(|l| l.rsplit('/').next().unwrap()).collect();
    assert_eq!(names, ["a.PNG", "b.png"]);
    assert!(!dir.join("emb.skipped.txt").exists());

    // A file that does not decode is listed with the reason and left out; the others are still embedded.
    std::fs::write(imgs.join("c.jpg"), b"\xff\xd8 truncated").unwrap();
    let r = rateclust(&["--model".as_ref(), model.as_os_str(), "--images".as_ref(), imgs.as_os_str(), "--out".as_ref(), out.as_os_str(), "--quiet".as_ref()]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(read_npy(&out).unwrap().shape, vec![2, 24]);
    let skipped = std::fs::read_to_string(dir.join("emb.skipped.txt")).unwrap();
    assert!(skipped.contains("c.jpg\t"), "{skipped}");
    assert_eq!(std::fs::read_to_string(dir.join("emb.files.txt")).unwrap(), files);
}

/// The PNG mirrored left-right (decoded and re-encoded with the image crate).
fn image_mirror(path: &std::path::Path) -> Vec<u8> {
    let img = rateclust::image_io::decode_file(path).unwrap();
    let mut data = img.data.clone();
    for row in data.chunks_mut(img.width * 3) {
        let px: Vec<[u8; 3]> = row.chunks(3).rev().map(|p| [p[0], p[1], p[2]]).collect();
        row.copy_from_slice(&px.concat());
    }
    let mut out = Vec::new();
    image::ImageEncoder::write_image(image::codecs::png::PngEncoder::new(&mut out), &data, img.width as u32, img.height as u32, image::ExtendedColorType::Rgb8).unwrap();
    out
}

#[test]
fn embeds_texts_one_per_line() {
    let dir = tmp("texts");
    let bytes = std::fs::read(fixture("clip_model/goldens.safetensors")).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let texts: Vec<String> = serde_json::from_str(&meta.metadata().as_ref().unwrap()["texts"]).unwrap();
    let file = dir.join("texts.txt");
    std::fs::write(&file, texts.join("\r\n") + "\n").unwrap();
    let out = dir.join("t.npy");
    let model = fixture("clip_model/tiny");
    let r = rateclust(&["--model".as_ref(), model.as_os_str(), "--texts".as_ref(), file.as_os_str(), "--out".as_ref(), out.as_os_str(), "--quiet".as_ref()]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let (rows, n, d) = read_npy(&out).unwrap().to_f32_matrix("t").unwrap();
    assert_eq!((n, d), (texts.len(), 24));
    assert_close(&rows, &normalized_rows(&golden("text_embeds"), 24), "text rows");

    // --precision int8: the same rows within quantization error, not bit for bit.
    let r = rateclust(&["--model".as_ref(), model.as_os_str(), "--texts".as_ref(), file.as_os_str(), "--out".as_ref(), out.as_os_str(), "--quiet".as_ref(), "--precision".as_ref(), "int8".as_ref()]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let (int8, _, _) = read_npy(&out).unwrap().to_f32_matrix("t").unwrap();
    assert_ne!(int8, rows);
    for (i, (a, b)) in int8.chunks(24).zip(rows.chunks(24)).enumerate() {
        let cos: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        assert!(cos > 0.99, "text {i}: int8 cosine to f32 {cos}");
    }
}

#[test]
fn bad_arguments_fail_with_a_message() {
    let dir = tmp("bad");
    let model = fixture("clip_model/tiny");
    let out = dir.join("x.npy");
    // Usage errors exit 2 like every other subcommand's; failures of the work itself exit 1.
    let cases: Vec<(Vec<&std::ffi::OsStr>, &str, i32)> = vec![
        (vec!["--images".as_ref(), dir.as_os_str(), "--out".as_ref(), out.as_os_str()], "--model", 2),
        (vec!["--model".as_ref(), model.as_os_str(), "--out".as_ref(), out.as_os_str()], "--images or --texts", 2),
        (vec!["--model".as_ref(), model.as_os_str(), "--images".as_ref(), dir.as_os_str(), "--out".as_ref(), out.as_os_str()], "no images", 1),
        (vec!["--model".as_ref(), dir.as_os_str(), "--texts".as_ref(), out.as_os_str(), "--out".as_ref(), out.as_os_str()], "config.json", 1),
        (vec!["--bogus".as_ref()], "bogus", 2),
        (vec!["--model".as_ref(), model.as_os_str(), "--texts".as_ref(), out.as_os_str(), "--out".as_ref(), out.as_os_str(), "--precision".as_ref(), "fp16".as_ref()], "unknown precision `fp16`", 2),
    ];
    for (args, needle, code) in cases {
        let r = rateclust(&args);
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(r.status.code() == Some(code) && err.contains(needle), "{args:?}: expected exit {code} mentioning {needle:?}, got {:?}: {err}", r.status.code());
        assert!(!err.contains("--no-normalize"), "{args:?}: a usage error prints the message, not the whole help: {err}");
    }
    assert!(!out.exists());
}
