//! ACC / NMI / ARI against scikit-learn and scipy (tools/golden/cluster_core_goldens.py → metrics.json).

mod common;

use rateclust::cluster::metrics::{accuracy, ari, nmi, scores};
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
