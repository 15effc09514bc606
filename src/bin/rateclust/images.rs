//! Images to CLIP features for the subcommands that read image files (`embed`, `cluster`): files that do not
//! decode are listed with the reason and left out, never fatal.

use rateclust::image_io::{decode_file, RgbImage8};
use rateclust::clip::{ClipModel, EmbedOptions};
use rateclust::progress::{NoProgress, Progress};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// (features n×dim, the n files embedded in row order, the files skipped with the reason).
pub type Embedded = (Vec<f32>, Vec<PathBuf>, Vec<(PathBuf, String)>);

/// CLIP embeddings of the files (`root`.join(file)) that decode, a batch at a time (memory bounded by one batch of decoded
/// images), with the list of those that do not and why.
pub fn embed_skipping(clip: &ClipModel, root: &Path, files: &[PathBuf], opts: &EmbedOptions, progress: &mut dyn Progress) -> rateclust::Result<Embedded> {
    let (mut x, mut kept, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    let batch = opts.batch_size.max(1);
    let n = files.len() as u64;
    rateclust::progress::report(progress, "embed", 0, n)?;
    for chunk in files.chunks(batch) {
        let decoded: Vec<rateclust::Result<RgbImage8>> = chunk.par_iter().map(|f| decode_file(&root.join(f))).collect();
        let mut images = Vec::with_capacity(chunk.len());
        for (f, d) in chunk.iter().zip(decoded) {
            match d {
                Ok(img) => {
                    images.push(img);
                    kept.push(f.clone());
                }
                Err(e) => skipped.push((f.clone(), e.to_string())),
            }
        }
        if !images.is_empty() {
            x.extend(clip.embed_images(&images, opts, &mut NoProgress)?);
        }
        rateclust::progress::report(progress, "embed", (kept.len() + skipped.len()) as u64, n)?;
    }
    Ok((x, kept, skipped))
}

/// Writes `files` to `path`, one per line in row order (the `files.txt` beside features).
pub fn write_file_list(path: &Path, files: &[PathBuf]) -> rateclust::Result<()> {
    let list: String = files.iter().map(|f| format!("{}\n", f.display())).collect();
    rateclust::io::write_atomically(path, list.as_bytes())
}

/// The list written by [`write_file_list`]; `None` if it cannot be read.
pub fn read_file_list(path: &Path) -> Option<Vec<PathBuf>> {
    Some(std::fs::read_to_string(path).ok()?.lines().map(PathBuf::from).collect())
}

/// Writes the skipped files to `path`, `path<TAB>reason` per line (tabs and line breaks in the reason
/// become spaces, so each entry stays one line).
pub fn write_skipped(path: &Path, skipped: &[(PathBuf, String)]) -> rateclust::Result<()> {
    let bad: String = skipped.iter().map(|(f, e)| format!("{}\t{}\n", f.display(), e.replace(['\n', '\t'], " "))).collect();
    rateclust::io::write_atomically(path, bad.as_bytes())
}

/// The list written by [`write_skipped`]; `None` if it cannot be read.
pub fn read_skipped(path: &Path) -> Option<Vec<(PathBuf, String)>> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(text.lines().filter_map(|l| l.split_once('\t').map(|(p, e)| (PathBuf::from(p), e.to_string()))).collect())
}
