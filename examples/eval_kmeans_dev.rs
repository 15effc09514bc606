//! k-means baseline on the real developer feature set (not part of CI: the data lives outside the repo).
//!
//!     cargo run --release --example eval_kmeans_dev [DATA_DIR] [SEED]
//!
//! DATA_DIR defaults to ../shared/data/fmnist_effnet_dev (10000×1280 EfficientNet-Lite0 features of
//! Fashion-MNIST, two float16 parts, int64 labels). Rows are L2-normalised, then k-means with k = 10,
//! n_init = 10; prints ACC / NMI / ARI from rateclust's own metrics.

use rateclust::cluster::algorithms::kmeans::{kmeans, KMeansParams};
use rateclust::cluster::algorithms::metrics::scores;
use rateclust::cluster::clusterer::l2_normalize_rows;
use std::path::PathBuf;

#[path = "common/dev_set.rs"]
mod dev_set;
use dev_set::load_dev;

fn main() -> rateclust::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(args.get(1).cloned().unwrap_or_else(|| "../shared/data/fmnist_effnet_dev".into()));
    let seed: u64 = args.get(2).map(|s| s.parse().expect("SEED must be an integer")).unwrap_or(42);
    let (x, n, d, truth) = load_dev(&dir)?;
    let x = l2_normalize_rows(&x, d);
    let t0 = std::time::Instant::now();
    let r = kmeans(&x, n, d, &KMeansParams { k: 10, n_init: 10, seed, ..Default::default() })?;
    let secs = t0.elapsed().as_secs_f64();
    let pred: Vec<i64> = r.labels.iter().map(|&l| l as i64).collect();
    let s = scores(&pred, &truth)?;
    println!(
        "kmeans k=10 n_init=10 seed={seed} n={n} d={d}: ACC {:.4} NMI {:.4} ARI {:.4} (inertia {:.3}, {} iters, {secs:.2} s)",
        s.acc, s.nmi, s.ari, r.inertia, r.n_iter
    );
    Ok(())
}
