//! The seam between the CPP head's algorithm and the device that runs it.
//!
//! The forward, backward and evaluation passes (`mod.rs`), the SGD step (`sgd.rs`) and the training loop
//! (`train.rs`) are written once, as sequences of the operations below. [`Host`] computes them on the CPU
//! in f32 (training, inference) or f64 (gradient goldens) and is the reference; `dyn Gpu` (`cuda.rs`)
//! runs each one as a kernel of `kernels/head.cu` or a cuBLAS product, on a CUDA device or on the test
//! emulator. A buffer is `Vec<T>` on the host and a `GpuBuf<f32>` on a device; an operation on `rows`
//! rows reads and writes only the first `rows × cols` elements, so one buffer serves every chunk.

use super::sgd::SgdGroup;
use super::{HeadDims, HeadOf, BETA, BN_EPS, BN_MOMENTUM, B1, GAMMA, NORM_FLOOR};
use crate::error::Result;
use crate::linalg::{gemm, Real, Trans};
use crate::rate::{mlc_loss, Objective, RateParams};
use crate::device::Device;
use rayon::prelude::*;
use std::marker::PhantomData;

/// A row-major product C (m×n) ← op(A) · op(B) (+ C when `accumulate`), op = transpose where `ta`/`tb`.
/// Leading dimensions follow from the shapes (every operand of the head is a whole matrix).
#[derive(Debug, Clone, Copy)]
pub struct Product {
    pub ta: bool,
    pub tb: bool,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub accumulate: bool,
}

impl Product {
    /// `x (rows×k) · Wᵀ` with W `out×k` (PyTorch's Linear layout).
    pub fn linear(rows: usize, out: usize, k: usize) -> Self {
        Product { ta: false, tb: true, m: rows, n: out, k, accumulate: false }
    }

    /// Leading dimensions of A and B as stored.
    pub fn lda_ldb(&self) -> (usize, usize) {
        (if self.ta { self.m } else { self.k }, if self.tb { self.k } else { self.n })
    }
}

/// The loss of one training step and its gradients, on the backend.
pub struct StepLoss<Buf> {
    pub loss: f64,
    pub grad_z: Buf,
    /// ∂loss/∂C (`None` for the TCR warm-up, which does not involve C).
    pub grad_c: Option<Buf>,
}

/// The operations the CPP head is made of. Every method mirrors one kernel of `kernels/head.cu` (or a
/// product); the host implementation is what each kernel is tested against.
pub trait HeadBackend {
    type T: Real;
    type Buf;
    /// Rows per chunk of the evaluation forward.
    const EVAL_CHUNK: usize;
    /// The whole feature matrix, where the training loop gathers each batch from.
    type Features<'a>
    where
        Self: 'a;

    fn len(&self, b: &Self::Buf) -> usize;
    /// A buffer of `len` elements whose contents are unspecified: every caller writes it before reading.
    fn alloc(&self, len: usize, what: &str) -> Result<Self::Buf>;
    fn upload(&self, x: &[Self::T], what: &str) -> Result<Self::Buf>;
    fn download(&self, b: &Self::Buf, what: &str) -> Result<Vec<Self::T>>;
    fn copy(&self, dst: &mut Self::Buf, src: &Self::Buf, what: &str) -> Result<()>;
    fn gemm(&self, p: Product, a: &Self::Buf, b: &Self::Buf, c: &mut Self::Buf) -> Result<()>;
    /// `y (rows×cols) += bias` per row, then ReLU if `relu`.
    fn bias_act(&self, y: &mut Self::Buf, bias: &Self::Buf, rows: usize, cols: usize, relu: bool) -> Result<()>;
    /// Training-mode BatchNorm + ReLU of `a1` (m×hidden): batch statistics (f64 sums), the running
    /// statistics updated as PyTorch does (momentum 0.1, unbiased variance); `a1` becomes x̂, `r1` the
    /// ReLU output, `invstd` 1/√(σ²+ε).
    fn bn_train(&self, head: &mut HeadOf<Self>, a1: &mut Self::Buf, r1: &mut Self::Buf, invstd: &mut Self::Buf, m: usize) -> Result<()>;
    /// Evaluation-mode `a1 ← ReLU(BN(a1 + b1))` with the running statistics, on `rows` rows.
    fn bn_eval_relu(&self, head: &HeadOf<Self>, a1: &mut Self::Buf, rows: usize) -> Result<()>;
    /// `F.normalize(y, dim=1)` in place; the divisors max(‖row‖, 1e-12) to `norms` when given.
    fn l2norm_rows(&self, y: &mut Self::Buf, norms: Option<&mut Self::Buf>, rows: usize, d: usize) -> Result<()>;
    /// Backward of [`Self::l2norm_rows`]: ∂x = (g − y (y·g)) / n with g = `g1` (+ `g2`).
    fn l2norm_backward(&self, y: &Self::Buf, norms: &Self::Buf, g1: &Self::Buf, g2: Option<&Self::Buf>, rows: usize, d: usize) -> Result<Self::Buf>;
    /// Column sums (f64 accumulation) of a rows×cols matrix: a bias gradient.
    fn col_sums(&self, a: &Self::Buf, rows: usize, cols: usize, what: &str) -> Result<Self::Buf>;
    /// ReLU backward: `g ← 0` where the ReLU's own output `out ≤ 0`.
    fn relu_mask(&self, g: &mut Self::Buf, out: &Self::Buf, len: usize) -> Result<()>;
    /// Backward of [`Self::bn_train`] (the first ReLU's mask taken from `r1`): `xhat` becomes ∂loss/∂a1;
    /// returns (∂γ, ∂β).
    fn bn_backward(&self, head: &HeadOf<Self>, xhat: &mut Self::Buf, gr1: &Self::Buf, r1: &Self::Buf, invstd: &Self::Buf, m: usize) -> Result<(Self::Buf, Self::Buf)>;
    /// PyTorch's SGD update of one tensor (see `sgd.rs`); `first`: the momentum buffer is set to the
    /// gradient instead of read.
    fn sgd(&self, p: &mut Self::Buf, momentum: &mut Self::Buf, g: &Self::Buf, group: SgdGroup, first: bool) -> Result<()>;
    fn features<'a>(&'a self, x: &'a [Self::T]) -> Result<Self::Features<'a>>;
    /// The batch of rows `rows` (checked against n) of the feature matrix.
    fn gather(&self, x: &Self::Features<'_>, rows: &[usize], n: usize, input: usize) -> Result<Self::Buf>;
    /// The TCR (`c = None`) or MLC loss of (Z, C) and its gradients; `budget`: device bytes its
    /// workspaces may take.
    fn loss(&self, z: &Self::Buf, c: Option<&Self::Buf>, m: usize, d: usize, rate: &RateParams, budget: usize) -> Result<StepLoss<Self::Buf>>;
}

/// The CPU, computing in `T` (f32 or f64) on the rayon pool.
pub struct Host<T>(PhantomData<T>);

impl<T> Host<T> {
    pub const fn new() -> Self {
        Host(PhantomData)
    }
}

impl<T> Default for Host<T> {
    fn default() -> Self {
        Self::new()
    }
}

fn t<T: Real>(x: f64) -> T {
    T::from_f64(x)
}

/// Column sums of an m×cols matrix, accumulated in f64.
fn column_sums_f64<T: Real>(a: &[T], cols: usize) -> Vec<f64> {
    let mut s = vec![0.0f64; cols];
    for row in a.chunks(cols) {
        for j in 0..cols {
            s[j] += row[j].to_f64();
        }
    }
    s
}

impl<T: Real> HeadBackend for Host<T> {
    type T = T;
    type Buf = Vec<T>;
    /// Scratch of 2 × 2048 × hidden.
    const EVAL_CHUNK: usize = 2048;
    type Features<'a> = &'a [T];

    fn len(&self, b: &Vec<T>) -> usize {
        b.len()
    }

    fn alloc(&self, len: usize, _what: &str) -> Result<Vec<T>> {
        Ok(vec![T::zero(); len])
    }

    fn upload(&self, x: &[T], _what: &str) -> Result<Vec<T>> {
        Ok(x.to_vec())
    }

    fn download(&self, b: &Vec<T>, _what: &str) -> Result<Vec<T>> {
        Ok(b.clone())
    }

    fn copy(&self, dst: &mut Vec<T>, src: &Vec<T>, _what: &str) -> Result<()> {
        dst.copy_from_slice(src);
        Ok(())
    }

    fn gemm(&self, p: Product, a: &Vec<T>, b: &Vec<T>, c: &mut Vec<T>) -> Result<()> {
        let (lda, ldb) = p.lda_ldb();
        let tr = |x: bool| if x { Trans::Yes } else { Trans::No };
        let beta = if p.accumulate { T::one() } else { T::zero() };
        gemm(p.m, p.n, p.k, T::one(), &a[..p.m * p.k], lda, tr(p.ta), &b[..p.k * p.n], ldb, tr(p.tb), beta, &mut c[..p.m * p.n], p.n);
        Ok(())
    }

    fn bias_act(&self, y: &mut Vec<T>, bias: &Vec<T>, rows: usize, cols: usize, relu: bool) -> Result<()> {
        y[..rows * cols].par_chunks_mut(cols).for_each(|row| {
            for (v, &b) in row.iter_mut().zip(bias) {
                *v += b;
                if relu && *v < T::zero() {
                    *v = T::zero();
                }
            }
        });
        Ok(())
    }

    fn bn_train(&self, head: &mut HeadOf<Self>, a1: &mut Vec<T>, r1: &mut Vec<T>, invstd: &mut Vec<T>, m: usize) -> Result<()> {
        let h = head.dims.hidden;
        // Batch mean and biased variance per hidden unit (two passes, f64 accumulation for f32 stability).
        let mean: Vec<f64> = column_sums_f64(&a1[..m * h], h).into_iter().map(|s| s / m as f64).collect();
        let mut var = vec![0.0f64; h];
        for row in a1[..m * h].chunks(h) {
            for j in 0..h {
                let dlt = row[j].to_f64() - mean[j];
                var[j] += dlt * dlt;
            }
        }
        var.iter_mut().for_each(|v| *v /= m as f64);
        for j in 0..h {
            invstd[j] = t(1.0 / (var[j] + BN_EPS).sqrt());
        }
        let meant: Vec<T> = mean.iter().map(|&v| t(v)).collect();
        let mom = t::<T>(BN_MOMENTUM);
        let unbias = m as f64 / (m as f64 - 1.0);
        for j in 0..h {
            head.running_mean[j] = (T::one() - mom) * head.running_mean[j] + mom * meant[j];
            head.running_var[j] = (T::one() - mom) * head.running_var[j] + mom * t::<T>(var[j] * unbias);
        }
        let (g, be, invstd) = (&head.p[GAMMA], &head.p[BETA], &*invstd);
        a1[..m * h].par_chunks_mut(h).zip(r1.par_chunks_mut(h)).for_each(|(xr, rr)| {
            for j in 0..h {
                let xh = (xr[j] - meant[j]) * invstd[j];
                xr[j] = xh;
                let y = g[j] * xh + be[j];
                rr[j] = if y > T::zero() { y } else { T::zero() };
            }
        });
        Ok(())
    }

    fn bn_eval_relu(&self, head: &HeadOf<Self>, a1: &mut Vec<T>, rows: usize) -> Result<()> {
        let h = head.dims.hidden;
        let (b1, g, be) = (&head.p[B1], &head.p[GAMMA], &head.p[BETA]);
        let scale: Vec<T> = (0..h).map(|j| g[j] / (head.running_var[j] + t::<T>(BN_EPS)).sqrt()).collect();
        let shift: Vec<T> = (0..h).map(|j| be[j] - head.running_mean[j] * scale[j]).collect();
        a1[..rows * h].par_chunks_mut(h).for_each(|r| {
            for j in 0..h {
                let y = (r[j] + b1[j]) * scale[j] + shift[j];
                r[j] = if y > T::zero() { y } else { T::zero() };
            }
        });
        Ok(())
    }

    fn l2norm_rows(&self, y: &mut Vec<T>, norms: Option<&mut Vec<T>>, rows: usize, d: usize) -> Result<()> {
        let floor = t::<T>(NORM_FLOOR);
        let divisors: Vec<T> = y[..rows * d]
            .par_chunks_mut(d)
            .map(|row| {
                let n = row.iter().map(|&v| v * v).sum::<T>().sqrt().max(floor);
                row.iter_mut().for_each(|v| *v /= n);
                n
            })
            .collect();
        if let Some(norms) = norms {
            norms[..rows].copy_from_slice(&divisors);
        }
        Ok(())
    }

    fn l2norm_backward(&self, y: &Vec<T>, norms: &Vec<T>, g1: &Vec<T>, g2: Option<&Vec<T>>, rows: usize, d: usize) -> Result<Vec<T>> {
        let summed: Vec<T>;
        let gy = match g2 {
            Some(g2) => {
                summed = g1.iter().zip(g2).map(|(&a, &b)| a + b).collect();
                &summed
            }
            None => g1,
        };
        let mut gx = vec![T::zero(); rows * d];
        gx.par_chunks_mut(d).zip(y.par_chunks(d)).zip(gy.par_chunks(d)).zip(norms.par_iter()).for_each(|(((gxr, yr), gr), &n)| {
            let dot: T = yr.iter().zip(gr).map(|(&a, &b)| a * b).sum();
            for k in 0..d {
                gxr[k] = (gr[k] - yr[k] * dot) / n;
            }
        });
        Ok(gx)
    }

    fn col_sums(&self, a: &Vec<T>, rows: usize, cols: usize, _what: &str) -> Result<Vec<T>> {
        Ok(column_sums_f64(&a[..rows * cols], cols).into_iter().map(t).collect())
    }

    fn relu_mask(&self, g: &mut Vec<T>, out: &Vec<T>, len: usize) -> Result<()> {
        g[..len].par_chunks_mut(4096).zip(out.par_chunks(4096)).for_each(|(gc, oc)| {
            gc.iter_mut().zip(oc).for_each(|(gv, &o)| if o <= T::zero() { *gv = T::zero() })
        });
        Ok(())
    }

    fn bn_backward(&self, head: &HeadOf<Self>, xhat: &mut Vec<T>, gr1: &Vec<T>, r1: &Vec<T>, invstd: &Vec<T>, m: usize) -> Result<(Vec<T>, Vec<T>)> {
        let h = head.dims.hidden;
        // ∂/∂y of BatchNorm's output: ∂/∂r1 through the ReLU.
        let gy = |i: usize| if r1[i] > T::zero() { gr1[i] } else { T::zero() };
        let mut ggamma = vec![0.0f64; h];
        let mut gbeta = vec![0.0f64; h];
        for (r, xh) in xhat[..m * h].chunks(h).enumerate() {
            for j in 0..h {
                let g = gy(r * h + j);
                ggamma[j] += (g * xh[j]).to_f64();
                gbeta[j] += g.to_f64();
            }
        }
        // ∂/∂a1 = γ/(m σ) (m ∂y − Σ∂y − x̂ Σ(∂y x̂)), written over x̂.
        let inv_m = 1.0 / m as f64;
        let coef: Vec<T> = (0..h).map(|j| head.p[GAMMA][j] * invstd[j]).collect();
        let mean_gy: Vec<T> = gbeta.iter().map(|&s| t::<T>(s * inv_m)).collect();
        let mean_gyx: Vec<T> = ggamma.iter().map(|&s| t::<T>(s * inv_m)).collect();
        xhat[..m * h].par_chunks_mut(h).enumerate().for_each(|(r, xr)| {
            for j in 0..h {
                xr[j] = coef[j] * (gy(r * h + j) - mean_gy[j] - xr[j] * mean_gyx[j]);
            }
        });
        Ok((ggamma.into_iter().map(t).collect(), gbeta.into_iter().map(t).collect()))
    }

    fn sgd(&self, p: &mut Vec<T>, momentum: &mut Vec<T>, g: &Vec<T>, group: SgdGroup, first: bool) -> Result<()> {
        let (lr, mu, wd) = (t::<T>(group.lr), t::<T>(group.momentum), t::<T>(group.weight_decay));
        const CH: usize = 1 << 14;
        p.par_chunks_mut(CH).zip(momentum.par_chunks_mut(CH)).zip(g.par_chunks(CH)).for_each(|((pc, bc), gc)| {
            for k in 0..pc.len() {
                let gk = gc[k] + wd * pc[k];
                bc[k] = if first { gk } else { mu * bc[k] + gk };
                pc[k] -= lr * bc[k];
            }
        });
        Ok(())
    }

    fn features<'a>(&'a self, x: &'a [T]) -> Result<&'a [T]> {
        Ok(x)
    }

    fn gather(&self, x: &&[T], rows: &[usize], n: usize, input: usize) -> Result<Vec<T>> {
        let mut xb = Vec::with_capacity(rows.len() * input);
        for &r in rows {
            if r >= n {
                return Err(crate::invalid_arg!("batch row {r} out of range (n = {n})"));
            }
            xb.extend_from_slice(&x[r * input..(r + 1) * input]);
        }
        Ok(xb)
    }

    fn loss(&self, z: &Vec<T>, c: Option<&Vec<T>>, m: usize, d: usize, rate: &RateParams, _budget: usize) -> Result<StepLoss<Vec<T>>> {
        let objective = if c.is_some() { Objective::Mlc } else { Objective::Tcr };
        let out = mlc_loss(&Device::Cpu, z, c.map_or(&[][..], |c| &c[..]), m, d, rate, objective)?;
        Ok(StepLoss { loss: out.loss.to_f64(), grad_z: out.grad_z, grad_c: c.map(|_| out.grad_c) })
    }
}

/// Sizes of a head as the operations above see them (checked once where a batch enters).
pub(crate) fn check_rows(dims: HeadDims, len: usize, rows: usize, what: &str) -> Result<()> {
    if len != rows * dims.input {
        return Err(crate::invalid_arg!("{what} has {len} values, expected {rows}×{}", dims.input));
    }
    Ok(())
}
