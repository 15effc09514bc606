//! One error type for the whole library, and its mapping onto the C status codes.
//!
//! Every fallible function returns [`Result`]; the C boundary (`ffi`) turns an [`Error`] into a
//! [`Status`] code plus a message kept in a thread-local for `rateclust_last_error()`.

use thiserror::Error;

/// Status codes returned by every C entry point (C: `rateclust_status`, `RATECLUST_STATUS_*`). Values are part of the stable ABI: never renumber,
/// only append.
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

/// The library's error. The message names the argument, tensor, field or file involved.
#[derive(Debug, Error)]
pub enum Error {
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("non-finite input: {0}")]
    NonFinite(String),
    #[error("I/O error on {path}: {source}")]
    Io { path: String, #[source] source: std::io::Error },
    #[error("format error: {0}")]
    Format(String),
    #[error("device error: {0}")]
    Device(String),
    #[error("numerical error: {0}")]
    Numerical(String),
    #[error("cancelled by the progress callback")]
    Cancelled,
    #[error("out of memory: {0}")]
    OutOfMemory(String),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

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

    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Io { path: path.as_ref().display().to_string(), source }
    }
}

/// `Err(Error::InvalidArgument(..))` built with `format!` syntax.
#[macro_export]
macro_rules! invalid_arg {
    ($($t:tt)*) => { $crate::error::Error::InvalidArgument(format!($($t)*)) };
}

/// Fails with a clear error if any value is NaN or infinite. `what` names the input in the message.
pub fn check_finite<T: Copy + Into<f64>>(what: &str, data: &[T]) -> Result<()> {
    if let Some(i) = data.iter().position(|&x| !x.into().is_finite()) {
        return Err(Error::NonFinite(format!("{what}[{i}] = {}", data[i].into())));
    }
    Ok(())
}
