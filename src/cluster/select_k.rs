//! Choosing the number of clusters without retraining (docs/defaults.md): for each candidate k, spectral
//! clustering of Π on a sample of the given points, then the coding length L(k) of the sample's *input*
//! features (centred, principal directions, row-normalised: [`PartitionScorer`]) under that partition;
//! the argmin is the choice (Ma et al. 2007's segmentation criterion, whose membership term charges
//! every added cluster).
//!
//! Why the input and not Z (what the reference plots): the head maps each cluster towards its own
//! subspace of Z, so splitting a cluster of Z still shortens Z's code and L(Z) keeps falling past the true
//! k (6 subspaces gave 8 by argmin, and a knee rule chose the true k on 1 of 12 test sets). In the input
//! space the split costs more than it saves: on the unions of k ∈ {3, 6, 10, 20} subspaces of
//! tests/cluster_select_k.rs it chose 2, 2, 2 / 5, 6, 5 / 10, 10, 10 / 19, 20, 18 — right where the head's
//! partitions are right (k ≥ 10), short where they are poor (80 points per subspace: the head's
//! partition of 240 points into 3 had ACC 0.62).

use super::model::{gather_rows, l2_normalize_rows, pi_affinity, sample_rows, Clusterer};
use super::restart_select::PartitionScorer;
use super::spectral::spectral_clustering;
use crate::device::Device;
use crate::error::Result;
use crate::progress::{report, Progress};
use serde::Serialize;

/// The coding-length curve over the candidates and its minimiser.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SelectK {
    pub candidates: Vec<usize>,
    /// L(k) in nats for each candidate, same order.
    pub coding_length: Vec<f64>,
    pub best_k: usize,
}

impl Clusterer {
    /// Evaluates each candidate k on (a sample of at most `spectral_sample` rows of) `x`.
    /// Progress stage "select-k", one tick per candidate.
    pub fn select_k(&self, x: &[f32], n: usize, candidates: &[usize], device: &Device, progress: &mut dyn Progress) -> Result<SelectK> {
        self.check_input(x, n)?;
        if self.params.normalize_input {
            self.select_k_normalized(&l2_normalize_rows(x, self.input_dim()), n, candidates, device, progress)
        } else {
            self.select_k_normalized(x, n, candidates, device, progress)
        }
    }

    /// [`Self::select_k`] on features the model's input normalisation was already applied to.
    pub(crate) fn select_k_normalized(&self, x: &[f32], n: usize, candidates: &[usize], device: &Device, progress: &mut dyn Progress) -> Result<SelectK> {
        if candidates.is_empty() {
            return Err(crate::invalid_arg!("no candidate k given"));
        }
        let dim = self.input_dim();
        let rows = sample_rows(n, self.params.spectral_sample, self.params.seed);
        let m = rows.len();
        for &k in candidates {
            if k < 2 || k > m {
                return Err(crate::invalid_arg!("candidate k = {k} must be in 2..={m} (the number of sampled points)"));
            }
        }
        let xs = gather_rows(x, dim, &rows);
        let d = self.head.dims.zdim;
        let (z, c) = super::head_cuda::forward_eval_on(device, &self.head, &xs, m, !self.params.single_head)?;
        let aff = pi_affinity(device, &z, &c, m, d, &self.params)?;
        // The whole input space (up to 128 principal coordinates; `k` = 1 keeps them all), as Ma et al. code it.
        let scorer = PartitionScorer::new(&xs, m, dim, 1, self.params.eps_sq)?;
        let mut lengths = Vec::with_capacity(candidates.len());
        report(progress, "select-k", 0, candidates.len() as u64)?;
        for (i, &k) in candidates.iter().enumerate() {
            let labels = spectral_clustering(&aff, m, k, self.params.kmeans_restarts, self.params.seed)?;
            lengths.push(scorer.score(&labels)?);
            report(progress, "select-k", i as u64 + 1, candidates.len() as u64)?;
        }
        let best_k = candidates.iter().zip(&lengths).min_by(|a, b| a.1.total_cmp(b.1)).map(|(&k, _)| k).unwrap_or(candidates[0]);
        Ok(SelectK { candidates: candidates.to_vec(), coding_length: lengths, best_k })
    }
}
