//! `rateclust select-k`: the coding-length curve over candidate k, and its minimiser, as JSON on stdout.

use crate::common::*;
use lexopt::prelude::*;
use rateclust::cluster::model::Clusterer;
use rateclust::{Device, DeviceKind};
use std::ffi::OsString;

const HELP: &str = "rateclust select-k --model M.safetensors --features X.npy --candidates 5,8,10 [--device D]
  prints {\"candidates\": [...], \"coding_length\": [...], \"best_k\": K}";

pub fn run(args: Vec<OsString>) -> CliResult {
    let mut p = parser(args);
    let (mut model, mut features, mut cands) = (None, None, None);
    let mut device = DeviceKind::Auto;
    while let Some(arg) = p.next()? {
        match arg {
            Long("model") => model = Some(path(&mut p)?),
            Long("features") => features = Some(path(&mut p)?),
            Long("candidates") => {
                let s: String = value(&mut p, "candidates")?;
                let v = s
                    .split(',')
                    .map(|t| t.trim().parse::<usize>().map_err(|_| usage(format!("--candidates: '{t}' is not a number"))))
                    .collect::<CliResult<Vec<_>>>()?;
                cands = Some(v);
            }
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
    let cands = required(cands, "candidates")?;
    let (x, n) = read_features_for(&model, &features)?;
    let dev = Device::open_default(device)?;
    let r = model.select_k(&x, n, &cands, &dev, &mut Bar::new())?;
    println!("{}", serde_json::to_string(&r).map_err(|e| rateclust::Error::Internal(e.to_string()))?);
    Ok(())
}
