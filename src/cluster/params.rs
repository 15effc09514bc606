//! Every setting of a fit, with the reference's CIFAR-10 values as defaults (docs/design.md §1) and named presets.

use crate::error::Result;
use crate::rate::{RateParams, SinkhornGradient};
use serde::{Deserialize, Serialize};

/// How points outside the spectral sample get their label (docs/design.md §2). All are linear in n.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum AssignRule {
    /// Largest projection norm onto each cluster's subspace (top singular vectors of its Z rows).
    #[default]
    Subspace = 0,
    /// Largest cosine to each cluster's mean normalised Z (prototype).
    PrototypeZ = 1,
    /// Largest cosine to each cluster's mean normalised C (the cluster head's output).
    PrototypeC = 2,
    /// Largest cosine to each cluster's mean in the input space (centred, principal directions,
    /// row-normalised; [`super::input_space`]). The head is not needed to label.
    PrototypeInput = 3,
    /// Majority vote of the nearest fitting-sample points in the input space ([`super::neighbors`]): the
    /// default fit's rule (docs/defaults.md). The head is not needed to label.
    NeighborsInput = 4,
}

impl AssignRule {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "subspace" => Ok(AssignRule::Subspace),
            "prototype" | "prototype-z" => Ok(AssignRule::PrototypeZ),
            "prototype-c" => Ok(AssignRule::PrototypeC),
            "prototype-x" => Ok(AssignRule::PrototypeInput),
            "neighbors-x" => Ok(AssignRule::NeighborsInput),
            _ => Err(crate::invalid_arg!("unknown assignment rule '{s}' (expected subspace, prototype-z, prototype-c, prototype-x or neighbors-x)")),
        }
    }
    /// Whether the rule labels in the input space (no head needed; [`super::assign::InputSpaceModel`]).
    pub fn uses_input_space(self) -> bool {
        matches!(self, AssignRule::PrototypeInput | AssignRule::NeighborsInput)
    }

    pub fn name(self) -> &'static str {
        match self {
            AssignRule::Subspace => "subspace",
            AssignRule::PrototypeZ => "prototype-z",
            AssignRule::PrototypeC => "prototype-c",
            AssignRule::PrototypeInput => "prototype-x",
            AssignRule::NeighborsInput => "neighbors-x",
        }
    }
}

/// How the fitted sample is partitioned before the per-cluster summaries are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SampleClustering {
    /// Spectral clustering of Π (the CPP protocol, docs/design.md §1.4).
    #[default]
    SpectralPi = 0,
    /// k-means++ (with restarts) on the sample's Z rows.
    KMeansZ = 1,
    /// k-means++ (with restarts) on the sample's C rows (Z for single-head models).
    KMeansC = 2,
}

impl SampleClustering {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "spectral" => Ok(SampleClustering::SpectralPi),
            "kmeans-z" => Ok(SampleClustering::KMeansZ),
            "kmeans-c" => Ok(SampleClustering::KMeansC),
            _ => Err(crate::invalid_arg!("unknown sample clustering '{s}' (expected spectral, kmeans-z or kmeans-c)")),
        }
    }
}

/// Settings of [`crate::cluster::clusterer::Clusterer::fit`].
///
/// Zero means *automatic* for `k`, `k_max`, `hidden`, `zdim`, `batch`, `steps`, `warmup`, `eta`, `lr` and
/// `lr_cluster`: [`FitParams::resolve`] derives those from the data's size n and k by the rule
/// written there (and in README.md and docs/defaults.md), and the fitted model keeps the resolved values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FitParams {
    /// Number of clusters for the labels; 0 = choose k by coding length among 2..=`k_max` in the same fit
    /// (training itself does not depend on k).
    pub k: usize,
    /// Largest k tried when `k` = 0 (0 = automatic: min(20, ⌊√n⌋), at least 2).
    pub k_max: usize,
    /// Head sizes: hidden width h and output dimension d (0 = automatic).
    pub hidden: usize,
    pub zdim: usize,
    /// Sinkhorn temperature η (0 = automatic).
    pub eta: f64,
    /// ε², γ, λ of the MLC loss.
    pub eps_sq: f64,
    pub gamma: f64,
    pub lambda: f64,
    pub sinkhorn_half_iters: usize,
    pub exact_sinkhorn_gradient: bool,
    /// Minibatch size (0 = automatic). Batches are cut from seeded shuffles of the data, dropping an
    /// incomplete last batch of each pass (`drop_last`); a batch larger than n is cut down to n.
    pub batch: usize,
    /// Optimiser steps (0 = automatic): the schedule is counted in steps, not epochs, so that it does not
    /// depend on n.
    pub steps: usize,
    /// Heads trained from seeds seed, seed+1, …; the one whose labels of a scoring sample give the shortest
    /// coding length of the input features is kept (see [`super::restart_select`]). 1 = a single head.
    pub head_restarts: usize,
    /// Steps 0..=warmup minimise −R(Z) only; then the subspace head is copied into the cluster head
    /// (0 = automatic).
    pub warmup: usize,
    /// SGD learning rates of the two groups (MLP + subspace head; cluster head; 0 = automatic), momentum,
    /// weight decays.
    pub lr: f64,
    pub lr_cluster: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub weight_decay_cluster: f64,
    pub seed: u64,
    /// Π from Z instead of the cluster head (the reference's `main_efficient.py`).
    pub single_head: bool,
    /// Divide each input row by its L2 norm before the head (at fit and assign time).
    pub normalize_input: bool,
    /// Points whose Π is clustered spectrally after training (a subsample of the fitting set).
    pub spectral_sample: usize,
    /// k-means restarts inside spectral clustering.
    pub kmeans_restarts: usize,
    /// Out-of-sample assignment rule, and the subspace dimension per cluster for `AssignRule::Subspace`
    /// (0 = automatic: min(d / k, 16), at least 1).
    pub assign_rule: AssignRule,
    pub subspace_rank: usize,
    /// How the sample is partitioned (spectral clustering of Π by default).
    pub sample_clustering: SampleClustering,
    /// k-means++ runs (one Lloyd run each) on the input's principal directions whose consensus partition
    /// competes with the head's by coding length ([`super::consensus`]); the winner is refined on the
    /// neighbour graph and the model labels with `AssignRule::NeighborsInput`. 0 = the head's partition
    /// and rule only.
    pub kmeans_candidates: usize,
}

impl Default for FitParams {
    /// The recommended settings: everything that depends on the data automatic ([`FitParams::resolve`]),
    /// the MLC constants and SGD settings of the reference (ε² 0.1, γ 1, λ 0.05, 5 Sinkhorn half-steps,
    /// momentum 0.9, weight decay 1e-4 / 5e-3), seed 42.
    fn default() -> Self {
        let r = RateParams::default();
        FitParams {
            k: 0,
            k_max: 0,
            hidden: 0,
            zdim: 0,
            eta: 0.0,
            eps_sq: r.eps_sq,
            gamma: r.gamma,
            lambda: r.lambda,
            sinkhorn_half_iters: r.sinkhorn_half_iters,
            exact_sinkhorn_gradient: false,
            batch: 0,
            steps: 0,
            head_restarts: 1,
            warmup: 0,
            lr: 0.0,
            lr_cluster: 0.0,
            momentum: 0.9,
            weight_decay: 1e-4,
            weight_decay_cluster: 5e-3,
            seed: 42,
            single_head: false,
            normalize_input: true,
            spectral_sample: 2048,
            kmeans_restarts: 10,
            assign_rule: AssignRule::Subspace,
            subspace_rank: 0,
            sample_clustering: SampleClustering::SpectralPi,
            kmeans_candidates: 30,
        }
    }
}

/// Names of the presets [`FitParams::preset`] knows.
pub const PRESETS: [&str; 3] = ["auto", "cifar10", "imagenet"];

/// Upper bounds on the size settings, far above any useful value, so that a typo or a hostile caller gets
/// an error instead of an allocation that takes the process down.
const MAX_WIDTH: usize = 1 << 16;
const MAX_STEPS: usize = 10_000_000;
/// Points whose m×m membership Π (batch) or affinity (spectral sample) is built: 16,384² f32 is 1 GB; the
/// MAX_WIDTH bound allowed 17 GB matrices that abort where memory is short.
pub const MAX_PAIRWISE_POINTS: usize = crate::rate::MAX_MEMBERSHIP_POINTS;

impl FitParams {
    /// Named settings: `auto` (= default, the recommended path), and the paper's settings for reproducing it:
    /// `cifar10` (h 4096, d 128, η 0.175, batch 1024, lr 1e-4, warm-up 50, 720 steps = 15 epochs of
    /// CIFAR-10's 50k images, raw input, subspace rule) and `imagenet` (h 2048, d 1024, η 0.12, warm-up
    /// 2000, 25,020 steps = 20 epochs of ImageNet-1k's 1.28M images, k 1000).
    pub fn preset(name: &str) -> Result<Self> {
        let d = FitParams::default();
        let cifar10 = FitParams {
            k: 10,
            hidden: 4096,
            zdim: 128,
            eta: 0.175,
            batch: 1024,
            steps: 720,
            warmup: 50,
            lr: 1e-4,
            lr_cluster: 1e-4,
            normalize_input: false,
            assign_rule: AssignRule::Subspace,
            kmeans_candidates: 0,
            ..d.clone()
        };
        match name {
            "auto" | "default" => Ok(d),
            "cifar10" => Ok(cifar10),
            "imagenet" => Ok(FitParams { hidden: 2048, zdim: 1024, eta: 0.12, steps: 25_020, warmup: 2000, k: 1000, ..cifar10 }),
            _ => Err(crate::invalid_arg!("unknown preset '{name}' (known: {})", PRESETS.join(", "))),
        }
    }

    /// The settings with every automatic (zero) value replaced by the rule's choice for n points and k
    /// clusters (`k` = 0: the largest candidate `k_max`). Explicit values are kept. (The rule does not use
    /// the input dimension: the head's first layer is the only part that scales with it.)
    ///
    /// The rule (measured: docs/defaults.md; tools/eval/run_eval.py reruns the table):
    /// - batch m = min(n, 512): Π is m×m, so the MLC loss costs O(m²d²) per step; 512 keeps ≥ 25 points per
    ///   cluster per batch up to k = 20;
    /// - steps 150, warm-up 15 (a tenth): the head's partition is kept only where it codes the data clearly
    ///   shorter than the k-means consensus (unions of subspaces), and there 150 steps gave the same labels
    ///   as 300 (n = 2,000, 6 subspaces of rank 4 in 64-d, 2 seeds: ACC 0.999 and 1.0 both ways) at half
    ///   the fit time (the head's steps were 9.3 s of an 11.7 s dev-set fit);
    /// - d = clamp(4·k rounded up to a multiple of 16, 32, 128): room for a subspace of a few dimensions
    ///   per cluster (MCR² wants clusters in near-orthogonal subspaces);
    /// - h = 512;
    /// - η = 0.175 (the reference's), lr = 1e-3 for both groups (a 512-wide head moves too little at 1e-4).
    ///
    /// Known gap: below about 1,000 points the head trained this way separates unions of
    /// subspaces poorly (ACC 0.45–0.5 at n = 60 and 200 in tests/clusterer_fit.rs); n = 1,000 reaches 0.97.
    pub fn resolve(&self, n: usize) -> FitParams {
        let mut p = self.clone();
        if p.k_max == 0 {
            p.k_max = ((n as f64).sqrt() as usize).clamp(2, 20);
        }
        let k_eff = if p.k == 0 { p.k_max } else { p.k };
        if p.batch == 0 {
            p.batch = n.min(512);
        }
        if p.steps == 0 {
            p.steps = 150;
        }
        if p.warmup == 0 {
            p.warmup = (p.steps / 10).max(1);
        }
        if p.zdim == 0 {
            p.zdim = (4 * k_eff).next_multiple_of(16).clamp(32, 128);
        }
        if p.hidden == 0 {
            p.hidden = 512;
        }
        if p.eta == 0.0 {
            p.eta = 0.175;
        }
        if p.lr == 0.0 {
            p.lr = 1e-3;
        }
        if p.lr_cluster == 0.0 {
            p.lr_cluster = p.lr;
        }
        p
    }

    /// The rate-reduction constants for the loss and Sinkhorn.
    pub fn rate_params(&self) -> RateParams {
        RateParams {
            eps_sq: self.eps_sq,
            gamma: self.gamma,
            lambda: self.lambda,
            eta: self.eta,
            sinkhorn_half_iters: self.sinkhorn_half_iters,
            gradient: if self.exact_sinkhorn_gradient { SinkhornGradient::Exact } else { SinkhornGradient::Reference },
        }
    }

    /// Checks every setting as given (automatic zeros allowed); `n` and `dim` are the fitting set's size
    /// (n = 0 skips the data checks).
    pub fn validate(&self, n: usize, dim: usize) -> Result<()> {
        let nonneg = |v: f64, name: &str| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(crate::invalid_arg!("`{name}` must be non-negative and finite, got {v}"))
            }
        };
        if self.k == 1 {
            return Err(crate::invalid_arg!("`k` must be at least 2 (or 0 to choose it), got 1"));
        }
        if self.k_max == 1 {
            return Err(crate::invalid_arg!("`k_max` must be at least 2 (or 0 for automatic), got 1"));
        }
        for (v, name) in [(self.head_restarts, "head_restarts"), (self.sinkhorn_half_iters, "sinkhorn_half_iters"), (self.kmeans_restarts, "kmeans_restarts")] {
            if v == 0 {
                return Err(crate::invalid_arg!("`{name}` must be positive"));
            }
        }
        for (v, max, name) in [
            (self.hidden, MAX_WIDTH, "hidden"),
            (self.zdim, MAX_WIDTH, "zdim"),
            (self.batch, MAX_PAIRWISE_POINTS, "batch"),
            (self.k, MAX_WIDTH, "k"),
            (self.k_max, MAX_WIDTH, "k_max"),
            (self.steps, MAX_STEPS, "steps"),
            (self.warmup, MAX_STEPS, "warmup"),
            (self.head_restarts, 1000, "head_restarts"),
            (self.sinkhorn_half_iters, 1000, "sinkhorn_half_iters"),
            (self.kmeans_restarts, 1000, "kmeans_restarts"),
            (self.kmeans_candidates, 1000, "kmeans_candidates"),
            (self.spectral_sample, MAX_PAIRWISE_POINTS, "spectral_sample"),
        ] {
            if v > max {
                return Err(crate::invalid_arg!("`{name}` = {v} is above the limit {max}"));
            }
        }
        if self.batch == 1 {
            return Err(crate::invalid_arg!("`batch` must be at least 2 (BatchNorm needs 2 rows), got 1"));
        }
        if self.spectral_sample < 2 || (self.k > 0 && self.spectral_sample < self.k) {
            return Err(crate::invalid_arg!("`spectral_sample` ({}) must be at least 2 and at least k ({})", self.spectral_sample, self.k));
        }
        nonneg(self.eta, "eta")?;
        nonneg(self.lr, "lr")?;
        nonneg(self.lr_cluster, "lr_cluster")?;
        if !(self.eps_sq.is_finite() && self.eps_sq > 0.0) {
            return Err(crate::invalid_arg!("`eps_sq` must be positive and finite, got {}", self.eps_sq));
        }
        nonneg(self.gamma, "gamma")?;
        nonneg(self.lambda, "lambda")?;
        nonneg(self.weight_decay, "weight_decay")?;
        nonneg(self.weight_decay_cluster, "weight_decay_cluster")?;
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(crate::invalid_arg!("`momentum` must be in [0, 1), got {}", self.momentum));
        }
        if n > 0 || dim > 0 {
            if dim == 0 {
                return Err(crate::invalid_arg!("features have dimension 0"));
            }
            if n < 2 {
                return Err(crate::invalid_arg!("{n} point(s) cannot be clustered (need at least 2)"));
            }
            if n < self.k {
                return Err(crate::invalid_arg!("{n} points cannot form k = {} clusters (n < k)", self.k));
            }
        }
        Ok(())
    }

    /// The batch actually used for n points: `batch` (or its automatic value) cut down to n.
    pub fn batch_for(&self, n: usize) -> usize {
        self.resolve(n).batch.min(n)
    }
}
