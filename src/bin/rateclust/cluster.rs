//! `rateclust cluster`: the whole job in one command — a folder of images in; named clusters, a CSV, a JSON
//! summary, the fitted clusterer and a self-contained HTML report out.
//!
//! Stages: list the images (recursive, sorted) → decode and embed with CLIP, skipping and listing files that
//! do not decode (cached in OUT_DIR with the file list and a fingerprint of the CLIP model and the files, so a
//! re-run reuses them) → fit the clusterer (`--k K` or `--k auto`) → label every image → name the clusters
//! with CLIP text (self-labeling) → write the outputs (each through a temporary file and a rename).

use crate::common::*;
use crate::images::{embed_skipping, read_file_list, read_skipped, write_file_list, write_skipped, Embedded};
use rateclust::io::write_atomically;
use rateclust::report::{write_report, ClusterSummary, Report};
use rateclust::clip::{ClipModel, EmbedOptions};
use rateclust::cluster::clusterer::Clusterer;
use rateclust::cluster::params::FitParams;
use rateclust::label::{default_vocabulary, distinct_names, label_clusters, prompts, LabelParams};
use rateclust::progress::{NoProgress, Progress};
use rateclust::{Device, DeviceKind, Error};
use std::path::{Path, PathBuf};

/// The whole job: embed a folder of images with CLIP, fit, label and name the clusters, write a report
///
/// Clusters every .jpg/.jpeg/.png/.webp under IMAGES_DIR (recursive) and names the clusters. Files that cannot
/// be decoded are listed in skipped.txt and left out; they never stop the run. The features are cached in
/// OUT_DIR, so a re-run with the same CLIP model and files skips the embedding.
#[derive(clap::Args)]
#[command(args_override_self = true, allow_negative_numbers = true)]
pub struct Args {
    /// Folder of images, searched recursively (.jpg, .jpeg, .png, .webp)
    #[arg(value_name = "IMAGES_DIR")]
    images: PathBuf,
    /// Hugging Face CLIP directory (config.json, model.safetensors, vocab.json, merges.txt), or a Hub id
    /// (openai/clip-vit-base-patch32) downloaded once into the HF cache
    #[arg(long, value_name = "DIR|ID")]
    model: PathBuf,
    /// Output folder, created if missing; receives assignments.csv, clusters.json, report.html,
    /// clusterer.safetensors (the fitted clusterer, for assign --clusterer), features.npy + files.txt (the cache),
    /// skipped.txt
    #[arg(long, value_name = "OUT_DIR")]
    out: PathBuf,
    /// Number of clusters, or auto: chosen by coding length among 2..=k-max
    #[arg(short, long, value_name = "K|auto", default_value = "auto", value_parser = parse_k_or_auto)]
    k: usize,
    /// Largest k tried by --k auto: min(20, sqrt(n)) [default: automatic, see README 'Defaults']
    #[arg(long, value_name = "N")]
    k_max: Option<usize>,
    /// Candidate cluster names, one per line [default: the ImageNet-1k class names]
    #[arg(long, value_name = "FILE")]
    vocab: Option<PathBuf>,
    /// Caption template; {} stands for a name
    #[arg(long, value_name = "T", default_value = "a photo of a {}.", allow_hyphen_values = true)]
    template: String,
    /// Fit seed
    #[arg(long, value_name = "N", default_value_t = FitParams::default().seed)]
    seed: u64,
    /// Images per CLIP forward pass
    #[arg(long, value_name = "N", default_value_t = EmbedOptions::default().batch_size, value_parser = parse_positive)]
    batch: usize,
    /// Where to compute: auto (the GPU when usable, else the CPU), cpu, cuda or cuda:N (GPU N)
    #[arg(long, value_name = "auto|cpu|cuda[:N]", default_value = "auto", value_parser = parse_device)]
    device: DeviceKind,
    /// No progress bars or log lines (errors are still printed)
    #[arg(long)]
    quiet: bool,
}

/// Most central images shown per cluster (report) and listed (clusters.json).
const CENTRAL: usize = 12;

/// Runs `rateclust cluster`.
pub fn run(args: Args) -> CliResult {
    let Args { images, model, out, k, k_max, vocab, template, seed, batch, device, quiet } = args;
    let k_max = k_max.unwrap_or(0);
    let opts = EmbedOptions { batch_size: batch, ..EmbedOptions::default() };
    // Everything that can be checked before hours of embedding is checked first.
    if out.exists() && !out.is_dir() {
        return Err(usage(format!("--out {} exists and is not a directory", out.display())));
    }
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    let probe = out.join(format!(".rateclust-write-test{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| Error::io(&out, e))?;
    let _ = std::fs::remove_file(&probe);
    let vocab_text = match &vocab {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
            Some(String::from_utf8(bytes).map_err(|e| usage(format!("--vocab {}: not UTF-8 text ({e})", path.display())))?)
        }
        None => None,
    };
    let names: Vec<&str> = match &vocab_text {
        Some(text) => text.lines().map(str::trim).filter(|l| !l.is_empty()).collect(),
        None => default_vocabulary(),
    };
    if names.is_empty() {
        return Err(usage("the vocabulary is empty"));
    }
    let log = |msg: String| {
        if !quiet {
            eprintln!("{msg}");
        }
    };
    let mut bar_or_none: Box<dyn Progress> = if quiet { Box::new(NoProgress) } else { Box::new(Bar::new()) };

    let paths = list_images(&images)?;
    log(format!("found {} images under {}", paths.len(), images.display()));
    if k > paths.len() {
        return Err(usage(format!("--k {k} is more than the {} images found", paths.len())));
    }
    let model_dir = clip_dir(model, quiet)?;
    let clip = ClipModel::load_on(&model_dir, device)?;
    let fingerprint = fingerprint(&model_dir, &images, &paths)?;
    let (x, kept, skipped) = match read_cache(&out, &fingerprint) {
        Some(c) => {
            log(format!("reusing the cached features in {} ({} images)", out.display(), c.1.len()));
            c
        }
        None => {
            let (x, kept, skipped) = embed_skipping(&clip, &images, &paths, &opts, bar_or_none.as_mut())?;
            write_cache(&out, &fingerprint, &x, &kept, &skipped, clip.output_dim(true, &opts))?;
            (x, kept, skipped)
        }
    };
    if !skipped.is_empty() {
        log(format!("skipped {} files that could not be decoded (listed in skipped.txt)", skipped.len()));
    }
    let n = kept.len();
    let dim = x.len().checked_div(n).unwrap_or(0);
    if n < 2.max(k) {
        return Err(rateclust::invalid_arg!("{n} of the {} images decode; clustering into k = {} needs at least {}", paths.len(), k.max(2), 2.max(k)).into());
    }

    let params = FitParams { k, k_max, seed, ..FitParams::default() };
    let dev = Device::open_default(device)?;
    log(format!("fitting {n} × {dim} features (k = {})", if k == 0 { "auto".to_string() } else { k.to_string() }));
    let t0 = std::time::Instant::now();
    let clusterer = Clusterer::fit(&x, n, dim, &params, &dev, bar_or_none.as_mut())?;
    log(format!("fitted k = {} in {:.1} s", clusterer.k(), t0.elapsed().as_secs_f64()));
    let assignment = clusterer.assign(&x, n, bar_or_none.as_mut())?;
    let labels: Vec<usize> = assignment.labels.iter().map(|&l| l as usize).collect();
    let k = clusterer.k();

    let captions = prompts(&names, &template)?;
    let caption_refs: Vec<&str> = captions.iter().map(String::as_str).collect();
    let text = clip.embed_texts(&caption_refs, &EmbedOptions::default(), bar_or_none.as_mut())?;
    let named = label_clusters(&x, n, dim, &labels, k, &text, captions.len(), &LabelParams::default())?;
    drop(bar_or_none);

    let central = central_members(&x, n, dim, &labels, k, CENTRAL);
    // Two clusters may win the same caption; people see distinct names (label::distinct).
    let shown = distinct_names(&named, &names);
    let clusters: Vec<ClusterSummary> = (0..k)
        .map(|j| ClusterSummary {
            name: shown[j].clone(),
            score: named[j].score,
            size: named[j].members,
            runners_up: named[j].runners_up.iter().map(|&(c, s)| (names[c].to_string(), s)).collect(),
            central: central[j].clone(),
        })
        .collect();
    let report = Report {
        images_dir: images.display().to_string(),
        model_dir: model_dir.display().to_string(),
        files: kept,
        labels,
        confidence: assignment.confidence,
        clusters,
        skipped,
        k_curve: clusterer.k_curve.as_ref().map(|c| c.candidates.iter().copied().zip(c.coding_length.iter().copied()).collect()),
    };
    save_clusterer(&clusterer, &out)?;
    write_report(&report, &out)?;
    for (j, c) in report.clusters.iter().enumerate() {
        log(format!("cluster {j}: {} ({} images, score {:.2})", c.name.as_deref().unwrap_or("(empty)"), c.size, c.score));
    }
    log(format!("wrote assignments.csv, clusters.json, report.html and clusterer.safetensors to {}", out.display()));
    Ok(())
}

/// Every image file under `dir` (recursive, not following directory links), as paths relative to `dir`,
/// sorted.
fn list_images(dir: &Path) -> CliResult<Vec<PathBuf>> {
    fn walk(root: &Path, rel: &Path, depth: usize, out: &mut Vec<PathBuf>) -> rateclust::Result<()> {
        if depth > 64 {
            return Ok(());
        }
        let here = root.join(rel);
        for entry in std::fs::read_dir(&here).map_err(|e| Error::io(&here, e))? {
            let entry = entry.map_err(|e| Error::io(&here, e))?;
            let kind = entry.file_type().map_err(|e| Error::io(entry.path(), e))?;
            let rel = rel.join(entry.file_name());
            if kind.is_dir() {
                walk(root, &rel, depth + 1, out)?;
            } else if is_image_name(&rel) && !rel.to_string_lossy().contains(['\n', '\r']) {
                out.push(rel);
            }
        }
        Ok(())
    }
    let meta = std::fs::metadata(dir).map_err(|e| Error::io(dir, e))?;
    if !meta.is_dir() {
        return Err(usage(format!("{} is not a directory", dir.display())));
    }
    let mut out = Vec::new();
    walk(dir, Path::new(""), 0, &mut out)?;
    out.sort();
    if out.is_empty() {
        return Err(rateclust::invalid_arg!("{}: no images found (.jpg, .jpeg, .png, .webp)", dir.display()).into());
    }
    Ok(out)
}

fn is_image_name(p: &Path) -> bool {
    let ext = p.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase());
    matches!(ext.as_deref(), Some("jpg" | "jpeg" | "png" | "webp"))
}

/// FNV-1a over the model's config and weight file sizes and times, and every image's path, size and
/// modification time: a changed model or file set gives a different fingerprint.
fn fingerprint(model_dir: &Path, root: &Path, files: &[PathBuf]) -> CliResult<String> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    };
    let stamp = |p: &Path| -> (u64, u128) {
        std::fs::metadata(p)
            .map(|m| (m.len(), m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos())))
            .unwrap_or((0, 0))
    };
    for name in ["config.json", "model.safetensors", "preprocessor_config.json"] {
        let (len, t) = stamp(&model_dir.join(name));
        eat(name.as_bytes());
        eat(&len.to_le_bytes());
        eat(&t.to_le_bytes());
    }
    for f in files {
        let (len, t) = stamp(&root.join(f));
        eat(f.to_string_lossy().as_bytes());
        eat(&[0]);
        eat(&len.to_le_bytes());
        eat(&t.to_le_bytes());
    }
    Ok(format!("{h:016x}"))
}

/// The cache of an earlier run with the same fingerprint: (features, files, skipped).
fn read_cache(out: &Path, fingerprint: &str) -> Option<Embedded> {
    let stored = std::fs::read_to_string(out.join("features.fingerprint")).ok()?;
    if stored.trim() != fingerprint {
        return None;
    }
    let (x, n, _) = read_features(&out.join("features.npy")).ok()?;
    let files = read_file_list(&out.join("files.txt"))?;
    if files.len() != n {
        return None;
    }
    Some((x, files, read_skipped(&out.join("skipped.txt"))?))
}

fn write_cache(out: &Path, fingerprint: &str, x: &[f32], files: &[PathBuf], skipped: &[(PathBuf, String)], dim: usize) -> CliResult {
    rateclust::io::npy::write_npy_f32(&out.join("features.npy"), x, &[files.len(), dim])?;
    write_file_list(&out.join("files.txt"), files)?;
    write_skipped(&out.join("skipped.txt"), skipped)?;
    // Written last: a cache whose fingerprint is present is complete.
    Ok(write_atomically(&out.join("features.fingerprint"), format!("{fingerprint}\n").as_bytes())?)
}

/// Per cluster, up to `top` member rows closest (cosine) to the cluster's mean embedding, closest first.
fn central_members(x: &[f32], n: usize, dim: usize, labels: &[usize], k: usize, top: usize) -> Vec<Vec<usize>> {
    let unit = rateclust::cluster::clusterer::l2_normalize_rows(x, dim);
    let mut mean = vec![0.0f64; k * dim];
    for (i, &l) in labels.iter().enumerate().take(n) {
        mean[l * dim..(l + 1) * dim].iter_mut().zip(&unit[i * dim..(i + 1) * dim]).for_each(|(m, &v)| *m += v as f64);
    }
    let mut members: Vec<Vec<(f64, usize)>> = vec![Vec::new(); k];
    for (i, &l) in labels.iter().enumerate().take(n) {
        let cos: f64 = mean[l * dim..(l + 1) * dim].iter().zip(&unit[i * dim..(i + 1) * dim]).map(|(m, &v)| m * v as f64).sum();
        members[l].push((cos, i));
    }
    members
        .into_iter()
        .map(|mut v| {
            v.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            v.into_iter().take(top).map(|(_, i)| i).collect()
        })
        .collect()
}

/// Saves the clusterer as `OUT/clusterer.safetensors`, and links the name earlier releases used,
/// `model.safetensors`, to it (deprecated: "model" means the CLIP model everywhere else; the link goes in a
/// later release). A file system without hard links gets no second name, and says so.
fn save_clusterer(clusterer: &Clusterer, out: &Path) -> CliResult<()> {
    let path = out.join("clusterer.safetensors");
    clusterer.save(&path)?;
    let old = out.join("model.safetensors");
    let _ = std::fs::remove_file(&old);
    if let Err(e) = std::fs::hard_link(&path, &old) {
        eprintln!("note: could not link the deprecated name {} to {} ({e})", old.display(), path.display());
    }
    Ok(())
}
