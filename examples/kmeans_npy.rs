//! rateclust's k-means++ with 10 restarts on a feature .npy, L2-normalised rows (the k-means column of
//! tools/eval/bench_fit.py). Prints the seconds spent in `kmeans` and the inertia.
//!
//!     cargo run --release --example kmeans_npy -- FEATURES.npy K [SEED]

use rateclust::cluster::algorithms::kmeans::{kmeans, KMeansParams};
use rateclust::cluster::clusterer::l2_normalize_rows;

fn main() -> rateclust::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(k)) = (args.get(1), args.get(2).and_then(|k| k.parse().ok())) else {
        eprintln!("usage: kmeans_npy FEATURES.npy K [SEED]");
        std::process::exit(2);
    };
    let seed = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(42);
    let (x, n, d) = rateclust::io::npy::read_npy(std::path::Path::new(path))?.to_f32_matrix("features")?;
    let x = l2_normalize_rows(&x, d);
    let t = std::time::Instant::now();
    let r = kmeans(&x, n, d, &KMeansParams { k, n_init: 10, seed, ..Default::default() })?;
    println!("kmeans {:.3} s, inertia {:.4}", t.elapsed().as_secs_f64(), r.inertia);
    Ok(())
}
