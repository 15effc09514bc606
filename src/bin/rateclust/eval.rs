//! `rateclust eval`: accuracy (Hungarian), NMI and ARI of predicted labels against the truth, as JSON.

use crate::common::*;
use lexopt::prelude::*;
use rateclust::cluster::metrics::scores;
use std::ffi::OsString;

pub fn run(args: Vec<OsString>) -> CliResult {
    let mut p = parser(args);
    let (mut pred, mut truth) = (None, None);
    while let Some(arg) = p.next()? {
        match arg {
            Long("pred") => pred = Some(path(&mut p)?),
            Long("truth") => truth = Some(path(&mut p)?),
            Long("help") | Short('h') => {
                println!("rateclust eval --pred labels.npy --truth truth.npy   prints {{\"acc\", \"nmi\", \"ari\"}}");
                return Ok(());
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    let pred = read_labels(&required(pred, "pred")?)?;
    let truth = read_labels(&required(truth, "truth")?)?;
    let s = scores(&pred, &truth)?;
    println!("{{\"acc\": {:.6}, \"nmi\": {:.6}, \"ari\": {:.6}}}", s.acc, s.nmi, s.ari);
    Ok(())
}
