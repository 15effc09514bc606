//! File formats shared by the CLI, the C API and the tests.
pub mod npy;
