//! `rateclust fit`: train the CPP head on a feature matrix and save the fitted clusterer.

use crate::common::*;
use rateclust::cluster::clusterer::Clusterer;
use rateclust::cluster::params::{AssignRule, FitParams, SampleClustering};
use rateclust::{Device, DeviceKind};
use std::path::PathBuf;

/// Train the CPP head on a feature matrix and save the fitted clusterer
///
/// Sizes, schedule, η and learning rate are derived from the data unless given (README.md, 'Defaults', states
/// the rule). With --k auto the coding-length curve over k is printed on stdout as one JSON line; progress
/// and the log go to stderr.
#[derive(clap::Args)]
#[command(args_override_self = true, allow_negative_numbers = true)]
pub struct Args {
    /// Feature matrix, n × dim (float16/32/64 .npy)
    #[arg(long, value_name = "X.npy")]
    features: PathBuf,
    /// Number of clusters, or auto: chooses k in 2..=k-max by coding length (the curve is printed)
    #[arg(short, long, value_name = "K|auto", value_parser = parse_k_or_auto)]
    k: usize,
    /// Where the fitted clusterer is saved (.safetensors; assign, select-k and recluster read it with --clusterer)
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Largest k tried by --k auto: min(20, sqrt(n)) [default: automatic, see README 'Defaults']
    #[arg(long, value_name = "N")]
    k_max: Option<usize>,
    /// auto: every size setting derived from the data; or the paper's cifar10 | imagenet settings
    #[arg(long, value_name = "NAME", default_value = "auto", value_parser = parse_preset)]
    preset: String,
    /// Optimiser steps [default: automatic, see README 'Defaults']
    #[arg(long, value_name = "N")]
    steps: Option<usize>,
    /// Minibatch size [default: automatic, see README 'Defaults']
    #[arg(long, value_name = "N")]
    batch: Option<usize>,
    /// Hidden width of the head [default: automatic, see README 'Defaults']
    #[arg(long, value_name = "N")]
    hidden: Option<usize>,
    /// Output dimension of the head [default: automatic, see README 'Defaults']
    #[arg(long, value_name = "N")]
    zdim: Option<usize>,
    /// Sinkhorn temperature η [default: automatic, see README 'Defaults']
    #[arg(long, value_name = "F")]
    eta: Option<f64>,
    /// Warm-up steps [default: automatic, see README 'Defaults']
    #[arg(long, value_name = "N")]
    warmup: Option<usize>,
    /// Learning rate of both parameter groups [default: automatic, see README 'Defaults']
    #[arg(long, value_name = "F")]
    lr: Option<f64>,
    /// Seed of the fit
    #[arg(long, value_name = "N", default_value_t = FitParams::default().seed)]
    seed: u64,
    /// Train N heads (seeds seed..seed+N-1) and keep the one whose partition codes the input shortest (N
    /// times the training time)
    #[arg(long, value_name = "N", default_value_t = FitParams::default().head_restarts)]
    head_restarts: usize,
    /// k-means++ runs whose consensus partition competes with the head's by coding length; the winner is
    /// refined on the neighbour graph and labels by rule neighbors-x (0 = the head's partition and
    /// --assign-rule only) [default: 30; 0 with --preset cifar10 or imagenet]
    #[arg(long, value_name = "N")]
    consensus_runs: Option<usize>,
    /// Where to compute: auto (the GPU when usable, else the CPU), cpu, cuda or cuda:N (GPU N)
    #[arg(long, value_name = "auto|cpu|cuda[:N]", default_value = "auto", value_parser = parse_device)]
    device: DeviceKind,
    /// Π from Z instead of a separate cluster head
    #[arg(long)]
    single_head: bool,
    /// Skip the L2 normalisation of the input rows (the default of --preset auto normalises)
    #[arg(long, overrides_with = "normalize_input")]
    raw_input: bool,
    /// L2-normalise the input rows (the default, except with --preset cifar10 or imagenet)
    #[arg(long, overrides_with = "raw_input")]
    normalize_input: bool,
    /// The head's labelling rule with --consensus-runs 0: subspace | prototype-z | prototype-c | prototype-x |
    /// neighbors-x
    #[arg(long, value_name = "RULE", default_value = FitParams::default().assign_rule.name(), value_parser = parse_assign_rule)]
    assign_rule: AssignRule,
    /// Points of the fitted sample whose partition is computed
    #[arg(long, value_name = "N", default_value_t = FitParams::default().spectral_sample)]
    spectral_sample: usize,
    /// How the fitted sample is partitioned: spectral | kmeans-z | kmeans-c
    #[arg(long, value_name = "NAME", default_value = "spectral", value_parser = parse_sample_clustering)]
    sample_clustering: SampleClustering,
    /// No progress bars or log lines (the JSON curve of --k auto and errors are still printed)
    #[arg(long)]
    quiet: bool,
}

/// Runs `rateclust fit`.
pub fn run(a: Args) -> CliResult {
    let mut params = FitParams::preset(&a.preset)?;
    params.k = a.k;
    let set = |slot: &mut usize, v: Option<usize>| {
        if let Some(v) = v {
            *slot = v;
        }
    };
    set(&mut params.k_max, a.k_max);
    set(&mut params.steps, a.steps);
    set(&mut params.batch, a.batch);
    set(&mut params.hidden, a.hidden);
    set(&mut params.zdim, a.zdim);
    set(&mut params.warmup, a.warmup);
    set(&mut params.kmeans_candidates, a.consensus_runs);
    if let Some(eta) = a.eta {
        params.eta = eta;
    }
    if let Some(lr) = a.lr {
        (params.lr, params.lr_cluster) = (lr, lr);
    }
    // The presets keep these at the defaults shown by --help, so setting them always changes nothing else.
    params.seed = a.seed;
    params.head_restarts = a.head_restarts;
    params.spectral_sample = a.spectral_sample;
    params.assign_rule = a.assign_rule;
    params.sample_clustering = a.sample_clustering;
    if a.single_head {
        params.single_head = true;
    }
    if a.raw_input {
        params.normalize_input = false;
    } else if a.normalize_input {
        params.normalize_input = true;
    }
    let (features, out, device, quiet) = (a.features, a.out, a.device, a.quiet);
    let log = |msg: String| {
        if !quiet {
            eprintln!("{msg}");
        }
    };
    let (x, n, dim) = read_features(&features)?;
    let dev = Device::open_default(device)?;
    params.validate(n, dim)?;
    let r = params.resolve(n);
    let k_text = if r.k == 0 { format!("auto (2..={})", r.k_max) } else { r.k.to_string() };
    log(format!(
        "fitting on {n}×{dim} features, k = {k_text}: {} steps of batch {} × {} head(s), hidden {}, d {}, η {}, lr {} on {}",
        r.steps,
        r.batch_for(n),
        r.head_restarts,
        r.hidden,
        r.zdim,
        r.eta,
        r.lr,
        dev.describe()
    ));
    let t0 = std::time::Instant::now();
    let mut bar = progress(quiet);
    let mut stages = rateclust::progress::StageTimes::new(bar.as_mut());
    let clusterer = Clusterer::fit(&x, n, dim, &params, &dev, &mut stages)?;
    stages.finish();
    let secs = t0.elapsed().as_secs_f64();
    let by_stage: Vec<String> = stages.times.iter().map(|(s, t)| format!("{s} {t:.2}")).collect();
    drop(bar);
    log(format!("time by stage (s): {}", by_stage.join(", ")));
    clusterer.save(&out)?;
    if !clusterer.restart_scores.is_empty() {
        let scores: Vec<String> = clusterer.restart_scores.iter().map(|s| format!("{s:.1}")).collect();
        log(format!("head restarts, coding length of the sample: [{}]; kept restart {}", scores.join(", "), clusterer.chosen_restart));
    }
    if let Some(curve) = &clusterer.k_curve {
        // The curve is for programs too: one JSON line on stdout, like `select-k`.
        println!("{}", serde_json::to_string(curve).map_err(|e| CliError::Lib(rateclust::Error::Internal(e.to_string())))?);
    }
    if let (Some(h), Some(c)) = (clusterer.head_score, clusterer.consensus_score) {
        let kept = if h < c * (1.0 - rateclust::cluster::clusterer::HEAD_MARGIN) { "head" } else { "consensus" };
        log(format!("partition: coding length of the sample, head {h:.1}, k-means consensus {c:.1}; kept the {kept}'s, refined on the neighbour graph (rule {})", clusterer.params.assign_rule.name()));
    }
    let last = clusterer.losses.last().copied().unwrap_or(f64::NAN);
    log(format!("saved {} (k = {}, final loss {last:.4}) in {secs:.1} s", out.display(), clusterer.k()));
    Ok(())
}
