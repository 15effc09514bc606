//! CLIP models named by Hugging Face Hub id: `openai/clip-vit-base-patch32` (optionally `@revision`) is
//! downloaded once into the Hugging Face cache and loaded from there, as transformers' `from_pretrained` does.
//!
//! - The cache is huggingface_hub's layout (`$HF_HOME/hub/models--owner--name/snapshots/<commit>/…`,
//!   `HF_HOME` defaulting to `~/.cache/huggingface`), so a model another tool downloaded is reused.
//! - `HF_ENDPOINT` changes the server (mirrors; the tests run one on the loopback address).
//! - `HF_HUB_OFFLINE=1` never touches the network: the model must already be in the cache.
//! - A local directory always wins: a spec that names an existing directory is never looked up.
//!
//! Only the files the engine reads are fetched (no PyTorch or TensorFlow weights).

#[cfg(feature = "hub")]
use crate::error::Error;
use crate::error::Result;
use std::path::{Path, PathBuf};

/// Files a CLIP directory needs; the engine refuses a directory without them.
pub const REQUIRED_FILES: [&str; 2] = ["config.json", "model.safetensors"];
/// Files fetched when the repository has them (the tokenizer and the preprocessing config).
pub const OPTIONAL_FILES: [&str; 3] = ["vocab.json", "merges.txt", "preprocessor_config.json"];

/// Attempts after a dropped download, each resuming from the bytes already written.
pub const RETRIES: usize = 3;

/// Whether `spec` reads as a Hub id (`owner/name` or `owner/name@revision`) rather than a path.
pub fn is_hub_id(spec: &str) -> bool {
    let id = spec.split('@').next().unwrap_or("");
    let parts: Vec<&str> = id.split('/').collect();
    parts.len() == 2
        && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) && *p != "." && *p != "..")
}

/// The local directory for `spec`: the directory itself if it exists; otherwise, for a Hub id, its
/// snapshot in the cache, downloaded first unless offline. `progress` shows a download bar.
pub fn resolve_model_dir(spec: &str, progress: bool) -> Result<PathBuf> {
    let path = Path::new(spec);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    if !is_hub_id(spec) {
        return Err(crate::invalid_arg!(
            "model {spec:?}: not a directory, and not a Hugging Face Hub id like openai/clip-vit-base-patch32"
        ));
    }
    fetch(spec, progress)
}

fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "on" | "yes" | "true"))
}

#[cfg(feature = "hub")]
fn fetch(spec: &str, progress: bool) -> Result<PathBuf> {
    use hf_hub::api::sync::ApiBuilder;
    use hf_hub::{Cache, Repo, RepoType};

    let (id, revision) = match spec.split_once('@') {
        Some((id, rev)) => (id.to_string(), rev.to_string()),
        None => (spec.to_string(), "main".to_string()),
    };
    let repo = Repo::with_revision(id.clone(), RepoType::Model, revision);
    let cache = Cache::from_env();
    let cache_dir = cache.path().display().to_string();
    let mut dir: Option<PathBuf> = None;
    if offline() {
        let cached = cache.repo(repo.clone());
        for name in REQUIRED_FILES {
            let file = cached.get(name).ok_or_else(|| {
                Error::Io {
                    path: format!("{cache_dir} ({id}/{name})"),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "HF_HUB_OFFLINE is set and the model is not in the Hugging Face cache: download it once online, or pass a local CLIP directory",
                    ),
                }
            })?;
            dir = file.parent().map(Path::to_path_buf);
        }
    } else {
        // Retries resume a dropped download where it stopped (Range requests on the partial file).
        let api = ApiBuilder::from_env().with_progress(progress).with_retries(RETRIES).build().map_err(|e| Error::Device(format!("Hugging Face Hub client: {e}")))?;
        let remote = api.repo(repo);
        let endpoint = std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".into());
        for name in REQUIRED_FILES {
            let file = remote.get(name).map_err(|e| Error::Io {
                path: remote.url(name),
                source: std::io::Error::other(format!(
                    "could not download {name} of {id} from {endpoint}: {e}. Offline? Pass a local CLIP directory (config.json, model.safetensors, vocab.json, merges.txt), or set HF_HUB_OFFLINE=1 to use the cache ({cache_dir})"
                )),
            })?;
            dir = file.parent().map(Path::to_path_buf);
        }
        for name in OPTIONAL_FILES {
            // A repository without a tokenizer or preprocessing config still loads (image-only use).
            let _ = remote.get(name);
        }
    }
    dir.ok_or_else(|| Error::Internal("no file resolved".into()))
}

#[cfg(not(feature = "hub"))]
fn fetch(spec: &str, _progress: bool) -> Result<PathBuf> {
    let _ = offline();
    Err(crate::invalid_arg!("model {spec:?} is not a directory; this build has no Hugging Face Hub support (cargo feature `hub`)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_and_paths() {
        assert!(is_hub_id("openai/clip-vit-base-patch32"));
        assert!(is_hub_id("laion/CLIP-ViT-B-32-laion2B-s34B-b79K@main"));
        assert!(!is_hub_id("clip"));
        assert!(!is_hub_id("/abs/path"));
        assert!(!is_hub_id("a/b/c"));
        assert!(!is_hub_id("../x"));
        assert!(!is_hub_id("a b/c"));
    }
}
