//! `rateclust embed`: CLIP embeddings of a folder or list of images, or of a file of texts, to a .npy file.

use indicatif::{ProgressBar, ProgressStyle};
use rateclust::clip::{ClipModel, EmbedOptions, LoadOptions, Precision, Towers};
use crate::common::{clip_dir, parse_device, parse_positive, parse_precision, usage, CliResult};
use rateclust::{invalid_arg, DeviceKind, Error};
use std::path::{Path, PathBuf};

/// CLIP embeddings of images or texts, to an n × d float32 .npy file
///
/// Writes L2-normalised projected CLIP embeddings by default, one row per image or text.
#[derive(clap::Args)]
#[command(args_override_self = true, allow_negative_numbers = true)]
pub struct Args {
    /// Hugging Face CLIP directory: config.json, model.safetensors (f32/f16/bf16), vocab.json + merges.txt
    /// for texts, optional preprocessor_config.json; or a Hub id (openai/clip-vit-base-patch32), downloaded
    /// once into the HF cache (HF_HOME, HF_ENDPOINT and HF_HUB_OFFLINE=1 honoured)
    #[arg(long, value_name = "DIR|ID")]
    model: PathBuf,
    /// A directory (its .jpg/.jpeg/.png/.webp files, sorted by path; not recursive) or a text file listing
    /// image paths, one per line (relative to the current directory). The rows' files are written to
    /// X.files.txt (one path per line, row order); files that do not decode are left out and listed with the
    /// reason in X.skipped.txt
    #[arg(long, value_name = "PATH", conflicts_with = "texts")]
    images: Option<PathBuf>,
    /// UTF-8 text file, one text per line (rows in line order)
    #[arg(long, value_name = "FILE")]
    texts: Option<PathBuf>,
    /// Output file (written to a temporary file, then renamed)
    #[arg(long, value_name = "X.npy")]
    out: PathBuf,
    /// Items per forward pass
    #[arg(long, value_name = "N", default_value_t = EmbedOptions::default().batch_size, value_parser = parse_positive)]
    batch: usize,
    /// Where to compute: auto (the GPU when usable, else the CPU), cpu, cuda or cuda:N (GPU N)
    #[arg(long, value_name = "auto|cpu|cuda[:N]", default_value = "auto", value_parser = parse_device)]
    device: DeviceKind,
    /// The encoder layers' linear layers in f32, or in int8 (weights per output channel, activations per
    /// token; CPU only, a quarter of their memory, faster with AVX-512 VNNI; embeddings within 0.999
    /// cosine of f32 on ViT-B/32)
    #[arg(long, value_name = "f32|int8", default_value = "f32", value_parser = parse_precision)]
    precision: Precision,
    /// Keep the raw projected embeddings (no L2 normalisation)
    #[arg(long)]
    no_normalize: bool,
    /// Write the pooled output before the projection instead
    #[arg(long)]
    pooled: bool,
    /// No progress bar or log lines (errors and the list of skipped files are still printed)
    #[arg(long)]
    quiet: bool,
}

enum Input {
    Images(PathBuf),
    Texts(PathBuf),
}

/// Runs `rateclust embed`.
pub fn run(args: Args) -> CliResult {
    let Args { model, images, texts, out, batch, device, precision, no_normalize, pooled, quiet } = args;
    let input = match (images, texts) {
        (Some(p), None) => Input::Images(p),
        (None, Some(p)) => Input::Texts(p),
        (None, None) => return Err(usage("one of --images or --texts is required")),
        (Some(_), Some(_)) => return Err(usage("give exactly one of --images or --texts")),
    };
    let mut opts = EmbedOptions::default();
    (opts.normalize, opts.pooled, opts.batch_size) = (!no_normalize, pooled, batch);
    let model_dir = clip_dir(model, quiet)?;

    // Only the tower this run uses: the other's weights are never read.
    let towers = if matches!(input, Input::Images(_)) { Towers::Images } else { Towers::Texts };
    let model = ClipModel::load_with(&model_dir, &LoadOptions { device, towers, precision })?;
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
                // Say why, at least for the first one: with a single image that is the whole story.
                let why = skipped.first().map(|(_, e)| format!(" (first: {e})")).unwrap_or_default();
                return Err(invalid_arg!("none of the {} images could be decoded{why}", paths.len()).into());
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
