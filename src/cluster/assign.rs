//! Out-of-sample assignment (docs/design.md §2): after spectral clustering of Π on a sample, every point — seen in
//! training or not — gets a label from per-cluster summaries of the sample, in time linear in n
//! (one GEMM of the points' Z against all clusters' bases or prototypes).
//!
//! Rules (measured on the dev set by examples/eval_dev.rs):
//! - subspace: MCR² drives clusters towards near-orthogonal subspaces, so each cluster keeps the top
//!   `r` right singular vectors of its Z rows (eigenvectors of Z_jᵀZ_j); a point goes to the cluster with
//!   the largest squared projection norm ‖U_jᵀ z‖²;
//! - prototype-z / prototype-c: the normalised mean of the cluster's Z (or C) rows; largest cosine wins.
//!
//! Confidence is the margin between the best and the second-best score (squared projection norms of the
//! unit-norm z, in [0, 1], or cosines, in [0, 2]): near 0 for points between clusters.

use super::input_space::InputSpace;
use super::neighbors;
use super::params::AssignRule;
use crate::error::{Error, Result};
use crate::linalg::eigh::eigh;
use crate::linalg::{gemm, Trans};
use crate::scratch::grow;
use rayon::prelude::*;

/// Per-cluster summaries of the spectral sample.
#[derive(Debug, Clone, PartialEq)]
pub struct AssignModel {
    pub k: usize,
    pub zdim: usize,
    /// Rank r of each cluster's subspace.
    pub rank: usize,
    /// (k·r)×d: cluster j's orthonormal basis vectors are rows j·r .. (j+1)·r.
    pub bases: Vec<f32>,
    /// k×d unit-norm means of Z and of C per cluster.
    pub prototypes_z: Vec<f32>,
    pub prototypes_c: Vec<f32>,
    /// For the input-space rules (`PrototypeInput`, `NeighborsInput`): the input space, the k unit-norm
    /// cluster means there and the labelled reference sample.
    pub input: Option<InputSpaceModel>,
}

/// The fitted partition in the [`InputSpace`]: the clusters' unit means (k×rank, rule `PrototypeInput`)
/// and the fitting sample's projections with their labels (the references of rule `NeighborsInput`,
/// [`super::neighbors`]; empty in version 2 model files).
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpaceModel {
    pub space: InputSpace,
    pub prototypes: Vec<f32>,
    /// m×rank unit rows.
    pub reference: Vec<f32>,
    /// m labels in 0..k.
    pub reference_labels: Vec<u32>,
}

impl InputSpaceModel {
    /// The model of the m×rank projections `p` labelled by `labels` (0..k): they are the references, and
    /// their unit means per cluster the prototypes.
    pub fn build(space: InputSpace, p: &[f32], m: usize, labels: &[usize], k: usize) -> Result<Self> {
        if p.len() != m * space.rank || labels.len() != m || labels.iter().any(|&l| l >= k) || m > u32::MAX as usize {
            return Err(crate::invalid_arg!("input-space model: inconsistent sample shapes or labels"));
        }
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); k];
        for (i, &l) in labels.iter().enumerate() {
            members[l].push(i);
        }
        let prototypes = members.iter().flat_map(|rows| unit_mean(p, rows, space.rank)).collect();
        Ok(InputSpaceModel { space, prototypes, reference: p.to_vec(), reference_labels: labels.iter().map(|&l| l as u32).collect() })
    }

    /// Number of reference points.
    pub fn references(&self) -> usize {
        self.reference_labels.len()
    }
}

/// The automatic subspace rank for k clusters in d dimensions: min(d / k, 16), at least 1.
pub fn auto_rank(k: usize, d: usize) -> usize {
    (d / k.max(1)).clamp(1, 16)
}

impl AssignModel {
    /// Builds the summaries from the sample's Z and C (m×d, unit rows) and labels in 0..k. `c` may be
    /// empty (single-head models), then the C prototypes equal the Z prototypes. A cluster with no member
    /// gets a zero basis and prototype (it then wins no point).
    pub fn build(z: &[f32], c: &[f32], m: usize, d: usize, labels: &[usize], k: usize, rank: usize) -> Result<Self> {
        if z.len() != m * d || labels.len() != m || (!c.is_empty() && c.len() != m * d) {
            return Err(crate::invalid_arg!("assignment model: inconsistent sample shapes"));
        }
        if let Some(&bad) = labels.iter().find(|&&l| l >= k) {
            return Err(crate::invalid_arg!("assignment model: label {bad} out of range for k = {k}"));
        }
        let rank = if rank == 0 { auto_rank(k, d) } else { rank.min(d) };
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); k];
        for (i, &l) in labels.iter().enumerate() {
            members[l].push(i);
        }
        let per_cluster: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = members
            .par_iter()
            .map(|rows| -> Result<_> {
                let mut basis = vec![0.0f32; rank * d];
                if rows.is_empty() {
                    return Ok((basis, vec![0.0; d], vec![0.0; d]));
                }
                let zj: Vec<f64> = rows.iter().flat_map(|&r| z[r * d..(r + 1) * d].iter().map(|&v| v as f64)).collect();
                let mut gram = vec![0.0f64; d * d];
                gemm(d, d, rows.len(), 1.0, &zj, d, Trans::Yes, &zj, d, Trans::No, 0.0, &mut gram, d);
                let (_vals, vecs) = eigh(&gram, d)?;
                // Eigenvalues ascend: the top `rank` eigenvectors are the last columns.
                for q in 0..rank {
                    let col = d - 1 - q;
                    for t in 0..d {
                        basis[q * d + t] = vecs[t * d + col] as f32;
                    }
                }
                let pz = unit_mean(z, rows, d);
                let pc = if c.is_empty() { pz.clone() } else { unit_mean(c, rows, d) };
                Ok((basis, pz, pc))
            })
            .collect::<Result<_>>()?;
        let mut out = AssignModel { k, zdim: d, rank, bases: Vec::new(), prototypes_z: Vec::new(), prototypes_c: Vec::new(), input: None };
        for (b, pz, pc) in per_cluster {
            out.bases.extend(b);
            out.prototypes_z.extend(pz);
            out.prototypes_c.extend(pc);
        }
        Ok(out)
    }

    /// Checks that the stored tensors have the sizes k, d and rank say (after loading a file).
    pub fn check(&self) -> Result<()> {
        let (k, d, r) = (self.k, self.zdim, self.rank);
        if self.bases.len() != k * r * d || self.prototypes_z.len() != k * d || self.prototypes_c.len() != k * d {
            return Err(Error::Format(format!("assignment tensors do not match k = {k}, d = {d}, rank = {r}")));
        }
        if let Some(ip) = &self.input {
            ip.space.check()?;
            if ip.prototypes.len() != k * ip.space.rank {
                return Err(Error::Format(format!("input prototypes do not match k = {k}, rank = {}", ip.space.rank)));
            }
            if ip.reference.len() != ip.references() * ip.space.rank || ip.reference_labels.iter().any(|&l| l as usize >= k) {
                return Err(Error::Format(format!("input-space references do not match k = {k}, rank = {}", ip.space.rank)));
            }
        }
        Ok(())
    }

    /// Labels and confidences of n points given their projections into the input space (n×rank), for
    /// `AssignRule::PrototypeInput`.
    pub fn assign_input(&self, p: &[f32], n: usize, labels: &mut [i64], confidence: &mut [f32], ws: &mut AssignScratch) -> Result<()> {
        let ip = self.input.as_ref().ok_or_else(|| crate::invalid_arg!("this clusterer has no input-space prototypes (rule prototype-x)"))?;
        best_of_rows(p, n, ip.space.rank, &ip.prototypes, self.k, None, labels, confidence, ws)
    }

    /// Scores of n points given their projections into the input space (n×rank) into `out` (n×k): for
    /// `NeighborsInput` the fraction of the nearest [`neighbors::NEIGHBORS`] reference points in each
    /// cluster (rows sum to 1: a soft membership), for `PrototypeInput` the cosine with each prototype.
    pub fn scores_input(&self, rule: AssignRule, p: &[f32], n: usize, out: &mut [f32]) -> Result<()> {
        let ip = self.input.as_ref().ok_or_else(|| crate::invalid_arg!("this clusterer has no input-space model (rule {})", rule.name()))?;
        if rule != AssignRule::NeighborsInput {
            return score_rows(p, n, ip.space.rank, &ip.prototypes, self.k, None, out, &mut Vec::new());
        }
        if out.len() != n * self.k {
            return Err(crate::invalid_arg!("assign: expected {n}×{} score slots", self.k));
        }
        let mut ws = AssignScratch::default();
        let (nbrs, kn) = self.neighbor_lists(p, n, &mut ws)?;
        nbrs.par_chunks(kn).zip(out.par_chunks_mut(self.k)).for_each(|(list, row)| {
            row.iter_mut().for_each(|v| *v = 0.0);
            // Whole counts first (exact in f32), then one division: ten additions of 0.1 overshoot 1.
            for &j in list {
                row[ip.reference_labels[j as usize] as usize] += 1.0;
            }
            row.iter_mut().for_each(|v| *v /= kn as f32);
        });
        Ok(())
    }

    /// The nearest reference points of n projected points: n lists of `kn` indices, and kn.
    fn neighbor_lists<'a>(&self, p: &[f32], n: usize, ws: &'a mut AssignScratch) -> Result<(&'a [u32], usize)> {
        let ip = self.input.as_ref().ok_or_else(|| crate::invalid_arg!("this clusterer has no input-space references (rule neighbors-x)"))?;
        let m = ip.references();
        if m == 0 {
            return Err(crate::invalid_arg!("this model stores no reference points (a version 2 file); use rule prototype-x"));
        }
        let kn = neighbors::NEIGHBORS.min(m);
        neighbors::nearest_into(p, n, &ip.reference, m, ip.space.rank, kn, &mut ws.scores, &mut ws.neighbors)?;
        Ok((&ws.neighbors[..n * kn], kn))
    }

    /// Labels and confidences (the vote's margin) of n points given their projections into the input
    /// space (n×rank), for `AssignRule::NeighborsInput`: the majority among the nearest
    /// [`neighbors::NEIGHBORS`] reference points. `ws` holds the search's buffers.
    pub fn assign_neighbors(&self, p: &[f32], n: usize, labels: &mut [i64], confidence: &mut [f32], ws: &mut AssignScratch) -> Result<()> {
        if labels.len() != n || confidence.len() != n {
            return Err(crate::invalid_arg!("assign: expected {n} output slots"));
        }
        let (nbrs, kn) = self.neighbor_lists(p, n, ws)?;
        let ip = self.input.as_ref().expect("neighbor_lists checked the input-space model");
        nbrs.par_chunks(kn).zip(labels.par_iter_mut()).zip(confidence.par_iter_mut()).for_each(|((list, l), c)| {
            let (label, margin) = neighbors::vote(list.iter().map(|&j| ip.reference_labels[j as usize] as usize));
            *l = label as i64;
            *c = margin;
        });
        Ok(())
    }

    /// Labels and confidences of n points given their Z (and C for `PrototypeC`; otherwise `c` is ignored),
    /// written into `labels` and `confidence` (n each).
    pub fn assign(&self, rule: AssignRule, z: &[f32], c: &[f32], n: usize, labels: &mut [i64], confidence: &mut [f32]) -> Result<()> {
        let (x, protos, rank) = self.head_space_rule(rule, z, c)?;
        best_of_rows(x, n, self.zdim, protos, self.k, rank, labels, confidence, &mut AssignScratch::default())
    }

    /// The per-cluster scores [`Self::assign`] compares, into `out` (n×k).
    pub fn scores(&self, rule: AssignRule, z: &[f32], c: &[f32], n: usize, out: &mut [f32]) -> Result<()> {
        let (x, protos, rank) = self.head_space_rule(rule, z, c)?;
        score_rows(x, n, self.zdim, protos, self.k, rank, out, &mut Vec::new())
    }

    /// What a head-space rule compares: which embedding, against which prototypes or bases, with which rank.
    fn head_space_rule<'a>(&'a self, rule: AssignRule, z: &'a [f32], c: &'a [f32]) -> Result<(&'a [f32], &'a [f32], Option<usize>)> {
        match rule {
            AssignRule::PrototypeC => Ok((c, &self.prototypes_c, None)),
            AssignRule::PrototypeZ => Ok((z, &self.prototypes_z, None)),
            AssignRule::Subspace => Ok((z, &self.bases, Some(self.rank))),
            AssignRule::PrototypeInput | AssignRule::NeighborsInput => {
                Err(crate::invalid_arg!("assign: rule {} labels input projections (assign_input, assign_neighbors)", rule.name()))
            }
        }
    }
}

/// Buffers of one assignment call ([`crate::scratch`]): a [`super::clusterer::Clusterer`] keeps these in a
/// pool, so that labelling one frame after another allocates nothing once they have grown.
#[derive(Default)]
pub struct AssignScratch {
    /// Input rows scaled to unit norm (models fitted with `normalize_input`).
    pub unit: Vec<f32>,
    /// Input rows minus the input space's mean.
    pub centred: Vec<f32>,
    /// Projections into the input space (n×rank).
    pub projections: Vec<f32>,
    /// Scores against the clusters (n×k), or similarities to the reference points (one block of rows).
    scores: Vec<f32>,
    /// Products behind the scores (a block of rows × k·r).
    products: Vec<f32>,
    /// Nearest reference points (n×kn).
    neighbors: Vec<u32>,
    /// Confidences, when the caller wants labels only.
    pub confidence: Vec<f32>,
}

impl crate::scratch::Workspace for AssignScratch {
    fn bytes(&self) -> usize {
        4 * (self.unit.capacity()
            + self.centred.capacity()
            + self.projections.capacity()
            + self.scores.capacity()
            + self.products.capacity()
            + self.neighbors.capacity()
            + self.confidence.capacity())
    }
}

/// The k scores of each of the n rows of `x` (n×d) against `protos`, into `out` (n×k): the cosine with each
/// prototype row (`rank` None), or with `rank` Some(r) the squared projection norm on each block of r basis
/// rows. Computed in blocks of rows, which bound the n×(k·r) product (held in `products`, grown as needed).
#[allow(clippy::too_many_arguments)]
fn score_rows(x: &[f32], n: usize, d: usize, protos: &[f32], k: usize, rank: Option<usize>, out: &mut [f32], products: &mut Vec<f32>) -> Result<()> {
    if x.len() != n * d || out.len() != n * k {
        return Err(crate::invalid_arg!("assign: expected {n}×{d} embeddings and {n}×{k} score slots"));
    }
    let r = rank.unwrap_or(1);
    let cols = k * r;
    const BLOCK: usize = 4096;
    grow(products, BLOCK.min(n) * cols);
    for start in (0..n).step_by(BLOCK) {
        let rows = BLOCK.min(n - start);
        let s = &mut products[..rows * cols];
        gemm(rows, cols, d, 1.0, &x[start * d..(start + rows) * d], d, Trans::No, protos, d, Trans::Yes, 0.0, s, cols);
        s.par_chunks(cols).zip(out[start * k..(start + rows) * k].par_chunks_mut(k)).for_each(|(row, o)| {
            for (j, v) in o.iter_mut().enumerate() {
                *v = if rank.is_some() { row[j * r..(j + 1) * r].iter().map(|p| p * p).sum::<f32>() } else { row[j] };
            }
        });
    }
    Ok(())
}

/// For each of the n rows of `x`, the best of its k scores ([`score_rows`]) as label and its margin over the
/// second best as confidence.
#[allow(clippy::too_many_arguments)]
fn best_of_rows(x: &[f32], n: usize, d: usize, protos: &[f32], k: usize, rank: Option<usize>, labels: &mut [i64], confidence: &mut [f32], ws: &mut AssignScratch) -> Result<()> {
    if labels.len() != n || confidence.len() != n {
        return Err(crate::invalid_arg!("assign: expected {n} output slots"));
    }
    grow(&mut ws.scores, n * k);
    let scores = &mut ws.scores[..n * k];
    score_rows(x, n, d, protos, k, rank, scores, &mut ws.products)?;
    scores.par_chunks(k).zip(labels.par_iter_mut()).zip(confidence.par_iter_mut()).for_each(|((row, l), cf)| {
        let (mut best, mut second, mut arg) = (f32::NEG_INFINITY, f32::NEG_INFINITY, 0usize);
        for (j, &v) in row.iter().enumerate() {
            if v > best {
                second = best;
                best = v;
                arg = j;
            } else if v > second {
                second = v;
            }
        }
        *l = arg as i64;
        *cf = if second.is_finite() { best - second } else { best };
    });
    Ok(())
}

/// The mean of the given rows of `a` (m×d), scaled to unit norm (zero stays zero).
fn unit_mean(a: &[f32], rows: &[usize], d: usize) -> Vec<f32> {
    let mut s = vec![0.0f64; d];
    for &r in rows {
        for t in 0..d {
            s[t] += a[r * d + t] as f64;
        }
    }
    let norm = s.iter().map(|v| v * v).sum::<f64>().sqrt();
    s.iter().map(|&v| if norm > 0.0 { (v / norm) as f32 } else { 0.0 }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Points on three orthogonal planes in R^6 are assigned to their plane by every rule.
    #[test]
    fn recovers_orthogonal_subspaces() {
        let (d, k, per) = (6, 3, 40);
        let mut rng = Rng::new(1);
        let mut z = Vec::new();
        let mut labels = Vec::new();
        for j in 0..k {
            for _ in 0..per {
                let mut v = vec![0.0f32; d];
                // Positive along the first axis, so that the plane's mean direction (its prototype) has a positive
                // cosine with every member; the other planes' prototypes are orthogonal (cosine 0).
                v[2 * j] = (rng.normal().abs() + 1.0) as f32;
                v[2 * j + 1] = rng.normal() as f32;
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                z.extend(v.iter().map(|x| x / n));
                labels.push(j);
            }
        }
        let m = k * per;
        let model = AssignModel::build(&z, &[], m, d, &labels, k, 2).unwrap();
        for rule in [AssignRule::Subspace, AssignRule::PrototypeZ, AssignRule::PrototypeC] {
            let mut out = vec![0i64; m];
            let mut conf = vec![0f32; m];
            model.assign(rule, &z, &z, m, &mut out, &mut conf).unwrap();
            assert!(out.iter().zip(&labels).all(|(&a, &b)| a as usize == b), "{rule:?}");
            assert!(conf.iter().all(|&c| c > 0.0));
        }
    }
}
