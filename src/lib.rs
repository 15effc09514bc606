//! # rateclust
//!
//! Image clustering by the principle of rate reduction (CPP, Chu et al., ICLR 2024) on top of CLIP,
//! as an embeddable library with a stable C ABI (`include/rateclust.h`).
//!
//! Data flows one way, and each stage is usable alone:
//! pixels → [`clip`] (embeddings) → features → [`cluster`] (fit / assign / select k) → [`label`] (names).
//! Underneath: [`image_io`] (decoding, resizing), [`rate`] (coding rates, Sinkhorn, gradients),
//! [`linalg`] (GEMM, factorizations), [`device`] (CPU or CUDA).

pub mod clip;
pub mod cluster;
pub mod device;
pub mod error;
pub mod ffi;
pub mod image_io;
pub mod io;
pub mod label;
pub mod linalg;
pub mod progress;
pub mod rate;
pub mod report;
pub mod rng;
pub mod scratch;
#[doc(hidden)]
pub mod testing;

pub use device::{Device, DeviceKind};
pub use error::{Error, Result};
pub use ffi::enums::Status;

/// Incremented on any incompatible change to the C ABI.
pub const RATECLUST_ABI_VERSION: u32 = 2;

/// The header cbindgen generated from this build's sources (compared with the committed
/// `include/rateclust.h` by the test suite, so a stale header fails CI).
#[doc(hidden)]
pub const GENERATED_HEADER: &str = include_str!(concat!(env!("OUT_DIR"), "/rateclust.h"));
