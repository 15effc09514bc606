//! `rateclust select-k`: the coding-length curve over candidate k, and its minimiser, as JSON on stdout.

use crate::common::*;
use rateclust::{Device, DeviceKind};

/// The coding-length curve over candidate k and its minimiser, as JSON
///
/// Prints {"candidates": [...], "coding_length": [...], "best_k": K} on stdout, one line; recluster then
/// applies the chosen k.
#[derive(clap::Args)]
#[command(args_override_self = true, allow_negative_numbers = true)]
pub struct Args {
    #[command(flatten)]
    input: FittedInput,
    /// Candidate numbers of clusters, comma-separated (e.g. 5,8,10)
    #[arg(long, value_name = "K,K,...", value_parser = parse_candidates)]
    candidates: Candidates,
    /// Where to compute: auto (the GPU when usable, else the CPU), cpu, cuda or cuda:N (GPU N)
    #[arg(long, value_name = "auto|cpu|cuda[:N]", default_value = "auto", value_parser = parse_device)]
    device: DeviceKind,
    /// No progress bars (the JSON result and errors are still printed)
    #[arg(long)]
    quiet: bool,
}

/// Runs `rateclust select-k`.
pub fn run(args: Args) -> CliResult {
    let Args { input, candidates: Candidates(cands), device, quiet } = args;
    let (clusterer, x, n) = input.load()?;
    let dev = Device::open_default(device)?;
    let r = clusterer.select_k(&x, n, &cands, &dev, progress(quiet).as_mut())?;
    println!("{}", serde_json::to_string(&r).map_err(|e| rateclust::Error::Internal(e.to_string()))?);
    Ok(())
}
