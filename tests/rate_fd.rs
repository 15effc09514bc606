//! Finite-difference checks of the analytic gradients (f64), and the input validation of the rate API.
//!
//! Directional derivatives: (L(x + h·v) − L(x − h·v)) / 2h against ⟨∂L/∂x, v⟩ for random directions v.
//! The `Exact` Sinkhorn gradient is the true derivative of the computed loss, so it must match; the
//! `Reference` one drops v's dependence on C (as LeslieTrue/CPP does) and must differ in ∂/∂C while
//! agreeing in ∂/∂Z (Z does not pass through Sinkhorn).

use rateclust::rate::{membership, mlc_loss, Objective, RateParams, SinkhornGradient};
use rateclust::rng::Rng;
use rateclust::{Device, Error};

fn normalised(rng: &mut Rng, m: usize, d: usize) -> Vec<f64> {
    let mut x: Vec<f64> = (0..m * d).map(|_| rng.normal()).collect();
    for row in x.chunks_mut(d) {
        let n = row.iter().map(|v| v * v).sum::<f64>().sqrt();
        row.iter_mut().for_each(|v| *v /= n);
    }
    x
}

fn loss(z: &[f64], c: &[f64], m: usize, d: usize, p: &RateParams, obj: Objective) -> f64 {
    mlc_loss(&Device::Cpu, z, c, m, d, p, obj).unwrap().loss
}

fn directional(f: impl Fn(&[f64]) -> f64, x: &[f64], v: &[f64], h: f64) -> f64 {
    let xp: Vec<f64> = x.iter().zip(v).map(|(a, b)| a + h * b).collect();
    let xm: Vec<f64> = x.iter().zip(v).map(|(a, b)| a - h * b).collect();
    (f(&xp) - f(&xm)) / (2.0 * h)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn gradients_match_central_differences() {
    let mut rng = Rng::new(11);
    for (m, d, iters, eta) in [(9, 5, 5, 0.175), (16, 12, 4, 0.3), (7, 20, 3, 0.5)] {
        let z = normalised(&mut rng, m, d);
        let c = normalised(&mut rng, m, d);
        let p = RateParams { sinkhorn_half_iters: iters, eta, gradient: SinkhornGradient::Exact, ..Default::default() };
        let out = mlc_loss(&Device::Cpu, &z, &c, m, d, &p, Objective::Mlc).unwrap();
        let out_ref = mlc_loss(&Device::Cpu, &z, &c, m, d, &RateParams { gradient: SinkhornGradient::Reference, ..p }, Objective::Mlc).unwrap();
        let tcr = mlc_loss(&Device::Cpu, &z, &[], m, d, &p, Objective::Tcr).unwrap();
        for trial in 0..3 {
            let vz: Vec<f64> = (0..m * d).map(|_| rng.normal()).collect();
            let vc: Vec<f64> = (0..m * d).map(|_| rng.normal()).collect();
            let h = 1e-5;
            let fd_z = directional(|zz| loss(zz, &c, m, d, &p, Objective::Mlc), &z, &vz, h);
            let fd_c = directional(|cc| loss(&z, cc, m, d, &p, Objective::Mlc), &c, &vc, h);
            let fd_t = directional(|zz| loss(zz, &[], m, d, &p, Objective::Tcr), &z, &vz, h);
            let (an_z, an_c, an_t) = (dot(&out.grad_z, &vz), dot(&out.grad_c, &vc), dot(&tcr.grad_z, &vz));
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * (1.0 + a.abs().max(b.abs()));
            assert!(close(fd_z, an_z), "m={m} d={d} trial {trial}: dZ fd {fd_z} vs analytic {an_z}");
            assert!(close(fd_c, an_c), "m={m} d={d} trial {trial}: dC fd {fd_c} vs analytic {an_c}");
            assert!(close(fd_t, an_t), "m={m} d={d} trial {trial}: TCR dZ fd {fd_t} vs analytic {an_t}");
            assert!(close(dot(&out_ref.grad_z, &vz), an_z), "reference and exact ∂/∂Z must agree");
        }
        let diff = out.grad_c.iter().zip(&out_ref.grad_c).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        if iters > 1 {
            assert!(diff > 1e-8, "m={m}: reference ∂/∂C should differ from the exact one (detached v), diff {diff}");
        }
    }
}

#[test]
fn membership_rows_sum_to_one_after_a_row_step() {
    let mut rng = Rng::new(2);
    let (m, d) = (30, 8);
    let c = normalised(&mut rng, m, d);
    let pi = membership(&Device::Cpu, &c, m, d, &RateParams::default()).unwrap();
    for (i, row) in pi.chunks(m).enumerate() {
        let s: f64 = row.iter().sum();
        assert!((s - 1.0).abs() < 1e-12, "row {i} sums to {s}");
        assert!(row.iter().all(|&x| x > 0.0));
    }
    // The f32 path computes the same Π.
    let f32_pi = membership(&Device::Cpu, &c.iter().map(|&x| x as f32).collect::<Vec<_>>(), m, d, &RateParams::default()).unwrap();
    assert!(pi.iter().zip(&f32_pi).all(|(a, b)| (a - *b as f64).abs() < 1e-5));
}

#[test]
fn bad_inputs_give_clear_errors() {
    let p = RateParams::default();
    let z = vec![0.5; 12];
    let cpu = Device::Cpu;
    let msg = |e: Error| e.to_string();
    // d = 0.
    let e = mlc_loss::<f64>(&cpu, &[], &[], 4, 0, &p, Objective::Tcr).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)) && msg(e).contains("d = 0"));
    // m < 2.
    let e = mlc_loss(&cpu, &z[..3], &z[..3], 1, 3, &p, Objective::Mlc).unwrap_err();
    assert!(msg(e).contains("m = 1"));
    // Mismatched sizes.
    let e = mlc_loss(&cpu, &z, &z[..11], 4, 3, &p, Objective::Mlc).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)) && msg(e).contains("C: 11 elements"), "C size");
    let e = mlc_loss(&cpu, &z[..10], &z, 4, 3, &p, Objective::Mlc).unwrap_err();
    assert!(msg(e).contains("Z: 10 elements"));
    // NaN / inf.
    let mut bad = z.clone();
    bad[7] = f64::NAN;
    let e = mlc_loss(&cpu, &bad, &z, 4, 3, &p, Objective::Mlc).unwrap_err();
    assert!(matches!(e, Error::NonFinite(_)) && msg(e).contains("Z[7] (row 2, column 1)"));
    bad[7] = f64::INFINITY;
    let e = mlc_loss(&cpu, &z, &bad, 4, 3, &p, Objective::Mlc).unwrap_err();
    assert!(matches!(e, Error::NonFinite(_)) && msg(e).contains("C[7]"));
    // Parameters.
    for (q, what) in [
        (RateParams { eps_sq: 0.0, ..p }, "eps_sq"),
        (RateParams { eta: -1.0, ..p }, "eta"),
        (RateParams { sinkhorn_half_iters: 0, ..p }, "sinkhorn_half_iters"),
        (RateParams { gamma: f64::NAN, ..p }, "gamma"),
    ] {
        let e = mlc_loss(&cpu, &z, &z, 4, 3, &q, Objective::Mlc).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)) && msg(e).contains(what), "{what}");
        assert!(membership(&cpu, &z, 4, 3, &q).is_err());
    }
    // TCR ignores C entirely.
    assert!(mlc_loss(&cpu, &z, &[], 4, 3, &p, Objective::Tcr).is_ok());
}
