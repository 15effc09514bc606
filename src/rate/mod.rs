//! Rate reduction (MCR² / MLC, docs/design.md §1): coding rates R(Z) and R_c(Z, Π), the Sinkhorn membership Π,
//! the MLC loss and its gradients with respect to Z and C, on the CPU and on CUDA.
//!
//! Shapes: Z and C are m×d row-major (m samples, d features, rows L2-normalised by the caller); Π is m×m.
//!
//! CPU pieces, one job each: [`sinkhorn`] (Π and its backward pass, both gradient semantics), [`coding`]
//! (R, R_c and their gradients; R_c packed into three large GEMMs when d ≤ m, cluster by cluster otherwise),
//! `mlc` (the loss and the backward pass to C through Π, |·| and C Cᵀ); exponentials come from `linalg::exp`. Everything is
//! generic over f32/f64; f32 inputs run the coding rates in f64 when d/ε² makes f32 too coarse (see `mlc`).
//! Verified against PyTorch float64 autograd goldens (`tools/golden/rate_goldens.py`) and finite differences.

pub mod coding;
pub mod cuda;
mod mlc;
pub mod sinkhorn;

use crate::device::cuda::Gpu;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::linalg::Real;

/// Which gradient flows through the Sinkhorn iterations (C mirror: `rateclust_sinkhorn_gradient`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SinkhornGradient {
    /// As the reference code: through u and the final exp, v detached at each column step (docs/design.md §1).
    #[default]
    Reference = 0,
    /// The exact derivative of the unrolled iterations (nothing detached).
    Exact = 1,
}

/// Constants of the MLC objective; defaults are the reference's (ε² 0.1, γ 1, λ 0.05, η 0.175, 5 half-steps).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateParams {
    /// ε², the allowed distortion.
    pub eps_sq: f64,
    /// γ, the weight of R_c.
    pub gamma: f64,
    /// λ, the weight of (λ/2)‖Π‖²_F.
    pub lambda: f64,
    /// η, the Sinkhorn entropic temperature (`pieta` in the reference).
    pub eta: f64,
    /// Sinkhorn half-iterations (row, col, row, …); the reference runs 5.
    pub sinkhorn_half_iters: usize,
    pub gradient: SinkhornGradient,
}

impl Default for RateParams {
    fn default() -> Self {
        RateParams { eps_sq: 0.1, gamma: 1.0, lambda: 0.05, eta: 0.175, sinkhorn_half_iters: 5, gradient: SinkhornGradient::Reference }
    }
}

/// Which loss to evaluate (C mirror: `rateclust_objective`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Objective {
    /// Warm-up: −R(Z) only (total coding rate). C is not used and gets no gradient.
    Tcr = 0,
    /// −R(Z) + γ R_c(Z, Π(C)) + (λ/2)‖Π‖²_F.
    Mlc = 1,
}

/// Loss value, its parts, and gradients (same shapes as Z and C).
#[derive(Debug, Clone)]
pub struct MlcOutput<T> {
    pub loss: T,
    /// R(Z).
    pub rate: T,
    /// R_c(Z, Π) (0 for `Objective::Tcr`).
    pub rate_c: T,
    /// (λ/2)‖Π‖²_F (0 for `Objective::Tcr`).
    pub pi_penalty: T,
    /// ∂loss/∂Z, m×d.
    pub grad_z: Vec<T>,
    /// ∂loss/∂C, m×d (empty for `Objective::Tcr`).
    pub grad_c: Vec<T>,
}

impl RateParams {
    /// Checks every constant: ε² > 0, η > 0, at least one Sinkhorn half-iteration, all finite.
    pub fn validate(&self) -> Result<()> {
        let finite = [("eps_sq", self.eps_sq), ("gamma", self.gamma), ("lambda", self.lambda), ("eta", self.eta)];
        for (name, v) in finite {
            if !v.is_finite() {
                return Err(crate::invalid_arg!("rate params: {name} = {v} is not finite"));
            }
        }
        if self.eps_sq <= 0.0 {
            return Err(crate::invalid_arg!("rate params: eps_sq = {} must be > 0", self.eps_sq));
        }
        if self.eta <= 0.0 {
            return Err(crate::invalid_arg!("rate params: eta = {} must be > 0", self.eta));
        }
        if self.sinkhorn_half_iters == 0 {
            return Err(crate::invalid_arg!("rate params: sinkhorn_half_iters must be ≥ 1"));
        }
        Ok(())
    }
}

/// Checks an m×d input: m ≥ `min_m`, d ≥ 1, the buffer length, finiteness.
fn check_matrix<T: Real>(name: &str, x: &[T], m: usize, d: usize, min_m: usize) -> Result<()> {
    if m < min_m {
        return Err(crate::invalid_arg!("{name}: m = {m} rows, at least {min_m} needed"));
    }
    if d == 0 {
        return Err(crate::invalid_arg!("{name}: d = 0 columns, at least 1 needed"));
    }
    let want = m.checked_mul(d).ok_or_else(|| crate::invalid_arg!("{name}: m·d = {m}·{d} overflows"))?;
    if x.len() != want {
        return Err(crate::invalid_arg!("{name}: {} elements given, expected m·d = {m}·{d} = {want}", x.len()));
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite(format!("{name}[{i}] (row {}, column {}) = {}", i / d, i % d, x[i])));
    }
    Ok(())
}

/// Copies a slice between the two `Real` types (exact when they are the same type). The CUDA path is
/// f32-only; this keeps the dispatch free of `unsafe` reinterpretation, at the price of one m×d copy.
pub(crate) fn convert<A: Real, B: Real>(x: &[A]) -> Vec<B> {
    x.iter().map(|v| B::from_f64(v.to_f64())).collect()
}

fn require_f32_for_cuda<T: Real>() -> Result<()> {
    if T::NAME != "f32" {
        return Err(crate::invalid_arg!("{} is CPU-only: the CUDA rate kernels take f32", T::NAME));
    }
    Ok(())
}

/// Most points the membership Π (m×m) is computed for: 16,384² f32 is 1 GB. A larger m (100,000 asked for
/// 40 GB) is an error instead of an allocation that aborts the process.
pub const MAX_MEMBERSHIP_POINTS: usize = 1 << 14;

fn check_membership_size(m: usize) -> Result<()> {
    if m > MAX_MEMBERSHIP_POINTS {
        return Err(crate::invalid_arg!("m = {m} points: the m×m membership is limited to m ≤ {MAX_MEMBERSHIP_POINTS}"));
    }
    Ok(())
}

/// The MLC (or, for `Objective::Tcr`, the TCR warm-up) loss and its gradients with respect to Z and C.
///
/// `z`, `c`: m×d row-major (m ≥ 2, d ≥ 1, finite). For `Objective::Tcr`, `c` is ignored and may be empty.
/// On `Device::Cuda` only `f32` is supported.
pub fn mlc_loss<T: Real>(
    device: &Device,
    z: &[T],
    c: &[T],
    m: usize,
    d: usize,
    params: &RateParams,
    objective: Objective,
) -> Result<MlcOutput<T>> {
    params.validate()?;
    check_matrix("Z", z, m, d, 2)?;
    if objective == Objective::Mlc {
        check_matrix("C", c, m, d, 2)?;
        check_membership_size(m)?;
    }
    match device {
        Device::Cpu => mlc::loss(z, c, m, d, params, objective),
        Device::Cuda(dev) => {
            require_f32_for_cuda::<T>()?;
            let g: &dyn Gpu = &**dev;
            let zb = g.upload_f32(&convert::<T, f32>(z), "Z")?;
            let cb = if objective == Objective::Mlc { Some(g.upload_f32(&convert::<T, f32>(c), "C")?) } else { None };
            let out = cuda::mlc_loss(g, &zb, cb.as_ref(), m, d, params, cuda::CHUNK_BUDGET_BYTES)?.into_host(g)?;
            Ok(MlcOutput {
                loss: T::from_f64(out.loss as f64),
                rate: T::from_f64(out.rate as f64),
                rate_c: T::from_f64(out.rate_c as f64),
                pi_penalty: T::from_f64(out.pi_penalty as f64),
                grad_z: convert(&out.grad_z),
                grad_c: convert(&out.grad_c),
            })
        }
    }
}

/// The membership Π = m · Sinkhorn_η(|C Cᵀ|), m×m row-major (no gradient). C: m×d, m ≥ 2, d ≥ 1.
pub fn membership<T: Real>(device: &Device, c: &[T], m: usize, d: usize, params: &RateParams) -> Result<Vec<T>> {
    params.validate()?;
    check_matrix("C", c, m, d, 2)?;
    check_membership_size(m)?;
    match device {
        Device::Cpu => Ok(mlc::membership_trace(c, m, d, params).2.pi),
        Device::Cuda(dev) => {
            require_f32_for_cuda::<T>()?;
            Ok(convert(&cuda::membership(&**dev, &convert::<T, f32>(c), m, d, params)?))
        }
    }
}

/// R(Z) = ½ logdet(I + d/(m ε²) ZᵀZ) on the CPU. Z: m×d, m ≥ 1, d ≥ 1; ε² > 0.
pub fn coding_rate<T: Real>(z: &[T], m: usize, d: usize, eps_sq: f64) -> Result<T> {
    if !(eps_sq > 0.0 && eps_sq.is_finite()) {
        return Err(crate::invalid_arg!("coding_rate: eps_sq = {eps_sq} must be finite and > 0"));
    }
    check_matrix("Z", z, m, d, 1)?;
    Ok(coding::rate_with_grad(z, m, d, eps_sq, false)?.0)
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// m above the membership limit is refused before the m×m matrix exists (m = 100,000 asked for 40 GB);
    /// the limit itself and the TCR objective (no membership) are accepted.
    #[test]
    fn membership_size_is_bounded() {
        let m = MAX_MEMBERSHIP_POINTS + 1;
        let z: Vec<f64> = (0..m).map(|i| (i % 7) as f64 + 1.0).collect();
        let p = RateParams::default();
        let e = mlc_loss(&Device::Cpu, &z, &z, m, 1, &p, Objective::Mlc).unwrap_err();
        assert!(e.to_string().contains("m ≤ 16384"), "{e}");
        assert!(membership(&Device::Cpu, &z, m, 1, &p).is_err());
        assert!(mlc_loss(&Device::Cpu, &z, &[], m, 1, &p, Objective::Tcr).is_ok());
    }
}
