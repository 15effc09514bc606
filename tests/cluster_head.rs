//! The CPP head and its training against the float64 PyTorch restatement
//! (tools/golden/cluster_head_goldens.py → tests/fixtures/cluster_head/head_goldens.safetensors):
//! outputs, BatchNorm running statistics, gradients of every parameter (for a linear functional of Z and C,
//! for the TCR loss and for the full MLC loss), and the loss trajectory of 20 SGD steps.

mod common;
use rateclust::cluster::head::{Head, HeadDims, Host, N_PARAMS, PARAM_NAMES};

const CPU: Host<f64> = Host::new();
use safetensors::SafeTensors;

struct Goldens {
    bytes: Vec<u8>,
}

impl Goldens {
    fn load() -> Self {
        Goldens { bytes: std::fs::read(common::fixture("cluster_head/head_goldens.safetensors")).expect("golden file") }
    }
    fn st(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).unwrap()
    }
    fn f64(&self, name: &str) -> Vec<f64> {
        let st = self.st();
        let t = st.tensor(name).unwrap_or_else(|_| panic!("golden tensor {name}"));
        assert_eq!(t.dtype(), safetensors::Dtype::F64, "{name}");
        t.data().chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect()
    }
    fn i64(&self, name: &str) -> Vec<i64> {
        let st = self.st();
        let t = st.tensor(name).unwrap();
        t.data().chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect()
    }
    fn meta(&self) -> serde_json::Value {
        let (_, m) = SafeTensors::read_metadata(&self.bytes).unwrap();
        serde_json::from_str(&m.metadata().as_ref().unwrap()["hyperparameters"]).unwrap()
    }
    fn dims(&self) -> HeadDims {
        let m = self.meta();
        let u = |k: &str| m[k].as_u64().unwrap() as usize;
        HeadDims { input: u("input"), hidden: u("hidden"), zdim: u("zdim") }
    }
    fn head(&self) -> Head<f64> {
        let dims = self.dims();
        let p = std::array::from_fn(|i| self.f64(&format!("init/{}", PARAM_NAMES[i])));
        Head::from_parts(dims, p, vec![0.0; dims.hidden], vec![1.0; dims.hidden]).unwrap()
    }
    fn batches(&self) -> Vec<Vec<usize>> {
        let m = self.meta()["batch"].as_u64().unwrap() as usize;
        self.i64("batches").chunks(m).map(|c| c.iter().map(|&i| i as usize).collect()).collect()
    }
    fn batch_rows(&self, rows: &[usize]) -> Vec<f64> {
        let x = self.f64("x");
        let input = self.dims().input;
        rows.iter().flat_map(|&r| x[r * input..(r + 1) * input].to_vec()).collect()
    }
}

fn assert_close(what: &str, got: &[f64], want: &[f64], rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0.0f64, |a, &b| a.max(b.abs())).max(1e-12);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        // The 1e-12 absolute floor: b1 has an exactly-zero gradient (BatchNorm cancels it), only round-off.
        assert!((g - w).abs() <= rtol * scale + 1e-12, "{what}[{i}]: got {g}, want {w} (max |want| {scale})");
    }
}

#[test]
fn forward_outputs_and_running_stats_match_pytorch() {
    let g = Goldens::load();
    let mut head = g.head();
    let b = &g.batches()[0];
    let cache = head.forward_train(&CPU, &g.batch_rows(b), b.len()).unwrap();
    assert_close("Z", &cache.z, &g.f64("lin/Z"), 1e-12);
    assert_close("C", &cache.c, &g.f64("lin/C"), 1e-12);
    assert_close("running_mean", &head.running_mean, &g.f64("lin/running_mean"), 1e-12);
    assert_close("running_var", &head.running_var, &g.f64("lin/running_var"), 1e-12);
}

#[test]
fn gradients_of_every_parameter_match_pytorch() {
    let g = Goldens::load();
    let mut head = g.head();
    let b = &g.batches()[0];
    let xb = g.batch_rows(b);
    let cache = head.forward_train(&CPU, &xb, b.len()).unwrap();
    let grads = head.backward(&CPU, &xb, cache, &g.f64("lin/A"), None, Some(&g.f64("lin/B"))).unwrap();
    for i in 0..N_PARAMS {
        let name = PARAM_NAMES[i];
        assert_close(name, grads[i].as_ref().unwrap(), &g.f64(&format!("lin_grad/{name}")), 1e-10);
    }
    // Without ∂/∂C the cluster head has no gradient at all (PyTorch: `.grad is None`).
    let cache = head.forward_train(&CPU, &xb, b.len()).unwrap();
    let grads = head.backward(&CPU, &xb, cache, &g.f64("lin/A"), None, None).unwrap();
    assert!(grads[8].is_none() && grads[9].is_none());
}

fn fit_params(g: &Goldens) -> rateclust::cluster::params::FitParams {
    let m = g.meta();
    let f = |k: &str| m[k].as_f64().unwrap();
    rateclust::cluster::params::FitParams {
        eps_sq: f("eps_sq"),
        gamma: f("gamma"),
        lambda: f("lam"),
        eta: f("eta"),
        sinkhorn_half_iters: m["half_iters"].as_u64().unwrap() as usize,
        lr: f("lr"),
        lr_cluster: f("lr"),
        momentum: f("momentum"),
        weight_decay: f("wd_backbone"),
        weight_decay_cluster: f("wd_cluster"),
        batch: m["batch"].as_u64().unwrap() as usize,
        warmup: m["warmup"].as_u64().unwrap() as usize,
        ..Default::default()
    }
}

/// The whole chain head → Z, C → MLC (or TCR) loss → back through the head, against PyTorch autograd.
#[test]
fn loss_gradients_through_the_head_match_pytorch() {
    use rateclust::rate::{mlc_loss, Objective};
    let g = Goldens::load();
    let rate = fit_params(&g).rate_params();
    let b = &g.batches()[0];
    let xb = g.batch_rows(b);
    let d = g.dims().zdim;
    for (tag, obj) in [("mlc", Objective::Mlc), ("tcr", Objective::Tcr)] {
        let mut head = g.head();
        let cache = head.forward_train(&CPU, &xb, b.len()).unwrap();
        let out = mlc_loss(&rateclust::Device::Cpu, &cache.z, &cache.c, b.len(), d, &rate, obj).unwrap();
        assert_close(&format!("{tag} loss"), &[out.loss], &g.f64(&format!("{tag}/loss")), 1e-10);
        let gc = if obj == Objective::Mlc { Some(&out.grad_c) } else { None };
        let grads = head.backward(&CPU, &xb, cache, &out.grad_z, None, gc).unwrap();
        for i in 0..N_PARAMS {
            let name = PARAM_NAMES[i];
            match &grads[i] {
                Some(gr) => assert_close(&format!("{tag} ∂{name}"), gr, &g.f64(&format!("{tag}_grad/{name}")), 1e-8),
                None => assert!(obj == Objective::Tcr && name.starts_with("cluster."), "{tag}: no gradient for {name}"),
            }
        }
    }
}

/// 20 SGD steps (5 TCR warm-up steps, head copy, then MLC) on the restatement's batches: every step's loss,
/// the final weights, BatchNorm statistics and eval-mode outputs agree.
#[test]
fn training_trajectory_follows_pytorch() {
    use rateclust::cluster::head::train::{train, BatchOrder};
    let g = Goldens::load();
    let params = fit_params(&g);
    let mut head = g.head();
    let x = g.f64("x");
    let n = x.len() / g.dims().input;
    let batches = g.batches();
    let log = train(&mut head, &x, n, &params, &rateclust::Device::Cpu, BatchOrder::Explicit(&batches), &mut rateclust::progress::NoProgress).unwrap();
    let want = g.f64("traj/loss");
    assert_eq!(log.losses.len(), want.len());
    for (s, (a, b)) in log.losses.iter().zip(&want).enumerate() {
        assert!((a - b).abs() <= 1e-8 * b.abs().max(1.0), "step {s}: loss {a} vs PyTorch {b}");
    }
    for i in 0..N_PARAMS {
        assert_close(&format!("final {}", PARAM_NAMES[i]), &head.p[i], &g.f64(&format!("traj/final/{}", PARAM_NAMES[i])), 1e-8);
    }
    assert_close("final running_mean", &head.running_mean, &g.f64("traj/final/running_mean"), 1e-8);
    assert_close("final running_var", &head.running_var, &g.f64("traj/final/running_var"), 1e-8);
    let (z, c) = head.forward_eval(&CPU, &x, n, true).unwrap();
    assert_close("eval Z", &z, &g.f64("eval/Z"), 1e-8);
    assert_close("eval C", &c, &g.f64("eval/C"), 1e-8);
}
