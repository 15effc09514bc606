//! k-means: exact recovery of separated blobs, determinism, inertia against scikit-learn's
//! (tools/golden/cluster_core_goldens.py → kmeans_blobs.npy, kmeans.json), bad input.

mod common;

use rateclust::cluster::algorithms::kmeans::{kmeans, nearest_center, KMeansParams};
use rateclust::cluster::algorithms::metrics::ari;
use rateclust::io::npy::read_npy;
use rateclust::rng::Rng;
use rateclust::Status;

/// `k` tight, far-apart Gaussian blobs of `per` points in `d` dimensions, in shuffled order.
fn blobs(k: usize, per: usize, d: usize, seed: u64) -> (Vec<f32>, Vec<i64>) {
    let mut rng = Rng::new(seed);
    let centers: Vec<f64> = (0..k * d).map(|_| rng.normal() * 10.0).collect();
    let mut order: Vec<usize> = (0..k * per).collect();
    rng.shuffle(&mut order);
    let mut x = Vec::new();
    let mut y = Vec::new();
    for &p in &order {
        let c = p / per;
        x.extend((0..d).map(|t| (centers[c * d + t] + 0.1 * rng.normal()) as f32));
        y.push(c as i64);
    }
    (x, y)
}

fn as_i64(l: &[usize]) -> Vec<i64> {
    l.iter().map(|&v| v as i64).collect()
}

#[test]
fn recovers_separated_blobs_exactly() {
    for (k, d, seed) in [(3, 2, 1), (7, 16, 2), (12, 40, 3)] {
        let (x, y) = blobs(k, 50, d, seed);
        let r = kmeans(&x, k * 50, d, &KMeansParams { k, ..Default::default() }).unwrap();
        assert_eq!(ari(&as_i64(&r.labels), &y).unwrap(), 1.0, "k={k} d={d}");
        assert_eq!(r.centers.len(), k * d);
        // Centres are the means of their clusters, and the inertia is the sum of squared distances to them.
        let mut inertia = 0.0f64;
        for j in 0..k {
            let members: Vec<usize> = (0..k * 50).filter(|&i| r.labels[i] == j).collect();
            for t in 0..d {
                let mean = members.iter().map(|&i| x[i * d + t] as f64).sum::<f64>() / members.len() as f64;
                assert!((mean - r.centers[j * d + t] as f64).abs() < 1e-4, "centre {j}[{t}]");
            }
            inertia += members.iter().map(|&i| (0..d).map(|t| (x[i * d + t] - r.centers[j * d + t]) as f64).map(|v| v * v).sum::<f64>()).sum::<f64>();
        }
        assert!((inertia - r.inertia).abs() <= 1e-9 * inertia, "{inertia} vs {}", r.inertia);
        let (lab, _) = nearest_center(&x, k * 50, d, &r.centers, k).unwrap();
        assert_eq!(lab, r.labels);
    }
}

#[test]
fn same_seed_same_result() {
    let (x, _) = blobs(5, 40, 8, 9);
    // Overlapping data (k larger than the blob count) so restarts genuinely differ.
    let p = KMeansParams { k: 9, n_init: 3, seed: 123, ..Default::default() };
    let a = kmeans(&x, 200, 8, &p).unwrap();
    let b = kmeans(&x, 200, 8, &p).unwrap();
    assert_eq!(a, b);
}

#[test]
fn inertia_matches_sklearn_on_overlapping_blobs() {
    let arr = read_npy(&common::fixture("cluster_core/kmeans_blobs.npy")).unwrap();
    let (x, n, d) = arr.to_f32_matrix("kmeans_blobs").unwrap();
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(common::fixture("cluster_core/kmeans.json")).unwrap()).unwrap();
    for k in [4usize, 8, 12] {
        let sk = golden["inertia"][k.to_string()].as_f64().unwrap();
        let r = kmeans(&x, n, d, &KMeansParams { k, n_init: 10, ..Default::default() }).unwrap();
        let ratio = r.inertia / sk;
        println!("k={k}: inertia {} vs sklearn {sk} (ratio {ratio:.5}), {} iterations", r.inertia, r.n_iter);
        assert!(ratio <= 1.005, "k={k}: inertia {} is more than 0.5% above sklearn's {sk}", r.inertia);
    }
}

#[test]
fn degenerate_data_gives_valid_clusterings() {
    // k = n: every point its own cluster.
    let x: Vec<f32> = (0..12).map(|i| i as f32).collect();
    let r = kmeans(&x, 6, 2, &KMeansParams { k: 6, ..Default::default() }).unwrap();
    let mut l = r.labels.clone();
    l.sort_unstable();
    assert_eq!(l, (0..6).collect::<Vec<_>>());
    assert_eq!(r.inertia, 0.0);
    // Fewer distinct points than clusters: still k labels in range, no NaN centres.
    let x = vec![1.0f32, 1.0, 1.0, 1.0, 5.0, 5.0, 5.0, 5.0];
    let r = kmeans(&x, 4, 2, &KMeansParams { k: 3, ..Default::default() }).unwrap();
    assert!(r.labels.iter().all(|&l| l < 3));
    assert!(r.centers.iter().all(|v| v.is_finite()));
    assert_eq!(r.inertia, 0.0);
}

#[test]
fn bad_input_is_a_clear_error() {
    let x = vec![0.0f32; 20];
    let p = |k| KMeansParams { k, ..Default::default() };
    let e = kmeans(&x, 10, 2, &p(11)).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
    assert!(e.to_string().contains("k = 11"), "{e}");
    assert_eq!(kmeans(&x, 10, 2, &p(0)).unwrap_err().status(), Status::InvalidArgument);
    assert_eq!(kmeans(&x, 9, 2, &p(2)).unwrap_err().status(), Status::InvalidArgument);
    let mut y = x.clone();
    y[7] = f32::NAN;
    let e = kmeans(&y, 10, 2, &p(2)).unwrap_err();
    assert_eq!(e.status(), Status::NonFinite);
    assert!(e.to_string().contains("[7]"), "{e}");
    assert!(kmeans(&x, 10, 2, &KMeansParams { k: 2, n_init: 0, ..Default::default() }).is_err());
    assert!(kmeans(&x, 10, 2, &KMeansParams { k: 2, tol: f64::NAN, ..Default::default() }).is_err());
}

/// A cancel asked for while k-means runs its restarts ends the call with `Cancelled` within a second
/// (the hardening contract for every long loop), and a check that never cancels changes nothing.
#[test]
fn kmeans_restarts_hear_a_cancel_within_a_second() {
    use rateclust::cluster::algorithms::kmeans::kmeans_cancellable;
    let (n, d, k) = (20_000, 32, 20);
    let mut rng = rateclust::rng::Rng::new(5);
    let x: Vec<f32> = (0..n * d).map(|_| rng.normal() as f32).collect();
    let params = KMeansParams { k, n_init: 1000, max_iter: 300, tol: 0.0, seed: 1 };
    let start = std::time::Instant::now();
    let cancel_at = std::time::Duration::from_millis(300);
    let mut checks = 0usize;
    let err = kmeans_cancellable(&x, n, d, &params, &mut || {
        checks += 1;
        if start.elapsed() > cancel_at {
            Err(rateclust::Error::Cancelled)
        } else {
            Ok(())
        }
    })
    .unwrap_err();
    let late = start.elapsed().saturating_sub(cancel_at);
    assert_eq!(err.status(), Status::Cancelled, "{err}");
    assert!(late < std::time::Duration::from_secs(1), "cancel heard {late:?} late ({checks} checks)");

    let small = KMeansParams { n_init: 2, ..params };
    let (x, n) = (&x[..500 * d], 500);
    assert_eq!(kmeans_cancellable(x, n, d, &small, &mut || Ok(())).unwrap(), kmeans(x, n, d, &small).unwrap());
}
