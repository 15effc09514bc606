//! What the subcommands share: error type, argument helpers, .npy reading, the progress bar.

use indicatif::{ProgressBar, ProgressStyle};
use rateclust::cluster::model::Clusterer;
use rateclust::io::npy::read_npy;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub enum CliError {
    /// Bad command line (exit code 2).
    Usage(String),
    /// The library failed (exit code 1).
    Lib(rateclust::Error),
}

impl From<rateclust::Error> for CliError {
    fn from(e: rateclust::Error) -> Self {
        CliError::Lib(e)
    }
}

impl From<lexopt::Error> for CliError {
    fn from(e: lexopt::Error) -> Self {
        CliError::Usage(e.to_string())
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;

pub fn usage(msg: impl Into<String>) -> CliError {
    CliError::Usage(msg.into())
}

/// Parses an option's value with `FromStr`, naming the option in the error.
pub fn value<T: std::str::FromStr>(p: &mut lexopt::Parser, name: &str) -> CliResult<T> {
    let v = p.value()?.into_string().map_err(|_| usage(format!("--{name}: not valid UTF-8")))?;
    v.parse().map_err(|_| usage(format!("--{name}: cannot parse '{v}'")))
}

pub fn path(p: &mut lexopt::Parser) -> CliResult<PathBuf> {
    Ok(PathBuf::from(p.value()?))
}

pub fn required<T>(v: Option<T>, name: &str) -> CliResult<T> {
    v.ok_or_else(|| usage(format!("--{name} is required")))
}

/// The CLIP directory named by `--model`: a local directory, or a Hugging Face Hub id downloaded into the HF
/// cache (src/clip/hub.rs; `HF_HOME`, `HF_ENDPOINT`, `HF_HUB_OFFLINE`).
pub fn clip_dir(model: Option<PathBuf>, quiet: bool) -> CliResult<PathBuf> {
    let model = required(model, "model")?;
    match model.to_str() {
        Some(spec) => Ok(rateclust::clip::hub::resolve_model_dir(spec, !quiet)?),
        None => Ok(model),
    }
}

pub fn parser(args: Vec<OsString>) -> lexopt::Parser {
    lexopt::Parser::from_args(args)
}

/// A feature matrix from a 2-D float .npy file: (values, rows, cols).
pub fn read_features(path: &Path) -> CliResult<(Vec<f32>, usize, usize)> {
    let arr = read_npy(path)?;
    Ok(arr.to_f32_matrix(&path.display().to_string())?)
}

/// A feature matrix for a fitted model: as [`read_features`], and its width must be the model's input
/// dimension (the error names the file).
pub fn read_features_for(model: &Clusterer, path: &Path) -> CliResult<(Vec<f32>, usize)> {
    let (x, n, dim) = read_features(path)?;
    if dim != model.input_dim() {
        let msg = format!("{} has dimension {dim}, but the model was fitted on dimension {}", path.display(), model.input_dim());
        return Err(rateclust::invalid_arg!("{msg}").into());
    }
    Ok((x, n))
}

/// A label vector from a 1-D integer .npy file.
pub fn read_labels(path: &Path) -> CliResult<Vec<i64>> {
    let arr = read_npy(path)?;
    Ok(arr.to_i64_vec(&path.display().to_string())?)
}

/// A terminal progress bar per stage, as a library `Progress` (never cancels).
pub struct Bar {
    stage: String,
    bar: Option<ProgressBar>,
}

impl Bar {
    pub fn new() -> Self {
        Bar { stage: String::new(), bar: None }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish();
        }
    }
}

impl rateclust::progress::Progress for Bar {
    fn report(&mut self, stage: &str, done: u64, total: u64) -> bool {
        if stage != self.stage || self.bar.is_none() {
            if let Some(b) = self.bar.take() {
                b.finish();
            }
            let b = ProgressBar::new(total);
            b.set_style(
                ProgressStyle::with_template("{prefix:>9} [{bar:40}] {pos}/{len} {elapsed_precise} eta {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            b.set_prefix(stage.to_string());
            self.bar = Some(b);
            self.stage = stage.to_string();
        }
        if let Some(b) = &self.bar {
            b.set_length(total);
            b.set_position(done);
        }
        true
    }
}
