//! `rateclust recluster`: re-derive the clusters of a fitted model for another k (e.g. the one `select-k`
//! chose) from the features, without retraining the head.

use crate::common::*;
use lexopt::prelude::*;
use rateclust::cluster::model::Clusterer;
use rateclust::{Device, DeviceKind};
use std::ffi::OsString;

const HELP: &str = "rateclust recluster --model M.safetensors --features X.npy --k K --out M2.safetensors [--device D]";

pub fn run(args: Vec<OsString>) -> CliResult {
    let mut p = parser(args);
    let (mut model, mut features, mut k, mut out) = (None, None, None, None);
    let mut device = DeviceKind::Auto;
    while let Some(arg) = p.next()? {
        match arg {
            Long("model") => model = Some(path(&mut p)?),
            Long("features") => features = Some(path(&mut p)?),
            Long("k") | Short('k') => k = Some(value::<usize>(&mut p, "k")?),
            Long("out") => out = Some(path(&mut p)?),
            Long("device") => device = DeviceKind::parse_with_ordinal(&value::<String>(&mut p, "device")?)?,
            Long("help") | Short('h') => {
                println!("{HELP}");
                return Ok(());
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    let mut model = Clusterer::load(&required(model, "model")?)?;
    let features = required(features, "features")?;
    let (k, out) = (required(k, "k")?, required(out, "out")?);
    let (x, n) = read_features_for(&model, &features)?;
    let dev = Device::open_default(device)?;
    model.set_k(&x, n, k, &dev, &mut Bar::new())?;
    model.save(&out)?;
    eprintln!("saved {} (k = {})", out.display(), model.k());
    Ok(())
}
