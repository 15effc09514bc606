//! One error type for the whole library.
//!
//! Every fallible function returns [`Result`]; the C boundary (`ffi`) turns an [`Error`] into a
//! status code (`ffi::enums::Status`) plus a message kept in a thread-local for `rateclust_last_error()`.

use thiserror::Error;

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
