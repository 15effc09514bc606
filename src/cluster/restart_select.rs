//! Choosing among heads trained from different seeds (`FitParams::head_restarts`) by coding length.
//!
//! The CPP training objective is non-convex and, on hard data, the partition it ends in depends on the seed:
//! on the Fashion-MNIST dev features five seeds of the same settings gave ACC 0.56–0.66. The loss values of
//! different heads are not comparable (each codes its own Z), so we compare their partitions in one fixed
//! space, the way k-means compares its restarts by inertia: the coding length (Ma et al. 2007, the quantity
//! CPP already uses to choose k; [`super::algorithms::coding_length`]) of the *input* features of a scoring sample (up
//! to [`SCORE_SAMPLE`] points of the fitting set), grouped by the labels each fitted model gives them with
//! its own assignment rule — the labels the user will get. The shorter code wins: that partition explains
//! the data with fewer nats.
//!
//! The input is centred, projected onto its top principal directions and row-normalised first
//! ([`super::input_space`]). Without the projection, a 2048-point sample of 1280-d features codes mostly the dimension terms
//! of the log-dets and ranked partitions against their accuracy; with it, the ranking of trained heads and
//! k-means followed their ACC and NMI on the dev set (measured with examples/eval_dev.rs `--dump` and the
//! NumPy restatement tools/dev/score_partitions.py; numbers in src/cluster/params.rs).

use super::algorithms::coding_length::coding_length;
use super::input_space::InputSpace;
use crate::error::Result;

/// Points of the fitting set that every candidate partition labels for its score (all of them below this
/// size). On the dev set, 2048-point scores ranked two close heads differently from 10000-point ones.
pub const SCORE_SAMPLE: usize = 10_000;

/// The sample's input features in the scoring space ([`InputSpace`]), built once per fit and shared by every
/// candidate partition.
pub struct PartitionScorer {
    pub space: InputSpace,
    /// m×rank projections of the sample.
    pub proj: Vec<f32>,
    pub m: usize,
    /// The leading principal coordinates the score codes, row-normalised: m×score_rank.
    scored: Vec<f32>,
    score_rank: usize,
    eps_sq: f64,
}

/// Points per coded dimension and cluster the score asks for: [`score_rank`].
pub const POINTS_PER_DIM: usize = 3;

/// The number of leading principal coordinates the score codes for m points in k clusters:
/// m / (3k), between 8 and the space's rank. A cluster's coding length is only a fair measure when the
/// cluster has several points per dimension; with fewer, the log-det rewards partitions whose clusters
/// happen to be flat in the noise. Measured on 1,000 Fashion-MNIST train features (k = 10): in the full
/// 128 coordinates the score preferred the head's partition (ACC 0.58–0.61) over the k-means consensus
/// (0.64–0.65) for two seeds of three; in 8–32 coordinates it preferred the consensus for all three.
pub fn score_rank(m: usize, k: usize, rank: usize) -> usize {
    (m / (POINTS_PER_DIM * k.max(1))).clamp(8, 128).min(rank)
}

impl PartitionScorer {
    /// `xs`: the m×dim input rows of the scoring sample (after the model's input normalisation); the
    /// partitions scored have k clusters.
    pub fn new(xs: &[f32], m: usize, dim: usize, k: usize, eps_sq: f64) -> Result<Self> {
        let space = InputSpace::fit(xs, m, dim)?;
        let proj = space.project(xs, m)?;
        let score_rank = score_rank(m, k, space.rank);
        let mut scored: Vec<f32> = proj.chunks(space.rank).flat_map(|row| row[..score_rank].iter().copied()).collect();
        crate::linalg::rows::l2_normalize_rows(&mut scored, score_rank);
        Ok(PartitionScorer { space, proj, m, scored, score_rank, eps_sq })
    }

    /// The coordinates the score codes: m×[`Self::score_rank`] row-major, row-normalised.
    pub fn scored(&self) -> &[f32] {
        &self.scored
    }

    pub fn score_rank(&self) -> usize {
        self.score_rank
    }

    /// Coding length (nats) of the sample grouped by `labels` (one per sample row): lower is better.
    pub fn score(&self, labels: &[usize]) -> Result<f64> {
        coding_length(&self.scored, self.m, self.score_rank, labels, self.eps_sq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::synthetic::{union_of_subspaces, SubspaceSpec};

    /// The true partition of a union of subspaces codes shorter than a partition with a fifth of the labels
    /// shuffled, which codes shorter than random labels.
    #[test]
    fn true_partition_scores_best() {
        let spec = SubspaceSpec { n: 600, dim: 40, k: 4, rank: 3, noise: 0.05, seed: 3 };
        let (x, y) = union_of_subspaces(&spec).unwrap();
        let truth: Vec<usize> = y.iter().map(|&l| l as usize).collect();
        let scorer = PartitionScorer::new(&x, spec.n, spec.dim, 4, 0.1).unwrap();
        let mut rng = crate::rng::Rng::new(9);
        let mut noisy = truth.clone();
        for l in noisy.iter_mut() {
            if rng.below(5) == 0 {
                *l = rng.below(4);
            }
        }
        let random: Vec<usize> = (0..spec.n).map(|_| rng.below(4)).collect();
        let (a, b, c) = (scorer.score(&truth).unwrap(), scorer.score(&noisy).unwrap(), scorer.score(&random).unwrap());
        assert!(a < b && b < c, "true {a}, noisy {b}, random {c}");
    }
}
