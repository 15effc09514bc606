//! CPP clustering on feature vectors: the head and its training, spectral clustering of Π, out-of-sample
//! assignment, choice of k by coding length, metrics, save/load.
//!
//! [`clusterer`] is the API ([`Clusterer`](clusterer::Clusterer): fit, assign, choose k, save and load).
//! [`head`] holds the CPP head with its optimiser, training loop and CUDA side; [`algorithms`] the generic
//! algorithms that need neither the head nor the clusterer (k-means, spectral clustering, coding length,
//! metrics). The modules beside them are the pieces the clusterer combines.

pub mod algorithms;
pub mod clusterer;
pub mod head;

pub mod params;
pub mod coding_refine;
pub mod restart_select;
pub mod input_space;
pub mod consensus;
pub mod neighbors;
pub mod assign;
pub mod synthetic;
pub mod select_k;
pub mod save;
