//! CPP clustering on feature vectors: the head and its training, spectral clustering of Π, out-of-sample
//! assignment, choice of k by coding length, metrics, save/load.

pub mod algorithms;
pub mod head;
pub mod params;
pub mod coding_refine;
pub mod restart_select;
pub mod input_space;
pub mod consensus;
pub mod neighbors;
pub mod assign;
pub mod synthetic;
pub mod model;
pub mod select_k;
pub mod save;
