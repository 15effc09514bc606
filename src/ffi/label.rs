//! C API for self-labeling: name clusters from image and caption embeddings.

use super::{arg_ref, arg_slice, arg_slice_mut, checked_len, guard, write_c_string};
use super::enums::Status;
use crate::label::{self, LabelParams};
use rateclust_macros::CMirror;
use std::ffi::c_char;

/// Parameters of the cluster-naming vote. Get defaults from `rateclust_label_default_params()`.
#[repr(C)]
#[derive(Debug, Clone, Copy, CMirror)]
#[mirror(LabelParams)]
pub struct rateclust_label_params {
    /// Multiplies cosine similarities before the softmax (CLIP: 100).
    pub logit_scale: f32,
    /// Each image votes for its `top` most probable captions (CPP: 5).
    pub top: u32,
}

/// The default vote parameters (logit scale 100, top 5).
#[no_mangle]
pub extern "C" fn rateclust_label_default_params() -> rateclust_label_params {
    (&LabelParams::default()).into()
}

/// Names `k` clusters. `image_emb`: n×dim floats; `labels`: n cluster ids in [0, k); `text_emb`: n_text×dim
/// floats, one row per candidate caption. Writes for each cluster the index of the winning caption into
/// `out_caption[k]` (-1 for an empty cluster) and its mean vote share into `out_score[k]` (may be NULL).
/// All buffers are the caller's. `params` may be NULL for the defaults.
#[no_mangle]
pub extern "C" fn rateclust_label_clusters(
    image_emb: *const f32,
    n: usize,
    dim: usize,
    labels: *const i64,
    k: usize,
    text_emb: *const f32,
    n_text: usize,
    params: *const rateclust_label_params,
    out_caption: *mut i64,
    out_score: *mut f32,
) -> Status {
    guard(|| {
        let p = if params.is_null() { rateclust_label_default_params() } else { *arg_ref(params, "params")? };
        let image = arg_slice(image_emb, checked_len(n, dim, "n × dim")?, "image_emb")?;
        let text = arg_slice(text_emb, checked_len(n_text, dim, "n_text × dim")?, "text_emb")?;
        let raw_labels = arg_slice(labels, n, "labels")?;
        let labels: Vec<usize> = raw_labels
            .iter()
            .enumerate()
            .map(|(i, &l)| usize::try_from(l).map_err(|_| crate::invalid_arg!("labels[{i}] = {l} is negative")))
            .collect::<crate::Result<_>>()?;
        let out_caption = arg_slice_mut(out_caption, k, "out_caption")?;
        let params = LabelParams::try_from(&p)?;
        let names = label::label_clusters(image, n, dim, &labels, k, text, n_text, &params)?;
        for (o, name) in out_caption.iter_mut().zip(&names) {
            *o = name.caption.map_or(-1, |c| c as i64);
        }
        if !out_score.is_null() {
            let out_score = arg_slice_mut(out_score, k, "out_score")?;
            for (o, name) in out_score.iter_mut().zip(&names) {
                *o = name.score;
            }
        }
        Ok(())
    })
}

/// Number of names in the default candidate vocabulary (ImageNet-1k class names, deduplicated).
#[no_mangle]
pub extern "C" fn rateclust_default_vocabulary_size() -> usize {
    std::panic::catch_unwind(|| label::default_vocabulary().len()).unwrap_or(0)
}

/// Copies default vocabulary name `index` into `buf` (capacity `cap`, NUL-terminated, truncated if too
/// small; `*needed`, if not NULL, receives the full size including the NUL).
#[no_mangle]
pub extern "C" fn rateclust_default_vocabulary_name(index: usize, buf: *mut c_char, cap: usize, needed: *mut usize) -> Status {
    guard(|| {
        let vocab = label::default_vocabulary();
        let name = vocab
            .get(index)
            .ok_or_else(|| crate::invalid_arg!("vocabulary index {index} out of range (size {})", vocab.len()))?;
        write_c_string(name, buf, cap, needed)
    })
}
