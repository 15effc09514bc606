//! `rateclust embed`: CLIP embeddings of a folder or list of images, or of a file of texts, to a .npy file.

use indicatif::{ProgressBar, ProgressStyle};
use rateclust::clip::{ClipModel, EmbedOptions};
use crate::common::{clip_dir, required, usage, CliResult};
use rateclust::{invalid_arg, DeviceKind, Error};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub const USAGE: &str = "\
rateclust embed --model DIR (--images DIR_OR_LIST | --texts FILE) --out X.npy [options]

Writes an n × d float32 .npy of CLIP embeddings (L2-normalised projected embeddings by default).
  --model DIR|ID    Hugging Face CLIP directory: config.json, model.safetensors (f32/f16/bf16),
                    vocab.json + merges.txt for texts, optional preprocessor_config.json; or a Hub id
                    (openai/clip-vit-base-patch32), downloaded once into the HF cache (HF_HOME,
                    HF_ENDPOINT and HF_HUB_OFFLINE=1 honoured)
  --images PATH     a directory (its .jpg/.jpeg/.png/.webp files, sorted by path; not recursive) or a
                    text file listing image paths, one per line (relative to the current directory).
                    The rows' files are written to X.files.txt (one path per line, row order); files
                    that do not decode are left out and listed with the reason in X.skipped.txt
  --texts FILE      UTF-8 text file, one text per line (rows in line order)
  --out X.npy       output file (written to a temporary file, then renamed)
  --batch N         items per forward pass (default 32)
  --device KIND     auto | cpu | cuda (default auto: the GPU when usable, else the CPU)
  --no-normalize    keep the raw projected embeddings
  --pooled          write the pooled output before the projection instead
  --quiet           no progress bar
";

enum Input {
    Images(PathBuf),
    Texts(PathBuf),
}

/// Runs `rateclust embed` with the arguments after `embed`.
pub fn run(args: Vec<OsString>) -> CliResult {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let (mut model, mut input, mut out) = (None, None, None);
    let mut opts = EmbedOptions::default();
    let mut device = DeviceKind::Auto;
    let mut quiet = false;
    let bad = |e: lexopt::Error| usage(format!("{e} (rateclust embed --help lists the options)"));
    while let Some(arg) = parser.next().map_err(bad)? {
        match arg {
            Long("model") => model = Some(PathBuf::from(parser.value().map_err(bad)?)),
            Long("images") => set_input(&mut input, Input::Images(parser.value().map_err(bad)?.into()))?,
            Long("texts") => set_input(&mut input, Input::Texts(parser.value().map_err(bad)?.into()))?,
            Long("out") => out = Some(PathBuf::from(parser.value().map_err(bad)?)),
            Long("batch") => {
                let v: usize = parser.value().map_err(bad)?.parse().map_err(bad)?;
                if v == 0 {
                    return Err(usage("--batch must be positive"));
                }
                opts.batch_size = v;
            }
            Long("device") => device = DeviceKind::parse_with_ordinal(&parser.value().map_err(bad)?.string().map_err(bad)?)?,
            Long("no-normalize") => opts.normalize = false,
            Long("pooled") => opts.pooled = true,
            Long("quiet") => quiet = true,
            Long("help") | Short('h') => {
                print!("{USAGE}");
                return Ok(());
            }
            other => return Err(bad(other.unexpected())),
        }
    }
    let model_dir = clip_dir(model, quiet)?;
    let input = input.ok_or_else(|| usage("one of --images or --texts is required"))?;
    let out = required(out, "out")?;

    let model = ClipModel::load_on(&model_dir, device)?;
    let (rows, n, images) = match &input {
        Input::Images(p) => {
            let paths = image_paths(p)?;
            let bar = bar(paths.len(), "images", quiet);
            let embedded = crate::images::embed_skipping(&model, Path::new(""), &paths, &opts, &mut |_: &str, done: u64, _: u64| {
                bar.set_position(done);
                true
            });
            bar.finish_and_clear();
            let (rows, kept, skipped) = embedded?;
            crate::images::write_file_list(&out.with_extension("files.txt"), &kept)?;
            let skipped_path = out.with_extension("skipped.txt");
            if skipped.is_empty() {
                let _ = std::fs::remove_file(&skipped_path);
            } else {
                crate::images::write_skipped(&skipped_path, &skipped)?;
                eprintln!("skipped {} files that could not be decoded (listed in {})", skipped.len(), skipped_path.display());
            }
            if kept.is_empty() {
                return Err(invalid_arg!("none of the {} images could be decoded", paths.len()).into());
            }
            let n = kept.len();
            (rows, n, true)
        }
        Input::Texts(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
            let lines = text_lines(&text);
            let bar = bar(lines.len(), "texts", quiet);
            let rows = model.embed_texts(&lines, &opts, &mut |_: &str, done: u64, _: u64| {
                bar.set_position(done);
                true
            })?;
            bar.finish_and_clear();
            (rows, lines.len(), false)
        }
    };
    let dim = model.output_dim(images, &opts);
    rateclust::io::npy::write_npy_f32(&out, &rows, &[n, dim])?;
    if !quiet {
        eprintln!("wrote {} ({n} × {dim} float32)", out.display());
    }
    Ok(())
}

fn set_input(slot: &mut Option<Input>, v: Input) -> CliResult {
    if slot.is_some() {
        return Err(usage("give exactly one of --images or --texts"));
    }
    *slot = Some(v);
    Ok(())
}

fn bar(n: usize, what: &str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(n as u64);
    if let Ok(style) = ProgressStyle::with_template(&format!("{{bar:40}} {{pos}}/{{len}} {what} [{{elapsed}} < {{eta}}]")) {
        bar.set_style(style);
    }
    bar
}

/// The images of a directory (sorted by path) or the paths listed in a file.
fn image_paths(p: &Path) -> rateclust::Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
    let mut paths = if meta.is_dir() {
        let mut v = Vec::new();
        for entry in std::fs::read_dir(p).map_err(|e| Error::io(p, e))? {
            let path = entry.map_err(|e| Error::io(p, e))?.path();
            let ext = path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase());
            if path.is_file() && matches!(ext.as_deref(), Some("jpg" | "jpeg" | "png" | "webp")) {
                v.push(path);
            }
        }
        v.sort();
        v
    } else {
        let text = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
        text.lines().map(|l| l.trim_end_matches('\r')).filter(|l| !l.trim().is_empty()).map(PathBuf::from).collect()
    };
    if paths.is_empty() {
        return Err(invalid_arg!("{}: no images found (.jpg, .jpeg, .png, .webp)", p.display()));
    }
    paths.shrink_to_fit();
    Ok(paths)
}

/// One text per line; a final newline does not add an empty text, `\r\n` endings are accepted.
fn text_lines(text: &str) -> Vec<&str> {
    text.lines().map(|l| l.trim_end_matches('\r')).collect()
}
