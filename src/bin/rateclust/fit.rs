//! `rateclust fit`: train the CPP head on a feature matrix and save the fitted clusterer.

use crate::common::*;
use lexopt::prelude::*;
use rateclust::cluster::model::Clusterer;
use rateclust::cluster::params::{AssignRule, FitParams, SampleClustering};
use rateclust::{Device, DeviceKind};
use std::ffi::OsString;

const HELP: &str = "rateclust fit --features X.npy --k K|auto --out model.safetensors [options]
  --k K | --k auto      number of clusters; auto chooses k in 2..=k-max by coding length (curve printed)
  --k-max N             largest k tried by --k auto (default: min(20, sqrt(n)))
  --preset NAME         auto (default: every size setting derived from the data), or the paper's
                        cifar10 | imagenet settings
  Automatic unless given (README.md, 'Defaults', states the rule):
  --steps N --batch N --hidden N --zdim N --eta F --warmup N --lr F (both groups)
  --seed N (default 42)
  --head-restarts N     train N heads (seeds seed..seed+N-1), keep the one whose partition codes the
                        input shortest (N times the training time; default 1)
  --consensus-runs N    k-means++ runs whose consensus partition competes with the head's by coding
                        length; the winner is refined on the neighbour graph and labels by rule
                        neighbors-x (default 30; 0 = the head's partition and --assign-rule only)
  --device auto|cpu|cuda[:N] (default auto) --single-head --raw-input (skip the default L2 normalisation)
  --assign-rule subspace|prototype-z|prototype-c|prototype-x|neighbors-x (the head's rule with
                        --consensus-runs 0; default subspace) --spectral-sample N (default 2048)
  --sample-clustering spectral|kmeans-z|kmeans-c   (how the fitted sample is partitioned; default spectral)";

pub fn run(args: Vec<OsString>) -> CliResult {
    let mut p = parser(args);
    let (mut features, mut out, mut k) = (None, None, None);
    let mut device = DeviceKind::Auto;
    let mut edits: Vec<Box<dyn FnOnce(&mut FitParams)>> = Vec::new();
    let mut preset = "auto".to_string();
    while let Some(arg) = p.next()? {
        match arg {
            Long("features") => features = Some(path(&mut p)?),
            Long("out") => out = Some(path(&mut p)?),
            Long("k") | Short('k') => {
                let v: String = value(&mut p, "k")?;
                k = Some(if v == "auto" { 0 } else { v.parse::<usize>().map_err(|_| CliError::Usage(format!("--k: '{v}' is not a number or 'auto'")))? })
            }
            Long("k-max") => { let v = value(&mut p, "k-max")?; edits.push(Box::new(move |f| f.k_max = v)) }
            Long("preset") => preset = value(&mut p, "preset")?,
            Long("steps") => { let v = value(&mut p, "steps")?; edits.push(Box::new(move |f| f.steps = v)) }
            Long("batch") => { let v = value(&mut p, "batch")?; edits.push(Box::new(move |f| f.batch = v)) }
            Long("hidden") => { let v = value(&mut p, "hidden")?; edits.push(Box::new(move |f| f.hidden = v)) }
            Long("zdim") => { let v = value(&mut p, "zdim")?; edits.push(Box::new(move |f| f.zdim = v)) }
            Long("eta") => { let v = value(&mut p, "eta")?; edits.push(Box::new(move |f| f.eta = v)) }
            Long("warmup") => { let v = value(&mut p, "warmup")?; edits.push(Box::new(move |f| f.warmup = v)) }
            Long("lr") => { let v: f64 = value(&mut p, "lr")?; edits.push(Box::new(move |f| { f.lr = v; f.lr_cluster = v })) }
            Long("head-restarts") => { let v = value(&mut p, "head-restarts")?; edits.push(Box::new(move |f| f.head_restarts = v)) }
            Long("seed") => { let v = value(&mut p, "seed")?; edits.push(Box::new(move |f| f.seed = v)) }
            Long("spectral-sample") => { let v = value(&mut p, "spectral-sample")?; edits.push(Box::new(move |f| f.spectral_sample = v)) }
            Long("assign-rule") => { let v = AssignRule::parse(&value::<String>(&mut p, "assign-rule")?)?; edits.push(Box::new(move |f| f.assign_rule = v)) }
            Long("sample-clustering") => { let v = SampleClustering::parse(&value::<String>(&mut p, "sample-clustering")?)?; edits.push(Box::new(move |f| f.sample_clustering = v)) }
            Long("consensus-runs") => { let v = value(&mut p, "consensus-runs")?; edits.push(Box::new(move |f| f.kmeans_candidates = v)) }
            Long("single-head") => edits.push(Box::new(|f| f.single_head = true)),
            Long("normalize-input") => edits.push(Box::new(|f| f.normalize_input = true)),
            Long("raw-input") => edits.push(Box::new(|f| f.normalize_input = false)),
            Long("device") => device = DeviceKind::parse_with_ordinal(&value::<String>(&mut p, "device")?)?,
            Long("help") | Short('h') => {
                println!("{HELP}");
                return Ok(());
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    let features = required(features, "features")?;
    let out = required(out, "out")?;
    let mut params = FitParams::preset(&preset)?;
    params.k = required(k, "k")?;
    for e in edits {
        e(&mut params);
    }
    let (x, n, dim) = read_features(&features)?;
    let dev = Device::open_default(device)?;
    params.validate(n, dim)?;
    let r = params.resolve(n);
    let k_text = if r.k == 0 { format!("auto (2..={})", r.k_max) } else { r.k.to_string() };
    eprintln!(
        "fitting on {n}×{dim} features, k = {k_text}: {} steps of batch {} × {} head(s), hidden {}, d {}, η {}, lr {} on {}",
        r.steps,
        r.batch_for(n),
        r.head_restarts,
        r.hidden,
        r.zdim,
        r.eta,
        r.lr,
        dev.describe()
    );
    let t0 = std::time::Instant::now();
    let mut bar = Bar::new();
    let mut stages = rateclust::progress::StageTimes::new(&mut bar);
    let model = Clusterer::fit(&x, n, dim, &params, &dev, &mut stages)?;
    stages.finish();
    let secs = t0.elapsed().as_secs_f64();
    let by_stage: Vec<String> = stages.times.iter().map(|(s, t)| format!("{s} {t:.2}")).collect();
    drop(bar);
    eprintln!("time by stage (s): {}", by_stage.join(", "));
    model.save(&out)?;
    if !model.restart_scores.is_empty() {
        let scores: Vec<String> = model.restart_scores.iter().map(|s| format!("{s:.1}")).collect();
        eprintln!("head restarts, coding length of the sample: [{}]; kept restart {}", scores.join(", "), model.chosen_restart);
    }
    if let Some(curve) = &model.k_curve {
        // The curve is for programs too: one JSON line on stdout, like `select-k`.
        println!("{}", serde_json::to_string(curve).map_err(|e| CliError::Lib(rateclust::Error::Internal(e.to_string())))?);
    }
    if let (Some(h), Some(c)) = (model.head_score, model.consensus_score) {
        let kept = if h < c * (1.0 - rateclust::cluster::model::HEAD_MARGIN) { "head" } else { "consensus" };
        eprintln!("partition: coding length of the sample, head {h:.1}, k-means consensus {c:.1}; kept the {kept}'s, refined on the neighbour graph (rule {})", model.params.assign_rule.name());
    }
    let last = model.losses.last().copied().unwrap_or(f64::NAN);
    eprintln!("saved {} (k = {}, final loss {last:.4}) in {secs:.1} s", out.display(), model.k());
    Ok(())
}
