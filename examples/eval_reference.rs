//! The reference CPP protocol on any feature set, for the evaluation table (tools/eval/run_eval.py): train
//! with the paper's CIFAR-10 settings (preset `cifar10`: h 4096, d 128, η 0.175, batch 1024, lr 1e-4,
//! warm-up 50) for 15 epochs, then spectral clustering of Π of one training batch, scored on that batch
//! only — what LeslieTrue/CPP reports (docs/design.md §2). Sets above 10,000 points train on a seeded 10,000-point
//! sample (15 epochs of 60k points at h 4096 take about 10 minutes on 2 cores); the batch is cut to n.
//!
//!     cargo run --release --example eval_reference -- FEATURES.npy TRUTH.npy K [SEED]
//!
//! Prints one JSON line: {"acc", "nmi", "ari", "n" (the scored batch), "seconds"}.

use rateclust::cluster::head::{Head, HeadDims};
use rateclust::cluster::clusterer::{gather_rows, sample_rows};
use rateclust::cluster::params::FitParams;
use rateclust::cluster::head::train::{shuffled_batches, train, BatchOrder};
use rateclust::io::npy::read_npy;
use rateclust::progress::NoProgress;
use rateclust::Device;
use std::path::Path;
use std::time::Instant;

#[path = "common/spectral_rows.rs"]
mod spectral_rows;
use spectral_rows::spectral_scores_of_rows;

fn main() -> rateclust::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: eval_reference FEATURES.npy TRUTH.npy K [SEED]");
        std::process::exit(2);
    }
    let (x, n, dim) = read_npy(Path::new(&args[0]))?.to_f32_matrix(&args[0])?;
    let truth = read_npy(Path::new(&args[1]))?.to_i64_vec(&args[1])?;
    let k: usize = args[2].parse().expect("K");
    let seed: u64 = args.get(3).map_or(42, |s| s.parse().expect("SEED"));
    let t0 = Instant::now();
    let rows = sample_rows(n, 10_000, seed);
    let (x, truth): (Vec<f32>, Vec<i64>) = (gather_rows(&x, dim, &rows), rows.iter().map(|&r| truth[r]).collect());
    let n = rows.len();
    let base = FitParams { k, seed, ..FitParams::preset("cifar10")? };
    let batch = base.batch.min(n);
    let params = FitParams { batch, steps: 15 * (n / batch), ..base };
    let mut head = Head::<f32>::new(HeadDims { input: dim, hidden: params.hidden, zdim: params.zdim }, seed)?;
    train(&mut head, &x, n, &params, &Device::Cpu, BatchOrder::Shuffled, &mut NoProgress)?;
    let first = shuffled_batches(n, &params).next().expect("n ≥ 1 gives a batch");
    let s = spectral_scores_of_rows(&head, &params, &x, dim, &first, &truth)?;
    println!(
        "{{\"acc\": {:.4}, \"nmi\": {:.4}, \"ari\": {:.4}, \"n\": {}, \"seconds\": {:.1}}}",
        s.acc,
        s.nmi,
        s.ari,
        first.len(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
