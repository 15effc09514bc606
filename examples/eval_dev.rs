//! Quality of CPP clustering on the real developer feature set (or a synthetic union of subspaces), one fit
//! at a time with every assignment rule side by side: the tool the defaults were explored with. Not part of
//! CI: the dev data lives outside the repo. tools/eval/run_eval.py is the evaluation across sets.
//!
//!     cargo run --release --example eval_dev -- [--data DIR | --synth SEED] [--preset NAME] [key=value ...]
//!
//! `--dump DIR` writes every point's Z and C (`z.npy`, `c.npy`) and `truth.npy` there.
//! `key=value` pairs override FitParams fields (JSON values: `eta=0.1 steps=400 normalize_input=false`).
//! Prints, all on every point (n = 10k for the dev set) unless stated:
//! - ours: fit, then every point labelled by each assignment rule (the model's rule is the default);
//! - the spectral labels of the fitted sample itself (on the sample only);
//! - the reference protocol: spectral clustering of Π of one training batch (on that batch only);
//! - k-means (k-means++ with 10 restarts) on the L2-normalised input features.

use rateclust::cluster::algorithms::kmeans::{kmeans, KMeansParams};
use rateclust::cluster::algorithms::metrics::{scores, Scores};
use rateclust::cluster::clusterer::{l2_normalize_rows, sample_rows, Clusterer};
use rateclust::cluster::params::{AssignRule, FitParams};
use rateclust::cluster::synthetic::{union_of_subspaces, SubspaceSpec};
use rateclust::cluster::head::train::shuffled_batches;
use rateclust::progress::NoProgress;
use rateclust::Device;
use std::path::PathBuf;
use std::time::Instant;

#[path = "common/spectral_rows.rs"]
mod spectral_rows;
use spectral_rows::spectral_scores_of_rows;

#[path = "common/dev_set.rs"]
mod dev_set;
use dev_set::load_dev;

fn show(name: &str, s: &Scores, n: usize) {
    println!("{name:<34} n={n:<6} ACC {:.4}  NMI {:.4}  ARI {:.4}", s.acc, s.nmi, s.ari);
}

fn to_i64(v: &[usize]) -> Vec<i64> {
    v.iter().map(|&l| l as i64).collect()
}

fn main() -> rateclust::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut dir = PathBuf::from("../shared/data/fmnist_effnet_dev");
    let mut synth: Option<u64> = None;
    let mut preset = "auto".to_string();
    let mut overrides = serde_json::Map::new();
    let mut dump: Option<PathBuf> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--data" => dir = PathBuf::from(args.next().expect("--data DIR")),
            "--synth" => synth = Some(args.next().expect("--synth SEED").parse().expect("seed")),
            "--preset" => preset = args.next().expect("--preset NAME"),
            "--dump" => dump = Some(PathBuf::from(args.next().expect("--dump DIR"))),
            kv => {
                let (k, v) = kv.split_once('=').expect("arguments are --data, --synth, --preset or key=value");
                let val = serde_json::from_str(v).unwrap_or(serde_json::Value::String(v.into()));
                overrides.insert(k.to_string(), val);
            }
        }
    }
    let mut params = FitParams { k: 10, ..FitParams::preset(&preset)? };
    if !overrides.is_empty() {
        let mut base = serde_json::to_value(&params).unwrap();
        for (k, v) in overrides {
            assert!(base.get(&k).is_some(), "unknown FitParams field '{k}'");
            base[&k] = v;
        }
        params = serde_json::from_value(base).expect("override values of the right type");
    }
    let (x, n, dim, truth) = match synth {
        Some(seed) => {
            let s = SubspaceSpec { n: 3000, dim: 64, k: params.k.max(2), rank: 4, noise: 0.05, seed };
            let (x, y) = union_of_subspaces(&s)?;
            (x, s.n, s.dim, y)
        }
        None => load_dev(&dir)?,
    };
    let params = params.resolve(n);
    println!("params: {}", serde_json::to_string(&params).unwrap());
    let dev = Device::Cpu;
    let t0 = Instant::now();
    let clusterer = Clusterer::fit(&x, n, dim, &params, &dev, &mut NoProgress)?;
    let fit_s = t0.elapsed().as_secs_f64();
    let l = &clusterer.losses;
    let w = params.warmup.min(l.len().saturating_sub(1));
    println!(
        "fit: {} head(s) × {} steps + selection in {fit_s:.1} s; kept head's loss first {:.3}, end of warm-up {:.3}, first MLC {:.3}, last {:.3}",
        params.head_restarts,
        l.len(),
        l[0],
        l[w],
        l.get(w + 1).copied().unwrap_or(f64::NAN),
        l[l.len() - 1]
    );
    println!("kept rule {}; coding length of the head's partition {:?}, of the k-means consensus {:?}", clusterer.params.assign_rule.name(), clusterer.head_score, clusterer.consensus_score);
    if !clusterer.restart_scores.is_empty() {
        println!("head restarts: coding length of the scoring sample {:?}, kept restart {}", clusterer.restart_scores, clusterer.chosen_restart);
    }
    for rule in [AssignRule::Subspace, AssignRule::PrototypeZ, AssignRule::PrototypeC, AssignRule::PrototypeInput, AssignRule::NeighborsInput] {
        if rule.uses_input_space() && clusterer.assign_model.input.is_none() {
            continue;
        }
        let t = Instant::now();
        let a = clusterer.assign_with(rule, &x, n, &mut NoProgress)?;
        let tag = if rule == params.assign_rule { " (default)" } else { "" };
        show(&format!("ours, assign {}{tag}", rule.name()), &scores(&a.labels, &truth)?, n);
        eprintln!("  assign {} took {:.2} s", rule.name(), t.elapsed().as_secs_f64());
    }
    // k-means (10 restarts) directly on every point's Z and C: a labelling linear in n that skips Π.
    let (z_all, c_all) = clusterer.embed(&x, n, !params.single_head)?;
    if let Some(dir) = &dump {
        // Every point's Z and C and the truth, for exploring assignment rules outside Rust.
        std::fs::create_dir_all(dir).expect("--dump DIR can be created");
        use rateclust::io::npy::{write_npy_f32, write_npy_i64};
        write_npy_f32(&dir.join("z.npy"), &z_all, &[n, params.zdim])?;
        if !c_all.is_empty() {
            write_npy_f32(&dir.join("c.npy"), &c_all, &[n, params.zdim])?;
        }
        write_npy_i64(&dir.join("truth.npy"), &truth, &[n])?;
    }
    for (name, e) in [("k-means on Z", &z_all), ("k-means on C", &c_all)] {
        if e.is_empty() {
            continue;
        }
        let km = kmeans(e, n, params.zdim, &KMeansParams { k: params.k, n_init: 10, seed: params.seed, ..Default::default() })?;
        show(&format!("ours, {name}"), &scores(&to_i64(&km.labels), &truth)?, n);
    }
    // The sample's own spectral labels, and the reference protocol (Π of one training batch).
    let xin = if params.normalize_input { l2_normalize_rows(&x, dim) } else { x.clone() };
    let eval_rows = |name: &str, rows: Vec<usize>| -> rateclust::Result<()> {
        show(name, &spectral_scores_of_rows(&clusterer.head, &params, &xin, dim, &rows, &truth)?, rows.len());
        Ok(())
    };
    eval_rows("ours, spectral on the fitted sample", sample_rows(n, params.spectral_sample, params.seed))?;
    eval_rows("reference: spectral of one batch's Π", shuffled_batches(n, &params).next().expect("n ≥ 1 gives a batch"))?;
    let xn = l2_normalize_rows(&x, dim);
    let km = kmeans(&xn, n, dim, &KMeansParams { k: params.k, n_init: 10, seed: params.seed, ..Default::default() })?;
    show("k-means on L2-normalised input", &scores(&to_i64(&km.labels), &truth)?, n);
    Ok(())
}
