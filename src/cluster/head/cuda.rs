//! The CPP head's operations ([`HeadBackend`]) on CUDA: the forward, backward, SGD step and training loop
//! written once in `mod.rs`, `sgd.rs` and `train.rs` run here with the parameters (f32 master weights),
//! BatchNorm running statistics and momentum buffers resident on the device. Only the scalar loss comes
//! back to the host during training.
//!
//! - Products use TF32 tensor cores with f32 accumulation ([`Gpu::gemm_tf32`]), so results differ from
//!   the CPU's f32 by ~1e-3 relative per product (the GPU tests use tolerances sized for that).
//! - Every other operation is a kernel of `kernels/head.cu` (column reductions in f64, as on the CPU).
//! - The loss and its gradients come from [`crate::rate::cuda`] on the device-resident Z and C.
//!
//! Implemented for `dyn Gpu`, so CI runs the same code on the kernel emulator (`emu.rs`) against the CPU:
//! every product's shapes and operands, and the kernels' arguments and grids.

use super::backend::StepLoss;
use super::sgd::{Sgd, SgdGroup};
use super::train::{train_step, StepConfig};
use super::{Head, HeadBackend, HeadDims, HeadGrads, HeadOf, Host, Product, B1, BETA, GAMMA, PARAM_NAMES};
use crate::device::cuda::{i32_of, CudaDevice, Gpu, GpuBuf, KArg, KernelFile, RmGemm};
use crate::device::Device;
use crate::error::Result;
use crate::rate::cuda::mlc_loss;
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

fn len_arg(n: usize) -> KArg {
    KArg::I64(n as i64)
}

/// The head's operations as kernels of `kernels/head.cu` and cuBLAS products (TF32), on a CUDA device or
/// the test emulator. Each kernel's argument list is its CUDA signature's.
impl<'g> HeadBackend for dyn Gpu + 'g {
    type T = f32;
    type Buf = GpuBuf<f32>;
    const EVAL_CHUNK: usize = EVAL_CHUNK;
    type Features<'a> = GpuBuf<f32> where Self: 'a;

    fn len(&self, b: &GpuBuf<f32>) -> usize {
        b.len()
    }

    fn alloc(&self, len: usize, what: &str) -> Result<GpuBuf<f32>> {
        self.alloc_f32(len, false, what)
    }

    fn upload(&self, x: &[f32], what: &str) -> Result<GpuBuf<f32>> {
        self.upload_f32(x, what)
    }

    fn download(&self, b: &GpuBuf<f32>, what: &str) -> Result<Vec<f32>> {
        self.download_f32(b, what)
    }

    fn copy(&self, dst: &mut GpuBuf<f32>, src: &GpuBuf<f32>, what: &str) -> Result<()> {
        self.copy_f32(dst.ptr(), src.ptr(), src.len(), what)
    }

    fn gemm(&self, p: Product, a: &GpuBuf<f32>, b: &GpuBuf<f32>, c: &mut GpuBuf<f32>) -> Result<()> {
        let (lda, ldb) = p.lda_ldb();
        let beta = if p.accumulate { 1.0 } else { 0.0 };
        self.gemm_tf32(&RmGemm { ta: p.ta, tb: p.tb, m: p.m, n: p.n, k: p.k, alpha: 1.0, a: (a.ptr(), lda, 0), b: (b.ptr(), ldb, 0), beta, c: (c.ptr(), p.n, 0), batch: 1 })
    }

    fn bias_act(&self, y: &mut GpuBuf<f32>, bias: &GpuBuf<f32>, rows: usize, cols: usize, relu: bool) -> Result<()> {
        let total = rows * cols;
        self.launch(&FILE, "head_bias_act", flat_grid(total), THREADS, 0, &[y.arg(), bias.arg(), len_arg(total), KArg::I32(i32_of(cols, "cols")?), KArg::I32(relu as i32)])
    }

    fn bn_train(&self, head: &mut HeadOf<Self>, a1: &mut GpuBuf<f32>, r1: &mut GpuBuf<f32>, invstd: &mut GpuBuf<f32>, m: usize) -> Result<()> {
        let h = head.dims.hidden;
        let args = [a1.arg(), r1.arg(), head.p[GAMMA].arg(), head.p[BETA].arg(), invstd.arg(), head.running_mean.arg(), head.running_var.arg(), KArg::I32(i32_of(m, "batch")?), KArg::I32(i32_of(h, "hidden")?)];
        self.launch(&FILE, "head_bn_train_fwd", col_grid(h)?, THREADS, 0, &args)
    }

    fn bn_eval_relu(&self, head: &HeadOf<Self>, a1: &mut GpuBuf<f32>, rows: usize) -> Result<()> {
        let h = head.dims.hidden;
        let args = [a1.arg(), head.p[B1].arg(), head.p[GAMMA].arg(), head.p[BETA].arg(), head.running_mean.arg(), head.running_var.arg(), len_arg(rows * h), KArg::I32(i32_of(h, "hidden")?)];
        self.launch(&FILE, "head_bn_eval_relu", flat_grid(rows * h), THREADS, 0, &args)
    }

    fn l2norm_rows(&self, y: &mut GpuBuf<f32>, norms: Option<&mut GpuBuf<f32>>, rows: usize, d: usize) -> Result<()> {
        let norms = KArg::Ptr(norms.map_or(0, |n| n.ptr()));
        self.launch(&FILE, "head_l2norm_rows", row_grid(rows)?, ROW_THREADS, 0, &[y.arg(), norms, KArg::I32(i32_of(rows, "rows")?), KArg::I32(i32_of(d, "d")?)])
    }

    fn l2norm_backward(&self, y: &GpuBuf<f32>, norms: &GpuBuf<f32>, g1: &GpuBuf<f32>, g2: Option<&GpuBuf<f32>>, rows: usize, d: usize) -> Result<GpuBuf<f32>> {
        let gx = self.alloc_f32(rows * d, false, "∂loss/∂(head before normalisation)")?;
        let args = [y.arg(), norms.arg(), g1.arg(), KArg::Ptr(g2.map_or(0, |b| b.ptr())), gx.arg(), KArg::I32(i32_of(rows, "rows")?), KArg::I32(i32_of(d, "d")?)];
        self.launch(&FILE, "head_l2norm_rows_bwd", row_grid(rows)?, ROW_THREADS, 0, &args)?;
        Ok(gx)
    }

    fn col_sums(&self, a: &GpuBuf<f32>, rows: usize, cols: usize, what: &str) -> Result<GpuBuf<f32>> {
        let out = self.alloc_f32(cols, false, what)?;
        self.launch(&FILE, "head_col_sums", col_grid(cols)?, THREADS, 0, &[a.arg(), KArg::I32(i32_of(rows, "rows")?), KArg::I32(i32_of(cols, "cols")?), out.arg()])?;
        Ok(out)
    }

    fn relu_mask(&self, g: &mut GpuBuf<f32>, out: &GpuBuf<f32>, len: usize) -> Result<()> {
        self.launch(&FILE, "head_relu_mask", flat_grid(len), THREADS, 0, &[g.arg(), out.arg(), len_arg(len)])
    }

    fn bn_backward(&self, head: &HeadOf<Self>, xhat: &mut GpuBuf<f32>, gr1: &GpuBuf<f32>, r1: &GpuBuf<f32>, invstd: &GpuBuf<f32>, m: usize) -> Result<(GpuBuf<f32>, GpuBuf<f32>)> {
        let h = head.dims.hidden;
        let ggamma = self.alloc_f32(h, false, PARAM_NAMES[GAMMA])?;
        let gbeta = self.alloc_f32(h, false, PARAM_NAMES[BETA])?;
        let args = [xhat.arg(), gr1.arg(), r1.arg(), head.p[GAMMA].arg(), invstd.arg(), ggamma.arg(), gbeta.arg(), KArg::I32(i32_of(m, "batch")?), KArg::I32(i32_of(h, "hidden")?)];
        self.launch(&FILE, "head_bn_bwd", col_grid(h)?, THREADS, 0, &args)?;
        Ok((ggamma, gbeta))
    }

    fn sgd(&self, p: &mut GpuBuf<f32>, momentum: &mut GpuBuf<f32>, g: &GpuBuf<f32>, group: SgdGroup, first: bool) -> Result<()> {
        let n = p.len();
        let SgdGroup { lr, momentum: mu, weight_decay } = group;
        let args = [p.arg(), momentum.arg(), g.arg(), len_arg(n), KArg::F32(lr as f32), KArg::F32(mu as f32), KArg::F32(weight_decay as f32), KArg::I32(first as i32)];
        self.launch(&FILE, "head_sgd", flat_grid(n), THREADS, 0, &args)
    }

    /// The features go to the device once; each batch is gathered there.
    fn features<'a>(&'a self, x: &'a [f32]) -> Result<GpuBuf<f32>> {
        self.upload_f32(x, "features")
    }

    fn gather(&self, x: &GpuBuf<f32>, rows: &[usize], n: usize, input: usize) -> Result<GpuBuf<f32>> {
        let m = rows.len();
        let idx = rows
            .iter()
            .map(|&r| if r < n { i32_of(r, "row") } else { Err(crate::invalid_arg!("batch row {r} out of range (n = {n})")) })
            .collect::<Result<Vec<i32>>>()?;
        let idx = self.upload_i32(&idx, "batch row indices")?;
        // Written in full by the gather.
        let xb = self.alloc_f32(m * input, false, "training batch")?;
        let args = [x.arg(), idx.arg(), KArg::I32(i32_of(m, "batch")?), KArg::I32(i32_of(input, "input")?), xb.arg()];
        self.launch(&FILE, "head_gather_rows", flat_grid(m * input), THREADS, 0, &args)?;
        Ok(xb)
    }

    /// The loss on the device-resident Z and C; only the scalar comes back to the host.
    fn loss(&self, z: &GpuBuf<f32>, c: Option<&GpuBuf<f32>>, m: usize, d: usize, rate: &RateParams, budget: usize) -> Result<StepLoss<GpuBuf<f32>>> {
        let out = mlc_loss(self, z, c, m, d, rate, budget)?;
        Ok(StepLoss { loss: out.loss, grad_z: out.grad_z, grad_c: out.grad_c })
    }
}

/// The CPP head held on a CUDA device, with its SGD momentum buffers: built from a CPU [`Head`], trained
/// and evaluated there, copied back with [`CudaHead::to_head`].
pub struct CudaHead {
    dev: Arc<CudaDevice>,
    state: HeadOf<dyn Gpu>,
    opt: Sgd<dyn Gpu>,
}

impl CudaHead {
    /// Copies `head` (parameters and running statistics) to `dev`; momentum buffers start empty, as a
    /// fresh optimizer's.
    pub fn from_head(dev: &Arc<CudaDevice>, head: &Head<f32>) -> Result<Self> {
        Ok(CudaHead { dev: dev.clone(), state: HeadOf::upload(&**dev as &dyn Gpu, head)?, opt: Sgd::default() })
    }

    /// The current parameters and running statistics as a CPU head.
    pub fn to_head(&self) -> Result<Head<f32>> {
        self.state.download(self.gpu())
    }

    fn gpu(&self) -> &(dyn Gpu + 'static) {
        &*self.dev
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
        self.state.forward_eval(self.gpu(), x, n, want_c)
    }

    /// One training step on a device batch (see `Trainer::step`); returns the loss.
    pub fn step(&mut self, cfg: &StepConfig, xb: &GpuBuf<f32>, m: usize, step: usize) -> Result<f64> {
        train_step(&*self.dev as &dyn Gpu, &mut self.state, &mut self.opt, cfg, xb, m, step)
    }

    /// Training-mode forward and backward on the host batch `xb` with given ∂loss/∂Z and ∂loss/∂C
    /// (no SGD; the running statistics move as in any training forward): (Z, C, gradients), all
    /// downloaded. For comparing with the CPU head's.
    pub fn forward_backward(&mut self, xb: &[f32], m: usize, grad_z: &[f32], grad_c: Option<&[f32]>) -> Result<TrainPass<f32>> {
        forward_backward(&*self.dev as &dyn Gpu, &mut self.state, xb, m, grad_z, grad_c)
    }
}

/// (Z, C, gradients) of one training-mode forward and backward, on the host.
pub type TrainPass<T> = (Vec<T>, Vec<T>, HeadGrads<T>);

/// Forward (train mode) and backward of a host batch on any backend, everything downloaded.
pub(crate) fn forward_backward<B: HeadBackend + ?Sized>(
    b: &B,
    head: &mut HeadOf<B>,
    xb: &[B::T],
    m: usize,
    grad_z: &[B::T],
    grad_c: Option<&[B::T]>,
) -> Result<TrainPass<B::T>> {
    let x = b.upload(xb, "batch")?;
    let cache = head.forward_train(b, &x, m)?;
    let z = b.download(&cache.z, "Z")?;
    let c = b.download(&cache.c, "C")?;
    let gz = b.upload(grad_z, "∂loss/∂Z")?;
    let gc = grad_c.map(|v| b.upload(v, "∂loss/∂C")).transpose()?;
    let grads = head.backward(b, &x, cache, &gz, None, gc.as_ref())?;
    let mut out: HeadGrads<B::T> = Default::default();
    for (i, gr) in grads.iter().enumerate() {
        if let Some(buf) = gr {
            out[i] = Some(b.download(buf, PARAM_NAMES[i])?);
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
            HeadOn::Cpu(h) => h.forward_eval(&Host::new(), x, n, want_c),
            HeadOn::Cuda(h) => h.forward_eval(x, n, want_c),
        }
    }
}

/// Eval-mode (Z, C) of `x` on `device`: the CPU head, or a copy of it on the GPU.
pub fn forward_eval_on(device: &Device, head: &Head<f32>, x: &[f32], n: usize, want_c: bool) -> Result<(Vec<f32>, Vec<f32>)> {
    HeadOn::new(device, head)?.forward_eval(x, n, want_c)
}

#[cfg(test)]
pub(crate) mod emu;
#[cfg(test)]
mod tests;
