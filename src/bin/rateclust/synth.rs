//! `rateclust synth`: write a synthetic union-of-subspaces feature set and its labels (for demos and tests).

use crate::common::*;
use rateclust::cluster::synthetic::{union_of_subspaces, SubspaceSpec};
use rateclust::io::npy::{write_npy_f32, write_npy_i64};
use std::path::PathBuf;

/// Write a synthetic union-of-subspaces feature set and its labels (for demos and tests)
///
/// Point i lies on subspace i mod k, plus isotropic noise.
#[derive(clap::Args)]
#[command(args_override_self = true, allow_negative_numbers = true)]
pub struct Args {
    /// The features, n × dim float32
    #[arg(long, value_name = "X.npy")]
    out: PathBuf,
    /// Their subspace, n int64
    #[arg(long, value_name = "y.npy")]
    labels_out: PathBuf,
    /// Number of points
    #[arg(long, value_name = "N", default_value_t = 2000)]
    n: usize,
    /// Dimension of the points
    #[arg(long, value_name = "N", default_value_t = 64)]
    dim: usize,
    /// Number of subspaces (clusters)
    #[arg(long, value_name = "N", default_value_t = 5)]
    k: usize,
    /// Dimension of each subspace
    #[arg(long, value_name = "N", default_value_t = 4)]
    rank: usize,
    /// Standard deviation of the noise added to each coordinate
    #[arg(long, value_name = "F", default_value_t = 0.05)]
    noise: f64,
    /// Random seed
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,
    /// No log line (errors are still printed)
    #[arg(long)]
    quiet: bool,
}

/// Runs `rateclust synth`.
pub fn run(args: Args) -> CliResult {
    let Args { out, labels_out, n, dim, k, rank, noise, seed, quiet } = args;
    let spec = SubspaceSpec { n, dim, k, rank, noise, seed };
    let (x, y) = union_of_subspaces(&spec)?;
    write_npy_f32(&out, &x, &[spec.n, spec.dim])?;
    write_npy_i64(&labels_out, &y, &[spec.n])?;
    if !quiet {
        eprintln!("wrote {}×{} features ({} subspaces of dimension {}) to {}", spec.n, spec.dim, spec.k, spec.rank, out.display());
    }
    Ok(())
}
