//! The CPP head (docs/design.md §1.2), forward and hand-written backward, generic over f32 (training speed) and
//! f64 (gradient goldens).
//!
//! Mirrors the reference (LeslieTrue/CPP) module:
//! `pre_feature = Sequential(Linear(in,h), BatchNorm1d(h), ReLU, Linear(h,h), ReLU)`,
//! `Z = F.normalize(subspace(pre))`, `C = F.normalize(cluster(pre))` with `subspace`, `cluster` = `Linear(h,d)`.
//! Weights use PyTorch's layout (Linear weight is out×in, row-major) and PyTorch's default initialisation,
//! so the state can be compared with, and exported to, the PyTorch restatement.
//!
//! This folder holds the head and everything that trains it: the module itself (this file), its optimiser
//! ([`sgd`]), its training loop ([`train`]) and the same head resident on a CUDA device ([`cuda`]).

pub mod cuda;
pub mod sgd;
pub mod train;

use crate::error::{Error, Result};
use crate::linalg::{gemm, Real, Trans};
use crate::rng::Rng;
use rayon::prelude::*;

/// BatchNorm1d ε and running-statistics momentum (PyTorch defaults).
pub const BN_EPS: f64 = 1e-5;
pub const BN_MOMENTUM: f64 = 0.1;
/// `F.normalize`'s floor on the norm.
const NORM_FLOOR: f64 = 1e-12;

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

/// The head's state: trainable parameters plus BatchNorm running statistics.
#[derive(Debug, Clone)]
pub struct Head<T> {
    pub dims: HeadDims,
    pub p: [Vec<T>; N_PARAMS],
    pub running_mean: Vec<T>,
    pub running_var: Vec<T>,
}

/// Gradients of the trainable parameters; `None` = the parameter took no part in the loss (PyTorch's
/// `.grad is None`, which SGD skips entirely).
pub type HeadGrads<T> = [Option<Vec<T>>; N_PARAMS];

/// What the backward pass needs from a training-mode forward pass.
pub struct ForwardCache<T> {
    m: usize,
    /// x̂ of BatchNorm (m×h), then reused.
    xhat: Vec<T>,
    /// 1/√(σ²_B + ε) per hidden unit.
    invstd: Vec<T>,
    /// ReLU(BN(·)) output (m×h): input of the second Linear; its sign gives the first ReLU's mask.
    r1: Vec<T>,
    /// ReLU of the second Linear (m×h): the pre-feature; its sign gives the second ReLU's mask.
    r2: Vec<T>,
    /// Row norms before L2 normalisation of the subspace and cluster heads.
    z_norm: Vec<T>,
    c_norm: Vec<T>,
    /// Normalised outputs, m×d.
    pub z: Vec<T>,
    pub c: Vec<T>,
}

fn t<T: Real>(x: f64) -> T {
    T::from_f64(x)
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
            (0..len).map(|_| t::<T>((2.0 * rng.uniform() - 1.0) * b)).collect()
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

    /// Copies the subspace head into the cluster head (end of the TCR warm-up, docs/design.md §1).
    pub fn copy_subspace_to_cluster(&mut self) {
        self.p[WC] = self.p[WS].clone();
        self.p[BC] = self.p[BS].clone();
    }

    /// Casts every tensor to another float type.
    pub fn cast<U: Real>(&self) -> Head<U> {
        let c = |v: &Vec<T>| v.iter().map(|x| U::from_f64(x.to_f64())).collect::<Vec<U>>();
        Head {
            dims: self.dims,
            p: std::array::from_fn(|i| c(&self.p[i])),
            running_mean: c(&self.running_mean),
            running_var: c(&self.running_var),
        }
    }

    /// out (m×o) ← x (m×k) · Wᵀ + b, W o×k.
    fn linear(&self, m: usize, x: &[T], k: usize, w: usize, b: usize, out: &mut [T]) {
        let o = self.p[b].len();
        gemm(m, o, k, T::one(), x, k, Trans::No, &self.p[w], k, Trans::Yes, T::zero(), out, o);
        let bias = &self.p[b];
        out.par_chunks_mut(o).for_each(|row| row.iter_mut().zip(bias).for_each(|(y, &bb)| *y += bb));
    }

    /// Training-mode forward on a batch `x` (m×input): batch statistics in BatchNorm, running statistics
    /// updated as PyTorch does (momentum 0.1, unbiased variance). Needs m ≥ 2, like BatchNorm1d.
    pub fn forward_train(&mut self, x: &[T], m: usize) -> Result<ForwardCache<T>> {
        let HeadDims { input, hidden: h, zdim: d } = self.dims;
        if m < 2 {
            return Err(crate::invalid_arg!("a training batch needs at least 2 rows (BatchNorm), got {m}"));
        }
        if x.len() != m * input {
            return Err(crate::invalid_arg!("batch has {} values, expected {m}×{input}", x.len()));
        }
        let mut a1 = vec![T::zero(); m * h];
        self.linear(m, x, input, W1, B1, &mut a1);
        // Batch mean and biased variance per hidden unit (two passes, f64 accumulation for f32 stability).
        let (mean, var) = column_mean_var(&a1, m, h);
        let invstd: Vec<T> = var.iter().map(|&v| t::<T>(1.0 / (v + BN_EPS).sqrt())).collect();
        let meant: Vec<T> = mean.iter().map(|&v| t::<T>(v)).collect();
        let mom = t::<T>(BN_MOMENTUM);
        let unbias = m as f64 / (m as f64 - 1.0);
        for j in 0..h {
            self.running_mean[j] = (T::one() - mom) * self.running_mean[j] + mom * meant[j];
            self.running_var[j] = (T::one() - mom) * self.running_var[j] + mom * t::<T>(var[j] * unbias);
        }
        // a1 becomes x̂; r1 = ReLU(γ x̂ + β).
        let mut r1 = vec![T::zero(); m * h];
        let (g, be) = (&self.p[GAMMA], &self.p[BETA]);
        a1.par_chunks_mut(h).zip(r1.par_chunks_mut(h)).for_each(|(xr, rr)| {
            for j in 0..h {
                let xh = (xr[j] - meant[j]) * invstd[j];
                xr[j] = xh;
                let y = g[j] * xh + be[j];
                rr[j] = if y > T::zero() { y } else { T::zero() };
            }
        });
        let mut r2 = vec![T::zero(); m * h];
        self.linear(m, &r1, h, W2, B2, &mut r2);
        relu_in_place(&mut r2);
        let mut z = vec![T::zero(); m * d];
        self.linear(m, &r2, h, WS, BS, &mut z);
        let z_norm = normalize_rows(&mut z, d);
        let mut c = vec![T::zero(); m * d];
        self.linear(m, &r2, h, WC, BC, &mut c);
        let c_norm = normalize_rows(&mut c, d);
        Ok(ForwardCache { m, xhat: a1, invstd, r1, r2, z_norm, c_norm, z, c })
    }

    /// Backward pass of `forward_train`: gradients of all parameters given ∂loss/∂Z and (optionally)
    /// ∂loss/∂C. Without `grad_c` the cluster head gets no gradient (`None`), as in PyTorch when the loss
    /// does not involve it. Consumes the cache (its buffers are reused).
    pub fn backward(&self, x: &[T], cache: ForwardCache<T>, grad_z: &[T], grad_c: Option<&[T]>) -> Result<HeadGrads<T>> {
        let HeadDims { input, hidden: h, zdim: d } = self.dims;
        let ForwardCache { m, mut xhat, invstd, r1, r2, z_norm, c_norm, z, c } = cache;
        if grad_z.len() != m * d || grad_c.is_some_and(|g| g.len() != m * d) {
            return Err(crate::invalid_arg!("gradient shapes must be {m}×{d}"));
        }
        let mut grads: HeadGrads<T> = Default::default();
        // ∂/∂H (m×h) accumulates both heads' contributions.
        let mut gh = vec![T::zero(); m * h];
        let mut head_backward = |out: &[T], norm: &[T], g_out: &[T], w: usize, gw_i: usize, gb_i: usize, beta: T, gh: &mut [T]| {
            let gpre = normalize_backward(out, norm, g_out, d);
            let mut gw = vec![T::zero(); d * h];
            gemm(d, h, m, T::one(), &gpre, d, Trans::Yes, &r2, h, Trans::No, T::zero(), &mut gw, h);
            grads[gw_i] = Some(gw);
            grads[gb_i] = Some(column_sums(&gpre, m, d));
            gemm(m, h, d, T::one(), &gpre, d, Trans::No, &self.p[w], h, Trans::No, beta, gh, h);
        };
        head_backward(&z, &z_norm, grad_z, WS, WS, BS, T::zero(), &mut gh);
        if let Some(gc) = grad_c {
            head_backward(&c, &c_norm, gc, WC, WC, BC, T::one(), &mut gh);
        }
        // Second ReLU, then the second Linear.
        mask_relu(&mut gh, &r2);
        let mut gw2 = vec![T::zero(); h * h];
        gemm(h, h, m, T::one(), &gh, h, Trans::Yes, &r1, h, Trans::No, T::zero(), &mut gw2, h);
        grads[W2] = Some(gw2);
        grads[B2] = Some(column_sums(&gh, m, h));
        // ∂/∂r1 = gh · W2, written over r1 after taking its mask.
        let mut gr1 = vec![T::zero(); m * h];
        gemm(m, h, h, T::one(), &gh, h, Trans::No, &self.p[W2], h, Trans::No, T::zero(), &mut gr1, h);
        drop(gh);
        mask_relu(&mut gr1, &r1);
        drop(r1);
        // BatchNorm (training mode) backward; gr1 now holds ∂/∂y.
        let mut ggamma = vec![0.0f64; h];
        let mut gbeta = vec![0.0f64; h];
        for (gy, xh) in gr1.chunks(h).zip(xhat.chunks(h)) {
            for j in 0..h {
                ggamma[j] += (gy[j] * xh[j]).to_f64();
                gbeta[j] += gy[j].to_f64();
            }
        }
        // ∂/∂a1 = γ/(m σ) (m ∂y − Σ∂y − x̂ Σ(∂y x̂)), written over x̂.
        let inv_m = 1.0 / m as f64;
        let coef: Vec<T> = (0..h).map(|j| self.p[GAMMA][j] * invstd[j]).collect();
        let mean_gy: Vec<T> = gbeta.iter().map(|&s| t::<T>(s * inv_m)).collect();
        let mean_gyx: Vec<T> = ggamma.iter().map(|&s| t::<T>(s * inv_m)).collect();
        xhat.par_chunks_mut(h).zip(gr1.par_chunks(h)).for_each(|(xr, gy)| {
            for j in 0..h {
                xr[j] = coef[j] * (gy[j] - mean_gy[j] - xr[j] * mean_gyx[j]);
            }
        });
        let ga1 = xhat;
        grads[GAMMA] = Some(ggamma.iter().map(|&v| t::<T>(v)).collect());
        grads[BETA] = Some(gbeta.iter().map(|&v| t::<T>(v)).collect());
        let mut gw1 = vec![T::zero(); h * input];
        gemm(h, input, m, T::one(), &ga1, h, Trans::Yes, x, input, Trans::No, T::zero(), &mut gw1, input);
        grads[W1] = Some(gw1);
        grads[B1] = Some(column_sums(&ga1, m, h));
        Ok(grads)
    }

    /// Evaluation-mode forward (BatchNorm with running statistics) of `x` (n×input), in chunks so that
    /// millions of rows need only O(chunk × hidden) scratch. Returns (Z, C), each n×zdim; `want_c = false`
    /// skips C (returns it empty).
    pub fn forward_eval(&self, x: &[T], n: usize, want_c: bool) -> Result<(Vec<T>, Vec<T>)> {
        let HeadDims { input, hidden: h, zdim: d } = self.dims;
        if x.len() != n * input {
            return Err(crate::invalid_arg!("features have {} values, expected {n}×{input}", x.len()));
        }
        const CHUNK: usize = 2048;
        let mut z = vec![T::zero(); n * d];
        let mut c = if want_c { vec![T::zero(); n * d] } else { Vec::new() };
        let scale: Vec<T> = (0..h).map(|j| self.p[GAMMA][j] / (self.running_var[j] + t::<T>(BN_EPS)).sqrt()).collect();
        let shift: Vec<T> = (0..h).map(|j| self.p[BETA][j] - self.running_mean[j] * scale[j]).collect();
        let mut a1 = vec![T::zero(); CHUNK.min(n) * h];
        let mut a2 = vec![T::zero(); CHUNK.min(n) * h];
        for start in (0..n).step_by(CHUNK) {
            let rows = CHUNK.min(n - start);
            let a1 = &mut a1[..rows * h];
            let a2 = &mut a2[..rows * h];
            self.linear(rows, &x[start * input..(start + rows) * input], input, W1, B1, a1);
            a1.par_chunks_mut(h).for_each(|r| {
                for j in 0..h {
                    let y = r[j] * scale[j] + shift[j];
                    r[j] = if y > T::zero() { y } else { T::zero() };
                }
            });
            self.linear(rows, a1, h, W2, B2, a2);
            relu_in_place(a2);
            let zc = &mut z[start * d..(start + rows) * d];
            self.linear(rows, a2, h, WS, BS, zc);
            normalize_rows(zc, d);
            if want_c {
                let cc = &mut c[start * d..(start + rows) * d];
                self.linear(rows, a2, h, WC, BC, cc);
                normalize_rows(cc, d);
            }
        }
        Ok((z, c))
    }
}

/// Column means and biased variances of an m×h matrix, accumulated in f64.
fn column_mean_var<T: Real>(a: &[T], m: usize, h: usize) -> (Vec<f64>, Vec<f64>) {
    let mut mean = vec![0.0f64; h];
    for row in a.chunks(h) {
        for j in 0..h {
            mean[j] += row[j].to_f64();
        }
    }
    mean.iter_mut().for_each(|v| *v /= m as f64);
    let mut var = vec![0.0f64; h];
    for row in a.chunks(h) {
        for j in 0..h {
            let dlt = row[j].to_f64() - mean[j];
            var[j] += dlt * dlt;
        }
    }
    var.iter_mut().for_each(|v| *v /= m as f64);
    (mean, var)
}

fn column_sums<T: Real>(a: &[T], m: usize, cols: usize) -> Vec<T> {
    let mut s = vec![0.0f64; cols];
    for row in a.chunks(cols).take(m) {
        for j in 0..cols {
            s[j] += row[j].to_f64();
        }
    }
    s.into_iter().map(t::<T>).collect()
}

fn relu_in_place<T: Real>(a: &mut [T]) {
    a.par_chunks_mut(4096).for_each(|c| c.iter_mut().for_each(|v| if *v < T::zero() { *v = T::zero() }));
}

/// g ← g where `out > 0`, else 0 (ReLU backward, using the ReLU's own output as the mask).
fn mask_relu<T: Real>(g: &mut [T], out: &[T]) {
    g.par_chunks_mut(4096).zip(out.par_chunks(4096)).for_each(|(gc, oc)| {
        gc.iter_mut().zip(oc).for_each(|(gv, &o)| if o <= T::zero() { *gv = T::zero() })
    });
}

/// `F.normalize(x, dim=1)`: each row divided by max(‖row‖, 1e-12). Returns the divisors.
pub fn normalize_rows<T: Real>(a: &mut [T], d: usize) -> Vec<T> {
    let floor = t::<T>(NORM_FLOOR);
    a.par_chunks_mut(d)
        .map(|row| {
            let n = row.iter().map(|&v| v * v).sum::<T>().sqrt().max(floor);
            row.iter_mut().for_each(|v| *v /= n);
            n
        })
        .collect()
}

/// Backward of `normalize_rows`: y = x/n ⇒ ∂x = (∂y − y (y·∂y)) / n (n above the floor, as always here).
fn normalize_backward<T: Real>(y: &[T], norm: &[T], gy: &[T], d: usize) -> Vec<T> {
    let mut gx = vec![T::zero(); y.len()];
    gx.par_chunks_mut(d).zip(y.par_chunks(d)).zip(gy.par_chunks(d)).zip(norm.par_iter()).for_each(|(((gxr, yr), gr), &n)| {
        let dot: T = yr.iter().zip(gr).map(|(&a, &b)| a * b).sum();
        for k in 0..d {
            gxr[k] = (gr[k] - yr[k] * dot) / n;
        }
    });
    gx
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
        let loss = |h: &mut Head<f64>| {
            let c = h.forward_train(&x, m).unwrap();
            c.z.iter().zip(&a).map(|(p, q)| p * q).sum::<f64>() + c.c.iter().zip(&b).map(|(p, q)| p * q).sum::<f64>()
        };
        let cache = head.clone().forward_train(&x, m).unwrap();
        let grads = head.backward(&x, cache, &a, Some(&b)).unwrap();
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
