//! `--model owner/name` downloads a CLIP from the Hugging Face Hub into the HF cache (src/clip/hub.rs),
//! tested against a server on the loopback address that answers like the Hub's `resolve` endpoint
//! (`GET /{owner}/{name}/resolve/{revision}/{file}` with Range requests, `ETag`, `X-Repo-Commit`,
//! `Content-Range`) and serves the tiny fixture model:
//! - the embeddings equal those from the local directory, byte for byte;
//! - the files land in huggingface_hub's cache layout under `HF_HOME`;
//! - a second run with `HF_HUB_OFFLINE=1` and no server uses the cache;
//! - a model not in the cache offline, an unreachable server and a repository the server does not have give
//!   clear errors that name the model.

mod common;
use common::fixture;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// Serves `dir`'s files as repository `repo` at revision `main` until the process ends; returns the
/// endpoint URL and a counter of requests answered.
fn serve(dir: PathBuf, repo: &'static str) -> (String, Arc<AtomicUsize>) {
    serve_cutting(dir, repo, 0)
}

/// [`serve`], but the first `cuts` full-body responses of model.safetensors stop halfway and close the
/// connection (a dropped download).
fn serve_cutting(dir: PathBuf, repo: &'static str, cuts: usize) -> (String, Arc<AtomicUsize>) {
    let cuts = Arc::new(AtomicUsize::new(cuts));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            seen.fetch_add(1, Ordering::SeqCst);
            let _ = answer(stream, &dir, repo, &cuts);
        }
    });
    (url, count)
}

fn answer(mut stream: TcpStream, dir: &Path, repo: &str, cuts: &AtomicUsize) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("range") {
                range = value.trim().strip_prefix("bytes=").map(str::to_string);
            }
        }
    }
    let path = request.split_whitespace().nth(1).unwrap_or("");
    let prefix = format!("/{repo}/resolve/main/");
    let file = path.strip_prefix(&prefix).map(|f| dir.join(f)).filter(|f| f.is_file());
    let Some(file) = file else {
        return stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    };
    let mut body = Vec::new();
    std::fs::File::open(&file)?.read_to_end(&mut body)?;
    let size = body.len();
    let (start, end) = match range.as_deref().and_then(|r| r.split_once('-')) {
        Some((a, b)) => (a.parse().unwrap_or(0), b.parse().map(|e: usize| e.min(size - 1)).unwrap_or(size - 1)),
        None => (0, size - 1),
    };
    // A stable ETag per file content, as the Hub's (a hash of the bytes).
    let etag = format!("{:016x}{:08x}", body.iter().fold(0xcbf29ce484222325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100000001b3)), size);
    let head = format!(
        "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{end}/{size}\r\nETag: \"{etag}\"\r\nX-Repo-Commit: {COMMIT}\r\nConnection: close\r\n\r\n",
        end + 1 - start
    );
    stream.write_all(head.as_bytes())?;
    let cut = end > start && file.ends_with("model.safetensors") && cuts.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| c.checked_sub(1)).is_ok();
    if cut {
        return stream.write_all(&body[start..start + (end - start) / 2]);
    }
    stream.write_all(&body[start..=end])
}

fn embed(model: &str, texts: &Path, out: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rateclust"));
    cmd.args(["embed", "--device", "cpu", "--quiet", "--model", model, "--texts"]).arg(texts).arg("--out").arg(out);
    cmd.env_remove("HF_HUB_OFFLINE").env_remove("HF_ENDPOINT").env_remove("HF_TOKEN");
    // The loopback server must be reached directly: hf-hub's client takes proxies from the environment.
    for var in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// A port on the loopback address with nothing listening (bound, then released).
fn closed_port_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    url
}

#[test]
fn downloads_into_the_hf_cache_then_works_offline() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("clip_hub_download");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let texts = dir.join("texts.txt");
    std::fs::write(&texts, "a photo of a cat\na diagram\n").unwrap();
    let hf_home = dir.join("hf");
    let hf = hf_home.to_str().unwrap();

    let local_out = dir.join("local.npy");
    let r = embed(fixture("clip_model/tiny").to_str().unwrap(), &texts, &local_out, &[]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));

    let (endpoint, requests) = serve(fixture("clip_model/tiny"), "test-org/tiny-clip");
    let hub_out = dir.join("hub.npy");
    let r = embed("test-org/tiny-clip", &texts, &hub_out, &[("HF_HOME", hf), ("HF_ENDPOINT", &endpoint)]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(std::fs::read(&hub_out).unwrap(), std::fs::read(&local_out).unwrap(), "embeddings through the Hub differ");
    assert!(requests.load(Ordering::SeqCst) >= 5, "the files were not fetched from the server");
    let snapshot = hf_home.join("hub/models--test-org--tiny-clip/snapshots").join(COMMIT);
    for f in ["config.json", "model.safetensors", "vocab.json", "merges.txt"] {
        assert!(snapshot.join(f).is_file(), "{f} missing from the cache snapshot {}", snapshot.display());
    }
    assert_eq!(std::fs::read_to_string(hf_home.join("hub/models--test-org--tiny-clip/refs/main")).unwrap().trim(), COMMIT);

    // Offline, nothing listening: the cache serves.
    let offline_out = dir.join("offline.npy");
    let dead = closed_port_url();
    let r = embed("test-org/tiny-clip", &texts, &offline_out, &[("HF_HOME", hf), ("HF_ENDPOINT", &dead), ("HF_HUB_OFFLINE", "1")]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(std::fs::read(&offline_out).unwrap(), std::fs::read(&local_out).unwrap());

    // Offline and not cached.
    let r = embed("test-org/other-clip", &texts, &dir.join("x.npy"), &[("HF_HOME", hf), ("HF_HUB_OFFLINE", "1")]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && err.contains("HF_HUB_OFFLINE") && err.contains("test-org/other-clip"), "{err}");

    // Online, the server unreachable.
    let r = embed("test-org/other-clip", &texts, &dir.join("x.npy"), &[("HF_HOME", hf), ("HF_ENDPOINT", &dead)]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && err.contains("could not download") && err.contains("test-org/other-clip"), "{err}");

    // Online, a repository the server does not have.
    let r = embed("test-org/missing", &texts, &dir.join("x.npy"), &[("HF_HOME", hf), ("HF_ENDPOINT", &endpoint)]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && err.contains("test-org/missing") && err.contains("404"), "{err}");
    assert!(!dir.join("x.npy").exists(), "no output on failure");
}

/// A download dropped halfway (twice) resumes from where it stopped (Range requests) and the result is
/// byte-identical; no partial file is left in the snapshot.
#[test]
fn a_dropped_download_resumes() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("clip_hub_resume");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let texts = dir.join("texts.txt");
    std::fs::write(&texts, "a photo of a dog\n").unwrap();
    let hf_home = dir.join("hf");
    let local_out = dir.join("local.npy");
    let r = embed(fixture("clip_model/tiny").to_str().unwrap(), &texts, &local_out, &[]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));

    let (endpoint, _) = serve_cutting(fixture("clip_model/tiny"), "test-org/tiny-clip", 2);
    let hub_out = dir.join("hub.npy");
    let r = embed("test-org/tiny-clip", &texts, &hub_out, &[("HF_HOME", hf_home.to_str().unwrap()), ("HF_ENDPOINT", &endpoint)]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(std::fs::read(&hub_out).unwrap(), std::fs::read(&local_out).unwrap());
    let snapshot = hf_home.join("hub/models--test-org--tiny-clip/snapshots").join(COMMIT);
    assert_eq!(
        std::fs::read(snapshot.join("model.safetensors")).unwrap(),
        std::fs::read(fixture("clip_model/tiny/model.safetensors")).unwrap()
    );
    let blobs = hf_home.join("hub/models--test-org--tiny-clip/blobs");
    let parts: Vec<_> = std::fs::read_dir(&blobs).unwrap().flatten().filter(|e| e.path().extension().is_some_and(|x| x == "part")).collect();
    assert!(parts.is_empty(), "partial downloads left behind: {parts:?}");
}

#[test]
fn a_path_that_is_neither_a_directory_nor_an_id_is_a_clear_error() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("clip_hub_bad_spec");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let texts = dir.join("t.txt");
    std::fs::write(&texts, "x\n").unwrap();
    let missing = dir.join("no/such/dir");
    let r = embed(missing.to_str().unwrap(), &texts, &dir.join("x.npy"), &[("HF_HUB_OFFLINE", "1")]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && err.contains("not a directory"), "{err}");
}
