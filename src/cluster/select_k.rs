//! Choosing the number of clusters without retraining (DESIGN §1.5): for each candidate k, spectral
//! clustering of Π on a sample of the given points, then the coding length L(k) of the sample's Z under
//! that partition. The reference only plots this curve; we return it and its knee.
//!
//! Why the knee and not the argmin: splitting a true cluster in two still shortens the code a little (each
//! half's spread is smaller, and ε² is small), so L keeps falling slowly past the true k and its argmin
//! overshoots (6 subspaces gave k = 8). What marks the true k is where the large gains stop: we keep the
//! largest candidate k whose gain per added cluster, (L(k_prev) − L(k)) / (k − k_prev), is still at least
//! [`KNEE_FRACTION`] of the largest gain on the curve. Measured in tests/cluster_select_k.rs on unions of
//! k ∈ {3, 6, 10, 20} subspaces from 3 seeds each.

use super::coding_length::coding_length;
use super::model::{gather_rows, l2_normalize_rows, pi_affinity, sample_rows, Clusterer};
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
        let mut lengths = Vec::with_capacity(candidates.len());
        report(progress, "select-k", 0, candidates.len() as u64)?;
        for (i, &k) in candidates.iter().enumerate() {
            let labels = spectral_clustering(&aff, m, k, self.params.kmeans_restarts, self.params.seed)?;
            lengths.push(coding_length(&z, m, d, &labels, self.params.eps_sq)?);
            report(progress, "select-k", i as u64 + 1, candidates.len() as u64)?;
        }
        let best_k = knee(candidates, &lengths);
        Ok(SelectK { candidates: candidates.to_vec(), coding_length: lengths, best_k })
    }
}

/// A gain per added cluster below this fraction of the curve's largest gain counts as flat.
pub const KNEE_FRACTION: f64 = 0.1;

/// The knee of a coding-length curve (see the module doc): the largest k whose gain per added cluster over
/// the next smaller candidate is at least [`KNEE_FRACTION`] of the largest such gain; the smallest
/// candidate when the curve never falls. `candidates` in any order, `lengths` in the same order.
pub fn knee(candidates: &[usize], lengths: &[f64]) -> usize {
    let mut pts: Vec<(usize, f64)> = candidates.iter().copied().zip(lengths.iter().copied()).collect();
    pts.sort_by_key(|p| p.0);
    pts.dedup_by_key(|p| p.0);
    let gains: Vec<(usize, f64)> = pts.windows(2).map(|w| (w[1].0, (w[0].1 - w[1].1) / (w[1].0 - w[0].0) as f64)).collect();
    let top = gains.iter().map(|g| g.1).fold(0.0f64, f64::max);
    if !(top > 0.0) {
        return pts[0].0;
    }
    gains.iter().rev().find(|g| g.1 >= KNEE_FRACTION * top).map_or(pts[0].0, |g| g.0)
}

#[cfg(test)]
mod tests {
    use super::knee;

    #[test]
    fn knee_of_curves() {
        // Big gains up to 4, then nearly flat (the 6-subspace demo's shape): 4, not the argmin 8.
        assert_eq!(knee(&[2, 3, 4, 6, 8], &[19486.0, 16522.0, 14714.0, 14667.0, 14609.0]), 4);
        // Order of the candidates does not matter.
        assert_eq!(knee(&[8, 2, 6, 3, 4], &[14609.0, 19486.0, 14667.0, 16522.0, 14714.0]), 4);
        // A curve that only rises: the smallest candidate.
        assert_eq!(knee(&[2, 3, 4], &[1.0, 2.0, 3.0]), 2);
        // Steady large gains to the end: the last candidate.
        assert_eq!(knee(&[2, 3, 4], &[30.0, 20.0, 10.0]), 4);
    }
}
