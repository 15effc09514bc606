//! `rateclust fit`: train the CPP head on a feature matrix and save the fitted clusterer.

use crate::common::*;
use lexopt::prelude::*;
use rateclust::cluster::model::Clusterer;
use rateclust::cluster::params::{AssignRule, FitParams, SampleClustering};
use rateclust::{Device, DeviceKind};
use std::ffi::OsString;

const HELP: &str = "rateclust fit --features X.npy --k K --out model.safetensors [options]
  --preset NAME         start from a preset: cifar10 (default), imagenet, fmnist-effnet
  --epochs N --batch N --hidden N --zdim N --eta F --warmup N --lr F (both groups) --seed N
  --head-restarts N     train N heads (seeds seed..seed+N-1), keep the one whose partition codes the
                        input shortest (N times the training time)
  --device auto|cpu|cuda --single-head --normalize-input
  --assign-rule subspace|prototype-z|prototype-c --spectral-sample N
  --sample-clustering spectral|kmeans-z|kmeans-c   (how the fitted sample is partitioned; default spectral)";

pub fn run(args: Vec<OsString>) -> CliResult {
    let mut p = parser(args);
    let (mut features, mut out, mut k) = (None, None, None);
    let mut device = DeviceKind::Auto;
    let mut edits: Vec<Box<dyn FnOnce(&mut FitParams)>> = Vec::new();
    let mut preset = "cifar10".to_string();
    while let Some(arg) = p.next()? {
        match arg {
            Long("features") => features = Some(path(&mut p)?),
            Long("out") => out = Some(path(&mut p)?),
            Long("k") | Short('k') => k = Some(value::<usize>(&mut p, "k")?),
            Long("preset") => preset = value(&mut p, "preset")?,
            Long("epochs") => { let v = value(&mut p, "epochs")?; edits.push(Box::new(move |f| f.epochs = v)) }
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
            Long("single-head") => edits.push(Box::new(|f| f.single_head = true)),
            Long("normalize-input") => edits.push(Box::new(|f| f.normalize_input = true)),
            Long("device") => device = DeviceKind::parse(&value::<String>(&mut p, "device")?)?,
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
    let dev = Device::open(device, 0)?;
    eprintln!(
        "fitting on {n}×{dim} features, k = {}, {} steps × {} head(s) on {}",
        params.k,
        params.total_steps(n),
        params.head_restarts,
        dev.describe()
    );
    let model = Clusterer::fit(&x, n, dim, &params, &dev, &mut Bar::new())?;
    model.save(&out)?;
    if !model.restart_scores.is_empty() {
        let scores: Vec<String> = model.restart_scores.iter().map(|s| format!("{s:.1}")).collect();
        eprintln!("head restarts, coding length of the sample: [{}]; kept restart {}", scores.join(", "), model.chosen_restart);
    }
    let last = model.losses.last().copied().unwrap_or(f64::NAN);
    eprintln!("saved {} (k = {}, final loss {last:.4})", out.display(), model.k());
    Ok(())
}
