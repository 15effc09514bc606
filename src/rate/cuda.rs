//! CUDA implementation of the rate-reduction core (kernels in `kernels/`). f32 only.
//! SCAFFOLD: replaced by the CUDA work; until then every entry point reports the device as unusable.

use super::{MlcOutput, Objective, RateParams};
use crate::device::cuda::CudaDevice;
use crate::error::{Error, Result};

/// MLC / TCR loss and gradients for f32 Z, C (m×d, row-major host buffers) on `dev`.
pub fn mlc_loss_cuda(
    _dev: &CudaDevice,
    _z: &[f32],
    _c: &[f32],
    _m: usize,
    _d: usize,
    _params: &RateParams,
    _objective: Objective,
) -> Result<MlcOutput<f32>> {
    Err(Error::Device("the CUDA rate kernels are not built yet".into()))
}

/// Π = m · Sinkhorn_η(|C Cᵀ|) (m×m, row-major) on `dev`.
pub fn membership_cuda(_dev: &CudaDevice, _c: &[f32], _m: usize, _d: usize, _params: &RateParams) -> Result<Vec<f32>> {
    Err(Error::Device("the CUDA rate kernels are not built yet".into()))
}
