//! `rateclust assign`: label every row of a feature matrix with a fitted clusterer.

use crate::common::*;
use lexopt::prelude::*;
use rateclust::cluster::model::Clusterer;
use rateclust::{Device, DeviceKind};
use rateclust::io::npy::{write_npy_f32, write_npy_i64};
use std::ffi::OsString;

const HELP: &str = "rateclust assign --model M.safetensors --features X.npy --out labels.npy [--confidence conf.npy]
  [--scores scores.npy] [--device auto|cpu|cuda[:N]]
  writes int64 labels (and float32 confidences: margin between the best and second-best cluster;
  and n×k float32 per-cluster scores: with the default rule, the fraction of each point's nearest fitted
  points in each cluster, rows summing to 1);
  on CUDA the head runs on the GPU (TF32 products: a few points near cluster boundaries may differ from cpu)";

pub fn run(args: Vec<OsString>) -> CliResult {
    let mut p = parser(args);
    let (mut model, mut features, mut out, mut conf, mut scores) = (None, None, None, None, None);
    let mut device = DeviceKind::Auto;
    while let Some(arg) = p.next()? {
        match arg {
            Long("model") => model = Some(path(&mut p)?),
            Long("features") => features = Some(path(&mut p)?),
            Long("out") => out = Some(path(&mut p)?),
            Long("confidence") => conf = Some(path(&mut p)?),
            Long("scores") => scores = Some(path(&mut p)?),
            Long("device") => device = DeviceKind::parse_with_ordinal(&value::<String>(&mut p, "device")?)?,
            Long("help") | Short('h') => {
                println!("{HELP}");
                return Ok(());
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    let model = Clusterer::load(&required(model, "model")?)?;
    let features = required(features, "features")?;
    let out = required(out, "out")?;
    let outputs: Vec<&std::path::PathBuf> = [Some(&out), conf.as_ref(), scores.as_ref()].into_iter().flatten().collect();
    if (1..outputs.len()).any(|i| outputs[..i].contains(&outputs[i])) {
        return Err(usage("two of --out, --confidence and --scores name the same file: one would replace the other"));
    }
    let (x, n) = read_features_for(&model, &features)?;
    let dev = Device::open_default(device)?;
    let a = model.assign_on(&dev, model.params.assign_rule, &x, n, &mut Bar::new())?;
    write_npy_i64(&out, &a.labels, &[n])?;
    if let Some(c) = conf {
        write_npy_f32(&c, &a.confidence, &[n])?;
    }
    if let Some(path) = scores {
        write_npy_f32(&path, &model.scores(&x, n, &mut Bar::new())?, &[n, model.k()])?;
    }
    eprintln!("labelled {n} points into {} clusters → {}", model.k(), out.display());
    Ok(())
}
