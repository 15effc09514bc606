//! C API for the cluster stage.
