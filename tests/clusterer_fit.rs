//! End-to-end fitting on synthetic unions of low-dimensional subspaces (the data model CPP is built for):
//! every point labelled, accuracy ≥ 0.99 for several seeds; save/load round trip; select-k; bad input.

use rateclust::cluster::algorithms::metrics::accuracy;
use rateclust::cluster::clusterer::Clusterer;
use rateclust::cluster::params::{AssignRule, FitParams};
use rateclust::cluster::synthetic::{union_of_subspaces, SubspaceSpec};
use rateclust::progress::NoProgress;
use rateclust::{Device, Error};

/// Small head and short training: enough for this data, fast enough for CI.
fn small_params(k: usize) -> FitParams {
    FitParams {
        k,
        hidden: 128,
        zdim: 32,
        batch: 200,
        steps: 48,
        warmup: 10,
        lr: 0.001,
        lr_cluster: 0.001,
        spectral_sample: 600,
        ..FitParams::default()
    }
}

fn spec(seed: u64) -> SubspaceSpec {
    SubspaceSpec { n: 1200, dim: 48, k: 4, rank: 3, noise: 0.02, seed }
}

#[test]
fn union_of_subspaces_is_recovered_for_several_seeds() {
    for seed in [1, 2, 3] {
        let s = spec(seed);
        let (x, y) = union_of_subspaces(&s).unwrap();
        let clusterer = Clusterer::fit(&x, s.n, s.dim, &small_params(s.k), &Device::Cpu, &mut NoProgress).unwrap();
        for rule in [AssignRule::Subspace, AssignRule::PrototypeZ, AssignRule::PrototypeC] {
            let a = clusterer.assign_with(rule, &x, s.n, &mut NoProgress).unwrap();
            let acc = accuracy(&a.labels, &y).unwrap();
            eprintln!("seed {seed} {rule:?}: acc {acc:.4}");
            if rule == clusterer.params.assign_rule {
                assert!(acc >= 0.99, "seed {seed}: accuracy {acc} < 0.99 with the default rule {rule:?}");
            }
        }
    }
}

fn fitted(seed: u64) -> (Clusterer, Vec<f32>, Vec<i64>, SubspaceSpec) {
    let s = spec(seed);
    let (x, y) = union_of_subspaces(&s).unwrap();
    let clusterer = Clusterer::fit(&x, s.n, s.dim, &small_params(s.k), &Device::Cpu, &mut NoProgress).unwrap();
    (clusterer, x, y, s)
}

#[test]
fn save_load_round_trip_and_format_errors() {
    let (clusterer, x, _, s) = fitted(5);
    let dir = std::env::temp_dir().join(format!("rateclust-model-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.safetensors");
    clusterer.save(&path).unwrap();
    let back = Clusterer::load(&path).unwrap();
    assert_eq!(back.params, clusterer.params);
    assert_eq!(back.losses, clusterer.losses);
    let a = clusterer.assign(&x, s.n, &mut NoProgress).unwrap();
    let b = back.assign(&x, s.n, &mut NoProgress).unwrap();
    assert_eq!(a, b, "a loaded clusterer labels exactly as the saved one");

    let bytes = std::fs::read(&path).unwrap();
    let expect_format = |what: &str, data: &[u8]| match Clusterer::from_bytes(data) {
        Err(Error::Format(m)) => eprintln!("{what}: {m}"),
        other => panic!("{what}: expected a format error, got {:?}", other.map(|_| ())),
    };
    expect_format("truncated", &bytes[..bytes.len() / 2]);
    expect_format("empty", &[]);
    expect_format("garbage", b"definitely not a model, just some bytes");
    // A different format version in the metadata.
    let text = String::from_utf8_lossy(&bytes[..200.min(bytes.len())]).to_string();
    assert!(text.contains("\"format_version\":\"3\"") || String::from_utf8_lossy(&bytes).contains("\"format_version\":\"3\""));
    let bumped = replace_once(&bytes, b"\"format_version\":\"3\"", b"\"format_version\":\"9\"");
    match Clusterer::from_bytes(&bumped) {
        Err(Error::Format(m)) => assert!(m.contains("version 9"), "{m}"),
        other => panic!("version 9: expected a format error, got {:?}", other.map(|_| ())),
    }
    // A flipped byte inside the weights → NaN check or still a valid model; a flipped header byte → error.
    let mut hdr = bytes.clone();
    hdr[10] = b'#';
    expect_format("corrupted header", &hdr);
    match Clusterer::load(&dir.join("missing.safetensors")) {
        Err(Error::Io { .. }) => {}
        other => panic!("missing file: expected an I/O error, got {:?}", other.map(|_| ())),
    }
    std::fs::remove_dir_all(&dir).ok();
}

fn replace_once(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let pos = hay.windows(from.len()).position(|w| w == from).expect("pattern present");
    let mut out = hay.to_vec();
    out[pos..pos + from.len()].copy_from_slice(to);
    out
}

#[test]
fn select_k_finds_the_number_of_subspaces() {
    let (clusterer, x, _, s) = fitted(6);
    let cands = [2, 3, 4, 6, 8];
    let r = clusterer.select_k(&x, s.n, &cands, &Device::Cpu, &mut NoProgress).unwrap();
    eprintln!("coding length: {:?}", r.coding_length);
    assert_eq!(r.candidates, cands);
    assert_eq!(r.coding_length.len(), cands.len());
    // In the input space, splitting a subspace costs more than it saves: a clear minimum at the true k.
    let at = |k: usize| r.coding_length[cands.iter().position(|&c| c == k).unwrap()];
    assert_eq!(r.best_k, s.k, "{:?}", r.coding_length);
    assert!(at(2) > at(3) && at(3) > at(4) && at(6) > at(4) && at(8) > at(6), "{:?}", r.coding_length);
    assert!(clusterer.select_k(&x, s.n, &[1, 4], &Device::Cpu, &mut NoProgress).is_err());
    assert!(clusterer.select_k(&x, s.n, &[], &Device::Cpu, &mut NoProgress).is_err());
}

#[test]
fn bad_input_gives_clear_errors() {
    let s = SubspaceSpec { n: 300, ..spec(7) };
    let (x, _) = union_of_subspaces(&s).unwrap();
    let p = FitParams { batch: 100, steps: 3, warmup: 1, spectral_sample: 300, ..small_params(s.k) };
    let fit = |x: &[f32], n: usize, dim: usize, p: &FitParams| Clusterer::fit(x, n, dim, p, &Device::Cpu, &mut NoProgress);
    let mut bad = x.clone();
    bad[17] = f32::NAN;
    assert!(matches!(fit(&bad, s.n, s.dim, &p), Err(Error::NonFinite(_))));
    bad[17] = f32::INFINITY;
    assert!(matches!(fit(&bad, s.n, s.dim, &p), Err(Error::NonFinite(_))));
    let msg = |r: rateclust::Result<Clusterer>| r.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(msg(fit(&x, s.n, s.dim, &FitParams { k: 1, ..p.clone() })).contains("at least 2"));
    assert!(msg(fit(&x[..3 * s.dim], 3, s.dim, &p)).contains("n < k"));
    assert!(msg(fit(&x, s.n, s.dim + 1, &p)).contains("expected"));
    assert!(matches!(fit(&[], 0, s.dim, &p), Err(Error::InvalidArgument(_))));
    // Cancellation through the progress callback.
    let mut cancel = |_: &str, done: u64, _: u64| done < 1;
    assert!(matches!(Clusterer::fit(&x, s.n, s.dim, &p, &Device::Cpu, &mut cancel), Err(Error::Cancelled)));
    // Dimension mismatch at assign time.
    let clusterer = fit(&x, s.n, s.dim, &p).unwrap();
    let other = vec![0.5f32; 10 * (s.dim + 2)];
    let e = clusterer.assign(&other, 10, &mut NoProgress).unwrap_err();
    assert!(e.to_string().contains("fitted on dimension"), "{e}");
    // Features of magnitude 1e30: normalised, the same fit as at magnitude 1 (their squares overflow f32,
    // which used to zero every row); raw, the head overflows and the fit says so instead of saving a
    // model that cannot be loaded.
    let huge: Vec<f32> = x.iter().map(|v| v * 1e30).collect();
    let normed = FitParams { normalize_input: true, ..p.clone() };
    let a = fit(&x, s.n, s.dim, &normed).unwrap().assign(&x, s.n, &mut NoProgress).unwrap();
    let b = fit(&huge, s.n, s.dim, &normed).unwrap().assign(&huge, s.n, &mut NoProgress).unwrap();
    assert_eq!(a.labels, b.labels);
    let raw = FitParams { normalize_input: false, ..p.clone() };
    let r = fit(&huge, s.n, s.dim, &raw);
    assert!(matches!(r, Err(Error::Numerical(_))), "{:?}", r.map(|m| m.losses));
}

#[test]
fn fitting_is_deterministic_for_a_seed() {
    let s = SubspaceSpec { n: 400, ..spec(8) };
    let (x, _) = union_of_subspaces(&s).unwrap();
    let p = FitParams { steps: 6, spectral_sample: 400, ..small_params(s.k) };
    let a = Clusterer::fit(&x, s.n, s.dim, &p, &Device::Cpu, &mut NoProgress).unwrap();
    let b = Clusterer::fit(&x, s.n, s.dim, &p, &Device::Cpu, &mut NoProgress).unwrap();
    assert_eq!(a.losses, b.losses);
    assert_eq!(a.head.p, b.head.p);
    assert_eq!(a.assign_model, b.assign_model);
    let c = Clusterer::fit(&x, s.n, s.dim, &FitParams { seed: 43, ..p }, &Device::Cpu, &mut NoProgress).unwrap();
    assert_ne!(a.losses, c.losses, "another seed gives another run");
}

#[test]
fn kmeans_sample_clustering_variants_also_label_subspaces() {
    use rateclust::cluster::params::SampleClustering;
    let s = spec(9);
    let (x, y) = union_of_subspaces(&s).unwrap();
    for sc in [SampleClustering::KMeansZ, SampleClustering::KMeansC] {
        let p = FitParams { sample_clustering: sc, ..small_params(s.k) };
        let clusterer = Clusterer::fit(&x, s.n, s.dim, &p, &Device::Cpu, &mut NoProgress).unwrap();
        let a = clusterer.assign(&x, s.n, &mut NoProgress).unwrap();
        let acc = accuracy(&a.labels, &y).unwrap();
        eprintln!("{sc:?}: acc {acc:.4}");
        // k-means is not a subspace clusterer (points of one subspace on both sides of the origin form two
        // blobs), so these alternatives are weaker than spectral clustering of Π here; far above chance (0.25).
        assert!(acc >= 0.6, "{sc:?}: accuracy {acc}");
    }
}

/// `head_restarts` trains one head per seed (seed, seed+1, …) and keeps the one with the shortest coding
/// length: the kept head is exactly the head a single fit from that seed gives, and it scores lowest.
#[test]
fn head_restarts_keep_the_shortest_code() {
    let s = spec(10);
    let (x, y) = union_of_subspaces(&s).unwrap();
    let p = FitParams { head_restarts: 3, ..small_params(s.k) };
    let mut train_ticks = Vec::new();
    let mut record = |stage: &str, done: u64, total: u64| {
        if stage == "train" {
            train_ticks.push((done, total));
        }
        true
    };
    let clusterer = Clusterer::fit(&x, s.n, s.dim, &p, &Device::Cpu, &mut record).unwrap();
    // One progress count across the three trainings: 0 ..= 3·steps, never going back.
    let steps = p.steps as u64;
    assert!(train_ticks.iter().all(|&(_, t)| t == 3 * steps), "{train_ticks:?}");
    assert!(train_ticks.windows(2).all(|w| w[0].0 <= w[1].0), "{train_ticks:?}");
    assert_eq!(train_ticks.last().unwrap().0, 3 * steps);
    let scores = &clusterer.restart_scores;
    assert_eq!(scores.len(), 3);
    let best = (0..3).min_by(|&a, &b| scores[a].total_cmp(&scores[b])).unwrap();
    assert_eq!(clusterer.chosen_restart, best, "scores {scores:?}");
    let single = FitParams { head_restarts: 1, seed: p.seed + best as u64, ..p.clone() };
    let alone = Clusterer::fit(&x, s.n, s.dim, &single, &Device::Cpu, &mut NoProgress).unwrap();
    assert_eq!(clusterer.head.p, alone.head.p, "the kept head is the single fit from seed + {best}");
    assert_eq!(clusterer.losses, alone.losses);
    assert!(alone.restart_scores.is_empty(), "one head: nothing to choose, no scores");
    let acc = accuracy(&clusterer.assign(&x, s.n, &mut NoProgress).unwrap().labels, &y).unwrap();
    assert!(acc >= 0.99, "accuracy {acc}");
    let bad = FitParams { head_restarts: 0, ..p };
    let e = Clusterer::fit(&x, s.n, s.dim, &bad, &Device::Cpu, &mut NoProgress).unwrap_err();
    assert!(e.to_string().contains("head_restarts"), "{e}");
}

/// The defaults alone (no size, schedule or rate setting) fit sets far below one reference batch of 1024
/// points: n = 60, 200 and 1000 (the reference refused all three). n = 1000 is labelled well; the two
/// smaller sets are not yet (ACC about 0.45 and 0.5: a known gap of the default rule, printed here).
#[test]
fn defaults_fit_small_sets() {
    let mut accs = Vec::new();
    for (n, k) in [(60usize, 3usize), (200, 4), (1000, 5)] {
        let s = SubspaceSpec { n, dim: 48, k, rank: 3, noise: 0.02, seed: 11 };
        let (x, y) = union_of_subspaces(&s).unwrap();
        let p = FitParams { k, ..FitParams::default() };
        let clusterer = Clusterer::fit(&x, n, s.dim, &p, &Device::Cpu, &mut NoProgress).unwrap();
        assert_eq!(clusterer.k(), k);
        assert_eq!(clusterer.params.batch, n.min(512), "the batch is cut to n");
        let a = clusterer.assign(&x, n, &mut NoProgress).unwrap();
        let acc = accuracy(&a.labels, &y).unwrap();
        eprintln!("n {n}, k {k}: acc {acc:.3}, rule {}", clusterer.params.assign_rule.name());
        accs.push(acc);
    }
    eprintln!("{accs:?}");
    assert!(accs[2] >= 0.9, "n 1000: accuracy {}", accs[2]);
    // n < k is still an error, and so is a single point.
    let (x, _) = union_of_subspaces(&SubspaceSpec { n: 60, dim: 32, k: 3, rank: 2, noise: 0.02, seed: 11 }).unwrap();
    let e = Clusterer::fit(&x[..5 * 32], 5, 32, &FitParams { k: 6, ..FitParams::default() }, &Device::Cpu, &mut NoProgress).unwrap_err();
    assert!(e.to_string().contains("n < k"), "{e}");
    let e = Clusterer::fit(&x[..32], 1, 32, &FitParams { k: 0, ..FitParams::default() }, &Device::Cpu, &mut NoProgress).unwrap_err();
    assert!(e.to_string().contains("at least 2"), "{e}");
}

/// Well-separated blobs with a barely trained head: the k-means consensus codes shorter than the head's
/// partition and is kept, the model labels by the neighbours' vote in the input space (rule neighbors-x),
/// exactly, and the model survives a save/load with the same labels; the prototype rule on the same
/// model agrees on blobs this clean.
#[test]
fn consensus_wins_on_blobs_and_round_trips() {
    let (n, dim, k) = (300usize, 16usize, 3usize);
    let mut rng = rateclust::rng::Rng::new(5);
    let mut x = Vec::with_capacity(n * dim);
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let c = i % k;
        for t in 0..dim {
            let centre = if t % k == c { 1.0 } else { 0.0 };
            x.push((centre + 0.45 * rng.normal()) as f32);
        }
        y.push(c as i64);
    }
    let p = FitParams { k, steps: 2, warmup: 1, ..FitParams::default() };
    let clusterer = Clusterer::fit(&x, n, dim, &p, &Device::Cpu, &mut NoProgress).unwrap();
    eprintln!("head {:?}, consensus {:?}", clusterer.head_score, clusterer.consensus_score);
    assert!(clusterer.consensus_score.unwrap() < clusterer.head_score.unwrap());
    assert_eq!(clusterer.params.assign_rule, AssignRule::NeighborsInput);
    let a = clusterer.assign(&x, n, &mut NoProgress).unwrap();
    assert_eq!(accuracy(&a.labels, &y).unwrap(), 1.0);
    let by_prototype = clusterer.assign_with(AssignRule::PrototypeInput, &x, n, &mut NoProgress).unwrap();
    assert_eq!(by_prototype.labels, a.labels);
    let path = std::env::temp_dir().join(format!("rateclust_px_{}.safetensors", std::process::id()));
    clusterer.save(&path).unwrap();
    let back = Clusterer::load(&path).unwrap();
    std::fs::remove_file(&path).ok();
    assert_eq!(back.assign_model, clusterer.assign_model);
    assert_eq!(back.assign(&x, n, &mut NoProgress).unwrap(), a);
}
