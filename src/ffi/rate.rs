//! C API for the rate stage: the MLC / TCR loss with its gradients, and the Sinkhorn membership Π.
//!
//! Enumerated arguments arrive as plain integers (values of the C enums `rateclust_objective` and `rateclust_sinkhorn_gradient`) and are
//! checked here: an out-of-range value from C is an error, never an invalid Rust enum.
#![allow(non_camel_case_types)]

use super::{arg_mut, device_kind, arg_slice, arg_slice_mut, checked_len, guard};
use crate::device::{Device, DeviceKind};
use crate::error::Result;
use super::enums::Status;
use crate::linalg::Real;
use super::mirror::CValue;
use crate::rate::{self, Objective, RateParams};
use rateclust_macros::CMirror;

/// Constants of the MLC objective. Get the reference's defaults from `rateclust_rate_default_params()` and
/// change fields as needed.
#[repr(C)]
#[derive(Debug, Clone, Copy, CMirror)]
#[mirror(RateParams)]
pub struct rateclust_rate_params {
    /// ε², the allowed distortion (> 0; default 0.1).
    pub eps_sq: f64,
    /// γ, the weight of R_c (default 1).
    pub gamma: f64,
    /// λ, the weight of (λ/2)‖Π‖²_F (default 0.05).
    pub lambda: f64,
    /// η, the Sinkhorn entropic temperature (> 0; default 0.175).
    pub eta: f64,
    /// Sinkhorn half-iterations, row step first (≥ 1; default 5).
    pub sinkhorn_half_iters: u32,
    /// A `rateclust_sinkhorn_gradient`: `RATECLUST_SINKHORN_GRADIENT_REFERENCE` (default) or
    /// `RATECLUST_SINKHORN_GRADIENT_EXACT`.
    #[mirror(engine = "gradient")]
    pub sinkhorn_gradient: u32,
}

/// Loss value and its parts, written by `rateclust_mlc_loss*`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct rateclust_mlc_values {
    /// The loss that was minimised (TCR: −R(Z); MLC: −R + γR_c + (λ/2)‖Π‖²_F).
    pub loss: f64,
    /// R(Z).
    pub rate: f64,
    /// R_c(Z, Π) (0 for TCR).
    pub rate_c: f64,
    /// (λ/2)‖Π‖²_F (0 for TCR).
    pub pi_penalty: f64,
}

/// The reference's constants: ε² 0.1, γ 1, λ 0.05, η 0.175, 5 half-iterations, reference gradient.
#[no_mangle]
pub extern "C" fn rateclust_rate_default_params() -> rateclust_rate_params {
    (&RateParams::default()).into()
}

fn params_or_default(params: *const rateclust_rate_params) -> Result<RateParams> {
    // SAFETY: the caller promises a non-NULL pointer points to a rateclust_rate_params (header contract);
    // every field is a plain number, so any bit pattern is a valid value and is then checked.
    match unsafe { params.as_ref() } {
        None => Ok(RateParams::default()),
        Some(p) => {
            let p = RateParams::try_from(p)?;
            p.validate()?;
            Ok(p)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn mlc_loss_c<T: Real>(
    params: *const rateclust_rate_params,
    kind: u32,
    ordinal: u32,
    z: *const T,
    c: *const T,
    m: usize,
    d: usize,
    objective: u32,
    out: *mut rateclust_mlc_values,
    grad_z: *mut T,
    grad_c: *mut T,
) -> Result<()> {
    let p = params_or_default(params)?;
    let kind = device_kind(kind)?;
    let objective: Objective = CValue::to_engine(objective, "objective")?;
    let out = arg_mut(out, "out")?;
    if m == 0 || d == 0 {
        return Err(crate::invalid_arg!("m = {m}, d = {d}: both must be ≥ 1 (and m ≥ 2)"));
    }
    let n = checked_len(m, d, "m·d")?;
    let z = arg_slice(z, n, "z")?;
    let c = if objective == Objective::Mlc { arg_slice(c, n, "c")? } else { &[] };
    // The CUDA kernels are f32-only, so for f64 AUTO means the CPU (CUDA stays an explicit error).
    let device = if T::NAME == "f64" && kind == DeviceKind::Auto { Device::Cpu } else { Device::open(kind, ordinal as usize)? };
    let r = rate::mlc_loss(&device, z, c, m, d, &p, objective)?;
    *out = rateclust_mlc_values { loss: r.loss.to_f64(), rate: r.rate.to_f64(), rate_c: r.rate_c.to_f64(), pi_penalty: r.pi_penalty.to_f64() };
    if !grad_z.is_null() {
        arg_slice_mut(grad_z, n, "grad_z")?.copy_from_slice(&r.grad_z);
    }
    if !grad_c.is_null() {
        let g = arg_slice_mut(grad_c, n, "grad_c")?;
        if r.grad_c.is_empty() {
            g.iter_mut().for_each(|x| *x = T::zero());
        } else {
            g.copy_from_slice(&r.grad_c);
        }
    }
    Ok(())
}

/// The MLC or TCR loss of float32 Z and C and its gradients (docs/design.md §1).
///
/// - `params`: the constants, or NULL for `rateclust_rate_default_params()`.
/// - `kind` (a `rateclust_device_kind`), `ordinal`: where to compute (`RATECLUST_DEVICE_KIND_AUTO` uses CUDA if usable, else the CPU).
/// - `z`, `c`: caller-owned m×d row-major float arrays (m ≥ 2 samples, d ≥ 1 features; rows are normally
///   L2-normalised), finite. `c` is not read for `RATECLUST_OBJECTIVE_TCR` and may then be NULL.
/// - `objective`: `RATECLUST_OBJECTIVE_TCR` or `RATECLUST_OBJECTIVE_MLC`.
/// - `out`: receives the loss and its parts (required).
/// - `grad_z`, `grad_c`: caller-owned m×d arrays receiving ∂loss/∂Z and ∂loss/∂C, or NULL if not wanted.
///   For TCR, `grad_c` (if given) is zeroed.
///
/// Nothing is allocated for the caller; on failure the outputs are left unspecified and
/// `rateclust_last_error()` says why (NaN input, bad size, NULL, bad parameter, no CUDA device, …).
#[no_mangle]
pub extern "C" fn rateclust_mlc_loss(
    params: *const rateclust_rate_params,
    kind: u32,
    ordinal: u32,
    z: *const f32,
    c: *const f32,
    m: usize,
    d: usize,
    objective: u32,
    out: *mut rateclust_mlc_values,
    grad_z: *mut f32,
    grad_c: *mut f32,
) -> Status {
    guard(|| mlc_loss_c(params, kind, ordinal, z, c, m, d, objective, out, grad_z, grad_c))
}

/// As `rateclust_mlc_loss`, in float64, on the CPU: `RATECLUST_DEVICE_KIND_AUTO` means the CPU here and
/// `RATECLUST_DEVICE_KIND_CUDA` fails (the CUDA kernels are float32).
#[no_mangle]
pub extern "C" fn rateclust_mlc_loss_f64(
    params: *const rateclust_rate_params,
    kind: u32,
    ordinal: u32,
    z: *const f64,
    c: *const f64,
    m: usize,
    d: usize,
    objective: u32,
    out: *mut rateclust_mlc_values,
    grad_z: *mut f64,
    grad_c: *mut f64,
) -> Status {
    guard(|| mlc_loss_c(params, kind, ordinal, z, c, m, d, objective, out, grad_z, grad_c))
}

/// The membership Π = m · Sinkhorn_η(|C Cᵀ|) of float32 C (caller-owned, m×d row-major, m ≥ 2, d ≥ 1), written
/// into the caller-owned m×m row-major array `pi` (rows sum to 1). `params` may be NULL for the defaults.
#[no_mangle]
pub extern "C" fn rateclust_membership(
    params: *const rateclust_rate_params,
    kind: u32,
    ordinal: u32,
    c: *const f32,
    m: usize,
    d: usize,
    pi: *mut f32,
) -> Status {
    guard(|| {
        let p = params_or_default(params)?;
        if m == 0 || d == 0 {
            return Err(crate::invalid_arg!("m = {m}, d = {d}: both must be ≥ 1 (and m ≥ 2)"));
        }
        let c = arg_slice(c, checked_len(m, d, "m·d")?, "c")?;
        let out = arg_slice_mut(pi, checked_len(m, m, "m·m")?, "pi")?;
        let device = Device::open(device_kind(kind)?, ordinal as usize)?;
        out.copy_from_slice(&rate::membership(&device, c, m, d, &p)?);
        Ok(())
    })
}
