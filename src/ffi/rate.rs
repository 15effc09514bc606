//! C API for the rate stage.
