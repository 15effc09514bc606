//! What the subcommands share: error type, value parsers for clap, .npy reading, the progress bar.

use indicatif::{ProgressBar, ProgressStyle};
use rateclust::cluster::clusterer::Clusterer;
use rateclust::cluster::params::{AssignRule, FitParams, SampleClustering};
use rateclust::io::npy::read_npy;
use rateclust::progress::{NoProgress, Progress};
use rateclust::DeviceKind;
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

pub type CliResult<T = ()> = Result<T, CliError>;

pub fn usage(msg: impl Into<String>) -> CliError {
    CliError::Usage(msg.into())
}

/// The CLIP directory named by `--model`: a local directory, or a Hugging Face Hub id downloaded into the HF
/// cache (src/clip/hub.rs; `HF_HOME`, `HF_ENDPOINT`, `HF_HUB_OFFLINE`).
pub fn clip_dir(model: PathBuf, quiet: bool) -> CliResult<PathBuf> {
    match model.to_str() {
        Some(spec) => Ok(rateclust::clip::hub::resolve_model_dir(spec, !quiet)?),
        None => Ok(model),
    }
}

// Value parsers: clap calls them while parsing, so a bad value is a usage error (exit 2) whose message names
// the option, followed by the library's own reason.

/// The library's message for a value it refused, without the "invalid argument: " prefix (clap's "invalid
/// value '…' for '--option'" says that already).
fn lib_message(e: rateclust::Error) -> String {
    match e {
        rateclust::Error::InvalidArgument(m) => m,
        other => other.to_string(),
    }
}

/// `--device auto|cpu|cuda[:N]` (`cuda:N` also makes GPU N the process's default: [`DeviceKind::parse_with_ordinal`]).
pub fn parse_device(s: &str) -> Result<DeviceKind, String> {
    DeviceKind::parse_with_ordinal(s).map_err(lib_message)
}

/// `--precision f32|int8`.
pub fn parse_precision(s: &str) -> Result<rateclust::clip::Precision, String> {
    s.parse().map_err(lib_message)
}

/// `--k K|auto`: a number of clusters, or `auto` (0, the library's "choose k by coding length").
pub fn parse_k_or_auto(s: &str) -> Result<usize, String> {
    if s == "auto" {
        return Ok(0);
    }
    s.parse().map_err(|_| format!("'{s}' is not a number or 'auto'"))
}

/// A count that must be at least 1 (`--batch`).
pub fn parse_positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be positive".to_string()),
        Ok(v) => Ok(v),
        Err(e) => Err(e.to_string()),
    }
}

pub fn parse_assign_rule(s: &str) -> Result<AssignRule, String> {
    AssignRule::parse(s).map_err(lib_message)
}

pub fn parse_sample_clustering(s: &str) -> Result<SampleClustering, String> {
    SampleClustering::parse(s).map_err(lib_message)
}

/// A preset name [`FitParams::preset`] knows.
pub fn parse_preset(s: &str) -> Result<String, String> {
    FitParams::preset(s).map(|_| s.to_string()).map_err(lib_message)
}

/// `--candidates 5,8,10`: comma-separated numbers of clusters (spaces around them allowed).
#[derive(Clone, Debug)]
pub struct Candidates(pub Vec<usize>);

pub fn parse_candidates(s: &str) -> Result<Candidates, String> {
    s.split(',').map(|t| t.trim().parse::<usize>().map_err(|_| format!("'{t}' is not a number"))).collect::<Result<_, _>>().map(Candidates)
}

/// Terminal progress bars, or nothing with `--quiet`.
pub fn progress(quiet: bool) -> Box<dyn Progress> {
    if quiet {
        Box::new(NoProgress)
    } else {
        Box::new(Bar::new())
    }
}

/// A feature matrix from a 2-D float .npy file: (values, rows, cols).
pub fn read_features(path: &Path) -> CliResult<(Vec<f32>, usize, usize)> {
    let arr = read_npy(path)?;
    Ok(arr.to_f32_matrix(&path.display().to_string())?)
}

/// A feature matrix for a fitted clusterer: as [`read_features`], and its width must be the clusterer's input
/// dimension (the error names the file).
pub fn read_features_for(clusterer: &Clusterer, path: &Path) -> CliResult<(Vec<f32>, usize)> {
    let (x, n, dim) = read_features(path)?;
    if dim != clusterer.input_dim() {
        let msg = format!("{} has dimension {dim}, but the clusterer was fitted on dimension {}", path.display(), clusterer.input_dim());
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

/// A fitted clusterer and a feature matrix for it: what assign, select-k and recluster read.
///
/// `--model` means the CLIP model in every other command; here it is only a hidden, deprecated alias of
/// `--clusterer` that still works ([`warn_if_model_names_a_clusterer`] prints the warning).
#[derive(clap::Args)]
pub struct FittedInput {
    /// The fitted clusterer, a .safetensors file saved by rateclust fit, recluster or cluster
    #[arg(long, value_name = "FILE", alias = "model")]
    pub clusterer: PathBuf,
    /// Feature matrix, n × dim, dim the clusterer's input dimension
    #[arg(long, value_name = "X.npy")]
    pub features: PathBuf,
}

/// Prints the deprecation warning (on stderr, even with --quiet) when `--clusterer` was spelled `--model`.
///
/// Called only after a command holding a [`FittedInput`] parsed. clap does not say which alias it matched, so
/// this reads the arguments: in those commands `--model` is nothing but that alias, no option takes a value
/// starting with `--` and there are no positionals, so a `--model` or `--model=…` argument is the alias.
pub fn warn_if_model_names_a_clusterer() {
    let used = std::env::args_os().skip(1).take_while(|a| a != "--").any(|a| a == "--model" || a.to_str().is_some_and(|s| s.starts_with("--model=")));
    if used {
        eprintln!("rateclust: --model for a clusterer file is deprecated; use --clusterer");
    }
}

impl FittedInput {
    /// The clusterer and its features (values, rows); the width must be the clusterer's input dimension.
    pub fn load(&self) -> CliResult<(Clusterer, Vec<f32>, usize)> {
        let clusterer = Clusterer::load(&self.clusterer)?;
        let (x, n) = read_features_for(&clusterer, &self.features)?;
        Ok((clusterer, x, n))
    }
}
