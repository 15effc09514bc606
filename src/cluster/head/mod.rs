//! The CPP head (docs/design.md §1.2): its parameters, and its forward, hand-written backward and evaluation
//! passes, written once over a [`HeadBackend`]: the CPU ([`Host`], in f32 for training speed or f64 for
//! gradient goldens) or a CUDA device (`cuda.rs`).
//!
//! Mirrors the reference (LeslieTrue/CPP) module:
//! `pre_feature = Sequential(Linear(in,h), BatchNorm1d(h), ReLU, Linear(h,h), ReLU)`,
//! `Z = F.normalize(subspace(pre))`, `C = F.normalize(cluster(pre))` with `subspace`, `cluster` = `Linear(h,d)`.
//! Weights use PyTorch's layout (Linear weight is out×in, row-major) and PyTorch's default initialisation,
//! so the state can be compared with, and exported to, the PyTorch restatement.
//!
//! This folder holds the head and everything that trains it: the module itself (this file), the operations
//! it is made of ([`backend`]), its optimiser ([`sgd`]), its training loop ([`train`]) and the CUDA
//! implementation of those operations ([`cuda`]).

pub mod backend;
pub mod cuda;
pub mod sgd;
pub mod train;

pub use backend::{HeadBackend, Host, Product};

use crate::error::{Error, Result};
use crate::linalg::Real;
use crate::rng::Rng;

/// BatchNorm1d ε and running-statistics momentum (PyTorch defaults).
pub const BN_EPS: f64 = 1e-5;
pub const BN_MOMENTUM: f64 = 0.1;
/// `F.normalize`'s floor on the norm.
pub(crate) const NORM_FLOOR: f64 = 1e-12;

/// The trainable tensors, in a fixed order; `PARAM_NAMES[i]` names `Head::p[i]`.
pub const N_PARAMS: usize = 10;
pub const PARAM_NAMES: [&str; N_PARAMS] = [
    "pre_feature.0.weight",
    "pre_feature.0.bias",
    "pre_feature.1.weight",
    "pre_feature.1.bias",
    "pre_feature.3.weight",
    "pre_feature.3.bias",
    "subspace.weight",
    "subspace.bias",
    "cluster.weight",
    "cluster.bias",
];
pub const W1: usize = 0;
pub const B1: usize = 1;
pub const GAMMA: usize = 2;
pub const BETA: usize = 3;
pub const W2: usize = 4;
pub const B2: usize = 5;
pub const WS: usize = 6;
pub const BS: usize = 7;
pub const WC: usize = 8;
pub const BC: usize = 9;
/// Indices of the cluster head's parameters (the second SGD group, with its own weight decay).
pub const CLUSTER_PARAMS: [usize; 2] = [WC, BC];

/// Sizes of the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadDims {
    pub input: usize,
    pub hidden: usize,
    pub zdim: usize,
}

impl HeadDims {
    /// Shape (rows, cols) of parameter `i` (vectors are (len, 1)).
    pub fn shape(&self, i: usize) -> (usize, usize) {
        let (n, h, d) = (self.input, self.hidden, self.zdim);
        match i {
            W1 => (h, n),
            B1 | GAMMA | BETA | B2 => (h, 1),
            W2 => (h, h),
            WS | WC => (d, h),
            BS | BC => (d, 1),
            _ => unreachable!("parameter index {i}"),
        }
    }
}

/// The head's state on a backend: trainable parameters (PyTorch layout) plus BatchNorm running statistics.
pub struct HeadOf<B: HeadBackend + ?Sized> {
    pub dims: HeadDims,
    pub p: [B::Buf; N_PARAMS],
    pub running_mean: B::Buf,
    pub running_var: B::Buf,
}

/// The head on the CPU, in f32 (training, inference) or f64 (gradient goldens).
pub type Head<T> = HeadOf<Host<T>>;

/// Gradients of the trainable parameters; `None` = the parameter took no part in the loss (PyTorch's
/// `.grad is None`, which SGD skips entirely).
pub type GradsOf<B> = [Option<<B as HeadBackend>::Buf>; N_PARAMS];
pub type HeadGrads<T> = GradsOf<Host<T>>;
/// Evaluation-mode outputs (Z, C) on the host, each n×zdim (C empty unless asked for).
pub type Outputs<T> = (Vec<T>, Vec<T>);

/// What the backward pass needs from a training-mode forward pass.
pub struct ForwardCache<B: HeadBackend + ?Sized> {
    m: usize,
    /// x̂ of BatchNorm (m×h), then reused for ∂loss/∂a1.
    xhat: B::Buf,
    /// 1/√(σ²_B + ε) per hidden unit.
    invstd: B::Buf,
    /// ReLU(BN(·)) output (m×h): input of the second Linear; its sign gives the first ReLU's mask.
    r1: B::Buf,
    /// ReLU of the second Linear (m×h): the pre-feature; its sign gives the second ReLU's mask.
    r2: B::Buf,
    /// Row norms before L2 normalisation of the subspace and cluster heads.
    z_norm: B::Buf,
    c_norm: B::Buf,
    /// Normalised outputs, m×d.
    pub z: B::Buf,
    pub c: B::Buf,
}

impl<T: Real> Clone for Head<T> {
    fn clone(&self) -> Self {
        Head { dims: self.dims, p: self.p.clone(), running_mean: self.running_mean.clone(), running_var: self.running_var.clone() }
    }
}

impl<T: Real> std::fmt::Debug for Head<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Head").field("dims", &self.dims).field("dtype", &T::NAME).finish_non_exhaustive()
    }
}

impl<T: Real> Head<T> {
    /// PyTorch's default initialisation (`Linear.reset_parameters`: weight and bias uniform in ±1/√fan_in;
    /// BatchNorm weight 1, bias 0, running mean 0, running var 1), drawn from our seeded generator.
    pub fn new(dims: HeadDims, seed: u64) -> Result<Self> {
        if dims.input == 0 || dims.hidden == 0 || dims.zdim == 0 {
            return Err(crate::invalid_arg!("head sizes must be positive (input {}, hidden {}, zdim {})", dims.input, dims.hidden, dims.zdim));
        }
        let mut rng = Rng::new(seed);
        let mut uniform = |len: usize, fan_in: usize| -> Vec<T> {
            let b = 1.0 / (fan_in as f64).sqrt();
            (0..len).map(|_| T::from_f64((2.0 * rng.uniform() - 1.0) * b)).collect()
        };
        let (n, h, d) = (dims.input, dims.hidden, dims.zdim);
        let w1 = uniform(h * n, n);
        let b1 = uniform(h, n);
        let w2 = uniform(h * h, h);
        let b2 = uniform(h, h);
        let ws = uniform(d * h, h);
        let bs = uniform(d, h);
        let wc = uniform(d * h, h);
        let bc = uniform(d, h);
        Ok(Head {
            dims,
            p: [w1, b1, vec![T::one(); h], vec![T::zero(); h], w2, b2, ws, bs, wc, bc],
            running_mean: vec![T::zero(); h],
            running_var: vec![T::one(); h],
        })
    }

    /// Builds a head from given tensors (checked against `dims`).
    pub fn from_parts(dims: HeadDims, p: [Vec<T>; N_PARAMS], running_mean: Vec<T>, running_var: Vec<T>) -> Result<Self> {
        for (i, v) in p.iter().enumerate() {
            let (r, c) = dims.shape(i);
            if v.len() != r * c {
                return Err(Error::Format(format!("tensor {} has {} elements, expected {}×{}", PARAM_NAMES[i], v.len(), r, c)));
            }
        }
        if running_mean.len() != dims.hidden || running_var.len() != dims.hidden {
            return Err(Error::Format(format!("BatchNorm running statistics must have {} elements", dims.hidden)));
        }
        Ok(Head { dims, p, running_mean, running_var })
    }

    /// Casts every tensor to another float type.
    pub fn cast<U: Real>(&self) -> Head<U> {
        let c = |v: &Vec<T>| v.iter().map(|x| U::from_f64(x.to_f64())).collect::<Vec<U>>();
        Head { dims: self.dims, p: std::array::from_fn(|i| c(&self.p[i])), running_mean: c(&self.running_mean), running_var: c(&self.running_var) }
    }
}

impl<B: HeadBackend + ?Sized> HeadOf<B> {
    /// A copy of the host head `head` on backend `b`.
    pub fn upload(b: &B, head: &Head<B::T>) -> Result<Self> {
        let mut p = Vec::with_capacity(N_PARAMS);
        for (i, t) in head.p.iter().enumerate() {
            p.push(b.upload(t, PARAM_NAMES[i])?);
        }
        let p: [B::Buf; N_PARAMS] = p.try_into().map_err(|_| Error::Internal("parameter count".into()))?;
        let running_mean = b.upload(&head.running_mean, "BatchNorm running mean")?;
        let running_var = b.upload(&head.running_var, "BatchNorm running variance")?;
        Ok(HeadOf { dims: head.dims, p, running_mean, running_var })
    }

    /// The parameters and running statistics as a host head.
    pub fn download(&self, b: &B) -> Result<Head<B::T>> {
        let mut p: [Vec<B::T>; N_PARAMS] = Default::default();
        for (i, t) in p.iter_mut().enumerate() {
            *t = b.download(&self.p[i], PARAM_NAMES[i])?;
        }
        let rm = b.download(&self.running_mean, "BatchNorm running mean")?;
        let rv = b.download(&self.running_var, "BatchNorm running variance")?;
        Head::from_parts(self.dims, p, rm, rv)
    }

    /// Copies the subspace head into the cluster head (end of the TCR warm-up, docs/design.md §1).
    pub fn copy_subspace_to_cluster(&mut self, b: &B) -> Result<()> {
        let [.., ws, bs, wc, bc] = &mut self.p;
        b.copy(wc, ws, "subspace weight → cluster weight")?;
        b.copy(bc, bs, "subspace bias → cluster bias")
    }

    /// out (rows×o) ← act(x (rows×k) · Wᵀ + b) for the Linear layer with weight `w` and bias `bias`.
    #[allow(clippy::too_many_arguments)]
    fn linear(&self, b: &B, rows: usize, k: usize, x: &B::Buf, w: usize, bias: usize, out: &mut B::Buf, relu: bool) -> Result<()> {
        let o = self.dims.shape(bias).0;
        b.gemm(Product::linear(rows, o, k), x, &self.p[w], out)?;
        b.bias_act(out, &self.p[bias], rows, o, relu)
    }

    /// One output head of the training forward: its Linear on the pre-feature, then L2 normalisation.
    fn output(&self, b: &B, m: usize, r2: &B::Buf, w: usize, bias: usize, what: &str) -> Result<(B::Buf, B::Buf)> {
        let (h, d) = (self.dims.hidden, self.dims.zdim);
        let mut y = b.alloc(m * d, what)?;
        self.linear(b, m, h, r2, w, bias, &mut y, false)?;
        let mut norm = b.alloc(m, "row norms")?;
        b.l2norm_rows(&mut y, Some(&mut norm), m, d)?;
        Ok((y, norm))
    }

    /// Training-mode forward on a batch `x` (m×input): batch statistics in BatchNorm, running statistics
    /// updated as PyTorch does (momentum 0.1, unbiased variance). Needs m ≥ 2, like BatchNorm1d.
    pub fn forward_train(&mut self, b: &B, x: &B::Buf, m: usize) -> Result<ForwardCache<B>> {
        let HeadDims { input, hidden: h, .. } = self.dims;
        if m < 2 {
            return Err(crate::invalid_arg!("a training batch needs at least 2 rows (BatchNorm), got {m}"));
        }
        backend::check_rows(self.dims, b.len(x), m, "batch")?;
        let mut a1 = b.alloc(m * h, "first Linear output")?;
        self.linear(b, m, input, x, W1, B1, &mut a1, false)?;
        let mut r1 = b.alloc(m * h, "BatchNorm+ReLU output")?;
        let mut invstd = b.alloc(h, "BatchNorm 1/σ")?;
        b.bn_train(self, &mut a1, &mut r1, &mut invstd, m)?;
        let mut r2 = b.alloc(m * h, "pre-feature")?;
        self.linear(b, m, h, &r1, W2, B2, &mut r2, true)?;
        let (z, z_norm) = self.output(b, m, &r2, WS, BS, "Z")?;
        let (c, c_norm) = self.output(b, m, &r2, WC, BC, "C")?;
        Ok(ForwardCache { m, xhat: a1, invstd, r1, r2, z_norm, c_norm, z, c })
    }

    /// Backward pass of `forward_train`: gradients of all parameters given ∂loss/∂Z (`grad_z`, plus
    /// `grad_z2` when Z fed the loss twice, as with `single_head`) and optionally ∂loss/∂C. Without
    /// `grad_c` the cluster head gets no gradient (`None`), as in PyTorch when the loss does not involve
    /// it. Consumes the cache (its buffers are reused).
    pub fn backward(&self, b: &B, x: &B::Buf, cache: ForwardCache<B>, grad_z: &B::Buf, grad_z2: Option<&B::Buf>, grad_c: Option<&B::Buf>) -> Result<GradsOf<B>> {
        let HeadDims { input, hidden: h, zdim: d } = self.dims;
        let ForwardCache { m, mut xhat, invstd, r1, r2, z_norm, c_norm, z, c } = cache;
        for (name, g) in [("∂loss/∂Z", Some(grad_z)), ("∂loss/∂Z (second)", grad_z2), ("∂loss/∂C", grad_c)] {
            if g.is_some_and(|g| b.len(g) != m * d) {
                return Err(crate::invalid_arg!("{name} must be {m}×{d}"));
            }
        }
        let mut grads: GradsOf<B> = Default::default();
        // ∂/∂H (m×h) accumulates both heads' contributions (the first writes it).
        let mut gh = b.alloc(m * h, "∂loss/∂pre-feature")?;
        let mut accumulate = false;
        for (out, norm, g1, g2, w, bias) in [(&z, &z_norm, Some(grad_z), grad_z2, WS, BS), (&c, &c_norm, grad_c, None, WC, BC)] {
            let Some(g1) = g1 else { continue };
            let gpre = b.l2norm_backward(out, norm, g1, g2, m, d)?;
            // ∂W (d×h) = gpreᵀ · r2, ∂H (+)= gpre · W.
            let mut gw = b.alloc(d * h, PARAM_NAMES[w])?;
            b.gemm(Product { ta: true, tb: false, m: d, n: h, k: m, accumulate: false }, &gpre, &r2, &mut gw)?;
            grads[w] = Some(gw);
            grads[bias] = Some(b.col_sums(&gpre, m, d, PARAM_NAMES[bias])?);
            b.gemm(Product { ta: false, tb: false, m, n: h, k: d, accumulate }, &gpre, &self.p[w], &mut gh)?;
            accumulate = true;
        }
        // Second ReLU, then the second Linear.
        b.relu_mask(&mut gh, &r2, m * h)?;
        drop(r2);
        let mut gw2 = b.alloc(h * h, PARAM_NAMES[W2])?;
        b.gemm(Product { ta: true, tb: false, m: h, n: h, k: m, accumulate: false }, &gh, &r1, &mut gw2)?;
        grads[W2] = Some(gw2);
        grads[B2] = Some(b.col_sums(&gh, m, h, PARAM_NAMES[B2])?);
        let mut gr1 = b.alloc(m * h, "∂loss/∂(BatchNorm+ReLU output)")?;
        b.gemm(Product { ta: false, tb: false, m, n: h, k: h, accumulate: false }, &gh, &self.p[W2], &mut gr1)?;
        drop(gh);
        // The first ReLU and BatchNorm (training mode): x̂ becomes ∂loss/∂a1.
        let (ggamma, gbeta) = b.bn_backward(self, &mut xhat, &gr1, &r1, &invstd, m)?;
        grads[GAMMA] = Some(ggamma);
        grads[BETA] = Some(gbeta);
        let ga1 = xhat;
        let mut gw1 = b.alloc(h * input, PARAM_NAMES[W1])?;
        b.gemm(Product { ta: true, tb: false, m: h, n: input, k: m, accumulate: false }, &ga1, x, &mut gw1)?;
        grads[W1] = Some(gw1);
        grads[B1] = Some(b.col_sums(&ga1, m, h, PARAM_NAMES[B1])?);
        Ok(grads)
    }

    /// Evaluation-mode forward (BatchNorm with running statistics) of host rows `x` (n×input), in chunks of
    /// the backend's `EVAL_CHUNK` rows, so that millions of rows need only O(chunk × hidden) scratch.
    /// Returns (Z, C), each n×zdim; `want_c = false` skips C (returns it empty).
    pub fn forward_eval(&self, b: &B, x: &[B::T], n: usize, want_c: bool) -> Result<Outputs<B::T>> {
        self.forward_eval_in_chunks(b, x, n, want_c, B::EVAL_CHUNK)
    }

    /// [`Self::forward_eval`], `chunk` rows at a time.
    pub fn forward_eval_in_chunks(&self, b: &B, x: &[B::T], n: usize, want_c: bool, chunk: usize) -> Result<Outputs<B::T>> {
        let HeadDims { input, hidden: h, zdim: d } = self.dims;
        backend::check_rows(self.dims, x.len(), n, "features")?;
        let mut z = Vec::with_capacity(n * d);
        let mut c = Vec::with_capacity(if want_c { n * d } else { 0 });
        if n == 0 {
            return Ok((z, c));
        }
        let cap = chunk.clamp(1, n);
        let mut a1 = b.alloc(cap * h, "first layer activations")?;
        let mut a2 = b.alloc(cap * h, "pre-feature")?;
        let mut out = b.alloc(cap * d, "Z / C chunk")?;
        for start in (0..n).step_by(cap) {
            let rows = cap.min(n - start);
            let xc = b.upload(&x[start * input..(start + rows) * input], "feature chunk")?;
            b.gemm(Product::linear(rows, h, input), &xc, &self.p[W1], &mut a1)?;
            b.bn_eval_relu(self, &mut a1, rows)?;
            self.linear(b, rows, h, &a1, W2, B2, &mut a2, true)?;
            for (w, bias, dst, on) in [(WS, BS, &mut z, true), (WC, BC, &mut c, want_c)] {
                if on {
                    self.linear(b, rows, h, &a2, w, bias, &mut out, false)?;
                    b.l2norm_rows(&mut out, None, rows, d)?;
                    dst.extend_from_slice(&b.download(&out, "Z / C chunk")?[..rows * d]);
                }
            }
        }
        Ok((z, c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finite differences of L = Σ Z∘A + Σ C∘B through the whole head, in f64.
    #[test]
    fn backward_matches_finite_differences() {
        let dims = HeadDims { input: 5, hidden: 7, zdim: 3 };
        let m = 6;
        let mut head = Head::<f64>::new(dims, 3).unwrap();
        // Non-trivial BatchNorm affine parameters.
        let mut rng = Rng::new(9);
        head.p[GAMMA].iter_mut().for_each(|g| *g = 0.5 + rng.uniform());
        head.p[BETA].iter_mut().for_each(|b| *b = 0.3 * rng.normal());
        let x: Vec<f64> = (0..m * dims.input).map(|_| rng.normal()).collect();
        let a: Vec<f64> = (0..m * dims.zdim).map(|_| rng.normal()).collect();
        let b: Vec<f64> = (0..m * dims.zdim).map(|_| rng.normal()).collect();
        let cpu = Host::new();
        let loss = |h: &mut Head<f64>| {
            let c = h.forward_train(&cpu, &x, m).unwrap();
            c.z.iter().zip(&a).map(|(p, q)| p * q).sum::<f64>() + c.c.iter().zip(&b).map(|(p, q)| p * q).sum::<f64>()
        };
        let cache = head.clone().forward_train(&cpu, &x, m).unwrap();
        let grads = head.backward(&cpu, &x, cache, &a, None, Some(&b)).unwrap();
        for i in 0..N_PARAMS {
            let g = grads[i].as_ref().unwrap();
            for k in 0..head.p[i].len() {
                let mut hp = head.clone();
                hp.p[i][k] += 1e-6;
                let mut hm = head.clone();
                hm.p[i][k] -= 1e-6;
                let fd = (loss(&mut hp) - loss(&mut hm)) / 2e-6;
                assert!((fd - g[k]).abs() < 1e-6 * (1.0 + fd.abs()), "{} [{k}]: fd {fd} vs {}", PARAM_NAMES[i], g[k]);
            }
        }
    }
}
