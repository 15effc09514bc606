//! C API for the clip stage.
