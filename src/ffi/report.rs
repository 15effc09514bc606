//! C API for the report a person reads after clustering images (src/report.rs).

use super::{arg_str, guard};
use crate::error::Result;
use super::enums::Status;
use crate::report::{write_report, Report};
use std::ffi::c_char;
use std::path::Path;

/// Writes `assignments.csv`, `clusters.json` and `report.html` (self-contained: thumbnails inlined, no
/// network) into the directory `out_dir` (created if missing; every file through a temporary file and a
/// rename), as `rateclust cluster` does. `report_json` is a NUL-terminated UTF-8 JSON object:
/// `{"images_dir": "...", "model_dir": "...", "files": ["a.jpg", ...], "labels": [0, ...],
/// "confidence": [0.9, ...], "clusters": [{"name": "cat" | null, "score": 0.8, "size": 12,
/// "runners_up": [["dog", 0.1], ...], "central": [row, ...]}, ...], "skipped": [["bad.jpg", "why"], ...],
/// "k_curve": [[k, coding_length], ...] | null}`; `files` are relative to `images_dir` (thumbnails are read
/// from there), `labels` index `clusters`, `central` lists rows of `files` (most central first); `skipped`
/// and `k_curve` may be left out. Errors: a malformed or inconsistent description (INVALID_ARGUMENT naming
/// the problem), an unwritable `out_dir` (IO).
#[no_mangle]
pub extern "C" fn rateclust_write_report(report_json: *const c_char, out_dir: *const c_char) -> Status {
    guard(|| {
        let text = arg_str(report_json, "report_json")?;
        let out = arg_str(out_dir, "out_dir")?;
        let report: Report = parse(text)?;
        write_report(&report, Path::new(out))
    })
}

fn parse(text: &str) -> Result<Report> {
    serde_json::from_str(text).map_err(|e| crate::invalid_arg!("report_json: {e}"))
}
