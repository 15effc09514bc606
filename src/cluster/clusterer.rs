//! The fitted clusterer: train the head on a feature set, cluster a sample's Π spectrally, summarise the
//! clusters for out-of-sample assignment; with consensus runs (the default), let that partition compete
//! with the consensus of k-means runs by coding length and refine the winner on the neighbour graph
//! (docs/defaults.md); then label any number of points, choose k, save and load.

use super::algorithms::kmeans::{kmeans_cancellable, KMeansParams};
use super::algorithms::spectral::spectral_clustering_cancellable;
use super::assign::{AssignModel, AssignScratch, InputSpaceModel};
use super::consensus::{consensus_partition, runs_for, CONSENSUS_REPLICATES};
use super::head::cuda::{forward_eval_on, HeadOn, EVAL_CHUNK};
use super::head::train::{train, BatchOrder, TrainLog};
use super::head::{Head, HeadDims};
use super::neighbors::{self, NEIGHBORS, REFINE_ROUNDS};
use super::params::{AssignRule, FitParams, SampleClustering};
use super::restart_select::{PartitionScorer, SCORE_SAMPLE};
use super::select_k::SelectK;
use crate::device::Device;
use crate::error::{check_finite, Result};
use crate::progress::{report, NoProgress, Progress};
use crate::rate::membership;
use crate::rng::Rng;
use crate::scratch::{grow, ScratchPool};

/// How much shorter (a fraction of the consensus's code) the head's partition must code the scoring sample
/// to replace the k-means consensus. On real features the two differed by under 1 % either way, and the
/// shorter one was not reliably the more accurate (Fashion-MNIST train, 1,000 points: the head's code was
/// 0.5 % shorter at ACC 0.58 against the consensus's 0.64); on unions of subspaces, where k-means cannot
/// separate the clusters, the head's code was 10–45 % shorter (docs/defaults.md).
pub const HEAD_MARGIN: f64 = 0.02;

/// A trained CPP head plus the per-cluster summaries that label new points.
#[derive(Debug, Clone)]
pub struct Clusterer {
    pub params: FitParams,
    pub head: Head<f32>,
    pub assign_model: AssignModel,
    /// Loss at every training step (of the kept head).
    pub losses: Vec<f64>,
    /// With `head_restarts` > 1: each restart's coding length of the scoring sample's input under its labels
    /// (lower is better), and the index of the kept restart (trained from seed + index). Not saved.
    pub restart_scores: Vec<f64>,
    pub chosen_restart: usize,
    /// With `k` = 0 (automatic): the coding-length curve over the candidate k and the chosen k. Not saved.
    pub k_curve: Option<SelectK>,
    /// With `kmeans_candidates` > 0: the coding length of the kept head's partition and of the consensus
    /// partition (same sample as `restart_scores`; the shorter was kept). Not saved.
    pub head_score: Option<f64>,
    pub consensus_score: Option<f64>,
    /// Workspaces of [`Clusterer::assign_into`] (see [`AssignScratch`]).
    pub(crate) assign_scratch: ScratchPool<AssignScratch>,
}

/// Most bytes of assignment workspaces a clusterer keeps between calls: a frame or a batch of frames needs
/// kilobytes; a full 16384-row chunk against 10,000 references about 70 MB, which is freed after the call.
const MAX_POOLED_ASSIGN_BYTES: usize = 16 << 20;

/// Labels and per-point confidence (see [`super::assign`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub labels: Vec<i64>,
    pub confidence: Vec<f32>,
}

/// Checks a feature matrix argument: shape, non-empty, finite.
pub fn check_features(x: &[f32], n: usize, dim: usize) -> Result<()> {
    if n == 0 || dim == 0 {
        return Err(crate::invalid_arg!("features are empty ({n}×{dim})"));
    }
    let len = n.checked_mul(dim).ok_or_else(|| crate::invalid_arg!("features: {n}×{dim} overflows"))?;
    if x.len() != len {
        return Err(crate::invalid_arg!("features have {} values, expected {n}×{dim}", x.len()));
    }
    check_finite("features", x)
}

/// Rows of `x` divided by their L2 norm (a zero row stays zero), as a new matrix.
pub fn l2_normalize_rows(x: &[f32], dim: usize) -> Vec<f32> {
    let mut out = x.to_vec();
    crate::linalg::rows::l2_normalize_rows(&mut out, dim);
    out
}

/// `min(n, cap)` distinct row indices, seeded, in increasing order.
pub fn sample_rows(n: usize, cap: usize, seed: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    if cap < n {
        let mut rng = Rng::new(seed ^ 0x5A3F_1E5D);
        rng.shuffle(&mut idx);
        idx.truncate(cap);
        idx.sort_unstable();
    }
    idx
}

pub fn gather_rows(x: &[f32], dim: usize, rows: &[usize]) -> Vec<f32> {
    rows.iter().flat_map(|&r| x[r * dim..(r + 1) * dim].iter().copied()).collect()
}

/// Π of a set of points as a symmetric affinity: Π = m·Sinkhorn(|C Cᵀ|) (C = Z for single-head clusterers),
/// symmetrised as (Π + Πᵀ)/2 because spectral clustering needs a symmetric matrix and Sinkhorn's five
/// half-steps leave Π only nearly symmetric.
pub fn pi_affinity(device: &Device, z: &[f32], c: &[f32], m: usize, d: usize, params: &FitParams) -> Result<Vec<f32>> {
    let src = if params.single_head || c.is_empty() { z } else { c };
    let mut pi = membership(device, src, m, d, &params.rate_params())?;
    for i in 0..m {
        for j in i + 1..m {
            let s = 0.5 * (pi[i * m + j] + pi[j * m + i]);
            pi[i * m + j] = s;
            pi[j * m + i] = s;
        }
    }
    Ok(pi)
}

impl Clusterer {
    /// A clusterer from its parts with no training history (loaded files, benchmarks).
    pub fn from_parts(params: FitParams, head: Head<f32>, assign_model: AssignModel) -> Self {
        Clusterer { params, head, assign_model, losses: Vec::new(), restart_scores: Vec::new(), chosen_restart: 0, k_curve: None, head_score: None, consensus_score: None, assign_scratch: ScratchPool::new(MAX_POOLED_ASSIGN_BYTES) }
    }

    /// Trains on `x` (n×dim, row-major), clusters a sample of `params.spectral_sample` points spectrally
    /// into `params.k` clusters (`k` = 0: the k in 2..=`k_max` chosen by coding length, see
    /// [`super::select_k`]), and builds the assignment model; with `params.head_restarts` > 1, does that
    /// once per seed and keeps the best by coding length. Automatic settings are resolved first
    /// ([`FitParams::resolve`]) and the clusterer keeps the resolved values. Progress stages: "train" (one
    /// count across all restarts), "select-k" (with k = 0), "cluster" (per restart).
    pub fn fit(x: &[f32], n: usize, dim: usize, params: &FitParams, device: &Device, progress: &mut dyn Progress) -> Result<Self> {
        check_features(x, n, dim)?;
        params.validate(n, dim)?;
        let params = &params.resolve(n);
        if params.k == 0 && params.k_max > n.min(params.spectral_sample) {
            return Err(crate::invalid_arg!(
                "k_max = {} is more than the {} points clustered to choose k",
                params.k_max,
                n.min(params.spectral_sample)
            ));
        }
        let xs;
        let x = if params.normalize_input {
            xs = l2_normalize_rows(x, dim);
            &xs[..]
        } else {
            x
        };
        let dims = HeadDims { input: dim, hidden: params.hidden, zdim: params.zdim };
        // With several restarts, every head labels the same scoring sample with its own rule, and the
        // labelling whose coding length of the sample's input is shortest wins.
        let scoring = if params.head_restarts > 1 || params.kmeans_candidates > 0 {
            // k = 0 (automatic): the score's dimension is set for the largest k it may compare.
            Some(scoring_sample(x, n, dim, if params.k == 0 { params.k_max } else { params.k }, params)?)
        } else {
            None
        };
        let mut best: Option<(Clusterer, Vec<usize>)> = None;
        let mut scores = Vec::with_capacity(params.head_restarts);
        for r in 0..params.head_restarts {
            // Restart r trains from seed + r (head initialisation and batch order); the sample and the
            // spectral k-means keep the base seed, so every restart is judged on the same points.
            let run = FitParams { seed: params.seed.wrapping_add(r as u64), ..params.clone() };
            let mut head = Head::<f32>::new(dims, run.seed)?;
            // One "train" progress bar across all restarts: restart r covers steps r·T .. (r+1)·T of R·T.
            let restarts = params.head_restarts as u64;
            let mut across = |stage: &str, done: u64, total: u64| match stage {
                "train" => progress.report(stage, r as u64 * total + done, restarts * total),
                _ => progress.report(stage, done, total),
            };
            let TrainLog { losses } = train(&mut head, x, n, &run, device, BatchOrder::Shuffled, &mut across)?;
            let empty = AssignModel { k: 0, zdim: 0, rank: 0, bases: vec![], prototypes_z: vec![], prototypes_c: vec![], input: None };
            let mut clusterer = Clusterer { losses, chosen_restart: r, ..Clusterer::from_parts(params.clone(), head, empty) };
            let k = if params.k == 0 {
                let curve = clusterer.select_k_normalized(x, n, &(2..=params.k_max).collect::<Vec<_>>(), device, &mut across)?;
                let k = curve.best_k;
                clusterer.k_curve = Some(curve);
                k
            } else {
                params.k
            };
            clusterer.recluster(x, n, k, device, &mut across)?;
            let Some((xs, ms, scorer)) = &scoring else { return Ok(clusterer) };
            let labels: Vec<usize> = clusterer.assign_on(device, params.assign_rule, xs, *ms, &mut NoProgress)?.labels.iter().map(|&l| l as usize).collect();
            scores.push(scorer.score(&labels)?);
            let best_so_far = scores[..r].iter().all(|&s| scores[r] < s);
            if best_so_far {
                best = Some((clusterer, labels));
            }
        }
        let (mut clusterer, head_labels) = best.expect("head_restarts ≥ 1 was validated and the first restart is always kept");
        clusterer.head_score = scores.iter().copied().reduce(f64::min);
        clusterer.restart_scores = if params.head_restarts > 1 { scores } else { Vec::new() };
        if let (Some((_, _, scorer)), true) = (&scoring, params.kmeans_candidates > 0) {
            clusterer.settle_in_input_space(scorer, head_labels, progress)?;
        }
        Ok(clusterer)
    }

    /// The default fit's last steps (docs/defaults.md): the head's partition of the scoring sample
    /// (`head_labels`) against the consensus of k-means runs on the input, by coding length (the head's
    /// alone for k too large for a consensus); the kept partition is refined on the sample's neighbour
    /// graph and labels from then on (rule neighbors-x). Progress stages "consensus", "refine".
    fn settle_in_input_space(&mut self, scorer: &PartitionScorer, head_labels: Vec<usize>, progress: &mut dyn Progress) -> Result<()> {
        let (k, m) = (self.k(), scorer.m);
        let mut chosen = head_labels;
        self.consensus_score = None;
        if let Some(runs) = runs_for(k, self.params.kmeans_candidates) {
            // Replicates from different seeds, the shortest code kept: one consensus can still land in a
            // poorer basin (train60k, seed 7: ACC 0.661 where other seeds reach 0.733; with 5 replicates
            // 0.731, docs/defaults.md).
            let mut best: Option<(f64, Vec<usize>)> = None;
            for r in 0..CONSENSUS_REPLICATES as u64 {
                let seed = self.params.seed.wrapping_add(r * 7919);
                let labels = consensus_partition(&scorer.proj, m, scorer.space.rank, k, runs, seed, progress)?;
                let score = scorer.score(&labels)?;
                if best.as_ref().is_none_or(|(b, _)| score < *b) {
                    best = Some((score, labels));
                }
            }
            let (score, consensus) = best.expect("at least one replicate");
            self.consensus_score = Some(score);
            if !self.head_score.is_some_and(|h| h < score * (1.0 - HEAD_MARGIN)) {
                chosen = consensus;
            }
        }
        report(progress, "refine", 0, 1)?;
        let nbrs = neighbors::nearest(&scorer.proj, m, &scorer.proj, m, scorer.space.rank, NEIGHBORS.min(m))?;
        let refined = neighbors::refine(&chosen, &nbrs, REFINE_ROUNDS);
        self.assign_model.input = Some(InputSpaceModel::build(scorer.space.clone(), &scorer.proj, m, &refined, k)?);
        self.params.assign_rule = AssignRule::NeighborsInput;
        report(progress, "refine", 1, 1)?;
        Ok(())
    }

    /// Re-derives the clusters for `k` from a sample of `x` (already input-normalised if the clusterer does so)
    /// without retraining: Π of the sample, spectral clustering, new per-cluster summaries.
    /// Returns the sample's labels.
    fn recluster(&mut self, x: &[f32], n: usize, k: usize, device: &Device, progress: &mut dyn Progress) -> Result<Vec<usize>> {
        report(progress, "cluster", 0, 3)?;
        let d = self.head.dims.zdim;
        let (rows, z, c) = self.sample_embeddings(x, n, device)?;
        let m = rows.len();
        if m < k {
            return Err(crate::invalid_arg!("{m} sample points cannot form k = {k} clusters"));
        }
        let labels = match self.params.sample_clustering {
            SampleClustering::SpectralPi => {
                let aff = pi_affinity(device, &z, &c, m, d, &self.params)?;
                report(progress, "cluster", 1, 3)?;
                // The k-means restarts re-send this report, so a cancel is heard between them.
                spectral_clustering_cancellable(&aff, m, k, self.params.kmeans_restarts, self.params.seed, &mut || report(progress, "cluster", 1, 3))?
            }
            rule => {
                let e = if rule == SampleClustering::KMeansC && !c.is_empty() { &c } else { &z };
                let km = KMeansParams { k, n_init: self.params.kmeans_restarts, seed: self.params.seed, ..Default::default() };
                kmeans_cancellable(e, m, d, &km, &mut || report(progress, "cluster", 1, 3))?.labels
            }
        };
        report(progress, "cluster", 2, 3)?;
        self.assign_model = AssignModel::build(&z, &c, m, d, &labels, k, self.params.subspace_rank)?;
        self.params.k = k;
        report(progress, "cluster", 3, 3)?;
        Ok(labels)
    }

    /// Eval-mode Z and C of the spectral sample of `x` (input normalisation already applied), on `device`.
    fn sample_embeddings(&self, x: &[f32], n: usize, device: &Device) -> Result<(Vec<usize>, Vec<f32>, Vec<f32>)> {
        let dim = self.head.dims.input;
        let rows = sample_rows(n, self.params.spectral_sample, self.params.seed);
        let xs = gather_rows(x, dim, &rows);
        let (z, c) = forward_eval_on(device, &self.head, &xs, rows.len(), !self.params.single_head)?;
        Ok((rows, z, c))
    }

    pub fn k(&self) -> usize {
        self.assign_model.k
    }

    pub fn input_dim(&self) -> usize {
        self.head.dims.input
    }

    /// Eval-mode (Z, C) of arbitrary points (C empty unless `want_c`), applying the clusterer's input normalisation.
    pub fn embed(&self, x: &[f32], n: usize, want_c: bool) -> Result<(Vec<f32>, Vec<f32>)> {
        self.embed_with(&HeadOn::Cpu(&self.head), x, n, want_c)
    }

    /// [`Self::embed`] with the head on a device ([`HeadOn`]).
    pub fn embed_with(&self, head: &HeadOn<'_>, x: &[f32], n: usize, want_c: bool) -> Result<(Vec<f32>, Vec<f32>)> {
        self.check_input(x, n)?;
        if self.params.normalize_input {
            head.forward_eval(&l2_normalize_rows(x, self.input_dim()), n, want_c)
        } else {
            head.forward_eval(x, n, want_c)
        }
    }

    /// Checks features given to a fitted clusterer: shape, the fitted dimension, finite values.
    pub(crate) fn check_input(&self, x: &[f32], n: usize) -> Result<()> {
        let dim = self.input_dim();
        if n > 0 && x.len() % n == 0 && x.len() / n != dim {
            return Err(crate::invalid_arg!("features have dimension {}, but the clusterer was fitted on dimension {dim}", x.len() / n));
        }
        check_features(x, n, dim)
    }

    /// Labels every row of `x` (n×input_dim) with the clusterer's rule, in chunks (memory O(chunk)).
    /// Progress stage "assign".
    pub fn assign(&self, x: &[f32], n: usize, progress: &mut dyn Progress) -> Result<Assignment> {
        self.assign_with(self.params.assign_rule, x, n, progress)
    }

    /// As [`Self::assign`] with an explicit rule (to compare rules on the same clusterer).
    pub fn assign_with(&self, rule: AssignRule, x: &[f32], n: usize, progress: &mut dyn Progress) -> Result<Assignment> {
        self.assign_on(&Device::Cpu, rule, x, n, progress)
    }

    /// As [`Self::assign_with`] with the head on `device`. On CUDA the head runs on the GPU (TF32
    /// products) in chunks of [`EVAL_CHUNK`] rows, and the next chunk's forward overlaps the CPU's
    /// assignment of the current one; on the CPU this is exactly `assign_with`.
    pub fn assign_on(&self, device: &Device, rule: AssignRule, x: &[f32], n: usize, progress: &mut dyn Progress) -> Result<Assignment> {
        let mut out = Assignment { labels: vec![0; n], confidence: vec![0.0; n] };
        self.assign_into(device, rule, x, n, &mut out.labels, Some(&mut out.confidence), progress)?;
        Ok(out)
    }

    /// [`Self::assign_on`] into the caller's `labels` (n) and, if given, `confidence` (n). With the
    /// input-space rules (the default `neighbors-x`, and `prototype-x`) a call allocates nothing once an
    /// earlier call of the same size has grown the clusterer's workspaces; the head-space rules allocate for
    /// the head's forward pass.
    #[allow(clippy::too_many_arguments)]
    pub fn assign_into(
        &self,
        device: &Device,
        rule: AssignRule,
        x: &[f32],
        n: usize,
        labels: &mut [i64],
        confidence: Option<&mut [f32]>,
        progress: &mut dyn Progress,
    ) -> Result<()> {
        self.check_input(x, n)?;
        if labels.len() != n || confidence.as_ref().is_some_and(|c| c.len() != n) {
            return Err(crate::invalid_arg!("assign: {n} points need {n} label and confidence slots"));
        }
        self.assign_scratch.with(|ws| {
            let mut spare = std::mem::take(&mut ws.confidence);
            let conf = match confidence {
                Some(c) => c,
                None => crate::scratch::refill(&mut spare, n),
            };
            let result = if rule.uses_input_space() {
                self.assign_input_space(rule, x, n, labels, conf, ws, progress)
            } else if device.is_cuda() {
                HeadOn::new(device, &self.head).and_then(|head| self.assign_pipelined(&head, EVAL_CHUNK, rule, x, n, labels, conf, progress))
            } else {
                self.assign_in_chunks(x, n, labels, conf, progress, |xs, rows, labels, conf| {
                    let (z, c) = self.rule_embeddings(rule, xs, rows)?;
                    self.assign_model.assign(rule, &z, &c, rows, labels, conf)
                })
            };
            ws.confidence = spare;
            result
        })
    }

    /// The head's (Z, C) of `rows` input rows on the CPU, as the head-space `rule` compares them (C is Z's
    /// copy unless the rule reads the cluster head).
    fn rule_embeddings(&self, rule: AssignRule, xs: &[f32], rows: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        let want_c = rule == AssignRule::PrototypeC && !self.params.single_head;
        let (z, c) = self.embed(xs, rows, want_c)?;
        let c = if want_c { c } else { z.clone() };
        Ok((z, c))
    }

    /// `rows` input rows projected into the stored input space (after the clusterer's input normalisation),
    /// as the input-space rules compare them: into `ws.projections[..rows × rank]`.
    fn input_projections_into(&self, rule: AssignRule, xs: &[f32], rows: usize, ws: &mut AssignScratch) -> Result<()> {
        let ip = self.assign_model.input.as_ref().ok_or_else(|| crate::invalid_arg!("this clusterer has no input-space model (rule {})", rule.name()))?;
        let xs = if self.params.normalize_input {
            grow(&mut ws.unit, xs.len());
            let unit = &mut ws.unit[..xs.len()];
            unit.copy_from_slice(xs);
            crate::linalg::rows::l2_normalize_rows(unit, self.input_dim());
            &*unit
        } else {
            xs
        };
        ip.space.project_into(xs, rows, &mut ws.centred, &mut ws.projections)
    }

    /// [`Self::assign_into`] for the input-space rules: no head; the nearest prototype or the neighbours' vote.
    #[allow(clippy::too_many_arguments)]
    fn assign_input_space(
        &self,
        rule: AssignRule,
        x: &[f32],
        n: usize,
        labels: &mut [i64],
        confidence: &mut [f32],
        ws: &mut AssignScratch,
        progress: &mut dyn Progress,
    ) -> Result<()> {
        let rank = self.assign_model.input.as_ref().map_or(0, |ip| ip.space.rank);
        self.assign_in_chunks(x, n, labels, confidence, progress, |xs, rows, labels, conf| {
            self.input_projections_into(rule, xs, rows, ws)?;
            let mut p = std::mem::take(&mut ws.projections);
            let result = match rule {
                AssignRule::NeighborsInput => self.assign_model.assign_neighbors(&p[..rows * rank], rows, labels, conf, ws),
                _ => self.assign_model.assign_input(&p[..rows * rank], rows, labels, conf, ws),
            };
            std::mem::swap(&mut ws.projections, &mut p);
            result
        })
    }

    /// The per-cluster scores the clusterer's assign rule compares, n×k row-major (the soft side of
    /// [`Self::assign`]): with the default rule `neighbors-x` the fraction of each point's nearest fitted
    /// points in each cluster (rows sum to 1); with `prototype-*` the cosine with each cluster's prototype;
    /// with `subspace` the squared norm of the projection on each cluster's basis. The argmax of a row is the
    /// point's label (ties aside). Computed on the CPU in chunks; progress stage "assign".
    pub fn scores(&self, x: &[f32], n: usize, progress: &mut dyn Progress) -> Result<Vec<f32>> {
        self.check_input(x, n)?;
        let (dim, k, rule) = (self.input_dim(), self.k(), self.params.assign_rule);
        let mut out = vec![0.0f32; n.checked_mul(k).ok_or_else(|| crate::invalid_arg!("n × k overflows"))?];
        const CHUNK: usize = 16384;
        report(progress, "assign", 0, n as u64)?;
        for start in (0..n).step_by(CHUNK) {
            let rows = CHUNK.min(n - start);
            let xs = &x[start * dim..(start + rows) * dim];
            let o = &mut out[start * k..(start + rows) * k];
            if rule.uses_input_space() {
                let mut ws = AssignScratch::default();
                self.input_projections_into(rule, xs, rows, &mut ws)?;
                let rank = self.assign_model.input.as_ref().map_or(0, |ip| ip.space.rank);
                self.assign_model.scores_input(rule, &ws.projections[..rows * rank], rows, o)?;
            } else {
                let (z, c) = self.rule_embeddings(rule, xs, rows)?;
                self.assign_model.scores(rule, &z, &c, rows, o)?;
            }
            report(progress, "assign", (start + rows) as u64, n as u64)?;
        }
        Ok(out)
    }

    /// Labels `x` (checked by the caller) in chunks of 16384 rows (memory O(chunk)) with `label_chunk(rows
    /// of x, row count, labels out, confidences out)`. Progress stage "assign".
    fn assign_in_chunks(
        &self,
        x: &[f32],
        n: usize,
        labels: &mut [i64],
        confidence: &mut [f32],
        progress: &mut dyn Progress,
        mut label_chunk: impl FnMut(&[f32], usize, &mut [i64], &mut [f32]) -> Result<()>,
    ) -> Result<()> {
        let dim = self.input_dim();
        const CHUNK: usize = 16384;
        report(progress, "assign", 0, n as u64)?;
        for start in (0..n).step_by(CHUNK) {
            let rows = CHUNK.min(n - start);
            let span = start..start + rows;
            label_chunk(&x[start * dim..(start + rows) * dim], rows, &mut labels[span.clone()], &mut confidence[span])?;
            report(progress, "assign", (start + rows) as u64, n as u64)?;
        }
        Ok(())
    }

    /// The CUDA side of [`Self::assign_on`]: the forward of chunk i+1 (`chunk` rows, on `head`'s device)
    /// alongside the CPU assignment of chunk i.
    #[allow(clippy::too_many_arguments)]
    fn assign_pipelined(
        &self,
        head: &HeadOn<'_>,
        chunk: usize,
        rule: AssignRule,
        x: &[f32],
        n: usize,
        labels: &mut [i64],
        confidence: &mut [f32],
        progress: &mut dyn Progress,
    ) -> Result<()> {
        let dim = self.input_dim();
        let want_c = rule == AssignRule::PrototypeC && !self.params.single_head;
        let embed = |start: usize| -> Result<(Vec<f32>, Vec<f32>)> {
            let rows = chunk.min(n - start);
            let (z, c) = self.embed_with(head, &x[start * dim..(start + rows) * dim], rows, want_c)?;
            let c = if want_c { c } else { z.clone() };
            Ok((z, c))
        };
        report(progress, "assign", 0, n as u64)?;
        let mut next = Some(embed(0)?);
        let mut start = 0;
        while let Some((z, c)) = next.take() {
            let rows = chunk.min(n - start);
            let (labels, conf) = (&mut labels[start..start + rows], &mut confidence[start..start + rows]);
            let (ahead, done) = rayon::join(
                || (start + rows < n).then(|| embed(start + rows)),
                || self.assign_model.assign(rule, &z, &c, rows, labels, conf),
            );
            done?;
            next = ahead.transpose()?;
            start += rows;
            report(progress, "assign", start as u64, n as u64)?;
        }
        Ok(())
    }

    /// Clusters the clusterer's own sample of `x` again for another k and keeps that (no retraining).
    pub fn set_k(&mut self, x: &[f32], n: usize, k: usize, device: &Device, progress: &mut dyn Progress) -> Result<()> {
        self.check_input(x, n)?;
        if k < 2 {
            return Err(crate::invalid_arg!("k must be at least 2, got {k}"));
        }
        let dim = self.input_dim();
        let xs;
        let x = if self.params.normalize_input {
            xs = l2_normalize_rows(x, dim);
            &xs[..]
        } else {
            x
        };
        // A clusterer that settled in the input space does so again for the new k, with the head's
        // partition labelled by the default head rule (the rule it was fitted with is not stored).
        let settle = self.params.assign_rule.uses_input_space() && self.params.kmeans_candidates > 0;
        if settle {
            self.params.assign_rule = AssignRule::Subspace;
        }
        self.recluster(x, n, k, device, progress)?;
        if settle {
            let (xs, m, scorer) = scoring_sample(x, n, dim, k, &self.params)?;
            let head_labels: Vec<usize> = self.assign_on(device, AssignRule::Subspace, &xs, m, &mut NoProgress)?.labels.iter().map(|&l| l as usize).collect();
            self.head_score = Some(scorer.score(&head_labels)?);
            self.settle_in_input_space(&scorer, head_labels, progress)?;
        }
        Ok(())
    }
}

/// The scoring sample of the (input-normalised) n×dim rows `x`: up to [`SCORE_SAMPLE`] rows chosen by the
/// seed, and their [`PartitionScorer`] for partitions into k clusters.
fn scoring_sample(x: &[f32], n: usize, dim: usize, k: usize, params: &FitParams) -> Result<(Vec<f32>, usize, PartitionScorer)> {
    let rows = sample_rows(n, SCORE_SAMPLE, params.seed ^ 0x5C0_4E);
    let xs = gather_rows(x, dim, &rows);
    let scorer = PartitionScorer::new(&xs, rows.len(), dim, k, params.eps_sq)?;
    Ok((xs, rows.len(), scorer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::assign::auto_rank;

    /// The pipelined assignment loop (used with the GPU head) labels exactly like the plain one when both
    /// embed on the CPU: chunk boundaries, the look-ahead and the partial last chunk.
    #[test]
    fn pipelined_assignment_matches_sequential() {
        let (input, hidden, d, k, n) = (6, 20, 8, 3, 47);
        let mut rng = Rng::new(3);
        let mut normal = |len: usize| -> Vec<f32> { (0..len).map(|_| rng.normal() as f32).collect() };
        let rank = auto_rank(k, d);
        let clusterer = Clusterer::from_parts(
            FitParams { k, hidden, zdim: d, normalize_input: true, ..FitParams::default() },
            Head::new(HeadDims { input, hidden, zdim: d }, 4).unwrap(),
            AssignModel { k, zdim: d, rank, bases: normal(k * rank * d), prototypes_z: normal(k * d), prototypes_c: normal(k * d), input: None },
        );
        let x = normal(n * input);
        for rule in [AssignRule::Subspace, AssignRule::PrototypeZ, AssignRule::PrototypeC] {
            let a = clusterer.assign_with(rule, &x, n, &mut NoProgress).unwrap();
            for chunk in [1, 10, 47, 100] {
                let mut b = Assignment { labels: vec![0; n], confidence: vec![0.0; n] };
                clusterer.assign_pipelined(&HeadOn::Cpu(&clusterer.head), chunk, rule, &x, n, &mut b.labels, &mut b.confidence, &mut NoProgress).unwrap();
                assert_eq!(a.labels, b.labels, "{rule:?}, chunk {chunk}");
                for (p, q) in a.confidence.iter().zip(&b.confidence) {
                    assert!((p - q).abs() < 1e-5, "{rule:?}, chunk {chunk}: confidence {p} vs {q}");
                }
            }
        }
    }
}
