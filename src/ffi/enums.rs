//! The C enums, each declared once here (cbindgen writes them into the header as they are) and mirrored
//! onto its engine enum by `#[derive(CEnum)]`: C passes their values as `uint32_t`, checked on entry,
//! so an unknown value is an error, never an invalid Rust enum. Values are part of the stable ABI: never
//! renumber, only append.
#![allow(non_camel_case_types)]

use crate::image_io::PixelFormat;
use crate::clip::{Precision, Towers};
use crate::cluster::params::{AssignRule, SampleClustering};
use crate::device::DeviceKind;
use crate::rate::{Objective, SinkhornGradient};
use crate::error::Error;
use rateclust_macros::CEnum;

/// Status codes returned by every C entry point (C: `rateclust_status`, `RATECLUST_STATUS_*`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// An argument is invalid: NULL pointer, zero or mismatched size, out-of-range parameter.
    InvalidArgument = 1,
    /// Input data contains NaN or infinity.
    NonFinite = 2,
    /// A file could not be read or written.
    Io = 3,
    /// A file or buffer has the wrong format, version, dtype or shape, or is corrupted.
    Format = 4,
    /// The requested device is not usable (no CUDA driver, no GPU, driver too old, kernel compile failure).
    Device = 5,
    /// A numerical failure: a matrix that must be positive definite is not, an iteration diverged.
    Numerical = 6,
    /// The progress callback asked to stop.
    Cancelled = 7,
    /// Out of host or device memory.
    OutOfMemory = 8,
    /// A bug in rateclust (a caught panic). Please report it with the message.
    Internal = 9,
}

impl Error {
    /// The C status code for this error.
    pub fn status(&self) -> Status {
        match self {
            Error::InvalidArgument(_) => Status::InvalidArgument,
            Error::NonFinite(_) => Status::NonFinite,
            Error::Io { .. } => Status::Io,
            Error::Format(_) => Status::Format,
            Error::Device(_) => Status::Device,
            Error::Numerical(_) => Status::Numerical,
            Error::Cancelled => Status::Cancelled,
            Error::OutOfMemory(_) => Status::OutOfMemory,
            Error::Internal(_) => Status::Internal,
        }
    }
}

/// Which device a call should run on.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, CEnum)]
#[mirror(DeviceKind)]
pub enum rateclust_device_kind {
    /// CUDA if a usable GPU is present, else the CPU.
    Auto = 0,
    /// The CPU (always available).
    Cpu = 1,
    /// A CUDA GPU; fails with `RATECLUST_STATUS_DEVICE` if none is usable.
    Cuda = 2,
}

/// Which loss to evaluate.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, CEnum)]
#[mirror(Objective)]
pub enum rateclust_objective {
    /// Warm-up: −R(Z) only (total coding rate). C is not used and gets no gradient.
    Tcr = 0,
    /// −R(Z) + γ R_c(Z, Π(C)) + (λ/2)‖Π‖²_F.
    Mlc = 1,
}

/// Which gradient flows through the Sinkhorn iterations.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, CEnum)]
#[mirror(SinkhornGradient)]
pub enum rateclust_sinkhorn_gradient {
    /// As the reference code: through u and the final exp, v detached at each column step (docs/design.md §1).
    Reference = 0,
    /// The exact derivative of the unrolled iterations (nothing detached).
    Exact = 1,
}

/// How points outside the spectral sample get their label (docs/design.md §2). All are linear in n.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, CEnum)]
#[mirror(AssignRule)]
pub enum rateclust_assign_rule {
    /// Largest projection norm onto each cluster's subspace (top singular vectors of its Z rows).
    Subspace = 0,
    /// Largest cosine to each cluster's mean normalised Z (prototype).
    PrototypeZ = 1,
    /// Largest cosine to each cluster's mean normalised C (the cluster head's output).
    PrototypeC = 2,
    /// Largest cosine to each cluster's mean in the input space (centred, principal directions,
    /// row-normalised). The head is not needed to label.
    PrototypeInput = 3,
    /// Majority vote of the nearest fitting-sample points in the input space: the default fit's rule
    /// (docs/defaults.md). The head is not needed to label.
    NeighborsInput = 4,
}

/// How the fitted sample is partitioned before the per-cluster summaries are built.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, CEnum)]
#[mirror(SampleClustering)]
pub enum rateclust_sample_clustering {
    /// Spectral clustering of Π (the CPP protocol, docs/design.md §1.4).
    SpectralPi = 0,
    /// k-means++ (with restarts) on the sample's Z rows.
    KMeansZ = 1,
    /// k-means++ (with restarts) on the sample's C rows (Z for single-head models).
    KMeansC = 2,
}

/// Layout of one pixel in a raw frame handed over by a media pipeline.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, CEnum)]
#[mirror(PixelFormat)]
pub enum rateclust_pixel_format {
    /// `R G B`, 3 bytes per pixel.
    Rgb8 = 0,
    /// `R G B A`, 4 bytes per pixel (straight, not premultiplied alpha; composited onto white).
    Rgba8 = 1,
    /// `B G R`, 3 bytes per pixel (OpenCV's default).
    Bgr8 = 2,
    /// `B G R A`, 4 bytes per pixel (straight alpha; composited onto white).
    Bgra8 = 3,
    /// One gray byte per pixel.
    Gray8 = 4,
    /// `R G B X`, 4 bytes per pixel, the fourth byte ignored.
    Rgbx8 = 5,
    /// `B G R X`, 4 bytes per pixel, the fourth byte ignored.
    Bgrx8 = 6,
}

/// Which towers `rateclust_model_load_towers` builds.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, CEnum)]
#[mirror(Towers)]
pub enum rateclust_towers {
    /// Both towers the checkpoint has (what `rateclust_model_load` builds).
    Both = 0,
    /// The vision tower only, for embedding images.
    Images = 1,
    /// The text tower only, for embedding texts.
    Texts = 2,
}

/// How `rateclust_model_load_precision` stores and multiplies the weights of the towers' encoder layers
/// (attention, LayerNorm, the patch embedding and the projections stay f32 in both).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, CEnum)]
#[mirror(Precision)]
pub enum rateclust_precision {
    /// f32 weights (what `rateclust_model_load` uses).
    F32 = 0,
    /// int8 weights per output channel, activations quantized per token, products summed in int32 (AVX-512
    /// VNNI when the CPU has it): a quarter of those weights' memory. CPU only.
    Int8 = 1,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::mirror::CEnum;

    /// Every C value maps to the engine variant of the same name and back; the first value past the end
    /// is refused.
    #[test]
    fn c_values_round_trip_and_unknown_values_are_refused() {
        fn check<E: CEnum + PartialEq + std::fmt::Debug>(count: u32) {
            for raw in 0..count {
                let e = E::from_c(raw).unwrap_or_else(|| panic!("{} {raw}", E::C_NAME));
                assert_eq!(e.to_c(), raw, "{}", E::C_NAME);
            }
            assert_eq!(E::from_c(count), None, "{}", E::C_NAME);
        }
        check::<DeviceKind>(3);
        check::<Objective>(2);
        check::<SinkhornGradient>(2);
        check::<AssignRule>(5);
        check::<SampleClustering>(3);
        check::<PixelFormat>(7);
        check::<Towers>(3);
        check::<Precision>(2);
        assert_eq!(AssignRule::NeighborsInput.to_c(), rateclust_assign_rule::NeighborsInput as u32);
        assert_eq!(<PixelFormat as CEnum>::from_c(rateclust_pixel_format::Bgrx8 as u32), Some(PixelFormat::Bgrx8));
    }
}
