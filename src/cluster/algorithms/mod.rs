//! Generic clustering algorithms on rows of features, independent of the CPP head and of the
//! [`Clusterer`](super::clusterer::Clusterer): k-means ([`kmeans`]), spectral clustering of an affinity
//! matrix ([`spectral`]), the coding length of a partition ([`coding_length`]) and external metrics against
//! ground-truth classes ([`metrics`]).

pub mod coding_length;
pub mod kmeans;
pub mod metrics;
pub mod spectral;
