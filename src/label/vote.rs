//! The voting rule of CPP's self-labeling (reference: `label_clusters` in LeslieTrue/CPP): for each member
//! image, p = softmax(scale · cos(image, caption)) over all captions; the `top` largest probabilities are
//! added to the cluster's votes for those captions; the cluster's name is the caption with the most votes.

use crate::cluster::clusterer::l2_normalize_rows;
use crate::error::{check_finite, Result};
use crate::linalg::{gemm, Trans};

/// Parameters of the vote (defaults: CLIP's logit scale 100, top-5 as in CPP).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabelParams {
    /// Multiplies the cosine similarities before the softmax.
    pub logit_scale: f32,
    /// How many of each image's most probable captions receive its probability as a vote.
    pub top: usize,
}

impl Default for LabelParams {
    fn default() -> Self {
        LabelParams { logit_scale: 100.0, top: 5 }
    }
}

/// The name chosen for one cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterName {
    /// Index of the winning caption, `None` for an empty cluster.
    pub caption: Option<usize>,
    /// The winner's votes divided by the number of members (mean probability mass it received), in [0, 1].
    pub score: f32,
    /// Number of member images.
    pub members: usize,
    /// The [`RUNNERS_UP`] captions with the most votes after the winner, most first, with their score
    /// (votes / members): what else the cluster might be called.
    pub runners_up: Vec<(usize, f32)>,
}

/// How many captions after the winner a [`ClusterName`] lists.
pub const RUNNERS_UP: usize = 4;

/// Names each of `k` clusters. `image_emb` is n×dim (one row per image, any scale), `labels[i] < k` is image
/// i's cluster, `text_emb` is n_text×dim (one row per candidate caption).
pub fn label_clusters(
    image_emb: &[f32],
    n: usize,
    dim: usize,
    labels: &[usize],
    k: usize,
    text_emb: &[f32],
    n_text: usize,
    params: &LabelParams,
) -> Result<Vec<ClusterName>> {
    if dim == 0 || n_text == 0 || k == 0 {
        return Err(crate::invalid_arg!("label_clusters: dim ({dim}), captions ({n_text}) and k ({k}) must be > 0"));
    }
    if image_emb.len() != n * dim || labels.len() != n || text_emb.len() != n_text * dim {
        return Err(crate::invalid_arg!(
            "label_clusters: sizes disagree (image_emb {} for {n}×{dim}, labels {} for {n}, text_emb {} for {n_text}×{dim})",
            image_emb.len(),
            labels.len(),
            text_emb.len()
        ));
    }
    if let Some(i) = labels.iter().position(|&l| l >= k) {
        return Err(crate::invalid_arg!("label_clusters: labels[{i}] = {} is not below k = {k}", labels[i]));
    }
    if params.top == 0 || !params.logit_scale.is_finite() {
        return Err(crate::invalid_arg!("label_clusters: top must be ≥ 1 and logit_scale finite"));
    }
    check_finite("image_emb", image_emb)?;
    check_finite("text_emb", text_emb)?;

    let img = l2_normalize_rows(image_emb, dim);
    let txt = l2_normalize_rows(text_emb, dim);
    let top = params.top.min(n_text);
    let mut votes = vec![0f64; k * n_text];
    let mut members = vec![0usize; k];
    // Images in blocks so the n×n_text similarity matrix never has to exist at once.
    const BLOCK: usize = 1024;
    let mut sim = vec![0f32; BLOCK.min(n.max(1)) * n_text];
    let mut order: Vec<usize> = Vec::with_capacity(n_text);
    for start in (0..n).step_by(BLOCK) {
        let rows = BLOCK.min(n - start);
        gemm(rows, n_text, dim, params.logit_scale, &img[start * dim..], dim, Trans::No, &txt, dim, Trans::Yes, 0.0, &mut sim, n_text);
        for r in 0..rows {
            let logits = &sim[r * n_text..(r + 1) * n_text];
            let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let denom: f64 = logits.iter().map(|&l| ((l - max) as f64).exp()).sum();
            order.clear();
            order.extend(0..n_text);
            // Ties broken by the lower caption index, so results do not depend on the sort algorithm.
            order.select_nth_unstable_by(top - 1, |&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
            let cluster = labels[start + r];
            members[cluster] += 1;
            for &c in &order[..top] {
                votes[cluster * n_text + c] += ((logits[c] - max) as f64).exp() / denom;
            }
        }
    }
    Ok((0..k)
        .map(|j| {
            let row = &votes[j * n_text..(j + 1) * n_text];
            if members[j] == 0 {
                return ClusterName { caption: None, score: 0.0, members: 0, runners_up: Vec::new() };
            }
            // Most votes first; ties to the lower caption index (the winner is the first of the order).
            let mut ranked: Vec<usize> = (0..n_text).collect();
            ranked.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
            let score = |c: usize| (row[c] / members[j] as f64) as f32;
            let runners_up = ranked[1..].iter().take(RUNNERS_UP).filter(|&&c| row[c] > 0.0).map(|&c| (c, score(c))).collect();
            ClusterName { caption: Some(ranked[0]), score: score(ranked[0]), members: members[j], runners_up }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Images of cluster j are noisy copies of caption (2j+1)'s embedding: every cluster must be named by it.
    #[test]
    fn clusters_are_named_by_the_caption_their_members_match() {
        let (dim, n_text, k, per) = (16, 9, 4, 30);
        let mut rng = Rng::new(7);
        let text: Vec<f32> = (0..n_text * dim).map(|_| rng.normal() as f32).collect();
        let mut img = Vec::new();
        let mut labels = Vec::new();
        for j in 0..k {
            for _ in 0..per {
                let t = &text[(2 * j + 1) * dim..(2 * j + 2) * dim];
                img.extend(t.iter().map(|&v| v + 0.3 * rng.normal() as f32));
                labels.push(j);
            }
        }
        let names = label_clusters(&img, k * per, dim, &labels, k + 1, &text, n_text, &LabelParams::default()).unwrap();
        for j in 0..k {
            assert_eq!(names[j].caption, Some(2 * j + 1));
            assert_eq!(names[j].members, per);
            assert!(names[j].score > 0.5 && names[j].score <= 1.0 + 1e-6);
        }
        assert_eq!(names[k].caption, None);
    }

    #[test]
    fn rejects_bad_labels_and_sizes() {
        let e = label_clusters(&[1.0; 4], 2, 2, &[0, 3], 2, &[1.0; 2], 1, &LabelParams::default()).unwrap_err();
        assert!(e.to_string().contains("labels[1]"), "{e}");
        assert!(label_clusters(&[1.0; 3], 2, 2, &[0, 0], 1, &[1.0; 2], 1, &LabelParams::default()).is_err());
        assert!(label_clusters(&[f32::NAN; 4], 2, 2, &[0, 0], 1, &[1.0; 2], 1, &LabelParams::default()).is_err());
    }
}
