//! The developer feature set (`../shared/data/fmnist_effnet_dev`: 10000×1280 EfficientNet-Lite0 features of
//! Fashion-MNIST in two float16 parts, int64 labels), shared by the dev-set examples. Not in the repo.

use rateclust::io::npy::read_npy;
use std::path::Path;

/// (features row-major, n, d, labels), rows in file order (part0 then part1).
pub fn load_dev(dir: &Path) -> rateclust::Result<(Vec<f32>, usize, usize, Vec<i64>)> {
    let mut x = Vec::new();
    let mut d = 0;
    for part in ["fmnist_train10k_features_f16_part0.npy", "fmnist_train10k_features_f16_part1.npy"] {
        let p = dir.join(part);
        let (m, _, dd) = read_npy(&p)?.to_f32_matrix(&p.display().to_string())?;
        d = dd;
        x.extend(m);
    }
    let lp = dir.join("fmnist_train10k_labels.npy");
    let truth = read_npy(&lp)?.to_i64_vec(&lp.display().to_string())?;
    let n = x.len() / d;
    Ok((x, n, d, truth))
}
