//! `rateclust assign`: label every row of a feature matrix with a fitted clusterer.

use crate::common::*;
use rateclust::io::npy::{write_npy_f32, write_npy_i64};
use rateclust::{Device, DeviceKind};
use std::path::PathBuf;

/// Label every row of a feature matrix with a fitted clusterer
///
/// Writes int64 labels, and optionally float32 confidences and per-cluster scores. On CUDA the head runs on
/// the GPU (TF32 products: a few points near cluster boundaries may differ from the CPU's labels).
#[derive(clap::Args)]
#[command(args_override_self = true, allow_negative_numbers = true)]
pub struct Args {
    #[command(flatten)]
    input: FittedInput,
    /// Labels, n int64
    #[arg(long, value_name = "labels.npy")]
    out: PathBuf,
    /// Also write n float32 confidences: the margin between the best and second-best cluster
    #[arg(long, value_name = "conf.npy")]
    confidence: Option<PathBuf>,
    /// Also write n × k float32 per-cluster scores: with the default rule, the fraction of each point's
    /// nearest fitted points in each cluster (rows sum to 1)
    #[arg(long, value_name = "scores.npy")]
    scores: Option<PathBuf>,
    /// Where to compute: auto (the GPU when usable, else the CPU), cpu, cuda or cuda:N (GPU N)
    #[arg(long, value_name = "auto|cpu|cuda[:N]", default_value = "auto", value_parser = parse_device)]
    device: DeviceKind,
    /// No progress bars or log lines (errors are still printed)
    #[arg(long)]
    quiet: bool,
}

/// Runs `rateclust assign`.
pub fn run(args: Args) -> CliResult {
    let Args { input, out, confidence: conf, scores, device, quiet } = args;
    let outputs: Vec<&std::path::PathBuf> = [Some(&out), conf.as_ref(), scores.as_ref()].into_iter().flatten().collect();
    if (1..outputs.len()).any(|i| outputs[..i].contains(&outputs[i])) {
        return Err(usage("two of --out, --confidence and --scores name the same file: one would replace the other"));
    }
    let (clusterer, x, n) = input.load()?;
    let dev = Device::open_default(device)?;
    let a = clusterer.assign_on(&dev, clusterer.params.assign_rule, &x, n, progress(quiet).as_mut())?;
    write_npy_i64(&out, &a.labels, &[n])?;
    if let Some(c) = conf {
        write_npy_f32(&c, &a.confidence, &[n])?;
    }
    if let Some(path) = scores {
        write_npy_f32(&path, &clusterer.scores(&x, n, progress(quiet).as_mut())?, &[n, clusterer.k()])?;
    }
    if !quiet {
        eprintln!("labelled {n} points into {} clusters → {}", clusterer.k(), out.display());
    }
    Ok(())
}
