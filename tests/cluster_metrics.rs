//! ACC / NMI / ARI against scikit-learn and scipy (tools/golden/cluster_core_goldens.py → metrics.json).

mod common;

use rateclust::cluster::algorithms::metrics::{accuracy, ari, nmi, scores};
use rateclust::Status;

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    pred: Vec<i64>,
    truth: Vec<i64>,
    acc: f64,
    nmi: f64,
    ari: f64,
}

#[test]
fn matches_sklearn_on_square_rectangular_and_degenerate_labellings() {
    let text = std::fs::read_to_string(common::fixture("cluster_core/metrics.json")).unwrap();
    let cases: Vec<Case> = serde_json::from_str(&text).unwrap();
    assert!(cases.len() >= 10);
    for c in &cases {
        let s = scores(&c.pred, &c.truth).unwrap();
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * (1.0 + b.abs());
        assert!(close(s.acc, c.acc), "{}: acc {} vs sklearn {}", c.name, s.acc, c.acc);
        assert!(close(s.nmi, c.nmi), "{}: nmi {} vs sklearn {}", c.name, s.nmi, c.nmi);
        assert!(close(s.ari, c.ari), "{}: ari {} vs sklearn {}", c.name, s.ari, c.ari);
        assert_eq!(accuracy(&c.pred, &c.truth).unwrap(), s.acc);
        assert_eq!(nmi(&c.pred, &c.truth).unwrap(), s.nmi);
        assert_eq!(ari(&c.pred, &c.truth).unwrap(), s.ari);
    }
}

#[test]
fn mismatched_or_empty_inputs_are_errors() {
    let e = scores(&[0, 1, 2], &[0, 1]).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
    assert!(e.to_string().contains("3") && e.to_string().contains("2"), "{e}");
    assert_eq!(accuracy(&[], &[]).unwrap_err().status(), Status::InvalidArgument);
}

/// 100,000 distinct labels on each side would need a 10¹⁰-cell table (80 GB, which aborted the process):
/// a clear error instead, for every metric, before anything is allocated.
#[test]
fn too_many_distinct_labels_is_an_error_not_an_abort() {
    let pred: Vec<i64> = (0..100_000).collect();
    let truth: Vec<i64> = (0..100_000).rev().collect();
    for r in [accuracy(&pred, &truth), nmi(&pred, &truth), ari(&pred, &truth)] {
        let e = r.unwrap_err();
        assert_eq!(e.status(), Status::InvalidArgument);
        assert!(e.to_string().contains("contingency table"), "{e}");
    }
    // Many labels on one side only still fit: 100,000 × 2.
    let two: Vec<i64> = (0..100_000).map(|i| i % 2).collect();
    assert!(ari(&pred, &two).is_ok());
}
