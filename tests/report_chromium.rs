//! `report.html` from `rateclust cluster` opened in headless Chromium (Debian's `chromium`; scripts/test.sh
//! installs it): every cluster heading with its name from clusters.json, every thumbnail decoded by the
//! browser (not only present in the markup), both SVG charts (sizes, and the coding-length curve of
//! `--k auto`); and a screenshot, saved as `target/tmp/report_chromium/report.png`.

mod common;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A 40×30 image of one colour with seeded noise, and a stripe whose position depends on `kind` so that
/// the kinds differ in structure as well as colour.
fn save_image(path: &Path, rgb: [u8; 3], kind: u32, seed: u64) {
    let mut rng = rateclust::rng::Rng::new(seed);
    let img = image::RgbImage::from_fn(40, 30, |x, _| {
        let stripe = (x / 8) % 5 == kind;
        image::Rgb(rgb.map(|c| if stripe { 255 - c } else { (c as i32 + rng.below(21) as i32 - 10).clamp(0, 255) as u8 }))
    });
    img.save(path).unwrap();
}

fn chromium(args: &[&str], profile: &Path) -> std::process::Output {
    Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("running chromium (scripts/test.sh installs Debian's chromium)")
}

#[test]
fn report_shows_every_cluster_name_and_image_in_a_browser() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report_chromium");
    let _ = std::fs::remove_dir_all(&dir);
    let images = dir.join("photos");
    for (kind, (sub, rgb)) in [("dark", [10u8, 10, 30]), ("light", [240u8, 240, 220]), ("red", [200u8, 30, 20])].into_iter().enumerate() {
        std::fs::create_dir_all(images.join(sub)).unwrap();
        for i in 0..8u64 {
            save_image(&images.join(sub).join(format!("{i}.png")), rgb, kind as u32, i + 10 * kind as u64);
        }
    }
    std::fs::write(dir.join("vocab.txt"), "night\nsnow\nfire\n").unwrap();
    let out = dir.join("out");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let model = common::fixture("clip_model/tiny");
    let r = Command::new(env!("CARGO_BIN_EXE_rateclust"))
        .args(["cluster", &s(&images), "--model", &s(&model), "--out", &s(&out), "--k", "auto", "--device", "cpu", "--quiet"])
        .args(["--vocab", &s(&dir.join("vocab.txt"))])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("clusters.json")).unwrap()).unwrap();
    let clusters = doc["clusters"].as_array().unwrap();
    let thumbnails: usize = clusters.iter().map(|c| c["central_images"].as_array().unwrap().len()).sum();
    assert!(thumbnails >= clusters.len());

    // A copy of the report with a probe that, once the page has loaded, writes what the browser rendered.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let probe = "<script>window.addEventListener('load', () => { const imgs = [...document.images]; \
        const p = document.createElement('pre'); p.id = 'rc-probe'; \
        p.textContent = `images ${imgs.length} decoded ${imgs.filter(i => i.complete && i.naturalWidth > 0).length} \
        svgs ${document.querySelectorAll('svg').length} clusters ${document.querySelectorAll('h2[id^=c]').length}`; \
        document.body.appendChild(p); });</script></body>";
    let checked = dir.join("report_probe.html");
    std::fs::write(&checked, html.replacen("</body>", probe, 1)).unwrap();
    let url = |p: &Path| format!("file://{}", p.display());
    let dom = chromium(&["--virtual-time-budget=10000", "--dump-dom", &url(&checked)], &dir.join("profile"));
    let dom_text = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.status.success(), "chromium --dump-dom failed: {}", String::from_utf8_lossy(&dom.stderr));
    let line = dom_text.split("<pre id=\"rc-probe\">").nth(1).and_then(|t| t.split("</pre>").next()).unwrap_or_else(|| panic!("no probe output in the DOM:\n{dom_text}"));
    let numbers: Vec<usize> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    assert_eq!(numbers, vec![thumbnails, thumbnails, 2, clusters.len()], "rendered: {line}");
    for c in clusters {
        let heading = format!("Cluster {}: {}", c["cluster"], c["name"].as_str().unwrap());
        assert!(dom_text.contains(&heading), "{heading} not in the rendered page");
    }

    let shot = dir.join("report.png");
    let r = chromium(&["--window-size=1280,1600", &format!("--screenshot={}", shot.display()), &url(&out.join("report.html"))], &dir.join("profile"));
    assert!(r.status.success(), "chromium --screenshot failed: {}", String::from_utf8_lossy(&r.stderr));
    let png = image::open(&shot).expect("the screenshot is a PNG").to_rgb8();
    assert_eq!((png.width(), png.height()), (1280, 1600));
    // Not a blank page: the thumbnails' dark and red pixels are there.
    let dark = png.pixels().filter(|p| p.0.iter().all(|&v| v < 60)).count();
    let red = png.pixels().filter(|p| p.0[0] > 150 && p.0[1] < 80 && p.0[2] < 80).count();
    assert!(dark > 500 && red > 500, "screenshot looks empty: {dark} dark, {red} red pixels");
}
