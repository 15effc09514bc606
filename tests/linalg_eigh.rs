//! Symmetric eigendecomposition against numpy.linalg.eigh (LAPACK), float64
//! (tools/golden/cluster_core_goldens.py → eigh_*.npy).

mod common;

use rateclust::io::npy::{read_npy, NpyData};
use rateclust::linalg::eigh::eigh;
use rateclust::Status;

fn f64s(name: &str) -> (Vec<f64>, Vec<usize>) {
    let a = read_npy(&common::fixture(&format!("cluster_core/{name}"))).unwrap();
    match a.data {
        NpyData::F64(v) => (v, a.shape),
        _ => panic!("{name}: expected float64"),
    }
}

/// ‖A v − λ v‖ / ‖A‖ over all pairs, and ‖VᵀV − I‖_max.
fn residuals(a: &[f64], n: usize, w: &[f64], v: &[f64]) -> (f64, f64) {
    let scale = a.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-300);
    let mut res: f64 = 0.0;
    let mut orth: f64 = 0.0;
    for i in 0..n {
        let mut r2 = 0.0;
        for row in 0..n {
            let av: f64 = (0..n).map(|c| a[row * n + c] * v[c * n + i]).sum();
            r2 += (av - w[i] * v[row * n + i]).powi(2);
        }
        res = res.max(r2.sqrt() / scale);
        for j in 0..n {
            let dot: f64 = (0..n).map(|r| v[r * n + i] * v[r * n + j]).sum();
            orth = orth.max((dot - if i == j { 1.0 } else { 0.0 }).abs());
        }
    }
    (res, orth)
}

#[test]
fn matches_numpy_eigh_f64() {
    for n in [1usize, 5, 64, 200] {
        let (a, shape) = f64s(&format!("eigh_{n}_a.npy"));
        assert_eq!(shape, vec![n, n]);
        let (w_ref, _) = f64s(&format!("eigh_{n}_w.npy"));
        let (v_ref, _) = f64s(&format!("eigh_{n}_v.npy"));
        let (w, v) = eigh(&a, n).unwrap();
        for i in 0..n {
            assert!((w[i] - w_ref[i]).abs() <= 1e-10 * (1.0 + w_ref[i].abs()), "n={n} λ{i}: {} vs {}", w[i], w_ref[i]);
        }
        // Eigenvalues of random matrices are simple: eigenvectors agree up to sign.
        for i in 0..n {
            let dot: f64 = (0..n).map(|r| v[r * n + i] * v_ref[r * n + i]).sum();
            assert!((dot.abs() - 1.0).abs() < 1e-8, "n={n} eigenvector {i}: |cos| = {}", dot.abs());
        }
        let (res, orth) = residuals(&a, n, &w, &v);
        assert!(res < 1e-12 && orth < 1e-12, "n={n}: residual {res:e}, orthogonality {orth:e}");
    }
}

#[test]
fn repeated_eigenvalue_gives_an_orthonormal_eigenspace() {
    let (a, _) = f64s("eigh_rep_a.npy");
    let (w_ref, _) = f64s("eigh_rep_w.npy");
    let n = 30;
    let (w, v) = eigh(&a, n).unwrap();
    for i in 0..n {
        assert!((w[i] - w_ref[i]).abs() < 1e-10, "λ{i}: {} vs {}", w[i], w_ref[i]);
    }
    // The 5-fold eigenvalue 2.0 is the largest: the last five columns span its eigenspace.
    assert!(w[25..].iter().all(|&x| (x - 2.0).abs() < 1e-10));
    let (res, orth) = residuals(&a, n, &w, &v);
    assert!(res < 1e-12 && orth < 1e-12, "residual {res:e}, orthogonality {orth:e}");
}

#[test]
fn f32_agrees_with_f64() {
    let (a, _) = f64s("eigh_64_a.npy");
    let (w_ref, _) = f64s("eigh_64_w.npy");
    let a32: Vec<f32> = a.iter().map(|&x| x as f32).collect();
    let (w, v) = eigh(&a32, 64).unwrap();
    let spread = w_ref[63] - w_ref[0];
    for i in 0..64 {
        assert!(((w[i] as f64) - w_ref[i]).abs() < 1e-5 * spread, "λ{i}");
    }
    let vd: Vec<f64> = v.iter().map(|&x| x as f64).collect();
    let (res, orth) = residuals(&a, 64, &w.iter().map(|&x| x as f64).collect::<Vec<_>>(), &vd);
    assert!(res < 1e-5 && orth < 1e-5, "residual {res:e}, orthogonality {orth:e}");
}

#[test]
fn bad_input_is_an_error() {
    assert_eq!(eigh::<f64>(&[1.0, 2.0, 3.0], 2).unwrap_err().status(), Status::InvalidArgument);
    assert_eq!(eigh::<f64>(&[], 0).unwrap_err().status(), Status::InvalidArgument);
    assert_eq!(eigh(&[1.0, f64::NAN, f64::NAN, 1.0], 2).unwrap_err().status(), Status::NonFinite);
}

/// Top-k against the full decomposition: eigenvalues, and the spanned subspace (‖V_refᵀ V‖_F² = k).
fn check_top_k(a: &[f64], n: usize, k: usize, what: &str) {
    use rateclust::linalg::eigh::eigh_top_k;
    let t = std::time::Instant::now();
    let (w, v) = eigh_top_k(a, n, k, -1.0, 1.0, 1e-10).unwrap();
    let t_top = t.elapsed();
    let (w_all, v_all) = eigh(a, n).unwrap();
    println!("{what}: top-{k} {t_top:?}, full {:?}", t.elapsed() - t_top);
    for i in 0..k {
        assert!((w[i] - w_all[n - 1 - i]).abs() < 1e-9, "{what} λ{i}: {} vs {}", w[i], w_all[n - 1 - i]);
    }
    let mut f2 = 0.0;
    for i in 0..k {
        for j in 0..k {
            let dot: f64 = (0..n).map(|r| v_all[r * n + n - 1 - i] * v[r * k + j]).sum();
            f2 += dot * dot;
        }
    }
    assert!((f2 - k as f64).abs() < 1e-8, "{what}: subspace overlap {f2} of {k}");
}

/// D^{-1/2} A D^{-1/2} of a nonnegative symmetric A.
fn normalised(a: &mut [f64], n: usize) {
    let d: Vec<f64> = a.chunks(n).map(|r| r.iter().sum::<f64>().sqrt()).collect();
    for i in 0..n {
        for j in 0..n {
            a[i * n + j] /= d[i] * d[j];
        }
    }
}

#[test]
fn top_k_matches_the_full_decomposition() {
    let mut rng = rateclust::rng::Rng::new(5);
    let n = 600;
    // Six noisy blocks (eigenvalues near 1, one of them exactly 1): the clustering use case.
    let blocks = 6;
    let mut a = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let same = i % blocks == j % blocks;
            let v = if same { 0.5 + 0.5 * rng.uniform() } else { 0.05 * rng.uniform() };
            a[i * n + j] = v;
            a[j * n + i] = v;
        }
    }
    normalised(&mut a, n);
    check_top_k(&a, n, blocks, "noisy blocks");
    // Exactly separated blocks: eigenvalue 1 repeated k times, which a block method must resolve.
    let mut b = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            if i % blocks == j % blocks {
                b[i * n + j] = 1.0 + ((i * 7 + j * 7) % 5) as f64 * 0.1;
            }
        }
    }
    normalised(&mut b, n);
    check_top_k(&b, n, blocks, "separated blocks");
    // A dense random affinity: tiny gaps after the first eigenvalue, so the iteration needs many passes.
    let mut c = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let v = rng.uniform();
            c[i * n + j] = v;
            c[j * n + i] = v;
        }
    }
    normalised(&mut c, n);
    check_top_k(&c, n, 3, "uniform random");
}
