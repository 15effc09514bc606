//! The CPP head on CUDA: the same module, forward passes, hand-written backward and
//! two-group SGD as [`super`] (the CPU head), [`super::sgd`] and [`super::train::Trainer::step`], with the
//! parameters (f32 master weights), BatchNorm running statistics and momentum buffers resident on the
//! device. Only the scalar loss comes back to the host during training.
//!
//! - Matrix products go through the device's one GEMM helper family ([`Gpu::gemm_tf32`] =
//!   [`CudaDevice::gemm_tf32_rm`]): TF32 tensor cores with f32 accumulation, so results differ from the
//!   CPU's f32 by ~1e-3 relative per product (tests/head_cuda.rs uses tolerances sized for that).
//! - Every other step is a kernel of `kernels/head.cu`, each mirroring one loop of `head/mod.rs` or `head/sgd.rs`
//!   (column reductions in f64 as there).
//! - The loss and its gradients come from [`crate::rate::cuda`] on the device-resident Z and C.
//!
//! The orchestration is written against [`Gpu`], so CI runs it on the kernel emulator of
//! `rate/cuda/emu.rs` (extended by `head/cuda/emu.rs`) against the CPU head: every GEMM's shapes,
//! operands, leading dimensions and offsets, and the kernels' arguments and grids.

use super::{Head, HeadDims, HeadGrads, B1, B2, BC, BETA, BS, CLUSTER_PARAMS, GAMMA, N_PARAMS, PARAM_NAMES, W1, W2, WC, WS};
use super::sgd::SgdGroup;
use super::train::{check_loss, sgd_groups, Batches};
use crate::cluster::params::FitParams;
use crate::device::cuda::{i32_of, KernelFile, CudaDevice, Gpu, GpuBuf, KArg, RmGemm};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::progress::{report, Progress};
use crate::rate::cuda::{mlc_loss_on, CHUNK_BUDGET_BYTES};
use crate::rate::RateParams;
use std::sync::Arc;

pub static FILE: KernelFile = KernelFile { name: "head", source: include_str!("../../../kernels/head.cu") };
/// Threads per block of the flat (grid-stride) and column-reduction kernels (the latter need 256).
const THREADS: u32 = 256;
/// Threads per block of the one-block-per-row kernels (rows of d ≤ a few thousand).
const ROW_THREADS: u32 = 128;
/// Rows per chunk of the evaluation forward: 2 × 32768 × hidden floats of scratch (512 MiB each at
/// hidden 4096), big enough that every GEMM runs at full tensor-core speed.
pub const EVAL_CHUNK: usize = 32768;

/// Grid of a grid-stride kernel over `total` elements (capped: each thread then loops).
fn flat_grid(total: usize) -> (u32, u32, u32) {
    (total.div_ceil(THREADS as usize).clamp(1, 1 << 20) as u32, 1, 1)
}

/// Grid of a column-reduction kernel (32 columns per block).
fn col_grid(cols: usize) -> Result<(u32, u32, u32)> {
    Ok((u32::try_from(cols.div_ceil(32)).map_err(|_| crate::invalid_arg!("{cols} columns"))?, 1, 1))
}

/// Grid of a one-block-per-row kernel.
fn row_grid(rows: usize) -> Result<(u32, u32, u32)> {
    Ok((u32::try_from(rows).map_err(|_| crate::invalid_arg!("{rows} rows exceed a CUDA grid"))?, 1, 1))
}

/// Row-major `out (m×o) = x (m×k) · Wᵀ` with W o×k (PyTorch's Linear layout), in TF32.
fn linear_gemm(g: &dyn Gpu, m: usize, k: usize, o: usize, x: u64, w: u64, out: u64) -> Result<()> {
    g.gemm_tf32(&RmGemm { ta: false, tb: true, m, n: o, k, alpha: 1.0, a: (x, k, 0), b: (w, k, 0), beta: 0.0, c: (out, o, 0), batch: 1 })
}

/// `y (rows×cols) += b` per row, then ReLU if `relu`.
fn bias_act(g: &dyn Gpu, y: u64, b: &GpuBuf<f32>, rows: usize, cols: usize, relu: bool) -> Result<()> {
    let total = rows * cols;
    g.launch(&FILE, "head_bias_act", flat_grid(total), THREADS, 0, &[KArg::Ptr(y), b.arg(), KArg::I64(total as i64), KArg::I32(i32_of(cols, "cols")?), KArg::I32(relu as i32)])
}

/// Row L2 normalisation in place; divisors to `norms` (0 = not kept).
fn l2norm_rows(g: &dyn Gpu, y: u64, norms: u64, rows: usize, d: usize) -> Result<()> {
    g.launch(&FILE, "head_l2norm_rows", row_grid(rows)?, ROW_THREADS, 0, &[KArg::Ptr(y), KArg::Ptr(norms), KArg::I32(i32_of(rows, "rows")?), KArg::I32(i32_of(d, "d")?)])
}

/// Column sums (f64 accumulation) of a rows×cols matrix into a new buffer: a bias gradient.
fn col_sums(g: &dyn Gpu, a: &GpuBuf<f32>, rows: usize, cols: usize, what: &str) -> Result<GpuBuf<f32>> {
    let out = g.alloc_f32(cols, false, what)?;
    g.launch(&FILE, "head_col_sums", col_grid(cols)?, THREADS, 0, &[a.arg(), KArg::I32(i32_of(rows, "rows")?), KArg::I32(i32_of(cols, "cols")?), out.arg()])?;
    Ok(out)
}

/// What the backward pass needs from a training-mode forward pass (device buffers; see
/// `head::ForwardCache`, whose fields these mirror).
pub(crate) struct DeviceCache {
    m: usize,
    xhat: GpuBuf<f32>,
    invstd: GpuBuf<f32>,
    r1: GpuBuf<f32>,
    r2: GpuBuf<f32>,
    z_norm: GpuBuf<f32>,
    c_norm: GpuBuf<f32>,
    pub(crate) z: GpuBuf<f32>,
    pub(crate) c: GpuBuf<f32>,
}

/// Gradients on the device, `None` where the parameter took no part in the loss.
pub(crate) type DeviceGrads = Vec<Option<GpuBuf<f32>>>;

/// The head's state on a device, driven through [`Gpu`] (the real device or the test emulator).
pub(crate) struct DeviceHead {
    dims: HeadDims,
    /// The trainable tensors, `PARAM_NAMES` order, PyTorch layout.
    p: Vec<GpuBuf<f32>>,
    running_mean: GpuBuf<f32>,
    running_var: GpuBuf<f32>,
    /// SGD momentum buffers, created at a parameter's first update (as in sgd.rs).
    momentum: Vec<Option<GpuBuf<f32>>>,
}

impl DeviceHead {
    pub(crate) fn upload(g: &dyn Gpu, head: &Head<f32>) -> Result<Self> {
        let p = (0..N_PARAMS).map(|i| g.upload_f32(&head.p[i], PARAM_NAMES[i])).collect::<Result<Vec<_>>>()?;
        Ok(DeviceHead {
            dims: head.dims,
            p,
            running_mean: g.upload_f32(&head.running_mean, "BatchNorm running mean")?,
            running_var: g.upload_f32(&head.running_var, "BatchNorm running variance")?,
            momentum: (0..N_PARAMS).map(|_| None).collect(),
        })
    }

    pub(crate) fn download(&self, g: &dyn Gpu) -> Result<Head<f32>> {
        let mut p: [Vec<f32>; N_PARAMS] = Default::default();
        for (i, t) in p.iter_mut().enumerate() {
            *t = g.download_f32(&self.p[i], PARAM_NAMES[i])?;
        }
        let rm = g.download_f32(&self.running_mean, "BatchNorm running mean")?;
        let rv = g.download_f32(&self.running_var, "BatchNorm running variance")?;
        Head::from_parts(self.dims, p, rm, rv)
    }

    /// Training-mode forward of `x` (m×input on the device); updates the running statistics.
    /// Mirrors `Head::forward_train`.
    pub(crate) fn forward_train(&mut self, g: &dyn Gpu, x: &GpuBuf<f32>, m: usize) -> Result<DeviceCache> {
        let HeadDims { input, hidden: h, zdim: d } = self.dims;
        if m < 2 {
            return Err(crate::invalid_arg!("a training batch needs at least 2 rows (BatchNorm), got {m}"));
        }
        if x.len() != m * input {
            return Err(crate::invalid_arg!("batch has {} values, expected {m}×{input}", x.len()));
        }
        let (mi, hi) = (i32_of(m, "batch")?, i32_of(h, "hidden")?);
        // Every buffer below is written in full (GEMM with β = 0, or a kernel) before it is read.
        let a1 = g.alloc_f32(m * h, false, "first Linear output")?;
        linear_gemm(g, m, input, h, x.ptr(), self.p[W1].ptr(), a1.ptr())?;
        bias_act(g, a1.ptr(), &self.p[B1], m, h, false)?;
        let r1 = g.alloc_f32(m * h, false, "BatchNorm+ReLU output")?;
        let invstd = g.alloc_f32(h, false, "BatchNorm 1/σ")?;
        g.launch(
            &FILE,
            "head_bn_train_fwd",
            col_grid(h)?,
            THREADS,
            0,
            &[a1.arg(), r1.arg(), self.p[GAMMA].arg(), self.p[BETA].arg(), invstd.arg(), self.running_mean.arg(), self.running_var.arg(), KArg::I32(mi), KArg::I32(hi)],
        )?;
        let r2 = g.alloc_f32(m * h, false, "pre-feature")?;
        linear_gemm(g, m, h, h, r1.ptr(), self.p[W2].ptr(), r2.ptr())?;
        bias_act(g, r2.ptr(), &self.p[B2], m, h, true)?;
        let head_out = |w: usize, b: usize, what: &str| -> Result<(GpuBuf<f32>, GpuBuf<f32>)> {
            let y = g.alloc_f32(m * d, false, what)?;
            linear_gemm(g, m, h, d, r2.ptr(), self.p[w].ptr(), y.ptr())?;
            bias_act(g, y.ptr(), &self.p[b], m, d, false)?;
            let norm = g.alloc_f32(m, false, "row norms")?;
            l2norm_rows(g, y.ptr(), norm.ptr(), m, d)?;
            Ok((y, norm))
        };
        let (z, z_norm) = head_out(WS, BS, "Z")?;
        let (c, c_norm) = head_out(WC, BC, "C")?;
        Ok(DeviceCache { m, xhat: a1, invstd, r1, r2, z_norm, c_norm, z, c })
    }

    /// Backward of [`Self::forward_train`] given ∂loss/∂Z (`grad_z`, plus `grad_z2` when Z fed the loss
    /// twice, as with `single_head`) and optionally ∂loss/∂C (else the cluster head gets no gradient).
    /// Mirrors `Head::backward`.
    pub(crate) fn backward(
        &self,
        g: &dyn Gpu,
        x: &GpuBuf<f32>,
        cache: DeviceCache,
        grad_z: &GpuBuf<f32>,
        grad_z2: Option<&GpuBuf<f32>>,
        grad_c: Option<&GpuBuf<f32>>,
    ) -> Result<DeviceGrads> {
        let HeadDims { input, hidden: h, zdim: d } = self.dims;
        let DeviceCache { m, xhat, invstd, r1, r2, z_norm, c_norm, z, c } = cache;
        for (name, b) in [("∂loss/∂Z", Some(grad_z)), ("∂loss/∂Z (second)", grad_z2), ("∂loss/∂C", grad_c)] {
            if b.is_some_and(|b| b.len() != m * d) {
                return Err(crate::invalid_arg!("{name} must be {m}×{d}"));
            }
        }
        let (mi, hi, di) = (i32_of(m, "batch")?, i32_of(h, "hidden")?, i32_of(d, "zdim")?);
        let mut grads: DeviceGrads = (0..N_PARAMS).map(|_| None).collect();
        // ∂/∂H (m×h) accumulates both heads' contributions (the first writes it with β = 0).
        let gh = g.alloc_f32(m * h, false, "∂loss/∂pre-feature")?;
        let mut head_backward = |out: &GpuBuf<f32>, norm: &GpuBuf<f32>, g1: &GpuBuf<f32>, g2: u64, w: usize, b: usize, beta: f32| -> Result<()> {
            let gpre = g.alloc_f32(m * d, false, "∂loss/∂(head before normalisation)")?;
            g.launch(&FILE, "head_l2norm_rows_bwd", row_grid(m)?, ROW_THREADS, 0, &[out.arg(), norm.arg(), g1.arg(), KArg::Ptr(g2), gpre.arg(), KArg::I32(mi), KArg::I32(di)])?;
            let gw = g.alloc_f32(d * h, false, PARAM_NAMES[w])?;
            // ∂W (d×h) = gpreᵀ (d×m) · r2 (m×h)
            g.gemm_tf32(&RmGemm { ta: true, tb: false, m: d, n: h, k: m, alpha: 1.0, a: (gpre.ptr(), d, 0), b: (r2.ptr(), h, 0), beta: 0.0, c: (gw.ptr(), h, 0), batch: 1 })?;
            grads[w] = Some(gw);
            grads[b] = Some(col_sums(g, &gpre, m, d, PARAM_NAMES[b])?);
            // ∂H (m×h) (+)= gpre (m×d) · W (d×h)
            g.gemm_tf32(&RmGemm { ta: false, tb: false, m, n: h, k: d, alpha: 1.0, a: (gpre.ptr(), d, 0), b: (self.p[w].ptr(), h, 0), beta, c: (gh.ptr(), h, 0), batch: 1 })
        };
        head_backward(&z, &z_norm, grad_z, grad_z2.map_or(0, |b| b.ptr()), WS, BS, 0.0)?;
        if let Some(gc) = grad_c {
            head_backward(&c, &c_norm, gc, 0, WC, BC, 1.0)?;
        }
        // Second ReLU, then the second Linear.
        let total = (m * h) as i64;
        g.launch(&FILE, "head_relu_mask", flat_grid(m * h), THREADS, 0, &[gh.arg(), r2.arg(), KArg::I64(total)])?;
        drop(r2);
        let gw2 = g.alloc_f32(h * h, false, PARAM_NAMES[W2])?;
        g.gemm_tf32(&RmGemm { ta: true, tb: false, m: h, n: h, k: m, alpha: 1.0, a: (gh.ptr(), h, 0), b: (r1.ptr(), h, 0), beta: 0.0, c: (gw2.ptr(), h, 0), batch: 1 })?;
        grads[W2] = Some(gw2);
        grads[B2] = Some(col_sums(g, &gh, m, h, PARAM_NAMES[B2])?);
        // ∂/∂r1 (m×h) = gh · W2
        let gr1 = g.alloc_f32(m * h, false, "∂loss/∂(BatchNorm+ReLU output)")?;
        g.gemm_tf32(&RmGemm { ta: false, tb: false, m, n: h, k: h, alpha: 1.0, a: (gh.ptr(), h, 0), b: (self.p[W2].ptr(), h, 0), beta: 0.0, c: (gr1.ptr(), h, 0), batch: 1 })?;
        drop(gh);
        // First ReLU's mask and BatchNorm backward: x̂ becomes ∂loss/∂a1.
        let ggamma = g.alloc_f32(h, false, PARAM_NAMES[GAMMA])?;
        let gbeta = g.alloc_f32(h, false, PARAM_NAMES[BETA])?;
        g.launch(
            &FILE,
            "head_bn_bwd",
            col_grid(h)?,
            THREADS,
            0,
            &[xhat.arg(), gr1.arg(), r1.arg(), self.p[GAMMA].arg(), invstd.arg(), ggamma.arg(), gbeta.arg(), KArg::I32(mi), KArg::I32(hi)],
        )?;
        let ga1 = xhat;
        grads[GAMMA] = Some(ggamma);
        grads[BETA] = Some(gbeta);
        let gw1 = g.alloc_f32(h * input, false, PARAM_NAMES[W1])?;
        // ∂W1 (h×input) = ga1ᵀ (h×m) · x (m×input)
        g.gemm_tf32(&RmGemm { ta: true, tb: false, m: h, n: input, k: m, alpha: 1.0, a: (ga1.ptr(), h, 0), b: (x.ptr(), input, 0), beta: 0.0, c: (gw1.ptr(), input, 0), batch: 1 })?;
        grads[W1] = Some(gw1);
        grads[B1] = Some(col_sums(g, &ga1, m, h, PARAM_NAMES[B1])?);
        Ok(grads)
    }

    /// SGD with momentum on every parameter that has a gradient (sgd.rs semantics; `groups` = (MLP and
    /// subspace head, cluster head)).
    pub(crate) fn sgd_step(&mut self, g: &dyn Gpu, grads: &DeviceGrads, groups: (SgdGroup, SgdGroup)) -> Result<()> {
        for (i, gr) in grads.iter().enumerate() {
            let Some(gr) = gr else { continue };
            let SgdGroup { lr, momentum, weight_decay } = if CLUSTER_PARAMS.contains(&i) { groups.1 } else { groups.0 };
            let n = self.p[i].len();
            let first = self.momentum[i].is_none() || momentum == 0.0;
            if self.momentum[i].is_none() {
                // Written (buf = g) before it is read, since `first` is set on this update.
                self.momentum[i] = Some(g.alloc_f32(n, false, "SGD momentum buffer")?);
            }
            let buf = self.momentum[i].as_ref().ok_or_else(|| Error::Internal("momentum buffer".into()))?;
            g.launch(
                &FILE,
                "head_sgd",
                flat_grid(n),
                THREADS,
                0,
                &[
                    self.p[i].arg(),
                    buf.arg(),
                    gr.arg(),
                    KArg::I64(n as i64),
                    KArg::F32(lr as f32),
                    KArg::F32(momentum as f32),
                    KArg::F32(weight_decay as f32),
                    KArg::I32(first as i32),
                ],
            )?;
        }
        Ok(())
    }

    /// The subspace head copied into the cluster head (end of the TCR warm-up).
    fn copy_subspace_to_cluster(&self, g: &dyn Gpu) -> Result<()> {
        g.copy_f32(self.p[WC].ptr(), self.p[WS].ptr(), self.p[WS].len(), "subspace weight → cluster weight")?;
        g.copy_f32(self.p[BC].ptr(), self.p[BS].ptr(), self.p[BS].len(), "subspace bias → cluster bias")
    }

    /// One training step on the device batch `x` (m×input): what `Trainer::step` does (TCR while
    /// `step <= warmup`, else MLC with Π from C, or from Z with `single_head`; backward; SGD; head copy
    /// after step `warmup`). Returns the loss.
    pub(crate) fn step(&mut self, g: &dyn Gpu, cfg: &StepConfig, x: &GpuBuf<f32>, m: usize, step: usize) -> Result<f64> {
        let d = self.dims.zdim;
        let cache = self.forward_train(g, x, m)?;
        let (loss, grads) = if step <= cfg.warmup {
            let out = mlc_loss_on(g, &cache.z, None, m, d, &cfg.rate, cfg.loss_budget)?;
            (out.loss, self.backward(g, x, cache, &out.grad_z, None, None)?)
        } else if cfg.single_head {
            // Π from Z: Z feeds both arguments, so its gradient is the sum of both.
            let out = mlc_loss_on(g, &cache.z, Some(&cache.z), m, d, &cfg.rate, cfg.loss_budget)?;
            (out.loss, self.backward(g, x, cache, &out.grad_z, out.grad_c.as_ref(), None)?)
        } else {
            let out = mlc_loss_on(g, &cache.z, Some(&cache.c), m, d, &cfg.rate, cfg.loss_budget)?;
            (out.loss, self.backward(g, x, cache, &out.grad_z, None, out.grad_c.as_ref())?)
        };
        check_loss(loss, step)?;
        self.sgd_step(g, &grads, cfg.groups)?;
        if step == cfg.warmup {
            self.copy_subspace_to_cluster(g)?;
        }
        Ok(loss)
    }

    /// Evaluation-mode forward of host rows `x` (n×input) in chunks of `chunk` rows: (Z, C), each n×zdim,
    /// C empty unless `want_c`. Mirrors `Head::forward_eval`.
    pub(crate) fn forward_eval(&self, g: &dyn Gpu, x: &[f32], n: usize, want_c: bool, chunk: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        let HeadDims { input, hidden: h, zdim: d } = self.dims;
        if x.len() != n * input {
            return Err(crate::invalid_arg!("features have {} values, expected {n}×{input}", x.len()));
        }
        let mut z = Vec::with_capacity(n * d);
        let mut c = Vec::with_capacity(if want_c { n * d } else { 0 });
        if n == 0 {
            return Ok((z, c));
        }
        let cap = chunk.clamp(1, n);
        // Written by a GEMM (β = 0) before anything reads them, in every chunk.
        let a1 = g.alloc_f32(cap * h, false, "first layer activations")?;
        let a2 = g.alloc_f32(cap * h, false, "pre-feature")?;
        let out = g.alloc_f32(cap * d, false, "Z / C chunk")?;
        let hi = i32_of(h, "hidden")?;
        for start in (0..n).step_by(cap) {
            let rows = cap.min(n - start);
            let xc = g.upload_f32(&x[start * input..(start + rows) * input], "feature chunk")?;
            linear_gemm(g, rows, input, h, xc.ptr(), self.p[W1].ptr(), a1.ptr())?;
            let total = (rows * h) as i64;
            g.launch(
                &FILE,
                "head_bn_eval_relu",
                flat_grid(rows * h),
                THREADS,
                0,
                &[a1.arg(), self.p[B1].arg(), self.p[GAMMA].arg(), self.p[BETA].arg(), self.running_mean.arg(), self.running_var.arg(), KArg::I64(total), KArg::I32(hi)],
            )?;
            linear_gemm(g, rows, h, h, a1.ptr(), self.p[W2].ptr(), a2.ptr())?;
            bias_act(g, a2.ptr(), &self.p[B2], rows, h, true)?;
            for (w, b, dst, on) in [(WS, BS, &mut z, true), (WC, BC, &mut c, want_c)] {
                if !on {
                    continue;
                }
                linear_gemm(g, rows, h, d, a2.ptr(), self.p[w].ptr(), out.ptr())?;
                bias_act(g, out.ptr(), &self.p[b], rows, d, false)?;
                l2norm_rows(g, out.ptr(), 0, rows, d)?;
                let host = g.download_f32(&out, "Z / C chunk")?;
                dst.extend_from_slice(&host[..rows * d]);
            }
        }
        Ok((z, c))
    }
}

/// The constants of a training step (from [`FitParams`]).
#[derive(Debug, Clone)]
pub struct StepConfig {
    pub warmup: usize,
    pub single_head: bool,
    pub rate: RateParams,
    /// (MLP + subspace head, cluster head), as in `Trainer`.
    pub groups: (SgdGroup, SgdGroup),
    /// Device bytes the loss's per-chunk workspaces may take.
    pub loss_budget: usize,
}

impl StepConfig {
    /// Automatic (zero) settings in `params` are resolved first, as [`super::train::Trainer::new`] does.
    pub fn new(params: &FitParams) -> Self {
        let params = &params.resolve(params.batch.max(2));
        StepConfig { warmup: params.warmup, single_head: params.single_head, rate: params.rate_params(), groups: sgd_groups(params), loss_budget: CHUNK_BUDGET_BYTES }
    }
}

/// The CPP head held on a CUDA device, with its SGD momentum buffers: built from a CPU [`Head`], trained
/// and evaluated there, copied back with [`CudaHead::to_head`].
pub struct CudaHead {
    dev: Arc<CudaDevice>,
    state: DeviceHead,
}

impl CudaHead {
    /// Copies `head` (parameters and running statistics) to `dev`; momentum buffers start empty, as a
    /// fresh optimizer's.
    pub fn from_head(dev: &Arc<CudaDevice>, head: &Head<f32>) -> Result<Self> {
        Ok(CudaHead { dev: dev.clone(), state: DeviceHead::upload(&**dev, head)? })
    }

    /// The current parameters and running statistics as a CPU head.
    pub fn to_head(&self) -> Result<Head<f32>> {
        self.state.download(&*self.dev)
    }

    pub fn dims(&self) -> HeadDims {
        self.state.dims
    }

    pub fn device(&self) -> &Arc<CudaDevice> {
        &self.dev
    }

    /// Copies a host batch (m×input) to the device, for [`CudaHead::step`].
    pub fn upload_batch(&self, xb: &[f32]) -> Result<GpuBuf<f32>> {
        self.dev.upload(xb, "training batch")
    }

    /// Evaluation-mode (Z, C) of `x` (n×input, host), in chunks of [`EVAL_CHUNK`] rows; C is empty
    /// unless `want_c`.
    pub fn forward_eval(&self, x: &[f32], n: usize, want_c: bool) -> Result<(Vec<f32>, Vec<f32>)> {
        self.state.forward_eval(&*self.dev, x, n, want_c, EVAL_CHUNK)
    }

    /// One training step on a device batch (see `Trainer::step`); returns the loss.
    pub fn step(&mut self, cfg: &StepConfig, xb: &GpuBuf<f32>, m: usize, step: usize) -> Result<f64> {
        self.state.step(&*self.dev, cfg, xb, m, step)
    }

    /// Training-mode forward and backward on the host batch `xb` with given ∂loss/∂Z and ∂loss/∂C
    /// (no SGD; the running statistics move as in any training forward): (Z, C, gradients), all
    /// downloaded. For comparing with `Head::forward_train` + `Head::backward`.
    pub fn forward_backward(&mut self, xb: &[f32], m: usize, grad_z: &[f32], grad_c: Option<&[f32]>) -> Result<(Vec<f32>, Vec<f32>, HeadGrads<f32>)> {
        forward_backward_on(&*self.dev, &mut self.state, xb, m, grad_z, grad_c)
    }
}

pub(crate) fn forward_backward_on(
    g: &dyn Gpu,
    state: &mut DeviceHead,
    xb: &[f32],
    m: usize,
    grad_z: &[f32],
    grad_c: Option<&[f32]>,
) -> Result<(Vec<f32>, Vec<f32>, HeadGrads<f32>)> {
    let x = g.upload_f32(xb, "batch")?;
    let cache = state.forward_train(g, &x, m)?;
    let z = g.download_f32(&cache.z, "Z")?;
    let c = g.download_f32(&cache.c, "C")?;
    let gz = g.upload_f32(grad_z, "∂loss/∂Z")?;
    let gc = grad_c.map(|v| g.upload_f32(v, "∂loss/∂C")).transpose()?;
    let grads = state.backward(g, &x, cache, &gz, None, gc.as_ref())?;
    let mut out: HeadGrads<f32> = Default::default();
    for (i, gr) in grads.iter().enumerate() {
        if let Some(b) = gr {
            out[i] = Some(g.download_f32(b, PARAM_NAMES[i])?);
        }
    }
    Ok((z, c, out))
}

/// A head ready for evaluation-mode forwards on a device: the CPU head itself, or a copy on the GPU
/// (uploaded once, then used for any number of calls).
pub enum HeadOn<'a> {
    Cpu(&'a Head<f32>),
    Cuda(Box<CudaHead>),
}

impl<'a> HeadOn<'a> {
    pub fn new(device: &Device, head: &'a Head<f32>) -> Result<Self> {
        Ok(match device {
            Device::Cpu => HeadOn::Cpu(head),
            Device::Cuda(dev) => HeadOn::Cuda(Box::new(CudaHead::from_head(dev, head)?)),
        })
    }

    /// Eval-mode (Z, C) of `x` (n×input); C empty unless `want_c`. See `Head::forward_eval`.
    pub fn forward_eval(&self, x: &[f32], n: usize, want_c: bool) -> Result<(Vec<f32>, Vec<f32>)> {
        match self {
            HeadOn::Cpu(h) => h.forward_eval(x, n, want_c),
            HeadOn::Cuda(h) => h.forward_eval(x, n, want_c),
        }
    }
}

/// Eval-mode (Z, C) of `x` on `device`: the CPU head, or a copy of it on the GPU.
pub fn forward_eval_on(device: &Device, head: &Head<f32>, x: &[f32], n: usize, want_c: bool) -> Result<(Vec<f32>, Vec<f32>)> {
    HeadOn::new(device, head)?.forward_eval(x, n, want_c)
}

/// `train` on a CUDA device: the features go to the device once, each step gathers its batch there,
/// and the trained head comes back into `head` at the end. Trains in f32 (TF32 products) whatever `T`.
pub(crate) fn train_cuda<T: crate::linalg::Real>(
    head: &mut Head<T>,
    x: &[T],
    n: usize,
    params: &FitParams,
    dev: &Arc<CudaDevice>,
    batches: Batches<'_>,
    progress: &mut dyn Progress,
) -> Result<Vec<f64>> {
    train_on(&**dev, head, x, n, params, batches, progress)
}

/// [`train_cuda`] on any [`Gpu`] (the tests run it on the kernel emulator).
pub(crate) fn train_on<T: crate::linalg::Real>(
    g: &dyn Gpu,
    head: &mut Head<T>,
    x: &[T],
    n: usize,
    params: &FitParams,
    batches: Batches<'_>,
    progress: &mut dyn Progress,
) -> Result<Vec<f64>> {
    let input = head.dims.input;
    if x.len() != n * input {
        return Err(crate::invalid_arg!("features have {} values, expected {n}×{input}", x.len()));
    }
    let x32: Vec<f32> = x.iter().map(|v| v.to_f64() as f32).collect();
    let xd = g.upload_f32(&x32, "features")?;
    drop(x32);
    let mut dh = DeviceHead::upload(g, &head.cast::<f32>())?;
    let cfg = StepConfig::new(params);
    let total = batches.total as u64;
    let mut losses = Vec::with_capacity(batches.total);
    let xi = i32_of(input, "input")?;
    report(progress, "train", 0, total)?;
    for (step, rows) in batches.iter.enumerate() {
        let m = rows.len();
        let idx = rows
            .iter()
            .map(|&r| if r < n { i32_of(r, "row") } else { Err(crate::invalid_arg!("batch row {r} out of range (n = {n})")) })
            .collect::<Result<Vec<i32>>>()?;
        let idx = g.upload_i32(&idx, "batch row indices")?;
        // Written in full by the gather.
        let xb = g.alloc_f32(m * input, false, "training batch")?;
        g.launch(&FILE, "head_gather_rows", flat_grid(m * input), THREADS, 0, &[xd.arg(), idx.arg(), KArg::I32(i32_of(m, "batch")?), KArg::I32(xi), xb.arg()])?;
        losses.push(dh.step(g, &cfg, &xb, m, step)?);
        report(progress, "train", step as u64 + 1, total)?;
    }
    *head = dh.download(g)?.cast::<T>();
    Ok(losses)
}

#[cfg(test)]
pub(crate) mod emu;
