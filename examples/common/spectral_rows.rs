//! The reference CPP protocol's labelling, shared by the evaluation examples: spectral clustering of Π of
//! given rows (docs/design.md §1.4), with Π from a trained head's eval-mode outputs.

use rateclust::cluster::head::{Head, Host};
use rateclust::cluster::algorithms::metrics::{scores, Scores};
use rateclust::cluster::clusterer::{gather_rows, pi_affinity};
use rateclust::cluster::params::FitParams;
use rateclust::cluster::algorithms::spectral::spectral_clustering;
use rateclust::Device;

/// Scores of the spectral clustering of Π of `rows` of `x` (n×dim, already normalised as the head was
/// trained) into `params.k` clusters, against `truth` on those rows only.
pub fn spectral_scores_of_rows(head: &Head<f32>, params: &FitParams, x: &[f32], dim: usize, rows: &[usize], truth: &[i64]) -> rateclust::Result<Scores> {
    let xs = gather_rows(x, dim, rows);
    let (z, c) = head.forward_eval(&Host::new(), &xs, rows.len(), !params.single_head)?;
    let aff = pi_affinity(&Device::Cpu, &z, &c, rows.len(), params.zdim, params)?;
    let labels: Vec<i64> = spectral_clustering(&aff, rows.len(), params.k, params.kmeans_restarts, params.seed)?.into_iter().map(|l| l as i64).collect();
    let t: Vec<i64> = rows.iter().map(|&r| truth[r]).collect();
    scores(&labels, &t)
}
