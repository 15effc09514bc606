//! C API for the cluster stage: fit a clusterer on feature vectors, label points, choose k, score a
//! labelling, save and load. Mirrors `rateclust::cluster::clusterer::Clusterer`.
// C names (rateclust_*) on purpose: cbindgen emits them as they are.
#![allow(non_camel_case_types)]

use super::{free_handle, new_handle, arg_mut, arg_ref, arg_slice, arg_slice_mut, arg_str, checked_len, device_kind, guard, on_pool, rateclust_progress_fn, write_opt, CBool, CProgress};
use crate::cluster::algorithms::metrics;
use crate::cluster::clusterer::Clusterer;
use crate::cluster::params::FitParams;
use rateclust_macros::CMirror;
use crate::device::Device;
use crate::error::Result;
use super::enums::Status;
use crate::progress::NoProgress;
use std::ffi::{c_char, c_void};
use std::path::Path;

/// A fitted clusterer (opaque). Create with `rateclust_fit` or `rateclust_clusterer_load`, free with
/// `rateclust_clusterer_free`. Thread safety: the calls that take `const rateclust_clusterer *` (assign,
/// select_k, info, save) may run on one handle from several threads at once; `rateclust_clusterer_set_k`
/// and `rateclust_clusterer_free` need the handle to themselves (no other call on it meanwhile).
pub struct rateclust_clusterer {
    inner: Clusterer,
}


/// Every setting of a fit. Get the defaults (the recommended, data-adaptive settings) from
/// `rateclust_fit_default_params()` or a named preset from `rateclust_fit_preset_params()`, then change fields.
/// A zero in `k`, `k_max`, `hidden`, `zdim`, `batch`, `steps`, `warmup`, `eta`, `lr` or `lr_cluster` means
/// "automatic": derived from the data by the rule in README.md ("Defaults"); the fitted model keeps the
/// values used.
#[repr(C)]
#[derive(Debug, Clone, Copy, CMirror)]
#[mirror(FitParams)]
pub struct rateclust_fit_params {
    /// Number of clusters (≥ 2), or 0 to choose k in 2..=k_max by coding length in the same fit
    /// (`rateclust_clusterer_k_curve` returns the curve).
    pub k: usize,
    /// Largest k tried when k = 0 (0 = automatic: min(20, ⌊√n⌋), at least 2).
    pub k_max: usize,
    /// Head sizes: hidden width and output dimension d (0 = automatic).
    pub hidden: usize,
    pub zdim: usize,
    /// Sinkhorn temperature η (0 = automatic; the reference's 0.175).
    pub eta: f64,
    /// ε², γ, λ of the MLC loss (0.1, 1, 0.05).
    pub eps_sq: f64,
    pub gamma: f64,
    pub lambda: f64,
    /// Sinkhorn half-iterations (5).
    pub sinkhorn_half_iters: usize,
    /// Use the exact Sinkhorn gradient instead of the reference's (v detached).
    pub exact_sinkhorn_gradient: CBool,
    /// Minibatch size (cut down to n; an incomplete last batch of each pass is dropped), optimiser steps,
    /// warm-up steps (0..=warmup use TCR only); 0 = automatic for each.
    pub batch: usize,
    pub steps: usize,
    pub warmup: usize,
    /// Heads trained from seeds seed, seed+1, …; the one whose partition codes the input shortest is kept
    /// (1 = a single head; cost grows linearly).
    pub head_restarts: usize,
    /// SGD: learning rates of the two parameter groups (0 = automatic; lr_cluster 0 = lr), momentum,
    /// weight decays.
    pub lr: f64,
    pub lr_cluster: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub weight_decay_cluster: f64,
    pub seed: u64,
    /// Membership Π from Z instead of the cluster head.
    pub single_head: CBool,
    /// L2-normalise each input row before the head (also at assign time).
    pub normalize_input: CBool,
    /// Points sampled for spectral clustering of Π, and k-means restarts there.
    pub spectral_sample: usize,
    pub kmeans_restarts: usize,
    /// Out-of-sample rule and subspace rank per cluster (0 = automatic).
    /// A `rateclust_assign_rule` value (validated: an unknown value is an error).
    pub assign_rule: u32,
    pub subspace_rank: usize,
    /// How the sample is partitioned: a `rateclust_sample_clustering` value (spectral clustering of Π, the
    /// default, or k-means on Z or C; validated).
    pub sample_clustering: u32,
    /// k-means++ runs on the input whose consensus partition competes with the head's by coding length
    /// (default 30; 0 = the head's partition and assign_rule only). Otherwise the winner is refined on the
    /// neighbour graph and the model labels with RATECLUST_ASSIGN_RULE_NEIGHBORS_INPUT.
    pub kmeans_candidates: usize,
}

/// The default fit parameters, the recommended path: k and the head's sizes, batch, steps, warm-up, η and
/// learning rates automatic (0, resolved from the data at fit time), L2-normalised input, the head's partition
/// competing with the consensus of 30 k-means runs and the winner refined on the neighbour graph (the model
/// then labels with RATECLUST_ASSIGN_RULE_NEIGHBORS_INPUT), the reference's MLC and SGD constants, seed 42.
/// Set `k` unless k should be chosen.
#[no_mangle]
pub extern "C" fn rateclust_fit_default_params() -> rateclust_fit_params {
    (&FitParams::default()).into()
}

/// Writes the named preset ("auto" = the defaults; "cifar10", "imagenet" = the paper's settings) into `*out`.
#[no_mangle]
pub extern "C" fn rateclust_fit_preset_params(name: *const c_char, out: *mut rateclust_fit_params) -> Status {
    guard(|| {
        let p = FitParams::preset(arg_str(name, "name")?)?;
        *arg_mut(out, "out")? = (&p).into();
        Ok(())
    })
}

fn features<'a>(x: *const f32, n: usize, dim: usize) -> Result<&'a [f32]> {
    if n == 0 || dim == 0 {
        return Err(crate::invalid_arg!("features are empty (n = {n}, dim = {dim})"));
    }
    arg_slice(x, checked_len(n, dim, "x")?, "x")
}

/// Fits a clusterer on `n` feature vectors of dimension `dim` (`x`: n×dim float32, row-major; read only,
/// not retained) and writes a new handle into `*out` (free it with `rateclust_clusterer_free`).
/// `params` may be NULL for the defaults. `progress` may be NULL; its stages, in order: "train" (one count
/// per optimiser step across all head restarts), "select-k" (k = 0 only, one per candidate), "cluster",
/// "consensus" (per k-means run, once per consensus replicate) and "refine" (the last two unless
/// `kmeans_candidates` is 0). Errors: NaN/Inf features (RATECLUST_STATUS_NON_FINITE), n < k, n < 2, k = 1,
/// bad parameters (INVALID_ARGUMENT), a diverged training (NUMERICAL), cancellation (CANCELLED), no usable
/// CUDA device when `device` is CUDA (DEVICE). On failure `*out` is set to NULL.
#[no_mangle]
pub extern "C" fn rateclust_fit(
    x: *const f32,
    n: usize,
    dim: usize,
    params: *const rateclust_fit_params,
    device: u32,
    progress: rateclust_progress_fn,
    user_data: *mut c_void,
    out: *mut *mut rateclust_clusterer,
) -> Status {
    guard(|| {
        let out = arg_mut(out, "out")?;
        *out = std::ptr::null_mut();
        let x = features(x, n, dim)?;
        let p: FitParams = if params.is_null() { FitParams::default() } else { FitParams::try_from(arg_ref(params, "params")?)? };
        let dev = Device::open_default(device_kind(device)?)?;
        let mut prog = CProgress { f: progress, user_data };
        let clusterer = Clusterer::fit(x, n, dim, &p, &dev, &mut prog)?;
        *out = new_handle(rateclust_clusterer { inner: clusterer });
        Ok(())
    })
}

fn clusterer<'a>(c: *const rateclust_clusterer) -> Result<&'a Clusterer> {
    Ok(&arg_ref(c, "clusterer")?.inner)
}

/// Frees a clusterer; NULL is ignored.
#[no_mangle]
pub extern "C" fn rateclust_clusterer_free(c: *mut rateclust_clusterer) {
    free_handle(c);
}

/// Writes the number of clusters and the input feature dimension of a fitted clusterer (either may be NULL).
#[no_mangle]
pub extern "C" fn rateclust_clusterer_info(c: *const rateclust_clusterer, k: *mut usize, dim: *mut usize) -> Status {
    guard(|| {
        let m = clusterer(c)?;
        write_opt(k, m.k());
        write_opt(dim, m.input_dim());
        Ok(())
    })
}

/// The coding-length curve of a fit with k = 0 (automatic): `*len` gets the number of candidates (0 for a
/// model fitted with a given k), and the first min(len, cap) candidates and their coding lengths (nats) are
/// written into `candidates` and `coding_length` (cap entries each, caller-owned; either may be NULL when
/// cap is 0, to ask for the length first). The chosen k is the model's (`rateclust_clusterer_info`).
#[no_mangle]
pub extern "C" fn rateclust_clusterer_k_curve(
    c: *const rateclust_clusterer,
    candidates: *mut usize,
    coding_length: *mut f64,
    cap: usize,
    len: *mut usize,
) -> Status {
    guard(|| {
        let m = clusterer(c)?;
        let curve = m.k_curve.as_ref();
        let total = curve.map_or(0, |c| c.candidates.len());
        *arg_mut(len, "len")? = total;
        let n = total.min(cap);
        if n > 0 {
            let curve = curve.expect("n > 0 only with a curve");
            arg_slice_mut(candidates, n, "candidates")?.copy_from_slice(&curve.candidates[..n]);
            arg_slice_mut(coding_length, n, "coding_length")?.copy_from_slice(&curve.coding_length[..n]);
        }
        Ok(())
    })
}

/// Labels `n` points (`x`: n×dim float32; `dim` must equal the fitted dimension). Writes cluster ids
/// (0..k) into `labels` (n int64, caller-owned) and, if `confidence` is not NULL, a confidence per point
/// into it (n floats: margin between the best and second-best cluster score; higher = surer).
/// `device` (a `rateclust_device_kind`) runs the head's forward pass: on CUDA the next chunk's forward
/// overlaps the CPU scoring of the current one; AUTO uses a GPU when one is usable. Errors: dimension
/// mismatch (INVALID_ARGUMENT), NaN/Inf features (NON_FINITE), no usable CUDA device for CUDA (DEVICE).
#[no_mangle]
pub extern "C" fn rateclust_assign(
    c: *const rateclust_clusterer,
    x: *const f32,
    n: usize,
    dim: usize,
    device: u32,
    labels: *mut i64,
    confidence: *mut f32,
    progress: rateclust_progress_fn,
    user_data: *mut c_void,
) -> Status {
    guard(|| {
        let m = clusterer(c)?;
        let x = features(x, n, dim)?;
        let labels = arg_slice_mut(labels, n, "labels")?;
        let confidence = if confidence.is_null() { None } else { Some(arg_slice_mut(confidence, n, "confidence")?) };
        let dev = Device::open_default(device_kind(device)?)?;
        let rule = m.params.assign_rule;
        if progress.is_some() {
            return m.assign_into(&dev, rule, x, n, labels, confidence, &mut CProgress { f: progress, user_data });
        }
        // No callback: one job on the pool, as rateclust_embed_frames (a frame pipeline's steady state).
        on_pool(|| m.assign_into(&dev, rule, x, n, labels, confidence, &mut CProgress::none()))
    })
}

/// Writes the per-cluster scores behind `rateclust_assign`'s labels into `scores` (n×k floats, row-major,
/// caller-owned; `scores_len` is how many floats it holds, at least n·k): with the default rule
/// (`RATECLUST_ASSIGN_RULE_NEIGHBORS_INPUT`) the fraction of each point's nearest fitted points in each
/// cluster, a soft membership whose rows sum to 1; with the prototype rules the cosine with each cluster's
/// prototype; with the subspace rule the squared norm of the projection on each cluster's basis. A row's
/// argmax is the point's label. Runs on the CPU. Errors as `rateclust_assign`, and INVALID_ARGUMENT when
/// `scores_len` < n·k.
#[no_mangle]
pub extern "C" fn rateclust_assign_scores(
    c: *const rateclust_clusterer,
    x: *const f32,
    n: usize,
    dim: usize,
    scores: *mut f32,
    scores_len: usize,
    progress: rateclust_progress_fn,
    user_data: *mut c_void,
) -> Status {
    guard(|| {
        let m = clusterer(c)?;
        let x = features(x, n, dim)?;
        let need = checked_len(n, m.k(), "n × k")?;
        if scores_len < need {
            return Err(crate::invalid_arg!("scores_len = {scores_len} floats, but n × k = {n} × {} = {need} are needed", m.k()));
        }
        let out = arg_slice_mut(scores, need, "scores")?;
        let mut prog = CProgress { f: progress, user_data };
        out.copy_from_slice(&m.scores(x, n, &mut prog)?);
        Ok(())
    })
}

/// Chooses the number of clusters among `candidates` (n_candidates values, each ≥ 2) by coding length on a
/// sample of `x` (n×dim), without retraining. Writes L(k) for each candidate into `curve` (n_candidates
/// doubles, caller-owned) and the minimiser into `*best_k`.
#[no_mangle]
pub extern "C" fn rateclust_select_k(
    c: *const rateclust_clusterer,
    x: *const f32,
    n: usize,
    dim: usize,
    candidates: *const usize,
    n_candidates: usize,
    device: u32,
    curve: *mut f64,
    best_k: *mut usize,
) -> Status {
    guard(|| {
        let m = clusterer(c)?;
        let x = features(x, n, dim)?;
        if n_candidates == 0 {
            return Err(crate::invalid_arg!("`n_candidates` is 0"));
        }
        let cands = arg_slice(candidates, n_candidates, "candidates")?;
        let curve = arg_slice_mut(curve, n_candidates, "curve")?;
        let best = arg_mut(best_k, "best_k")?;
        let dev = Device::open_default(device_kind(device)?)?;
        let r = m.select_k(x, n, cands, &dev, &mut NoProgress)?;
        curve.copy_from_slice(&r.coding_length);
        *best = r.best_k;
        Ok(())
    })
}

/// Re-derives the clusters of `c` for `k` clusters from features `x` (n×dim; a sample of them is clustered
/// spectrally), without retraining the head: e.g. with the `best_k` of `rateclust_select_k`.
#[no_mangle]
pub extern "C" fn rateclust_clusterer_set_k(c: *mut rateclust_clusterer, x: *const f32, n: usize, dim: usize, k: usize, device: u32) -> Status {
    guard(|| {
        let m = &mut arg_mut(c, "clusterer")?.inner;
        let x = features(x, n, dim)?;
        let dev = Device::open_default(device_kind(device)?)?;
        m.set_k(x, n, k, &dev, &mut NoProgress)
    })
}

/// Scores a labelling `pred` against ground truth `truth` (n int64 each, any label values): clustering
/// accuracy (Hungarian matching), normalised mutual information, adjusted Rand index. Any output may be NULL.
#[no_mangle]
pub extern "C" fn rateclust_metrics(pred: *const i64, truth: *const i64, n: usize, acc: *mut f64, nmi: *mut f64, ari: *mut f64) -> Status {
    guard(|| {
        if n == 0 {
            return Err(crate::invalid_arg!("`n` is 0: no labels to score"));
        }
        let s = metrics::scores(arg_slice(pred, n, "pred")?, arg_slice(truth, n, "truth")?)?;
        for (p, v) in [(acc, s.acc), (nmi, s.nmi), (ari, s.ari)] {
            write_opt(p, v);
        }
        Ok(())
    })
}

/// Saves a clusterer to `path` (safetensors; written to a temporary file, then renamed).
#[no_mangle]
pub extern "C" fn rateclust_clusterer_save(c: *const rateclust_clusterer, path: *const c_char) -> Status {
    guard(|| clusterer(c)?.save(Path::new(arg_str(path, "path")?)))
}

/// Loads a clusterer saved by `rateclust_clusterer_save` into a new handle `*out` (free with
/// `rateclust_clusterer_free`). A file of another format version or a corrupted file gives
/// RATECLUST_STATUS_FORMAT; a missing file RATECLUST_STATUS_IO.
#[no_mangle]
pub extern "C" fn rateclust_clusterer_load(path: *const c_char, out: *mut *mut rateclust_clusterer) -> Status {
    guard(|| {
        let out = arg_mut(out, "out")?;
        *out = std::ptr::null_mut();
        let m = Clusterer::load(Path::new(arg_str(path, "path")?))?;
        *out = new_handle(rateclust_clusterer { inner: m });
        Ok(())
    })
}

