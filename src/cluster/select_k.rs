//! Choosing the number of clusters without retraining (DESIGN §1.5): for each candidate k, spectral
//! clustering of Π on a sample of the given points, then the coding length L(k) of the sample's Z under
//! that partition; the best k minimises L. The reference only plots this curve; we return it and the argmin.

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
        if candidates.is_empty() {
            return Err(crate::invalid_arg!("no candidate k given"));
        }
        let dim = self.input_dim();
        self.check_input(x, n)?;
        let rows = sample_rows(n, self.params.spectral_sample, self.params.seed);
        let m = rows.len();
        for &k in candidates {
            if k < 2 || k > m {
                return Err(crate::invalid_arg!("candidate k = {k} must be in 2..={m} (the number of sampled points)"));
            }
        }
        let mut xs = gather_rows(x, dim, &rows);
        if self.params.normalize_input {
            xs = l2_normalize_rows(&xs, dim);
        }
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
        let best = (0..candidates.len()).min_by(|&a, &b| lengths[a].total_cmp(&lengths[b])).unwrap();
        Ok(SelectK { candidates: candidates.to_vec(), coding_length: lengths, best_k: candidates[best] })
    }
}
