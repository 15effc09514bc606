//! `rateclust label`: names clusters with CLIP's text encoder (CPP's self-labeling vote, `rateclust::label`).
//!
//! Inputs are the images' CLIP embeddings (from `rateclust embed`) and their cluster labels (from `rateclust
//! assign`); candidate captions come from a vocabulary file (one name per line) or the default ImageNet-1k
//! vocabulary, never from the data set's own class names.

use crate::common::*;
use rateclust::clip::{ClipModel, EmbedOptions};
use rateclust::label::{default_vocabulary, label_clusters, prompts, LabelParams};
use rateclust::DeviceKind;
use std::path::PathBuf;

/// Name each cluster with CLIP text (CPP's self-labeling vote)
///
/// EMB.npy holds the images' CLIP embeddings (rateclust embed), L.npy their clusters (rateclust assign).
/// Prints one JSON object per cluster on stdout: {"cluster", "name", "caption", "score", "members"}.
#[derive(clap::Args)]
#[command(args_override_self = true, allow_negative_numbers = true)]
pub struct Args {
    /// Hugging Face CLIP directory, or a Hub id (openai/clip-vit-base-patch32) downloaded once into the HF
    /// cache; the model that embedded the images
    #[arg(long, value_name = "DIR|ID")]
    model: PathBuf,
    /// The images' CLIP embeddings, n × d
    #[arg(long, value_name = "EMB.npy")]
    features: PathBuf,
    /// Their clusters, n non-negative integers
    #[arg(long, value_name = "L.npy")]
    labels: PathBuf,
    /// Candidate names, one per line [default: the ImageNet-1k class names]
    #[arg(long, value_name = "FILE")]
    vocab: Option<PathBuf>,
    /// Caption template; {} stands for a name
    #[arg(long, value_name = "T", default_value = "a photo of a {}.", allow_hyphen_values = true)]
    template: String,
    /// How many of each image's most probable captions receive its vote
    #[arg(long, value_name = "N", default_value_t = LabelParams::default().top)]
    top: usize,
    /// Where to compute: auto (the GPU when usable, else the CPU), cpu, cuda or cuda:N (GPU N)
    #[arg(long, value_name = "auto|cpu|cuda[:N]", default_value = "auto", value_parser = parse_device)]
    device: DeviceKind,
    /// No progress bars or download messages (errors are still printed)
    #[arg(long)]
    quiet: bool,
}

/// Runs `rateclust label`.
pub fn run(args: Args) -> CliResult {
    let Args { model, features, labels, vocab, template, top, device, quiet } = args;
    let params = LabelParams { top, ..LabelParams::default() };
    let (emb, n, dim) = read_features(&features)?;
    let raw = read_labels(&labels)?;
    if raw.len() != n {
        return Err(usage(format!("--labels has {} entries but --features has {n} rows", raw.len())));
    }
    let labels: Vec<usize> = raw
        .iter()
        .enumerate()
        .map(|(i, &l)| usize::try_from(l).map_err(|_| usage(format!("label {i} is negative ({l})"))))
        .collect::<CliResult<_>>()?;
    let k = labels.iter().max().map_or(0, |&m| m + 1);

    let owned_vocab;
    let names: Vec<&str> = match &vocab {
        Some(path) => {
            owned_vocab = std::fs::read_to_string(path).map_err(|e| rateclust::Error::io(path, e))?;
            owned_vocab.lines().map(str::trim).filter(|l| !l.is_empty()).collect()
        }
        None => default_vocabulary(),
    };
    if names.is_empty() {
        return Err(usage("the vocabulary is empty"));
    }
    let captions = prompts(&names, &template)?;
    let caption_refs: Vec<&str> = captions.iter().map(String::as_str).collect();

    let clip = ClipModel::load_on(clip_dir(model, quiet)?, device)?;
    let text = clip.embed_texts(&caption_refs, &EmbedOptions::default(), progress(quiet).as_mut())?;
    if text.len() != captions.len() * dim {
        return Err(usage(format!(
            "the CLIP model's text embeddings have {} dimensions but --features has {dim}",
            text.len() / captions.len()
        )));
    }
    let named = label_clusters(&emb, n, dim, &labels, k, &text, captions.len(), &params)?;
    for (j, c) in named.iter().enumerate() {
        let (name, caption) = match c.caption {
            Some(i) => (format!("\"{}\"", json_escape(names[i])), format!("\"{}\"", json_escape(&captions[i]))),
            None => ("null".into(), "null".into()),
        };
        println!(
            "{{\"cluster\": {j}, \"name\": {name}, \"caption\": {caption}, \"score\": {:.4}, \"members\": {}}}",
            c.score, c.members
        );
    }
    Ok(())
}

fn json_escape(s: &str) -> String {
    serde_json::to_string(s).map(|q| q[1..q.len() - 1].to_string()).unwrap_or_default()
}
