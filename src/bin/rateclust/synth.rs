//! `rateclust synth`: write a synthetic union-of-subspaces feature set and its labels (for demos and tests).

use crate::common::*;
use lexopt::prelude::*;
use rateclust::cluster::synthetic::{union_of_subspaces, SubspaceSpec};
use rateclust::io::npy::{write_npy_f32, write_npy_i64};
use std::ffi::OsString;

pub fn run(args: Vec<OsString>) -> CliResult {
    let mut p = parser(args);
    let mut spec = SubspaceSpec { n: 2000, dim: 64, k: 5, rank: 4, noise: 0.05, seed: 1 };
    let (mut out, mut labels_out) = (None, None);
    while let Some(arg) = p.next()? {
        match arg {
            Long("out") => out = Some(path(&mut p)?),
            Long("labels-out") => labels_out = Some(path(&mut p)?),
            Long("n") => spec.n = value(&mut p, "n")?,
            Long("dim") => spec.dim = value(&mut p, "dim")?,
            Long("k") => spec.k = value(&mut p, "k")?,
            Long("rank") => spec.rank = value(&mut p, "rank")?,
            Long("noise") => spec.noise = value(&mut p, "noise")?,
            Long("seed") => spec.seed = value(&mut p, "seed")?,
            Long("help") | Short('h') => {
                println!("rateclust synth --out X.npy --labels-out y.npy [--n 2000 --dim 64 --k 5 --rank 4 --noise 0.05 --seed 1]");
                return Ok(());
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    let out = required(out, "out")?;
    let labels_out = required(labels_out, "labels-out")?;
    let (x, y) = union_of_subspaces(&spec)?;
    write_npy_f32(&out, &x, &[spec.n, spec.dim])?;
    write_npy_i64(&labels_out, &y, &[spec.n])?;
    eprintln!("wrote {}×{} features ({} subspaces of dimension {}) to {}", spec.n, spec.dim, spec.k, spec.rank, out.display());
    Ok(())
}
