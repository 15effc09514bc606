//! The rate-reduction core against golden files from `tools/golden/rate_goldens.py` (float64 PyTorch
//! autograd of a faithful restatement of LeslieTrue/CPP's loss and Sinkhorn): values, Π, and gradients
//! with respect to Z and C in both Sinkhorn gradient modes, in f64 (≤ 1e-5) and f32 (≤ 1e-3).
//!
//! Error measure per tensor: max |ours − golden| / max |golden| (relative to the tensor's scale, so tiny
//! entries of a gradient do not demand more digits than its large ones carry).

mod common;

use rateclust::linalg::Real;
use rateclust::rate::{coding_rate, membership, mlc_loss, Objective, RateParams, SinkhornGradient};
use rateclust::Device;
use safetensors::SafeTensors;
use std::collections::HashMap;

const CASES: [&str; 6] = ["small", "even_iters_custom", "one_half_iter", "d128", "clustered", "d1024"];

struct Case {
    name: String,
    m: usize,
    d: usize,
    params: RateParams,
    t: HashMap<String, Vec<f64>>,
}

fn load(name: &str) -> Case {
    let path = common::fixture(&format!("rate/{name}.safetensors"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().expect("metadata");
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut t = HashMap::new();
    for (k, v) in st.tensors() {
        let data: Vec<f64> = match v.dtype() {
            safetensors::Dtype::F32 => v.data().chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64).collect(),
            safetensors::Dtype::F64 => v.data().chunks(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect(),
            other => panic!("unexpected dtype {other:?}"),
        };
        t.insert(k.to_string(), data);
    }
    let g = |k: &str| meta[k].parse::<f64>().unwrap();
    let params = RateParams {
        eps_sq: g("eps_sq"),
        gamma: g("gamma"),
        lambda: g("lambda"),
        eta: g("eta"),
        sinkhorn_half_iters: g("half_iters") as usize,
        gradient: SinkhornGradient::Reference,
    };
    Case { name: name.into(), m: g("m") as usize, d: g("d") as usize, params, t }
}

fn rel_err<T: Real>(ours: &[T], golden: &[f64]) -> f64 {
    assert_eq!(ours.len(), golden.len());
    let scale = golden.iter().fold(0.0f64, |a, b| a.max(b.abs())).max(1e-300);
    ours.iter().zip(golden).fold(0.0f64, |a, (o, g)| a.max((o.to_f64() - g).abs())) / scale
}

fn check<T: Real>(case: &Case, tol: f64) {
    let z: Vec<T> = case.t["z"].iter().map(|&x| T::from_f64(x)).collect();
    let c: Vec<T> = case.t["c"].iter().map(|&x| T::from_f64(x)).collect();
    let (m, d) = (case.m, case.d);
    let mut report = Vec::new();
    let mut expect = |what: &str, err: f64| {
        report.push(format!("{what} {err:.2e}"));
        assert!(err <= tol, "{} ({}): {what} relative error {err:.3e} > {tol:.0e}", case.name, T::NAME);
    };
    for (mode, gradient) in [("ref", SinkhornGradient::Reference), ("exact", SinkhornGradient::Exact)] {
        let p = RateParams { gradient, ..case.params };
        let out = mlc_loss(&Device::Cpu, &z, &c, m, d, &p, Objective::Mlc).unwrap();
        if mode == "ref" {
            expect("loss", rel_err(&[out.loss], &case.t["loss"]));
            expect("rate", rel_err(&[out.rate], &case.t["rate"]));
            expect("rate_c", rel_err(&[out.rate_c], &case.t["rate_c"]));
            expect("pi_penalty", rel_err(&[out.pi_penalty], &case.t["pi_penalty"]));
        }
        expect(&format!("grad_z_{mode}"), rel_err(&out.grad_z, &case.t[&format!("grad_z_{mode}")]));
        expect(&format!("grad_c_{mode}"), rel_err(&out.grad_c, &case.t[&format!("grad_c_{mode}")]));
    }
    if let Some(pi) = case.t.get("pi") {
        let ours = membership(&Device::Cpu, &c, m, d, &case.params).unwrap();
        expect("pi", rel_err(&ours, pi));
    }
    let tcr = mlc_loss(&Device::Cpu, &z, &[], m, d, &case.params, Objective::Tcr).unwrap();
    expect("tcr_loss", rel_err(&[tcr.loss], &case.t["tcr_loss"]));
    expect("tcr_grad_z", rel_err(&tcr.grad_z, &case.t["tcr_grad_z"]));
    assert!(tcr.grad_c.is_empty());
    let r = coding_rate(&z, m, d, case.params.eps_sq).unwrap();
    expect("coding_rate", rel_err(&[r], &case.t["rate"]));
    println!("{} {} m={m} d={d}: {}", case.name, T::NAME, report.join(", "));
}

#[test]
fn f64_matches_pytorch_goldens_to_1e_5() {
    for name in CASES {
        check::<f64>(&load(name), 1e-5);
    }
}

#[test]
fn f32_matches_pytorch_goldens_to_1e_3() {
    for name in CASES {
        check::<f32>(&load(name), 1e-3);
    }
}
