//! `rateclust recluster`: re-derive the clusters of a fitted clusterer for another k (e.g. the one `select-k`
//! chose) from the features, without retraining the head.

use crate::common::*;
use rateclust::{Device, DeviceKind};
use std::path::PathBuf;

/// Re-derive a fitted clusterer's clusters for another k, without retraining the head
///
/// For example the k that select-k chose. The features are the ones the clusterer was fitted on (or more of the
/// same kind).
#[derive(clap::Args)]
#[command(args_override_self = true, allow_negative_numbers = true)]
pub struct Args {
    #[command(flatten)]
    input: FittedInput,
    /// The new number of clusters
    #[arg(short, long, value_name = "K")]
    k: usize,
    /// Where the re-clustered clusterer is saved (.safetensors)
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Where to compute: auto (the GPU when usable, else the CPU), cpu, cuda or cuda:N (GPU N)
    #[arg(long, value_name = "auto|cpu|cuda[:N]", default_value = "auto", value_parser = parse_device)]
    device: DeviceKind,
    /// No progress bars or log lines (errors are still printed)
    #[arg(long)]
    quiet: bool,
}

/// Runs `rateclust recluster`.
pub fn run(args: Args) -> CliResult {
    let Args { input, k, out, device, quiet } = args;
    let (mut clusterer, x, n) = input.load()?;
    let dev = Device::open_default(device)?;
    clusterer.set_k(&x, n, k, &dev, progress(quiet).as_mut())?;
    clusterer.save(&out)?;
    if !quiet {
        eprintln!("saved {} (k = {})", out.display(), clusterer.k());
    }
    Ok(())
}
