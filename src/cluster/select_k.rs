//! Choosing the number of clusters without retraining (docs/defaults.md, step 7): for each candidate k,
//! spectral clustering of Π on a sample of the given points, improved by coding length; then the coding
//! length L(k) of the sample's *input* features (centred, principal directions, row-normalised:
//! [`PartitionScorer`]) under that partition; the argmin is the choice (Ma et al. 2007's segmentation
//! criterion, whose membership and basis terms charge every added cluster).
//!
//! Three choices, each measured on the unions of k ∈ {3, 6, 10, 20} subspaces of tests/cluster_select_k.rs
//! (80 points per subspace, 3 seeds each):
//! - **The input, not Z** (what the reference plots): the head maps each cluster towards its own subspace of
//!   Z, so splitting a cluster of Z still shortens Z's code; the argmin of L(Z) chose 8 for 6 subspaces.
//! - **One space for all candidates**, the m / (3 k_max) leading coordinates: in all of them the truth and
//!   a merge of two true clusters coded equally long (k = 3 chose 2 from every seed).
//! - **Each candidate's partition improved** by reassignment ([`refine_by_coding_length`]) and, from the
//!   largest k down, by the cheapest merge of k + 1's partition ([`merge_cheapest_pair`]): the head's
//!   spectral partitions of 240 points into 3 had ACC 0.62 and lost to k − 1 and k + 1.
//! Chosen: 12 of 12 (before these: 5 of 12).

use super::clusterer::{gather_rows, l2_normalize_rows, pi_affinity, sample_rows, Clusterer};
use super::coding_refine::{merge_cheapest_pair, refine_by_coding_length, MAX_ROUNDS};
use super::restart_select::PartitionScorer;
use super::algorithms::spectral::spectral_clustering_cancellable;
use crate::device::Device;
use crate::error::Result;
use crate::progress::{report, Progress};
use serde::Serialize;

/// The coding-length curve over the candidates and its minimiser.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
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
        let (z, c) = super::head::cuda::forward_eval_on(device, &self.head, &xs, m, !self.params.single_head)?;
        let aff = pi_affinity(device, &z, &c, m, d, &self.params)?;
        // Every candidate is coded in the same leading principal coordinates: as many as the largest
        // candidate affords (restart_select::score_rank, m / (3 k_max)). In all of the input's coordinates a
        // cluster with fewer points than twice the dimension is charged mostly for its basis, and merging
        // two of the 3 true subspaces of 240 points coded as short as the truth (8526 vs 8530 nats); in
        // m / (3 k_max) coordinates the truth was 15 % shorter on every test set.
        let k_top = candidates.iter().copied().max().unwrap_or(2);
        let scorer = PartitionScorer::new(&xs, m, dim, k_top, self.params.eps_sq)?;
        let (y, r, eps_sq) = (scorer.scored(), scorer.score_rank(), self.params.eps_sq);
        // Each candidate's spectral partition, improved by coding length in the scored space.
        let mut best: Vec<(f64, Vec<usize>)> = Vec::with_capacity(candidates.len());
        report(progress, "select-k", 0, candidates.len() as u64)?;
        for (i, &k) in candidates.iter().enumerate() {
            let labels = spectral_clustering_cancellable(&aff, m, k, self.params.kmeans_restarts, self.params.seed, &mut || {
                report(progress, "select-k", i as u64, candidates.len() as u64)
            })?;
            let refined = refine_by_coding_length(y, m, r, &labels, k, eps_sq, MAX_ROUNDS)?;
            let (a, b) = (scorer.score(&labels)?, scorer.score(&refined)?);
            best.push(if b <= a { (b, refined) } else { (a, labels) });
            report(progress, "select-k", i as u64 + 1, candidates.len() as u64)?;
        }
        // Downwards from the largest candidate: k's partition may also be k + 1's best with its cheapest
        // merge, refined (coding_refine::merge_cheapest_pair says why).
        let mut order: Vec<usize> = (0..candidates.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(candidates[i]));
        for w in order.windows(2) {
            let (upper, lower) = (w[0], w[1]);
            if candidates[upper] != candidates[lower] + 1 {
                continue;
            }
            let k = candidates[lower];
            let merged = merge_cheapest_pair(y, m, r, &best[upper].1, k + 1, eps_sq)?;
            let merged = refine_by_coding_length(y, m, r, &merged, k, eps_sq, MAX_ROUNDS)?;
            let score = scorer.score(&merged)?;
            if score < best[lower].0 {
                best[lower] = (score, merged);
            }
        }
        let lengths: Vec<f64> = best.iter().map(|b| b.0).collect();
        let best_k = candidates.iter().zip(&lengths).min_by(|a, b| a.1.total_cmp(b.1)).map(|(&k, _)| k).unwrap_or(candidates[0]);
        Ok(SelectK { candidates: candidates.to_vec(), coding_length: lengths, best_k })
    }
}
