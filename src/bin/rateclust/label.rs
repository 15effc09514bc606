//! `rateclust label`: names clusters with CLIP's text encoder (CPP's self-labeling vote, `rateclust::label`).
//!
//! Inputs are the images' CLIP embeddings (from `rateclust embed`) and their cluster labels (from `rateclust
//! assign`); candidate captions come from a vocabulary file (one name per line) or the default ImageNet-1k
//! vocabulary, never from the data set's own class names.

use crate::common::*;
use lexopt::prelude::*;
use rateclust::clip::{ClipModel, EmbedOptions};
use rateclust::label::{default_vocabulary, label_clusters, prompts, LabelParams};
use rateclust::DeviceKind;
use std::ffi::OsString;

const HELP: &str = "rateclust label --model CLIP_DIR --features EMB.npy --labels L.npy [--vocab FILE]
                [--template 'a photo of a {}.'] [--top 5] [--device auto|cpu|cuda[:N]]
  EMB.npy: the images' CLIP embeddings (rateclust embed); L.npy: their clusters (rateclust assign).
  Prints one JSON object per cluster: {\"cluster\", \"name\", \"caption\", \"score\", \"members\"}.";

pub fn run(args: Vec<OsString>) -> CliResult {
    let mut p = parser(args);
    let (mut model, mut features, mut labels, mut vocab) = (None, None, None, None);
    let mut template = "a photo of a {}.".to_string();
    let mut params = LabelParams::default();
    let mut device = DeviceKind::Auto;
    while let Some(arg) = p.next()? {
        match arg {
            Long("model") => model = Some(path(&mut p)?),
            Long("features") => features = Some(path(&mut p)?),
            Long("labels") => labels = Some(path(&mut p)?),
            Long("vocab") => vocab = Some(path(&mut p)?),
            Long("template") => template = value(&mut p, "template")?,
            Long("top") => params.top = value(&mut p, "top")?,
            Long("device") => device = DeviceKind::parse_with_ordinal(&value::<String>(&mut p, "device")?)?,
            Long("help") | Short('h') => {
                println!("{HELP}");
                return Ok(());
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    let (emb, n, dim) = read_features(&required(features, "features")?)?;
    let raw = read_labels(&required(labels, "labels")?)?;
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

    let clip = ClipModel::load_on(clip_dir(model, false)?, device)?;
    let text = clip.embed_texts(&caption_refs, &EmbedOptions::default(), &mut Bar::new())?;
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
