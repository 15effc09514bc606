//! The outputs a person reads after clustering a folder of images: assignments.csv, clusters.json and
//! report.html (one self-contained page: thumbnails inlined as data URIs, no network, the coding-length curve
//! and cluster sizes as SVG). Written by `rateclust cluster`, and by any caller through
//! [`write_report`] (C `rateclust_write_report`, which the Python package and its Ray pipeline use).

use crate::image_io::decode_file;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Side of a thumbnail's longer edge, in pixels.
const THUMB: u32 = 128;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterSummary {
    /// The self-labeling vote's winner (`None` for an empty cluster).
    pub name: Option<String>,
    pub score: f32,
    pub size: usize,
    /// Next best names with their scores.
    pub runners_up: Vec<(String, f32)>,
    /// Row indices of the most central members, most central first.
    pub central: Vec<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub images_dir: String,
    pub model_dir: String,
    /// Paths relative to `images_dir`, one per row.
    pub files: Vec<PathBuf>,
    pub labels: Vec<usize>,
    pub confidence: Vec<f32>,
    pub clusters: Vec<ClusterSummary>,
    /// Files left out and why.
    #[serde(default)]
    pub skipped: Vec<(PathBuf, String)>,
    /// (k, coding length) when k was chosen automatically.
    #[serde(default)]
    pub k_curve: Option<Vec<(usize, f64)>>,
}

impl Report {
    /// Checks that the parts agree (one label and confidence per file, labels below k, central members are
    /// rows), so the writers below cannot index out of range.
    pub fn check(&self) -> Result<()> {
        let n = self.files.len();
        if self.labels.len() != n || self.confidence.len() != n {
            return Err(crate::invalid_arg!("report: {n} files but {} labels and {} confidences", self.labels.len(), self.confidence.len()));
        }
        let k = self.clusters.len();
        if let Some(l) = self.labels.iter().find(|&&l| l >= k) {
            return Err(crate::invalid_arg!("report: label {l} but only {k} clusters"));
        }
        if let Some(i) = self.clusters.iter().flat_map(|c| &c.central).find(|&&i| i >= n) {
            return Err(crate::invalid_arg!("report: central member {i} but only {n} files"));
        }
        Ok(())
    }
}

/// Writes assignments.csv, clusters.json and report.html for `r` into `out_dir` (created if missing; each
/// file through a temporary file and a rename). Thumbnails are read from `r.images_dir` joined with each
/// file's path.
pub fn write_report(r: &Report, out_dir: &Path) -> Result<()> {
    r.check()?;
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    crate::io::write_atomically(&out_dir.join("assignments.csv"), assignments_csv(r).as_bytes())?;
    crate::io::write_atomically(&out_dir.join("clusters.json"), clusters_json(r)?.as_bytes())?;
    crate::io::write_atomically(&out_dir.join("report.html"), html(r, Path::new(&r.images_dir)).as_bytes())
}

/// RFC 4180 field: quoted when it holds a comma, quote or line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `path,cluster,cluster_name,confidence`, one row per image.
pub fn assignments_csv(r: &Report) -> String {
    let mut out = String::from("path,cluster,cluster_name,confidence\n");
    for ((f, &l), c) in r.files.iter().zip(&r.labels).zip(&r.confidence) {
        let name = r.clusters[l].name.as_deref().unwrap_or("");
        let _ = writeln!(out, "{},{l},{},{c:.4}", csv_field(&f.to_string_lossy()), csv_field(name));
    }
    out
}

/// Per cluster: size, name and runners-up with scores, the most central images; plus what was skipped.
pub fn clusters_json(r: &Report) -> Result<String> {
    let clusters: Vec<serde_json::Value> = r
        .clusters
        .iter()
        .enumerate()
        .map(|(j, c)| {
            let mut captions = vec![];
            if let Some(n) = &c.name {
                captions.push(serde_json::json!({"name": n, "score": c.score}));
            }
            captions.extend(c.runners_up.iter().map(|(n, s)| serde_json::json!({"name": n, "score": s})));
            serde_json::json!({
                "cluster": j,
                "name": c.name,
                "size": c.size,
                "top_captions": captions,
                "central_images": c.central.iter().map(|&i| r.files[i].to_string_lossy()).collect::<Vec<_>>(),
            })
        })
        .collect();
    let doc = serde_json::json!({
        "images_dir": r.images_dir,
        "model": r.model_dir,
        "images": r.files.len(),
        "k": r.clusters.len(),
        "clusters": clusters,
        "skipped": r.skipped.iter().map(|(f, e)| serde_json::json!({"path": f.to_string_lossy(), "error": e})).collect::<Vec<_>>(),
        "k_curve": r.k_curve.as_ref().map(|c| c.iter().map(|&(k, l)| serde_json::json!({"k": k, "coding_length": l})).collect::<Vec<_>>()),
    });
    serde_json::to_string_pretty(&doc).map_err(|e| Error::Internal(e.to_string()))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let v = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            out.push(if i <= c.len() { ABC[(v >> shift & 63) as usize] as char } else { '=' });
        }
    }
    out
}

/// A JPEG thumbnail of the image as a data URI, or `None` when it no longer decodes.
fn thumbnail(path: &Path) -> Option<String> {
    let img = decode_file(path).ok()?;
    let rgb = image::RgbImage::from_raw(img.width as u32, img.height as u32, img.data)?;
    let scale = THUMB as f64 / img.width.max(img.height) as f64;
    let (w, h) = if scale < 1.0 { (((img.width as f64 * scale) as u32).max(1), ((img.height as f64 * scale) as u32).max(1)) } else { (img.width as u32, img.height as u32) };
    let small = image::imageops::thumbnail(&rgb, w, h);
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 80).encode_image(&small).ok()?;
    Some(format!("data:image/jpeg;base64,{}", base64(&jpeg)))
}

/// A polyline chart of `points` (x, y) as inline SVG, axes labelled with the extreme values.
fn svg_line(points: &[(f64, f64)], x_label: &str, y_label: &str) -> String {
    let (w, h, pad) = (520.0, 220.0, 48.0);
    let (x0, x1) = points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (y0, y1) = points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let sx = |x: f64| pad + (x - x0) / (x1 - x0).max(1e-12) * (w - 2.0 * pad);
    let sy = |y: f64| h - pad - (y - y0) / (y1 - y0).max(1e-12) * (h - 2.0 * pad);
    let path: Vec<String> = points.iter().map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y))).collect();
    let dots: String = points.iter().map(|&(x, y)| format!("<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\"><title>{x}: {y:.1}</title></circle>", sx(x), sy(y))).collect();
    format!(
        "<svg width=\"{w}\" height=\"{h}\" role=\"img\"><polyline fill=\"none\" stroke=\"#357\" stroke-width=\"2\" points=\"{}\"/>{dots}\
         <text x=\"{pad}\" y=\"{}\" font-size=\"12\">{x_label} {x0}</text><text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"end\">{x1}</text>\
         <text x=\"4\" y=\"14\" font-size=\"12\">{y_label}: {y1:.0} (top) … {y0:.0} (bottom)</text></svg>",
        path.join(" "),
        h - 12.0,
        w - pad,
        h - 12.0
    )
}

/// Horizontal bars of the cluster sizes as inline SVG.
fn svg_sizes(r: &Report) -> String {
    let max = r.clusters.iter().map(|c| c.size).max().unwrap_or(1).max(1) as f64;
    let (bar_h, w) = (18.0, 520.0);
    let mut s = format!("<svg width=\"{w}\" height=\"{}\" role=\"img\">", bar_h * r.clusters.len() as f64 + 4.0);
    for (j, c) in r.clusters.iter().enumerate() {
        let y = j as f64 * bar_h;
        let len = c.size as f64 / max * (w - 220.0);
        let name = escape(c.name.as_deref().unwrap_or("(empty)"));
        let _ = write!(
            s,
            "<text x=\"0\" y=\"{:.0}\" font-size=\"12\">{j}: {name}</text><rect x=\"160\" y=\"{:.0}\" width=\"{len:.1}\" height=\"{:.0}\" fill=\"#8ab\"/>\
             <text x=\"{:.1}\" y=\"{:.0}\" font-size=\"12\">{}</text>",
            y + 13.0,
            y + 2.0,
            bar_h - 4.0,
            164.0 + len,
            y + 13.0,
            c.size
        );
    }
    s.push_str("</svg>");
    s
}

/// The whole report as one HTML page; `root` is where the image paths are relative to.
pub fn html(r: &Report, root: &Path) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>rateclust: {}</title><style>\
         body{{font-family:sans-serif;margin:24px;color:#222}} .grid{{display:flex;flex-wrap:wrap;gap:6px}}\
         .grid figure{{margin:0;width:{THUMB}px;font-size:10px;overflow:hidden}} .grid img{{max-width:{THUMB}px;max-height:{THUMB}px;display:block}}\
         h2{{margin-top:32px}} .muted{{color:#777}}</style></head><body>",
        escape(&r.images_dir)
    );
    let _ = write!(
        s,
        "<h1>{} images in {} clusters</h1><p class=\"muted\">images: {} · CLIP model: {} · skipped: {}</p>",
        r.files.len(),
        r.clusters.len(),
        escape(&r.images_dir),
        escape(&r.model_dir),
        r.skipped.len()
    );
    s.push_str("<h2>Cluster sizes</h2>");
    s.push_str(&svg_sizes(r));
    if let Some(curve) = &r.k_curve {
        s.push_str("<h2>Coding length over k</h2><p class=\"muted\">k was chosen at the minimum of this curve: the partition that codes the features in the fewest nats.</p>");
        let pts: Vec<(f64, f64)> = curve.iter().map(|&(k, l)| (k as f64, l)).collect();
        s.push_str(&svg_line(&pts, "k", "nats"));
    }
    for (j, c) in r.clusters.iter().enumerate() {
        let name = escape(c.name.as_deref().unwrap_or("(empty)"));
        let others: Vec<String> = c.runners_up.iter().map(|(n, sc)| format!("{} ({sc:.2})", escape(n))).collect();
        let _ = write!(
            s,
            "<h2 id=\"c{j}\">Cluster {j}: {name} <span class=\"muted\">· {} images · score {:.2}</span></h2><p class=\"muted\">also: {}</p><div class=\"grid\">",
            c.size,
            c.score,
            if others.is_empty() { "–".into() } else { others.join(", ") }
        );
        for &i in &c.central {
            let rel = r.files[i].to_string_lossy();
            let src = thumbnail(&root.join(&r.files[i])).unwrap_or_default();
            let _ = write!(s, "<figure><img src=\"{src}\" alt=\"{0}\" title=\"{0}\"><figcaption>{0}</figcaption></figure>", escape(&rel));
        }
        s.push_str("</div>");
    }
    if !r.skipped.is_empty() {
        s.push_str("<h2>Skipped files</h2><ul>");
        for (f, e) in &r.skipped {
            let _ = write!(s, "<li>{}: {}</li>", escape(&f.to_string_lossy()), escape(e));
        }
        s.push_str("</ul>");
    }
    s.push_str("</body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (raw, enc) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy")] {
            assert_eq!(base64(raw.as_bytes()), enc);
        }
    }

    #[test]
    fn csv_and_html_escape_what_they_must() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(escape("<a href='x'>&</a>"), "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;");
    }
}
