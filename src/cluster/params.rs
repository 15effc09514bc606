//! Every setting of a fit, with the reference's CIFAR-10 values as defaults (DESIGN §1) and named presets.

use crate::error::Result;
use crate::rate::{RateParams, SinkhornGradient};
use serde::{Deserialize, Serialize};

/// How points outside the spectral sample get their label (DESIGN §2). All are linear in n.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum AssignRule {
    /// Largest projection norm onto each cluster's subspace (top singular vectors of its Z rows).
    #[default]
    Subspace = 0,
    /// Largest cosine to each cluster's mean normalised Z (prototype).
    PrototypeZ = 1,
    /// Largest cosine to each cluster's mean normalised C (the cluster head's output).
    PrototypeC = 2,
}

impl AssignRule {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "subspace" => Ok(AssignRule::Subspace),
            "prototype" | "prototype-z" => Ok(AssignRule::PrototypeZ),
            "prototype-c" => Ok(AssignRule::PrototypeC),
            _ => Err(crate::invalid_arg!("unknown assignment rule '{s}' (expected subspace, prototype-z or prototype-c)")),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            AssignRule::Subspace => "subspace",
            AssignRule::PrototypeZ => "prototype-z",
            AssignRule::PrototypeC => "prototype-c",
        }
    }
}

/// How the fitted sample is partitioned before the per-cluster summaries are built.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SampleClustering {
    /// Spectral clustering of Π (the CPP protocol, DESIGN §1.4).
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

/// Settings of [`crate::cluster::model::Clusterer::fit`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FitParams {
    /// Number of clusters for the labels (training itself does not depend on k).
    pub k: usize,
    /// Head sizes: hidden width h and output dimension d.
    pub hidden: usize,
    pub zdim: usize,
    /// Sinkhorn temperature η.
    pub eta: f64,
    /// ε², γ, λ of the MLC loss.
    pub eps_sq: f64,
    pub gamma: f64,
    pub lambda: f64,
    pub sinkhorn_half_iters: usize,
    pub exact_sinkhorn_gradient: bool,
    /// Minibatch size (the last incomplete batch of an epoch is dropped, as `drop_last=True`).
    pub batch: usize,
    pub epochs: usize,
    /// Heads trained from seeds seed, seed+1, …; the one whose labels of a scoring sample give the shortest
    /// coding length of the input features is kept (see [`super::restart_select`]). 1 = a single head.
    pub head_restarts: usize,
    /// Steps 0..=warmup minimise −R(Z) only; then the subspace head is copied into the cluster head.
    pub warmup: usize,
    /// SGD learning rates of the two groups (MLP + subspace head; cluster head), momentum, weight decays.
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
}

impl Default for FitParams {
    /// The reference CIFAR-10 settings (CPP README): h 4096, d 128, η 0.175, batch 1024, lr 1e-4, 15 epochs,
    /// warm-up 50, momentum 0.9, weight decay 1e-4 / 5e-3, seed 42.
    fn default() -> Self {
        let r = RateParams::default();
        FitParams {
            k: 10,
            hidden: 4096,
            zdim: 128,
            eta: r.eta,
            eps_sq: r.eps_sq,
            gamma: r.gamma,
            lambda: r.lambda,
            sinkhorn_half_iters: r.sinkhorn_half_iters,
            exact_sinkhorn_gradient: false,
            batch: 1024,
            epochs: 15,
            head_restarts: 1,
            warmup: 50,
            lr: 1e-4,
            lr_cluster: 1e-4,
            momentum: 0.9,
            weight_decay: 1e-4,
            weight_decay_cluster: 5e-3,
            seed: 42,
            single_head: false,
            normalize_input: false,
            spectral_sample: 2048,
            kmeans_restarts: 10,
            assign_rule: AssignRule::Subspace,
            subspace_rank: 0,
            sample_clustering: SampleClustering::SpectralPi,
        }
    }
}

/// Names of the presets [`FitParams::preset`] knows.
pub const PRESETS: [&str; 3] = ["cifar10", "imagenet", "fmnist-effnet"];

impl FitParams {
    /// Named settings: `cifar10` (= default), `imagenet` (reference ImageNet-1k: h 2048, d 1024, η 0.12,
    /// 20 epochs, warm-up 2000), `fmnist-effnet` (tuned on the Fashion-MNIST EfficientNet dev features:
    /// 45 epochs, 3 head restarts, prototype-z rule; see examples/eval_dev.rs and the table below).
    pub fn preset(name: &str) -> Result<Self> {
        let d = FitParams::default();
        match name {
            "cifar10" | "default" => Ok(d),
            "imagenet" => Ok(FitParams { hidden: 2048, zdim: 1024, eta: 0.12, epochs: 20, warmup: 2000, k: 1000, ..d }),
            "fmnist-effnet" => Ok(fmnist_effnet()),
            _ => Err(crate::invalid_arg!("unknown preset '{name}' (known: {})", PRESETS.join(", "))),
        }
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

    /// Checks every setting; `n` and `dim` are the fitting set's size (n = 0 skips the data checks).
    pub fn validate(&self, n: usize, dim: usize) -> Result<()> {
        let pos = |v: f64, name: &str| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(crate::invalid_arg!("`{name}` must be positive and finite, got {v}"))
            }
        };
        let nonneg = |v: f64, name: &str| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(crate::invalid_arg!("`{name}` must be non-negative and finite, got {v}"))
            }
        };
        if self.k < 2 {
            return Err(crate::invalid_arg!("`k` must be at least 2, got {}", self.k));
        }
        for (v, name) in [(self.hidden, "hidden"), (self.zdim, "zdim"), (self.epochs, "epochs"), (self.head_restarts, "head_restarts"), (self.sinkhorn_half_iters, "sinkhorn_half_iters"), (self.kmeans_restarts, "kmeans_restarts")] {
            if v == 0 {
                return Err(crate::invalid_arg!("`{name}` must be positive"));
            }
        }
        if self.batch < 2 {
            return Err(crate::invalid_arg!("`batch` must be at least 2 (BatchNorm needs 2 rows), got {}", self.batch));
        }
        if self.spectral_sample < self.k {
            return Err(crate::invalid_arg!("`spectral_sample` ({}) must be at least k ({})", self.spectral_sample, self.k));
        }
        pos(self.eta, "eta")?;
        pos(self.eps_sq, "eps_sq")?;
        pos(self.lr, "lr")?;
        nonneg(self.lr_cluster, "lr_cluster")?;
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
            if n < self.k {
                return Err(crate::invalid_arg!("{n} points cannot form k = {} clusters (n < k)", self.k));
            }
            if n < self.batch {
                return Err(crate::invalid_arg!("{n} points are fewer than one batch of {} (lower `batch`)", self.batch));
            }
        }
        Ok(())
    }

    /// Number of optimisation steps for n points (drop_last).
    pub fn total_steps(&self, n: usize) -> usize {
        (n / self.batch) * self.epochs
    }
}

/// The best settings measured on fmnist_effnet_dev (10k×1280 EfficientNet-Lite0 features of Fashion-MNIST) with
/// examples/eval_dev.rs; every point labelled, k = 10, CPU (2026-11-27). Unless stated: h 4096, d 128, η 0.175,
/// batch 1024, lr 1e-4, subspace rule.
///
/// | settings | ACC | NMI | ARI |
/// |---|---|---|---|
/// | **this preset from seed 42** (45 epochs = 405 steps, 3 head restarts: seeds 42, 43, 44, kept 42; prototype-z rule) | **0.6560** | **0.6592** | **0.5293** |
/// | **this preset from seed 1** (seeds 1, 2, 3; kept 2), the full preset run | **0.6560** | **0.6536** | **0.5277** |
/// | **this preset from seed 7** (seeds 7, 8, 9; kept 7) | **0.6516** | **0.6526** | **0.5204** |
/// | same three runs with the subspace rule (seed 42 / 1 / 7) | 0.6583 / 0.6425 / 0.6452 | 0.6570 / 0.6441 / 0.6467 | 0.5283 / 0.5082 / 0.5110 |
/// | 45 epochs, one head, seeds 42 / 1 / 2 / 3 / 4 | 0.658 / 0.565 / 0.646 / 0.642 / 0.647 | 0.657 / 0.626 / 0.650 / 0.649 / 0.648 | 0.528 / 0.484 / 0.514 / 0.509 / 0.513 |
/// | 90 epochs (810 steps), seed 42 | 0.6588 | 0.6595 | 0.5314 |
/// | 45 epochs, lr 2e-4, seed 42 | 0.6544 | 0.6567 | 0.5248 |
/// | reference CIFAR-10 settings (15 epochs = 135 steps), seed 42 | 0.6435 | 0.6377 | 0.5087 |
/// | same, reference protocol (spectral of one batch's Π, that batch only) | 0.6260 | 0.6165 | 0.4661 |
/// | 30 epochs, η 0.1 | 0.434 | 0.328 | 0.232 |
/// | single head (Π from Z) / η 0.25, 15 epochs | 0.6436 / 0.5307 | 0.6171 / 0.5933 | 0.4964 / 0.4205 |
/// | h 1024, 45 epochs, L2-normalised input, lr 1e-4 / 1e-3 | 0.566 / 0.566 | 0.624 / 0.603 | 0.488 / 0.472 |
/// | k-means on the L2-normalised input (k-means++, 10 restarts; seed 42 / 1 / 7) | 0.6446 / 0.6442 / 0.6442 | 0.6369 / 0.6355 / 0.6349 | 0.5113 / 0.5104 / 0.5102 |
///
/// What mattered: about 400 steps instead of 135 (the dev README's hint), and the seed. One 45-epoch head beat
/// k-means on NMI for 4 of 5 seeds but on ACC only for 3 (seed 1 merged sneakers with ankle boots): Fashion-MNIST's
/// five upper-body classes leave several partitions of nearly equal loss. Scoring each head's labels by the
/// coding length of the input features ([`super::restart_select`]; tools/dev/score_partitions.py) ranked the five
/// heads and k-means in the order of their ACC except for one pair 0.0005 apart, with the best head shortest, so
/// three restarts keep the best of three. The prototype-z rule beat the subspace rule on 5 of these 7 45-epoch
/// models on ACC (mean +0.005) and 6 of 7 on NMI (+0.004); with it the preset beats k-means from all three seeds:
/// ACC +0.011 / +0.012 / +0.007, NMI +0.022 / +0.018 / +0.018. (Seeds 42 and 7 were scored with the subspace
/// rule's labels; their kept heads led by 0.3–1 % in coding length. Seed 1 was rerun with prototype-z in the
/// loop and kept the same head.) The lead is real but small: about the size of the spread between seeds.
/// k-subspaces refinement and coding-length merging of an over-clustering were tried on the dumped embeddings
/// and were not consistently better.
fn fmnist_effnet() -> FitParams {
    FitParams { k: 10, epochs: 45, head_restarts: 3, assign_rule: AssignRule::PrototypeZ, ..FitParams::default() }
}
